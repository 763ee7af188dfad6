"""Pixel colocalization: Pearson, Spearman, Kendall, Li ICQ, Manders overlap, M1/M2,
RWC, van Steensel CCF, Costes threshold and significance.

Every function takes two channels of the same shape (2D, 3D or any other
dimensionality; numpy or dask arrays, converted with ``np.asarray``), an optional
boolean ``mask`` of that shape, computes in float64 and returns plain floats
(``overlap_coefficient`` a dict, ``van_steensel_ccf`` a DataFrame). Formulas and
references for all of them: ``docs/methods.md``.

Conventions (see each docstring's Notes for the formula):

- Pearson r over the pixels inside the mask; NaN for a constant channel.
- Manders with two conventions: ``"jacop"`` (JACoP / CellProfiler, the default:
  the denominator is thresholded) and ``"coloc2"`` (Fiji Coloc 2, "Above" mode:
  ``>=`` thresholds, denominator over the whole mask).
- Costes thresholds: orthogonal regression line, lowered until the Pearson r of
  the pixels below *either* threshold is <= 0, found by an exact scan.
- Costes randomisation test as a standard p-value (small = significant).
- Negative pixels (after background subtraction) are kept as they are for the
  correlation measures (Pearson, Spearman, Kendall, Li ICQ, van Steensel) and
  clipped at 0, with a logged warning, in the intensity sums of Manders, the
  overlap coefficient and RWC (a negative pixel holds no fluorophore).

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

import contextlib
import logging
import math
import threading

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["pearson", "spearman", "kendall_tau", "li_icq", "overlap_coefficient", "manders", "rwc",
           "van_steensel_ccf", "orthogonal_regression", "costes_thresholds", "collect_warnings", "costes_test", "coloc_summary",
           "coloc_table"]


def __getattr__(name):
    # coloc_table lives in its own module (it imports this one); the public name is lungtrack.coloc.coloc_table.
    if name == "coloc_table":
        from .coloc_table import coloc_table

        return coloc_table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

CONVENTIONS = ("jacop", "coloc2")

# Below this fraction of its (globally centred) sum of squares, a prefix variance in
# the Costes scan is taken as zero (a constant channel: Pearson undefined). Rounding
# error of the float64 running sums is ~1e-16 x sqrt(n) of that sum.
_VAR_RTOL = 1e-12

# Coloc 2 (AutoThresholdRegression) warns when |intercept| / mean(channel 2) exceeds this.
_INTERCEPT_TO_MEAN_WARN = 0.01
# Fewer pixels than this above both Costes thresholds: thresholded numbers are unreliable.
_MIN_PIXELS_ABOVE_BOTH = 10
# Integer images whose intensity range is at most this use the histogram (linear) scan.
_MAX_INT_LEVELS = 1 << 20
# Pixels per chunk in the linear-time passes: temporaries stay in cache and are reused.
_CHUNK = 1 << 16


_collector = threading.local()


@contextlib.contextmanager
def collect_warnings():
    """Collect Costes quality warnings as short codes instead of logging them.

    For tables with many regions (one per object), where a log line per region
    would drown the terminal; `lungtrack.coloc_table` puts the codes in a column.

    Examples
    --------
    >>> with collect_warnings() as codes:
    ...     _ = costes_thresholds(np.array([0, 4, 2, 10, 11, 12.0]), np.array([4, 0, 2, 10, 11, 12.0]))
    >>> codes
    ['threshold_a_too_high', 'threshold_b_too_high', 'few_pixels_above_both']
    """
    prev = getattr(_collector, "codes", None)
    _collector.codes = codes = []
    try:
        yield codes
    finally:
        _collector.codes = prev


def _warn(code: str, msg: str, *args) -> None:
    codes = getattr(_collector, "codes", None)
    if codes is None:
        log.warning(msg, *args)
    else:
        codes.append(code)


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


def _clip_negative(x: np.ndarray, name: str, func: str) -> np.ndarray:
    """Clip negative intensities to 0 for intensity sums, logging how many there were."""
    n_neg = int(np.count_nonzero(x < 0))
    if n_neg:
        log.warning("%s: %d pixels of channel %s are negative (background subtraction?); "
                    "they are counted as 0 in the intensity sums", func, n_neg, name)
        return np.maximum(x, 0.0)
    return x


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


def spearman(a, b, mask=None) -> float:
    """Spearman rank correlation of two channels over the pixels in a mask.

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    mask : array_like of bool, optional
        Pixels to use; all pixels when None.

    Returns
    -------
    float
        Spearman rho in [-1, 1]; NaN when a channel is constant or fewer than two
        pixels are in the mask.

    Notes
    -----
    Pearson r of the ranks, ties given their average rank
    (``scipy.stats.rankdata(method="average")``), as in Coloc 2's
    ``SpearmanRankCorrelation``:

    .. math:: \\rho = r\\big(\\mathrm{rank}(a), \\mathrm{rank}(b)\\big)

    References
    ----------
    .. [1] Spearman C (1904). Am J Psychol 15:72-101.
    .. [2] Dunn KW, Kamocka MM, McDonald JH (2011). Am J Physiol Cell Physiol
       300:C723-C742.

    Examples
    --------
    >>> import numpy as np
    >>> spearman(np.array([1, 2, 3, 4]), np.array([1, 4, 9, 16]))
    1.0
    >>> round(spearman(np.array([1, 2, 2, 3]), np.array([3, 1, 2, 0])), 4)  # ranks 1, 2.5, 2.5, 4
    -0.9487
    """
    from scipy.stats import rankdata

    x, y = _channels(a, b, mask)
    if x.size < 2:
        return math.nan
    return _r(rankdata(x), rankdata(y))


def kendall_tau(a, b, mask=None) -> float:
    """Kendall's tau-b rank correlation of two channels over the pixels in a mask.

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    mask : array_like of bool, optional
        Pixels to use; all pixels when None.

    Returns
    -------
    float
        tau-b in [-1, 1]; NaN when either channel is all tied (constant) or fewer
        than two pixels are in the mask.

    Notes
    -----
    With :math:`n_c, n_d` the concordant and discordant pixel pairs and
    :math:`n_1, n_2` the pairs tied in `a` only or in `b` only,

    .. math:: \\tau_b = \\frac{n_c - n_d}{\\sqrt{(n_c + n_d + n_1)(n_c + n_d + n_2)}}

    computed by ``scipy.stats.kendalltau`` (O(N log N)), as Coloc 2's
    ``KendallTauRankCorrelation``.

    References
    ----------
    .. [1] Kendall MG (1945). The treatment of ties in ranking problems.
       Biometrika 33:239-251.

    Examples
    --------
    >>> import numpy as np
    >>> round(kendall_tau(np.array([1, 1, 2, 3]), np.array([3, 2, 1, 1])), 12)
    -0.8
    """
    import warnings

    from scipy.stats import kendalltau

    x, y = _channels(a, b, mask)
    if x.size < 2 or x.min() == x.max() or y.min() == y.max():
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tau = kendalltau(x, y, variant="b").statistic
    return float(tau)


def li_icq(a, b, mask=None) -> float:
    """Li's intensity correlation quotient (ICQ) over the pixels in a mask.

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    mask : array_like of bool, optional
        Pixels to use; all pixels when None.

    Returns
    -------
    float
        ICQ in [-0.5, 0.5]: about 0 for independent channels, > 0 for dependent,
        < 0 for segregated staining. NaN for an empty mask.

    Notes
    -----
    .. math:: ICQ = \\frac{\\#\\{i : (a_i-\\bar a)(b_i-\\bar b) > 0\\}}{N} - 0.5

    Pixels with a product of exactly 0 count as not positive (as in Coloc 2's
    ``LiICQ``).

    References
    ----------
    .. [1] Li Q, Lau A, Morris TJ, Guo L, Fordyce CB, Stanley EF (2004). A
       syntaxin 1, Galpha(o), and N-type calcium channel complex at a presynaptic
       nerve terminal: analysis by quantitative immunocolocalization. J Neurosci
       24:4070-4081.

    Examples
    --------
    >>> import numpy as np
    >>> li_icq(np.array([1, 2, 3, 4]), np.array([1, 2, 3, 4]))
    0.5
    >>> li_icq(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1]))
    -0.5
    """
    x, y = _channels(a, b, mask)
    if x.size == 0:
        return math.nan
    prod = (x - x.mean()) * (y - y.mean())
    return float(np.count_nonzero(prod > 0) / x.size - 0.5)


def overlap_coefficient(a, b, mask=None) -> dict:
    """Manders' overlap coefficient r and the split coefficients k1, k2.

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    mask : array_like of bool, optional
        Pixels to use; all pixels when None.

    Returns
    -------
    dict
        ``overlap`` (r), ``k1``, ``k2``: floats, NaN where a denominator is 0.

    Notes
    -----
    Over the pixels in the mask, negative values counted as 0 (logged):

    .. math:: r = \\frac{\\sum a_i b_i}{\\sqrt{\\sum a_i^2 \\sum b_i^2}},\\quad
              k_1 = \\frac{\\sum a_i b_i}{\\sum a_i^2},\\quad
              k_2 = \\frac{\\sum a_i b_i}{\\sum b_i^2}

    so that :math:`r^2 = k_1 k_2`. ``overlap`` equals scikit-image's
    ``manders_overlap_coeff``. CellProfiler's ``MeasureColocalization`` computes
    the same formulas over the pixels above a percentage of each channel's maximum;
    pass that selection as `mask` to reproduce it.

    References
    ----------
    .. [1] Manders EMM, Verbeek FJ, Aten JA (1993). J Microsc 169:375-382.

    Examples
    --------
    >>> import numpy as np
    >>> overlap_coefficient(np.array([1, 2, 0]), np.array([2, 4, 0]))
    {'overlap': 1.0, 'k1': 2.0, 'k2': 0.5}
    """
    x, y = _channels(a, b, mask)
    x = _clip_negative(x, "a", "overlap_coefficient")
    y = _clip_negative(y, "b", "overlap_coefficient")
    sab, saa, sbb = _dot(x, y), _dot(x, x), _dot(y, y)
    return {"overlap": _ratio(sab, math.sqrt(saa * sbb)), "k1": _ratio(sab, saa), "k2": _ratio(sab, sbb)}


def rwc(a, b, mask=None, *, threshold_a=None, threshold_b=None) -> tuple[float, float]:
    """Rank-weighted colocalization coefficients RWC1, RWC2 (Singan et al. 2011).

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    mask : array_like of bool, optional
        Pixels to use (also the pixels that are ranked); all pixels when None.
    threshold_a, threshold_b : float or None, keyword-only
        Intensity thresholds (image units; strict ``>``). None means 0.
        CellProfiler uses a percentage (default 15 %) of each channel's maximum;
        Costes thresholds are another choice.

    Returns
    -------
    rwc1, rwc2 : float
        NaN when a denominator is 0.

    Notes
    -----
    As CellProfiler's ``MeasureColocalization`` (whole-image measurement) defines
    it: :math:`R_i, G_i` are dense ranks of the pixel intensities of each channel
    (0 for the lowest value, tied values share a rank, the next distinct value gets
    the next integer), :math:`R_{max} = \\max(\\max R, \\max G) + 1`,
    :math:`D_i = |R_i - G_i|`, :math:`W_i = (R_{max} - D_i) / R_{max}` and, with
    :math:`C = \\{i : a_i > t_a, b_i > t_b\\}`,

    .. math:: RWC_1 = \\frac{\\sum_{i \\in C} a_i W_i}{\\sum_{a_i > t_a} a_i},\\quad
              RWC_2 = \\frac{\\sum_{i \\in C} b_i W_i}{\\sum_{b_i > t_b} b_i}

    i.e. the JACoP/CellProfiler Manders tM1, tM2 with each colocalised pixel
    weighted by how similar its ranks are. Negative values count as 0 in the sums.

    References
    ----------
    .. [1] Singan VR, Jones TR, Curran KM, Simpson JC (2011). Dual channel
       rank-based intensity weighting for quantitative co-localization of
       microscopy images. BMC Bioinformatics 12:407.
    .. [2] CellProfiler ``cellprofiler/modules/measurecolocalization.py``
       (``MeasureColocalization``, "Rank Weighted Colocalization coefficient").

    Examples
    --------
    >>> import numpy as np
    >>> rwc(np.array([1, 2, 3]), np.array([1, 2, 3]))
    (1.0, 1.0)
    >>> r1, r2 = rwc(np.array([1, 2, 3]), np.array([3, 2, 1]))  # W = (1/3, 1, 1/3)
    >>> round(r1, 4), round(r2, 4)  # (1/3 + 2 + 3/3) / 6
    (0.5556, 0.5556)
    """
    x, y = _channels(a, b, mask)
    if x.size == 0:
        return math.nan, math.nan
    ta = 0.0 if threshold_a is None else float(threshold_a)
    tb = 0.0 if threshold_b is None else float(threshold_b)
    rank_a = np.unique(x, return_inverse=True)[1].ravel()
    rank_b = np.unique(y, return_inverse=True)[1].ravel()
    r_max = max(int(rank_a.max()), int(rank_b.max())) + 1
    w = (r_max - np.abs(rank_a - rank_b)) / r_max
    above_a, above_b = x > ta, y > tb
    both = above_a & above_b
    xs, ys = _clip_negative(x, "a", "rwc"), _clip_negative(y, "b", "rwc")
    return (_ratio(_dot(xs[both], w[both]), xs[above_a].sum()),
            _ratio(_dot(ys[both], w[both]), ys[above_b].sum()))


def van_steensel_ccf(a, b, mask=None, *, max_shift_um, spacing_um, axis=-1):
    """Van Steensel's cross-correlation function: Pearson r as `b` is shifted.

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    mask : array_like of bool, optional
        Pixels to use; all pixels when None. A pixel pair counts when both of its
        pixels (in `a` at x and in `b` at x + shift) are in the mask.
    max_shift_um : float, keyword-only
        Largest shift in micrometres; shifts run over -k..+k pixels with
        ``k = round(max_shift_um / spacing)``.
    spacing_um : float or tuple of float, keyword-only
        Pixel size in micrometres: one value, or one per axis (numpy order), of
        which the entry for `axis` is used.
    axis : int, keyword-only
        Axis to shift along; default -1 (x).

    Returns
    -------
    pandas.DataFrame
        One row per shift: ``shift_px`` (int), ``shift_um`` (float),
        ``pearson_r`` (float; NaN where undefined).

    Notes
    -----
    For a shift :math:`s` (pixels), the Pearson r of the pairs
    :math:`(a(x), b(x + s))` over the positions where both are inside the image
    (no wrap-around) and the mask. If `b` is `a` moved by +k pixels
    (``b = np.roll(a, k, axis)``) the curve peaks at ``shift_px = k``; for
    colocalised channels it peaks at 0, for segregated ones it dips at 0.

    References
    ----------
    .. [1] van Steensel B, van Binnendijk EP, Hornsby CD, van der Voort HTM,
       Krozowski ZS, de Kloet ER, van Driel R (1996). Partial colocalization of
       glucocorticoid and mineralocorticoid receptors in discrete compartments in
       nuclei of rat hippocampus neurons. J Cell Sci 109:787-792.
    .. [2] Bolte S, Cordelieres FP (2006). A guided tour into subcellular
       colocalization analysis in light microscopy. J Microsc 224:213-232.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0, 1, 5, 2, 0, 0, 3, 1]])
    >>> ccf = van_steensel_ccf(a, np.roll(a, 1), max_shift_um=0.4, spacing_um=0.2)
    >>> ccf["shift_px"].tolist(), int(ccf["shift_px"][ccf["pearson_r"].idxmax()])
    ([-2, -1, 0, 1, 2], 1)
    """
    import pandas as pd

    a, b, mask = _validate(a, b, mask)
    nd = a.ndim
    if not -nd <= axis < nd:
        raise ValueError(f"axis {axis} is out of range for images with {nd} dimensions")
    axis = axis % nd
    sp = float(spacing_um) if np.ndim(spacing_um) == 0 else np.asarray(spacing_um, dtype=np.float64)
    if np.ndim(sp) and sp.shape != (nd,):
        raise ValueError(f"spacing_um must be one value or {nd} values, got {spacing_um!r}")
    step = float(sp if np.ndim(sp) == 0 else sp[axis])
    if not step > 0:
        raise ValueError(f"spacing_um must be positive, got {spacing_um!r}")
    if not max_shift_um >= 0:
        raise ValueError(f"max_shift_um must be >= 0, got {max_shift_um!r}")
    k = int(round(max_shift_um / step))
    size = a.shape[axis]
    if k >= size:
        raise ValueError(f"max_shift_um {max_shift_um} is {k} pixels, not less than the image size "
                         f"{size} along axis {axis}")
    a64, b64 = np.moveaxis(a.astype(np.float64), axis, -1), np.moveaxis(b.astype(np.float64), axis, -1)
    m = None if mask is None else np.moveaxis(mask, axis, -1)
    shifts = np.arange(-k, k + 1)
    rs = np.empty(shifts.size, dtype=np.float64)
    for i, s in enumerate(shifts):
        sa = slice(max(0, -s), size - max(0, s))
        sb = slice(max(0, s), size + min(0, s))
        x, y = a64[..., sa], b64[..., sb]
        if m is None:
            rs[i] = _r(x.ravel(), y.ravel())
        else:
            both = m[..., sa] & m[..., sb]
            rs[i] = _r(x[both], y[both])
    return pd.DataFrame({"shift_px": shifts.astype(np.int64), "shift_um": shifts * step, "pearson_r": rs})


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

    Negative pixels (after background subtraction) are counted as 0 in the sums (a
    warning is logged); the threshold comparisons use the values as given. For
    non-negative images the result equals scikit-image's ``manders_coloc_coeff``
    with ``image1_mask = b > t_b``.

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
    if convention == "coloc2":  # "jacop" sums only values above thresholds >= 0 ...
        x, y = _clip_negative(x, "a", "manders"), _clip_negative(y, "b", "manders")
    elif ta < 0 or tb < 0:  # ... unless a threshold is negative
        x, y = _clip_negative(x, "a", "manders"), _clip_negative(y, "b", "manders")
    if convention == "jacop":
        above_a = x > ta
        above_b = y > tb
        both = above_a & above_b
        return _ratio(x[both].sum(), x[above_a].sum()), _ratio(y[both].sum(), y[above_b].sum())
    m1 = _ratio(x[(y >= tb) & (y > 0)].sum(), x.sum())
    m2 = _ratio(y[(x >= ta) & (x > 0)].sum(), y.sum())
    return m1, m2


def _centred_moments(x: np.ndarray, y: np.ndarray) -> tuple[int, float, float, float, float, float]:
    """(n, mean x, mean y, sum (x-mx)^2, sum (y-my)^2, sum (x-mx)(y-my)) of two flat arrays.

    Works through cache-sized chunks, so no image-sized float64 temporaries are
    made (for a 2048^2 image those cost more in page faults than in arithmetic).
    """
    n = x.size
    steps = range(0, n, _CHUNK)
    xm = sum(float(x[i:i + _CHUNK].sum(dtype=np.float64)) for i in steps) / n
    ym = sum(float(y[i:i + _CHUNK].sum(dtype=np.float64)) for i in steps) / n
    sxx = syy = sxy = 0.0
    for i in steps:
        xc = x[i:i + _CHUNK].astype(np.float64)
        xc -= xm
        yc = y[i:i + _CHUNK].astype(np.float64)
        yc -= ym
        sxx += _dot(xc, xc)
        syy += _dot(yc, yc)
        sxy += _dot(xc, yc)
    return n, xm, ym, sxx, syy, sxy


def orthogonal_regression(x, y) -> tuple[float, float] | None:
    """Orthogonal (Deming, variance ratio 1) regression ``y = slope * x + intercept``.

    The line Costes' thresholds walk down. Any sign of the covariance; None when it
    is zero or not finite (no unique line).

    Examples
    --------
    >>> x = np.arange(10.0)
    >>> orthogonal_regression(x, 2 * x + 1)
    (2.0, 1.0)
    >>> orthogonal_regression(x, -x)[0]
    -1.0
    """
    _, xm, ym, sxx, syy, sxy = _centred_moments(np.asarray(x).ravel(), np.asarray(y).ravel())
    if sxy == 0 or not math.isfinite(sxy):
        return None
    d = syy - sxx
    h = math.hypot(d, 2.0 * sxy)
    # (d + h) / (2 sxy) == 2 sxy / (h - d); use the form without cancellation.
    slope = (d + h) / (2.0 * sxy) if d >= 0 else 2.0 * sxy / (h - d)
    return float(slope), float(ym - slope * xm)


def _deming(x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    """`orthogonal_regression`, or None when the covariance is not positive (Costes needs slope > 0)."""
    line = orthogonal_regression(x, y)
    return line if line is not None and line[0] > 0 else None


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
    a, b, mask = _validate(a, b, mask)
    raw_a, raw_b = (a.ravel(), b.ravel()) if mask is None else (a[mask], b[mask])
    if raw_a.size == 0:
        _warn("empty_region", "costes_thresholds: empty mask; returning NaN thresholds")
        return math.nan, math.nan
    line = _deming(raw_a, raw_b)
    if line is None:
        # Common and expected for MSC vs macrophage label in most tissue: INFO, not a warning;
        # but a table row must still say why its Manders values are undefined.
        codes = getattr(_collector, "codes", None)
        if codes is not None:
            codes.append("not_positively_correlated")
        log.info("costes_thresholds: channels are not positively correlated (regression slope <= 0 "
                 "or undefined); returning the channel maxima as thresholds")
        return float(raw_a.max()), float(raw_b.max())
    slope, intercept = line
    if _integer_levels(raw_a, raw_b):
        cand, r, b_at = _scan_integer(raw_a, raw_b, slope, intercept)
    else:
        cand, r, b_at = _scan_sorted(raw_a.astype(np.float64), raw_b.astype(np.float64), slope, intercept)
    hits = np.flatnonzero(r <= 0)
    if hits.size == 0:
        _warn("r_never_drops_to_zero", "costes_thresholds: the Pearson r of the below-threshold pixels never drops to <= 0; "
                    "returning the lowest threshold pair on the regression line")
        j = 0
    else:
        j = int(hits[-1])  # highest candidate: the first reached when lowering the thresholds
    t_a = float(cand[j])
    t_b = b_at(t_a)  # b's own intensity when the candidate comes from b
    if math.isnan(t_b):
        t_b = float(slope * t_a + intercept)
    log.debug("costes_thresholds: slope %.6g intercept %.6g -> (%.6g, %.6g); r_below %.4g",
              slope, intercept, t_a, t_b, r[j])
    _costes_warnings(raw_a, raw_b, t_a, t_b, intercept)
    return t_a, t_b


def _integer_levels(raw_a, raw_b) -> bool:
    """True when both channels are integer with a modest intensity range (histogram scan)."""
    if not (np.issubdtype(raw_a.dtype, np.integer) and np.issubdtype(raw_b.dtype, np.integer)):
        return False
    return (int(raw_a.max()) - int(raw_a.min()) < _MAX_INT_LEVELS
            and int(raw_b.max()) - int(raw_b.min()) < _MAX_INT_LEVELS)


def _r_from_prefix(n, sx, sy, sxx, syy, sxy, tot_xx, tot_yy) -> np.ndarray:
    """Pearson r of each below set from its (centred) moment sums; NaN where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        vx = sxx - sx * sx / n
        vy = syy - sy * sy / n
        cov = sxy - sx * sy / n
        valid = (n >= 2) & (vx > _VAR_RTOL * tot_xx) & (vy > _VAR_RTOL * tot_yy)
        return np.where(valid, cov / np.sqrt(np.where(valid, vx * vy, 1.0)), np.nan)


