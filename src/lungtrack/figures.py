"""Paper-style matplotlib figures; every function returns a `matplotlib.figure.Figure`.

Figures are built on `matplotlib.figure.Figure` directly, never through
``pyplot``: nothing is shown, no global figure state is touched, and the code
runs headless (in the pipeline, in Dask workers, in tests).
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple

__all__ = ["persistence_figure", "superplot", "recruitment_figure", "save_figure", "PALETTE"]

#: Okabe-Ito colours (distinguishable with colour-vision deficiency), in group order.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")

_STYLE = {
    "font.size": 8, "axes.labelsize": 8, "axes.titlesize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "legend.fontsize": 7, "axes.linewidth": 0.8, "lines.linewidth": 1.2,
}
#: Text stays text in SVG and PDF (editable in Illustrator/Inkscape); TrueType in PDF; a fixed
#: salt for SVG element ids so that saving twice gives the same bytes.
_SAVE_STYLE = {"svg.fonttype": "none", "pdf.fonttype": 42, "svg.hashsalt": "lungtrack"}
_Y_LABELS = {
    "msc_per_mm2": "MSCs per mm² of tissue",
    "macrophage_per_mm2": "Macrophages per mm² of tissue",
}


def _style_axes(ax):
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.tick_params(direction="out", length=3, width=0.8)


def _fmt(x):
    return "∞" if x == math.inf else f"{x:.1f}"


def _half_life_label(group, row):
    """Legend text for a group and its fit row, e.g. ``"BM: t1/2 = 8.1 h [6.9, 9.4]"``."""
    if row is None or math.isnan(row["half_life_h"]):
        return f"{group}: t1/2 n/a"
    text = f"{group}: t1/2 = {_fmt(row['half_life_h'])} h"
    lo, hi = row.get("ci_low_h", math.nan), row.get("ci_high_h", math.nan)
    if not (math.isnan(lo) or math.isnan(hi)):
        text += f" [{_fmt(lo)}, {_fmt(hi)}]"
    return text


def persistence_figure(persistence, fit, animals=None, *, log_scale=False, value="msc_per_mm2", confidence=0.95):
    """Time course of MSC density per group with the fitted exponential decay.

    Parameters
    ----------
    persistence : pandas.DataFrame
        Output of `lungtrack.persistence.persistence_table`: ``group``,
        ``time_h``, ``<value>_mean``, ``<value>_sem``.
    fit : pandas.DataFrame or None
        Output of `lungtrack.persistence.fit_decay`; rows with
        ``model == "exponential"`` are drawn as ``N0 exp(-ln 2 t / t1/2)`` over
        the observed time range, and their half-life (with CI) is written in
        the legend.
    animals : pandas.DataFrame, optional
        Output of `lungtrack.persistence.animal_table`; one point per animal,
        jittered in x by at most 1.2 % of the time range (deterministic).
    log_scale : bool, optional
        Logarithmic y axis (animals with density 0 are then not drawn).
    value : str, optional
        Column prefix of the measure to plot.
    confidence : float, optional
        Level of the CI band around each fitted curve, drawn when the fit row
        has ``se_log_n0, se_k_per_h, cov_log_n0_k, df`` (`fit_decay` output):
        ``N(t) exp(+/- t_df sd)`` with ``sd^2 = se_log_n0^2 + t^2 se_k^2 - 2 t cov``
        (delta method on ``ln N(t)``); gid ``"band:<group>"``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes. With several groups, the means and animals of each group are
        shifted in x by 1.2 % of the time range per group so that error bars
        at shared time points do not hide each other (the fitted curves are
        not shifted). Artists carry gids: ``"fit:<group>"`` for the fitted curve,
        ``"mean:<group>"`` for the mean +/- SEM, ``"animals:<group>"`` for the
        animal points.

    Examples
    --------
    >>> import pandas as pd
    >>> p = pd.DataFrame({"group": "BM", "time_h": [2.0, 10.0], "msc_per_mm2_mean": [100.0, 50.0],
    ...                   "msc_per_mm2_sem": [5.0, 4.0]})
    >>> f = pd.DataFrame({"group": ["BM"], "model": ["exponential"], "half_life_h": [8.0],
    ...                   "ci_low_h": [7.0], "ci_high_h": [9.5], "n0_per_mm2": [118.9]})
    >>> fig = persistence_figure(p, f)
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['BM: t1/2 = 8.0 h [7.0, 9.5]']
    """
    mean_col, sem_col = f"{value}_mean", f"{value}_sem"
    for col in ("group", "time_h", mean_col, sem_col):
        if col not in persistence.columns:
            raise ValueError(f"persistence lacks column {col!r}; it has {list(persistence.columns)}")
    groups = list(dict.fromkeys(sorted(persistence["group"].unique(), key=str)))
    exp_fit = {}
    if fit is not None and len(fit):
        for _, row in fit[fit["model"] == "exponential"].iterrows():
            exp_fit[row["group"]] = row
    t_all = persistence["time_h"].to_numpy(dtype=float)
    t_span = float(np.ptp(t_all)) if t_all.size else 1.0
    jitter_rng = np.random.default_rng(0)
    handles, labels = [], []
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(4.2, 3.0), layout="constrained")
        ax = fig.add_subplot()
        _style_axes(ax)
        for i, group in enumerate(groups):
            color = PALETTE[i % len(PALETTE)]
            g = persistence[persistence["group"] == group].sort_values("time_h")
            t = g["time_h"].to_numpy(dtype=float)
            dodge = (i - (len(groups) - 1) / 2) * 0.012 * (t_span or 1.0)
            row = exp_fit.get(group)
            label = _half_life_label(group, row) if row is not None else str(group)
            if animals is not None and value in animals.columns:
                a = animals[animals["group"] == group]
                ya = a[value].to_numpy(dtype=float)
                jitter = jitter_rng.uniform(-1, 1, len(a)) * 0.012 * (t_span or 1.0)
                xa = a["time_h"].to_numpy(dtype=float) + dodge + jitter
                keep = np.isfinite(ya) & ((ya > 0) if log_scale else True)
                ax.scatter(xa[keep], ya[keep], s=9, color=color, alpha=0.45, linewidths=0, zorder=2,
                           gid=f"animals:{group}")
            eb = ax.errorbar(t + dodge, g[mean_col].to_numpy(dtype=float),
                             yerr=g[sem_col].fillna(0).to_numpy(dtype=float), fmt="o", ms=4, color=color, mfc="white", mew=1.2, elinewidth=1.0, capsize=2.5, zorder=3)
            eb.lines[0].set_gid(f"mean:{group}")
            handle = eb.lines[0]
            if _drawable(row):
                tt = np.linspace(t.min(), t.max(), 200)
                k = math.log(2.0) / row["half_life_h"]
                (line,) = ax.plot(tt, row["n0_per_mm2"] * np.exp(-k * tt), "-", color=color, zorder=1,
                                  gid=f"fit:{group}")
                band = _fit_band(row, tt, confidence)
                if band is not None:
                    ax.fill_between(tt, band[0], band[1], color=color, alpha=0.15, lw=0, zorder=0,
                                    gid=f"band:{group}")
                handle = (line, eb.lines[0])
            handles.append(handle)
            labels.append(label)
        ax.set_xlabel("Time after infusion (h)")
        ax.set_ylabel(_Y_LABELS.get(value, value.replace("_per_mm2", " per mm²").replace("_", " ")))
        if log_scale:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))  # 10, 100, not 10^1
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        if groups:
            ax.legend(handles, labels, handler_map={tuple: HandlerTuple(ndivide=1)}, frameon=False,
                      loc="upper right", handlelength=2.0)
    return fig


def _drawable(row):
    """A fit row with a curve to draw (finite N0, half-life > 0 or inf)."""
    return row is not None and bool(np.isfinite(row["n0_per_mm2"])) and row["half_life_h"] > 0


def _fit_band(row, t, confidence):
    """Pointwise CI of the fitted one-phase curve (delta method on ln N(t)), or None without the columns."""
    from scipy import stats

    need = ("se_log_n0", "se_k_per_h", "cov_log_n0_k", "df", "k_per_h")
    if any(c not in row.index for c in need) or not all(np.isfinite(float(row[c])) for c in need) or row["df"] <= 0:
        return None
    var = row["se_log_n0"] ** 2 + t ** 2 * row["se_k_per_h"] ** 2 - 2 * t * row["cov_log_n0_k"]
    q = stats.t.ppf(0.5 + confidence / 2, row["df"])
    mid = row["n0_per_mm2"] * np.exp(-row["k_per_h"] * t)
    sd = np.sqrt(np.maximum(var, 0.0))
    return mid * np.exp(-q * sd), mid * np.exp(q * sd)


def superplot(samples, *, value="msc_per_mm2", by="group", log_scale=False):
    """"Superplot": sections as small points coloured by animal, animal values as large points.

    Parameters
    ----------
    samples : pandas.DataFrame
        Per-image table (``animal``, ``time_h``, `by`, `value`; counts and
        ``tissue_area_mm2`` for densities, see
        `lungtrack.persistence.animal_table`).
    value : str, optional
        Measure to plot.
    by : str or sequence of str, optional
        Grouping column(s): one panel per group; several columns are joined
        into one label (``"BM / 10"``), as in `lungtrack.persistence.time_course`.
    log_scale : bool, optional
        Logarithmic y axis (zeros not drawn).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per group (shared y); x: time points, evenly spaced and
        labelled in hours. Small points (gid ``"sections:<group>"``) are the
        images, large points with a black edge (gid ``"animals:<group>"``) the
        animal values (sections pooled), a bar the mean of the animals. Lord
        et al. (2020) J Cell Biol 219:e202001064.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"animal": ["a", "a", "b"], "group": "BM", "time_h": 2.0,
    ...                   "n_msc": [10, 30, 20], "tissue_area_mm2": 1.0, "msc_per_mm2": [10.0, 30.0, 20.0]})
    >>> ax = superplot(s).axes[0]
    >>> [len(c.get_offsets()) for c in ax.collections]
    [3, 2]
    """
    from .persistence import animal_table

    cols = [by] if isinstance(by, str) else list(by)
    for col in ("animal", "time_h", *cols, value):
        if col not in samples.columns:
            raise ValueError(f"samples lacks column {col!r}; it has {list(samples.columns)}")
    by = cols[0]
    if len(cols) > 1:  # one panel per combination, labelled like persistence.csv
        by = "_superplot_group"
        samples = samples.assign(**{by: samples[cols].astype(str).agg(" / ".join, axis=1)})
    animals = animal_table(samples, value=value, by=by)
    groups = sorted(samples[by].dropna().unique(), key=str)
    times = sorted(samples["time_h"].dropna().unique())
    pos = {t: i for i, t in enumerate(times)}
    rng = np.random.default_rng(0)
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(max(2.2, 1.9 * len(groups)) + 0.6, 2.8), layout="constrained")
        axes = fig.subplots(1, max(len(groups), 1), sharey=True, squeeze=False)[0]
        for ax, group in zip(axes, groups):
            _style_axes(ax)
            s = samples[samples[by] == group]
            a = animals[animals[by] == group]
            names = sorted(a["animal"].unique(), key=str)
            colour = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
            xs = s["time_h"].map(pos).to_numpy(dtype=float) + rng.uniform(-0.18, 0.18, len(s))
            ys = _numeric(s[value])
            keep = np.isfinite(ys) & ((ys > 0) if log_scale else True)
            ax.scatter(xs[keep], ys[keep], s=8, c=[colour.get(n, "0.5") for n in s["animal"][keep]], alpha=0.6,
                       linewidths=0, zorder=2, gid=f"sections:{group}")
            xa = a["time_h"].map(pos).to_numpy(dtype=float) + rng.uniform(-0.1, 0.1, len(a))
            ya = a[value].to_numpy(dtype=float)
            keep = np.isfinite(ya) & ((ya > 0) if log_scale else True)
            ax.scatter(xa[keep], ya[keep], s=36, c=[colour[n] for n in a["animal"][keep]], edgecolors="black",
                       linewidths=0.7, zorder=3, gid=f"animals:{group}")
            for t, g in a.groupby("time_h"):
                m = np.nanmean(g[value].to_numpy(dtype=float))
                ax.plot([pos[t] - 0.3, pos[t] + 0.3], [m, m], color="black", lw=1.2, zorder=4)
            ax.set_xticks(range(len(times)), [f"{t:g}" for t in times])
            ax.set_xlim(-0.6, len(times) - 0.4)
            ax.set_title(str(group))
            ax.set_xlabel("Time after infusion (h)")
            if log_scale:
                ax.set_yscale("log")
        axes[0].set_ylabel(_Y_LABELS.get(value, value.replace("_", " ")))
        if not log_scale:
            axes[0].set_ylim(bottom=0)
    return fig


def _numeric(series):
    """A column as float numpy, non-numbers as NaN."""
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


_RECRUITMENT_LABELS = {
    "macrophage_per_mm2": "Macrophages per mm²",
    "frac_msc_contacting_macrophage": "MSCs touching a macrophage (fraction)",
    "frac_macrophage_containing_msc": "Macrophages containing MSC label (fraction)",
    "engulfment_index": "Engulfment index (MSC label in macrophages)",  # <= 45 characters: fits a 2.7 in panel
    "frac_msc_engulfed": "MSCs engulfed (fraction)",
}


def recruitment_figure(recruitment, *, measures=None):
    """Macrophage recruitment and engulfment over time: one panel per measure, mean +/- SEM per group.

    Parameters
    ----------
    recruitment : pandas.DataFrame
        `lungtrack.persistence.recruitment_table` output (``measure, group,
        time_h, n_animals, mean, sem``).
    measures : list of str, optional
        Measures to draw, in order (default: all in the table).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per measure; per group a line through the means with SEM
        error bars (gid ``"<measure>:<group>"``).

    Examples
    --------
    >>> import pandas as pd
    >>> r = pd.DataFrame({"measure": "macrophage_per_mm2", "group": "BM", "time_h": [2.0, 24.0],
    ...                   "n_animals": 3, "mean": [100.0, 150.0], "sem": [5.0, 9.0]})
    >>> [ax.get_title() for ax in recruitment_figure(r).axes]
    ['Macrophages per mm²']
    """
    for col in ("measure", "group", "time_h", "mean", "sem"):
        if col not in recruitment.columns:
            raise ValueError(f"recruitment lacks column {col!r}; it has {list(recruitment.columns)}")
    measures = list(dict.fromkeys(recruitment["measure"])) if measures is None else list(measures)
    groups = sorted(recruitment["group"].unique(), key=str)
    ncol = min(3, max(len(measures), 1))
    nrow = max(1, math.ceil(len(measures) / ncol))
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(2.7 * ncol + 0.4, 2.4 * nrow), layout="constrained")
        axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
        for ax, m in zip(axes, measures):
            _style_axes(ax)
            d = recruitment[recruitment["measure"] == m]
            for i, g in enumerate(groups):
                gd = d[d["group"] == g].sort_values("time_h")
                if not len(gd):
                    continue
                eb = ax.errorbar(gd["time_h"], gd["mean"], yerr=gd["sem"].fillna(0), fmt="o-", ms=3.5,
                                 color=PALETTE[i % len(PALETTE)], capsize=2, lw=1.0, label=str(g))
                eb.lines[0].set_gid(f"{m}:{g}")
            if m.startswith("macrophage_near_msc_"):
                title = f"Macrophages within {m[len('macrophage_near_msc_'):].replace('um', ' µm')} of an MSC"
            else:
                title = _RECRUITMENT_LABELS.get(m, m.replace("_", " "))
            ax.set_title(title, fontsize=7)
            ax.set_xlabel("Time after infusion (h)")
            ax.set_ylim(bottom=0)
            ax.set_xlim(left=0)
        for ax in axes[len(measures):]:
            ax.set_visible(False)
        if measures and groups:
            axes[0].legend(frameon=False, loc="best")
    return fig


#: Resolution of the PNGs (journals ask for at least 300 dpi for line art and images).
PNG_DPI = 300


def save_figure(fig, path_stem):
    """Write `fig` as ``path_stem.png`` (`PNG_DPI`, 300 dpi), ``.svg`` and ``.pdf``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path_stem : str or pathlib.Path
        Path without extension; the extension is appended (a dot in the stem
        is kept). Parent folders are created.

    Returns
    -------
    list of pathlib.Path
        The PNG, SVG and PDF paths, in that order.

    Notes
    -----
    The canvas is saved as is (no tight bounding box), so the PNG measures
    ``figsize * 300`` pixels. SVG and PDF carry no creation date and SVG ids
    use a fixed salt, so saving the same figure again gives identical files.
    Text is kept as text (SVG) and TrueType (PDF), editable in vector editors.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with mpl.rc_context(_SAVE_STYLE):
        engine = None
        try:
            for ext, kwargs in ((".png", {"dpi": PNG_DPI}), (".svg", {"metadata": {"Date": None}}),
                                (".pdf", {"metadata": {"CreationDate": None}})):
                path = stem.parent / (stem.name + ext)
                fig.savefig(path, format=ext[1:], **kwargs)
                paths.append(path)
                if ext == ".png" and fig.get_layout_engine() is not None:
                    # One layout for the three files: the PNG's, rounded and frozen. Constrained layout
                    # redone at 72 dpi after a 300-dpi draw moves axes by ~1e-16, which changes the SVG's
                    # hashed clip-path ids: saving again would not give the same bytes.
                    engine = fig.get_layout_engine()
                    for ax in fig.axes:
                        ax.set_position(np.round(ax.get_position().bounds, 9))
                    fig.set_layout_engine("none")
        finally:
            if engine is not None:
                fig.set_layout_engine(engine)
    return paths


