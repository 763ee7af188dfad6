"""Compiled loops (numba) for the filters that dominate segmentation time, equal to scipy's bit for bit.

Why by hand: lungtrack's chunked and whole-image paths must give the same bits as
``scipy.ndimage.gaussian_filter`` (the reference, and what plain scikit-image code uses),
and scipy's own 1D filter copies every line into a buffer and runs its taps one output
at a time: 0.24 s for a 4096² float32 image here, the largest single step of
segmentation. These loops do the same float64 operations in the same order
(``acc = x[i]*w[0]``, then ``acc += (x[i-k] + x[i+k])*w[k]`` for k = r ... 1, one
rounding to the output type at the end of each axis: what scipy's
``NI_Correlate1D`` computes for a symmetric kernel, built without fused multiply-adds
on x86-64 and aarch64 Linux), but run over many outputs at once so that the compiler
vectorises them. numba does not contract a multiply and an add into an FMA unless
``fastmath`` is set, so the rounding is the same. `tests/test_segment.py` checks the
equality on 2D/3D, float32/float64, lines shorter than the kernel and every sigma.

Compiled on first use and cached on disk (``cache=True``); ``nogil`` so that dask's
threads run them in parallel.
"""
from __future__ import annotations

import numba
import numpy as np

# float64 columns per block in `_filter_middle`: the block's n + 2r rows stay in L2
_COLS = 128


@numba.njit(cache=True, nogil=True)
def _reflect(i, n):
    # scipy's 'reflect' extension (... b a | a b ... y z | z y ...), periodic with period 2n
    m = 2 * n
    j = i % m
    if j < 0:
        j += m
    return j if j < n else m - 1 - j


@numba.njit(cache=True, nogil=True)
def _filter_middle(src, out, w, lo):
    """Filter ``src`` (pre, n, post) along axis 1: ``out[:, i]`` is the output at ``src`` index ``lo + i``.

    ``w``: the centre tap, then outward. ``out`` may be ``src`` (lo = 0, same shape):
    each block of columns is buffered before it is written.
    """
    pre, n, post = src.shape
    m = out.shape[1]
    r = w.shape[0] - 1
    cols = min(_COLS, post)
    # the rows the outputs need (reflected beyond the ends), as float64: scipy's line buffer
    nb = m + 2 * r
    buf = np.empty((nb, cols), np.float64)
    acc = np.empty(cols, np.float64)
    for p in range(pre):
        for q0 in range(0, post, cols):
            c = min(cols, post - q0)
            for j in range(nb):
                row = src[p, _reflect(lo + j - r, n), q0:q0 + c]
                b = buf[j]
                for q in range(c):
                    b[q] = row[q]
            for i in range(m):
                centre = buf[i + r]
                w0 = w[0]
                for q in range(c):
                    acc[q] = centre[q] * w0
                for k in range(r, 0, -1):
                    below = buf[i + r - k]
                    above = buf[i + r + k]
                    wk = w[k]
                    for q in range(c):
                        acc[q] += (below[q] + above[q]) * wk
                o = out[p, i, q0:q0 + c]
                for q in range(c):
                    o[q] = acc[q]


@numba.njit(cache=True, nogil=True)
def _line(line, buf, acc, out, w, lo):
    """One line along the last axis: ``out[i]`` is the output at ``line`` index ``lo + i`` (``out`` may be ``line``)."""
    n = line.shape[0]
    m = out.shape[0]
    r = w.shape[0] - 1
    # buf[j] = line[lo - r + j], reflected beyond the ends
    for j in range(m + 2 * r):
        t = lo - r + j
        buf[j] = line[t] if 0 <= t < n else line[_reflect(t, n)]
    # views, so that every index below is a loop counter (no negative-index check: vectorised)
    centre = buf[r:r + m]
    w0 = w[0]
    for i in range(m):
        acc[i] = centre[i] * w0
    for k in range(r, 0, -1):
        below = buf[r - k:r - k + m]
        above = buf[r + k:r + k + m]
        wk = w[k]
        for i in range(m):
            acc[i] += (below[i] + above[i]) * wk
    for i in range(m):
        out[i] = acc[i]


@numba.njit(cache=True, nogil=True)
def _filter_last(src, out, w, lo):
    """Filter ``src`` (pre, n) along its last axis: ``out[:, i]`` is the output at index ``lo + i``."""
    pre = src.shape[0]
    m = out.shape[1]
    r = w.shape[0] - 1
    buf = np.empty(m + 2 * r, np.float64)
    acc = np.empty(m, np.float64)
    for p in range(pre):
        _line(src[p], buf, acc, out[p], w, lo)