def _exclusive_cumsum(v: np.ndarray) -> np.ndarray:
    # entry j sums the candidates below j: the pixels with e < cand[j]
    out = np.empty(v.shape, np.float64)
    out[0] = 0.0
    np.cumsum(v[:-1], out=out[1:])
    return out


def _scan_sorted(x, y, slope, intercept):
    """Costes scan by sorting: every distinct e = min(a, (b - c)/m) is a candidate, O(N log N).

    Returns (candidates ascending, r of the below set at each, a function giving
    b's own intensity at a candidate that is the image of a b intensity, else NaN).
    """
    y_on_x = (y - intercept) / slope  # b's intensity mapped onto a's axis along the line
    cand, inv = np.unique(np.minimum(x, y_on_x), return_inverse=True)
    inv = inv.ravel()
    xc, yc = x - x.mean(), y - y.mean()

    def prefix(w=None):
        return _exclusive_cumsum(np.bincount(inv, weights=w, minlength=cand.size).astype(np.float64))

    sxx_w, syy_w, sxy_w = xc * xc, yc * yc, xc * yc
    r = _r_from_prefix(prefix(), prefix(xc), prefix(yc), prefix(sxx_w), prefix(syy_w), prefix(sxy_w),
                       float(sxx_w.sum()), float(syy_w.sum()))

    def b_at(t):
        on_b = y_on_x == t
        return float(y[on_b][0]) if on_b.any() else math.nan

    return cand, r, b_at


