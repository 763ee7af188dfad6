"""Benchmark: MSC-macrophage relations for 10,000 MSCs x 50,000 macrophages.

Prints wall time, process CPU time and peak traced memory (tracemalloc; numpy buffers included) of
lungtrack's KD-tree relations against a plain baseline measured in the same run:
a whole-image Euclidean distance transform (``scipy.ndimage.distance_transform_edt``
with ``sampling``) plus ``ndimage.minimum`` per MSC for surface gaps, and chunked
brute-force all-pairs distances for the nearest centroid and the counts within r.
Then the per-image summary (near/far macrophage density), cross-K with a
19-simulation envelope and a centroid null model at that size.

Usage::

    python bench/spatial.py                 # 2D, 10k MSCs x 50k macrophages
    python bench/spatial.py --n-msc 2000 --n-mac 10000 --3d
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import scipy.signal  # noqa: F401  (imported up front: its first import takes ~2 s)
from scipy import ndimage as ndi

from lungtrack.spatial import msc_macrophage_relations, object_centroids_um, spatial_summary
from lungtrack.spatial_stats import cross_k_envelope, null_model_test


def _ball(r, ndim):
    g = np.indices((2 * r + 1,) * ndim) - r
    return np.argwhere((g ** 2).sum(0) <= r * r) - r


def scene(n_msc, n_mac, ndim=2, seed=0):
    """Cells on a jittered grid (no overlaps); 10% of MSCs get a touching macrophage."""
    rng = np.random.default_rng(seed)
    cell = 24 if ndim == 2 else 22
    n_touch = n_msc // 10
    n_cells = n_msc + n_mac - n_touch
    if ndim == 2:
        side = int(np.ceil(n_cells ** 0.5))
        shape = (side * cell,) * 2
    else:  # a stack 4 cells deep
        side = int(np.ceil((n_cells / 4) ** 0.5))
        shape = (4 * cell, side * cell, side * cell)
    grid = np.stack(np.unravel_index(np.arange(int(np.prod(np.asarray(shape) // cell))),
                                     tuple(np.asarray(shape) // cell)), 1)
    grid = grid[rng.permutation(len(grid))[:n_cells]]
    centres = grid * cell + cell // 2 + rng.integers(-2, 3, grid.shape)
    shape = shape[:-1] + (shape[-1] + 16,)  # room for the touching macrophages of the last column
    msc = np.zeros(shape, np.int32)
    mac = np.zeros(shape, np.int32)
    b_msc, b_mac, b_small = _ball(7, ndim), _ball(4, ndim), _ball(2, ndim)
    for lab, ball, cs, start in ((msc, b_msc, centres[:n_msc], 1), (mac, b_mac, centres[n_msc:], 1)):
        pos = (cs[:, None, :] + ball[None]).reshape(-1, ndim)
        lab[tuple(pos.T)] = np.repeat(np.arange(start, start + len(cs)), len(ball))
    touch = centres[:n_touch].copy()
    touch[:, -1] += 7 + 2 + 1  # a small macrophage against the MSC's side
    pos = (touch[:, None, :] + b_small[None]).reshape(-1, ndim)
    mac[tuple(pos.T)] = np.repeat(np.arange(n_mac - n_touch + 1, n_mac + 1), len(b_small))
    return msc, mac


def baseline(msc, mac, sp, radii):
    """Plain approach: whole-image EDT + ndimage.minimum; all-pairs centroid distances in chunks."""
    ids = np.arange(1, msc.max() + 1)
    dist = ndi.distance_transform_edt(mac == 0, sampling=sp)
    gap = np.asarray(ndi.minimum(dist, msc, ids))
    _, a, _ = object_centroids_um(msc, sp)
    _, b, _ = object_centroids_um(mac, sp)
    nearest = np.empty(len(a))
    counts = np.zeros((len(a), len(radii)), np.int64)
    for s in range(0, len(a), 256):
        d = np.sqrt(((a[s:s + 256, None, :] - b[None]) ** 2).sum(-1))
        nearest[s:s + 256] = d.min(1)
        for k, r in enumerate(radii):
            counts[s:s + 256, k] = (d <= r).sum(1)
    return gap, nearest, counts


def timed(label, fn, *args, traced_run=True, **kw):
    """Wall time of one plain run, then peak traced memory of a second (tracing slows Python code);
    ``traced_run=False`` traces the timed run itself (fine for numpy-bound code such as the baseline)."""
    if not traced_run:
        tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    dt = time.perf_counter() - t0
    # CPU time of this process: close to the wall time of a quiet machine (the code is single-threaded),
    # so a run on a shared machine still says what a quiet one would.
    cpu = time.process_time() - c0
    if traced_run:
        tracemalloc.start()
        fn(*args, **kw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label:<46s} {dt:8.2f} s (cpu {cpu:6.2f} s)   peak {peak / 2 ** 20:8.0f} MiB", flush=True)
    return out, dt, cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-msc", type=int, default=10_000)
    ap.add_argument("--n-mac", type=int, default=50_000)
    ap.add_argument("--3d", dest="three_d", action="store_true")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args(argv)
    ndim = 3 if args.three_d else 2
    sp = (2.0, 1.0, 1.0) if ndim == 3 else (1.0, 1.0)
    radii = (25.0, 50.0)
    msc, mac = scene(args.n_msc, args.n_mac, ndim)
    n_mac = len(np.unique(mac)) - 1
    print(f"{ndim}D labels {msc.shape} ({msc.size / 1e6:.0f} Mvoxels), {msc.max()} MSCs x {n_mac} macrophages")
    t, dt_new, cpu_new = timed("lungtrack msc_macrophage_relations", msc_macrophage_relations, msc, mac,
                               (2.0, 1.0, 1.0), radii_um=radii)
    if not args.skip_baseline:
        (gap, nearest, counts), dt_base, cpu_base = timed("baseline: whole-image EDT + all pairs", baseline, msc,
                                                          mac, sp, radii, traced_run=False)
        print(f"speed-up vs baseline: {dt_base / dt_new:.1f}x wall, {cpu_base / cpu_new:.1f}x cpu")
        np.testing.assert_allclose(t.nearest_macrophage_um, nearest, rtol=1e-9)
        np.testing.assert_array_equal(t.n_macrophage_within_25um, counts[:, 0])
        # Baseline gaps are centre distances; lungtrack's are voxel-box gaps: at most one voxel smaller.
        d = gap - t.nearest_macrophage_surface_um.to_numpy()
        assert np.all((d >= -1e-9) & (d <= float(np.linalg.norm(sp)) + 1e-9)), "surface gaps disagree"
        print("same centroid distances and counts as the baseline; surface gaps within one voxel diagonal")
    print(f"contacts: {int(t.contact.sum())} MSCs, states: {t.state.value_counts().to_dict()}")
    timed("spatial_summary (near/far density, 50 um)", spatial_summary, t, msc, mac, (2.0, 1.0, 1.0),
          density_radius_um=50.0)
    _, a, _ = object_centroids_um(msc, sp)
    _, b, _ = object_centroids_um(mac, sp)
    tissue = np.ones(msc.shape, bool)
    timed("cross_k_envelope (20 r, 19 simulations)", cross_k_envelope, a, b, tissue, sp,
          np.linspace(5, 100, 20), n_simulations=19)
    timed("null_model_test points (19 simulations)", null_model_test, msc, mac, (2.0, 1.0, 1.0), tissue=tissue,
          n_simulations=19, placement="points", radii_um=radii)


if __name__ == "__main__":
    main()