@numba.njit(cache=True, nogil=True)
def _filter_rows(src, out, wy, lo_y, wx, lo_x):
    """Filter (pre, ny, nx) ``src`` along axis 1, then along axis 2, row by row, into (pre, my, mx) ``out``.

    Each row of the first pass is rounded to ``out``'s type (as scipy stores it between
    axes) and filtered along the last axis at once, while it is in the cache: no
    intermediate image. ``out`` must not overlap ``src``.
    """
    pre, ny, nx = src.shape
    my, mx = out.shape[1], out.shape[2]
    r = wy.shape[0] - 1
    rx = wx.shape[0] - 1
    row = np.empty(nx, out.dtype)
    acc = np.empty(nx, np.float64)
    buf = np.empty(mx + 2 * rx, np.float64)
    acc_x = np.empty(mx, np.float64)
    for p in range(pre):
        for i in range(my):
            centre = src[p, _reflect(lo_y + i, ny)]
            w0 = wy[0]
            for q in range(nx):
                acc[q] = np.float64(centre[q]) * w0
            for k in range(r, 0, -1):
                below = src[p, _reflect(lo_y + i - k, ny)]
                above = src[p, _reflect(lo_y + i + k, ny)]
                wk = wy[k]
                for q in range(nx):
                    acc[q] += (np.float64(below[q]) + np.float64(above[q])) * wk
            for q in range(nx):
                row[q] = acc[q]
            _line(row, buf, acc_x, out[p, i], wx, lo_x)


@numba.njit(cache=True, nogil=True)
def correct_background(img, padded, ja0, jb0, w0, ja1, jb1, w1, ja2, jb2, w2, out):
    """``max(img - bg, 0)`` in float32, ``bg`` interpolated from ``padded`` (the shrunken background) on the fly.

    3D arrays (a 2D image as one plane). Per axis, output voxel i interpolates between
    ``padded`` indices ``ja[i]`` and ``jb[i]`` with weight ``w[i]``, as
    ``lungtrack.segment.classic.upsample_linear``: the same float32 operations
    (``a + w * (b - a)``, axis 0, then 1, then 2), so the same bits, without its three
    full-size temporaries.
    """
    nz, ny, nx = img.shape
    py, px = padded.shape[1], padded.shape[2]
    plane = np.empty((py, px), np.float32)
    line = np.empty(px, np.float32)
    zero = np.float32(0)
    for z in range(nz):
        a = padded[ja0[z]]
        b = padded[jb0[z]]
        wz = w0[z]
        for s in range(py):
            for t in range(px):
                plane[s, t] = a[s, t] + wz * (b[s, t] - a[s, t])
        for y in range(ny):
            ra = plane[ja1[y]]
            rb = plane[jb1[y]]
            wy = w1[y]
            for t in range(px):
                line[t] = ra[t] + wy * (rb[t] - ra[t])
            src = img[z, y]
            o = out[z, y]
            for x in range(nx):
                la = line[ja2[x]]
                bg = la + w2[x] * (line[jb2[x]] - la)
                v = np.float32(src[x]) - bg
                o[x] = v if v > zero else zero


def filter_axis(src: np.ndarray, out: np.ndarray, half_weights: np.ndarray, axis: int, lo: int = 0) -> None:
    """Correlate C-contiguous ``src`` with a symmetric kernel along ``axis`` into ``out``.

    ``out`` has ``src``'s shape except along ``axis``, where its index i is ``src``'s
    ``lo + i`` (``out`` may be ``src`` when they have the same shape).
    ``half_weights``: the centre tap, then the taps at distance 1 ... r (float64).
    Reflect boundary, float64 accumulation, as ``scipy.ndimage.correlate1d``.
    """
    shape = src.shape
    pre = int(np.prod(shape[:axis], dtype=np.int64))
    post = int(np.prod(shape[axis + 1:], dtype=np.int64))
    w = np.ascontiguousarray(half_weights, dtype=np.float64)
    if post == 1:
        _filter_last(src.reshape(pre, shape[axis]), out.reshape(pre, out.shape[axis]), w, lo)
    else:
        _filter_middle(src.reshape(pre, shape[axis], post), out.reshape(pre, out.shape[axis], post), w, lo)


def filter_last_two(src: np.ndarray, out: np.ndarray, wy: np.ndarray, lo_y: int, wx: np.ndarray, lo_x: int) -> None:
    """`filter_axis` along the last two axes of C-contiguous ``src``, fused row by row (``out``: a new array)."""
    sh, osh = src.shape, out.shape
    pre = int(np.prod(sh[:-2], dtype=np.int64))
    _filter_rows(src.reshape(pre, sh[-2], sh[-1]), out.reshape(pre, osh[-2], osh[-1]),
                 np.ascontiguousarray(wy, np.float64), lo_y, np.ascontiguousarray(wx, np.float64), lo_x)


