"""Benchmark: coverage of lungtrack's persistence intervals on simulated experiments (tables, not images).

    python bench/persistence_coverage.py [--reps N]

Tables come from the simulator's own design (`lungtrack.synthetic.experiment_counts`: density
n0 2^(-t / t1/2) times a log-normal animal factor), with Poisson counts in each animal's tissue
area. For each scenario it prints, over N seeded experiments, the share of 95 % intervals that
contain the truth for: the one-phase half-life (t interval, the default), the log-linear
half-life (t interval), the old percentile bootstrap of animals (the baseline it replaces, run
in this same script), the fraction remaining (Fieller) and the difference of half-lives
(`compare_half_lives`), plus median and RMS relative error of the half-life, the share of
p < 0.05, the time per experiment and the peak memory (max RSS).
"""
from __future__ import annotations

import argparse
import logging
import math
import resource
import time

import numpy as np

from lungtrack import persistence
from lungtrack.persistence import compare_half_lives, fit_decay, persistence_table
from lungtrack.synthetic import experiment_counts

SCENARIOS = [  # groups, times (h), animals per time point, animal CV, tissue area per animal (mm2)
    ({"A": 12.0, "B": 36.0}, (2.0, 6.0, 24.0, 48.0), 3, 0.25, 1.5),
    ({"A": 12.0, "B": 36.0}, (2.0, 6.0, 24.0, 48.0, 72.0), 3, 0.25, 1.5),
    ({"A": 8.0, "B": 8.0}, (2.0, 8.0, 24.0, 48.0), 3, 0.1, 1.5),
    ({"A": 8.0, "B": 16.0}, (2.0, 8.0, 24.0, 48.0), 3, 0.1, 0.04),  # the demo: 0.04 mm2 tiles, few cells
    ({"A": 12.0, "B": 36.0}, (2.0, 6.0, 24.0, 48.0), 6, 0.4, 1.5),
]


def table(seed, groups, times, n, cv, area):
    d = experiment_counts(groups=groups, time_h=times, n_animals=n, animal_cv=cv, seed=seed)
    rng = np.random.default_rng([seed, 1])
    d["tissue_area_mm2"] = area
    d["n_msc"] = rng.poisson(d["msc_per_mm2_target"] * area)
    d["msc_per_mm2"] = d["n_msc"] / area
    return d


def old_percentile_ci(t, y, bootstrap, rng):
    """The interval lungtrack used before: percentile bootstrap of animals, SEM-weighted fit of the means."""
    times = np.unique(t)
    vals = [y[t == x] for x in times]
    sems = np.array([persistence._sem(v) for v in vals])
    sigma = sems if np.all(np.isfinite(sems) & (sems > 0)) else None
    boot = persistence._boot_means(vals, bootstrap, rng)
    f = persistence._exp1(times[0])
    ks = []
    for b in range(bootstrap):
        p = persistence._curve_fit(f, times, boot[:, b], [max(boot[0, b], 1e-9), 0.05], sigma, [0.0, 0.0])
        if p is not None:
            ks.append(p[1])
    lo, hi = np.percentile(ks, [2.5, 97.5])
    return math.log(2) / hi, math.log(2) / lo


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--boot", type=int, default=200)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    for groups, times, n, cv, area in SCENARIOS:
        t0 = time.perf_counter()
        hit = {"exponential": 0, "log_linear": 0, "old percentile": 0}
        n_int = frac_hit = frac_n = diff_hit = sig = 0
        err = []
        for r in range(args.reps):
            d = table(r, groups, times, n, cv, area)
            fit = fit_decay(d)
            for _, row in fit[fit["model"] != "two_phase"].iterrows():
                hit[row["model"]] += row["ci_low_h"] <= groups[row["group"]] <= row["ci_high_h"]
                if row["model"] == "exponential":
                    err.append(row["half_life_h"] / groups[row["group"]] - 1)
            for g, hl in groups.items():
                a = persistence._pool(d[d["group"] == g], "msc_per_mm2", ("group",))
                lo, hi = old_percentile_ci(a["time_h"].to_numpy(float), a["msc_per_mm2"].to_numpy(float),
                                           args.boot, np.random.default_rng([r, 7]))
                hit["old percentile"] += lo <= hl <= hi
                n_int += 1
            p = persistence_table(d)
            for _, row in p[p["time_h"] > times[0]].iterrows():
                truth = 2 ** (-(row["time_h"] - times[0]) / groups[row["group"]])
                frac_hit += row["ci_low"] <= truth <= row["ci_high"]
                frac_n += 1
            c = compare_half_lives(d, bootstrap=args.boot, seed=r).iloc[0]
            diff_hit += c["ci_low_h"] <= groups["A"] - groups["B"] <= c["ci_high_h"]
            sig += c["p_value"] < 0.05
        err = np.array(err)
        secs = (time.perf_counter() - t0) / args.reps
        print(f"{groups} times {times} n={n} cv={cv} area={area} mm2, {args.reps} experiments:")
        print("  95% CI coverage of the half-life: " + ", ".join(f"{k} {v / n_int:.3f}" for k, v in hit.items()))
        print(f"  fraction remaining (Fieller) {frac_hit / frac_n:.3f}; difference of half-lives {diff_hit / args.reps:.3f};"
              f" p<0.05 in {sig / args.reps:.2f} ({'type I error' if len(set(groups.values())) == 1 else 'power'})")
        print(f"  one-phase half-life: median error {np.median(err):+.3f}, RMS {np.sqrt(np.mean(err ** 2)):.3f};"
              f" {secs:.2f} s per experiment")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
