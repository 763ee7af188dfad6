"""Classical per-role segmentation of one in-memory block (2D or 3D).

Background correction -> smoothing -> threshold -> fill holes -> seeded
watershed split of touching cells -> size filter. Every parameter is in um and
converted with the voxel spacing here, so the same config works at any
magnification.
"""
from __future__ import annotations

import logging
import math

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, measure, morphology, segmentation

from ..config import RoleSegmentation, TissueSegmentation
from .peaks import label_peaks

log = logging.getLogger(__name__)

_THRESHOLDS = {
    "otsu": filters.threshold_otsu,
    "li": filters.threshold_li,
    "triangle": filters.threshold_triangle,
    "yen": filters.threshold_yen,
    # Lung images hold three populations (air, autofluorescent tissue, label):
    # the upper of three Otsu classes separates label from autofluorescence even
    # when labelled cells are few, where two-class Otsu splits air from tissue.
    "multiotsu": lambda v: filters.threshold_multiotsu(v, classes=3)[-1],
}


def _sigma_px(sigma_um: float, spacing_um) -> tuple[float, ...]:
    return tuple(sigma_um / s for s in spacing_um)


def _gaussian_half_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The centre tap, then the taps at distance 1 ... r of ``gaussian_filter1d``'s kernel (its own weights)."""
    radius = int(truncate * float(sigma) + 0.5)
    try:
        from scipy.ndimage._filters import _gaussian_kernel1d
    except ImportError:  # private in scipy: the same formula as scipy 1.10-1.17
        def _gaussian_kernel1d(sigma, order, radius):
            x = np.arange(-radius, radius + 1)
            phi_x = np.exp(-0.5 / (sigma * sigma) * x ** 2)
            return phi_x / phi_x.sum()
    w = _gaussian_kernel1d(float(sigma), 0, radius)[::-1]  # as correlate1d receives it
    return np.ascontiguousarray(w[radius:])


