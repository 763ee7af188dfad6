"""Persistence of infused MSCs: per-animal density, time course, half-lives, group comparisons.

The animal is the experimental unit. Sections (images) of one animal are pooled
into one value; time courses, fractions remaining, decay fits and group
comparisons are computed over animals, never over images or fields.

All functions take a per-image ``samples`` table (``samples.csv`` of a results
folder) and return new DataFrames; the input is never modified. Any manifest
column (``group``, dose, anticoagulant, cell source...) can be the grouping
factor (``by=``); several columns are combined into one ``group`` label.

References
----------
Bates DM, Watts DG (1988). Nonlinear Regression Analysis and Its Applications.
Wiley (weighted nonlinear least squares, t-based intervals).
McCullagh P, Nelder JA (1989). Generalized Linear Models, 2nd ed. Chapman & Hall
(quasi-likelihood, Pearson dispersion, variance mu + alpha mu^2).
Fieller EC (1954). Some problems in interval estimation. J R Stat Soc B 16:175-185.
Burnham KP, Anderson DR (2002). Model Selection and Multimodel Inference. Springer (AICc).
Davison AC, Hinkley DV (1997). Bootstrap Methods and their Application. Cambridge
(stratified resampling, rescaled residuals).
Holm S (1979). A simple sequentially rejective multiple test procedure. Scand J Stat 6:65-70.
"""
from __future__ import annotations

import logging
import math
import warnings
import zlib

import numpy as np
import pandas as pd
from scipy import optimize, stats

__all__ = [
    "animal_table", "time_course", "persistence_table", "fit_decay", "decay_residuals", "compare_half_lives",
    "compare_time_points", "msc_neighbourhood", "recruitment_table",
    "PERSISTENCE_COLUMNS", "FIT_COLUMNS", "RESIDUAL_COLUMNS", "COMPARE_COLUMNS", "TEST_COLUMNS",
    "RECRUITMENT_COLUMNS",
]

logger = logging.getLogger(__name__)

#: Columns of `persistence_table` (``persistence.csv``), in order (grouping columns other
#: than ``group`` follow when ``by`` names them).
PERSISTENCE_COLUMNS = (
    "group", "time_h", "n_animals", "msc_per_mm2_mean", "msc_per_mm2_sem",
    "fraction_remaining", "ci_low", "ci_high",
)
#: Columns of `fit_decay` (``persistence_fit.csv``), in order.
FIT_COLUMNS = (
    "group", "model", "half_life_h", "ci_low_h", "ci_high_h", "n0_per_mm2", "r2",
    "n_animals", "n_timepoints", "n_zero_excluded",
    "k_per_h", "se_k_per_h", "se_log_n0", "cov_log_n0_k", "df", "dispersion", "aicc", "selected",
    "half_life_fast_h", "half_life_slow_h", "fraction_fast", "ci_method", "note",
)
#: Columns of `decay_residuals`.
RESIDUAL_COLUMNS = ("group", "model", "time_h", "animal", "msc_per_mm2", "fitted_per_mm2", "residual_per_mm2",
                    "pearson_residual")
#: Columns of `compare_half_lives`.
COMPARE_COLUMNS = ("group_a", "group_b", "half_life_a_h", "half_life_b_h", "difference_h", "ci_low_h",
                   "ci_high_h", "p_value", "n_boot", "method")
#: Columns of `compare_time_points`.
TEST_COLUMNS = ("measure", "time_h", "groups", "n_animals", "test", "statistic", "p_value", "p_adjusted",
                "correction", "note")
#: Columns of `recruitment_table`.
RECRUITMENT_COLUMNS = ("measure", "group", "time_h", "n_animals", "mean", "sem", "ci_low", "ci_high")

_LN2 = math.log(2.0)
#: Density columns recomputed from pooled counts and tissue sizes: value -> (count column, size column).
#: Per mm3 (z-stacks) pools over the summed tissue volume as per mm2 pools over the summed area.
_COUNTS = {"msc_per_mm2": ("n_msc", "tissue_area_mm2"), "macrophage_per_mm2": ("n_macrophage", "tissue_area_mm2"),
           "msc_per_mm3": ("n_msc", "tissue_volume_mm3"), "macrophage_per_mm3": ("n_macrophage", "tissue_volume_mm3")}
#: Fractions pooled over sections weighted by the number of objects they are a fraction of.
_WEIGHTS = {"frac_msc_contacting_macrophage": "n_msc", "frac_macrophage_containing_msc": "n_macrophage",
            "engulfment_index": "n_msc", "frac_msc_engulfed": "n_msc"}


# --------------------------------------------------------------------------- helpers
def _check_columns(samples, needed, name="samples"):
    if not isinstance(samples, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(samples).__name__}")
    missing = [c for c in needed if c not in samples.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it has {list(samples.columns)}")


def _check_bootstrap(bootstrap, confidence):
    if int(bootstrap) != bootstrap or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative integer, got {bootstrap!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")


def _by(by):
    by = (by,) if isinstance(by, str) else tuple(by)
    if not by:
        raise ValueError("by must name at least one grouping column (e.g. 'group')")
    return by


def _group_rng(seed, group, stream):
    """A Generator for one group and one use: the same for a group whatever other groups exist."""
    key = zlib.crc32(str(group).encode("utf-8"))
    return np.random.default_rng([int(seed) % 2**64, key, stream])


def _sem(v):
    return float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan


def _half_life(k):
    if not np.isfinite(k):
        return math.nan
    return _LN2 / k if k > 0 else math.inf


def _r2(y, fitted):
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - fitted) ** 2)) / ss_tot if ss_tot > 0 else math.nan


def _t_quantile(confidence, df):
    return float(stats.t.ppf(0.5 + confidence / 2, df)) if df > 0 else math.nan


# --------------------------------------------------------------------------- animals
def _pool(samples, value, by):
    """Per-animal values with the keys, ``n_sections`` and the pooled ``tissue_size`` (area in mm2 or volume
    in mm3, the exposure of the counts; NaN if not pooled)."""
    keys = list(dict.fromkeys(by + ("time_h", "animal")))
    count, size = _COUNTS.get(value, (None, None))
    use_counts = count is not None and {count, size} <= set(samples.columns)
    weight = _WEIGHTS.get(value)
    use_weight = (not use_counts) and weight is not None and weight in samples.columns and value in samples.columns
    needed = keys + ([count, size] if use_counts else [value] + ([weight] if use_weight else []))
    _check_columns(samples, needed)
    df = samples.loc[:, needed].copy()
    n_na_keys = int(df[keys].isna().any(axis=1).sum())
    if n_na_keys:
        logger.warning("animal_table: %d section(s) with a missing %s are left out", n_na_keys, keys)
        df = df.dropna(subset=keys)
    if use_counts:
        n = pd.to_numeric(df[count], errors="coerce").astype(float)
        area = pd.to_numeric(df[size], errors="coerce").astype(float)  # NaN volume for a 2D image: left out
        ok = np.isfinite(n) & np.isfinite(area)
        df = df.assign(_n=n.where(ok), _a=area.where(ok), _ok=ok)
        out = df.groupby(keys, sort=True).agg(_n=("_n", "sum"), _a=("_a", "sum"), n_sections=("_ok", "sum"))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[value] = np.where(out["_a"] > 0, out["_n"] / out["_a"], np.nan)
        out["tissue_size"] = out["_a"].where(out["_a"] > 0)
    else:
        v = pd.to_numeric(df[value], errors="coerce").astype(float)
        ok = np.isfinite(v)
        if use_weight:
            # A fraction of objects: pooled as total objects with the property / total objects.
            w = pd.to_numeric(df[weight], errors="coerce").astype(float)
            ok &= np.isfinite(w) & (w > 0)
            df = df.assign(_vw=(v * w).where(ok), _w=w.where(ok), _ok=ok)
            out = df.groupby(keys, sort=True).agg(_vw=("_vw", "sum"), _w=("_w", "sum"), n_sections=("_ok", "sum"))
            with np.errstate(divide="ignore", invalid="ignore"):
                out[value] = np.where(out["_w"] > 0, out["_vw"] / out["_w"], np.nan)
        else:
            df = df.assign(_v=v.where(ok))
            out = df.groupby(keys, sort=True).agg(**{value: ("_v", "mean"), "n_sections": ("_v", "count")})
        out["tissue_size"] = np.nan
    out = out.reset_index()[keys + [value, "n_sections", "tissue_size"]]
    out["n_sections"] = out["n_sections"].astype(int)
    out[value] = out[value].astype(float)
    out["tissue_size"] = out["tissue_size"].astype(float)
    return out