def cytofluorogram(a, b, *, mask=None, thresholds=None, regression=None, names=("MSC", "macrophage"), bins=256,
                   log_counts=True):
    """Cytofluorogram: 2D histogram of two channels' intensities with regression and Costes thresholds.

    Parameters
    ----------
    a, b : array_like
        The two channels (x and y axis), same shape; numpy or dask.
    mask : array_like of bool, optional
        Pixels to plot; all when None.
    thresholds : (float, float) or False, optional
        Thresholds of `a` and `b`, drawn as a vertical and a horizontal dashed
        line. None: `lungtrack.coloc.costes_thresholds` of the pixels in the
        mask. False: no threshold lines.
    regression : (slope, intercept) or False, optional
        Line ``b = slope * a + intercept``. None: orthogonal (Deming, variance
        ratio 1) regression of the pixels in the mask, as used by the Costes
        thresholds. False: no line.
    names : (str, str)
        Channel names for the axis labels.
    bins : int
        Histogram bins per axis, over each channel's range in the mask.
    log_counts : bool
        Logarithmic colour scale of the pixel counts (empty bins blank).

    Returns
    -------
    matplotlib.figure.Figure
        One histogram axes (plus a colour bar). Artists carry gids:
        ``"histogram"``, ``"regression"``, ``"threshold_a"`` (vertical line at
        the threshold of `a`), ``"threshold_b"`` (horizontal line at the
        threshold of `b`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.uniform(0, 100, 500); b = a + rng.normal(0, 5, 500)
    >>> fig = cytofluorogram(a, b, thresholds=(20.0, 30.0))
    >>> [ln.get_gid() for ln in fig.axes[0].lines]
    ['regression', 'threshold_a', 'threshold_b']
    """
    from matplotlib import patheffects
    from matplotlib.colors import LogNorm, Normalize

    from . import coloc
    from .coloc import orthogonal_regression

    x = np.asarray(a)
    y = np.asarray(b)
    if x.shape != y.shape:
        raise ValueError(f"b has shape {y.shape} but a has shape {x.shape}; they must match")
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != x.shape or m.dtype != bool:
            raise ValueError(f"mask must be a boolean array of shape {x.shape}, got {m.dtype} {m.shape}")
        x, y = x[m], y[m]
    integer = np.issubdtype(x.dtype, np.integer) and np.issubdtype(y.dtype, np.integer)
    x = x.astype(np.float64).ravel()
    y = y.astype(np.float64).ravel()
    if int(bins) < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if thresholds is None:
        thresholds = coloc.costes_thresholds(x, y) if x.size else None
    elif thresholds is False:
        thresholds = None
    if regression is None:
        regression = orthogonal_regression(x, y) if x.size >= 2 else None
    elif regression is False:
        regression = None

    def span(v):
        if v.size == 0:
            return 0.0, 1.0
        lo, hi = float(v.min()), float(v.max())
        return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)

    def edges(v):
        lo, hi = span(v)
        if integer and v.size and hi - lo + 1 <= int(bins):  # one bin per grey level: no aliasing
            return np.arange(lo - 0.5, hi + 1.0, 1.0)
        return np.linspace(lo, hi, int(bins) + 1)

    xe, ye = edges(x), edges(y)
    (x0, x1), (y0, y1) = (xe[0], xe[-1]), (ye[0], ye[-1])
    counts, xe, ye = np.histogram2d(x, y, bins=[xe, ye])
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(3.6, 3.0), layout="constrained")
        ax = fig.add_subplot()
        _style_axes(ax)
        shown = np.ma.masked_equal(counts.T, 0)
        vmax = max(float(counts.max()), 1.0)
        norm = LogNorm(vmin=1.0, vmax=max(vmax, 10.0)) if log_counts else Normalize(vmin=0.0, vmax=vmax)
        mesh = ax.pcolormesh(xe, ye, shown, cmap="viridis", norm=norm, shading="flat", rasterized=True,
                             gid="histogram")
        cbar = fig.colorbar(mesh, ax=ax, pad=0.02, fraction=0.06)
        cbar.set_label("Pixels" + (" (log scale)" if log_counts else ""))
        cbar.outline.set_linewidth(0.6)
        handles = []
        if regression is not None:
            slope, intercept = (float(v) for v in regression)
            xx = np.array([x0, x1])
            (line,) = ax.plot(xx, slope * xx + intercept, "-", color="#D55E00", lw=1.0, gid="regression",
                              path_effects=[patheffects.withStroke(linewidth=2.4, foreground="white")],
                              label=f"regression (slope {slope:.3g})")
            handles.append(line)
        if thresholds is not None:
            t_a, t_b = (float(v) for v in thresholds)
            if math.isfinite(t_a) and math.isfinite(t_b):
                halo = [patheffects.withStroke(linewidth=2.4, foreground="white")]  # visible on dense bins
                la = ax.axvline(t_a, color="black", ls="--", lw=0.9, gid="threshold_a", path_effects=halo,
                                label=f"thresholds ({t_a:.3g}, {t_b:.3g})")
                ax.axhline(t_b, color="black", ls="--", lw=0.9, gid="threshold_b", path_effects=halo)
                handles.append(la)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel(f"{names[0]} intensity")
        ax.set_ylabel(f"{names[1]} intensity")
        if handles:
            ax.legend(handles=handles, loc="upper left", frameon=True, framealpha=0.9, edgecolor="none",
                      handlelength=1.6, borderaxespad=0.3)
    return fig


