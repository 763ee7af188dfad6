"""Distance-map maxima per label: `skimage.feature.peak_local_max` with ``labels``, without its per-label loop.

Written by hand because scikit-image runs a Python loop over the labels (a crop, a
maximum filter and a KD-tree per label). On a lung section with 13,000 nuclei that loop
was most of the watershed split's time. Worse, its many small calls hand the GIL back
and forth, so two threads ran it at half the speed of one. Here, each label voxel is
compared with its same-label neighbours by array operations over all labels at once.
The result is identical to ``peak_local_max`` (same coordinates, same order:
`tests/test_peaks.py` compares them on random scenes). On 2048² nuclei it takes
0.07 s where ``peak_local_max`` takes 0.45 s.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max

_BATCH = 1 << 18  # voxels per vectorized step (bounds the temporary arrays to a few MB)


def _offsets(ndim: int, reach: int) -> np.ndarray:
    r = np.arange(-reach, reach + 1)
    offs = np.stack(np.meshgrid(*[r] * ndim, indexing="ij"), -1).reshape(-1, ndim)
    return offs[np.any(offs != 0, axis=1)]


def _dominated(flat_img, flat_lab, shape, idx, offsets) -> np.ndarray:
    """For label voxels ``idx`` (flat indices): is a voxel of the same label at one of ``offsets`` brighter?

    Offsets are clipped to the image, which is what ``peak_local_max``'s maximum filter
    with ``mode='nearest'`` on a label's bounding box sees (the clipped voxel is in the window).
    """
    out = np.zeros(idx.size, bool)
    hi = np.asarray(shape) - 1
    strides = np.cumprod((1,) + tuple(shape[::-1]))[:-1][::-1]
    for b in range(0, idx.size, _BATCH):
        i = idx[b:b + _BATCH]
        c = np.stack(np.unravel_index(i, shape), axis=1)
        v, lab, dom = flat_img[i], flat_lab[i], np.zeros(i.size, bool)
        for o in offsets:
            q = np.clip(c + o, 0, hi) @ strides
            dom |= (flat_lab[q] == lab) & (flat_img[q] > v)
        out[b:b + _BATCH] = dom
    return out


def _greedy_spacing(coords: np.ndarray, min_distance: int) -> np.ndarray:
    """Keep points in order unless closer than ``min_distance`` (Chebyshev) to a kept one.

    The rule of scikit-image's ``ensure_spacing`` with ``p_norm=inf`` (its batches give
    the same greedy result); for one label's few peaks.
    """
    kept = [0]
    for k in range(1, len(coords)):
        if np.abs(coords[kept] - coords[k]).max(axis=1).min() >= min_distance:
            kept.append(k)
    return coords[kept]


def label_peaks(image, labels, min_distance: int, threshold: float, *, separated: bool = False) -> np.ndarray:
    """Local maxima of ``image`` within each label, as ``peak_local_max`` finds them.

    Equal to ``peak_local_max(image, min_distance=min_distance, labels=labels,
    exclude_border=False, threshold_abs=threshold)``: a voxel is a peak when no voxel
    of its label in the ``(2 min_distance + 1)`` wide window is brighter, it is above
    ``threshold``, and it is at least ``min_distance`` (Chebyshev) from a brighter peak
    of its label.

    Parameters
    ----------
    image : ndarray
        2D or 3D values (here, a distance transform).
    labels : ndarray of int
        Same shape; 0 is background.
    min_distance : int
        In voxels, >= 1.
    threshold : float
        Peaks must be brighter than this.
    separated : bool
        The caller guarantees that voxels of different labels are more than
        ``min_distance`` apart (Chebyshev): then one maximum filter over the array
        finds the window maxima (as fast for 3D windows of 17^3 voxels as for 2D ones),
        instead of comparing each candidate with every offset of its window.

    Returns
    -------
    ndarray of intp, (n_peaks, ndim)
        Coordinates grouped by label (ascending), brightest first within a label,
        ties in raster order.

    Examples
    --------
    >>> img = np.zeros((9, 20)); img[4, 3] = 5; img[4, 15] = 4; img[4, 16] = 3
    >>> lab = np.zeros((9, 20), int); lab[:, :10] = 1; lab[:, 10:] = 2
    >>> label_peaks(img, lab, 2, 0.5).tolist()
    [[4, 3], [4, 15]]
    """
    image = np.asarray(image)
    labels = np.asarray(labels)
    shape, ndim = image.shape, image.ndim
    flat_img, flat_lab = image.ravel(), labels.ravel()
    idx = np.flatnonzero(flat_lab > 0)
    if idx.size == 0:
        return np.zeros((0, ndim), np.intp)
    n_lab = int(flat_lab[idx].max())
    if separated:
        # only the voxel's own label lies in its window: the plain maximum filter is the label's
        masked = np.where(labels > 0, image, -np.inf)
        top = (masked == ndi.maximum_filter(masked, size=2 * min_distance + 1, mode="nearest")).ravel()[idx]
        # "trivial" for peak_local_max: every voxel of the label is a window maximum (its own rule, below)
        has_dom = np.bincount(flat_lab[idx], minlength=n_lab + 1) > np.bincount(flat_lab[idx[top]],
                                                                                minlength=n_lab + 1)
        cand = idx[top & (flat_img[idx] > threshold) & has_dom[flat_lab[idx]]]
    else:
        # A voxel below a same-label neighbour is no peak. A label where no voxel is below
        # a neighbour is "trivial" for peak_local_max (its own rule, applied below).
        dom = _dominated(flat_img, flat_lab, shape, idx, _offsets(ndim, 1))
        has_dom = np.zeros(n_lab + 1, bool)
        has_dom[flat_lab[idx[dom]]] = True
        cand = idx[~dom & (flat_img[idx] > threshold) & has_dom[flat_lab[idx]]]
        if min_distance > 1 and cand.size:
            cand = cand[~_dominated(flat_img, flat_lab, shape, cand, _offsets(ndim, min_distance))]
    # per label, brightest first, ties in raster order (peak_local_max's stable sort)
    lab_c = flat_lab[cand]
    order = np.lexsort((cand, -flat_img[cand], lab_c))
    cand, lab_c = cand[order], lab_c[order]
    coords = np.stack(np.unravel_index(cand, shape), axis=1).astype(np.intp) if cand.size else \
        np.zeros((0, ndim), np.intp)
    keep = np.ones(cand.size, bool)
    groups: dict[int, np.ndarray] = {}
    if min_distance > 1 and cand.size:
        _, start, count = np.unique(lab_c, return_index=True, return_counts=True)
        two = start[count == 2]  # the common case without a loop: the dimmer goes if too close
        keep[two[np.abs(coords[two] - coords[two + 1]).max(axis=1) < min_distance] + 1] = False
        for s, n in zip(start[count > 2], count[count > 2]):
            groups[int(lab_c[s])] = _greedy_spacing(coords[s:s + n], min_distance)
            keep[s:s + n] = False
    trivial = np.flatnonzero(~has_dom[1:]) + 1
    present = np.zeros(n_lab + 1, bool)
    present[flat_lab[idx]] = True
    trivial = trivial[present[trivial]]
    if trivial.size:  # rare: constant labels (one voxel, or all voxels equally far from the edge)
        boxes = ndi.find_objects(labels, max_label=n_lab)
        for t in trivial:
            box = boxes[t - 1]
            pk = peak_local_max(image[box], min_distance=min_distance, labels=(labels[box] == t).astype(np.int32),
                                exclude_border=False, threshold_abs=threshold)
            groups[int(t)] = (pk + [b.start for b in box]).astype(np.intp).reshape(-1, ndim)
    if not groups:
        return coords[keep]
    glabs = np.fromiter(groups, np.int64, len(groups))
    all_labs = np.concatenate([lab_c[keep], np.repeat(glabs, [len(g) for g in groups.values()])])
    all_coords = np.concatenate([coords[keep]] + list(groups.values()))
    return all_coords[np.argsort(all_labs, kind="stable")]