def gaussian(image: np.ndarray, sigma, *, core=None) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(image, sigma)``, bit for bit, about 4 x faster on large images.

    The same float64 operations in the same order as scipy's 1D filter, axis after axis
    with the rounding to the image's type between axes, in compiled loops that vectorise
    (`lungtrack.segment._kernels`: why and how); the last two axes are filtered row by
    row without an intermediate image. Integer images go to scipy.

    Parameters
    ----------
    image : ndarray
    sigma : float or sequence of float
        In px, per axis.
    core : sequence of (start, stop), optional
        Compute only ``gaussian_filter(image, sigma)[start:stop, ...]``, per axis: a
        chunk's window filtered and trimmed in one go.

    Examples
    --------
    >>> img = np.random.default_rng(0).random((50, 300)).astype(np.float32)
    >>> bool(np.array_equal(gaussian(img, 1.5), ndi.gaussian_filter(img, 1.5)))
    True
    >>> bool(np.array_equal(gaussian(img, 1.5, core=[(5, 20), (0, 300)]), ndi.gaussian_filter(img, 1.5)[5:20]))
    True
    """
    img = np.asarray(image)
    nd = img.ndim
    sig = np.broadcast_to(np.asarray(sigma, float), (nd,))
    core = [(0, n) for n in img.shape] if core is None else [(int(a), int(b)) for a, b in core]
    trim = tuple(slice(a, b) for a, b in core)
    if nd == 0 or img.dtype not in (np.float32, np.float64):
        return ndi.gaussian_filter(img, tuple(sig))[trim]
    from ._kernels import filter_axis, filter_last_two

    active = [ax for ax in range(nd) if sig[ax] > 1e-15]  # scipy skips the others
    # axes that are not filtered are trimmed first
    src = np.ascontiguousarray(img[tuple(slice(None) if ax in active else trim[ax] for ax in range(nd))])
    if not active:
        return src.copy() if np.shares_memory(src, img) else src
    fused = active[-2:] if len(active) >= 2 and active[-2:] == [nd - 2, nd - 1] else []
    for ax in active:
        if ax in fused:
            break
        shape = list(src.shape)
        shape[ax] = core[ax][1] - core[ax][0]
        out = np.empty(shape, img.dtype)
        filter_axis(src, out, _gaussian_half_weights(sig[ax]), ax, lo=core[ax][0])
        src = out
    if fused:
        out = np.empty(src.shape[:-2] + tuple(core[a][1] - core[a][0] for a in fused), img.dtype)
        filter_last_two(src, out, _gaussian_half_weights(sig[nd - 2]), core[nd - 2][0],
                        _gaussian_half_weights(sig[nd - 1]), core[nd - 1][0])
    return out


def subtract_background(channel: np.ndarray, spacing_um, radius_um: float) -> np.ndarray:
    """Remove a smooth background (illumination, diffuse autofluorescence) by a grey opening.

    The opening with a structuring element wider than any cell keeps only what is
    broader than cells. Like ImageJ's rolling ball for large radii, it runs on a
    shrunken image (block minimum over ``factor`` px, about 4 px per radius) and is
    interpolated back linearly, which makes it fast at any radius; smoothing
    afterwards avoids the blocky look of the opening.

    Every step is local with a known reach (`background_geometry`), and the
    interpolation depends only on a voxel's global index, so
    `lungtrack.segment.blockwise.subtract_background` gives the same bits chunk by chunk.

    Returns float32, >= 0. NaNs are an error (they would spread over the radius).

    Examples
    --------
    >>> img = np.full((40, 40), 10.0); img[18:22, 18:22] = 110
    >>> out = subtract_background(img, (1.0, 1.0), radius_um=8)
    >>> float(out[0, 0]), float(out[20, 20])
    (0.0, 100.0)
    """
    img = np.asarray(channel)
    if img.dtype.kind not in "uif" or img.dtype == np.float16:
        img = img.astype(np.float32)
    if img.dtype.kind == "f" and np.isnan(img).any():
        from ..io import LungtrackInputError

        raise LungtrackInputError("channel: the image has NaN values; replace them (e.g. by 0) before segmenting.")
    factor, size = background_geometry(img.shape, spacing_um, radius_um)
    # min commutes with the (monotonic) conversion to float32: the raw image is shrunk first
    bg_small = _open_small(_block_min(img, factor).astype(np.float32), size)
    padded = np.pad(bg_small, 1, mode="edge")
    return corrected_from_small(img, padded, factor, start=(0,) * img.ndim, small_start=(0,) * img.ndim)


def corrected_from_small(img: np.ndarray, padded_small: np.ndarray, factor, *, start, small_start) -> np.ndarray:
    """``minus_background(float32(img), upsample_linear(padded_small, ...))`` in one compiled pass, bit for bit.

    ``img`` may be any real dtype (converted to float32 voxel by voxel, as ``astype``);
    the background is interpolated row by row, never as a full-size image (the numpy
    version's three temporaries cost more than its arithmetic). Arguments as
    `upsample_linear`, with ``shape = img.shape``.
    """
    from ._kernels import correct_background

    img = np.asarray(img)
    if img.dtype.kind not in "uif" or img.dtype == np.float16:
        img = img.astype(np.float32)
    pad = np.ascontiguousarray(padded_small, dtype=np.float32)
    idx = [_interp_indices(f, st, n, s0, m) for f, st, n, s0, m in
           zip(factor, start, img.shape, small_start, pad.shape)]
    out = np.empty(img.shape, np.float32)
    if img.ndim == 2:  # one plane of a stack
        flat = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.float32))
        correct_background(img[None], pad[None], *flat, *idx[0], *idx[1], out[None])
    else:
        correct_background(img, pad, *idx[0], *idx[1], *idx[2], out)
    return out


def _interp_indices(f: int, st: int, n: int, s0: int, m: int):
    """Per output voxel along one axis: the two shrunken voxels it interpolates between and its weight."""
    i = np.arange(st, st + n, dtype=np.float64)
    u = (i + 0.5) / f - 0.5 if f > 1 else i
    i0 = np.floor(u)
    w = (u - i0).astype(np.float32)
    ja = i0.astype(np.int64) - s0 + 1
    return ja, np.minimum(ja + 1, m - 1), w


def minus_background(img: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """``max(img - bg, 0)`` computed in ``bg``'s memory (a float32 array of the image's shape)."""
    return np.clip(np.subtract(img, bg, out=bg), 0, None, out=bg)


def background_geometry(shape, spacing_um, radius_um: float):
    """Shrink factor per axis and opening size (in shrunken px) of `subtract_background`."""
    spacing_um = np.asarray(spacing_um, float)
    factor = np.maximum(1, np.floor(radius_um / spacing_um / 4.0)).astype(int)
    factor = np.where(np.asarray(shape) > 1, factor, 1)
    small_shape = [-(-n // f) for n, f in zip(shape, factor)]
    size = [max(1, int(round(2 * radius_um / (s * f)))) | 1 for s, f in zip(spacing_um, factor)]
    size = [sz if n > 1 else 1 for sz, n in zip(size, small_shape)]
    return tuple(int(f) for f in factor), tuple(size)


def _open_small(small: np.ndarray, size) -> np.ndarray:
    """Grey opening then a box smoothing of the shrunken image (reach: `_open_reach`)."""
    bg_small = ndi.grey_opening(small, size=size)
    return ndi.uniform_filter(bg_small, size=[max(1, s // 2) for s in size])


def _open_reach(size) -> tuple[int, ...]:
    # erosion + dilation reach 2 * (size // 2); the box filter max(1, size // 2) // 2 more (+1 spare)
    return tuple(2 * (s // 2) + max(1, s // 2) // 2 + 1 for s in size)


def upsample_linear(padded_small: np.ndarray, factor, *, start, shape, small_start) -> np.ndarray:
    """Linear interpolation of a shrunken image back to full resolution, axis by axis.

    Output voxel with global index ``i`` on an axis sits at ``(i + 0.5) / f - 0.5``
    in shrunken coordinates (pixel centres, as ``scipy.ndimage.zoom(grid_mode=True)``
    with zoom exactly ``f``); beyond the first and last centres the edge value is kept.
    ``padded_small`` holds shrunken voxels ``small_start - 1`` ... (one extra on each
    side, edge-replicated at the image border). Written by hand because the result
    must depend only on global indices, so that chunks reproduce the whole image bit for bit.
    """
    out = np.asarray(padded_small, np.float32)
    for ax, (f, st, n, s0) in enumerate(zip(factor, start, shape, small_start)):
        ja, jb, w = _interp_indices(f, st, n, s0, out.shape[ax])
        a = np.take(out, ja, axis=ax)
        b = np.take(out, jb, axis=ax)
        wshape = [1] * out.ndim
        wshape[ax] = n
        # a + w * (b - a), in place: the same float operations without three full-size temporaries (7x faster)
        np.subtract(b, a, out=b)
        np.multiply(b, w.reshape(wshape), out=b)
        out = np.add(a, b, out=a)
    return out


def _block_min(img: np.ndarray, factor) -> np.ndarray:
    """Minimum over non-overlapping blocks (the shrink step of a rolling-ball background)."""
    # one axis at a time (edge-padded to a multiple of f): the first reduction compares whole
    # contiguous rows, 3x faster than one reshape-min over interleaved axes; min is exact in any order
    out = img
    for ax, f in enumerate(factor):
        if f == 1:
            continue
        n = out.shape[ax]
        if n % f:
            out = np.concatenate([out, np.take(out, [n - 1] * ((-n) % f), axis=ax)], axis=ax)
        out = out.reshape(out.shape[:ax] + (out.shape[ax] // f, f) + out.shape[ax + 1:]).min(axis=ax + 1)
    return out


def threshold_value(image: np.ndarray, method, *, within: np.ndarray | None = None,
                    min_signal_ratio: float = 0.0) -> float:
    """A fixed threshold, or a histogram method on the voxels ``within`` a mask (all if None).

    With ``min_signal_ratio > 0`` the threshold is at least that many times the
    autofluorescence level: the median of the voxels in the dimmer Otsu class.
    Inside lung tissue those are septa (and cells' dim edges), whether labelled
    cells are absent, few, or most of a small field; so an image without labelled
    cells yields no object instead of split autofluorescence texture.
    """
    if isinstance(method, (int, float)):
        return float(method)
    values = np.asarray(image)
    if within is not None and np.any(within):
        values = values[np.asarray(within, bool)]
    values = values.ravel()
    if values.size == 0 or float(values.max()) == float(values.min()):
        return float("inf")
    hist = histogram(values) if method in _HIST_METHODS else None
    t = float(_THRESHOLDS[method](values)) if hist is None else hist_threshold(method, hist[0], hist[1])
    if min_signal_ratio > 0:
        # the floor's Otsu split is the threshold itself when the method is Otsu (one histogram, not two)
        t = max(t, min_signal_ratio * autofluorescence_level(values, otsu=t if method == "otsu" else None, hist=hist))
    return t


_HIST_METHODS = ("otsu", "multiotsu", "yen")  # scikit-image computes these from a 256-bin histogram


def histogram(values: np.ndarray, nbins: int = 256):
    """``skimage.exposure.histogram(values, nbins)`` of a float array, in one compiled pass: counts, centres, edges.

    The same counts (np.histogram's bins and rule; `lungtrack.segment._kernels.histogram_counts`),
    0.03 s instead of 0.07 s for 10 million voxels. ``values`` must not be constant.

    Examples
    --------
    >>> from skimage import exposure
    >>> v = np.random.default_rng(0).random(1000).astype(np.float32)
    >>> counts, centres, _ = histogram(v)
    >>> ref = exposure.histogram(v)
    >>> bool(np.array_equal(counts, ref[0]) and np.array_equal(centres, ref[1]))
    True
    """
    from ._kernels import histogram_counts

    values = np.asarray(values).ravel()
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    # numpy's edges: its linspace over (min, max) in the values' type
    edges = np.histogram_bin_edges(np.zeros(0, values.dtype), bins=nbins, range=(values.min(), values.max()))
    return histogram_counts(values, edges), (edges[:-1] + edges[1:]) / 2.0, edges


def hist_threshold(method: str, counts, centres) -> float:
    """A histogram method's threshold from (counts, bin centres): the value scikit-image gives on the voxels."""
    if method == "otsu":
        return float(filters.threshold_otsu(hist=(counts, centres)))
    if method == "multiotsu":  # normalised, as scikit-image's histogram of an image (not of given counts)
        return float(filters.threshold_multiotsu(hist=(counts / np.sum(counts), centres), classes=3)[-1])
    return float(filters.threshold_yen(hist=(counts, centres)))


def autofluorescence_level(values: np.ndarray, otsu: float | None = None, hist=None) -> float:
    """Median of the dimmer Otsu class of background-corrected tissue voxels.

    ``otsu``: that split, if known; ``hist``: `histogram` of ``values``, if known. The
    median is ``np.median``'s, found from the histogram's counts: only the bin that
    holds the middle is gathered and sorted (a partition of millions of voxels took
    45-60 ms, this 10-20 ms).

    Examples
    --------
    >>> v = np.random.default_rng(1).gamma(2.0, size=10001).astype(np.float32)
    >>> from skimage import filters
    >>> autofluorescence_level(v) == float(np.median(v[v <= filters.threshold_otsu(v)]))
    True
    """
    values = np.asarray(values).ravel()
    if values.size == 0 or float(values.max()) == float(values.min()):
        return float(values.max()) if values.size else 0.0
    counts, centres, edges = histogram(values) if hist is None else hist
    t = float(filters.threshold_otsu(hist=(counts, centres))) if otsu is None else otsu
    low = values <= t  # (as values[values <= t]: the same comparison)
    nb = len(counts)
    # bins before the one that holds t lie wholly below it; that one is counted
    p = int(np.clip(np.searchsorted(edges, edges.dtype.type(t), side="right") - 1, 0, nb - 1))
    cum = np.cumsum(counts[:p])
    in_p = (values >= edges[p]) & low
    n_p = int(np.count_nonzero(in_p))
    cum = np.r_[cum, (cum[-1] if p else 0) + n_p]
    n = int(cum[-1])
    ks = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    parts = {}

    def kth(k):
        b = int(np.searchsorted(cum, k, side="right"))
        if b not in parts:
            if b == p:
                sel = in_p
            else:  # bin b < p: [edges[b], edges[b + 1]) (np.histogram's half-open bins)
                sel = (values >= edges[b]) & (values < edges[b + 1])
            parts[b] = np.sort(values[sel])
        return parts[b][k - (int(cum[b - 1]) if b else 0)]

    # np.median: the middle value, or the mean of the two middle ones (in the values' type)
    return float(np.mean(np.array([kth(k) for k in ks], dtype=values.dtype)))


def _diameter_to_size(d_um: float, spacing_um) -> float:
    """Equivalent diameter (um) -> object size in voxels (area in 2D, volume in 3D)."""
    vox = float(np.prod(spacing_um))
    if len(spacing_um) == 2:
        return math.pi * (d_um / 2) ** 2 / vox
    return 4.0 / 3.0 * math.pi * (d_um / 2) ** 3 / vox


def size_filter(labels: np.ndarray, spacing_um, min_diameter_um: float, max_diameter_um: float) -> np.ndarray:
    """Drop objects whose equivalent diameter is outside [min, max]; relabel 1..n in order."""
    return _size_lut(np.bincount(labels.ravel()), spacing_um, min_diameter_um, max_diameter_um)[labels]


def _size_lut(counts, spacing_um, min_diameter_um: float, max_diameter_um: float) -> np.ndarray:
    """Old label -> new label (0: dropped) from the voxel count per label (label 0 first)."""
    lo = _diameter_to_size(min_diameter_um, spacing_um)
    hi = _diameter_to_size(max_diameter_um, spacing_um)
    keep = (counts >= lo) & (counts <= hi)
    keep[0] = False
    lut = np.zeros(counts.size, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return lut


def split_touching(mask: np.ndarray, spacing_um, min_distance_um: float) -> np.ndarray:
    """Split touching cells: watershed on the distance transform from its maxima.

    Seeds are maxima of the Euclidean distance transform in um at least
    ``min_distance_um`` apart, so a cluster of round cells splits into one object
    per cell while an elongated cell stays whole.

    Each connected component (full connectivity) is split on its own, in its
    bounding box grown by one voxel (`split_component`): the result depends only
    on the component, which is what lets `lungtrack.segment.blockwise` reproduce it
    chunk by chunk. Objects are numbered component by component (components in
    raster order of their first voxel), seeds within a component by decreasing
    distance; a component without a seed stays one object.

    Examples
    --------
    >>> yy, xx = np.mgrid[:40, :60]
    >>> mask = ((yy - 20) ** 2 + (xx - 20) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 36) ** 2 < 100)
    >>> int(split_touching(mask, (1.0, 1.0), 8).max())
    2
    """
    mask = np.asarray(mask, bool)
    vox, labels, _ = _split_labels(mask, spacing_um, min_distance_um)
    out = np.zeros(mask.shape, np.int32)
    out.ravel()[vox] = labels
    return out


def _split_labels(mask: np.ndarray, spacing_um, min_distance_um: float):
    """`split_touching` as (flat voxel indices, their labels, number of labels): no full-size temporaries."""
    cc, n = ndi.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    boxes = ndi.find_objects(cc)
    vox, comp, seed, n_seeds = split_components(cc, np.arange(1, n + 1), boxes, spacing_um, min_distance_um)
    first = np.cumsum(n_seeds) - n_seeds  # objects before each component
    fg = seed > 0
    return vox[fg], (first[comp[fg] - 1] + seed[fg]).astype(np.int32), int(n_seeds.sum())


_PACK_MAX_BOX = 1 << 20  # voxels: a larger box is split on its own
_PACK_MAX = 1 << 23  # voxels of boxes packed into one array at most


def split_components(cc: np.ndarray, ids, boxes, spacing_um, min_distance_um: float):
    """`split_component` for many components of a label image at once.

    ``ids`` are labels in ``cc`` and ``boxes`` their bounding boxes (tuples of slices, or
    a pair of (start, stop) arrays of shape (len(ids), ndim)). Each component
    is split as `split_component` splits it in its bounding box grown by one voxel
    (so the result depends on the component only), but the boxes are packed side by
    side into one array (`_pack_boxes`), so that the distance transform, the maxima
    (`lungtrack.segment.peaks.label_peaks`) and the face-connected pieces take one
    call for all components instead of one per component (13,000 nuclei: Python
    overhead that also held the GIL). Components with several seeds share one
    watershed call too, except those with two seeds of equal distance value, which
    get their own (see the comment in `_split_packed`).

    Returns
    -------
    vox : ndarray of intp
        Flat indices (into ``cc``) of the components' voxels.
    comp : ndarray of intp
        For each voxel, the position (1-based) of its component in ``ids``.
    seed : ndarray of int32
        For each voxel, its seed number within its component (1..n; 0: not reached by
        the flooding, i.e. not face-connected to any seed).
    n_seeds : ndarray of int64
        Seeds per component (at least 1).
    """
    spacing_um = tuple(float(s) for s in spacing_um)
    ids = np.asarray(ids)
    k = ids.size
    n_seeds = np.ones(k, np.int64)
    parts = []
    if k:
        if isinstance(boxes, tuple) and len(boxes) == 2 and isinstance(boxes[0], np.ndarray):
            start, stop = (np.asarray(b, np.intp).reshape(k, cc.ndim) for b in boxes)
        else:
            start = np.array([[b.start for b in sl] for sl in boxes], np.intp).reshape(k, cc.ndim)
            stop = np.array([[b.stop for b in sl] for sl in boxes], np.intp).reshape(k, cc.ndim)
        vol = np.prod(np.minimum(stop + 1, cc.shape) - np.maximum(start - 1, 0), axis=1)
        for j in np.flatnonzero(vol > _PACK_MAX_BOX):  # a large box alone: no per-voxel index arrays
            box = tuple(slice(int(a), int(b)) for a, b in zip(np.maximum(start[j] - 1, 0),
                                                             np.minimum(stop[j] + 1, cc.shape)))
            comp_j = cc[box] == ids[j]
            lab, n_seeds[j] = split_component(comp_j, spacing_um, min_distance_um)
            where = np.nonzero(comp_j)
            vox = np.ravel_multi_index(tuple(w + b.start for w, b in zip(where, box)), cc.shape)
            parts.append((vox, np.full(vox.size, j + 1, np.intp), lab[where].astype(np.int32)))
        small = np.flatnonzero(vol <= _PACK_MAX_BOX)
        # z-stacks: boxes of similar depth share an array (the packing pads every box to the deepest)
        depth = np.ceil(np.log2(stop[small, :-2] - start[small, :-2] + 2)).astype(int)
        groups = [small] if cc.ndim == 2 else \
            [small[(depth == d).all(axis=1)] for d in np.unique(depth, axis=0)]
        for group in groups:
            # at most _PACK_MAX voxels of boxes per array (bounds the index arrays)
            for sel in np.split(group, np.flatnonzero(np.diff(np.cumsum(vol[group]) // _PACK_MAX)) + 1):
                if sel.size == 0:
                    continue
                vox, comp, seed, n_per = _split_packed(cc, ids[sel], start[sel], stop[sel], spacing_um,
                                                       min_distance_um)
                parts.append((vox, sel[comp - 1] + 1, seed))
                n_seeds[sel] = np.maximum(n_per, 1)
    if not parts:
        e = np.zeros(0, np.intp)
        return e, e, np.zeros(0, np.int32), n_seeds
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), n_seeds)


def _split_packed(cc, ids, start, stop, spacing_um, min_distance_um):
    """`split_components` of some components, their grown boxes packed into one array."""
    k, ndim = start.shape
    lo = np.maximum(start - 1, 0)
    size = np.minimum(stop + 1, cc.shape) - lo
    fp = _seed_window_px(min_distance_um, spacing_um)
    # boxes more than the maxima's window apart: each voxel's window holds only its own component
    org, canvas_shape = _pack_boxes(size, gap=fp)
    box_of, local = _box_voxels(size)
    g_flat = np.ravel_multi_index(tuple((lo[box_of] + local).T), cc.shape)
    c_flat = np.ravel_multi_index(tuple((org[box_of] + local).T), canvas_shape)
    del local
    is_comp = cc.ravel()[g_flat] == ids[box_of]
    vox, c_flat, comp = g_flat[is_comp], c_flat[is_comp], box_of[is_comp] + 1
    del g_flat, box_of, is_comp
    canvas = np.zeros(canvas_shape, bool)
    canvas.ravel()[c_flat] = True
    # One distance transform for all boxes: each keeps its ring of background (it is grown by one
    # voxel), so along every line through a box the nearest background lies inside the box and the
    # transform there is the box's own, bit for bit (tests/test_segment.py compares). A box cut by the
    # image edge has no ring on that side (beyond the edge is not background): those get their own.
    dist = ndi.distance_transform_edt(canvas, sampling=spacing_um)
    for j in np.flatnonzero(np.any((start == 0) | (stop == cc.shape), axis=1)):
        slot = tuple(slice(o, o + n) for o, n in zip(org[j], size[j]))
        comp_j = canvas[slot]
        dist[slot] = np.where(comp_j, ndi.distance_transform_edt(comp_j, sampling=spacing_um), 0.0)
    lab = np.zeros(canvas_shape, np.int32)
    lab.ravel()[c_flat] = comp
    peaks = label_peaks(dist, lab, fp, min_distance_um / 2, separated=True)
    comp_of = lab[tuple(peaks.T)] if len(peaks) else np.zeros(0, np.int32)
    n_per = np.bincount(comp_of, minlength=k + 1)[1:]
    # peaks come grouped by component, in component order; rank = seed number within the component
    first = np.cumsum(n_per) - n_per
    rank = np.arange(len(peaks)) - first[comp_of - 1] + 1 if len(peaks) else comp_of
    # One seed (or none): the component's part reachable from it (face connectivity), as the
    # watershed would flood it. Several seeds: a watershed (below).
    pieces, n_pieces = ndi.label(canvas, structure=ndi.generate_binary_structure(ndim, 1))
    reached = np.zeros(n_pieces + 1, np.int32)
    one = n_per[comp_of - 1] == 1 if len(peaks) else np.zeros(0, bool)
    reached[pieces[tuple(peaks[one].T)]] = 1
    seed = np.where(n_per[comp - 1] == 0, 1, reached[pieces.ravel()[c_flat]]).astype(np.int32)
    many = np.flatnonzero(n_per > 1) + 1
    if many.size:
        seed_canvas = np.zeros(canvas_shape, np.int32)
        # skimage's heap gives every marker age 0, so markers of equal value are popped in an order
        # that depends on the whole heap. A component whose seeds all differ in value floods the same
        # whatever else is in the heap: those share one watershed call; the others get their own.
        pv = dist[tuple(peaks.T)] if len(peaks) else np.zeros(0)
        o = np.lexsort((pv, comp_of))
        tie = (comp_of[o][1:] == comp_of[o][:-1]) & (pv[o][1:] == pv[o][:-1])
        tied = np.zeros(k + 1, bool)
        tied[comp_of[o][1:][tie]] = True
        shared = many[~tied[many]]
        if shared.size:
            in_shared = np.zeros(k + 1, bool)
            in_shared[shared] = True
            markers = np.zeros(canvas_shape, np.int32)
            sel = in_shared[comp_of]
            markers[tuple(peaks[sel].T)] = rank[sel]
            seed_canvas = segmentation.watershed(-dist, markers, mask=in_shared[lab]).astype(np.int32)
        for j in many[tied[many]]:
            slot = tuple(slice(o, o + n) for o, n in zip(org[j - 1], size[j - 1]))
            mask_j = lab[slot] == j
            markers = np.zeros(mask_j.shape, np.int32)
            sl = slice(first[j - 1], first[j - 1] + n_per[j - 1])
            markers[tuple((peaks[sl] - org[j - 1]).T)] = rank[sl]
            seed_canvas[slot] = segmentation.watershed(-dist[slot], markers, mask=mask_j)
        is_many = n_per[comp - 1] > 1
        seed[is_many] = seed_canvas.ravel()[c_flat[is_many]]
    return vox, comp, seed, n_per


def _box_voxels(size: np.ndarray):
    """Every voxel of every box: (box index, coordinates within the box); boxes in order, raster order within."""
    vol = np.prod(size, axis=1)
    box_of = np.repeat(np.arange(len(size)), vol)
    rest = np.arange(int(vol.sum()), dtype=np.intp) - np.repeat(np.cumsum(vol) - vol, vol)
    local = np.empty((rest.size, size.shape[1]), np.intp)
    for a in range(size.shape[1] - 1, -1, -1):
        n = size[box_of, a]
        local[:, a] = rest % n
        rest //= n
    return box_of, local


def _pack_boxes(size: np.ndarray, gap: int = 1, width: int = 2048):
    """Origins for boxes of the given sizes in one array, without overlap and ``gap`` voxels apart.

    Shelf packing: boxes sorted tallest first (second-last axis) are laid along the last
    axis in rows of about ``width`` voxels, rows stacked along the second-last axis;
    earlier axes take the largest extent. Returns the origins (k, ndim) and the array's shape.
    """
    k, ndim = size.shape
    ext = size + gap
    order = np.argsort(-ext[:, -2], kind="stable")
    x_end = np.cumsum(ext[order, -1])
    x0 = x_end - ext[order, -1]
    row = x0 // width  # a row holds the boxes that start within it: consecutive, no overlap
    _, row_first = np.unique(row, return_index=True)
    row_h = ext[order, -2][row_first]  # the row's first box is its tallest
    row_y = np.cumsum(row_h) - row_h
    rank = np.searchsorted(np.unique(row), row)
    org = np.full((k, ndim), gap, np.intp)
    org[order, -1] = x0 - row * width + gap
    org[order, -2] = row_y[rank] + gap
    shape = [int(ext[:, a].max()) + gap for a in range(ndim)]
    shape[-2] = int(row_h.sum()) + gap
    shape[-1] = int((x_end - row * width).max()) + gap
    return org, tuple(shape)


def _seed_window_px(min_distance_um: float, spacing_um) -> int:
    """``min_distance`` of the distance maxima in voxels (on the finest axis), at least 1."""
    return max(1, int(round(min_distance_um / min(spacing_um))))


def grow_box(sl, shape, by: int = 1) -> tuple[slice, ...]:
    """A bounding box (tuple of slices) grown by ``by`` voxels, clipped to the image."""
    return tuple(slice(max(0, s.start - by), min(n, s.stop + by)) for s, n in zip(sl, shape))


def split_component(component: np.ndarray, spacing_um, min_distance_um: float):
    """Seeded watershed split of ONE connected component given as a boolean crop.

    Returns ``(labels, n_seeds)``: labels 1..n_seeds inside the component (a component
    without a distance maximum keeps one seed: itself).
    """
    dist = ndi.distance_transform_edt(component, sampling=spacing_um)
    fp = _seed_window_px(min_distance_um, spacing_um)
    peaks = label_peaks(dist, component.astype(np.int32), fp, min_distance_um / 2, separated=True)
    if len(peaks) == 0:
        return component.astype(np.int32), 1
    markers = np.zeros(component.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return segmentation.watershed(-dist, markers, mask=component).astype(np.int32), len(peaks)


def segment_cells(channel: np.ndarray, spacing_um, params: RoleSegmentation, *, within: np.ndarray | None = None,
                  return_threshold: bool = False):
    """Segment one cell role in one channel (2D or 3D numpy array).

    Parameters
    ----------
    channel : ndarray
        (Y, X) or (Z, Y, X) intensities.
    spacing_um : sequence of float
        Voxel size per axis of ``channel`` in um.
    params : RoleSegmentation
        Physical parameters (see `lungtrack.config.RoleSegmentation`).
    within : ndarray of bool, optional
        Tissue mask: the threshold is computed from these voxels only.
    return_threshold : bool
        Also return the threshold (in background-corrected intensity units).

    Returns
    -------
    labels : ndarray of int32
        0 is background; objects numbered 1..n.

    Examples
    --------
    >>> from lungtrack.config import RoleSegmentation
    >>> img = np.zeros((64, 64)); img[10:30, 10:30] = 100; img[40:60, 35:55] = 80
    >>> lab = segment_cells(img, (1.0, 1.0), RoleSegmentation(min_diameter_um=5, background_radius_um=30))
    >>> int(lab.max())
    2
    """
    spacing_um = tuple(float(s) for s in spacing_um)
    corrected = subtract_background(channel, spacing_um, params.background_radius_um)
    return segment_corrected(corrected, spacing_um, params, within=within, return_threshold=return_threshold)


def segment_corrected(corrected: np.ndarray, spacing_um, params: RoleSegmentation, *,
                      within: np.ndarray | None = None, return_threshold: bool = False):
    """`segment_cells` on a channel whose background is already subtracted.

    Lets a caller that also needs the corrected image (engulfment, positive mask)
    subtract the background once.

    Examples
    --------
    >>> from lungtrack.config import RoleSegmentation
    >>> img = np.zeros((64, 64), np.float32); img[10:30, 10:30] = 100
    >>> int(segment_corrected(img, (1.0, 1.0), RoleSegmentation(min_diameter_um=5)).max())
    1
    """
    spacing_um = tuple(float(s) for s in spacing_um)
    img = corrected
    if params.smoothing_sigma_um > 0:
        img = gaussian(img, _sigma_px(params.smoothing_sigma_um, spacing_um))
    t = threshold_value(img, params.threshold, within=within, min_signal_ratio=params.min_signal_ratio)
    mask = img > t
    mask = fill_holes(mask)
    if params.split_touching and mask.any():
        # size filter on the split's voxel list: no full-size passes over the label image
        vox, lab, n = _split_labels(mask, spacing_um, params.split_min_distance_um)
        lut = _size_lut(np.bincount(lab, minlength=n + 1), spacing_um, params.min_diameter_um,
                        params.max_diameter_um)
        labels = np.zeros(mask.shape, np.int32)
        labels.ravel()[vox] = lut[lab]
    else:
        labels = size_filter(measure.label(mask).astype(np.int32), spacing_um, params.min_diameter_um,
                             params.max_diameter_um)
    return (labels, t) if return_threshold else labels


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`scipy.ndimage.binary_fill_holes` (2D), per z-slice for a (Z, Y, X) stack; same result, faster.

    A hole is a background component (face connectivity, the default structure of
    ``binary_fill_holes``) that does not reach the image edge. One labelling of the
    background finds them all, where scipy grows the outside by iterated dilation
    (about 5x slower on 2048 x 2048). In a z-stack a cell's hole is closed in 3D only
    if closed in every slice, hence per slice.

    Examples
    --------
    >>> m = np.zeros((7, 7), bool); m[1:6, 1:6] = True; m[3, 3] = False
    >>> bool(fill_holes(m)[3, 3]), bool(fill_holes(m)[0, 0])
    (True, False)
    """
    mask = np.asarray(mask, bool)
    if mask.ndim == 3:
        return np.stack([fill_holes(m) for m in mask]) if mask.shape[0] else mask.copy()
    background, n = ndi.label(~mask)
    outside = np.zeros(n + 1, bool)
    for ax in range(mask.ndim):  # components on any edge of the image are the outside
        outside[np.take(background, 0, axis=ax)] = True
        outside[np.take(background, -1, axis=ax)] = True
    outside[0] = False  # label 0: the mask itself
    return ~outside[background]



def positive_mask(corrected: np.ndarray, spacing_um, threshold: float, sigma_um: float = 0.5) -> np.ndarray:
    """All label-positive voxels at the role's threshold, without size filter (puncta included).

    ``corrected`` is the background-subtracted channel (`subtract_background`).
    """
    img = gaussian(np.asarray(corrected, np.float32), _sigma_px(sigma_um, spacing_um))
    return img > threshold


def tissue_mask(image: np.ndarray, spacing_um, params: TissueSegmentation) -> np.ndarray:
    """Tissue (septa, vessel walls, cells) vs air space, from autofluorescence.

    ``image`` is one channel or a stack of channels (C first); channels are
    scaled by their own median-to-99th-percentile range and averaged, so every
    channel's autofluorescence contributes.
    """
    img = np.asarray(image, dtype=np.float32)
    spacing_um = tuple(float(s) for s in spacing_um)
    if img.ndim == len(spacing_um) + 1:
        scaled = []
        for ch in img:
            lo, hi = np.percentile(ch, [1, 99])
            scaled.append((ch - lo) / max(hi - lo, 1e-6))
        img = np.clip(np.mean(scaled, axis=0), 0, 1.5)
    if params.smoothing_sigma_um > 0:
        img = gaussian(img, _sigma_px(params.smoothing_sigma_um, spacing_um))
    t = threshold_value(img, params.threshold)
    mask = img > t
    vox = float(np.prod(spacing_um))
    mask = morphology.remove_small_holes(mask, max_size=int(params.min_hole_area_um2 / vox))
    mask = morphology.remove_small_objects(mask, max_size=int(params.min_area_um2 / vox))
    return mask
