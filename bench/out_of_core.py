"""Benchmark: an image several times larger than the memory budget, segmented with bounded memory.

    python bench/out_of_core.py [--memory-limit 0.5] [--factor 3]

Writes a single-channel uint16 image of ``factor x memory-limit`` GB as a chunked
zarr store (tiles of a simulated section, mirrored so that cells cross tile
edges), then, in a fresh subprocess, does what ``lungtrack analyze --memory-limit
GB`` does for one role of a large image: `segment.blockwise.chunk_plan` picks the
chunks for the budget (intermediates on disk), `blockwise.segment_cells` segments
the MSC channel, `blockwise.measure_objects` measures it from per-block sums and
`blockwise.write_labels` writes the labels to zarr chunk by chunk.
Prints the peak RSS of that process divided by the budget (target <= 1). That the
chunked labels equal whole-image segmentation is proven by tests/test_blockwise.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CACHE = Path(tempfile.gettempdir()) / "lungtrack-bench"

CHILD = r"""
import json, resource, sys, time
import dask, dask.array as da
from lungtrack.config import Config
from lungtrack.segment import blockwise as bw
src, work, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
bw.use_one_malloc_arena()  # as `lungtrack analyze --memory-limit` does, before any thread starts
cfg = Config()
cfg.run.memory_limit_gb = limit
img = da.from_zarr(src)
chunks, on_disk = bw.chunk_plan(img.shape, cfg.run, n_threads=2)
img = img.rechunk(chunks)
t0 = time.perf_counter()
with dask.config.set(num_workers=2):
    res = bw.segment_cells(img, (1.0, 1.0), cfg.segment.msc, tmpdir=work if on_disk else None, scheduler="threads")
    table = bw.measure_objects(res.labels, (1.0, 1.0, 1.0), intensities={"GFP": img}, role="msc", scheduler="threads",
                               read_per_block=on_disk)  # as blockwise.segment_roles does on disk
    bw.write_labels(work + "/labels.zarr", res.labels, (1.0, 1.0, 1.0), scheduler="threads")
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "chunks": list(chunks), "on_disk": on_disk, "n_objects": res.n_objects,
                  "rows": len(table), "threshold": res.threshold,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_image(nbytes: float) -> Path:
    import zarr

    from lungtrack.synthetic import simulate_section

    side = int(np.ceil(np.sqrt(nbytes / 2) / 1024)) * 1024
    path = CACHE / f"large_{side}.zarr"
    if (path / "done").exists():
        return path
    tiles = [simulate_section(shape=(1024, 1024), seed=700 + k).image[1] for k in range(4)]
    z = zarr.open_array(str(path), mode="w", shape=(side, side), chunks=(1024, 1024), dtype=np.uint16)
    n = side // 1024
    for i in range(n):
        for j in range(n):
            t = tiles[(i * 7 + j * 3) % 4]
            t = t[::-1] if i % 2 else t  # mirrored neighbours: continuous across tile edges
            z[i * 1024:(i + 1) * 1024, j * 1024:(j + 1) * 1024] = t[:, ::-1] if j % 2 else t
    (path / "done").write_text("ok")
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory-limit", type=float, default=0.5, help="budget in GB (run.memory_limit_gb)")
    ap.add_argument("--factor", type=float, default=3.0, help="image size / budget")
    args = ap.parse_args()
    CACHE.mkdir(exist_ok=True)
    src = make_image(args.factor * args.memory_limit * 1e9)
    import zarr

    z = zarr.open_array(str(src), mode="r")
    print(f"input {z.shape[0]} x {z.shape[1]} uint16 = {z.nbytes / 1e9:.2f} GB = "
          f"{z.nbytes / 1e9 / args.memory_limit:.1f} x the {args.memory_limit} GB budget")
    work = tempfile.mkdtemp(prefix="lt-ooc-", dir=CACHE)
    r = subprocess.run([sys.executable, "-c", CHILD, str(src), work, str(args.memory_limit)], capture_output=True,
                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode:
        sys.exit(r.stderr[-3000:])
    res = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"chunks {res['chunks']} (intermediates on disk: {res['on_disk']}), {res['seconds']:.1f} s on 2 threads, "
          f"{res['n_objects']} MSCs ({res['rows']} table rows), "
          f"{z.nbytes / 1e6 / res['seconds']:.1f} MB/s")
    print(f"peak RSS {res['maxrss_mb']:.0f} MB / budget {args.memory_limit * 1000:.0f} MB = "
          f"{res['maxrss_mb'] / (args.memory_limit * 1000):.2f} (target <= 1)")

    import dask.array as da

    top = int(da.from_zarr(work + "/labels.zarr").max().compute())
    print(f"labels.zarr written chunk by chunk: max label {top} == objects {res['n_objects']} == table rows "
          f"{res['rows']}: {top == res['n_objects'] == res['rows']}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