def _scan_integer(raw_a, raw_b, slope, intercept):
    """The Costes scan of `_scan_sorted` for integer images, in linear time from histograms.

    Pixel i is "below" at threshold t iff t > e_i = min(a_i, (b_i - c)/m). With
    integer intensities e_i is either a grey level of a (when a_i <= (b_i - c)/m, a
    test on a lookup table of b's levels) or a grey level of b mapped onto the line.
    Pixels are binned by that level (La + Lb bins): a pixel in an a-level bin alpha
    has x = alpha, so only its y needs summing, and vice versa; three bincounts (n,
    sum w, sum w^2, with w the other channel) then give all five moment sums per
    bin. Bins are merged in candidate order and cumulated. Moments are centred on
    the rounded channel means (integers) so that sums stay small and exact.
    """
    a_lo, a_hi = int(raw_a.min()), int(raw_a.max())
    b_lo, b_hi = int(raw_b.min()), int(raw_b.max())
    la, lb = a_hi - a_lo + 1, b_hi - b_lo + 1
    lev_a = np.arange(a_lo, a_hi + 1, dtype=np.float64)
    lev_b_int = np.arange(b_lo, b_hi + 1, dtype=np.float64)
    lev_b = (lev_b_int - intercept) / slope  # same float ops as per pixel in _scan_sorted
    # a_i <= lev_b[b_i]  <=>  a_i - a_lo <= floor(lev_b[b_i]) - a_lo  (a_i integer)
    lim = np.clip(np.floor(lev_b) - a_lo, -1, la).astype(np.intp)
    n_bin = np.zeros(la + lb)
    s1 = np.zeros(la + lb)
    s2 = np.zeros(la + lb)
    hist_b = np.zeros(lb, np.int64)
    for i in range(0, raw_a.size, _CHUNK):
        ia = raw_a[i:i + _CHUNK].astype(np.intp)
        ib = raw_b[i:i + _CHUNK].astype(np.intp)
        if a_lo:
            ia -= a_lo
        if b_lo:
            ib -= b_lo
        from_a = ia <= lim[ib]
        idx = np.where(from_a, ia, ib + la)
        w = np.where(from_a, ib, ia).astype(np.float64)  # the other channel's level (exact integers)
        n_bin += np.bincount(idx, minlength=la + lb)
        s1 += np.bincount(idx, weights=w, minlength=la + lb)
        s2 += np.bincount(idx, weights=np.square(w, out=w), minlength=la + lb)
        hist_b += np.bincount(ib, minlength=lb)
    # Centre the other channel on its rounded mean: w' = w - off per bin
    m_a = round(float(raw_a.mean(dtype=np.float64)))
    m_b = round(float(raw_b.mean(dtype=np.float64)))
    off = np.concatenate([np.full(la, m_b - b_lo, np.float64), np.full(lb, m_a - a_lo, np.float64)])
    s2 = s2 - 2 * off * s1 + off * off * n_bin
    s1 = s1 - off * n_bin
    xa, yb = lev_a - m_a, lev_b_int - m_b  # the bin's own channel value, centred
    # per bin: (n, sum x', sum y', sum x'^2, sum y'^2, sum x'y')
    own = np.concatenate([xa, yb])
    in_a = np.arange(la + lb) < la
    sx = np.where(in_a, own * n_bin, s1)
    sy = np.where(in_a, s1, own * n_bin)
    sxx = np.where(in_a, own * own * n_bin, s2)
    syy = np.where(in_a, s2, own * own * n_bin)
    sxy = own * s1
    value = np.concatenate([lev_a, lev_b])
    used = n_bin > 0
    value, n_bin, sx, sy, sxx, syy, sxy = (v[used] for v in (value, n_bin, sx, sy, sxx, syy, sxy))
    order = np.argsort(value, kind="stable")
    value = value[order]
    starts = np.flatnonzero(np.r_[True, value[1:] != value[:-1]])
    group = [np.add.reduceat(v[order], starts) for v in (n_bin, sx, sy, sxx, syy, sxy)]
    cand = value[starts]
    # Re-centre on the exact means (a shift of the rounded ones) as the sort path does.
    n_tot = group[0].sum()
    dx, dy = group[1].sum() / n_tot, group[2].sum() / n_tot
    n, gx, gy, gxx, gyy, gxy = group
    gxx = gxx - 2 * dx * gx + dx * dx * n
    gyy = gyy - 2 * dy * gy + dy * dy * n
    gxy = gxy - dx * gy - dy * gx + dx * dy * n
    gx = gx - dx * n
    gy = gy - dy * n
    pre = [_exclusive_cumsum(v) for v in (n, gx, gy, gxx, gyy, gxy)]
    r = _r_from_prefix(*pre, float(gxx.sum()), float(gyy.sum()))

    def b_at(t):
        k = int(np.searchsorted(lev_b, t))
        while k < lb and lev_b[k] == t:  # b levels whose image on the line is t, if in the image
            if hist_b[k]:
                return float(lev_b_int[k])
            k += 1
        return math.nan

    return cand, r, b_at