__all__ += ["cytofluorogram"]


def cross_l_figure(envelope, *, title=None, labels=("MSC", "macrophage")):
    """Cross-type L(r) - r of MSCs vs macrophages with its simulation envelope.

    Parameters
    ----------
    envelope : DataFrame
        `lungtrack.spatial_stats.cross_k_envelope` output (``r_um, l_minus_r_um`` and,
        if present, ``l_minus_r_low_um, l_minus_r_high_um, l_minus_r_null_mean_um``;
        ``attrs["p_value"]`` is shown in the legend).
    title : str, optional
    labels : pair of str
        Names of the two cell types.

    Returns
    -------
    Figure
        Above the envelope: more macrophages near MSCs than random placement in the
        tissue gives (attraction); below: avoidance. Artists carry gids
        ``"observed"``, ``"envelope"``, ``"null_mean"``.
    """
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(3.4, 2.6), layout="constrained")
        ax = fig.add_subplot()
        _draw_cross_l(ax, envelope)
        ax.set_xlabel("r (µm)")
        ax.set_ylabel(f"L(r) − r (µm), {labels[0]} → {labels[1]}")
        if title:
            ax.set_title(title)
    return fig


def _draw_cross_l(ax, envelope, *, fontsize=None):
    """Envelope band, null mean and observed L(r) - r on one axes."""
    _style_axes(ax)
    r = np.asarray(envelope["r_um"], float)
    if "l_minus_r_low_um" in envelope and np.isfinite(envelope["l_minus_r_low_um"]).any():
        n = envelope.attrs.get("n_simulations")
        ax.fill_between(r, envelope["l_minus_r_low_um"], envelope["l_minus_r_high_um"], color="0.85", lw=0,
                        gid="envelope", label="random in tissue" + (f" ({n} simulations)" if n else ""))
        ax.plot(r, envelope["l_minus_r_null_mean_um"], color="0.45", lw=0.8, ls="--", gid="null_mean")
    p = envelope.attrs.get("p_value")
    obs_label = "observed" + (f" (global test p = {p:.3g})" if p is not None and np.isfinite(p) else "")
    ax.plot(r, envelope["l_minus_r_um"], color=PALETTE[1], gid="observed", label=obs_label)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlim(0, float(r.max()) if r.size else 1.0)
    ax.legend(loc="best", frameon=False, fontsize=fontsize)


