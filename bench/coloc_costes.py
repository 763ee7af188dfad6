"""Benchmark of lungtrack.coloc.costes_thresholds (exact Costes scan).

Times the scan on a correlated synthetic 2048 x 2048 uint16 pair (histogram path)
and on the same pair as float64 (sort path), with peak Python-allocated memory from
tracemalloc, then compares against a plain sequential reference (step the threshold
of channel a down one intensity at a time, t_b on the regression line, recompute
np.corrcoef of the pixels below either threshold) on a smaller crop, where it is
still feasible. Run: ``python bench/coloc_costes.py``. Prints what it measures.
"""
from __future__ import annotations

import logging
import os
import time
import tracemalloc

import numpy as np
from scipy import ndimage

from lungtrack import coloc

logging.getLogger("lungtrack.coloc").setLevel(logging.ERROR)  # quality warnings are not the point here


def synthetic_pair(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two uint16 channels sharing one smooth signal plus independent noise."""
    rng = np.random.default_rng(seed)
    sig = ndimage.gaussian_filter(rng.random((size, size)), 4)
    sig = (sig - sig.min()) / (sig.max() - sig.min())
    a = sig * 3000 + rng.normal(0, 100, sig.shape) + 500
    b = sig * 2000 + rng.normal(0, 100, sig.shape) + 300
    return (np.clip(a, 0, 65535).astype(np.uint16), np.clip(b, 0, 65535).astype(np.uint16))


def sequential_reference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """Costes by the plain loop: t_a from max(a) down in steps of one grey level."""
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    slope, intercept = coloc._deming(x, y)
    steps = 0
    for t in np.arange(x.max(), x.min() - 1, -1.0):
        steps += 1
        below = (x < t) | (y < slope * t + intercept)
        if below.sum() > 1 and np.corrcoef(x[below], y[below])[0, 1] <= 0:
            return float(t), float(slope * t + intercept), steps
    return float("nan"), float("nan"), steps


def best_time(func, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_mib(func) -> float:
    tracemalloc.start()
    func()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    print(f"CPUs: {os.cpu_count()}, numpy {np.__version__}")
    a, b = synthetic_pair(2048)
    t_int = best_time(lambda: coloc.costes_thresholds(a, b))
    af, bf = a.astype(np.float64), b.astype(np.float64)
    t_flt = best_time(lambda: coloc.costes_thresholds(af, bf))
    print(f"2048x2048 uint16: costes_thresholds {t_int:.3f} s (histogram path), "
          f"peak {peak_mib(lambda: coloc.costes_thresholds(a, b)):.0f} MiB (tracemalloc)")
    print(f"2048x2048 float64: costes_thresholds {t_flt:.3f} s (sort path), "
          f"peak {peak_mib(lambda: coloc.costes_thresholds(af, bf)):.0f} MiB")
    print(f"result {coloc.costes_thresholds(a, b)}; target < 0.2 s: {'met' if t_int < 0.2 else 'NOT met'}")

    crop = 256
    ac, bc = a[:crop, :crop], b[:crop, :crop]
    t0 = time.perf_counter()
    ref_a, ref_b, steps = sequential_reference(ac, bc)
    t_ref = time.perf_counter() - t0
    t_fast = best_time(lambda: coloc.costes_thresholds(ac, bc))
    fast = coloc.costes_thresholds(ac, bc)
    print(f"{crop}x{crop} uint16: sequential reference {t_ref:.3f} s ({steps} steps of 1 grey level) "
          f"-> ({ref_a:.2f}, {ref_b:.2f}); costes_thresholds {t_fast:.4f} s -> ({fast[0]:.2f}, {fast[1]:.2f}); "
          f"ratio {t_ref / t_fast:.0f}x")
    per_step = t_ref / steps
    est = per_step * (a.size / ac.size) * steps
    print(f"sequential reference extrapolated to 2048x2048 with the same number of steps: ~{est:.0f} s "
          f"(ratio ~{est / t_int:.0f}x)")


if __name__ == "__main__":
    main()