def animal_table(samples, *, value="msc_per_mm2", by=("group",)):
    """Pool the sections of each animal into one value per animal.

    Parameters
    ----------
    samples : pandas.DataFrame
        Per-image table with columns ``animal``, ``time_h``, the columns in `by`
        and `value`; for densities also the count (``n_msc``, ``n_macrophage``)
        and ``tissue_area_mm2`` (``tissue_volume_mm3`` for per-mm3 densities).
        Other columns are ignored.
    value : str, optional
        Column to pool. ``"msc_per_mm2"`` and ``"macrophage_per_mm2"`` are
        recomputed from pooled counts and areas when those columns are present,
        ``"msc_per_mm3"`` and ``"macrophage_per_mm3"`` (z-stacks) from pooled
        counts and tissue volumes (images without a volume, 2D sections, are
        left out of a per-mm3 value);
        fractions of objects (``frac_msc_contacting_macrophage``,
        ``frac_macrophage_containing_msc``, ``engulfment_index``) are averaged
        weighted by the number of objects (``n_msc`` / ``n_macrophage``);
        anything else is the mean over sections.
    by : str or tuple of str, optional
        Grouping columns besides ``time_h`` and ``animal``.

    Returns
    -------
    pandas.DataFrame
        One row per (`by`..., ``time_h``, ``animal``), sorted by them, with
        columns `by`..., ``time_h``, ``animal``, `value` and ``n_sections``
        (sections that entered the value). An animal without any usable
        section, or with zero total area, gets NaN.

    Notes
    -----
    Density of animal *a* with sections *s*:
    ``msc_per_mm2_a = sum_s n_msc_s / sum_s tissue_area_mm2_s``, i.e. sections
    are weighted by their area, not averaged as ratios; per mm3 likewise with
    ``tissue_volume_mm3``.

    Examples
    --------
    >>> samples = pd.DataFrame({"animal": ["m1", "m1"], "group": "BM", "time_h": 2.0,
    ...                         "n_msc": [10, 90], "tissue_area_mm2": [0.5, 1.5],
    ...                         "msc_per_mm2": [20.0, 60.0]})
    >>> animal_table(samples)
      group  time_h animal  msc_per_mm2  n_sections
    0    BM     2.0     m1         50.0           2
    """
    return _pool(samples, value, _by(by)).drop(columns="tissue_size")


def _labelled(samples, value, by):
    """Animal values with a ``group`` label (the `by` values joined by ' / ') and the extra factor columns."""
    by = _by(by)
    animals = _pool(samples, value, by)
    extra = [c for c in by if c != "group"]
    if by != ("group",):
        label = animals[list(by)].astype(str).agg(" / ".join, axis=1) if len(animals) else pd.Series(dtype=object)
        animals = animals.assign(group=label)
    return animals, extra


def _series(animals, value):
    """Yield (group, times, [animal values per time], [areas per time]) with finite values only, sorted."""
    for group, gdf in animals.groupby("group", sort=True):
        gdf = gdf[np.isfinite(gdf[value].to_numpy(dtype=float))]
        times, vals, areas = [], [], []
        for t, tdf in gdf.groupby("time_h", sort=True):
            times.append(float(t))
            vals.append(tdf[value].to_numpy(dtype=float))
            areas.append(tdf["tissue_size"].to_numpy(dtype=float))
        yield group, np.asarray(times), vals, areas