def cross_l_panels(envelopes: dict, *, column="double", labels=("MSC", "macrophage")):
    """One cross-L panel per image (e.g. the representative image of each group), sharing the y axis.

    Parameters
    ----------
    envelopes : dict
        Panel title -> `lungtrack.spatial_stats.cross_k_envelope` output, in panel order.
    column : {"single", "double"}
        Figure width (`figure_size`).
    labels : pair of str
        Names of the two cell types (y label).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per entry, titled with its key; each has the gids of `cross_l_figure`.

    Examples
    --------
    >>> import pandas as pd
    >>> env = pd.DataFrame({"r_um": [5.0, 10.0], "l_minus_r_um": [1.0, 2.0], "l_minus_r_low_um": [-1.0, -1.0],
    ...                     "l_minus_r_high_um": [1.5, 1.5], "l_minus_r_null_mean_um": [0.0, 0.0]})
    >>> fig = cross_l_panels({"BM, 2 h": env, "UC, 2 h": env})
    >>> [ax.get_title() for ax in fig.axes], fig.axes[0].get_xlabel()
    (['BM, 2 h', 'UC, 2 h'], 'r (µm)')
    """
    if not envelopes:
        raise ValueError("envelopes is empty: nothing to draw")
    w = figure_size(column)[0]
    n = len(envelopes)
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(w, min(w / n + 0.7, 3.0)), layout="constrained")
        axs = fig.subplots(1, n, squeeze=False, sharey=True)[0]
        for ax, (title, env) in zip(axs, envelopes.items()):
            _draw_cross_l(ax, env, fontsize=6)
            ax.set_title(str(title))
            ax.set_xlabel("r (µm)")
        axs[0].set_ylabel(f"L(r) − r (µm), {labels[0]} → {labels[1]}")
    return fig


