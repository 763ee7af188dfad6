"""Seeded watersheds: dense nuclei (h-maxima seeds) and nucleus-seeded cells.

The classic path (`lungtrack.segment.classic.segment_corrected`) seeds its watershed
at distance-transform peaks at least ``split_min_distance_um`` apart. On dense nuclei
(touching, elongated, uneven brightness) a saddle-height criterion separates better:
a maximum of the smoothed distance transform seeds its own object only if it rises
``seed_h_um`` above the saddle to a higher neighbour (h-maxima, Soille 2003). Cells
with a nuclear stain can instead be seeded by their nuclei: one object per nucleus
inside the cell mask (CellProfiler's IdentifySecondaryObjects, watershed variant).

Examples
--------
>>> from lungtrack.config import NucleiSegmentation
>>> img = np.zeros((60, 60), np.float32)
>>> yy, xx = np.mgrid[:60, :60]
>>> for cy, cx in [(30, 20), (30, 35)]:
...     img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 64] = 100.0
>>> p = NucleiSegmentation(method="hmaxima", background="none", min_signal_ratio=0, min_diameter_um=2,
...                        max_diameter_um=30)
>>> int(segment_nuclei(img, (1.0, 1.0), p).max())
2
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import measure, morphology, segmentation

from ..config import RoleSegmentation
from .classic import _sigma_px, fill_holes, size_filter, threshold_value

__all__ = ["segment_nuclei", "split_hmaxima", "split_by_seeds", "threshold_mask"]


def threshold_mask(corrected: np.ndarray, spacing_um, params: RoleSegmentation, *, within=None):
    """Smooth, threshold (as the classic path does) and fill holes; returns ``(mask, threshold)``.

    Examples
    --------
    >>> from lungtrack.config import RoleSegmentation
    >>> img = np.zeros((20, 20), np.float32); img[5:15, 5:15] = 10; img[9:11, 9:11] = 0
    >>> m, t = threshold_mask(img, (1, 1), RoleSegmentation(smoothing_sigma_um=0, threshold=5.0))
    >>> int(m.sum()), t
    (100, 5.0)
    """
    spacing_um = tuple(float(s) for s in spacing_um)
    img = np.asarray(corrected, np.float32)
    if params.smoothing_sigma_um > 0:
        img = ndi.gaussian_filter(img, _sigma_px(params.smoothing_sigma_um, spacing_um))
    t = threshold_value(img, params.threshold, within=within, min_signal_ratio=params.min_signal_ratio)
    mask = img > t
    mask = fill_holes(mask)
    return mask, t


def split_hmaxima(mask: np.ndarray, spacing_um, h_um: float, smoothing_um: float = 0.5) -> np.ndarray:
    """Split touching objects of ``mask`` at distance-transform saddles deeper than ``h_um``.

    Parameters
    ----------
    mask : ndarray of bool
    spacing_um : sequence of float
        Voxel size; the distance transform is in um, so ``h_um`` means the same at any
        magnification and for anisotropic z-stacks.
    h_um : float
        A maximum seeds its own object only if it rises this much above the saddle
        joining it to a higher maximum.
    smoothing_um : float
        Gaussian smoothing of the distance transform (removes seeds from boundary noise).

    Returns
    -------
    ndarray of int32
        Labels 1..n; a component without a seed (too thin) keeps one label.

    Examples
    --------
    >>> m = np.zeros((20, 40), bool); yy, xx = np.mgrid[:20, :40]
    >>> m[((yy - 10) ** 2 + (xx - 12) ** 2 <= 49) | ((yy - 10) ** 2 + (xx - 25) ** 2 <= 36)] = True
    >>> int(split_hmaxima(m, (1, 1), h_um=0.5).max()), int(split_hmaxima(m, (1, 1), h_um=5).max())
    (2, 1)
    """
    spacing_um = tuple(float(s) for s in spacing_um)
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    dist = ndi.distance_transform_edt(mask, sampling=spacing_um)
    if smoothing_um > 0:
        dist = ndi.gaussian_filter(dist, _sigma_px(smoothing_um, spacing_um))
    dist = np.where(mask, dist, 0.0)
    seeds = measure.label(morphology.h_maxima(dist, h_um))
    return _watershed_with_fallback(dist, seeds, mask)


def _watershed_with_fallback(dist: np.ndarray, seeds: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Watershed of ``-dist`` from ``seeds`` inside ``mask``; seedless components stay whole."""
    seeds = np.where(mask, seeds, 0).astype(np.int32)
    cc, n_cc = ndi.label(mask)
    has_seed = np.zeros(n_cc + 1, bool)
    has_seed[np.unique(cc[seeds > 0])] = True
    missing = ~has_seed
    missing[0] = False
    if missing.any():
        extra = missing[cc]
        offset = int(seeds.max())
        seeds[extra] = (cc[extra] + offset).astype(np.int32)
    lab = segmentation.watershed(-dist, seeds, mask=mask)
    # Renumber 1..n (seed labels can have gaps).
    lab, _, _ = segmentation.relabel_sequential(lab.astype(np.int32))
    return lab.astype(np.int32)


def split_by_seeds(mask: np.ndarray, seeds: np.ndarray, spacing_um) -> np.ndarray:
    """One object per seed object (e.g. a nucleus) inside ``mask``, grown by a distance watershed.

    Cells meet where their distance-to-background ridges meet (the watershed of the
    inverted distance transform), so a macrophage keeps its own granules; a component of
    ``mask`` with no seed in it stays one object.

    Examples
    --------
    >>> m = np.zeros((10, 20), bool); m[2:8, 2:18] = True
    >>> s = np.zeros((10, 20), int); s[4:6, 4:6] = 1; s[4:6, 13:15] = 2
    >>> lab = split_by_seeds(m, s, (1, 1)); int(lab.max()), int(lab[5, 3]), int(lab[5, 16])
    (2, 1, 2)
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    seeds = np.asarray(seeds)
    if seeds.shape != mask.shape:
        raise ValueError(f"seed labels shape {seeds.shape} differs from the mask's {mask.shape}")
    dist = ndi.distance_transform_edt(mask, sampling=tuple(float(s) for s in spacing_um))
    return _watershed_with_fallback(dist, seeds, mask)


def segment_nuclei(corrected: np.ndarray, spacing_um, params, *, within=None, return_threshold: bool = False):
    """Nuclei by threshold + h-maxima seeded watershed + size filter (``method="hmaxima"``).

    Parameters
    ----------
    corrected : ndarray
        Background-corrected nuclear channel (see `lungtrack.segment.background`).
    spacing_um : sequence of float
    params : NucleiSegmentation
        Uses smoothing_sigma_um, threshold, min_signal_ratio, seed_h_um,
        seed_smoothing_um, min_diameter_um, max_diameter_um.
    within : ndarray of bool, optional
        The threshold is computed on these voxels only.

    Returns
    -------
    labels : ndarray of int32 (and the threshold if ``return_threshold``)
    """
    spacing_um = tuple(float(s) for s in spacing_um)
    mask, t = threshold_mask(corrected, spacing_um, params, within=within)
    labels = split_hmaxima(mask, spacing_um, params.seed_h_um, params.seed_smoothing_um)
    labels = size_filter(labels, spacing_um, params.min_diameter_um, params.max_diameter_um)
    return (labels, t) if return_threshold else labels
