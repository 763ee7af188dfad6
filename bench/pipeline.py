"""Benchmark: the whole pipeline on the sample experiment, Dask vs a plain loop.

Each mode runs in a fresh subprocess on the same input, so wall time and peak
memory (max RSS) are per mode. Prints ratios measured in this one run:

    python bench/pipeline.py [EXPERIMENT] [--repeat N]

Modes: ``loop`` (plain Python loop over images, no Dask: the baseline),
``threads`` (Dask threaded scheduler, the default), ``distributed`` (a
LocalCluster with 2 single-threaded worker processes).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from lungtrack.pipeline import analyze
exp, mode = sys.argv[1], sys.argv[2]
cfg = exp + "/config.yaml"
t0 = time.perf_counter()
if mode == "distributed":
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as c, Client(c) as cl:
        t0 = time.perf_counter()  # cluster start-up is not the pipeline's time
        r = analyze(exp, config=cfg, client=cl)
else:
    r = analyze(exp, config=cfg, use_dask=(mode != "loop"), scheduler="threads")
dt = time.perf_counter() - t0
print(json.dumps({"mode": mode, "seconds": dt, "n_msc": int(r.samples.n_msc.sum()),
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(exp: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, exp, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    res = json.loads(out.stdout.strip().splitlines()[-1])
    # Worker processes' memory is in RUSAGE_CHILDREN of the child, not reported here: say so.
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", nargs="?", default=str(ROOT / "sample_data" / "experiment"))
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    print(f"lungtrack pipeline benchmark on {args.experiment} ({os.cpu_count()} CPU cores)")
    best = {}
    for mode in ("loop", "threads", "distributed"):
        runs = [run(args.experiment, mode) for _ in range(args.repeat)]
        best[mode] = min(runs, key=lambda r: r["seconds"])
        r = best[mode]
        print(f"  {mode:12s} {r['seconds']:7.2f} s   peak RSS (main process) {r['maxrss_mb']:7.0f} MB   "
              f"MSCs {r['n_msc']}")
    base = best["loop"]["seconds"]
    print(f"speed-up vs plain loop: threads {base / best['threads']['seconds']:.2f}x, "
          f"distributed {base / best['distributed']['seconds']:.2f}x")
    same = len({r["n_msc"] for r in best.values()}) == 1
    print(f"same MSC count in every mode: {same}")


if __name__ == "__main__":
    main()