# --------------------------------------------------------------------------- time course
def time_course(samples, *, value="msc_per_mm2", by=("group",), confidence=0.95):
    """Mean of animal values per group and time point, with SEM and a t-based CI.

    Parameters
    ----------
    samples : pandas.DataFrame
        Per-image table; see `animal_table` for how sections are pooled.
    value : str, optional
        Column to summarise (``msc_per_mm2``, ``macrophage_per_mm2``,
        ``msc_per_mm3`` / ``macrophage_per_mm3`` for z-stacks,
        ``frac_msc_contacting_macrophage``...).
    by : str or tuple of str, optional
        Grouping columns; several are joined into the ``group`` label
        (``"BM / 10"``) and also kept as columns.
    confidence : float, optional
        Level of the CI of the mean.

    Returns
    -------
    pandas.DataFrame
        ``group, time_h, n_animals, <value>_mean, <value>_sem, ci_low, ci_high``
        then the grouping columns other than ``group``. ``ci_low/ci_high`` is
        ``mean -/+ t_{n-1} SEM`` (NaN for one animal).

    Examples
    --------
    >>> s = pd.DataFrame({"animal": ["a", "b", "c"], "group": "BM", "time_h": 2.0,
    ...                   "macrophage_per_mm2": [10.0, 20.0, 30.0]})
    >>> tc = time_course(s, value="macrophage_per_mm2")
    >>> tc[["n_animals", "macrophage_per_mm2_mean", "macrophage_per_mm2_sem", "ci_low", "ci_high"]].round(3)
       n_animals  macrophage_per_mm2_mean  macrophage_per_mm2_sem  ci_low  ci_high
    0          3                     20.0                   5.774  -4.841   44.841
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    animals, extra = _labelled(samples, value, by)
    cols = ["group", "time_h", "n_animals", f"{value}_mean", f"{value}_sem", "ci_low", "ci_high"] + extra
    rows = []
    for (group, t), g in animals.groupby(["group", "time_h"], sort=True):
        v = g[value].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        m, se = float(v.mean()), _sem(v)
        q = _t_quantile(confidence, v.size - 1)
        rows.append([group, float(t), v.size, m, se, m - q * se, m + q * se] + [g[c].iloc[0] for c in extra])
    out = pd.DataFrame(rows, columns=cols)
    return out.astype({"time_h": float, "n_animals": int, f"{value}_mean": float, f"{value}_sem": float,
                       "ci_low": float, "ci_high": float})


def fieller_ratio_ci(mean_a, sem_a, n_a, mean_b, sem_b, n_b, confidence=0.95):
    """CI of the ratio of two independent means ``mean_a / mean_b`` (Fieller 1954).

    Uses a t quantile with Welch-Satterthwaite degrees of freedom. Returns
    ``(low, high)``; ``(nan, nan)`` when a SEM is undefined (one animal), and
    ``(low, inf)`` when ``mean_b`` is not significantly above 0 (the ratio is then
    unbounded).

    Examples
    --------
    >>> [round(x, 4) for x in fieller_ratio_ci(50.0, 5.0, 3, 100.0, 10.0, 3)]
    [0.3332, 0.7503]
    """
    if n_a < 2 or n_b < 2 or not (np.isfinite(sem_a) and np.isfinite(sem_b)) or mean_b <= 0:
        return math.nan, math.nan
    rho = mean_a / mean_b
    va, vb = sem_a ** 2, sem_b ** 2
    v = va + rho ** 2 * vb
    if v == 0:
        return rho, rho
    df = v ** 2 / (va ** 2 / (n_a - 1) + rho ** 4 * vb ** 2 / (n_b - 1))
    q = _t_quantile(confidence, df)
    g = q ** 2 * vb / mean_b ** 2
    if g >= 1:
        return 0.0 if mean_a >= 0 else -math.inf, math.inf
    half = (q / mean_b) * math.sqrt(va * (1 - g) + rho ** 2 * vb)
    return (rho - half) / (1 - g), (rho + half) / (1 - g)


def persistence_table(samples, *, value="msc_per_mm2", by=("group",), bootstrap=500, confidence=0.95, seed=0,
                      interval="fieller"):
    """MSC density per group and time point over animals, and fraction remaining with CI.

    Parameters
    ----------
    samples : pandas.DataFrame
        Per-image table with ``animal, time_h, n_msc, tissue_area_mm2`` (or
        ``msc_per_mm2``) and the `by` columns; see `animal_table`.
    value : str, optional
        Density to summarise: ``"msc_per_mm2"`` (``persistence.csv``) or
        ``"msc_per_mm3"`` for z-stacks (``persistence_mm3.csv``: pooled from
        ``n_msc`` and ``tissue_volume_mm3``); the ``_mean``/``_sem`` columns
        carry its name.
    by : str or tuple of str, optional
        Grouping factor(s): any manifest column(s); see `time_course`.
    bootstrap : int, optional
        Resamples for ``interval="bootstrap"``; 0 gives no CI (NaN) with any interval.
    confidence : float, optional
        Confidence level.
    seed : int, optional
        Seed for ``interval="bootstrap"`` (one stream per group).
    interval : {"fieller", "bootstrap"}, optional
        ``"fieller"`` (default): Fieller's interval for a ratio of independent
        means with a Welch t quantile, honest with 3 animals per time point.
        ``"bootstrap"``: percentile bootstrap of animals within time points
        (too narrow with few animals; kept for comparison).

    Returns
    -------
    pandas.DataFrame
        One row per group and time point with at least one animal, sorted by
        group then ``time_h``; columns `PERSISTENCE_COLUMNS` then the grouping
        columns other than ``group``:

        - ``n_animals``: animals with a finite density
        - ``msc_per_mm2_mean``, ``msc_per_mm2_sem`` (``<value>_mean``,
          ``<value>_sem``): mean of the animal densities and its standard
          error (NaN for one animal)
        - ``fraction_remaining``: mean / mean at the group's earliest time point
          (NaN if that mean is 0)
        - ``ci_low``, ``ci_high``: CI of ``fraction_remaining``; ``[1, 1]`` at
          the earliest time; NaN when this time point or the earliest has a
          single animal; ``ci_high = inf`` when the earliest mean is not
          significantly above 0.

    Notes
    -----
    ``mean_t = sum_a d_a / n_t``, ``sem_t = sd(d_a, ddof=1) / sqrt(n_t)``,
    ``fraction_t = mean_t / mean_t0``. Fieller: the limits are the roots in
    rho of ``(mean_t - rho mean_t0)^2 = q^2 (sem_t^2 + rho^2 sem_t0^2)``, q the
    t quantile with Welch-Satterthwaite df. Different animals are sampled at
    each time point (terminal design), so the two means are independent.

    Examples
    --------
    >>> samples = pd.DataFrame({"animal": ["m1", "m2", "m3", "m4"], "group": "BM",
    ...                         "time_h": [2.0, 2.0, 10.0, 10.0], "n_msc": [90, 110, 40, 60],
    ...                         "tissue_area_mm2": 1.0, "msc_per_mm2": [90.0, 110.0, 40.0, 60.0]})
    >>> persistence_table(samples, bootstrap=0)[["time_h", "n_animals", "msc_per_mm2_mean",
    ...                                          "msc_per_mm2_sem", "fraction_remaining"]]
       time_h  n_animals  msc_per_mm2_mean  msc_per_mm2_sem  fraction_remaining
    0     2.0          2             100.0             10.0                 1.0
    1    10.0          2              50.0             10.0                 0.5
    """
    _check_bootstrap(bootstrap, confidence)
    if interval not in ("fieller", "bootstrap"):
        raise ValueError(f"interval must be 'fieller' or 'bootstrap', got {interval!r}")
    animals, extra = _labelled(samples, value, by)
    factors = animals.groupby("group")[extra].first() if extra else None
    rows = []
    for group, times, vals, _ in _series(animals, value):
        if len(times) == 0:
            continue
        means = np.array([v.mean() for v in vals])
        sems = np.array([_sem(v) for v in vals])
        ref = means[0]
        if ref > 0:
            frac = means / ref
        else:
            logger.warning("persistence_table: group %r has mean 0 at its earliest time point %g h; "
                           "fraction_remaining is NaN", group, times[0])
            frac = np.full(len(times), np.nan)
        if bootstrap == 0:
            ci = [(math.nan, math.nan)] * len(times)
        elif interval == "bootstrap":
            ci = _fraction_ci(vals, bootstrap, confidence, _group_rng(seed, group, 0))
        else:
            ci = [fieller_ratio_ci(means[i], sems[i], len(vals[i]), ref, sems[0], len(vals[0]), confidence)
                  for i in range(len(times))]
            if ref > 0 and len(vals[0]) > 1:
                ci[0] = (1.0, 1.0)
        for i, t in enumerate(times):
            row = [group, t, len(vals[i]), means[i], sems[i], frac[i], ci[i][0], ci[i][1]]
            rows.append(row + ([factors.loc[group, c] for c in extra] if extra else []))
    cols = [c.replace("msc_per_mm2", value) for c in PERSISTENCE_COLUMNS]
    out = pd.DataFrame(rows, columns=cols + extra)
    out = out.astype({"time_h": float, "n_animals": int, f"{value}_mean": float, f"{value}_sem": float,
                      "fraction_remaining": float, "ci_low": float, "ci_high": float})
    return out.sort_values(["group", "time_h"], kind="stable").reset_index(drop=True)


def _boot_means(vals, bootstrap, rng):
    """(n_times, bootstrap) means of animals resampled with replacement within each time point."""
    out = np.empty((len(vals), bootstrap))
    for i, v in enumerate(vals):
        idx = rng.integers(0, len(v), size=(bootstrap, len(v)))
        out[i] = v[idx].mean(axis=1)
    return out


def _fraction_ci(vals, bootstrap, confidence, rng):
    nan = (math.nan, math.nan)
    if len(vals[0]) < 2:
        return [nan] * len(vals)
    boot = _boot_means(vals, bootstrap, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(boot[0] > 0, boot / boot[0], np.nan)
    alpha = 1 - confidence
    out = []
    for i, v in enumerate(vals):
        x = frac[i][np.isfinite(frac[i])]
        out.append(tuple(np.percentile(x, [50 * alpha, 100 - 50 * alpha])) if len(v) > 1 and x.size else nan)
    return out


# --------------------------------------------------------------------------- decay fits
def _exp1(t0):
    def f(t, a, k):
        return a * np.exp(-k * (t - t0))
    return f


def _exp2(t0):
    def f(t, a1, k1, a2, k2):
        tau = t - t0
        with np.errstate(over="ignore"):
            return a1 * np.exp(-k1 * tau) + a2 * np.exp(-k2 * tau)
    return f


def _curve_fit(f, t, y, p0, sigma, lower):
    try:
        with warnings.catch_warnings():  # covariance computed here from the converged weights
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            popt, _ = optimize.curve_fit(f, t, y, p0=p0, sigma=sigma, bounds=(lower, np.inf), method="trf",
                                         x_scale="jac", ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=5000)
    except (RuntimeError, ValueError) as exc:
        logger.debug("curve_fit failed: %s", exc)
        return None
    return popt if np.all(np.isfinite(popt)) else None


def _variance(mu, area, alpha):
    """Variance model of an animal density: Poisson counts + multiplicative animal effect (or constant CV)."""
    return (mu / area + alpha * mu ** 2) if area is not None else mu ** 2


def _one_phase(t, y, area):
    """Quasi-likelihood fit of a exp(-k (t - t0)) with variance mu/area + alpha mu^2 (IRLS); None if not possible."""
    t0 = float(t.min())
    f = _exp1(t0)
    tm = np.unique(t)
    means = np.array([y[t == x].mean() for x in tm])
    pos = means > 0
    if np.count_nonzero(pos) < 2:
        return None
    slope, icpt = np.polyfit(tm[pos] - t0, np.log(means[pos]), 1)
    p = np.array([math.exp(icpt), -slope])
    alpha, n = 0.0, len(y)
    settled = False
    for _ in range(200):
        mu = f(t, *p)
        sigma = np.sqrt(np.maximum(_variance(mu, area, alpha), 1e-300))
        new = _curve_fit(f, t, y, p, sigma, [0.0, -np.inf])
        if new is None:
            return None
        mu = f(t, *new)
        new_alpha = alpha
        if area is not None and n > 2:
            with np.errstate(divide="ignore", invalid="ignore"):
                new_alpha = max(0.0, float(np.nansum(((y - mu) ** 2 - mu / area) / mu ** 2)) / (n - 2))
        done = np.allclose(new, p, rtol=1e-10, atol=0) and abs(new_alpha - alpha) <= 1e-10 * max(alpha, 1e-12)
        p, alpha = new, new_alpha
        if done:
            settled = True
            break
    a, k = (float(x) for x in p)
    mu = f(t, a, k)
    var = _variance(mu, area, alpha)
    df = n - 2
    with np.errstate(divide="ignore", invalid="ignore"):
        pearson = float(np.sum((y - mu) ** 2 / var)) / df if df > 0 else math.nan
    scale = max(pearson, 1.0) if area is not None else pearson  # never less than Poisson counting noise
    e = np.exp(-k * (t - t0))
    jac = np.column_stack([e, -a * (t - t0) * e])
    with np.errstate(divide="ignore", invalid="ignore"):
        try:
            cov = scale * np.linalg.inv(jac.T @ (jac / var[:, None]))
        except np.linalg.LinAlgError:
            cov = np.full((2, 2), np.nan)
    return {"a": a, "k": k, "t0": t0, "mu": mu, "var": var, "scale": scale, "cov": cov, "df": df, "f": f,
            "counts": area is not None, "settled": settled}


def _two_phase(t, y, var, one):
    """Weighted least squares (fixed weights 1/var) of a two-phase decay; None if not possible."""
    f = _exp2(one["t0"])
    best = None
    a, k = one["a"], max(one["k"], 1e-6)
    for frac, fast, slow in ((0.5, 3.0, 1 / 3), (0.8, 2.0, 0.2), (0.3, 10.0, 0.5)):
        p = _curve_fit(f, t, y, [a * frac, k * fast, a * (1 - frac), k * slow], np.sqrt(var), [0.0] * 4)
        if p is None:
            continue
        wssr = float(np.sum((y - f(t, *p)) ** 2 / var))
        if best is None or wssr < best[1]:
            best = (p, wssr)
    if best is None:
        return None
    a1, k1, a2, k2 = best[0]
    if k1 < k2:  # phase 1 is the fast one
        a1, k1, a2, k2 = a2, k2, a1, k1
    return {"p": (a1, k1, a2, k2), "wssr": best[1], "f": f}


def _aicc(wssr, n, n_params):
    big_k = n_params + 1  # + the residual variance
    if n - big_k - 1 <= 0 or wssr <= 0:
        return math.nan
    return n * math.log(wssr / n) + 2 * big_k + 2 * big_k * (big_k + 1) / (n - big_k - 1)


def _ci_from_k(k, se, df, confidence):
    q = _t_quantile(confidence, df)
    if not (np.isfinite(se) and np.isfinite(q)):
        return math.nan, math.nan
    return _half_life(k + q * se), _half_life(k - q * se)


def _group_arrays(gdf, value):
    gdf = gdf[np.isfinite(gdf[value].to_numpy(dtype=float))].sort_values(["time_h", "animal"])
    t = gdf["time_h"].to_numpy(dtype=float)
    y = gdf[value].to_numpy(dtype=float)
    area = gdf["tissue_size"].to_numpy(dtype=float)
    area = area if (area.size and np.all(np.isfinite(area) & (area > 0))) else None
    return t, y, area, gdf["animal"].to_numpy()


def _fit_group(group, t, y, area, animals, confidence):
    """Fit rows (dicts) and residual rows of one group."""
    n_times = len(np.unique(t))
    base = dict(group=group, n_animals=len(y), n_timepoints=n_times, n_zero_excluded=0, selected=False,
                half_life_fast_h=math.nan, half_life_slow_h=math.nan, fraction_fast=math.nan, note="")
    nan_fit = dict(half_life_h=math.nan, ci_low_h=math.nan, ci_high_h=math.nan, n0_per_mm2=math.nan, r2=math.nan,
                   k_per_h=math.nan, se_k_per_h=math.nan, se_log_n0=math.nan, cov_log_n0_k=math.nan,
                   df=0, dispersion=math.nan, aicc=math.nan)
    rows, resid = [], []
    ci_method = f"t, animals as units ({'Poisson + animal variance' if area is not None else 'constant CV'})"
    one = _one_phase(t, y, area) if n_times >= 2 else None
    if one is None:
        note = (f"{n_times} time point(s)" if n_times < 2 else
                "fewer than 2 time points with mean density > 0 (decay faster than the sampling resolves)"
                if np.count_nonzero([y[t == x].mean() > 0 for x in np.unique(t)]) < 2 else "fit did not converge")
        logger.warning("fit_decay: group %r: exponential fit not possible (%s); half-life is NaN", group, note)
        rows.append({**base, **nan_fit, "model": "exponential", "ci_method": ci_method, "note": note})
    else:
        a, k, t0, cov = one["a"], one["k"], one["t0"], one["cov"]
        var_la, var_k, cov_lak = cov[0, 0] / a ** 2, cov[1, 1], cov[0, 1] / a
        se_k = math.sqrt(var_k) if var_k >= 0 else math.nan
        lo, hi = _ci_from_k(k, se_k, one["df"], confidence)
        wssr = float(np.sum((y - one["mu"]) ** 2 / one["var"]))
        note = "" if one["df"] > 0 else "no residual degrees of freedom: no CI"
        if not one["settled"]:
            # seen with all-zero late time points: the moment estimate of alpha cycles between values
            logger.warning("fit_decay: group %r: the weights of the exponential fit did not settle in 200 "
                           "iterations; the half-life is the last iterate (see the note column)", group)
            note = "; ".join(x for x in (note, "weights did not settle in 200 iterations: half-life is the "
                                         "last iterate, compare with log_linear") if x)
        rows.append({**base, "model": "exponential", "half_life_h": _half_life(k), "ci_low_h": lo, "ci_high_h": hi,
                     "n0_per_mm2": a * math.exp(k * t0), "r2": _r2(y, one["mu"]), "k_per_h": k, "se_k_per_h": se_k,
                     "se_log_n0": math.sqrt(max(var_la + t0 ** 2 * var_k + 2 * t0 * cov_lak, 0.0)),
                     "cov_log_n0_k": cov_lak + t0 * var_k, "df": one["df"], "dispersion": one["scale"],
                     "aicc": _aicc(wssr, len(y), 2), "ci_method": ci_method, "note": note})
        with np.errstate(divide="ignore", invalid="ignore"):
            pr = (y - one["mu"]) / np.sqrt(one["scale"] * one["var"])
        resid += [(group, "exponential", *r) for r in zip(t, animals, y, one["mu"], y - one["mu"], pr)]
    # two-phase, only where the data can support four parameters
    if one is not None and n_times >= 5 and len(y) >= 7:
        two = _two_phase(t, y, one["var"], one)
    else:
        two = None
    if two is None:
        note = "needs >= 5 time points and >= 7 animals" if (one is None or n_times < 5 or len(y) < 7) \
            else "fit did not converge"
        rows.append({**base, **nan_fit, "model": "two_phase", "ci_method": "", "note": note})
    else:
        a1, k1, a2, k2 = two["p"]
        f2 = two["f"]
        mu2 = f2(t, *two["p"])
        n0 = float(f2(np.array([0.0]), *two["p"])[0])
        eff = _effective_half_life(lambda x: float(f2(np.array([x]), *two["p"])[0]), n0)
        rows.append({**base, **nan_fit, "model": "two_phase", "half_life_h": eff, "n0_per_mm2": n0,
                     "r2": _r2(y, mu2), "df": len(y) - 4, "aicc": _aicc(two["wssr"], len(y), 4),
                     "half_life_fast_h": _half_life(k1), "half_life_slow_h": _half_life(k2),
                     "fraction_fast": a1 / (a1 + a2) if a1 + a2 > 0 else math.nan,
                     "ci_method": "", "note": "effective half-life (time to half of N(0)); no CI"})
        with np.errstate(divide="ignore", invalid="ignore"):
            pr = (y - mu2) / np.sqrt(one["scale"] * one["var"])
        resid += [(group, "two_phase", *r) for r in zip(t, animals, y, mu2, y - mu2, pr)]
    fitted = [r for r in rows if np.isfinite(r["aicc"])]
    if fitted:
        min(fitted, key=lambda r: r["aicc"])["selected"] = True
    elif rows[0]["model"] == "exponential" and np.isfinite(rows[0]["half_life_h"]):
        rows[0]["selected"] = True
    # log-linear: OLS of ln density on time over animals with density > 0
    pos = y > 0
    xs, ly = t[pos], np.log(y[pos])
    n_pos_times = len(np.unique(xs))
    ll = {**base, "model": "log_linear", "n_animals": int(pos.sum()), "n_timepoints": n_pos_times,
          "n_zero_excluded": int((~pos).sum()), "ci_method": "t, animals as units (log scale)"}
    if n_pos_times < 2:
        logger.warning("fit_decay: group %r has %d time point(s) with density > 0; the log-linear half-life "
                       "is NaN", group, n_pos_times)
        rows.append({**nan_fit, **ll, "note": "fewer than 2 time points with density > 0"})
    else:
        xm = xs.mean()
        sxx = float(np.sum((xs - xm) ** 2))
        slope = float(np.sum((xs - xm) * (ly - ly.mean())) / sxx)
        icpt = float(ly.mean() - slope * xm)
        df = xs.size - 2
        s2 = float(np.sum((ly - icpt - slope * xs) ** 2)) / df if df > 0 else math.nan
        se_k = math.sqrt(s2 / sxx) if df > 0 else math.nan
        lo, hi = _ci_from_k(-slope, se_k, df, confidence)
        rows.append({**nan_fit, **ll, "half_life_h": _half_life(-slope), "ci_low_h": lo, "ci_high_h": hi,
                     "n0_per_mm2": math.exp(icpt), "r2": _r2(ly, icpt + slope * xs), "k_per_h": -slope,
                     "se_k_per_h": se_k, "se_log_n0": math.sqrt(s2 * (1 / xs.size + xm ** 2 / sxx)) if df > 0
                     else math.nan, "cov_log_n0_k": s2 * xm / sxx if df > 0 else math.nan, "df": df,
                     "dispersion": s2, "note": "" if df > 0 else "no residual degrees of freedom: no CI"})
        fit_ll = np.exp(icpt + slope * xs)
        lr = ly - icpt - slope * xs
        resid += [(group, "log_linear", *r) for r in zip(xs, animals[pos], y[pos], fit_ll, y[pos] - fit_ll,
                                                          lr / math.sqrt(s2) if df > 0 and s2 > 0 else lr * np.nan)]
    return rows, resid, one


def _effective_half_life(f, n0):
    if not (np.isfinite(n0) and n0 > 0):
        return math.nan
    target = n0 / 2
    hi = 1.0
    while f(hi) > target:
        hi *= 2
        if hi > 1e7:
            return math.inf
    return float(optimize.brentq(lambda x: f(x) - target, 0.0, hi, xtol=1e-10))


def _fits(samples, by, confidence):
    animals, extra = _labelled(samples, "msc_per_mm2", by)
    rows, resid, groups = [], [], {}
    for group, gdf in animals.groupby("group", sort=True):
        t, y, area, names = _group_arrays(gdf, "msc_per_mm2")
        r, res, one = _fit_group(group, t, y, area, names, confidence)
        for row in r:
            row.update({c: gdf[c].iloc[0] for c in extra})
        rows += r
        resid += res
        groups[group] = (t, y, one)
    return rows, resid, groups, extra


def fit_decay(samples, *, by=("group",), bootstrap=500, confidence=0.95, seed=0):
    """Fit decay models per group; half-lives with confidence intervals; model choice by AICc.

    Three models per group, one row each (``exponential``, ``two_phase``,
    ``log_linear``):

    - ``"exponential"`` (one-phase): ``N(t) = N0 exp(-k t)`` fitted to the
      animal densities by weighted nonlinear least squares
      (`scipy.optimize.curve_fit`) with weights ``1 / V(mu)`` from a variance
      model refitted until it settles (iteratively reweighted, a
      quasi-likelihood fit): ``V = mu / area + alpha mu^2`` (Poisson counting
      noise in the animal's tissue area plus a multiplicative animal effect,
      ``alpha`` by moments) when counts and areas are known, else
      ``V ~ mu^2`` (constant coefficient of variation).
    - ``"two_phase"``: ``A1 exp(-k1 t) + A2 exp(-k2 t)`` with the same weights,
      fitted only with >= 5 time points and >= 7 animals. ``half_life_h`` is
      the effective half-life (time for the curve to fall to half of
      ``N(0)``), with the fast and slow half-lives and the fast fraction.
    - ``"log_linear"``: ordinary least squares of ``ln(d_a)`` on ``t_a`` over
      animals with ``d_a > 0`` (zeros excluded, counted in ``n_zero_excluded``).

    The ``selected`` column marks the model with the smallest AICc among
    ``exponential`` and ``two_phase`` (same data, same weights); the
    log-linear fit is on another scale and is not compared by AICc.

    Parameters
    ----------
    samples : pandas.DataFrame
        Per-image table; see `animal_table`.
    by : str or tuple of str, optional
        Grouping factor(s); see `time_course`.
    bootstrap : int, optional
        0 gives no CI (NaN); otherwise unused here (the CI is t-based, see
        Notes; a percentile bootstrap of animals is too narrow with 3 animals
        per time point).
    confidence : float, optional
        Confidence level of the intervals.
    seed : int, optional
        Unused (kept for a uniform signature with `compare_half_lives`).

    Returns
    -------
    pandas.DataFrame
        Three rows per group, sorted by group, columns `FIT_COLUMNS` then the
        grouping columns other than ``group``:

        - ``half_life_h``: ``ln 2 / k``; ``inf`` when ``k <= 0``; NaN when
          the model cannot be fitted (reason in ``note``)
        - ``ci_low_h``, ``ci_high_h``: CI of the half-life (``ci_high_h`` is
          ``inf`` when the CI of ``k`` reaches 0); NaN without residual
          degrees of freedom, for ``two_phase``, or with ``bootstrap == 0``
        - ``n0_per_mm2``: density extrapolated to ``t = 0`` (log-linear:
          ``exp(intercept)``, a geometric-mean scale)
        - ``r2``: ``1 - SSres / SStot`` over the animals (log densities for
          ``log_linear``)
        - ``n_animals``, ``n_timepoints``, ``n_zero_excluded``
        - ``k_per_h``, ``se_k_per_h``, ``se_log_n0``, ``cov_log_n0_k``, ``df``:
          the decay rate, its standard error, and what the figure needs for
          the CI band of the curve: ``var ln N(t) = se_log_n0^2 + t^2 se_k^2
          - 2 t cov_log_n0_k``
        - ``dispersion``: scale of the variance model (Pearson chi2 / df,
          at least 1 with counts); log-linear: residual variance of ln d
        - ``aicc``, ``selected``, ``half_life_fast_h``, ``half_life_slow_h``,
          ``fraction_fast`` (share of the fast phase at the earliest time), ``ci_method``, ``note``

    Notes
    -----
    CI of the one-phase half-life: ``k +/- t_{n-2} se(k)`` with ``n`` the
    number of animals, ``se`` from the weighted Jacobian scaled by the Pearson
    dispersion, mapped through ``ln 2 / k``. The animal-to-animal variance is
    estimated from all animals (pooled across time points through the
    variance model), so the interval stays honest with 3 animals per time
    point, where a percentile bootstrap of animals is too narrow (coverage 58-86 %
    at nominal 95 %; see docs/methods.md and bench/persistence_coverage.py).

    Examples
    --------
    >>> t = [2.0, 2.0, 10.0, 10.0]
    >>> d = [100.0, 100.0, 50.0, 50.0]
    >>> samples = pd.DataFrame({"animal": ["m1", "m2", "m3", "m4"], "group": "BM",
    ...                         "time_h": t, "n_msc": d, "tissue_area_mm2": 1.0, "msc_per_mm2": d})
    >>> fit = fit_decay(samples, bootstrap=0)
    >>> fit[["model", "half_life_h", "n0_per_mm2", "n_timepoints"]].round(6)
             model  half_life_h  n0_per_mm2  n_timepoints
    0  exponential          8.0  118.920712             2
    1    two_phase          NaN         NaN             2
    2   log_linear          8.0  118.920712             2
    """
    _check_bootstrap(bootstrap, confidence)
    rows, _, _, extra = _fits(samples, _by(by), confidence)
    out = pd.DataFrame(rows, columns=list(FIT_COLUMNS) + extra)
    if bootstrap == 0:
        out[["ci_low_h", "ci_high_h"]] = np.nan
    order = {"exponential": 0, "two_phase": 1, "log_linear": 2}
    out = out.assign(_o=out["model"].map(order)).sort_values(["group", "_o"], kind="stable").drop(columns="_o")
    return out.reset_index(drop=True).astype(
        {"half_life_h": float, "ci_low_h": float, "ci_high_h": float, "n0_per_mm2": float, "r2": float,
         "n_animals": int, "n_timepoints": int, "n_zero_excluded": int, "df": int, "selected": bool})


def decay_residuals(samples, *, by=("group",), confidence=0.95):
    """Observed and fitted density of every animal for every fitted model.

    Returns
    -------
    pandas.DataFrame
        `RESIDUAL_COLUMNS`: ``group, model, time_h, animal, msc_per_mm2,
        fitted_per_mm2, residual_per_mm2`` and ``pearson_residual``
        (residual / sqrt(dispersion x V); log-linear: log residual / its SD).

    Examples
    --------
    >>> s = pd.DataFrame({"animal": list("abcdef"), "group": "BM", "time_h": [2.0, 2, 10, 10, 20, 20],
    ...                   "msc_per_mm2": [100.0, 110, 50, 55, 20, 24]})
    >>> r = decay_residuals(s)
    >>> sorted(r["model"].unique()), len(r)
    (['exponential', 'log_linear'], 12)
    """
    _, resid, _, _ = _fits(samples, _by(by), confidence)
    out = pd.DataFrame(resid, columns=list(RESIDUAL_COLUMNS))
    return out.astype({"time_h": float, "msc_per_mm2": float, "fitted_per_mm2": float,
                       "residual_per_mm2": float, "pearson_residual": float})


# --------------------------------------------------------------------------- group comparisons
def _mover(ha, ka, sa, dfa, hb, kb, sb, dfb, confidence):
    """MOVER interval of ``t1/2_a - t1/2_b`` from each group's own t-interval of its half-life."""
    la, ua = _ci_from_k(ka, sa, dfa, confidence)
    lb, ub = _ci_from_k(kb, sb, dfb, confidence)
    d = ha - hb
    with np.errstate(invalid="ignore"):
        lo = d - math.hypot(ha - la, ub - hb)
        hi = d + math.hypot(ua - ha, hb - lb)
    return lo, hi


