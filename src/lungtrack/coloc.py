"""Pixel colocalization: Pearson, Manders M1/M2, Costes threshold and significance.

Every function takes two channels of the same shape (2D, 3D or any other
dimensionality; numpy or dask arrays, converted with ``np.asarray``), an optional
boolean ``mask`` of that shape, computes in float64 and returns plain floats.

Conventions (see each docstring's Notes for the formula):

- Pearson r over the pixels inside the mask; NaN for a constant channel.
- Manders with two conventions: ``"jacop"`` (JACoP / CellProfiler, the default:
  the denominator is thresholded) and ``"coloc2"`` (Fiji Coloc 2, "Above" mode:
  ``>=`` thresholds, denominator over the whole mask).
- Costes thresholds: orthogonal regression line, lowered until the Pearson r of
  the pixels below *either* threshold is <= 0, found by an exact scan.
- Costes randomisation test as a standard p-value (small = significant).

Examples
--------
>>> import numpy as np
>>> a = np.array([[0, 4, 2], [10, 11, 12]])
>>> b = np.array([[4, 0, 2], [10, 11, 12]])
>>> s = coloc_summary(a, b)
>>> round(s["pearson_r"], 3), s["costes_threshold_a"], s["manders_m1"]
(0.878, 10.0, 1.0)
"""
from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["pearson", "manders", "costes_thresholds", "costes_test", "coloc_summary"]

CONVENTIONS = ("jacop", "coloc2")

# Below this fraction of its (globally centred) sum of squares, a prefix variance in
# the Costes scan is taken as zero (a constant channel: Pearson undefined). Rounding
# error of the float64 running sums is ~1e-16 x sqrt(n) of that sum.
_VAR_RTOL = 1e-12


# ---------------------------------------------------------------------------- input


