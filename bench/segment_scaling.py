"""Benchmark: chunked segmentation (1 and 2 threads) vs whole-image segmentation, same output.

    python bench/segment_scaling.py [--size 4096] [--chunk 2048] [--repeat 3] [--stack] [--no-split] [--no-label-bench]
                                    [--modes plain,whole,chunked-1,chunked-2] [--stages] [--prefault GB]

Input: a synthetic 3 x SIZE x SIZE uint16 lung section (tiles of
`lungtrack.synthetic.simulate_section`, cached as zarr in $TMPDIR/lungtrack-bench);
with ``--stack`` a 32 x 2048 x 2048 z-stack (single channel, anisotropic).
Every mode runs in its own subprocess (own peak RSS) and does the same work for the
MSC, macrophage and nuclei channels: segment -> measure objects -> write label TIFFs.

- ``plain``: the same segmentation written with scipy / scikit-image calls on the whole
  array, component by component (`peak_local_max`, `watershed`), `regionprops_table`,
  `tifffile.imwrite` (the issue's baseline; same labels);
- ``whole``: `classic.segment_cells` (lungtrack's whole-image path, one process),
  `measure.measure_objects`, `io.write_labels`;
- ``chunked-1`` / ``chunked-2``: `segment.blockwise.segment_roles` on 1 / 2 threads
  (`segment_cells`, `measure_objects` from per-chunk sums, tiled OME-TIFF).

Prints times (with the system time: page faults), ratios to both baselines, peak RSS,
input MB/s per core, and whether the label images are identical; ``--stages`` adds the
CPU time of each step of the chunked path on 1 thread. Then compares the labelling stage alone:
`blockwise.label` vs `scipy.ndimage.label` vs `dask_image.ndmeasure.label` (skipped if
dask-image is not installed; it is not a lungtrack dependency).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CACHE = Path(tempfile.gettempdir()) / "lungtrack-bench"

CHILD = r"""
import json, resource, sys, time
import numpy as np, zarr, dask, dask.array as da
from lungtrack.config import Config
from lungtrack.segment import classic, blockwise as bw
from lungtrack.measure import measure_objects
from lungtrack.io import write_labels
import distributed  # noqa: F401  dask's first rechunk imports it (0.13 s): with the other imports, before the clock
src, out, mode, chunk, spacing, channels = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5]), json.loads(sys.argv[6])
cfg = Config()
sp = tuple(spacing)
z = zarr.open_array(src, mode="r")
tissue_path = src.rstrip("/") + ".tissue.zarr"  # the pipeline's tissue mask (thresholds within tissue)
import os
has_tissue = os.path.exists(tissue_path)
if len(sys.argv) > 7 and sys.argv[7] == "nosplit":
    for r in channels:
        getattr(cfg.segment, r).split_touching = False