def _mover_p(ha, ka, sa, dfa, hb, kb, sb, dfb):
    """Two-sided p-value matching the MOVER interval: the largest alpha whose (1 - alpha) interval excludes 0."""
    if ha == hb:
        return 1.0
    lo_a, hi_a = 0.0, 1.0  # alpha: interval at 1 - lo_a contains 0 (or lo_a == 0); at 1 - hi_a it excludes 0
    if not _mover_excludes0(ha, ka, sa, dfa, hb, kb, sb, dfb, 1e-300):
        for _ in range(80):
            mid = 0.5 * (lo_a + hi_a)
            if _mover_excludes0(ha, ka, sa, dfa, hb, kb, sb, dfb, mid):
                hi_a = mid
            else:
                lo_a = mid
        return float(hi_a)
    return 0.0


def _mover_excludes0(ha, ka, sa, dfa, hb, kb, sb, dfb, alpha):
    lo, hi = _mover(ha, ka, sa, dfa, hb, kb, sb, dfb, 1.0 - alpha)
    return bool(lo > 0 or hi < 0)


def compare_half_lives(samples, *, by=("group",), bootstrap=500, confidence=0.95, seed=0):
    """Difference of one-phase half-lives between every pair of groups, with CI and p-value.

    Parameters
    ----------
    samples : pandas.DataFrame
        Per-image table; see `animal_table`.
    by : str or tuple of str, optional
        Grouping factor(s); see `time_course`.
    bootstrap : int, optional
        0 gives no CI and no p-value (NaN), as in `fit_decay`; any other value
        is unused: the interval is analytic (see Notes), nothing is resampled.
    confidence : float, optional
        Level of the CI.
    seed : int, optional
        Unused (kept for a uniform signature with `fit_decay`).

    Returns
    -------
    pandas.DataFrame
        One row per pair (``group_a < group_b``), `COMPARE_COLUMNS`:
        ``half_life_a_h``, ``half_life_b_h``, ``difference_h`` (a - b),
        ``ci_low_h``, ``ci_high_h``, ``p_value`` (two-sided, H0: equal
        half-lives), ``n_boot`` (always 0: no resampling; kept for
        compatibility) and ``method``.

    Notes
    -----
    Each group's one-phase fit (`fit_decay`) gives a t-interval of its
    half-life, ``[l, u] = ln 2 / (k -/+ t_{n-2} se(k))``, with ``se(k)`` from
    the quasi-likelihood fit (Pearson dispersion, never below the Poisson
    floor with counts) and ``n`` the animals of that group. The two intervals
    are combined by the method of variance estimates recovery (MOVER; Zou &
    Donner 2008, Newcombe 1998), which keeps their asymmetry::

        L = d - sqrt((h_a - l_a)^2 + (u_b - h_b)^2)
        U = d + sqrt((u_a - h_a)^2 + (h_b - l_b)^2)

    with ``d = h_a - h_b``; ``U`` (``L``) is infinite when the interval of
    ``k_a`` (``k_b``) reaches 0. The p-value is the matching test: the
    largest ``alpha`` at which the ``1 - alpha`` interval excludes 0 (found by
    bisection). With 3 animals per time point in simulations the 95 %
    interval covered the true difference in 0.92-0.99 of experiments
    and p < 0.05 in 5 % under equal half-lives
    (bench/persistence_coverage.py), where the former percentile bootstrap of
    animals covered only 0.86 when a half-life was poorly sampled. A group
    whose one-phase fit failed, has no residual degrees of freedom, or does
    not decay (``k <= 0``) gives NaN.

    Examples
    --------
    >>> t = np.repeat([2.0, 8.0, 24.0], 3)
    >>> f = np.tile([0.9, 1.0, 1.1], 3)
    >>> s = pd.DataFrame({"animal": [f"{g}{i}" for g in "AB" for i in range(9)], "group": np.repeat(["A", "B"], 9),
    ...                   "time_h": np.tile(t, 2), "msc_per_mm2": np.r_[500 * f * 2 ** (-t / 8), 500 * f * 2 ** (-t / 16)]})
    >>> c = compare_half_lives(s)
    >>> c[["group_a", "group_b", "difference_h"]].round(3).values.tolist(), bool(c["p_value"].iloc[0] < 0.05)
    ([['A', 'B', -8.0]], True)
    """
    _check_bootstrap(bootstrap, confidence)
    _, _, groups, _ = _fits(samples, _by(by), confidence)
    par = {}
    for g, (_t, _y, one) in groups.items():
        if one is None:
            par[g] = (math.nan, math.nan, math.nan, 0)
        else:
            var_k = one["cov"][1, 1]
            par[g] = (_half_life(one["k"]), one["k"], math.sqrt(var_k) if var_k >= 0 else math.nan, one["df"])
    names = sorted(groups, key=str)
    rows = []
    method = ("MOVER (Zou & Donner 2008) from each group's t-interval of its one-phase half-life "
              "(quasi-likelihood SE, df = animals - 2); p from the matching test")
    for i, ga in enumerate(names):
        for gb in names[i + 1:]:
            (ha, ka, sa, dfa), (hb, kb, sb, dfb) = par[ga], par[gb]
            with np.errstate(invalid="ignore"):
                diff = ha - hb
            lo = hi = p = math.nan
            m = method
            usable = all(np.isfinite(x) and x > 0 for x in (ka, kb, sa, sb)) and dfa > 0 and dfb > 0
            if bootstrap > 0 and usable:
                lo, hi = _mover(ha, ka, sa, dfa, hb, kb, sb, dfb, confidence)
                p = _mover_p(ha, ka, sa, dfa, hb, kb, sb, dfb)
            elif bootstrap > 0:
                m = "not computed (a group has no one-phase fit, no residual df, or no decay)"
            elif bootstrap == 0:
                m = "not computed (bootstrap=0)"
            rows.append((ga, gb, ha, hb, diff, float(lo), float(hi), float(p), 0, m))
    return pd.DataFrame(rows, columns=list(COMPARE_COLUMNS)).astype(
        {"half_life_a_h": float, "half_life_b_h": float, "difference_h": float, "ci_low_h": float,
         "ci_high_h": float, "p_value": float, "n_boot": int})


