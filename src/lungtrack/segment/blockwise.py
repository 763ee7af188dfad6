"""Chunked (Dask) segmentation whose result equals whole-image segmentation.

Large sections (10k-40k px) and z-stacks do not fit a single numpy call; here every
step of `lungtrack.segment.classic.segment_cells` runs chunk by chunk and the
result is **identical** (``np.array_equal``, same label numbers) to running it on
the whole image:

- `label`: exact connected-component labelling of a dask boolean array in three
  stages (label each block and keep its faces; join labels that touch across
  faces for every offset of the connectivity structure, with
  `scipy.sparse.csgraph.connected_components`; relabel each block through its own
  lookup table). Components are ordered by their first voxel in raster order,
  which reproduces `scipy.ndimage.label` bit for bit.
- `subtract_background`, `smooth`: local filters through ``map_overlap`` with a
  depth derived from the filter's own reach (``int(truncate * sigma + 0.5)``).
- `threshold_value`: histogram thresholds from the global histogram (the sum of
  per-block histograms over the global range), the autofluorescence floor from an
  exact distributed median; in memory, from the voxels within the mask gathered in
  one pass.
- `fill_holes`: holes are background components (cross connectivity, per z-slice
  in 3D) that do not touch the image border, found with `label`.
- `segment_cells`: the watershed split runs per connected component in its
  bounding box (`classic.split_components`), inside a block with a halo; a
  component that reaches the halo's edge is split on its own, in its bounding box.
- `segment_roles`: segment, measure and write several cell roles, at the same time
  on one pool of worker threads when that is free.
- `measure_objects`: the objects table from additive per-block partial sums.
- `write_labels`: zarr or tiled OME-TIFF, chunk row by chunk row.

Intermediate arrays (the smoothed channel, the components, their seed numbers) are kept in memory
(``persist``) or, with ``tmpdir``, in a temporary zarr store on disk, which
bounds memory by the chunk size for images larger than RAM.

Examples
--------
>>> import dask.array as da
>>> from scipy import ndimage as ndi
>>> m = np.random.default_rng(0).random((50, 70)) > 0.6
>>> lab, n = label(da.from_array(m, chunks=(7, 13)))
>>> ref, nref = ndi.label(m)
>>> bool(np.array_equal(lab.compute(), ref)) and n == nref
True
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import os
import tempfile
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse import csgraph

from ..config import RoleSegmentation
from ..io import LungtrackInputError
from ..measure import _dtype, object_columns
from . import classic

log = logging.getLogger(__name__)

__all__ = ["label", "fill_holes", "subtract_background", "smooth", "threshold_value", "segment_cells",
           "measure_objects", "write_labels", "ChunkedSegmentation", "segment_roles", "RoleResult"]

# Histogram methods whose skimage implementation accepts a histogram: exact from block sums.
_HIST_METHODS = {"otsu", "multiotsu", "yen"}


# --------------------------------------------------------------------------- exact labelling

def _structure(ndim: int, structure=None, connectivity: int | None = None) -> np.ndarray:
    if structure is not None:
        s = np.asarray(structure, bool)
        if s.shape != (3,) * ndim:
            raise ValueError(f"structure must have shape {(3,) * ndim}, got {s.shape}")
        return s
    return ndi.generate_binary_structure(ndim, connectivity or 1)


def _label_block(block: np.ndarray, structure: np.ndarray, boxes: bool = False, keep: bool = False,
                 order: bool = True):
    """Stage 1 for one block: local labels -> (count, raster index of each label's first voxel, faces[, boxes][, labels]).

    With ``boxes``, also each local label's bounding box as (start, stop) arrays of shape (n, ndim);
    with ``keep``, the local label image itself (stage 3 then needs no second labelling);
    without ``order``, no first voxels (empty): for labels whose numbering does not matter.
    """
    lab, n = ndi.label(block, structure=structure)
    if order or boxes:
        from ._kernels import label_summary

        first, lo, hi = label_summary(_as3d(lab), n)
        lo, hi = lo[:, 3 - lab.ndim:], hi[:, 3 - lab.ndim:]
    if not order:
        first = np.zeros(0, np.int64)
    faces = {}
    for ax in range(block.ndim):
        faces[(ax, 0)] = np.take(lab, 0, axis=ax).copy()
        faces[(ax, 1)] = np.take(lab, lab.shape[ax] - 1, axis=ax).copy()
    out = (n, first, faces)
    if boxes:
        out += ((np.ascontiguousarray(lo), np.ascontiguousarray(hi)),)
    return out + (lab,) if keep else out


def _relabel_block(block: np.ndarray, structure: np.ndarray, lut: np.ndarray, lab=None) -> np.ndarray:
    """Stage 3 for one block: its global labels (``lab``: its local labels, if kept from stage 1)."""
    if lab is None:
        lab, _ = ndi.label(block, structure=structure)
    return lut[lab]


@dataclass
class _LabelPlan:
    luts: dict  # block index -> lookup table local label -> global label (0 kept 0)
    n: int
    border: np.ndarray  # global labels with a voxel on the image border (axes given)
    boxes: tuple | None = None  # (start, stop) arrays (n, ndim): global bounding box of label i + 1
    labels: dict | None = None  # block index -> local label image (kept from stage 1), or None
    first: np.ndarray | None = None  # global raster index of label i + 1's first voxel (ordered plans)


def _plan_labels(mask: da.Array, structure: np.ndarray, border_axes=(), scheduler=None, boxes=False,
                 keep=False, order=True) -> _LabelPlan:
    """Stages 1 and 2 of exact labelling: per-block counts and faces -> global lookup tables.

    With ``boxes``, also every component's global bounding box (from the blocks' own boxes);
    with ``keep``, the blocks' local label images (in the driver's memory: local schedulers only);
    without ``order``, global labels are numbered in no particular order (cheaper: no first voxels).
    """
    blocks = mask.to_delayed()
    idx_list = list(np.ndindex(*mask.numblocks))
    tasks = [dask.delayed(_label_block)(blocks[i], structure, boxes, keep, order) for i in idx_list]
    results = dask.compute(*tasks, scheduler=scheduler)
    res = dict(zip(idx_list, results))
    starts = [np.r_[0, np.cumsum(c)] for c in mask.chunks]

    # Offsets making local labels unique, and each label's first voxel as a global raster index.
    offsets, firsts, total = {}, [], 0
    for i in idx_list:
        n, first = res[i][:2]
        offsets[i] = total
        bshape = tuple(mask.chunks[a][i[a]] for a in range(mask.ndim))
        coords = np.unravel_index(first, bshape)
        gcoords = tuple(c + starts[a][i[a]] for a, c in enumerate(coords))
        firsts.append(np.ravel_multi_index(gcoords, mask.shape) if n else np.zeros(0, np.int64))
        total += n
    firsts = np.concatenate(firsts) if firsts else np.zeros(0, np.int64)

    def global_face(i, ax, side):
        f = res[i][2][(ax, side)]
        return np.where(f > 0, f.astype(np.int64) + offsets[i], 0)

    def plane(ax, k, side):
        """The face planes of block index k along ``ax``, assembled over the other axes."""
        others = [a for a in range(mask.ndim) if a != ax]
        grid = np.empty([mask.numblocks[a] for a in others], dtype=object)
        for j in np.ndindex(*grid.shape):
            i = [0] * mask.ndim
            i[ax] = k
            for a, jj in zip(others, j):
                i[a] = jj
            grid[j] = global_face(tuple(i), ax, side)
        return np.block(grid.tolist()) if grid.ndim else grid[()]

    # Join across every internal face, for every offset of the structure that crosses it.
    rows, cols = [], []
    center = (1,) * mask.ndim
    offs = [np.array(o) - 1 for o in np.argwhere(structure) if tuple(o) != center]
    for ax in range(mask.ndim):
        for k in range(mask.numblocks[ax] - 1):
            p = plane(ax, k, 1)
            q = plane(ax, k + 1, 0)
            for o in offs:
                if o[ax] != 1:
                    continue
                rest = [int(v) for a, v in enumerate(o) if a != ax]
                src = tuple(slice(max(0, -r), p.shape[d] - max(0, r)) for d, r in enumerate(rest))
                dst = tuple(slice(max(0, r), q.shape[d] - max(0, -r)) for d, r in enumerate(rest))
                a, b = p[src], q[dst]
                both = (a > 0) & (b > 0)
                rows.append(a[both] - 1)
                cols.append(b[both] - 1)
    if total:
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        graph = sparse.coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(total, total))
        ncomp, comp = csgraph.connected_components(graph, directed=False)
        first_voxel = None
        if order:  # components ordered by their first voxel in raster order (scipy's numbering)
            comp_first = np.full(ncomp, np.iinfo(np.int64).max, np.int64)
            np.minimum.at(comp_first, comp, firsts)
            rank = np.empty(ncomp, np.int64)
            rank[np.argsort(comp_first, kind="stable")] = np.arange(1, ncomp + 1)
            glob = rank[comp]
            first_voxel = np.sort(comp_first)
        else:
            glob = comp.astype(np.int64) + 1
    else:
        ncomp, glob, first_voxel = 0, np.zeros(0, np.int64), (np.zeros(0, np.int64) if order else None)
    dtype = np.int32 if ncomp < np.iinfo(np.int32).max else np.int64
    luts = {}
    for i in idx_list:
        n = res[i][0]
        lut = np.zeros(n + 1, dtype)
        lut[1:] = glob[offsets[i]:offsets[i] + n]
        luts[i] = lut
    border = [np.zeros(0, np.int64)]
    for ax in border_axes:
        for side, k in ((0, 0), (1, mask.numblocks[ax] - 1)):
            f = plane(ax, k, side)
            border.append(np.unique(f[f > 0] - 1))
    border = np.unique(np.concatenate(border)).astype(np.int64)
    border = np.unique(glob[border]) if border.size else border
    gboxes = None
    if boxes:
        glo = np.full((ncomp, mask.ndim), np.iinfo(np.int64).max, np.int64)
        ghi = np.zeros((ncomp, mask.ndim), np.int64)
        for i in idx_list:
            n = res[i][0]
            if n:
                lo, hi = res[i][3]
                start = np.array([starts[a][i[a]] for a in range(mask.ndim)], np.int64)
                g = glob[offsets[i]:offsets[i] + n] - 1
                np.minimum.at(glo, g, lo + start)
                np.maximum.at(ghi, g, hi + start)
        gboxes = (glo, ghi)
    kept = {i: res[i][-1] for i in idx_list} if keep else None
    return _LabelPlan(luts=luts, n=int(ncomp), border=border, boxes=gboxes, labels=kept, first=first_voxel)


def _apply_plan(mask: da.Array, structure, func, plan: _LabelPlan, dtype) -> da.Array:
    """Stage 3: relabel each block (``func(block, structure, lut)``) as a lazy dask array."""
    blocks = mask.to_delayed()
    out = np.empty(mask.numblocks, dtype=object)
    for i in np.ndindex(*mask.numblocks):
        shape = tuple(mask.chunks[a][i[a]] for a in range(mask.ndim))
        kept = () if plan.labels is None else (plan.labels[i],)
        d = dask.delayed(func)(blocks[i], structure, plan.luts[i], *kept)
        out[i] = da.from_delayed(d, shape=shape, dtype=dtype)
    return da.block(out.tolist())


def label(mask, structure=None, *, connectivity: int | None = None, scheduler=None):
    """Exact connected-component labelling of a (dask) boolean array, block by block.

    Parameters
    ----------
    mask : dask or numpy array of bool
        2D or 3D foreground.
    structure : array of bool, optional
        3 x 3 (x 3) connectivity structure as in `scipy.ndimage.label`.
    connectivity : int, optional
        1 (faces, default) to ``ndim`` (full), used when ``structure`` is None.
    scheduler : optional
        Dask scheduler for the per-block pass (default: the current one).

    Returns
    -------
    labels : dask array of int32
        Equal to ``scipy.ndimage.label(mask, structure)[0]`` bit for bit (same numbers).
        Lazy: each block is labelled again and looked up when computed.
    n : int
        Number of components.

    Notes
    -----
    Stage 1 computes, per block, the number of components, their first voxels and
    the labels on the block's faces; the driver joins labels that touch across a
    face for every offset of ``structure`` that crosses it (so corners where 4 or 8
    blocks meet need no special case) and orders the joined components by first
    voxel. Cost: two cheap passes of ``ndi.label`` per block, and a graph of the
    face labels on the driver (unlike ``dask_image.ndmeasure.label``, which
    re-labels blocks O(blocks^2) times).

    Examples
    --------
    >>> m = np.zeros((6, 6), bool); m[2:4, 1:5] = True
    >>> lab, n = label(da.from_array(m, chunks=3))
    >>> n, int(lab[3, 4].compute())
    (1, 1)
    """
    mask = da.asarray(mask).astype(bool)
    st = _structure(mask.ndim, structure, connectivity)
    plan = _plan_labels(mask, st, scheduler=scheduler)
    dtype = next(iter(plan.luts.values())).dtype if plan.luts else np.int32
    return _apply_plan(mask, st, _relabel_block, plan, dtype), plan.n


def _fill_block(block, structure, is_hole, lab=None):
    if lab is None:
        lab, _ = ndi.label(~block, structure=structure)
    return block | is_hole[lab]


def fill_holes(mask, *, scheduler=None, keep_labels: bool = False) -> da.Array:
    """`scipy.ndimage.binary_fill_holes` chunk by chunk (per z-slice for 3D, as `classic`).

    A hole is a background component (face connectivity) that does not touch the
    image border; in 3D the components are taken within each z-slice.

    Examples
    --------
    >>> m = np.zeros((9, 9), bool); m[1:8, 1:8] = True; m[4, 4] = False
    >>> bool(fill_holes(da.from_array(m, chunks=4)).compute()[4, 4])
    True
    """
    mask = da.asarray(mask).astype(bool)
    if mask.ndim == 2:
        st, axes = ndi.generate_binary_structure(2, 1), (0, 1)
    else:
        st = np.zeros((3, 3, 3), bool)
        st[1] = ndi.generate_binary_structure(2, 1)
        axes = (1, 2)
    plan = _plan_labels(~mask, st, border_axes=axes, scheduler=scheduler, keep=keep_labels, order=False)
    hole = np.ones(plan.n + 1, bool)
    hole[0] = False
    hole[plan.border] = False
    plan.luts = {i: hole[lut] for i, lut in plan.luts.items()}
    return _apply_plan(mask, st, _fill_block, plan, bool)


# --------------------------------------------------------------------------- filters

def _check_float(block):
    if block.dtype.kind == "f" and np.isnan(block).any():
        raise LungtrackInputError("channel: the image has NaN values; replace them (e.g. by 0) before segmenting.")
    return block


def _regular_chunks(arr: da.Array, chunks, multiple=None) -> da.Array:
    """Rechunk to regular chunks (each a multiple of ``multiple`` per axis, except the last).

    The number of chunks per axis is the one the requested size gives; their size is
    then evened out (rounded up to the multiple), so that no thin last chunk is left
    (4096 px in chunks of 1024 with multiples of 10: 4 x 1030, the last 1006; not
    4 x 1020 and a last chunk of 16).
    """
    if chunks is None:
        chunks = tuple(c[0] for c in arr.chunks)
    elif isinstance(chunks, int):
        chunks = (chunks,) * arr.ndim
    chunks = [max(1, min(int(c), n)) for c, n in zip(chunks, arr.shape)]
    if multiple is not None:
        even = [-(-n // -(-n // c)) for c, n in zip(chunks, arr.shape)]  # n split into as many chunks, evenly
        chunks = [min(n, -(-c // f) * f) for c, f, n in zip(even, multiple, arr.shape)]
    return arr.rechunk(tuple(chunks))


def subtract_background(channel, spacing_um, radius_um: float, *, chunks=None) -> da.Array:
    """`classic.subtract_background` chunk by chunk; equal to it bit for bit.

    The input is rechunked so that chunk edges fall on the shrink grid (multiples of
    the shrink factor); the opening of the shrunken image runs with an overlap of
    its reach and the interpolation reads one shrunken voxel beyond each chunk.

    Examples
    --------
    >>> img = np.random.default_rng(1).random((90, 70)).astype(np.float32) * 100
    >>> out = subtract_background(da.from_array(img, chunks=25), (1.0, 1.0), 12).compute()
    >>> bool(np.array_equal(out, classic.subtract_background(img, (1.0, 1.0), 12)))
    True
    """
    arr = da.asarray(channel)
    spacing = tuple(float(s) for s in spacing_um)
    factor, size = classic.background_geometry(arr.shape, spacing, radius_um)
    arr = _regular_chunks(arr, chunks, factor)
    bg_small = _shrunken_background(arr, factor, size)
    # depth 1 with 'reflect' repeats the edge voxel, as the whole-image path's edge padding
    padded = da.overlap.overlap(bg_small, depth={a: 1 for a in range(arr.ndim)},
                                boundary={a: "reflect" for a in range(arr.ndim)})
    starts = [np.r_[0, np.cumsum(c)] for c in arr.chunks]
    sstarts = [np.r_[0, np.cumsum(c)] for c in bg_small.chunks]

    def correct(block, pad, start, s0):
        return classic.corrected_from_small(_check_float(block), pad, factor, start=start, small_start=s0)

    ib, pb = arr.to_delayed(), padded.to_delayed()
    out = np.empty(arr.numblocks, dtype=object)
    for i in np.ndindex(*arr.numblocks):
        start = tuple(int(starts[a][i[a]]) for a in range(arr.ndim))
        s0 = tuple(int(sstarts[a][i[a]]) for a in range(arr.ndim))
        shape = tuple(arr.chunks[a][i[a]] for a in range(arr.ndim))
        out[i] = da.from_delayed(dask.delayed(correct)(ib[i], pb[i], start, s0), shape=shape, dtype=np.float32)
    return da.block(out.tolist())


def smooth(image, spacing_um, sigma_um: float) -> da.Array:
    """Gaussian smoothing (sigma in um) with the exact overlap: equal to `scipy.ndimage.gaussian_filter`.

    Examples
    --------
    >>> img = np.random.default_rng(2).random((40, 30)).astype(np.float32)
    >>> out = smooth(da.from_array(img, chunks=(7, 13)), (1.0, 1.0), 1.5).compute()
    >>> bool(np.array_equal(out, ndi.gaussian_filter(img, 1.5)))
    True
    """
    arr = da.asarray(image)
    if sigma_um <= 0:
        return arr
    sigma = classic._sigma_px(sigma_um, spacing_um)
    depth = {a: int(4.0 * s + 0.5) for a, s in enumerate(sigma)}
    out = arr.map_overlap(classic.gaussian, depth=depth, boundary="none", sigma=sigma, dtype=arr.dtype)
    # map_overlap merges chunks smaller than the depth; give the caller its chunks back
    return out if out.chunks == arr.chunks else out.rechunk(arr.chunks)


# --------------------------------------------------------------------------- global thresholds

def _masked(block, within):
    return block if within is None else block[within]


def _minmax(block, within=None):
    v = _masked(block, within)
    if v.size == 0:
        return np.array([np.inf, -np.inf])
    return np.array([v.min(), v.max()], dtype=np.float64)


def _hist(block, within, lo, hi, nbins):
    v = _masked(block, within).ravel()
    return np.histogram(v, bins=nbins, range=(lo, hi))[0]


def _reduce(image, within, func, *args, combine, scheduler=None):
    blocks = image.to_delayed().ravel()
    wblocks = within.to_delayed().ravel() if within is not None else [None] * len(blocks)
    parts = dask.compute(*[dask.delayed(func)(b, w, *args) for b, w in zip(blocks, wblocks)], scheduler=scheduler)
    return combine(parts)


_GATHER_MAX = 200_000  # voxels of one interval gathered on the driver at most


def _count_minmax(v):
    if v.size == 0:
        return np.array([0.0, np.inf, -np.inf])
    return np.array([v.size, v.min(), v.max()], dtype=np.float64)


def _sum_minmax(parts):
    return int(sum(p[0] for p in parts)), min(p[1] for p in parts), max(p[2] for p in parts)


def _kth_values(image, within, upper, ks, scheduler=None, *, stats=None) -> list:
    """Exact k-th smallest values (0-based ``ks``) among voxels <= ``upper`` (within the mask).

    Narrowing histograms over blocks, then gathering the few voxels of the bin that holds
    each k: an exact order statistic without sorting the image. All ``ks`` narrow
    together, one pass over the blocks per step (for a median: one histogram, one
    gather); ``stats`` = (count, min, max) of those voxels, if the caller has them.
    """
    def population(b, w):
        v = _masked(b, w)
        return v[v <= upper]

    if stats is None:
        stats = _reduce(image, within, lambda b, w: _count_minmax(population(b, w)), combine=_sum_minmax,
                        scheduler=scheduler)
    n, lo, hi = stats
    # per k: the closed interval [lo, hi] that holds it, the voxels ranked below it, the voxels in it
    state = {k: (lo, hi, 0, n) for k in ks}
    out = {}
    while len(out) < len(ks):
        todo = sorted({state[k] for k in ks if k not in out})
        for iv in todo:
            if iv[0] == iv[1]:  # every voxel of the interval has this value: nothing to gather
                for k in ks:
                    if k not in out and state[k] == iv:
                        out[k] = image.dtype.type(iv[0])
        todo = [iv for iv in todo if iv[0] != iv[1]]
        if not todo:
            break

        def step(b, w, todo=todo):
            v = population(b, w)
            res = []
            for lo, hi, _, n_in in todo:
                x = v[(v >= lo) & (v <= hi)]
                res.append(x if n_in <= _GATHER_MAX else np.histogram(x, bins=np.linspace(lo, hi, 1025))[0])
            return res

        parts = _reduce(image, within, step, combine=lambda p: p, scheduler=scheduler)
        for i, (lo, hi, below, n_in) in enumerate(todo):
            mine = [k for k in ks if k not in out and state[k] == (lo, hi, below, n_in)]
            if n_in <= _GATHER_MAX:
                vals = np.concatenate([p[i] for p in parts])
                vals.sort(kind="stable")
                for k in mine:
                    out[k] = vals[k - below]
                continue
            counts = np.sum([p[i] for p in parts], axis=0)
            edges = np.linspace(lo, hi, 1025)
            cum = np.cumsum(counts)
            for k in mine:
                j = int(np.searchsorted(cum, k - below, side="right"))
                nb = below + (int(cum[j - 1]) if j > 0 else 0)
                # np.histogram's last bin is closed; the others are half open
                state[k] = (edges[j], edges[j + 1] if j == 1023 else np.nextafter(edges[j + 1], -np.inf), nb,
                            int(counts[j]))
    return [out[k] for k in ks]


def threshold_value(image, method, *, within=None, min_signal_ratio: float = 0.0, scheduler=None,
                    gather: bool = False) -> float:
    """`classic.threshold_value` on a dask array, from global histograms (same value).

    Otsu, multi-Otsu and Yen are computed from the sum of per-block 256-bin
    histograms over the global range, which equals the whole-image histogram;
    the autofluorescence floor (``min_signal_ratio``) needs the median of the dim
    Otsu class, found exactly by narrowing histograms. Li and triangle need all
    voxels and are not available here. With ``gather=True`` (for an image held in
    memory anyway) the voxels within the mask are gathered in one pass and
    `classic.threshold_value` runs on them: the same value (histograms and the median
    do not depend on the voxels' order) without the passes of the narrowing.

    Examples
    --------
    >>> img = np.r_[np.zeros(500), np.full(100, 50.0)].astype(np.float32).reshape(20, 30)
    >>> threshold_value(da.from_array(img, chunks=7), "otsu") == classic.threshold_value(img, "otsu")
    True
    """
    if isinstance(method, (int, float)):
        return float(method)
    if method not in _HIST_METHODS:
        raise NotImplementedError(
            f"threshold {method!r} needs every voxel at once; for chunked segmentation use one of "
            f"{sorted(_HIST_METHODS)} or a fixed value (segment.<role>.threshold in the config)."
        )
    image = da.asarray(image)
    if gather:
        values = np.zeros(0, image.dtype)
        if within is not None:
            w = da.asarray(within).astype(bool).rechunk(image.chunks)
            values = _reduce(image, w, lambda b, ww: b[ww], combine=np.concatenate, scheduler=scheduler)
        if values.size == 0:  # no mask, or an empty one: every voxel (as classic.threshold_value)
            values = _reduce(image, None, lambda b, ww: b.ravel(), combine=np.concatenate, scheduler=scheduler)
        return classic.threshold_value(values, method, min_signal_ratio=min_signal_ratio)
    w = None
    if within is not None:
        w = da.asarray(within).astype(bool).rechunk(image.chunks)
        if not bool(w.any().compute(scheduler=scheduler)):
            w = None
    lo, hi = _reduce(image, w, _minmax, combine=lambda p: (min(x[0] for x in p), max(x[1] for x in p)),
                     scheduler=scheduler)
    if not np.isfinite(lo) or lo == hi:
        return float("inf")
    if image.dtype.kind != "f":
        raise LungtrackInputError(f"threshold_value: expects a float image (got {image.dtype}); smooth it first.")
    lo, hi = image.dtype.type(lo), image.dtype.type(hi)
    counts = _reduce(image, w, _hist, lo, hi, 256, combine=lambda p: np.sum(p, axis=0), scheduler=scheduler)
    edges = np.histogram(np.zeros(0, image.dtype), bins=256, range=(lo, hi))[1]
    centers = (edges[:-1] + edges[1:]) / 2.0
    t = classic.hist_threshold(method, counts, centers)
    if min_signal_ratio > 0:
        t = max(t, min_signal_ratio * _autofluorescence_level(image, w, counts, centers, scheduler))
    return t


def _autofluorescence_level(image, w, counts, centers, scheduler) -> float:
    from skimage import filters

    t = filters.threshold_otsu(hist=(counts, centers))
    # count, min and max of the dim class in one pass
    stats = _reduce(image, w, lambda b, ww: _count_minmax((v := _masked(b, ww))[v <= t]), combine=_sum_minmax,
                    scheduler=scheduler)
    n = stats[0]
    # np.median: the middle value, or the float32 mean of the two middle ones
    ks = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    vals = _kth_values(image, w, t, ks, scheduler=scheduler, stats=stats)
    return float(np.mean(np.array(vals, dtype=image.dtype)))


# --------------------------------------------------------------------------- caching intermediates

@contextlib.contextmanager
def _workspace(tmpdir):
    """A new folder under ``tmpdir`` for intermediate zarr stores (None: keep them in memory).

    It is not removed here: the returned labels are read from it. The caller owns
    ``tmpdir`` and removes it when done (the pipeline uses a temporary directory).
    """
    if tmpdir is None:
        yield None
        return
    os.makedirs(tmpdir, exist_ok=True)
    yield tempfile.mkdtemp(prefix="lungtrack-chunks-", dir=tmpdir)


def _materialize(arrays, extras, workspace, scheduler=None, name="a"):
    """Compute arrays once (persisted, or stored as zarr in ``workspace``) together with ``extras``."""
    if workspace is None:
        # Unoptimized: array optimization inlines a task shared with ``extras`` (the split) into
        # the array's graph under a new key, so it would run twice (once per collection type).
        out = dask.persist(*arrays, *extras, scheduler=scheduler, optimize_graph=not extras)
        arrs = list(out[:len(arrays)])
        ext = dask.compute(*out[len(arrays):], scheduler=scheduler)
        return arrs, list(ext)
    import zarr

    targets = []
    for j, a in enumerate(arrays):
        path = os.path.join(workspace, f"{name}{j}.zarr")
        targets.append(zarr.open_array(store=path, mode="w", shape=a.shape, chunks=tuple(c[0] for c in a.chunks),
                                       dtype=a.dtype))
    stored = da.store(arrays, targets, lock=False, compute=False)
    res = dask.compute(stored, *extras, scheduler=scheduler)
    arrs = [da.from_zarr(os.path.join(workspace, f"{name}{j}.zarr")).rechunk(a.chunks) for j, a in enumerate(arrays)]
    return arrs, list(res[1:])


# --------------------------------------------------------------------------- on disk: every task reads its own window

class _Hidden:
    """A dask array passed to a task without becoming its dependency (read inside the task).

    Tasks that share input chunks make the scheduler keep those chunks until every
    consumer ran; reading each window inside its own task keeps memory to the windows
    being processed.
    """

    def __init__(self, arr):
        self.arr = arr


def _read(src, slices) -> np.ndarray:
    if isinstance(src, str):
        import zarr

        return np.asarray(zarr.open_array(src, mode="r")[tuple(slices)])
    return np.asarray(src.arr[tuple(slices)].compute(scheduler="synchronous"))


def _window_tasks(src, shape, chunks, depth, func, out_path, dtype):
    """One task per chunk: read the chunk grown by ``depth`` from ``src``, ``func`` it, write the core to zarr."""
    import zarr

    zarr.open_array(store=out_path, mode="w", shape=shape, chunks=tuple(c[0] for c in chunks), dtype=dtype)
    starts = [np.r_[0, np.cumsum(c)] for c in chunks]

    def run(i):
        start = [int(starts[a][i[a]]) for a in range(len(shape))]
        size = [chunks[a][i[a]] for a in range(len(shape))]
        w0 = [max(0, st - d) for st, d in zip(start, depth)]
        w1 = [min(n, st + c + d) for st, c, d, n in zip(start, size, depth, shape)]
        out = func(src, w0, w1)
        core = tuple(slice(st - a, st - a + c) for st, a, c in zip(start, w0, size))
        zarr.open_array(out_path, mode="r+")[tuple(slice(st, st + c) for st, c in zip(start, size))] = out[core]

    return [dask.delayed(run)(i) for i in np.ndindex(*[len(c) for c in chunks])]


def _bg_window(w0, w1, factor, sm_shape):
    """The shrunken background a window [w0, w1) interpolates from: its slices, edge padding, first index."""
    s_lo = [a // f - 1 for a, f in zip(w0, factor)]
    s_hi = [(b - 1) // f + 2 for b, f in zip(w1, factor)]
    part = tuple(slice(max(0, lo), min(m, hi)) for lo, hi, m in zip(s_lo, s_hi, sm_shape))
    # beyond the image: the edge replication of the whole-image path
    pad = [(max(0, -lo), max(0, hi - m)) for lo, hi, m in zip(s_lo, s_hi, sm_shape)]
    return part, pad, [lo + 1 for lo in s_lo]


def _correct_and_smooth(window, w0, padded, small_start, factor, sigma, core=None):
    """Background-corrected (float32) and smoothed intensities of ``window`` (input from global index ``w0``).

    ``core``: (start, stop) per axis within the window to return (default: all of it),
    filtered and trimmed in one go (`classic.gaussian`).
    """
    corrected = classic.corrected_from_small(window, padded, factor, start=w0, small_start=small_start)
    if sigma:
        return classic.gaussian(corrected, sigma, core=core)
    return corrected if core is None else corrected[tuple(slice(a, b) for a, b in core)]


def _shrunken_background(arr, factor, size) -> da.Array:
    """The opened shrunken background of `subtract_background` (``arr`` chunked on the shrink grid)."""
    img = arr.map_blocks(_check_float, dtype=arr.dtype)
    # min commutes with the (monotonic) conversion to float32: the raw block is shrunk first
    small = img.map_blocks(classic._block_min, factor=factor, dtype=arr.dtype,
                           chunks=tuple(tuple(-(-c // f) for c in cs) for cs, f in zip(img.chunks, factor)))
    small = small.astype(np.float32)
    depth = {a: r for a, r in enumerate(classic._open_reach(size))}
    # an axis shorter than the reach is taken whole (one chunk, no overlap needed)
    whole = {a: -1 for a, r in depth.items() if r >= small.shape[a]}
    src = small.rechunk(whole) if whole else small
    depth = {a: (0 if a in whole else r) for a, r in depth.items()}
    bg_small = src.map_overlap(classic._open_small, depth=depth, boundary="none", size=size, dtype=np.float32,
                               trim=True)
    return bg_small.rechunk(small.chunks)


def _corrected_smoothed(arr, spacing, params, scheduler) -> da.Array:
    """Background subtraction + smoothing in memory, one task per chunk from its window of the input.

    Equal to `smooth` of `subtract_background` (and to the whole-image path) bit for bit:
    the shrunken background is small (1/factor² of the image) and computed first; each
    chunk's task then corrects its window of the raw input (the chunk grown by the
    smoothing depth) and smooths it, keeping only the chunk. No full-size float32
    copy of the input and no window of float32 intermediates are made.
    """
    factor, size = classic.background_geometry(arr.shape, spacing, params.background_radius_um)
    bgs = _shrunken_background(arr, factor, size).compute(scheduler=scheduler)
    sigma = classic._sigma_px(params.smoothing_sigma_um, spacing) if params.smoothing_sigma_um > 0 else None
    gdepth = [int(4.0 * s + 0.5) for s in sigma] if sigma else [0] * arr.ndim
    starts = [np.r_[0, np.cumsum(c)] for c in arr.chunks]
    out = np.empty(arr.numblocks, dtype=object)
    for i in np.ndindex(*arr.numblocks):
        c0 = [int(starts[a][i[a]]) for a in range(arr.ndim)]
        c1 = [c + arr.chunks[a][i[a]] for a, c in enumerate(c0)]
        w0 = [max(0, a - d) for a, d in zip(c0, gdepth)]
        w1 = [min(n, b + d) for b, d, n in zip(c1, gdepth, arr.shape)]
        part, pad, s0 = _bg_window(w0, w1, factor, bgs.shape)
        core = [(a - w, b - w) for a, b, w in zip(c0, c1, w0)]
        task = dask.delayed(_correct_and_smooth)(arr[tuple(slice(a, b) for a, b in zip(w0, w1))], w0,
                                                 np.pad(bgs[part], pad, mode="edge"), s0, factor, sigma, core)
        out[i] = da.from_delayed(task, shape=tuple(b - a for a, b in zip(c0, c1)), dtype=np.float32)
    return da.block(out.tolist())


def _smoothed_on_disk(arr, spacing, params, ws, scheduler) -> da.Array:
    """Background subtraction + smoothing with bounded memory, bit-identical to the in-memory path.

    Pass 1 writes the shrunken block minimum; its opening is computed window by window;
    pass 2 reads each chunk of the input with the smoothing depth, subtracts the
    interpolated background (global indices) and smooths.
    """
    factor, size = classic.background_geometry(arr.shape, spacing, params.background_radius_um)
    src = _Hidden(arr)
    sm_shape = tuple(-(-n // f) for n, f in zip(arr.shape, factor))
    sm_chunks = tuple(tuple(-(-c // f) for c in cs) for cs, f in zip(arr.chunks, factor))
    small_p, bg_p, out_p = (os.path.join(ws, n) for n in ("small.zarr", "bg_small.zarr", "smoothed.zarr"))

    def block_min(src, w0, w1):
        # min commutes with the (monotonic) conversion to float32: the raw block is shrunk first
        img = _check_float(_read(src, [slice(a, b) for a, b in zip(w0, w1)]))
        return classic._block_min(img, factor).astype(np.float32)

    # the input chunks are on the shrink grid, so an input chunk maps to one shrunken chunk
    import zarr

    zarr.open_array(store=small_p, mode="w", shape=sm_shape, chunks=tuple(c[0] for c in sm_chunks), dtype=np.float32)
    starts = [np.r_[0, np.cumsum(c)] for c in arr.chunks]
    sstarts = [np.r_[0, np.cumsum(c)] for c in sm_chunks]

    def write_min(i):
        sl = [slice(int(starts[a][i[a]]), int(starts[a][i[a]]) + arr.chunks[a][i[a]]) for a in range(arr.ndim)]
        out = block_min(src, [x.start for x in sl], [x.stop for x in sl])
        ssl = tuple(slice(int(sstarts[a][i[a]]), int(sstarts[a][i[a]]) + out.shape[a]) for a in range(arr.ndim))
        zarr.open_array(small_p, mode="r+")[ssl] = out

    tasks = [dask.delayed(write_min)(i) for i in np.ndindex(*arr.numblocks)]
    dask.compute(*tasks, scheduler=scheduler)

    reach = classic._open_reach(size)
    dask.compute(*_window_tasks(small_p, sm_shape, sm_chunks, reach,
                                lambda p, w0, w1: classic._open_small(_read(p, [slice(a, b) for a, b in zip(w0, w1)]),
                                                                      size),
                                bg_p, np.float32), scheduler=scheduler)

    sigma = classic._sigma_px(params.smoothing_sigma_um, spacing) if params.smoothing_sigma_um > 0 else None
    gdepth = [int(4.0 * s + 0.5) for s in sigma] if sigma else [0] * arr.ndim

    def corrected_smoothed(src, w0, w1):
        img = _check_float(_read(src, [slice(a, b) for a, b in zip(w0, w1)]))
        part_sl, pad, s0 = _bg_window(w0, w1, factor, sm_shape)
        return _correct_and_smooth(img, w0, np.pad(_read(bg_p, part_sl), pad, mode="edge"), s0, factor, sigma)

    dask.compute(*_window_tasks(src, arr.shape, arr.chunks, gdepth, corrected_smoothed, out_p, np.float32),
                 scheduler=scheduler)
    return da.from_zarr(out_p).rechunk(arr.chunks)


# --------------------------------------------------------------------------- split and number

_KEY_STRIDE = 1 << 20  # seeds per component at most


def _split_block(cc_ov, origin, core, image_shape, spacing, params, gboxes):
    """Watershed split of every component that meets this block's core (computed on its own box).

    ``cc_ov`` is the block with its halo (global component labels), ``origin`` its
    global start, ``core`` the slices of the block proper inside ``cc_ov``, ``gboxes``
    the global bounding boxes of all components and their first voxels (start, stop,
    raster index: from the labelling plan). Returns the core's seed numbers (int32: an
    object is a component's label in ``cc`` and a seed number; 0: not split here), the
    voxel counts per key ``component * 2**20 + seed``, the number of seeds of the
    components whose first voxel is in this core (exactly one block owns each), and the
    components that reach the window's edge inside the image (split later in their own box).
    """
    seeds_core = np.zeros(tuple(s.stop - s.start for s in core), np.int32)
    core_labels = cc_ov[tuple(core)]
    ids = _present(core_labels)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if ids.size == 0:
        return seeds_core, empty, {}, []
    origin = np.asarray(origin, np.int64)
    lo, hi = gboxes[0][ids - 1] - origin, gboxes[1][ids - 1] - origin  # window coordinates
    wshape = np.asarray(cc_ov.shape)
    inner_lo = origin > 0  # a window edge inside the image
    inner_hi = origin + wshape < np.asarray(image_shape)
    cut = (((lo <= 0) & inner_lo) | ((hi >= wshape) & inner_hi)).any(axis=1)
    deferred = ids[cut].tolist()  # larger than the halo: split on the driver, in their own box
    sel, lo, hi = ids[~cut], lo[~cut], hi[~cut]
    if sel.size == 0:
        return seeds_core, empty, {}, deferred
    vox, _, seed, n_seeds = classic.split_components(cc_ov, sel, (lo, hi), spacing, params.split_min_distance_um)
    # seeds scattered into the window once; a voxel's component is its label in cc_ov
    seed_win = np.zeros(cc_ov.shape, np.int32)
    seed_win.ravel()[vox] = seed
    seeds_core = np.ascontiguousarray(seed_win[tuple(core)])
    del seed_win, vox, seed
    # ownership: the core that holds the component's first voxel. (Not its bounding box's
    # start: that corner may lie outside the component, in a core the component never meets.)
    c0 = np.array([c.start for c in core])
    c1 = np.array([c.stop for c in core])
    f = np.stack(np.unravel_index(gboxes[2][sel - 1], image_shape), axis=1) - origin
    own = ((f >= c0) & (f < c1)).all(axis=1)
    seeds = {int(g): int(n) for g, n in zip(sel[own], n_seeds[own])}
    return seeds_core, _key_counts(seeds_core, core_labels), seeds, deferred


def _present(lab) -> np.ndarray:
    """``np.unique(lab[lab > 0])`` as int64, from per-label flags when the labels span a narrow range."""
    from ._kernels import present_labels

    ids, lo, hi = present_labels(_as3d(lab))
    if not _dense_ok(lo, hi, lab.size):  # (its flags were big; rare: labels far apart)
        return np.unique(lab[lab > 0]).astype(np.int64)
    return ids


def _keys(seeds, cc):
    """Object keys ``component * 2**20 + seed`` of the voxels with a seed, and where they are (flat indices)."""
    nz = np.flatnonzero(seeds)
    return cc.ravel()[nz].astype(np.int64) * _KEY_STRIDE + seeds.ravel()[nz], nz


def _key_counts(seeds, cc):
    """The keys of the objects in a block (sorted) and their voxel counts: ``np.unique(_keys(...)[0], return_counts=True)``."""
    from ._kernels import label_range, seed_counts

    cc3 = _as3d(cc)
    lo, hi = label_range(cc3)
    if not _dense_ok(lo, hi, cc.size):
        return np.unique(_keys(np.ascontiguousarray(seeds), np.ascontiguousarray(cc))[0], return_counts=True)
    comp, seed, cnt = seed_counts(_as3d(seeds), cc3, lo, hi)
    return comp * _KEY_STRIDE + seed, cnt


def _table_get(k, table_keys, table_vals):
    """``table_vals`` at ``k`` in the sorted ``table_keys`` (0 for keys not in the table)."""
    if not table_keys.size:
        return np.zeros(k.size, np.int32)
    pos = np.minimum(np.searchsorted(table_keys, k), table_keys.size - 1)
    return np.where(table_keys[pos] == k, table_vals[pos], 0)


def _lookup_seeds(seeds, cc, first_of, table):
    """Final labels of a block: ``table[first_of[component] + seed]`` where a voxel has a seed (else 0)."""
    from ._kernels import seed_lookup

    return seed_lookup(np.ascontiguousarray(seeds), np.ascontiguousarray(cc), first_of, table)


def _lookup(keys, table_keys, table_vals):
    out = np.zeros(keys.shape, np.int32)
    fg = keys > 0
    out[fg] = _table_get(keys[fg], table_keys, table_vals)
    return out


@dataclass
class ChunkedSegmentation:
    """Result of `segment_cells`: lazy labels (int32, numbered as the whole-image result) and the threshold."""

    labels: da.Array
    n_objects: int
    threshold: float


def _halo_px(params: RoleSegmentation, spacing, overlap_um):
    um = overlap_um if overlap_um is not None else 2.0 * params.max_diameter_um
    return tuple(max(2, int(math.ceil(um / s)) + 2) for s in spacing)


def segment_cells(channel, spacing_um, params: RoleSegmentation, *, within=None, chunks=None,
                  overlap_um: float | None = None, tmpdir=None, scheduler=None) -> ChunkedSegmentation:
    """`classic.segment_cells` chunk by chunk, for images larger than memory.

    Parameters
    ----------
    channel : dask or numpy array
        (Y, X) or (Z, Y, X) intensities; NaNs are an error.
    spacing_um : sequence of float
        Voxel size per axis in um.
    params : RoleSegmentation
    within : dask or numpy array of bool, optional
        Tissue mask for the threshold (same shape).
    chunks : int or tuple, optional
        Chunk size in px (default: the input's chunks), adjusted to the background's shrink grid.
    overlap_um : float, optional
        Halo for the watershed split: at least the largest connected cluster of cells
        (default 2 x ``params.max_diameter_um``). A larger component is an error.
    tmpdir : path, optional
        Keep intermediates in zarr stores in a new folder there (bounded memory) instead of in
        memory; the returned labels read from it, so remove ``tmpdir`` only after using them.
    scheduler : optional
        Dask scheduler (``"threads"``, ``"synchronous"``, a ``distributed.Client.get``...).

    Returns
    -------
    ChunkedSegmentation
        ``labels`` equals ``classic.segment_cells`` on the whole image
        (``np.array_equal``: same objects, same numbers) -- computed lazily from
        the cached split; ``n_objects``; ``threshold``.

    Examples
    --------
    >>> img = np.zeros((64, 64)); img[10:30, 10:30] = 100; img[40:60, 35:55] = 80
    >>> p = RoleSegmentation(min_diameter_um=5, background_radius_um=30)
    >>> res = segment_cells(da.from_array(img, chunks=32), (1.0, 1.0), p, overlap_um=25)
    >>> bool(np.array_equal(res.labels.compute(), classic.segment_cells(img, (1.0, 1.0), p)))
    True
    """
    spacing = tuple(float(s) for s in spacing_um)
    arr = da.asarray(channel)
    if arr.ndim != len(spacing):
        raise LungtrackInputError(f"channel has {arr.ndim} axes but spacing_um has {len(spacing)} values")
    halo = _halo_px(params, spacing, overlap_um)
    factor, _ = classic.background_geometry(arr.shape, spacing, params.background_radius_um)
    arr = _regular_chunks(arr, chunks, factor)
    with _workspace(tmpdir) as ws:
        if ws is None:
            img = _corrected_smoothed(arr, spacing, params, scheduler)
            (img,), _ = _materialize([img], [], ws, scheduler, name="smoothed")
        else:
            img = _smoothed_on_disk(arr, spacing, params, ws, scheduler)
        w = None if within is None else da.asarray(within).astype(bool).rechunk(img.chunks)
        t = threshold_value(img, params.threshold, within=w, min_signal_ratio=params.min_signal_ratio,
                            scheduler=scheduler, gather=ws is None)
        mask = img > t
        # in memory, each block's labels from the plan's first pass are kept for the lookup (one labelling, not two)
        keep = ws is None and _local(scheduler)
        filled = fill_holes(mask, scheduler=scheduler, keep_labels=keep)
        # cached: read by the labelling plan and again by its lookup (each would redo the fill)
        (filled,), _ = _materialize([filled], [], ws, scheduler, name="filled")
        # each step's input is dropped once its output is computed: a role holds two
        # intermediates at a time, not all five (the roles of an image run at the same time)
        del img, w, mask
        full = np.ones((3,) * arr.ndim, bool)
        if params.split_touching:
            plan = _plan_labels(filled, full, scheduler=scheduler, boxes=True, keep=keep)
            cc = _apply_plan(filled, full, _relabel_block, plan, next(iter(plan.luts.values())).dtype)
            # cached: every split window reads its neighbours' labels
            (cc,), _ = _materialize([cc], [], ws, scheduler, name="components")
            plan.labels = None
            filled = None
            cc_path = None if ws is None else os.path.join(ws, "components0.zarr")
            # an object is (its component's label in cc, its seed number): int32 seed numbers, not int64 keys
            seed_no, counts, n_seeds, patches = _split_all(cc, halo, spacing, params, ws, scheduler, cc_path, plan)
            seed_no = _patched_seeds(seed_no, cc, patches)
            labels, n = _number(seed_no, cc, counts, n_seeds, plan.n, spacing, params, ws, scheduler)
            del counts, n_seeds, patches
        else:
            plan = _plan_labels(filled, full, scheduler=scheduler, keep=keep)
            cc = _apply_plan(filled, full, _relabel_block, plan, np.int64)
            parts = _reduce(cc, None, lambda b, w: np.unique(b[b > 0], return_counts=True), combine=lambda p: p,
                            scheduler=scheduler)
            labels, n = _size_filter(cc, parts, spacing, params, ws, scheduler, key_is_label=True)
            seed_no = None
        filled = plan = None
        # cached: measuring and writing each read the labels (else each redoes patches and lookups)
        (labels,), _ = _materialize([labels], [], ws, scheduler, name="labels")
        del cc, seed_no
    return ChunkedSegmentation(labels=labels, n_objects=n, threshold=float(t))


def _split_window(cc_path, slices, seeds_path, dst, *args):
    """On disk: read the window, split, write the seed numbers of the core, return only the small stats."""
    import zarr

    seeds_core, counts, seeds, deferred = _split_block(_read(cc_path, slices), *args)
    zarr.open_array(seeds_path, mode="r+")[dst] = seeds_core
    return seeds, counts, deferred


def _deferred_ids(plan, cc, depth) -> list:
    """The components that `_split_block` will defer, known from the labelling plan before the split.

    A component is deferred when, in the window of a block whose core it meets, it reaches
    the window's edge inside the image: from its global bounding box (``plan.boxes``) and
    the labels of each block (``plan.luts``).
    """
    glo, ghi = plan.boxes
    starts = [np.r_[0, np.cumsum(c)] for c in cc.chunks]
    out = set()
    for i in np.ndindex(*cc.numblocks):
        ids = np.unique(plan.luts[i][1:]).astype(np.int64)
        if ids.size == 0:
            continue
        cut = np.zeros(ids.size, bool)
        for a in range(cc.ndim):
            b0 = int(starts[a][i[a]])
            w0, w1 = max(0, b0 - depth[a]), min(cc.shape[a], b0 + cc.chunks[a][i[a]] + depth[a])
            if w0 > 0:
                cut |= glo[ids - 1, a] <= w0
            if w1 < cc.shape[a]:
                cut |= ghi[ids - 1, a] >= w1
        out.update(ids[cut].tolist())
    return sorted(out)


def _split_deferred(cc, gid, box, spacing, params):
    """Split one component in its own bounding box (grown by one voxel): its labels and key counts."""
    crop = np.asarray(cc[box].compute(scheduler="synchronous"))
    lab, n_seeds = classic.split_component(crop == gid, spacing, params.split_min_distance_um)
    u, c = np.unique(lab[lab > 0], return_counts=True)
    return lab, n_seeds, (np.int64(gid) * _KEY_STRIDE + u.astype(np.int64), c)


def _n_threads(scheduler) -> int:
    """Worker threads of a local threaded scheduler (1 for any other)."""
    if not _local_threads(scheduler):
        return 1
    pool = getattr(dask.base.get_scheduler(scheduler=scheduler), "keywords", {}).get("pool")
    if pool is not None:
        return int(pool._max_workers)
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def _local(scheduler) -> bool:
    """Whether ``scheduler`` runs in this process (threads or synchronous): results need no transfer."""
    get = dask.base.get_scheduler(scheduler=scheduler)
    return _local_threads(scheduler) or get is dask.local.get_sync


def _local_threads(scheduler) -> bool:
    """Whether ``scheduler`` is dask's local threaded scheduler (the default for arrays)."""
    get = dask.base.get_scheduler(scheduler=scheduler)
    return get is None or getattr(get, "func", get) is dask.threaded.get


def _split_all(cc, halo, spacing, params, ws, scheduler, cc_path, plan):
    # The halo may span several chunks: each block reads its own window of the (lazy) labels.
    depth = {a: min(h, n) for a, (h, n) in enumerate(zip(halo, cc.shape))}
    starts = [np.r_[0, np.cumsum(c)] for c in cc.chunks]
    boxes = {}
    early = {}
    pool = None
    for gid in _deferred_ids(plan, cc, depth):
        lo, hi = plan.boxes[0][gid - 1], plan.boxes[1][gid - 1]
        boxes[gid] = classic.grow_box(tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)), cc.shape)
    if boxes and ws is None and _local_threads(scheduler):
        # A component larger than the overlap (up to the whole image) is split in one call
        # (distance transform, watershed: compiled code that releases the GIL); started now,
        # in a thread of its own, it runs while the blocks are split instead of after them.
        # Not on disk: there its crop would add to the memory bound of the block pass.
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1, thread_name_prefix="lungtrack-split")
        early = {gid: pool.submit(_split_deferred, cc, gid, box, spacing, params) for gid, box in boxes.items()}
    try:
        return _split_blocks(cc, depth, starts, spacing, params, ws, scheduler, cc_path, boxes, early,
                             (*plan.boxes, plan.first))
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _split_blocks(cc, depth, starts, spacing, params, ws, scheduler, cc_path, boxes, early, gboxes):
    seed_blocks = np.empty(cc.numblocks, dtype=object)
    stats = []
    if cc_path is not None:
        import zarr

        seeds_path = os.path.join(ws, "seeds.zarr")
        zarr.open_array(store=seeds_path, mode="w", shape=cc.shape, chunks=tuple(c[0] for c in cc.chunks),
                        dtype=np.int32)
    for i in np.ndindex(*cc.numblocks):
        bstart = [int(starts[a][i[a]]) for a in range(cc.ndim)]
        bshape = [cc.chunks[a][i[a]] for a in range(cc.ndim)]
        origin = tuple(max(0, bstart[a] - depth[a]) for a in range(cc.ndim))
        stop = tuple(min(cc.shape[a], bstart[a] + bshape[a] + depth[a]) for a in range(cc.ndim))
        core = tuple(slice(bstart[a] - origin[a], bstart[a] - origin[a] + bshape[a]) for a in range(cc.ndim))
        wsl = tuple(slice(o, e) for o, e in zip(origin, stop))
        if cc_path is None:
            res = dask.delayed(_split_block, nout=4)(cc[wsl], origin, core, cc.shape, spacing, params, gboxes)
            seed_blocks[i] = da.from_delayed(res[0], shape=tuple(bshape), dtype=np.int32)
            stats.append(dask.delayed(lambda r: (r[2], r[1], r[3]))(res))
        else:  # each task reads its own window and writes its seed numbers: nothing shared is held in memory
            dst = tuple(slice(b, b + n) for b, n in zip(bstart, bshape))
            stats.append(dask.delayed(_split_window)(cc_path, wsl, seeds_path, dst, origin, core, cc.shape, spacing,
                                                     params, gboxes))
    if cc_path is None:
        seed_no = da.block(seed_blocks.tolist())
        (seed_no,), stats = _materialize([seed_no], stats, ws, scheduler, name="seeds")
    else:
        stats = list(dask.compute(*stats, scheduler=scheduler))
        seed_no = da.from_zarr(seeds_path).rechunk(cc.chunks)
    seeds = {}
    for s, _, _ in stats:
        seeds.update(s)
    counts = [c for _, c, _ in stats]
    deferred = sorted(set(g for _, _, d in stats for g in d))
    patches = []
    if deferred:
        log.info("%d component(s) larger than the chunk overlap: split in their own bounding box", len(deferred))
        # a block whose window held a deferred component whole counted it too: the driver's count replaces it
        dset = np.asarray(deferred, np.int64)
        counts = [(k[~np.isin(k // _KEY_STRIDE, dset)], c[~np.isin(k // _KEY_STRIDE, dset)]) for k, c in counts]
        for gid in deferred:
            if gid in early:
                lab, n_seeds, kc = early[gid].result()
            else:
                lab, n_seeds, kc = _split_deferred(cc, gid, boxes[gid], spacing, params)
            seeds[gid] = n_seeds
            counts.append(kc)
            patches.append((boxes[gid], gid, lab))
    return seed_no, counts, seeds, patches


def _apply_patches(seed_no, cc_block, start, patches):
    """Seed numbers of the components split on the driver, written where they meet this block."""
    seed_no = seed_no.copy()
    for box, gid, lab in patches:
        inter = [slice(max(b.start, s0), min(b.stop, s0 + n)) for b, s0, n in zip(box, start, seed_no.shape)]
        if any(i.start >= i.stop for i in inter):
            continue
        src = tuple(slice(i.start - b.start, i.stop - b.start) for i, b in zip(inter, box))
        dst = tuple(slice(i.start - s0, i.stop - s0) for i, s0 in zip(inter, start))
        part = lab[src]
        here = (cc_block[dst] == gid) & (part > 0)
        sub = seed_no[dst]
        sub[here] = part[here]
    return seed_no


def _patched_seeds(seed_no, cc, patches):
    if not patches:
        return seed_no
    starts = [np.r_[0, np.cumsum(c)] for c in seed_no.chunks]
    kb, cb = seed_no.to_delayed(), cc.to_delayed()
    out = np.empty(seed_no.numblocks, dtype=object)
    for i in np.ndindex(*seed_no.numblocks):
        start = tuple(int(starts[a][i[a]]) for a in range(seed_no.ndim))
        shape = tuple(seed_no.chunks[a][i[a]] for a in range(seed_no.ndim))
        mine = [p for p in patches
                if all(b.start < s0 + n and b.stop > s0 for b, s0, n in zip(p[0], start, shape))]
        if mine:
            out[i] = da.from_delayed(dask.delayed(_apply_patches)(kb[i], cb[i], start, mine), shape=shape,
                                     dtype=np.int32)
        else:
            out[i] = seed_no.blocks[i]
    return da.block(out.tolist())


def _size_bounds(spacing, params):
    lo = classic._diameter_to_size(params.min_diameter_um, spacing)
    hi = classic._diameter_to_size(params.max_diameter_um, spacing)
    return lo, hi


def _number(seed_no, cc, counts, seeds, n_components, spacing, params, ws, scheduler):
    """Global numbering of the split objects (component order, then seed) and the size filter."""
    k = np.concatenate([c[0] for c in counts]) if counts else np.zeros(0, np.int64)
    v = np.concatenate([c[1] for c in counts]) if counts else np.zeros(0, np.int64)
    size = pd.Series(v).groupby(k).sum()
    comp = np.arange(1, n_components + 1)
    nseed = np.array([seeds.get(int(c), 0) for c in comp], np.int64)
    first = np.r_[0, np.cumsum(nseed)[:-1]].astype(np.int64)  # objects before each component (0-based)
    obj_keys = size.index.to_numpy(np.int64)
    c_of = obj_keys // _KEY_STRIDE
    s_of = obj_keys % _KEY_STRIDE
    obj_id = first[c_of - 1] + s_of  # the classic numbering before the size filter
    lo, hi = _size_bounds(spacing, params)
    sz = size.to_numpy()
    keep = (sz >= lo) & (sz <= hi)
    order = np.argsort(obj_id[keep], kind="stable")
    final = np.zeros(keep.sum(), np.int32)
    final[order] = np.arange(1, keep.sum() + 1)
    if np.any(s_of > nseed[c_of - 1]):
        raise RuntimeError("internal error: a block split a component into more objects than its owner block")
    # final label by object number (the classic one): table[first_of[component] + seed]
    first_of = np.r_[0, first]
    table = np.zeros(int(nseed.sum()) + 1, np.int32)
    table[obj_id[keep]] = final
    labels = da.map_blocks(_lookup_seeds, seed_no, cc, first_of, table, dtype=np.int32)
    return labels, int(keep.sum())


def _size_filter(cc, parts, spacing, params, ws, scheduler, key_is_label=True):
    k = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    v = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    size = pd.Series(v).groupby(k).sum()
    lo, hi = _size_bounds(spacing, params)
    ids = size.index.to_numpy(np.int64)
    keep = (size.to_numpy() >= lo) & (size.to_numpy() <= hi)
    final = np.arange(1, keep.sum() + 1, dtype=np.int32)
    labels = cc.map_blocks(_lookup, ids[keep], final, dtype=np.int32)
    return labels, int(keep.sum())


# --------------------------------------------------------------------------- measurements

def _as3d(a: np.ndarray) -> np.ndarray:
    return a.reshape((1,) * (3 - a.ndim) + a.shape)


def _dense_ok(lo: int, hi: int, size: int) -> bool:
    """Whether per-label arrays over lo..hi are small next to a block of ``size`` voxels (else sort the voxels)."""
    return hi - lo + 1 <= max(size // 4, 1 << 16)


def _partial_sums(lab, intens, start, image_shape):
    """Additive per-block sums for every label: count, coordinate sums, intensity sums, border flag.

    One compiled pass per quantity over per-label arrays (the labels of a block span a
    narrow range), summing in raster order as ``np.bincount`` does: the same values as
    `_partial_sums_sorted`, which sorts the voxels instead (for a block whose labels are far apart).
    """
    from ._kernels import label_intensity_sums, label_range, label_sums

    lab = np.ascontiguousarray(lab)
    lab3 = _as3d(lab)
    lo, hi = label_range(lab3)
    if not _dense_ok(lo, hi, lab.size):
        return _partial_sums_sorted(lab, intens, start, image_shape)
    pad = 3 - lab.ndim
    count, sums, border = label_sums(lab3, lo, hi, np.array((0,) * pad + tuple(start), np.int64),
                                     np.array((1,) * pad + tuple(image_shape), np.int64))
    here = np.flatnonzero(count)
    out = {"label": here + lo, "count": count[here].astype(np.float64)}
    for ax in range(lab.ndim):
        out[f"sum_{ax}"] = sums[pad + ax, here]
    for name, im in intens.items():
        out[f"int_{name}"] = label_intensity_sums(lab3, _as3d(np.ascontiguousarray(im)), lo, hi)[here]
    out["border"] = border[here]
    return pd.DataFrame(out)


def _partial_sums_sorted(lab, intens, start, image_shape):
    fg = lab > 0
    ids, inv, counts = np.unique(lab[fg], return_inverse=True, return_counts=True)
    out = {"label": ids.astype(np.int64), "count": counts.astype(np.float64)}
    coords = np.nonzero(fg)
    for ax, c in enumerate(coords):
        out[f"sum_{ax}"] = np.bincount(inv, weights=(c + start[ax]).astype(np.float64), minlength=ids.size)
    for name, im in intens.items():
        out[f"int_{name}"] = np.bincount(inv, weights=np.asarray(im, np.float64)[fg], minlength=ids.size)
    border = np.zeros(ids.size, bool)
    for ax, c in enumerate(coords):
        if image_shape[ax] > 1:
            g = c + start[ax]
            border |= np.bincount(inv, weights=((g == 0) | (g == image_shape[ax] - 1)).astype(float),
                                  minlength=ids.size) > 0
    out["border"] = border
    return pd.DataFrame(out)


def measure_objects(labels, spacing_um, *, intensities=None, role=None, sample_id=None,
                    scheduler=None, read_per_block: bool = False) -> pd.DataFrame:
    """`lungtrack.measure.measure_objects` from additive per-block partial sums.

    The label image is never gathered: each block yields, per label, its voxel
    count, coordinate sums and intensity sums, which add up over blocks.

    Returns the same columns; values equal the whole-image ones up to floating-point
    summation order (relative 1e-12). With ``read_per_block`` (bounded memory), each
    block's task reads its own part of every intensity channel: a channel that was
    rechunked shares input chunks between blocks, which stay in memory until every
    block that needs them ran (a 27648² image at a 0.5 GB budget peaked at 1.27 GB that way, 0.44 GB with it).

    Examples
    --------
    >>> lab = np.zeros((10, 10), np.int32); lab[2:4, 2:6] = 1
    >>> t = measure_objects(da.from_array(lab, chunks=3), (1.0, 0.5, 0.5))
    >>> t[["label", "area_um2", "centroid_y_um", "centroid_x_um"]].to_dict("records")
    [{'label': 1, 'area_um2': 2.0, 'centroid_y_um': 1.25, 'centroid_x_um': 1.75}]
    """
    labels = da.asarray(labels)
    spacing = tuple(float(s) for s in spacing_um)
    sp = spacing[-labels.ndim:]
    intensities = {k: da.asarray(v) for k, v in (intensities or {}).items()}
    cols = object_columns(labels.ndim, list(intensities))
    names = list(intensities)
    # a channel chunked otherwise is read by each block's task too, not rechunked (as read_per_block)
    same = [k for k in names if intensities[k].chunks == labels.chunks and not read_per_block]
    other = {k: _Hidden(intensities[k]) for k in names if k not in same}

    def block_sums(lab, *ims, block_info=None):
        loc = block_info[0]["array-location"]
        vals = dict(zip(same, ims))
        vals.update({k: _read(h, [slice(a, b) for a, b in loc]) for k, h in other.items()})
        out = np.empty((1,) * lab.ndim, object)
        out[(0,) * lab.ndim] = _partial_sums(lab, {k: vals[k] for k in names}, tuple(int(a) for a, _ in loc),
                                             labels.shape)
        return out

    # named here: dask would otherwise hash the closure, i.e. every in-memory chunk it reaches (0.2 s per 4096² image)
    name = "partial-sums-" + dask.base.tokenize(labels.name, *[intensities[k].name for k in names], read_per_block,
                                                 labels.shape)
    sums = da.map_blocks(block_sums, labels, *[intensities[k] for k in same], dtype=object,
                         chunks=tuple((1,) * n for n in labels.numblocks), name=name)
    parts = list(sums.compute(scheduler=scheduler).ravel())
    df = pd.concat(parts, ignore_index=True)
    if len(df) == 0:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in cols})
    agg = df.drop(columns="border").groupby("label", sort=True).sum()
    border = df.groupby("label", sort=True)["border"].any()
    n = agg["count"].to_numpy()
    vox = float(np.prod(sp))
    size = n * vox
    cent = np.column_stack([agg[f"sum_{a}"].to_numpy() / n * sp[a] for a in range(labels.ndim)])
    if labels.ndim == 2:
        cent = np.column_stack([np.zeros(len(n)), cent])
        eqd = 2.0 * np.sqrt(size / math.pi)
    else:
        eqd = 2.0 * np.cbrt(3.0 * size / (4.0 * math.pi))
    data = {"sample_id": [sample_id] * len(n), "role": [role] * len(n), "label": agg.index.to_numpy(np.int64),
            "centroid_z_um": cent[:, 0], "centroid_y_um": cent[:, 1], "centroid_x_um": cent[:, 2],
            cols[6]: size, "equivalent_diameter_um": eqd}
    for name in intensities:
        data[f"mean_intensity_{name}"] = agg[f"int_{name}"].to_numpy() / n
    data["touches_border"] = border.to_numpy()
    return pd.DataFrame(data, columns=cols)


# --------------------------------------------------------------------------- writing

def write_labels(path, labels, spacing_um, *, scheduler=None) -> None:
    """Write a dask label image chunk by chunk: ``.zarr`` (any size) or tiled OME-TIFF (uint32).

    Only one row of chunks (2D) or one z-chunk (3D, TIFF) is in memory at a time; the
    TIFF opens in Fiji and napari with the image's spacing (``lungtrack.io.read_image``).

    Examples
    --------
    >>> import tempfile, os
    >>> from lungtrack.io import read_image
    >>> p = os.path.join(tempfile.mkdtemp(), "lab.ome.tif")
    >>> write_labels(p, da.ones((40, 50), np.int32, chunks=32), (1.0, 0.5, 0.5))
    >>> read_image(p).data.shape, read_image(p).spacing_um
    ((1, 1, 1, 40, 50), (1.0, 0.5, 0.5))
    """
    import tifffile

    labels = da.asarray(labels).astype(np.uint32)
    path = str(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".zarr"):
        labels.to_zarr(path, overwrite=True, compute=False).compute(scheduler=scheduler)
        return
    ty = tx = 256 if min(labels.shape[-2:]) >= 256 else 16

    def tiles():
        if labels.ndim == 3:  # TIFF pages are whole planes: one z-chunk of planes at a time
            for z0, z1 in itertools.pairwise(np.r_[0, np.cumsum(labels.chunks[0])]):
                for plane in labels[z0:z1].compute(scheduler=scheduler):
                    yield from _plane_tiles(plane, ty, tx)
        else:  # one row of chunks at a time; rows short of a whole tile row wait for the next chunk row
            carry = np.zeros((0, labels.shape[1]), np.uint32)
            for y0, y1 in itertools.pairwise(np.r_[0, np.cumsum(labels.chunks[0])]):
                rows = labels[y0:y1].compute(scheduler=scheduler)
                rows = np.concatenate([carry, rows]) if carry.shape[0] else rows
                whole = rows.shape[0] - rows.shape[0] % ty
                yield from _plane_tiles(rows[:whole], ty, tx)
                carry = rows[whole:]
            if carry.shape[0]:
                yield from _plane_tiles(carry, ty, tx)

    spacing = tuple(float(s) for s in spacing_um)
    meta = {"axes": "ZYX" if labels.ndim == 3 else "YX", "PhysicalSizeX": spacing[2], "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": spacing[1], "PhysicalSizeYUnit": "µm"}
    if labels.ndim == 3:
        meta.update(PhysicalSizeZ=spacing[0], PhysicalSizeZUnit="µm")
    # tiles are compressed by as many threads as the scheduler has (zlib releases the GIL)
    tifffile.imwrite(path, tiles(), shape=labels.shape, dtype=np.uint32, tile=(ty, tx), ome=True, metadata=meta,
                     compression="zlib", photometric="minisblack", resolution=(1.0 / spacing[2], 1.0 / spacing[1]),
                     resolutionunit="MICROMETER", maxworkers=_n_threads(scheduler))


def _plane_tiles(rows: np.ndarray, ty: int, tx: int):
    """Tiles of ``rows`` (a whole plane, or a band of rows whose height is a multiple of ty except at the end)."""
    h, w = rows.shape
    for y in range(0, h, ty):
        for x in range(0, w, tx):
            tile = np.zeros((ty, tx), np.uint32)
            part = rows[y:y + ty, x:x + tx]
            tile[:part.shape[0], :part.shape[1]] = part
            yield tile


# --------------------------------------------------------------------------- large images in the pipeline

def tissue_mask_reduced(channels, spacing_um, params, *, max_voxels: int = 4096 * 4096, scheduler=None) -> da.Array:
    """`classic.tissue_mask` on a block-mean-reduced copy (at most ``max_voxels`` per plane), upsampled lazily.

    The tissue mask is a coarse structure (septa vs air spaces, areas >= 50 um2) used
    for the threshold scope and the tissue area; computing it at reduced resolution
    keeps memory bounded. It is therefore *not* identical to the full-resolution
    mask; the cell labels equal `classic.segment_cells` given this mask.

    Examples
    --------
    >>> from lungtrack.config import TissueSegmentation
    >>> img = np.zeros((2, 64, 64), np.float32); img[:, :, :32] = 100
    >>> m = tissue_mask_reduced(da.from_array(img, chunks=(2, 32, 32)), (1.0, 1.0), TissueSegmentation(),
    ...                         max_voxels=32 * 32).compute()
    >>> bool(m[:, :30].all()) and not m[:, 34:].any()
    True
    """
    arr = da.asarray(channels)  # (C, [Z,] Y, X)
    nd = len(spacing_um)
    plane = arr.shape[-2] * arr.shape[-1]
    f = max(1, int(math.ceil(math.sqrt(plane / max_voxels))))
    if f > 1:
        axes = {arr.ndim - 2: f, arr.ndim - 1: f}
        small = da.coarsen(np.mean, arr.astype(np.float32), axes, trim_excess=True)
    else:
        small = arr.astype(np.float32)
    small = np.asarray(small.compute(scheduler=scheduler))
    sp = tuple(float(s) for s in spacing_um)
    sp_small = sp[:-2] + (sp[-2] * f, sp[-1] * f)
    mask_small = classic.tissue_mask(small, sp_small, params)
    spatial_shape = arr.shape[1:]
    chunks = arr.chunks[1:]

    def up(block_info=None):
        loc = block_info[None]["array-location"]
        idx = [np.arange(a, b) for a, b in loc]
        idx[-2] = np.minimum(idx[-2] // f, mask_small.shape[-2] - 1)
        idx[-1] = np.minimum(idx[-1] // f, mask_small.shape[-1] - 1)
        return mask_small[np.ix_(*idx)]

    assert len(spatial_shape) == nd
    return da.map_blocks(up, dtype=bool, chunks=chunks, meta=np.zeros((0,) * nd, bool))


_BYTES_PER_VOXEL = 40  # a role's in-memory intermediates (smoothed, filled, components, seeds, labels), with margin


def _physical_memory() -> float:
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8e9


@dataclass
class RoleResult:
    """One role of `segment_roles`: the chunked segmentation and its objects table."""

    segmentation: ChunkedSegmentation
    objects: pd.DataFrame


def segment_roles(channels: dict, spacing_um, params: dict, *, within=None, intensities=None, label_paths=None,
                  sample_id=None, chunks=None, overlap_um=None, tmpdir=None, scheduler=None) -> dict:
    """`segment_cells`, `measure_objects` and `write_labels` for several cell roles of one image.

    With dask's local threaded scheduler and intermediates in memory, as many roles as
    there are worker threads run at the same time, in the order given, and share one
    pool of worker threads: when one role waits at a step that needs all its chunks (a
    threshold, the labelling plan), the workers take another role's chunks instead of
    idling. Give the heaviest role first (the pipeline starts with the nuclei: most
    objects), so that the last one running alone is a light one. (All roles at once
    held 25 % more memory and, through page faults, took longer on 2 threads.) Each
    role's result is the same as segmenting it alone. Otherwise (another scheduler, ``tmpdir``: bounded memory, or
    intermediates of all roles above half the machine's memory) they run one after
    the other.

    Parameters
    ----------
    channels : dict of role -> dask array
        (Y, X) or (Z, Y, X) intensities per role (``msc``, ``macrophage``, ``nuclei``).
    spacing_um : sequence of 3 float
        Voxel size (z, y, x) in um; z is ignored for 2D channels.
    params : dict of role -> RoleSegmentation
    within : dask array of bool, optional
        Tissue mask (thresholds are computed within it).
    intensities : dict of name -> dask array, optional
        Channels whose mean intensity goes into every role's objects table.
    label_paths : dict of role -> path, optional
        Where to write each role's labels (tiled OME-TIFF or ``.zarr``).
    sample_id, chunks, overlap_um, tmpdir, scheduler
        As in `segment_cells` and `measure_objects`.

    Returns
    -------
    dict of role -> RoleResult

    Examples
    --------
    >>> img = np.zeros((64, 64)); img[10:30, 10:30] = 100; img[40:60, 35:55] = 80
    >>> p = RoleSegmentation(min_diameter_um=5, background_radius_um=30)
    >>> out = segment_roles({"msc": da.from_array(img, chunks=32)}, (1.0, 1.0, 1.0), {"msc": p}, overlap_um=25)
    >>> out["msc"].segmentation.n_objects, len(out["msc"].objects)
    (2, 2)
    """
    spacing = tuple(float(s) for s in spacing_um)

    def one(role, scheduler):
        ch = channels[role]
        sp = spacing if ch.ndim == 3 else spacing[1:]
        res = segment_cells(ch, sp, params[role], within=within, chunks=chunks, overlap_um=overlap_um,
                            tmpdir=tmpdir, scheduler=scheduler)
        table = measure_objects(res.labels, spacing, intensities=intensities if intensities is not None else
                                {role: ch}, role=role, sample_id=sample_id, scheduler=scheduler,
                                read_per_block=tmpdir is not None)
        if label_paths and role in label_paths:
            write_labels(label_paths[role], res.labels, spacing, scheduler=scheduler)
        return RoleResult(res, table)

    roles = list(channels)
    n_vox = max((int(np.prod(channels[r].shape)) for r in roles), default=0)
    if len(roles) < 2 or tmpdir is not None or not _local_threads(scheduler) or \
            n_vox * _BYTES_PER_VOXEL * len(roles) > 0.5 * _physical_memory():
        if tmpdir is None and _local(scheduler):
            channels, intensities, within = _read_once(channels, intensities, within, spacing, params, chunks,
                                                       scheduler)
        return {r: one(r, scheduler) for r in roles}
    from concurrent.futures import ThreadPoolExecutor

    n_threads = _n_threads(scheduler)
    with ThreadPoolExecutor(n_threads, thread_name_prefix="lungtrack-chunks") as pool, \
            ThreadPoolExecutor(min(len(roles), n_threads), thread_name_prefix="lungtrack-role") as per_role:
        # the pool goes with each call, not into dask's global config: other images may be
        # segmented at the same time in other threads
        shared = functools.partial(dask.threaded.get, pool=pool)
        channels, intensities, within = _read_once(channels, intensities, within, spacing, params, chunks, shared)
        futures = {r: per_role.submit(one, r, shared) for r in roles}
        return {r: f.result() for r, f in futures.items()}


def _read_once(channels, intensities, within, spacing, params, chunks, scheduler):
    """Persist the inputs of `segment_roles` (in memory anyway) in the chunks `segment_cells` will use.

    Each step and the measurements would otherwise read, and rechunk, them again.
    """
    names = list(channels)
    extra = [] if intensities is None else list(intensities)
    regular = []
    for r in names:
        ch = da.asarray(channels[r])
        sp = spacing if ch.ndim == 3 else spacing[1:]
        regular.append(_regular_chunks(ch, chunks, classic.background_geometry(
            ch.shape, sp, params[r].background_radius_um)[0]))
    ref = regular[0].chunks
    arrs = dask.persist(*regular, *[da.asarray(intensities[k]).rechunk(ref) for k in extra],
                        *([] if within is None else [da.asarray(within).rechunk(ref)]), scheduler=scheduler)
    channels = dict(zip(names, arrs[:len(names)]))
    if intensities is not None:
        intensities = dict(zip(extra, arrs[len(names):len(names) + len(extra)]))
    return channels, intensities, (None if within is None else arrs[-1])


def _nested_scheduler():
    """Local threads for the chunks of one image, also inside a distributed worker.

    The image's dask graph holds an open TIFF store, which cannot be shipped to a
    scheduler; the cluster parallelises over images, the threads over chunks.
    (`segment_cells` itself accepts ``scheduler=client.get`` for in-memory or zarr input.)
    """
    return contextlib.nullcontext("threads")


def use_one_malloc_arena() -> bool:
    """Make this process (and the processes it starts) allocate from one glibc malloc arena.

    glibc gives each thread its own arena; memory freed in one is not reused by the
    others, and with chunks coming and going on several threads the fragments add up.
    With a memory budget that is what broke it: ``bench/out_of_core.py`` at 0.5 GB on
    2 threads peaked at 522 MiB with per-thread arenas and 428 MiB with one. Called by
    `lungtrack analyze` when a memory limit is set, before any worker thread starts
    (arenas that already exist stay). Does nothing where ``MALLOC_ARENA_MAX`` is set
    already or the C library is not glibc. Returns whether it took effect.
    """
    import ctypes
    import platform

    if "MALLOC_ARENA_MAX" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    os.environ["MALLOC_ARENA_MAX"] = "1"  # read by glibc at the start of child processes (dask workers)
    try:
        return bool(ctypes.CDLL(None).mallopt(-8, 1))  # M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def chunk_plan(shape, run, n_threads: int | None = None):
    """Chunk size (px per axis) and whether intermediates go to disk, from the run config.

    Without a memory limit: ``run.chunk_size_px`` in y and x (whole z). With
    ``run.memory_limit_gb``: intermediates on disk and chunks small enough that
    every thread's working set (about 120 bytes per voxel of a chunk, the split's
    halo and label arrays included) fits the limit after 0.35 GB for Python and
    the libraries, numba's compiled kernels included (calibrated with
    bench/out_of_core.py, one malloc arena: `use_one_malloc_arena`).
    """
    n_threads = n_threads or os.cpu_count() or 1
    c = int(run.chunk_size_px)
    on_disk = run.memory_limit_gb is not None
    if on_disk:
        budget = max(run.memory_limit_gb * 1e9 - 0.35e9, 0.1 * run.memory_limit_gb * 1e9)
        zdepth = shape[0] if len(shape) == 3 else 1
        c_max = int(math.sqrt(budget / (120.0 * n_threads * zdepth)))
        c = max(64, min(c, c_max))
    chunks = tuple([shape[0]] if len(shape) == 3 else []) + (min(c, shape[-2]), min(c, shape[-1]))
    return chunks, on_disk


def process_large_sample(img, sample, config, labels_dir=None) -> dict:
    """The pipeline's per-image step for images too large for memory (see `chunk_plan`).

    Segments every cell role with `segment_cells` (equal to `classic.segment_cells` on
    the whole image), the tissue mask at reduced resolution (`tissue_mask_reduced`),
    measures objects from per-block sums and writes label images tile by tile.
    Colocalization and MSC-macrophage relations need whole label images and are not
    computed for these images (NaN; an empty interactions table), which is logged.
    """
    from ..measure import object_columns
    from ..pipeline import densities

    cfg = config
    three_d = img.is_3d
    spacing = img.spacing_um
    sp = spacing if three_d else spacing[1:]
    data = img.data[0] if three_d else img.data[0, :, 0]  # (C, [Z,] Y, X)
    chunks, on_disk = chunk_plan(data.shape[1:], cfg.run)
    data = data.rechunk((1,) + chunks)
    # intermediates beside the results (the staging folder), not in a possibly small /tmp
    tmp_parent = os.path.dirname(os.path.abspath(labels_dir)) if labels_dir is not None else None
    with tempfile.TemporaryDirectory(prefix="lungtrack-large-", dir=tmp_parent) as tmp, _nested_scheduler() as sched:
        tmpdir = tmp if on_disk else None
        ref = cfg.channels.tissue
        tissue_src = data if ref is None else data[img.channel_index(ref)][None]
        tissue = tissue_mask_reduced(tissue_src, sp, cfg.segment.tissue, scheduler=sched).rechunk(chunks)
        chans = {name: data[i] for i, name in enumerate(img.channel_names)}
        roles = [r for r in ("nuclei", "msc", "macrophage") if getattr(cfg.channels, r) is not None]
        paths = None if labels_dir is None else \
            {r: os.path.join(labels_dir, f"{sample.sample_id}_{r}.tif") for r in roles}
        done = segment_roles({r: data[img.channel_index(getattr(cfg.channels, r))] for r in roles}, spacing,
                             {r: getattr(cfg.segment, r) for r in roles}, within=tissue, intensities=chans,
                             label_paths=paths, sample_id=sample.sample_id, chunks=chunks,
                             overlap_um=cfg.run.chunk_overlap_um, tmpdir=tmpdir, scheduler=sched)
        objects = [done[r].objects for r in roles]
        counts = {r: done[r].segmentation.n_objects for r in roles}
        if labels_dir is not None:
            write_labels(os.path.join(labels_dir, f"{sample.sample_id}_tissue.tif"), tissue, spacing, scheduler=sched)
        proj = tissue.any(axis=0) if three_d else tissue
        # area (projected for a z-stack) and, for a z-stack, volume = tissue voxels x (dz dy dx), in one pass
        n_area, n_vox = dask.compute(proj.sum(), tissue.sum() if three_d else np.nan, scheduler=sched)
        tissue_area = float(n_area) * float(np.prod(sp[-2:])) * 1e-6
        tissue_volume = float(n_vox) * float(np.prod(sp)) * 1e-9
    objects = pd.concat(objects, ignore_index=True) if objects else pd.DataFrame(
        columns=object_columns(3 if three_d else 2, img.channel_names))
    log.warning("%s: %s voxels segmented chunk by chunk; colocalization and MSC-macrophage relations are not "
                "computed for images this large (NaN in samples.csv)", sample.sample_id, "x".join(map(str, data.shape[1:])))
    n_msc, n_mac = counts.get("msc", 0), counts.get("macrophage", 0)
    row = {"sample_id": sample.sample_id, "animal": sample.animal, "group": sample.group, "time_h": sample.time_h,
           "section": sample.section, "tissue_area_mm2": tissue_area, "n_msc": n_msc, "n_macrophage": n_mac,
           "n_nuclei": counts.get("nuclei", 0),
           **densities(n_msc, n_mac, tissue_area, tissue_volume), "segmentation": "chunked"}
    from ..pipeline import SAMPLE_COLUMNS

    row = {**{c: np.nan for c in SAMPLE_COLUMNS}, **row}
    row.update(sample.metadata)
    return {"sample": row, "objects": objects, "interactions": pd.DataFrame(), "coloc": pd.DataFrame()}