def _validate(a, b, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check the inputs at the boundary; return them as numpy arrays."""
    a = np.asarray(a)
    b = np.asarray(b)
    for name, arr in (("a", a), ("b", b)):
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
                or arr.dtype == bool):
            raise ValueError(f"{name} must be a real-valued image, got dtype {arr.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"b has shape {b.shape} but a has shape {a.shape}; they must match")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != a.shape:
            raise ValueError(f"mask has shape {mask.shape} but a and b have shape {a.shape}; they must match")
        if mask.dtype != bool:
            raise ValueError(f"mask must be a boolean array, got dtype {mask.dtype} (pass e.g. mask > 0)")
    return a, b, mask


def _channels(a, b, mask) -> tuple[np.ndarray, np.ndarray]:
    """Validate the inputs; return the pixels inside the mask as flat float64 arrays."""
    a, b, mask = _validate(a, b, mask)
    if mask is None:
        return a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return a[mask].astype(np.float64), b[mask].astype(np.float64)


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """Dot product of two flat arrays without BLAS (whose thread start-up dominates
    for image-sized vectors on some machines)."""
    return float(np.einsum("i,i->", x, y))


def _r(x: np.ndarray, y: np.ndarray) -> float:
    """Two-pass Pearson r of two flat float64 arrays; NaN if undefined."""
    if x.size < 2 or x.min() == x.max() or y.min() == y.max():
        return math.nan
    xc = x - x.mean()
    yc = y - y.mean()
    r = _dot(xc, yc) / math.sqrt(_dot(xc, xc) * _dot(yc, yc))
    return min(1.0, max(-1.0, r))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den != 0 else math.nan


# ---------------------------------------------------------------------------- public


def pearson(a, b, mask=None) -> float:
    """Pearson correlation coefficient of two channels over the pixels in a mask.

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    mask : array_like of bool, optional
        Pixels to use (same shape as `a`); all pixels when None.

    Returns
    -------
    float
        Pearson r in [-1, 1]; NaN when either channel is constant inside the mask
        or the mask holds fewer than two pixels.

    Notes
    -----
    Over the pixels i in the mask, with means :math:`\\bar a, \\bar b`:

    .. math:: r = \\frac{\\sum_i (a_i-\\bar a)(b_i-\\bar b)}
                       {\\sqrt{\\sum_i (a_i-\\bar a)^2 \\sum_i (b_i-\\bar b)^2}}

    computed in float64 with the two-pass (centred) formula.

    References
    ----------
    .. [1] Manders EMM, Verbeek FJ, Aten JA (1993). Measurement of co-localization of
       objects in dual-colour confocal images. J Microsc 169:375-382.
    .. [2] Dunn KW, Kamocka MM, McDonald JH (2011). A practical guide to evaluating
       colocalization in biological microscopy. Am J Physiol Cell Physiol 300:C723-C742.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 2], [3, 4]])
    >>> pearson(a, 2 * a + 3), pearson(a, -a)
    (1.0, -1.0)
    >>> pearson(a, np.array([[5, 5], [5, 5]]))
    nan
    """
    x, y = _channels(a, b, mask)
    return _r(x, y)


def manders(a, b, threshold_a=None, threshold_b=None, mask=None, *,
            convention="jacop") -> tuple[float, float]:
    """Manders' colocalization coefficients M1 and M2 (thresholded: tM1, tM2).

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    threshold_a, threshold_b : float or None
        Intensity thresholds of `a` and `b` (image units). 0 or None gives the
        unthresholded coefficients of Manders et al. (1993).
    mask : array_like of bool, optional
        Pixels to use; all pixels when None.
    convention : {"jacop", "coloc2"}, keyword-only
        Which published definition to compute; see Notes. Default "jacop".

    Returns
    -------
    m1, m2 : float
        Fraction of the intensity of `a` that colocalises with `b`, and vice versa.
        NaN when a denominator is 0.

    Notes
    -----
    With thresholds :math:`t_a, t_b` (None means 0) and sums over the mask:

    ``"jacop"`` (JACoP, CellProfiler ``MeasureColocalization``; default)::

        tM1 = sum(a[(a > t_a) & (b > t_b)]) / sum(a[a > t_a])
        tM2 = sum(b[(a > t_a) & (b > t_b)]) / sum(b[b > t_b])

    ``"coloc2"`` (Fiji Coloc 2, ThresholdMode "Above"; thresholds are ``>=`` and the
    denominators are *not* thresholded)::

        tM1 = sum(a[(b >= t_b) & (b > 0)]) / sum(a)
        tM2 = sum(b[(a >= t_a) & (a > 0)]) / sum(b)

    With both thresholds 0 both conventions reduce, for non-negative images, to
    Manders' original M1 = sum(a[b > 0]) / sum(a), M2 = sum(b[a > 0]) / sum(b)
    (Coloc 2 ThresholdMode "None").

    References
    ----------
    .. [1] Manders EMM, Verbeek FJ, Aten JA (1993). J Microsc 169:375-382.
    .. [2] Costes SV et al. (2004). Automatic and quantitative measurement of
       protein-protein colocalization in live cells. Biophys J 86:3993-4003.
    .. [3] Dunn KW, Kamocka MM, McDonald JH (2011). Am J Physiol Cell Physiol
       300:C723-C742.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([0, 1, 2, 3, 4])
    >>> b = np.array([4, 0, 1, 5, 1])
    >>> manders(a, b)
    (0.9, 0.6363636363636364)
    >>> manders(a, b, 1, 1)  # (3 / (2+3+4), 5 / (4+5))
    (0.3333333333333333, 0.5555555555555556)
    >>> manders(a, b, 1, 1, convention="coloc2")
    (0.9, 0.6363636363636364)
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    x, y = _channels(a, b, mask)
    ta = 0.0 if threshold_a is None else float(threshold_a)
    tb = 0.0 if threshold_b is None else float(threshold_b)
    if convention == "jacop":
        above_a = x > ta
        above_b = y > tb
        both = above_a & above_b
        return _ratio(x[both].sum(), x[above_a].sum()), _ratio(y[both].sum(), y[above_b].sum())
    m1 = _ratio(x[(y >= tb) & (y > 0)].sum(), x.sum())
    m2 = _ratio(y[(x >= ta) & (x > 0)].sum(), y.sum())
    return m1, m2