def _holm(p):
    """Holm step-down adjusted p-values (NaN kept); by hand because scipy has only Benjamini-Hochberg."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        m = ok.size
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
        out[order] = adj
    return out


def compare_time_points(samples, *, value="msc_per_mm2", by=("group",), correction="holm"):
    """Compare groups at every time point with animals as units (rank tests), corrected for multiplicity.

    Parameters
    ----------
    samples : pandas.DataFrame
        Per-image table; see `animal_table`.
    value : str, optional
        Measure to compare (animal values as in `animal_table`).
    by : str or tuple of str, optional
        Grouping factor(s).
    correction : {"holm", "bh", "none"}, optional
        Multiple-comparison correction across the time points of this table:
        Holm (family-wise error), Benjamini-Hochberg (false discovery rate,
        `scipy.stats.false_discovery_control`) or none.

    Returns
    -------
    pandas.DataFrame
        One row per time point with >= 2 groups, `TEST_COLUMNS`: ``groups``
        and ``n_animals`` (``";"``-joined, same order), ``test``
        (``mann-whitney`` two-sided, exact for small samples without ties, for
        2 groups; ``kruskal-wallis`` for more), ``statistic``, ``p_value``,
        ``p_adjusted``, ``correction``, ``note``.

    Notes
    -----
    With 3 animals per group the smallest possible two-sided Mann-Whitney p is
    0.1: such a design cannot show a difference at one time point at the 5 %
    level, whatever the effect; the half-life comparison pools all time points.

    Examples
    --------
    >>> s = pd.DataFrame({"animal": list("abcdefgh"), "group": list("AAAABBBB"), "time_h": 2.0,
    ...                   "msc_per_mm2": [1.0, 2, 3, 4, 5, 6, 7, 8]})
    >>> r = compare_time_points(s)
    >>> r[["groups", "test", "statistic", "p_value"]].round(4).values.tolist()
    [['A;B', 'mann-whitney', 0.0, 0.0286]]
    """
    if correction not in ("holm", "bh", "none"):
        raise ValueError(f"correction must be 'holm', 'bh' or 'none', got {correction!r}")
    animals, _ = _labelled(samples, value, by)
    rows = []
    for t, tdf in animals.groupby("time_h", sort=True):
        data = {g: gdf[value].to_numpy(dtype=float) for g, gdf in tdf.groupby("group", sort=True)}
        data = {g: v[np.isfinite(v)] for g, v in data.items()}
        data = {g: v for g, v in data.items() if v.size}
        if len(data) < 2:
            continue
        names = list(data)
        vals = [data[g] for g in names]
        test = "mann-whitney" if len(vals) == 2 else "kruskal-wallis"
        stat = p = math.nan
        note = ""
        if np.ptp(np.concatenate(vals)) == 0:
            note = "all values identical: no test"
        elif test == "mann-whitney":
            res = stats.mannwhitneyu(vals[0], vals[1], alternative="two-sided", method="auto")
            stat, p = float(res.statistic), float(res.pvalue)
        else:
            res = stats.kruskal(*vals)
            stat, p = float(res.statistic), float(res.pvalue)
        if any(v.size < 2 for v in vals) and not note:
            note = "a group has one animal"
        rows.append([value, float(t), ";".join(map(str, names)), ";".join(str(v.size) for v in vals), test, stat, p,
                     math.nan, correction, note])
    out = pd.DataFrame(rows, columns=list(TEST_COLUMNS))
    if len(out):
        p = out["p_value"].to_numpy(dtype=float)
        if correction == "holm":
            out["p_adjusted"] = _holm(p)
        elif correction == "bh":
            adj = np.full_like(p, np.nan)
            ok = np.isfinite(p)
            if ok.any():
                adj[ok] = stats.false_discovery_control(p[ok])
            out["p_adjusted"] = adj
        else:
            out["p_adjusted"] = p
    return out.astype({"time_h": float, "statistic": float, "p_value": float, "p_adjusted": float})


# --------------------------------------------------------------------------- recruitment
def msc_neighbourhood(interactions):
    """Per-image means over MSCs of the ``interactions`` table: macrophages near MSCs and engulfment.

    Returns
    -------
    pandas.DataFrame
        One row per ``sample_id`` with ``engulfment_index`` (mean
        ``engulfed_fraction``: the fraction of MSC label inside macrophages),
        ``frac_msc_engulfed`` (MSCs with ``engulfed_fraction >= 0.5``) and
        ``macrophage_near_msc_<r>um`` (mean ``n_macrophage_within_<r>um``) for
        each radius present, over the intact MSCs when an ``intact`` column is
        present. Images without MSCs have no row.

    Examples
    --------
    >>> i = pd.DataFrame({"sample_id": ["s1", "s1"], "n_macrophage_within_25um": [1, 3],
    ...                   "engulfed_fraction": [0.0, 0.8]})
    >>> msc_neighbourhood(i).values.tolist()
    [['s1', 0.4, 0.5, 2.0]]
    """
    _check_columns(interactions, ["sample_id"], "interactions")
    if "intact" in interactions.columns:  # per intact MSC, the cells n_msc counts
        interactions = interactions[interactions["intact"].astype(bool)]
    near = [c for c in interactions.columns if c.startswith("n_macrophage_within_")]
    agg = {}
    if "engulfed_fraction" in interactions.columns:
        ef = pd.to_numeric(interactions["engulfed_fraction"], errors="coerce")
        interactions = interactions.assign(_ef=ef, _eng=(ef >= 0.5).astype(float).where(ef.notna()))
        agg["engulfment_index"] = ("_ef", "mean")
        agg["frac_msc_engulfed"] = ("_eng", "mean")
    for c in near:
        agg["macrophage_near_msc_" + c[len("n_macrophage_within_"):]] = (c, "mean")
    if not agg:
        return pd.DataFrame({"sample_id": pd.Series(dtype=object)})
    return interactions.groupby("sample_id", sort=True).agg(**agg).reset_index()


def recruitment_table(samples, interactions=None, *, by=("group",), confidence=0.95):
    """Macrophage recruitment and engulfment over time, aggregated like the MSC density.

    Parameters
    ----------
    samples : pandas.DataFrame
        Per-image table (``macrophage_per_mm2`` or ``n_macrophage`` +
        ``tissue_area_mm2``, ``frac_msc_contacting_macrophage``,
        ``frac_macrophage_containing_msc``; missing columns are skipped).
    interactions : pandas.DataFrame, optional
        Per-MSC table; adds the measures of `msc_neighbourhood`.
    by, confidence
        As in `time_course`.

    Returns
    -------
    pandas.DataFrame
        Long table, `RECRUITMENT_COLUMNS`: one row per measure, group and time
        point: ``n_animals``, ``mean``, ``sem``, ``ci_low``, ``ci_high`` over
        animals (sections pooled per animal; fractions weighted by the
        number of MSCs or macrophages they are a fraction of).

    Examples
    --------
    >>> s = pd.DataFrame({"animal": ["a", "b"], "group": "BM", "time_h": 2.0, "n_macrophage": [10, 30],
    ...                   "tissue_area_mm2": 1.0})
    >>> recruitment_table(s)[["measure", "n_animals", "mean", "sem"]].values.tolist()
    [['macrophage_per_mm2', 2, 20.0, 10.0]]
    """
    s = samples
    if interactions is not None and len(interactions) and "sample_id" in s.columns:
        nb = msc_neighbourhood(interactions)
        s = s.drop(columns=[c for c in nb.columns if c != "sample_id" and c in s.columns]).merge(
            nb, on="sample_id", how="left")
    measures = []
    if "macrophage_per_mm2" in s.columns or {"n_macrophage", "tissue_area_mm2"} <= set(s.columns):
        measures.append("macrophage_per_mm2")
    measures += [c for c in s.columns if c.startswith("macrophage_near_msc_")]
    measures += [c for c in ("frac_msc_contacting_macrophage", "frac_macrophage_containing_msc", "engulfment_index",
                             "frac_msc_engulfed") if c in s.columns]
    parts = []
    for m in measures:
        tc = time_course(s, value=m, by=by, confidence=confidence)
        tc = tc.rename(columns={f"{m}_mean": "mean", f"{m}_sem": "sem"}).assign(measure=m)
        parts.append(tc[list(RECRUITMENT_COLUMNS)])
    if not parts:
        return pd.DataFrame(columns=list(RECRUITMENT_COLUMNS))
    return pd.concat(parts, ignore_index=True)