def _costes_warnings(raw_a, raw_b, t_a, t_b, intercept) -> None:
    """Log Coloc 2's quality warnings for a Costes threshold pair (pixels in the mask)."""
    mean_a = float(raw_a.mean(dtype=np.float64))
    mean_b = float(raw_b.mean(dtype=np.float64))
    if mean_b != 0 and abs(intercept / mean_b) > _INTERCEPT_TO_MEAN_WARN:
        _warn("intercept_far_from_zero", "costes_thresholds: y-intercept far from zero: the regression intercept %.4g is "
                    "%.1f%% of the mean of channel b (Coloc 2 warns above 1%%); consider a ROI or "
                    "background subtraction in both channels", intercept, 100 * abs(intercept / mean_b))
    for name, t, mean in (("a", t_a, mean_a), ("b", t_b, mean_b)):
        if t > mean:
            _warn(f"threshold_{name}_too_high", "costes_thresholds: threshold of channel %s too high: %.4g is above the channel's "
                        "mean %.4g, so few pixels enter the above-threshold calculations", name, t, mean)
    min_a, min_b = float(raw_a.min()), float(raw_b.min())
    if t_a < min_a or t_b < min_b:
        _warn("thresholds_too_low", "costes_thresholds: thresholds too low: (%.4g, %.4g) is below the lowest intensities "
                    "(%.4g, %.4g), so no positive threshold was found and thresholded coefficients use "
                    "every pixel", t_a, t_b, min_a, min_b)
    n_both = sum(int(np.count_nonzero((raw_a[i:i + _CHUNK] >= t_a) & (raw_b[i:i + _CHUNK] >= t_b)))
                 for i in range(0, raw_a.size, _CHUNK))
    if n_both < _MIN_PIXELS_ABOVE_BOTH:
        _warn("few_pixels_above_both", "costes_thresholds: only %d pixels are above both thresholds (fewer than %d); "
                    "thresholded coefficients are unreliable", n_both, _MIN_PIXELS_ABOVE_BOTH)


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