@numba.njit(cache=True, nogil=True)
def histogram_counts(values, edges):
    """``np.histogram(values, bins=edges)[0]`` for uniform ``edges`` (np.histogram's own), in one pass.

    A value's bin is estimated from its position, then moved until
    ``edges[i] <= v < edges[i + 1]`` (the last bin closed), numpy's own rule, so the
    counts are numpy's; values outside the edges (and NaN) are not counted. Four
    interleaved sub-histograms keep runs of equal values from stalling on one counter.
    """
    nb = edges.shape[0] - 1
    counts = np.zeros((4, nb), np.int64)
    lo = edges[0]
    hi = edges[nb]
    lo64 = np.float64(lo)
    scale = nb / (np.float64(hi) - lo64)
    flat = values.ravel()
    block = 2048
    guess = np.empty(block, np.int64)
    for s in range(0, flat.shape[0], block):
        part = flat[s:s + block]
        for j in range(part.shape[0]):  # branch-free: vectorised
            f = (np.float64(part[j]) - lo64) * scale
            guess[j] = np.int64(min(max(f, 0.0), nb - 1.0))
        for j in range(part.shape[0]):
            v = part[j]
            if not (v >= lo and v <= hi):
                continue
            i = guess[j]
            while i > 0 and v < edges[i]:
                i -= 1
            while i < nb - 1 and v >= edges[i + 1]:
                i += 1
            counts[j & 3, i] += 1
    total = np.zeros(nb, np.int64)
    for g in range(4):
        for i in range(nb):
            total[i] += counts[g, i]
    return total


@numba.njit(cache=True, nogil=True)
def label_summary(lab, n):
    """For a (Z, Y, X) label image numbered as ``scipy.ndimage.label`` numbers them (1..n by first voxel):
    each label's first voxel (raster index) and bounding box (start, stop per axis), in one pass.

    Replaces ``np.flatnonzero`` + a running maximum + ``ndi.find_objects`` (three passes
    and two temporaries the size of the foreground).
    """
    nz, ny, nx = lab.shape
    first = np.zeros(n, np.int64)
    lo = np.empty((n, 3), np.int64)
    hi = np.zeros((n, 3), np.int64)
    for i in range(n):
        lo[i, 0] = nz
        lo[i, 1] = ny
        lo[i, 2] = nx
    nxt = 1
    for z in range(nz):
        for y in range(ny):
            row = lab[z, y]
            for x in range(nx):
                v = row[x]
                if v == 0:
                    continue
                k = v - 1
                if v == nxt:  # labels first appear in order 1, 2, ...
                    first[k] = (z * ny + y) * nx + x
                    nxt += 1
                if z < lo[k, 0]:
                    lo[k, 0] = z
                if z >= hi[k, 0]:
                    hi[k, 0] = z + 1
                if y < lo[k, 1]:
                    lo[k, 1] = y
                if y >= hi[k, 1]:
                    hi[k, 1] = y + 1
                if x < lo[k, 2]:
                    lo[k, 2] = x
                if x >= hi[k, 2]:
                    hi[k, 2] = x + 1
    return first, lo, hi




@numba.njit(cache=True, nogil=True)
def label_range(lab):
    """Smallest and largest positive label of a (Z, Y, X) block (1, 0 when there is none)."""
    lo = np.iinfo(np.int64).max
    hi = 0
    nz, ny, nx = lab.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                v = np.int64(lab[z, y, x])
                if v > 0:
                    lo = min(lo, v)
                    hi = max(hi, v)
    return (1, 0) if hi == 0 else (lo, hi)


@numba.njit(cache=True, nogil=True)
def label_sums(lab, lo, hi, start, image_shape):
    """Per label lo..hi of a (Z, Y, X) block at global ``start``: voxel count, coordinate sums, border flag.

    Sums in raster order, as ``np.bincount`` over ``np.nonzero`` (the same float64 additions).
    """
    m = hi - lo + 1
    count = np.zeros(m, np.int64)
    sums = np.zeros((3, m), np.float64)
    border = np.zeros(m, np.bool_)
    nz, ny, nx = lab.shape
    for z in range(nz):
        gz = z + start[0]
        bz = image_shape[0] > 1 and (gz == 0 or gz == image_shape[0] - 1)
        for y in range(ny):
            gy = y + start[1]
            by = bz or (image_shape[1] > 1 and (gy == 0 or gy == image_shape[1] - 1))
            row = lab[z, y]
            for x in range(nx):
                v = np.int64(row[x])
                if v <= 0:
                    continue
                j = v - lo
                gx = x + start[2]
                count[j] += 1
                sums[0, j] += np.float64(gz)
                sums[1, j] += np.float64(gy)
                sums[2, j] += np.float64(gx)
                if by or (image_shape[2] > 1 and (gx == 0 or gx == image_shape[2] - 1)):
                    border[j] = True
    return count, sums, border