__all__ += ["cross_l_figure", "cross_l_panels"]


# ---------------------------------------------------------------------------- panels for papers (issue 9)

#: Figure widths of journals' single and double columns, in inches.
SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.2
#: MSC states in their biological order (interactions.csv ``state``), with fixed colours.
MSC_STATES = ("intact", "near", "contact", "fragmented", "engulfed")
_STATE_COLORS = {"intact": "#009E73", "near": "#56B4E9", "contact": "#E69F00", "fragmented": "#CC79A7",
                 "engulfed": "#D55E00"}
_COEF_LABELS = {"pearson_r": "Pearson r", "manders_m1": "Manders M1 (MSC in macrophage)",
                "manders_m2": "Manders M2 (macrophage in MSC)", "spearman": "Spearman ρ", "li_icq": "Li ICQ",
                "frac_msc_contacting_macrophage": "MSCs touching a macrophage\n(fraction)",
                "frac_macrophage_containing_msc": "Macrophages with MSC label\n(fraction)",
                "median_msc_to_macrophage_um": "Median MSC-macrophage\ndistance (µm)"}


def figure_size(column: str = "single", aspect: float = 0.75) -> tuple[float, float]:
    """(width, height) in inches for a single or double journal column.

    >>> figure_size("double", 0.5)
    (7.2, 3.6)
    """
    if column not in ("single", "double"):
        raise ValueError(f"column must be 'single' or 'double', got {column!r}")
    w = SINGLE_COLUMN_IN if column == "single" else DOUBLE_COLUMN_IN
    return (w, round(w * aspect, 3))


def _group_positions(times, groups, width=0.8):
    """x position of each (time index, group) pair: groups side by side within a time slot."""
    n = max(len(groups), 1)
    step = width / n
    return {(ti, g): ti - width / 2 + step * (gi + 0.5) for ti in range(len(times)) for gi, g in enumerate(groups)}, step


def state_composition_figure(interactions, samples, *, column="single"):
    """Stacked bars: share of MSCs in each state per group and time point.

    Parameters
    ----------
    interactions : DataFrame
        ``interactions.csv``: ``sample_id``, ``state``.
    samples : DataFrame
        ``samples.csv``: ``sample_id``, ``group``, ``time_h``.

    Returns
    -------
    matplotlib.figure.Figure
        One bar per group and time (gid ``"bar_<group>_<time>_<state>"``); bar
        heights are the fractions of that group's MSCs at that time (pooled over
        its images), summing to 1.

    Examples
    --------
    >>> import pandas as pd
    >>> inter = pd.DataFrame({"sample_id": ["a", "a", "b"], "state": ["intact", "contact", "engulfed"]})
    >>> samples = pd.DataFrame({"sample_id": ["a", "b"], "group": ["G", "G"], "time_h": [2.0, 24.0]})
    >>> fig = state_composition_figure(inter, samples)
    >>> [round(float(p.get_height()), 2) for p in fig.axes[0].patches if p.get_gid() == "bar_G_2_intact"]
    [0.5]
    """

    df = interactions[["sample_id", "state"]].merge(samples[["sample_id", "group", "time_h"]], on="sample_id")
    groups = list(dict.fromkeys(samples["group"]))
    times = sorted(samples["time_h"].unique())
    counts = df.groupby(["group", "time_h", "state"]).size().unstack(fill_value=0)
    states = [s for s in MSC_STATES if s in counts.columns] + [s for s in counts.columns if s not in MSC_STATES]
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=figure_size(column, 0.7), layout="constrained")
        ax = fig.add_subplot()
        pos, step = _group_positions(times, groups)
        for (group, t), row in counts.iterrows():
            total = row.sum()
            bottom = 0.0
            ti = times.index(t)
            for state in states:
                h = row.get(state, 0) / total if total else 0.0
                ax.bar(pos[(ti, group)], h, width=step * 0.9, bottom=bottom, color=_STATE_COLORS.get(state, "#999999"),
                       edgecolor="white", linewidth=0.4, gid=f"bar_{group}_{t:g}_{state}")
                bottom += h
        for ti, t in enumerate(times):
            for g in groups:
                n = int(counts.loc[(g, t)].sum()) if (g, t) in counts.index else 0
                ax.text(pos[(ti, g)], 1.01, f"{n}", ha="center", va="bottom", fontsize=5.5)
        # group under each bar, time under each cluster; the number of MSCs above each bar
        ax.set_xticks([pos[k] for k in sorted(pos)], [k[1] for k in sorted(pos)], fontsize=6)
        ax.tick_params(axis="x", length=0)
        for ti, t in enumerate(times):
            ax.text(ti, -0.1, f"{t:g} h", transform=ax.get_xaxis_transform(), ha="center", va="top")
        ax.set_xlabel("Time after infusion (numbers: MSCs)", labelpad=12)
        ax.set_ylabel("Fraction of MSCs")
        ax.set_ylim(0, 1.12)
        ax.yaxis.set_major_locator(ticker.FixedLocator([0, 0.25, 0.5, 0.75, 1.0]))
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=_STATE_COLORS.get(s, "#999999"), label=s) for s in states],
                  loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, title="MSC state")
        _style_axes(ax)
    return fig