def costes_test(a, b, mask=None, *, n=200, block_size=None, psf_um=None, spacing_um=None,
                seed=0, return_details=False):
    """Costes randomisation test: p-value of Pearson r against block-shuffled `a`.

    Parameters
    ----------
    a, b : array_like
        The two channels, same shape (any dimensionality; numpy or dask).
    mask : array_like of bool, optional
        Pixels to use; all pixels when None.
    n : int, keyword-only
        Number of randomisations (default 200; it was 100 before the PSF options
        were added).
    block_size : int or tuple of int, keyword-only
        Block edge in pixels per axis, about the PSF size (an int applies to every
        axis). Default: 3 along the last two axes and 1 along any others, e.g.
        ``(1, 3, 3)`` for a z-stack. Not together with `psf_um`.
    psf_um : float or tuple of float, keyword-only
        PSF size (e.g. FWHM) in micrometres, one value or one per axis (z is usually
        2-3 times x). The block size per axis is ``max(1, round(psf_um / spacing_um))``,
        anisotropic for z-stacks. Needs `spacing_um`.
    spacing_um : float or tuple of float, keyword-only
        Pixel size per axis in micrometres (numpy axis order), used with `psf_um`.
    seed : int, keyword-only
        Seed of ``numpy.random.default_rng`` (the result is reproducible).
    return_details : bool, keyword-only
        If True return a dict instead of the p-value (see Returns).

    Returns
    -------
    float or dict
        p-value in (0, 1]: small means the observed correlation is significant.
        NaN when the observed r is undefined. With ``return_details=True`` a dict:
        ``p`` (that p-value), ``p_coloc2`` (Coloc 2's "Costes P-Value", near 1 is
        significant), ``fraction_ge`` (fraction of randomised r >= observed r,
        Coloc 2's "Ratio of rand. Pearsons >= actual"), ``r_obs``,
        ``r_rand_mean``, ``r_rand_sd`` (ddof=1), ``n_valid`` and ``block_size``
        (tuple of int).

    Notes
    -----
    Both channels are trimmed at the high end of each axis to a whole number of
    blocks, and the blocks that hold at least one mask pixel are kept. The observed
    r is the Pearson r of those pixels. Each randomisation permutes the blocks of
    `a` (carrying their mask) among those positions and computes r over the pixels
    inside the mask in both the moved block of `a` and the fixed block of `b`. Then

    .. math:: p = \\frac{1 + \\#\\{k : r_k \\ge r_{obs}\\}}{1 + n_{valid}}

    with :math:`n_{valid}` the randomisations whose r is defined. This is the
    conventional permutation p-value, exact for any distribution of the r_k.

    Coloc 2 (``CostesSignificanceTest.calculateStatistics``) reports instead
    :math:`P_{coloc2} = \\Phi((r_{obs} - \\bar r_{rand}) / s_{rand})`, the normal
    CDF of the observed r under a normal fit to the randomised r (mean, sample
    standard deviation), clipped to [0, 1]; near 1 (> 0.95) is significant, so it
    is about ``1 - p``. Coloc 2 also pads edge blocks by mirroring and smooths the
    shuffled image with a Gaussian of the PSF radius before computing r; lungtrack
    trims the edges and does not smooth (blocks of PSF size already keep the
    within-block correlation), so the randomised r distributions are close but not
    identical.

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
    >>> d = costes_test(a, a, n=19, psf_um=0.6, spacing_um=0.2, return_details=True)
    >>> d["block_size"], d["p"], d["p_coloc2"] > 0.95
    ((3, 3), 0.05, True)
    """
    a_arr, b_arr, m_arr = _validate(a, b, mask)
    if m_arr is None:
        m_arr = np.ones(a_arr.shape, dtype=bool)
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    nd = a_arr.ndim
    if psf_um is not None:
        if block_size is not None:
            raise ValueError("give either block_size or psf_um, not both")
        block = _block_from_psf(psf_um, spacing_um, nd)
    elif spacing_um is not None:
        raise ValueError("spacing_um is only used with psf_um; give psf_um too")
    elif block_size is None:
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
    r_rand = r_rand[~np.isnan(r_rand)]
    if math.isnan(r_obs) or r_rand.size == 0:
        p = math.nan
        n_ge = 0
    else:
        n_ge = int(np.count_nonzero(r_rand >= r_obs))
        p = (1 + n_ge) / (1 + r_rand.size)
        log.debug("costes_test: r_obs %.4g, %d of %d randomised r >= r_obs", r_obs, n_ge, r_rand.size)
    if not return_details:
        return p
    mean = float(r_rand.mean()) if r_rand.size else math.nan
    sd = float(r_rand.std(ddof=1)) if r_rand.size > 1 else math.nan
    return {
        "p": p,
        "p_coloc2": _coloc2_p(r_obs, mean, sd),
        "fraction_ge": n_ge / r_rand.size if r_rand.size and not math.isnan(r_obs) else math.nan,
        "r_obs": float(r_obs),
        "r_rand_mean": mean,
        "r_rand_sd": sd,
        "n_valid": int(r_rand.size),
        "block_size": tuple(int(k) for k in block),
    }


