"""Paper-style matplotlib figures; every function returns a `matplotlib.figure.Figure`.

Figures are built on `matplotlib.figure.Figure` directly, never through
``pyplot``: nothing is shown, no global figure state is touched, and the code
runs headless (in the pipeline, in Dask workers, in tests).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import matplotlib as mpl
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple

__all__ = ["persistence_figure", "save_figure", "PALETTE"]

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


def persistence_figure(persistence, fit, animals=None, *, log_scale=False, value="msc_per_mm2"):
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


def save_figure(fig, path_stem):
    """Write `fig` as ``path_stem.png`` (200 dpi), ``.svg`` and ``.pdf``.

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
    ``figsize * 200`` pixels. SVG and PDF carry no creation date and SVG ids
    use a fixed salt, so saving the same figure again gives identical files.
    Text is kept as text (SVG) and TrueType (PDF), editable in vector editors.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with mpl.rc_context(_SAVE_STYLE):
        for ext, kwargs in ((".png", {"dpi": 200}), (".svg", {"metadata": {"Date": None}}),
                            (".pdf", {"metadata": {"CreationDate": None}})):
            path = stem.parent / (stem.name + ext)
            fig.savefig(path, format=ext[1:], **kwargs)
            paths.append(path)
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