def _deming(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """Orthogonal (Deming, variance ratio 1) regression y = slope * x + intercept.

    Returns None when the covariance is not positive (slope <= 0 or undefined).
    """
    xm, ym = x.mean(), y.mean()
    xc, yc = x - xm, y - ym
    sxx, syy, sxy = _dot(xc, xc), _dot(yc, yc), _dot(xc, yc)
    if not sxy > 0:
        return None
    d = syy - sxx
    h = math.hypot(d, 2.0 * sxy)
    # (d + h) / (2 sxy) == 2 sxy / (h - d); use the form without cancellation.
    slope = (d + h) / (2.0 * sxy) if d >= 0 else 2.0 * sxy / (h - d)
    return slope, float(ym - slope * xm)


def costes_thresholds(a, b, mask=None) -> tuple[float, float]:
    """Costes et al. (2004) automatic thresholds for channels `a` and `b`.

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    mask : array_like of bool, optional
        Pixels to use (regression and scan); all pixels when None.

    Returns
    -------
    threshold_a, threshold_b : float
        The threshold pair, in the images' intensity units, on the regression line
        ``threshold_b = slope * threshold_a + intercept``. Pixels with
        ``(a < threshold_a) | (b < threshold_b)`` are the "below" (uncorrelated)
        population.

    Notes
    -----
    1. Orthogonal regression (Deming with variance ratio 1, i.e. total least
       squares) of b on a over all pixels in the mask (zeros included, as in Costes
       and Coloc 2; CellProfiler drops pixels that are 0 in both channels):
       :math:`m = (s_{bb}-s_{aa}+\\sqrt{(s_{bb}-s_{aa})^2+4s_{ab}^2})/(2s_{ab})`,
       :math:`c = \\bar b - m\\bar a`.
    2. The pair :math:`(t, mt+c)` is lowered from the top of the intensity range;
       the pixels "below" are those below *either* threshold,
       ``(a < t) | (b < m t + c)`` (Coloc 2 and CellProfiler). The result is the
       highest pair at which the Pearson r of the below pixels is <= 0, i.e. the
       first pair where it happens as the thresholds go down.

    The scan is exact, not a bisection or a fixed grid: pixel i is below iff
    :math:`t > e_i = \\min(a_i, (b_i - c)/m)`, so the below set only changes at the
    distinct values of :math:`e_i`. These are sorted (``np.unique``), per-value sums
    of a, b, a², b², ab are accumulated (``np.bincount``) and cumulated, giving r of
    the below set at every candidate in O(N log N). The candidates thus include
    every distinct intensity of `a` and every intensity of `b` mapped onto the line,
    so the result does not depend on which channel has the finer intensity steps
    (Coloc 2 walks on the channel the line leans towards, rounds to integers and
    bisects, so it can differ by a grey level or two). When the chosen candidate is
    an intensity of `b`, ``threshold_b`` is that intensity exactly.

    Fall-backs (each logged as a warning): if the covariance is <= 0 (slope <= 0 or
    undefined: uncorrelated, anti-correlated or constant channels) the thresholds
    are the channel maxima, so that no pixel is above both (thresholded Manders of
    the ``"jacop"`` convention are then NaN); if r of the below pixels never drops
    to <= 0 (e.g. all pixels on one line) the lowest candidate pair is returned.
    An empty mask gives (NaN, NaN).

    References
    ----------
    .. [1] Costes SV, Daelemans D, Cho EH, Dobbin Z, Pavlakis G, Lockett S (2004).
       Automatic and quantitative measurement of protein-protein colocalization in
       live cells. Biophys J 86:3993-4003.
    .. [2] Manders EMM, Verbeek FJ, Aten JA (1993). J Microsc 169:375-382.
    .. [3] Dunn KW, Kamocka MM, McDonald JH (2011). Am J Physiol Cell Physiol
       300:C723-C742.

    Examples
    --------
    Three anti-correlated background pixels and a correlated signal from 10 to 12:

    >>> import numpy as np
    >>> a = np.array([0, 4, 2, 10, 11, 12])
    >>> b = np.array([4, 0, 2, 10, 11, 12])
    >>> costes_thresholds(a, b)
    (10.0, 10.0)
    """
    x, y = _channels(a, b, mask)
    if x.size == 0:
        log.warning("costes_thresholds: empty mask; returning NaN thresholds")
        return math.nan, math.nan
    line = _deming(x, y)
    if line is None:
        # Common and expected for MSC vs macrophage label in most tissue: INFO, not a warning.
        log.info("costes_thresholds: channels are not positively correlated (regression slope <= 0 "
                 "or undefined); returning the channel maxima as thresholds")
        return float(x.max()), float(y.max())
    slope, intercept = line
    y_on_x = (y - intercept) / slope  # b's intensity mapped onto a's axis along the line
    e = np.minimum(x, y_on_x)
    cand, inv = np.unique(e, return_inverse=True)
    inv = inv.ravel()

    # Exclusive prefix sums over candidates: entry j sums the pixels with e < cand[j]
    # (centred on the global means to limit cancellation).
    def prefix(w=None):
        s = np.bincount(inv, weights=w, minlength=cand.size).astype(np.float64)
        out = np.empty_like(s)
        out[0] = 0.0
        np.cumsum(s[:-1], out=out[1:])
        return out

    xc, yc = x - x.mean(), y - y.mean()
    n = prefix()
    sx, sy, sxx, syy, sxy = prefix(xc), prefix(yc), prefix(xc * xc), prefix(yc * yc), prefix(xc * yc)
    with np.errstate(divide="ignore", invalid="ignore"):
        vx = sxx - sx * sx / n
        vy = syy - sy * sy / n
        cov = sxy - sx * sy / n
        valid = (n >= 2) & (vx > _VAR_RTOL * sxx) & (vy > _VAR_RTOL * syy)
        r = np.where(valid, cov / np.sqrt(np.where(valid, vx * vy, 1.0)), np.nan)
    hits = np.flatnonzero(r <= 0)
    if hits.size == 0:
        log.warning("costes_thresholds: the Pearson r of the below-threshold pixels never drops to <= 0; "
                    "returning the lowest threshold pair on the regression line")
        j = 0
    else:
        j = int(hits[-1])  # highest candidate: the first reached when lowering the thresholds
    t_a = float(cand[j])
    from_b = y_on_x == t_a
    t_b = float(y[from_b][0]) if from_b.any() else float(slope * t_a + intercept)
    log.debug("costes_thresholds: slope %.6g intercept %.6g -> (%.6g, %.6g); r_below %.4g",
              slope, intercept, t_a, t_b, r[j])
    return t_a, t_b


def _default_block_size(ndim: int) -> tuple[int, ...]:
    return (1,) * max(ndim - 2, 0) + (3,) * min(ndim, 2)


def _to_blocks(arr: np.ndarray, block: tuple[int, ...]) -> np.ndarray:
    """(n_blocks, pixels_per_block) view of `arr`, trimmed to whole blocks."""
    nb = [s // k for s, k in zip(arr.shape, block)]
    arr = arr[tuple(slice(0, m * k) for m, k in zip(nb, block))]
    split = [v for m, k in zip(nb, block) for v in (m, k)]
    nd = arr.ndim
    arr = arr.reshape(split).transpose(list(range(0, 2 * nd, 2)) + list(range(1, 2 * nd, 2)))
    return arr.reshape(int(np.prod(nb)), int(np.prod(block)))


def costes_test(a, b, mask=None, *, n=100, block_size=None, seed=0) -> float:
    """Costes randomisation test: p-value of Pearson r against block-shuffled `a`.

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    mask : array_like of bool, optional
        Pixels to use; all pixels when None.
    n : int, keyword-only
        Number of randomisations.
    block_size : int or tuple of int, keyword-only
        Block edge in pixels per axis, about the PSF size (an int applies to every
        axis). Default: 3 along the last two axes and 1 along any others, e.g.
        ``(1, 3, 3)`` for a z-stack.
    seed : int, keyword-only
        Seed of ``numpy.random.default_rng`` (the result is reproducible).

    Returns
    -------
    float
        p-value in (0, 1]: small means the observed correlation is significant.
        NaN when the observed r is undefined.

    Notes
    -----
    Both channels are trimmed at the high end of each axis to a whole number of
    blocks, and the blocks that hold at least one mask pixel are kept. The observed
    r is the Pearson r of those pixels. Each randomisation permutes the blocks of
    `a` (carrying their mask) among those positions and computes r over the pixels
    inside the mask in both the moved block of `a` and the fixed block of `b`. Then

    .. math:: p = \\frac{1 + \\#\\{k : r_k \\ge r_{obs}\\}}{1 + n_{valid}}

    with :math:`n_{valid}` the randomisations whose r is defined. This is the
    conventional permutation p-value. Coloc 2 instead reports "Costes P-Value" as
    the fraction of randomised r *below* the observed r (about ``1 - p``: near 1 is
    significant); Costes et al. call r significant when that fraction is > 0.95.

    References
    ----------
    .. [1] Costes SV et al. (2004). Biophys J 86:3993-4003.
    .. [2] Dunn KW, Kamocka MM, McDonald JH (2011). Am J Physiol Cell Physiol
       300:C723-C742.
    .. [3] Manders EMM, Verbeek FJ, Aten JA (1993). J Microsc 169:375-382.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[0:30, 0:30]
    >>> a = np.sin(xx / 3.0) + np.cos(yy / 4.0)
    >>> costes_test(a, a, n=19)
    0.05
    """
    a_arr, b_arr, m_arr = _validate(a, b, mask)
    if m_arr is None:
        m_arr = np.ones(a_arr.shape, dtype=bool)
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    nd = a_arr.ndim
    if block_size is None:
        block = _default_block_size(nd)
    elif np.ndim(block_size) == 0:
        block = (int(block_size),) * nd
    else:
        block = tuple(int(k) for k in block_size)
    if len(block) != nd or any(k < 1 for k in block):
        raise ValueError(f"block_size must be a positive int or {nd} positive ints, got {block_size!r}")
    if any(k > s for k, s in zip(block, a_arr.shape)):
        raise ValueError(f"block_size {block} is larger than the image shape {a_arr.shape}")

    r_obs, r_rand = _randomised_r(a_arr, b_arr, m_arr, block, int(n), seed)
    if math.isnan(r_obs):
        return math.nan
    r_rand = r_rand[~np.isnan(r_rand)]
    n_ge = int(np.count_nonzero(r_rand >= r_obs))
    log.debug("costes_test: r_obs %.4g, %d of %d randomised r >= r_obs", r_obs, n_ge, r_rand.size)
    return (1 + n_ge) / (1 + r_rand.size)


def _randomised_r(a, b, mask, block, n, seed) -> tuple[float, np.ndarray]:
    """Observed r and the r of `n` block permutations of `a` (see `costes_test`)."""
    xb = _to_blocks(a.astype(np.float64), block)
    yb = _to_blocks(b.astype(np.float64), block)
    mb = _to_blocks(mask, block)
    keep = mb.any(axis=1)
    xb, yb, mb = xb[keep], yb[keep], mb[keep]
    if xb.shape[0] < 2:
        raise ValueError(f"fewer than 2 blocks of block_size {block} hold mask pixels; use smaller blocks")
    if math.isnan(_r(xb[mb], yb[mb])):
        return math.nan, np.full(n, math.nan)
    # r from weighted sums: gathers of a's blocks and dot products, values centred on
    # the masked means and zeroed outside the mask. When every kept block lies wholly
    # inside the mask, only the cross term changes with the permutation.
    w = mb.astype(np.float64)
    xw = (xb - xb[mb].mean()) * w
    yw = ((yb - yb[mb].mean()) * w).ravel()
    xxw, yyw = xw * xw, yw * yw
    w_flat = w.ravel()
    full = bool(mb.all())
    if full:
        nn, sx, sy = float(w_flat.size), float(xw.sum()), float(yw.sum())
        vx, vy = float(xxw.sum()) - sx * sx / nn, float(yyw.sum()) - sy * sy / nn

    def r_of(perm) -> float:
        xs = np.take(xw, perm, axis=0).ravel()
        if full:
            return (_dot(xs, yw) - sx * sy / nn) / math.sqrt(vx * vy)
        ws, xxs = (np.take(arr, perm, axis=0).ravel() for arr in (w, xxw))
        n_, sx_, sy_ = _dot(ws, w_flat), _dot(xs, w_flat), _dot(ws, yw)
        sxx_, syy_ = _dot(xxs, w_flat), _dot(ws, yyw)
        vx_, vy_ = sxx_ - sx_ * sx_ / n_, syy_ - sy_ * sy_ / n_
        if n_ < 2 or not (vx_ > _VAR_RTOL * sxx_ and vy_ > _VAR_RTOL * syy_):
            return math.nan
        return (_dot(xs, yw) - sx_ * sy_ / n_) / math.sqrt(vx_ * vy_)

    r_obs = r_of(np.arange(xb.shape[0]))  # same arithmetic as the randomised r
    rng = np.random.default_rng(seed)
    return r_obs, np.array([r_of(rng.permutation(xb.shape[0])) for _ in range(n)], dtype=np.float64)


def coloc_summary(a, b, mask=None, *, convention="jacop", randomisations=0, seed=0,
                  block_size=None) -> dict:
    """All pixel colocalization numbers of one image pair, in one dict.

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    mask : array_like of bool, optional
        Pixels to use; all pixels when None.
    convention : {"jacop", "coloc2"}, keyword-only
        Manders convention, see `manders`.
    randomisations : int, keyword-only
        Number of Costes randomisations; 0 skips the test (``costes_p`` is NaN).
    seed : int, keyword-only
        Seed of the randomisation test.
    block_size : int or tuple of int, keyword-only
        Block size of the randomisation test, see `costes_test`.

    Returns
    -------
    dict
        ``pearson_r`` (all pixels in the mask), ``manders_m1``, ``manders_m2``
        (thresholded with the Costes thresholds, in the chosen `convention`),
        ``costes_threshold_a``, ``costes_threshold_b``, ``costes_p`` (NaN when
        ``randomisations == 0``). All values are floats.

    Notes
    -----
    ``r = pearson(a, b, mask)``; ``t_a, t_b = costes_thresholds(a, b, mask)``;
    ``m1, m2 = manders(a, b, t_a, t_b, mask, convention=convention)``;
    ``p = costes_test(a, b, mask, n=randomisations, seed=seed)``.

    References
    ----------
    .. [1] Manders EMM, Verbeek FJ, Aten JA (1993). J Microsc 169:375-382.
    .. [2] Costes SV et al. (2004). Biophys J 86:3993-4003.
    .. [3] Dunn KW, Kamocka MM, McDonald JH (2011). Am J Physiol Cell Physiol
       300:C723-C742.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([0, 4, 2, 10, 11, 12])
    >>> b = np.array([4, 0, 2, 10, 11, 12])
    >>> s = coloc_summary(a, b)
    >>> sorted(s)
    ['costes_p', 'costes_threshold_a', 'costes_threshold_b', 'manders_m1', 'manders_m2', 'pearson_r']
    >>> s["manders_m1"], s["manders_m2"], s["costes_p"]
    (1.0, 1.0, nan)
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if int(randomisations) < 0:
        raise ValueError(f"randomisations must be >= 0, got {randomisations}")
    a, b, mask = _validate(a, b, mask)  # converts dask arrays once for the four calls
    t_a, t_b = costes_thresholds(a, b, mask)
    m1, m2 = manders(a, b, t_a, t_b, mask, convention=convention)
    p = (costes_test(a, b, mask, n=int(randomisations), block_size=block_size, seed=seed)
         if randomisations else math.nan)
    return {
        "pearson_r": pearson(a, b, mask),
        "manders_m1": m1,
        "manders_m2": m2,
        "costes_threshold_a": t_a,
        "costes_threshold_b": t_b,
        "costes_p": p,
    }