prefault = float(sys.argv[8]) if len(sys.argv) > 8 else 0.0
if prefault:  # touch (and free) this much memory first: see --prefault
    _x = np.ones(int(prefault * 1e9) // 8)
    del _x
STAGES = {}
if mode == "stages":  # chunked-1 with a CPU timer around each step of segment_cells (synchronous: no overlap)
    import functools, collections
    STAGES = collections.defaultdict(float)
    names = {"smoothed": "filter (background, Gaussian)", "filled": "fill holes", "components": "label",
             "seeds": "watershed split", "labels": "number, size filter"}

    def timed(mod, fname, stage=None):
        f = getattr(mod, fname)

        @functools.wraps(f)
        def g(*a, **k):
            key = names.get(k.get("name"), "other") if fname == "_materialize" else stage
            if fname == "_plan_labels" and k.get("order") is False:
                key = "fill holes"  # the hole filling's labelling of the background
            t = time.process_time()
            try:
                return f(*a, **k)
            finally:
                if not (fname == "_materialize" and key == "watershed split"):  # inside _split_all, timed there
                    STAGES[key] += time.process_time() - t
        setattr(mod, fname, g)
    for fn, st in (("threshold_value", "threshold"), ("_plan_labels", "label"), ("_split_all", "watershed split"),
                   ("measure_objects", "measure"), ("write_labels", "write TIFF"), ("_read_once", "read input")):
        timed(bw, fn, st)
    timed(bw, "_materialize")
    mode = "chunked-1"
from lungtrack.segment import _kernels
# numba's start and the kernels' load from their disk cache: once per process, like the imports (printed apart)
jit_s = _kernels.warm_up(len(sp), z.dtype)
_ru = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = _ru.ru_utime + _ru.ru_stime
t0 = time.perf_counter()
counts = {}
sp3 = (1.0,) * (3 - len(sp)) + sp
if mode.startswith("chunked"):  # every role at once: bw.segment_roles, as the pipeline's chunked path
    sched = "synchronous" if mode == "chunked-1" else "threads"
    with dask.config.set(num_workers=2):
        chans = {}
        for role, ci in channels.items():
            ch = da.from_zarr(src)[ci]
            chans[role] = ch.rechunk((ch.shape[0],) + (chunk, chunk) if ch.ndim == 3 else (chunk, chunk))
        within = da.from_zarr(tissue_path).rechunk(chans["msc"].chunks) if has_tissue else None
        res = bw.segment_roles(chans, sp3, {r: getattr(cfg.segment, r) for r in channels}, within=within,
                               label_paths={r: f"{out}/{r}.tif" for r in channels}, scheduler=sched)
    counts = {r: v.segmentation.n_objects for r, v in res.items()}
    assert all(len(v.objects) == counts[r] for r, v in res.items())
def plain_segment(ch, sp, p, within):
    # the same segmentation written with scipy / scikit-image calls on the whole array, component by component
    from scipy import ndimage as ndi
    from skimage import feature, segmentation
    corrected = classic.subtract_background(ch, sp, p.background_radius_um)  # lungtrack's (no skimage equivalent)
    img = ndi.gaussian_filter(corrected, [p.smoothing_sigma_um / s for s in sp])
    t = classic.threshold_value(img, p.threshold, within=within, min_signal_ratio=p.min_signal_ratio)
    mask = ndi.binary_fill_holes(img > t) if img.ndim == 2 else np.array([ndi.binary_fill_holes(m) for m in img > t])
    cc, n = ndi.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    out = np.zeros(mask.shape, np.int32)
    fp = classic._seed_window_px(p.split_min_distance_um, sp)
    nxt = 0
    for gid, box in enumerate(ndi.find_objects(cc), start=1):
        box = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n_)) for b, n_ in zip(box, cc.shape))
        comp = cc[box] == gid
        dist = ndi.distance_transform_edt(comp, sampling=sp)
        peaks = feature.peak_local_max(dist, min_distance=fp, labels=comp.astype(np.int32), exclude_border=False,
                                       threshold_abs=p.split_min_distance_um / 2)
        if len(peaks) == 0:
            lab, k = comp.astype(np.int32), 1
        else:
            markers = np.zeros(comp.shape, np.int32)
            markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
            lab, k = segmentation.watershed(-dist, markers, mask=comp), len(peaks)
        o = out[box]
        o[lab > 0] = lab[lab > 0] + nxt
        nxt += k
    return classic.size_filter(out, sp, p.min_diameter_um, p.max_diameter_um)


def plain_measure(lab, sp, ch):
    from skimage.measure import regionprops_table
    import pandas as pd
    t = pd.DataFrame(regionprops_table(lab, intensity_image=ch, properties=("label", "area", "centroid", "bbox",
                                                                             "intensity_mean")))
    t["area_um"] = t["area"] * float(np.prod(sp))
    nd = lab.ndim
    t["touches_border"] = np.any([(t[f"bbox-{a}"] == 0) | (t[f"bbox-{a + nd}"] == lab.shape[a]) for a in range(nd)],
                                 axis=0)
    return t


for role, ci in (channels.items() if mode == "plain" else ()):  # scipy / scikit-image, whole arrays
    import tifffile
    ch = z[ci]
    within = zarr.open_array(tissue_path, mode="r")[:] if has_tissue else None
    lab = plain_segment(ch, sp, getattr(cfg.segment, role), within)
    t = plain_measure(lab, sp, ch)
    tifffile.imwrite(f"{out}/{role}.tif", lab.astype(np.uint32), compression="zlib")
    counts[role] = int(lab.max())
    assert len(t) == counts[role]