@numba.njit(cache=True, nogil=True)
def label_intensity_sums(lab, image, lo, hi):
    """Per label lo..hi: the sum of ``image`` over its voxels (float64, raster order)."""
    out = np.zeros(hi - lo + 1, np.float64)
    flat = lab.ravel()
    im = image.ravel()
    for i in range(flat.shape[0]):
        v = np.int64(flat[i])
        if v > 0:
            out[v - lo] += np.float64(im[i])
    return out


@numba.njit(cache=True, nogil=True)
def seed_counts(seeds, cc, lo, hi):
    """Voxels per (component, seed) of (Z, Y, X) blocks (any strides), for the voxels with a seed.

    ``lo``..``hi``: the range of component labels in ``cc``. Returns components, seeds and
    counts in the order of the keys ``component * 2**20 + seed`` sorted (np.unique's),
    without sorting the voxels.
    """
    m = hi - lo + 1
    top = np.zeros(m, np.int64)  # the largest seed number per component
    nz, ny, nx = seeds.shape
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                sd = np.int64(seeds[z, y, x])
                if sd > 0:
                    j = np.int64(cc[z, y, x]) - lo
                    if sd > top[j]:
                        top[j] = sd
    offset = np.zeros(m + 1, np.int64)
    for j in range(m):
        offset[j + 1] = offset[j] + top[j]
    n = np.zeros(offset[m], np.int64)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                sd = np.int64(seeds[z, y, x])
                if sd > 0:
                    n[offset[np.int64(cc[z, y, x]) - lo] + sd - 1] += 1
    k = 0
    for q in range(n.shape[0]):
        if n[q] > 0:
            k += 1
    comp = np.empty(k, np.int64)
    seed = np.empty(k, np.int64)
    cnt = np.empty(k, np.int64)
    k = 0
    for j in range(m):
        for t in range(top[j]):
            q = offset[j] + t
            if n[q] > 0:
                comp[k] = j + lo
                seed[k] = t + 1
                cnt[k] = n[q]
                k += 1
    return comp, seed, cnt


@numba.njit(cache=True, nogil=True)
def seed_lookup(seeds, cc, first, table):
    """Final labels: ``table[first[component] + seed]`` where a voxel has a seed, else 0 (int32)."""
    s = seeds.ravel()
    c = cc.ravel()
    out = np.zeros(s.shape[0], np.int32)
    for i in range(s.shape[0]):
        if s[i] > 0:
            out[i] = table[first[c[i]] + s[i]]
    return out.reshape(seeds.shape)


@numba.njit(cache=True, nogil=True)
def present_labels(lab):
    """The positive labels of a (Z, Y, X) block (any strides), sorted: ``np.unique(lab[lab > 0])`` without a sort.

    Returns an empty array, and the range lo, hi (1, 0 when empty).
    """
    lo, hi = label_range(lab)
    if hi == 0:
        return np.zeros(0, np.int64), 1, 0
    nz, ny, nx = lab.shape
    seen = np.zeros(hi - lo + 1, np.bool_)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                v = np.int64(lab[z, y, x])
                if v > 0:
                    seen[v - lo] = True
    return np.flatnonzero(seen) + lo, lo, hi


def warm_up(ndim: int = 2, dtype=np.uint16) -> float:
    """Start numba and load (or compile) the kernels segmentation uses, on tiny arrays; returns the seconds.

X's load from its on-disk cache
    happen once per process, at the first call; a compile (first use after
    installing: a few seconds) happens once per machine. Benchmarks call this before
    their clock, as they import the libraries before it.
    """
    import time

    from . import blockwise, classic

    t = time.perf_counter()
    shape = (6,) * ndim
    img = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    corrected = classic.subtract_background(img, (1.0,) * ndim, 2.0)
    classic.gaussian(corrected, 1.0)
    classic.histogram(corrected)
    lab = np.arange(np.prod(shape), dtype=np.int32).reshape(shape)
    blockwise._label_block(lab > 0, np.ones((3,) * ndim, bool), boxes=True)
    blockwise._partial_sums(lab, {"x": img}, (0,) * ndim, shape)
    blockwise._key_counts(lab, lab)
    return time.perf_counter() - t
