"""Dying MSCs: puncta of MSC label grouped into one fragmented cell each.

A dying MSC breaks into puncta scattered over its former body. Counting them as
cells would inflate MSC numbers exactly when MSCs disappear, so MSC-positive puncta
that lie outside intact MSCs and outside macrophages (label inside a macrophage is
engulfed debris) and lie within ``fragment_distance_um`` of each other (surface to
surface) are grouped into one object: a fragmented MSC, ``intact = False``, with
``n_fragments`` puncta.

Examples
--------
>>> pos = np.zeros((30, 40), bool)
>>> for y, x in [(5, 5), (5, 10), (9, 7), (25, 35)]:   # three close puncta, one far away
...     pos[y - 1:y + 2, x - 1:x + 2] = True
>>> lab, n = group_fragments(pos, np.zeros((30, 40), int), (1.0, 1.0), distance_um=4, min_diameter_um=1)
>>> int(lab.max()), n.tolist()
(1, [3])
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

__all__ = ["group_fragments"]


def group_fragments(msc_positive: np.ndarray, msc_labels: np.ndarray, spacing_um, *, distance_um: float,
                    min_diameter_um: float = 1.0, exclude: np.ndarray | None = None, min_fragments: int = 3,
                    label_offset: int = 0):
    """Group MSC-label puncta (outside intact MSCs and ``exclude``) into fragmented MSCs.

    Parameters
    ----------
    msc_positive : ndarray of bool
        Every MSC-label-positive voxel (`lungtrack.segment.positive_mask`).
    msc_labels : ndarray of int
        Intact MSC objects; positive components touching them are not fragments.
    spacing_um : sequence of float
        Voxel size per axis, in um.
    distance_um : float
        Puncta whose surfaces are at most this far apart belong to the same dying cell
        (single linkage).
    min_diameter_um : float
        Puncta with a smaller equivalent diameter are dropped as noise.
    exclude : ndarray of bool or int, optional
        Voxels that cannot hold fragments (macrophages: label inside them is engulfed);
        positive components touching them are dropped.
    min_fragments : int
        A group needs at least this many puncta to be a fragmented MSC (a lone punctum
        is not evidence of a dying cell).
    label_offset : int
        Group labels start at ``label_offset + 1`` (so that they follow the intact MSCs).

    Returns
    -------
    labels : ndarray of int32
        Each punctum's voxels carry its group's label; 0 elsewhere.
    n_fragments : ndarray of int64
        Puncta per group, for labels ``label_offset + 1 ...`` in order.

    Notes
    -----
    Single-linkage grouping at a surface distance ``d`` equals the connected
    components of the puncta dilated by ``d / 2`` (a Euclidean distance transform in
    um, so anisotropic voxels are handled); each punctum takes the group of its dilated
    component.
    """
    spacing_um = tuple(float(s) for s in spacing_um)
    pos = np.asarray(msc_positive, bool)
    # A positive component that reaches an intact MSC (or an excluded region) is part of
    # that cell (its dim edge, a piece the size filter dropped), not a fragment.
    puncta, n = ndi.label(pos)
    taken = np.asarray(msc_labels) > 0
    if exclude is not None:
        taken = taken | (np.asarray(exclude) > 0)
    hit = np.unique(puncta[taken & pos])
    puncta[np.isin(puncta, hit[hit > 0])] = 0
    empty = (np.zeros(pos.shape, np.int32), np.zeros(0, np.int64))
    if n == 0:
        return empty
    vox = float(np.prod(spacing_um))
    if pos.ndim == 2:
        min_size = math.pi * (min_diameter_um / 2) ** 2 / vox
    else:
        min_size = 4.0 / 3.0 * math.pi * (min_diameter_um / 2) ** 3 / vox
    sizes = np.bincount(puncta.ravel())
    small = sizes < min_size
    small[0] = False
    puncta[small[puncta]] = 0
    if not puncta.any():
        return empty
    # Dilate by half the linking distance: touching dilations = surfaces within distance_um.
    near = ndi.distance_transform_edt(puncta == 0, sampling=spacing_um) <= distance_um / 2
    groups, _ = ndi.label(near)
    ids = np.unique(puncta[puncta > 0])
    group_of = np.zeros(int(puncta.max()) + 1, np.int64)
    # The group of each punctum: the dilated component under any of its voxels.
    first = ndi.labeled_comprehension(groups, puncta, ids, np.max, np.int64, 0)
    group_of[ids] = first
    counts = np.bincount(group_of[ids], minlength=int(groups.max()) + 1)
    keep = counts >= min_fragments
    keep[0] = False
    lut = np.zeros(counts.size, np.int64)
    lut[keep] = np.arange(1, int(keep.sum()) + 1) + label_offset
    out = lut[group_of][puncta].astype(np.int32)
    out[puncta == 0] = 0
    n_fragments = counts[keep].astype(np.int64)
    return out, n_fragments