for role, ci in (channels.items() if mode == "whole" else ()):  # one role after the other, whole arrays
    ch = z[ci]
    within = zarr.open_array(tissue_path, mode="r")[:] if has_tissue else None
    lab = classic.segment_cells(ch, sp, getattr(cfg.segment, role), within=within)
    t = measure_objects(lab, sp3, intensities={role: ch}, role=role)
    write_labels(f"{out}/{role}.tif", lab, sp3)
    counts[role] = int(lab.max())
    assert len(t) == counts[role]
dt = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"stages": STAGES, "mode": mode, "seconds": dt, "cpu_s": ru.ru_utime + ru.ru_stime - cpu0, "counts": counts,
                  "sys_s": ru.ru_stime - _ru.ru_stime, "jit_s": jit_s,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_section(size: int) -> Path:
    """3 x size x size uint16 section from 1024 px simulated tiles (cached)."""
    import zarr

    from lungtrack.synthetic import simulate_section

    path = CACHE / f"section_{size}.zarr"
    if (path / "done").exists() and Path(str(path) + ".tissue.zarr").exists():
        return path
    tile = min(1024, size)
    n = size // tile
    z = zarr.open_array(str(path), mode="w", shape=(3, n * tile, n * tile), chunks=(1, tile, tile), dtype=np.uint16)
    for i in range(n):
        for j in range(n):
            s = simulate_section(shape=(tile, tile), seed=100 + i * n + j)
            z[:, i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] = s.image
    # The pipeline thresholds every cell role within the tissue mask (air excluded); without it the
    # macrophage channel's threshold falls between air and autofluorescent tissue and the "mask" is
    # all tissue. Computed once here, read by every mode (not timed).
    from lungtrack.config import Config
    from lungtrack.segment.classic import tissue_mask

    tissue = tissue_mask(z[:], (1.0, 1.0), Config().segment.tissue)
    t = zarr.open_array(str(path) + ".tissue.zarr", mode="w", shape=tissue.shape, chunks=(tile, tile), dtype=bool)
    t[:] = tissue
    (path / "done").write_text("ok")
    return path