def _coloc2_p(r_obs: float, mean: float, sd: float) -> float:
    """Coloc 2's Costes P-Value: normal CDF of r_obs under N(mean, sd), clipped to [0, 1]."""
    if math.isnan(r_obs) or math.isnan(mean) or math.isnan(sd):
        return math.nan
    if sd == 0:
        return 1.0 if r_obs > mean else (0.0 if r_obs < mean else 0.5)
    return min(1.0, max(0.0, 0.5 * math.erfc(-(r_obs - mean) / (sd * math.sqrt(2.0)))))


def _block_from_psf(psf_um, spacing_um, nd: int) -> tuple[int, ...]:
    """Block edge per axis in pixels from a PSF size and pixel spacing, both in um."""
    if spacing_um is None:
        raise ValueError("psf_um needs spacing_um (pixel size per axis in um)")
    psf = np.broadcast_to(np.asarray(psf_um, dtype=np.float64), (nd,)) if np.ndim(psf_um) == 0 \
        else np.asarray(psf_um, dtype=np.float64)
    sp = np.broadcast_to(np.asarray(spacing_um, dtype=np.float64), (nd,)) if np.ndim(spacing_um) == 0 \
        else np.asarray(spacing_um, dtype=np.float64)
    if psf.shape != (nd,):
        raise ValueError(f"psf_um must be one value or {nd} values, got {psf_um!r}")
    if sp.shape != (nd,):
        raise ValueError(f"spacing_um must be one value or {nd} values, got {spacing_um!r}")
    if not (np.all(psf > 0) and np.all(sp > 0)):
        raise ValueError(f"psf_um and spacing_um must be positive, got {psf_um!r} and {spacing_um!r}")
    return tuple(max(1, int(round(p / s))) for p, s in zip(psf, sp))


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
