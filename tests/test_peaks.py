"""`segment.peaks.label_peaks` against scikit-image's `peak_local_max(labels=...)`, the reference it replaces."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.feature import peak_local_max

from lungtrack.segment.peaks import label_peaks


def _scene(rng, ndim, kind):
    shape = tuple(int(n) for n in rng.integers(5, 60 if ndim == 2 else 20, ndim))
    mask = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 3)) > rng.uniform(0.45, 0.55)
    full = np.ones((3,) * ndim, bool)
    if kind == "components":  # what the watershed split passes: separate 8/26-connected components
        lab = ndi.label(mask, full)[0]
    elif kind == "touching":  # labels that touch each other
        lab = (ndi.label(mask)[0] + (np.indices(shape)[0] > shape[0] // 2)) * mask
    elif kind == "disconnected":  # one label made of several pieces
        lab = ndi.label(mask, full)[0] % 3 * mask
    else:  # salt-and-pepper labels
        lab = rng.integers(0, 3, shape) * mask
    return mask, lab.astype(np.int32)


@pytest.mark.parametrize("kind", ["components", "touching", "disconnected", "random"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_equals_peak_local_max(kind, ndim):
    rng = np.random.default_rng(ndim * 10 + len(kind))
    for trial in range(30):
        mask, lab = _scene(rng, ndim, kind)
        sampling = tuple(rng.choice([0.5, 1.0, 2.0], ndim)) if trial % 2 else (1.0,) * ndim
        dist = ndi.distance_transform_edt(mask, sampling=sampling)
        if trial % 5 == 0:
            dist = np.round(dist)  # wide plateaus: ties broken in raster order
        fp, thr = int(rng.integers(1, 6)), float(rng.uniform(0, 2))
        ref = peak_local_max(dist, min_distance=fp, labels=lab, exclude_border=False, threshold_abs=thr)
        got = label_peaks(dist, lab, fp, thr)
        assert got.shape[0] == ref.shape[0], (trial, fp, thr)
        if ref.size:
            np.testing.assert_array_equal(got, ref)


def test_constant_and_single_voxel_labels_follow_peak_local_max():
    """Labels whose voxels are all equal are skimage's 'trivial' case (isolated voxels only)."""
    img = np.zeros((12, 12))
    lab = np.zeros((12, 12), np.int32)
    img[2, 2], lab[2, 2] = 3.0, 1            # one voxel
    img[6:9, 6:9], lab[6:9, 6:9] = 2.0, 2    # flat square
    img[6:8, 1], lab[6:8, 1] = 2.0, 3        # flat 2-voxel line
    ref = peak_local_max(img, min_distance=2, labels=lab, exclude_border=False, threshold_abs=1.0)
    np.testing.assert_array_equal(label_peaks(img, lab, 2, 1.0), ref)
    assert label_peaks(np.zeros((4, 4)), np.zeros((4, 4), int), 2, 0.0).shape == (0, 2)


@pytest.mark.parametrize("ndim", [2, 3])
def test_separated_labels_shortcut_equals_peak_local_max(ndim):
    """With labels more than min_distance apart (the packed split), one maximum filter gives the same peaks."""
    rng = np.random.default_rng(30 + ndim)
    for trial in range(30):
        fp = int(rng.integers(1, 6))
        margin = fp // 2 + 1  # blobs of neighbouring cells at least 2 * margin > fp apart
        cell = int(rng.integers(2 * margin + 3, 2 * margin + 14))
        grid = (3,) * ndim
        lab = np.zeros(tuple(g * cell for g in grid), np.int32)
        for k, idx in enumerate(np.ndindex(*grid), 1):
            inner = tuple(slice(i * cell + margin, (i + 1) * cell - margin) for i in idx)
            shape = tuple(s.stop - s.start for s in inner)
            blob = ndi.gaussian_filter(rng.random(shape), 1.0) > rng.uniform(0.45, 0.55)
            lab[inner][blob] = k if trial % 3 else 1 + k % 2  # also labels made of several blobs
        dist = ndi.distance_transform_edt(lab > 0)
        if trial % 4 == 0:
            dist = np.round(dist)
        thr = float(rng.uniform(0, 1.5))
        ref = peak_local_max(dist, min_distance=fp, labels=lab, exclude_border=False, threshold_abs=thr)
        got = label_peaks(dist, lab, fp, thr, separated=True)
        assert got.shape[0] == ref.shape[0], trial
        if ref.size:
            np.testing.assert_array_equal(got, ref)
