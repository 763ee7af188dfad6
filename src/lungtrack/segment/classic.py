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
from skimage.feature import peak_local_max

from ..config import RoleSegmentation, TissueSegmentation

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


def subtract_background(channel: np.ndarray, spacing_um, radius_um: float) -> np.ndarray:
    """Remove a smooth background (illumination, diffuse autofluorescence) by a grey opening.

    The opening with a structuring element wider than any cell keeps only what is
    broader than cells. Like ImageJ's rolling ball for large radii, it runs on a
    shrunken image (about 4 px per radius) and is interpolated back, which makes it
    fast at any radius; smoothing afterwards avoids the blocky look of the opening.

    Returns float32, >= 0.
    """
    img = np.asarray(channel, dtype=np.float32)
    spacing_um = np.asarray(spacing_um, float)
    factor = np.maximum(1, np.floor(radius_um / spacing_um / 4.0)).astype(int)
    factor = np.where(np.asarray(img.shape) > 1, factor, 1)
    small = _block_min(img, factor)
    size = [max(1, int(round(2 * radius_um / (s * f)))) | 1 for s, f in zip(spacing_um, factor)]
    size = [sz if n > 1 else 1 for sz, n in zip(size, small.shape)]
    bg_small = ndi.grey_opening(small, size=size)
    bg_small = ndi.uniform_filter(bg_small, size=[max(1, s // 2) for s in size])
    zoom = [n / m for n, m in zip(img.shape, bg_small.shape)]
    bg = ndi.zoom(bg_small, zoom, order=1, mode="nearest", grid_mode=True)
    bg = bg[tuple(slice(0, n) for n in img.shape)]
    return np.clip(img - bg, 0, None)


def _block_min(img: np.ndarray, factor) -> np.ndarray:
    """Minimum over non-overlapping blocks (the shrink step of a rolling-ball background)."""
    pads = [(0, (-n) % f) for n, f in zip(img.shape, factor)]
    padded = np.pad(img, pads, mode="edge")
    shape = []
    for n, f in zip(padded.shape, factor):
        shape += [n // f, f]
    return padded.reshape(shape).min(axis=tuple(range(1, 2 * img.ndim, 2)))


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
    t = float(_THRESHOLDS[method](values))
    if min_signal_ratio > 0:
        t = max(t, min_signal_ratio * autofluorescence_level(values))
    return t


def autofluorescence_level(values: np.ndarray) -> float:
    """Median of the dimmer Otsu class of background-corrected tissue voxels."""
    values = np.asarray(values).ravel()
    if values.size == 0 or float(values.max()) == float(values.min()):
        return float(values.max()) if values.size else 0.0
    low = values[values <= filters.threshold_otsu(values)]
    return float(np.median(low))


def _diameter_to_size(d_um: float, spacing_um) -> float:
    """Equivalent diameter (um) -> object size in voxels (area in 2D, volume in 3D)."""
    vox = float(np.prod(spacing_um))
    if len(spacing_um) == 2:
        return math.pi * (d_um / 2) ** 2 / vox
    return 4.0 / 3.0 * math.pi * (d_um / 2) ** 3 / vox


def size_filter(labels: np.ndarray, spacing_um, min_diameter_um: float, max_diameter_um: float) -> np.ndarray:
    """Drop objects whose equivalent diameter is outside [min, max]; relabel 1..n in order."""
    counts = np.bincount(labels.ravel())
    lo = _diameter_to_size(min_diameter_um, spacing_um)
    hi = _diameter_to_size(max_diameter_um, spacing_um)
    keep = (counts >= lo) & (counts <= hi)
    keep[0] = False
    lut = np.zeros(counts.size, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return lut[labels]


def split_touching(mask: np.ndarray, spacing_um, min_distance_um: float, smooth=None) -> np.ndarray:
    """Split touching cells: watershed on the distance transform from its maxima.

    Seeds are maxima of the (smoothed) Euclidean distance transform in um at least
    ``min_distance_um`` apart, so a cluster of round cells splits into one object
    per cell while an elongated cell stays whole.
    """
    dist = ndi.distance_transform_edt(mask, sampling=spacing_um)
    if smooth:
        dist = ndi.gaussian_filter(dist, _sigma_px(smooth, spacing_um))
    cc = measure.label(mask)
    fp = max(1, int(round(min_distance_um / min(spacing_um))))
    peaks = peak_local_max(dist, min_distance=fp, labels=cc, exclude_border=False,
                           threshold_abs=min_distance_um / 2)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # Components without a peak (small or thin) keep one seed each.
    missing = np.setdiff1d(np.unique(cc[mask]), np.unique(cc[markers > 0]))
    if missing.size:
        extra = np.isin(cc, missing)
        markers[extra] = (cc[extra] + len(peaks)).astype(np.int32)
    return segmentation.watershed(-dist, markers, mask=mask).astype(np.int32)


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
        img = ndi.gaussian_filter(img, _sigma_px(params.smoothing_sigma_um, spacing_um))
    t = threshold_value(img, params.threshold, within=within, min_signal_ratio=params.min_signal_ratio)
    mask = img > t
    mask = ndi.binary_fill_holes(mask) if mask.ndim == 2 else _fill_holes_per_slice(mask)
    if params.split_touching and mask.any():
        labels = split_touching(mask, spacing_um, params.split_min_distance_um)
    else:
        labels = measure.label(mask).astype(np.int32)
    labels = size_filter(labels, spacing_um, params.min_diameter_um, params.max_diameter_um)
    return (labels, t) if return_threshold else labels


def _fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    # In a z-stack a cell's hole is closed in 3D only if closed in every slice: fill per slice.
    return np.stack([ndi.binary_fill_holes(m) for m in mask])


def positive_mask(corrected: np.ndarray, spacing_um, threshold: float, sigma_um: float = 0.5) -> np.ndarray:
    """All label-positive voxels at the role's threshold, without size filter (puncta included).

    ``corrected`` is the background-subtracted channel (`subtract_background`).
    """
    img = ndi.gaussian_filter(np.asarray(corrected, np.float32), _sigma_px(sigma_um, spacing_um))
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
        img = ndi.gaussian_filter(img, _sigma_px(params.smoothing_sigma_um, spacing_um))
    t = threshold_value(img, params.threshold)
    mask = img > t
    vox = float(np.prod(spacing_um))
    mask = morphology.remove_small_holes(mask, max_size=int(params.min_hole_area_um2 / vox))
    mask = morphology.remove_small_objects(mask, max_size=int(params.min_area_um2 / vox))
    return mask