def coefficient_dotplot(samples, value="pearson_r", *, column="single", ylabel=None):
    """Per-image values (small points) and animal means (large points) by group and time point.

    Animals are the experimental unit: the large points are the means of each
    animal's images; the bar is the mean of the animal means.

    Returns
    -------
    matplotlib.figure.Figure
        Collections with gids ``"images_<group>"``, ``"animals_<group>"`` and lines
        ``"mean_<group>_<time>"``.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"sample_id": list("abcd"), "animal": ["m1", "m1", "m2", "m3"], "group": ["G"] * 4,
    ...                   "time_h": [2.0] * 4, "pearson_r": [0.1, 0.3, 0.5, 0.7]})
    >>> fig = coefficient_dotplot(s)
    >>> [round(float(ln.get_ydata()[0]), 4) for ln in fig.axes[0].lines if ln.get_gid() == "mean_G_2"]
    [0.4667]
    """
    s = samples[samples[value].notna()]
    groups = list(dict.fromkeys(samples["group"]))
    times = sorted(samples["time_h"].unique())
    animals = s.groupby(["group", "time_h", "animal"], sort=False)[value].mean().reset_index()
    rng = np.random.default_rng(0)  # fixed jitter: the same figure every time
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=figure_size(column, 0.7), layout="constrained")
        ax = fig.add_subplot()
        pos, step = _group_positions(times, groups)
        for gi, g in enumerate(groups):
            color = PALETTE[gi % len(PALETTE)]
            sg = s[s["group"] == g]
            xs = np.array([pos[(times.index(t), g)] for t in sg["time_h"]]) + rng.uniform(-0.2, 0.2, len(sg)) * step
            ax.scatter(xs, sg[value], s=6, color=color, alpha=0.45, linewidths=0, gid=f"images_{g}")
            ag = animals[animals["group"] == g]
            xa = [pos[(times.index(t), g)] for t in ag["time_h"]]
            ax.scatter(xa, ag[value], s=22, color=color, edgecolors="white", linewidths=0.5, zorder=3,
                       gid=f"animals_{g}", label=g)
            for t, grp in ag.groupby("time_h"):
                x = pos[(times.index(t), g)]
                ax.plot([x - step * 0.35, x + step * 0.35], [grp[value].mean()] * 2, color="black", linewidth=1.0,
                        gid=f"mean_{g}_{t:g}", zorder=4)
        ax.set_xticks(range(len(times)), [f"{t:g}" for t in times])
        ax.set_xlabel("Time after infusion (h)")
        ax.set_ylabel(ylabel or _COEF_LABELS.get(value, value))
        if value in ("pearson_r", "spearman", "li_icq"):
            ax.axhline(0, color="0.6", linewidth=0.6, zorder=0)
        ax.legend(frameon=False, loc="best")
        _style_axes(ax)
    return fig


_ROLE_NAMES = {"msc": "MSC", "macrophage": "macrophage", "nuclei": "nuclei", "tissue": "tissue",
               "autofluorescence": "autofluorescence"}


def _channel_roles(names, channels) -> dict:
    """Channel index -> role name for a legend, from the config's role -> channel (name or index) map."""
    lower = [str(n).lower() for n in names]
    out = {}
    for role, ch in (channels or {}).items():
        if ch is None:
            continue
        if isinstance(ch, (int, np.integer)) and not isinstance(ch, bool):
            i = int(ch)
        elif str(ch).lower() in lower:
            i = lower.index(str(ch).lower())
        else:
            continue
        if 0 <= i < len(names):
            out.setdefault(i, _ROLE_NAMES.get(role, role))
    return out


def example_images_figure(samples, inputs, labels_dir, *, time_h=None, value="msc_per_mm2", column="double",
                          groups=None, axes=None, sample_ids=None, colors=None, inset=True, spacing_um=None,
                          channels=None):
    """Representative images with outlines, a scale bar in um and a zoomed inset.

    By default one image per group: the one whose ``value`` is closest to the
    median of its group at its time point (`lungtrack.overlay.representative_sample`).

    Parameters
    ----------
    samples : DataFrame
        ``samples.csv``.
    inputs : dict
        sample_id -> image path (``run.json`` ``inputs``).
    labels_dir : path
        The results folder's ``labels/``.
    time_h : float, optional
        Time point shown; default each group's earliest.
    value : str, optional
        Column of `samples` whose group median picks the image.
    groups : list, optional
        Groups shown, in order (default all, in table order).
    axes : str, optional
        Axes of plain TIFFs (``run.axes`` of the config).
    sample_ids : list of str, optional
        Show these images instead (one panel each, in order): chosen by id.
    colors : dict or sequence, optional
        Display colour per channel: ``{"GFP": "#00FF00", ...}`` by channel name, or
        one colour per channel in channel order; default `lungtrack.overlay.CHANNEL_COLORS`.
    inset : bool or (y0, y1, x0, x1), optional
        True: a zoomed inset around one MSC chosen by `lungtrack.overlay.choose_inset`;
        a tuple: that region (pixels) in every panel; False: none.
    spacing_um : dict, optional
        sample_id -> (z, y, x) voxel size used by the analysis (``run.json``
        ``inputs``); it sets the scale bars, so that images whose pixel size came
        from the manifest or the config are scaled right. Default: the file's metadata.
    channels : dict, optional
        The config's role -> channel map; names the role of each channel in the legend.

    Returns
    -------
    matplotlib.figure.Figure
        One image axes per panel, titled ``"<group>, <time> h: <sample_id>"``, each
        with a scale bar (gid ``"scale_bar"``; width ``length_um / pixel_size_um``
        pixels) and, with an inset, a child axes (gid ``"inset"``) with its own bar.
        A legend below names the channel colours and the outline colours.
    """
    import tifffile
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .io import read_image
    from .overlay import ROLE_COLORS, _colors_for, choose_inset, image_panel, representative_sample

    labels_dir = Path(labels_dir)
    if sample_ids is not None:
        sample_ids = [str(s) for s in sample_ids]
        missing = [s for s in sample_ids if s not in set(samples["sample_id"].astype(str))]
        if missing:
            raise ValueError(f"sample_ids {missing} are not in the samples table")
        panels = []
        for sid in sample_ids:
            row = samples[samples["sample_id"].astype(str) == sid].iloc[0]
            panels.append((row["group"], row["time_h"], sid))
    else:
        groups = list(groups) if groups is not None else list(dict.fromkeys(samples["group"]))
        panels = []
        for g in groups:
            t = time_h if time_h is not None else samples.loc[samples["group"] == g, "time_h"].min()
            panels.append((g, t, representative_sample(samples, g, t, value)))
    if not panels:
        raise ValueError("no image to show (no group and no sample_ids)")
    w = figure_size(column)[0]
    shown_roles, names, tints = set(), None, None
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(w, w / len(panels) + 0.55), layout="constrained")
        axs = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (g, t, sid) in zip(axs, panels):
            if sid not in inputs:
                raise ValueError(f"no image path for sample {sid!r} (run.json inputs)")
            img = read_image(inputs[sid], require_spacing=False, axes=axes)
            px = float((spacing_um or {}).get(sid, img.spacing_um)[-1])
            labels = {r: tifffile.imread(labels_dir / f"{sid}_{r}.tif") for r in ("msc", "macrophage")
                      if (labels_dir / f"{sid}_{r}.tif").exists()}
            names = list(img.channel_names)
            if isinstance(colors, dict):
                default = _colors_for(names, len(names))
                tints = [colors.get(n, default[i]) for i, n in enumerate(names)]
            else:
                tints = list(colors) if colors is not None else _colors_for(names, len(names))
            data = np.asarray(img.data[0])
            region = choose_inset(labels, data.shape[-2:]) if inset is True else (inset or None)
            image_panel(data, px, colors=tints, labels=labels, ax=ax, inset=region, title=f"{g}, {t:g} h: {sid}")
            shown_roles |= set(labels)
        roles = _channel_roles(names, channels)
        handles = [Patch(color=c, label=f"{n} ({roles[i]})" if i in roles else str(n))
                   for i, (n, c) in enumerate(zip(names, tints))]
        handles += [Line2D([], [], color=ROLE_COLORS[r], lw=1.5, label=f"{_ROLE_NAMES[r]} outline") for r in
                    ("msc", "macrophage") if r in shown_roles]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=6,
                   handlelength=1.2, columnspacing=1.2)
    return fig