def make_stack(shape=(32, 2048, 2048)) -> Path:
    import zarr

    from lungtrack.synthetic import simulate_section

    from lungtrack.config import Config
    from lungtrack.segment.classic import tissue_mask

    path = CACHE / f"stack_{'x'.join(map(str, shape))}.zarr"
    tissue_path = Path(str(path) + ".tissue.zarr")
    if (path / "done").exists() and tissue_path.exists():
        return path
    z = zarr.open_array(str(path), mode="w", shape=(1,) + shape, chunks=(1, shape[0], 512, 512), dtype=np.uint16)
    t = zarr.open_array(str(tissue_path), mode="w", shape=shape, chunks=(shape[0], 512, 512), dtype=bool)
    tile = 512
    for i in range(shape[1] // tile):
        for j in range(shape[2] // tile):
            s = simulate_section(shape=(shape[0], tile, tile), z_step_um=2.0, n_msc=4, n_macrophage=4,
                                 seed=500 + i * 8 + j)
            z[0, :, i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] = s.image[1]
            # the pipeline's tissue mask (from all channels) of each tile: MSC thresholds within tissue
            t[:, i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] = tissue_mask(s.image, s.spacing_um,
                                                                                   Config().segment.tissue)
    (path / "done").write_text("ok")
    return path


def run_mode(src, out, mode, chunk, spacing, channels, split=True, prefault=0.0):
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-c", CHILD, str(src), str(out), mode, str(chunk), json.dumps(spacing),
                        json.dumps(channels), "split" if split else "nosplit", str(prefault)], capture_output=True,
                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode:
        sys.exit(f"{mode} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def compare_labels(a: Path, b: Path, roles) -> bool:
    import tifffile

    return all(np.array_equal(tifffile.imread(a / f"{r}.tif"), tifffile.imread(b / f"{r}.tif")) for r in roles)


def label_bench(src, size):
    import dask.array as da
    import zarr
    from scipy import ndimage as ndi

    from lungtrack.segment import blockwise as bw

    img = zarr.open_array(str(src), mode="r")[2]  # macrophage channel: many objects
    img = img if img.ndim == 2 else img[img.shape[0] // 2]
    mask = ndi.gaussian_filter(img.astype(np.float32), 2) > np.percentile(img, 90)
    from lungtrack.segment import _kernels

    _kernels.warm_up()  # numba's start, once per process (as in the modes above: before the clock)
    t0 = time.perf_counter()
    ref, n = ndi.label(mask)
    t_scipy = time.perf_counter() - t0
    print(f"\nLabelling stage on the same thresholded {mask.shape[0]}x{mask.shape[1]} array ({n} components):")
    print(f"  scipy.ndimage.label (whole array): {t_scipy:.3f} s")
    try:
        from dask_image.ndmeasure import label as di_label
    except ImportError:
        di_label = None
        print("  dask_image not installed: its comparison is skipped (pip install dask-image)")
    for chunk in (1024, 512):
        blocks = (mask.shape[0] // chunk) * (mask.shape[1] // chunk)
        d = da.from_array(mask, chunks=chunk)
        t0 = time.perf_counter()
        lab, n2 = bw.label(d, scheduler="threads")
        out = lab.compute(scheduler="threads")
        t_bw = time.perf_counter() - t0
        line = (f"  {blocks:3d} blocks: lungtrack blockwise.label {t_bw:.3f} s ({t_bw / t_scipy:.1f}x scipy), "
                f"identical to scipy: {np.array_equal(out, ref)}")
        if di_label is not None:
            t0 = time.perf_counter()
            lab2, n3 = di_label(d)
            out2 = lab2.compute(scheduler="threads")
            t_di = time.perf_counter() - t0
            same = n3.compute() == n and len(np.unique(out2)) == n + 1
            line += f"; dask_image {t_di:.3f} s ({t_di / t_scipy:.1f}x scipy, {t_di / t_bw:.1f}x lungtrack, n ok: {same})"
        print(line)


def stage_report(src, work, args, spacing, channels, nbytes):
    """CPU seconds per step of the chunked path on 1 thread, and the throughput of filter + threshold + label + measure."""
    runs = [run_mode(src, work / "stages", "stages", args.chunk, spacing, channels, split=not args.no_split,
                     prefault=args.prefault)["stages"] for _ in range(args.repeat)]
    keys = sorted(set().union(*runs), key=lambda k: -np.median([r.get(k, 0.0) for r in runs]))
    med = {k: float(np.median([r.get(k, 0.0) for r in runs])) for k in keys}
    print(f"\nCPU seconds per step, chunked on 1 thread (median of {len(runs)}; all roles together):")
    for k in keys:
        print(f"  {med[k]:6.2f} s  {k}")
    core = ("filter (background, Gaussian)", "threshold", "fill holes", "label", "number, size filter", "measure")
    t = sum(med.get(k, 0.0) for k in core)
    print(f"filter + threshold + label + measure ({', '.join(core)}): {t:.2f} CPU-s, "
          f"{nbytes / 1e6 / t:.1f} MB/s of uint16 input per core (target >= 40)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=2048, help="chunk size in px (the default of run.chunk_size_px)")
    ap.add_argument("--stack", action="store_true", help="the 32 x 2048 x 2048 z-stack instead of the 2D section")
    ap.add_argument("--no-label-bench", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs per mode (the medians are compared)")
    ap.add_argument("--no-split", action="store_true",
                    help="without the watershed split: filter + threshold + fill + label + size filter + measure")
    ap.add_argument("--stages", action="store_true",
                    help="also time each step of the chunked path on 1 thread (throughput of filter + threshold + "
                         "label + measure)")
    ap.add_argument("--modes", default="plain,whole,chunked-1,chunked-2",
                    help="comma-separated subset of plain, whole, chunked-1, chunked-2")
    ap.add_argument("--prefault", type=float, default=0.0, metavar="GB",
                    help="each run first touches and frees this much memory (on VMs that hand freed memory back "
                         "to the host, first touches cost ~3 s/GB and are otherwise charged to the run)")
    args = ap.parse_args()
    CACHE.mkdir(exist_ok=True)
    if args.stack:
        src, spacing, channels = make_stack(), [2.0, 1.0, 1.0], {"msc": 0}
        shape = "1 x 32 x 2048 x 2048"
    else:
        src, spacing, channels = make_section(args.size), [1.0, 1.0], {"nuclei": 0, "msc": 1, "macrophage": 2}  # the pipeline's order
        shape = f"3 x {args.size} x {args.size}"
    import zarr

    nbytes = zarr.open_array(str(src), mode="r").nbytes * len(channels) / 3 if not args.stack else \
        zarr.open_array(str(src), mode="r").nbytes
    print(f"input {shape} uint16 ({nbytes / 1e6:.0f} MB segmented), chunks {args.chunk} px, "
          f"roles {list(channels)}")
    work = Path(tempfile.mkdtemp(prefix="lt-scaling-"))
    modes = [m for m in ("plain", "whole", "chunked-1", "chunked-2") if m in args.modes.split(",")]
    runs = {m: [] for m in modes}
    for rep in range(args.repeat):  # interleaved, so that a slow spell of the machine hits every mode
        for mode in modes:
            r = run_mode(src, work / mode, mode, args.chunk, spacing, channels, split=not args.no_split,
                         prefault=args.prefault)
            runs[mode].append(r)
            print(f"  run {rep + 1}: {mode:10s} wall {r['seconds']:6.2f} s  CPU {r['cpu_s']:6.2f} s "
                  f"(system {r['sys_s']:5.2f} s)", flush=True)
    res = {}
    print(f"median of {args.repeat} run(s) per mode:")
    for mode in modes:
        r = dict(runs[mode][0])
        for k in ("seconds", "cpu_s", "sys_s"):
            r[k] = float(np.median([x[k] for x in runs[mode]]))
        r["maxrss_mb"] = max(x["maxrss_mb"] for x in runs[mode])
        res[mode] = r
        cores = 2 if mode == "chunked-2" else 1
        print(f"  {mode:10s} wall {r['seconds']:7.2f} s  CPU {r['cpu_s']:7.2f} s (system {r['sys_s']:5.2f} s)  "
              f"peak RSS {r['maxrss_mb']:6.0f} MB  {nbytes / 1e6 / r['seconds'] / cores:6.1f} MB/s per core (wall), "
              f"{nbytes / 1e6 / r['cpu_s']:6.1f} MB/s per CPU-second  objects {r['counts']}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work inflates wall times)")
    jit = [x["jit_s"] for m in modes for x in runs[m]]
    print(f"before the clock, in every mode: numba's start and loading the compiled kernels "
          f"{min(jit):.2f}-{max(jit):.2f} s per process (a compile, the first time after installing, is slower)")
    for base_mode, what in (("plain", "plain scipy/scikit-image"), ("whole", "lungtrack's whole-image path")):
        if base_mode not in res:
            continue
        base = res[base_mode]["seconds"]
        if "chunked-1" in res:
            print(f"chunked on 1 thread / {what}: {res['chunked-1']['seconds'] / base:.2f}x wall time, "
                  f"{res['chunked-1']['cpu_s'] / res[base_mode]['cpu_s']:.2f}x CPU time (target <= 1.2)")
        if "chunked-2" in res:
            print(f"{what} / chunked on 2 threads: {base / res['chunked-2']['seconds']:.2f}x faster (target >= 1.7)")
    ref = modes[0]
    same = {m: compare_labels(work / ref, work / m, channels) for m in modes[1:]}
    print(f"labels identical to {ref} (np.array_equal): " + ", ".join(f"{m} {v}" for m, v in same.items()))
    if args.stages:
        stage_report(src, work, args, spacing, channels, nbytes)
    if not args.no_label_bench and not args.stack:
        label_bench(src, args.size)


if __name__ == "__main__":
    main()