def coloc_example_figure(samples, inputs, labels_dir, channels, *, value="pearson_r", axes=None, coloc=None):
    """Cytofluorogram of the image whose ``value`` is the median of all images, inside its tissue mask.

    ``channels`` maps ``msc`` and ``macrophage`` to channel names or indices (the
    config's ``channels``). The Costes thresholds drawn are the image's own
    (``costes_threshold_msc``/``_macrophage`` of ``samples.csv``). With ``coloc``
    (``coloc.csv``), the image's Costes quality warnings are written under the
    title, so that thresholds at the edge of the histogram are not mistaken for
    a result. Axis labels name the channels; intensities are in a.u. (grey levels).
    """
    import tifffile

    from .io import read_image

    s = samples[samples[value].notna()]
    if s.empty:
        raise ValueError(f"no image has a {value} value")
    sid = str(s.loc[(s[value] - s[value].median()).abs().idxmin(), "sample_id"])
    img = read_image(inputs[sid], require_spacing=False, axes=axes)
    data = np.asarray(img.data[0])  # (C, Z, Y, X)
    a = data[img.channel_index(channels["msc"])]
    b = data[img.channel_index(channels["macrophage"])]
    tissue_path = Path(labels_dir) / f"{sid}_tissue.tif"
    mask = None
    if tissue_path.exists():
        mask = tifffile.imread(tissue_path).reshape(a.shape) > 0
    row = s[s["sample_id"] == sid].iloc[0]
    thr = (row["costes_threshold_msc"], row["costes_threshold_macrophage"])
    ch_a = img.channel_names[img.channel_index(channels["msc"])]
    ch_b = img.channel_names[img.channel_index(channels["macrophage"])]
    # Intensities are raw grey levels of the file: arbitrary units, stated so on the axes.
    fig = cytofluorogram(a, b, mask=mask, thresholds=thr if np.all(np.isfinite(thr)) else None,
                         names=(f"MSC label ({ch_a})", f"Macrophage marker ({ch_b})"))
    ax = fig.axes[0]
    ax.set_xlabel(ax.get_xlabel() + " (a.u.)")
    ax.set_ylabel(ax.get_ylabel() + " (a.u.)")
    import textwrap  # the figure is 3.6 in wide: notes are wrapped so the title is never clipped

    scope = "tissue" if mask is not None else "image"
    title = f"{sid} ({scope}): r = {row[value]:.2f}"
    notes = []
    if coloc is not None and len(coloc) and "costes_warnings" in coloc:
        w = coloc[(coloc["sample_id"].astype(str) == sid) & (coloc["scope"] == scope)]
        flags = sorted({f for v in w["costes_warnings"].dropna().astype(str) for f in v.split(";") if f})
        if flags:
            notes.append("Costes warnings: " + ", ".join(f.replace("_", " ") for f in flags))
    sel = mask if mask is not None else np.ones(a.shape, bool)
    if np.all(np.isfinite(thr)) and sel.any() and (thr[0] >= a[sel].max() or thr[1] >= b[sel].max()):
        notes.append("thresholds at the top of the range: no pixel above both (Manders undefined)")
    for note in notes:
        title += "\n" + textwrap.fill(note, 48)
    ax.set_title(title, fontsize=8)
    return fig


__all__ += ["figure_size", "state_composition_figure", "coefficient_dotplot", "example_images_figure",
            "coloc_example_figure", "SINGLE_COLUMN_IN", "DOUBLE_COLUMN_IN", "MSC_STATES"]


def distance_envelope_figure(observed: dict, null: dict, *, r_max_um=None, column="double", envelope=0.95):
    """ECDF of nearest MSC-to-macrophage distances per group and time, with the tissue-mask null envelope.

    Parameters
    ----------
    observed : dict
        ``(group, time_h) -> 1D array`` of observed distances (um), pooled over the
        images of that group and time.
    null : dict
        ``(group, time_h) -> 2D array (n_simulations, n)`` of distances under random
        macrophage placement in the tissue (`lungtrack.spatial_stats.nearest_distances_null`,
        the images' columns concatenated in the same order as `observed`).
    envelope : float
        Pointwise central share of the simulated ECDFs shown as a band.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per time point (columns), one line per group (gid
        ``"ecdf_<group>_<time>"``) with its band (``"null_<group>_<time>"``). A line
        above its band: MSCs have macrophages nearer than chance (attraction).

    Examples
    --------
    >>> obs = {("G", 2.0): np.array([1.0, 2.0, 3.0])}
    >>> nul = {("G", 2.0): np.array([[2.0, 4.0, 6.0], [3.0, 5.0, 7.0]])}
    >>> fig = distance_envelope_figure(obs, nul, r_max_um=10)
    >>> line = [ln for ln in fig.axes[0].lines if ln.get_gid() == "ecdf_G_2"][0]
    >>> float(np.interp(2.5, line.get_xdata(), line.get_ydata()))  # 2 of 3 MSCs within 2.5 um
    0.6666666666666666
    """
    keys = sorted(observed, key=lambda k: (k[1], str(k[0])))
    times = sorted({k[1] for k in keys})
    groups = list(dict.fromkeys(k[0] for k in sorted(observed, key=lambda k: str(k[0]))))
    finite = [v[np.isfinite(v)] for v in observed.values() if np.isfinite(v).any()]
    if r_max_um is None:
        r_max_um = float(np.percentile(np.concatenate(finite), 99)) if finite else 1.0
    r = np.linspace(0, r_max_um, 200)
    lo_q, hi_q = (1 - envelope) / 2, 1 - (1 - envelope) / 2
    w = figure_size(column)[0]
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(w, min(w / len(times) + 0.6, 3.0)), layout="constrained")
        axs = fig.subplots(1, len(times), squeeze=False, sharey=True)[0]
        for ax, t in zip(axs, times):
            for gi, g in enumerate(groups):
                if (g, t) not in observed:
                    continue
                d = np.sort(observed[(g, t)])
                color = PALETTE[gi % len(PALETTE)]
                if (g, t) in null and null[(g, t)].size:
                    sims = np.sort(null[(g, t)], axis=1)
                    ecdfs = np.stack([np.searchsorted(s, r, side="right") / s.size for s in sims])
                    ax.fill_between(r, np.quantile(ecdfs, lo_q, axis=0), np.quantile(ecdfs, hi_q, axis=0),
                                    color=color, alpha=0.2, linewidth=0, gid=f"null_{g}_{t:g}")
                ax.plot(r, np.searchsorted(d, r, side="right") / max(d.size, 1), color=color,
                        gid=f"ecdf_{g}_{t:g}", label=f"{g} (n={d.size})")
            ax.set_title(f"{t:g} h")
            ax.set_xlim(0, r_max_um)
            ax.set_ylim(0, 1)
            _style_axes(ax)
            ax.legend(frameon=False, loc="lower right", fontsize=6)
        axs[0].set_ylabel("Fraction of MSCs (ECDF)")
        fig.supxlabel("MSC centre to nearest macrophage centre (µm); band: macrophages placed at random in the tissue",
                      fontsize=7)
    return fig


__all__ += ["distance_envelope_figure"]


# --- time-lapse (lungtrack.track) ---------------------------------------------------------------------

def kaplan_meier_figure(survival: dict, *, confidence: float = 0.95, time_unit: str = "h"):
    """Kaplan-Meier curves of MSC intactness with confidence bands and censor marks, one per group.

    Parameters
    ----------
    survival : dict
        Group name -> `lungtrack.track.survival_table` (``duration_min``, ``event``).
    confidence : float
        Level of the log(-log) band (`lungtrack.track.kaplan_meier`).
    time_unit : {"h", "min"}

    Returns
    -------
    matplotlib.figure.Figure
        One step curve, band and censor marks ("|", at right-censored times) per group;
        the legend gives n and the median survival.

    Examples
    --------
    >>> import pandas as pd
    >>> st = pd.DataFrame({"duration_min": [60.0, 120, 180, 240], "event": [True, True, False, False]})
    >>> fig = kaplan_meier_figure({"BM": st, "UC": st.assign(event=[True, False, False, False])})
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['BM (n = 4, median 2 h)', 'UC (n = 4, median not reached)']
    """
    from .track import kaplan_meier, median_survival

    scale = 60.0 if time_unit == "h" else 1.0
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=figure_size("single"), layout="constrained")
        ax = fig.subplots()
        for i, (name, st) in enumerate(survival.items()):
            km = kaplan_meier(st["duration_min"], st["event"], confidence=confidence)
            color = PALETTE[i % len(PALETTE)]
            t = km["time"] / scale
            med = median_survival(km)["median"]
            label = (f"{name} (n = {len(st)}, median {med / scale:.3g} {time_unit})" if np.isfinite(med)
                     else f"{name} (n = {len(st)}, median not reached)")
            ax.step(t, km["survival"], where="post", color=color, label=label, gid=f"km_{name}")
            ax.fill_between(t, km["ci_low"], km["ci_high"], step="post", color=color, alpha=0.2, lw=0,
                            gid=f"km_band_{name}")
            cens = km[km["n_censored"] > 0]
            ax.plot(cens["time"] / scale, cens["survival"], "|", color=color, ms=8, mew=1.2, gid=f"km_censored_{name}")
        ax.set_xlabel(f"Time from first frame ({time_unit})")
        ax.set_ylabel("MSCs intact (Kaplan-Meier)")
        ax.set_ylim(0, 1.05)
        ax.set_xlim(left=0)
        _style_axes(ax)
        ax.legend(frameon=False, loc="best")
    return fig


def contact_raster_figure(summary, contacts, *, n_frames: int, frame_interval_min: float):
    """One row per MSC track: intact period, macrophage contacts, engulfment and loss.

    Parameters
    ----------
    summary, contacts : DataFrame
        `lungtrack.track.track_summary` and `lungtrack.track.contact_events`.
    n_frames : int
    frame_interval_min : float

    Returns
    -------
    matplotlib.figure.Figure
        Grey bar: frames the MSC is intact; orange: contact (labelled with the
        macrophage track id); x: engulfment seen; black tick: loss of intactness.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"track_id": [1], "role": ["msc"], "start_frame": [0], "end_frame": [4],
    ...                   "right_censored": [False]})
    >>> c = pd.DataFrame({"msc_track_id": [1], "macrophage_track_id": [7], "onset_frame": [2], "duration_min": [20.0],
    ...                   "engulfment": [True], "engulfment_min": [50.0]})
    >>> [t.get_text() for t in contact_raster_figure(s, c, n_frames=8, frame_interval_min=10).axes[0].get_yticklabels()]
    ['MSC 1']
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    m = summary[summary["role"] == "msc"].sort_values("track_id")
    dt = float(frame_interval_min)
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(figure_size("single")[0], 0.22 * max(len(m), 3) + 0.9), layout="constrained")
        ax = fig.subplots()
        for y, r in enumerate(m.itertuples()):
            ax.broken_barh([(r.start_frame * dt, (r.end_frame - r.start_frame + 1) * dt)], (y - 0.3, 0.6), color="0.82")
            for c in contacts[contacts["msc_track_id"] == r.track_id].itertuples():
                ax.broken_barh([(c.onset_frame * dt, c.duration_min)], (y - 0.3, 0.6), color=PALETTE[4])
                ax.text(c.onset_frame * dt + c.duration_min / 2, y, f"{c.macrophage_track_id}", ha="center",
                        va="center", fontsize=6)
                if c.engulfment:
                    ax.plot(c.engulfment_min, y, "x", color=PALETTE[1], ms=6, mew=1.5)
            if not r.right_censored:
                ax.plot((r.end_frame + 1) * dt, y, "|", color="k", ms=9, mew=1.5)
        ax.set_yticks(range(len(m)), [f"MSC {t}" for t in m["track_id"]])
        ax.set_xlim(0, n_frames * dt)
        ax.set_ylim(-0.6, max(len(m), 1) - 0.4)
        ax.set_xlabel("Time from first frame (min)")
        _style_axes(ax)
        handles = [Patch(color="0.82", label="intact"), Patch(color=PALETTE[4], label="contact (macrophage id)"),
                   Line2D([], [], ls="", marker="x", color=PALETTE[1], label="engulfment"),
                   Line2D([], [], ls="", marker="|", color="k", ms=9, label="lost")]
        ax.legend(handles=handles, frameon=False, loc="upper center", bbox_to_anchor=(0.5, 1.0), ncol=4,
                  fontsize=6, borderaxespad=-1.5)
    return fig


__all__ += ["kaplan_meier_figure", "contact_raster_figure"]
