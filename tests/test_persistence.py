"""Tests of lungtrack.persistence against time courses with known half-lives."""
from __future__ import annotations

import doctest
import logging
import math
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from lungtrack import persistence
from lungtrack.persistence import (
    FIT_COLUMNS,
    PERSISTENCE_COLUMNS,
    animal_table,
    fit_decay,
    persistence_table,
)

LN2 = math.log(2.0)
HALF_LIVES = {"BM": 8.0, "UC": 20.0}
TIMES = (2.0, 6.0, 24.0, 48.0)
FACTORS = (0.8, 1.0, 1.25)  # multiplicative animal effects, the same at every time point
AREAS = (1.5, 2.5)  # two sections per animal, different tissue areas
N0 = 1000.0


def make_samples(half_lives=HALF_LIVES, times=TIMES, factors=FACTORS, n0=N0, areas=AREAS):
    """Noise-free per-image table: density n0 * f_a * exp(-k t) in every section of animal a."""
    rows = []
    for group, hl in half_lives.items():
        k = LN2 / hl
        for t in times:
            for i, f in enumerate(factors):
                animal = f"{group}-{t:g}h-m{i}"
                density = n0 * f * math.exp(-k * t)
                for s, area in enumerate(areas):
                    n = density * area
                    rows.append({"sample_id": f"{animal}-s{s}", "animal": animal, "group": group, "time_h": t,
                                 "section": s, "tissue_area_mm2": area, "n_msc": n, "msc_per_mm2": n / area,
                                 "n_macrophage": 17, "pearson_r": 0.3 + 0.1 * s, "path": f"/x/{animal}_{s}.tif"})
    return pd.DataFrame(rows)


def noisy_samples(seed=7, n_animals=5, animal_sd=0.25, n0=300.0, areas=(2.0, 3.0)):
    """Poisson counts in sections of 2 and 3 mm2, lognormal animal effects (sd 0.25), 5 animals per time."""
    rng = np.random.default_rng(seed)
    rows = []
    for group, hl in HALF_LIVES.items():
        for t in TIMES:
            for i in range(n_animals):
                f = rng.lognormal(0.0, animal_sd)
                animal = f"{group}-{t:g}h-m{i}"
                for s, area in enumerate(areas):
                    n = int(rng.poisson(n0 * f * 2 ** (-t / hl) * area))
                    rows.append({"sample_id": f"{animal}-s{s}", "animal": animal, "group": group, "time_h": t,
                                 "section": s, "tissue_area_mm2": area, "n_msc": n, "msc_per_mm2": n / area})
    return pd.DataFrame(rows)


def row(table, **keys):
    sel = np.ones(len(table), bool)
    for k, v in keys.items():
        sel &= (table[k] == v).to_numpy()
    assert sel.sum() == 1, keys
    return table[sel].iloc[0]


def profile_ls_half_life(t, y, sigma=None):
    """Least-squares half-life of y = A exp(-k t) with weights 1/sigma^2, A eliminated in closed form.

    A one-dimensional search on the profile sum of squares: independent of curve_fit.
    """
    t, y = np.asarray(t, float), np.asarray(y, float)
    w = np.ones_like(y) if sigma is None else 1.0 / np.asarray(sigma, float) ** 2

    def ssr(log_k):
        e = np.exp(-math.exp(log_k) * t)
        a = np.sum(w * y * e) / np.sum(w * e * e)
        return float(np.sum(w * (y - a * e) ** 2))

    res = optimize.minimize_scalar(ssr, bounds=(math.log(1e-4), math.log(10.0)), method="bounded",
                                   options={"xatol": 1e-12})
    return LN2 / math.exp(res.x)


def plain_curve_fit_half_life(samples, group):
    """The one-phase fit written out with plain scipy: curve_fit on animal densities, reweighted to convergence.

    Variance of an animal density mu / area + alpha mu^2, alpha by moments (as documented in fit_decay).
    """
    animals = persistence._pool(samples[samples["group"] == group], "msc_per_mm2", ("group",))
    t, y, area = (animals[c].to_numpy(float) for c in ("time_h", "msc_per_mm2", "tissue_size"))
    t0 = t.min()

    def model(x, a, k):
        return a * np.exp(-k * (x - t0))

    p, alpha = np.array([y[t == t0].mean(), 0.05]), 0.0
    for _ in range(300):
        mu = model(t, *p)
        p, _ = optimize.curve_fit(model, t, y, p0=p, sigma=np.sqrt(mu / area + alpha * mu ** 2),
                                  bounds=([0, -np.inf], np.inf), method="trf", x_scale="jac", ftol=1e-14,
                                  xtol=1e-14, gtol=1e-14)
        mu = model(t, *p)
        alpha = max(0.0, np.sum(((y - mu) ** 2 - mu / area) / mu ** 2) / (len(y) - 2))
    return LN2 / p[1]


# --------------------------------------------------------------------------- animal table
def test_animal_density_is_total_count_over_total_area():
    samples = pd.DataFrame({
        "sample_id": ["a", "b", "c", "d"], "animal": ["m1", "m1", "m2", "m2"], "group": "BM",
        "time_h": 2.0, "section": [1, 2, 1, 2], "tissue_area_mm2": [0.5, 1.5, 2.0, np.nan],
        "n_msc": [10, 90, 30, 999], "msc_per_mm2": [20.0, 60.0, 15.0, np.nan], "other": "x",
    })
    out = animal_table(samples)
    assert list(out.columns) == ["group", "time_h", "animal", "msc_per_mm2", "n_sections"]
    m1, m2 = row(out, animal="m1"), row(out, animal="m2")
    assert m1["msc_per_mm2"] == pytest.approx(100 / 2.0)  # 50, not the mean of section densities (40)
    assert m1["n_sections"] == 2
    assert m2["msc_per_mm2"] == pytest.approx(30 / 2.0)  # the section without an area is left out
    assert m2["n_sections"] == 1


def test_animal_table_zero_area_gives_nan():
    samples = pd.DataFrame({"animal": ["m1"], "group": "BM", "time_h": 2.0, "tissue_area_mm2": [0.0],
                            "n_msc": [0], "msc_per_mm2": [np.nan]})
    assert np.isnan(animal_table(samples)["msc_per_mm2"].iloc[0])


def test_animal_table_other_value_is_mean_over_sections():
    samples = make_samples()
    out = animal_table(samples, value="pearson_r")
    assert list(out.columns) == ["group", "time_h", "animal", "pearson_r", "n_sections"]
    assert np.allclose(out["pearson_r"], 0.35)  # sections 0.3 and 0.4
    assert (out["n_sections"] == 2).all()
    assert len(out) == 2 * 4 * 3


def test_animal_table_density_without_count_columns_falls_back_to_mean():
    samples = make_samples().drop(columns=["n_msc"])
    out = animal_table(samples)
    expected = N0 * 1.25 * math.exp(-LN2 / 8.0 * 24.0)
    assert row(out, animal="BM-24h-m2")["msc_per_mm2"] == pytest.approx(expected, rel=1e-12)


def test_functions_do_not_mutate_input():
    samples = make_samples()
    before = samples.copy(deep=True)
    animal_table(samples)
    persistence_table(samples, bootstrap=20)
    fit_decay(samples, bootstrap=20)
    pd.testing.assert_frame_equal(samples, before)


# --------------------------------------------------------------------------- persistence table
def test_persistence_table_noise_free_matches_truth():
    samples = make_samples()
    out = persistence_table(samples, bootstrap=300, seed=1)
    assert list(out.columns) == list(PERSISTENCE_COLUMNS)
    assert list(zip(out["group"], out["time_h"])) == [(g, t) for g in ("BM", "UC") for t in TIMES]
    assert (out["n_animals"] == 3).all()
    sd_f = statistics.stdev(FACTORS)  # sample SD of the animal factors (ddof=1), by hand
    for group, hl in HALF_LIVES.items():
        k = LN2 / hl
        for t in TIMES:
            r = row(out, group=group, time_h=t)
            assert r["msc_per_mm2_mean"] == pytest.approx(N0 * statistics.mean(FACTORS) * math.exp(-k * t), rel=1e-12)
            assert r["msc_per_mm2_sem"] == pytest.approx(N0 * math.exp(-k * t) * sd_f / math.sqrt(3), rel=1e-12)
            truth = math.exp(-k * (t - TIMES[0]))
            assert r["fraction_remaining"] == pytest.approx(truth, rel=1e-12)
            assert r["ci_low"] <= truth <= r["ci_high"]
        first = row(out, group=group, time_h=TIMES[0])
        assert first["fraction_remaining"] == 1.0
        assert (first["ci_low"], first["ci_high"]) == (1.0, 1.0)


def test_persistence_sem_hand_computed():
    samples = pd.DataFrame({"animal": ["a", "b", "c", "d"], "group": "BM", "time_h": [1.0, 1.0, 1.0, 5.0],
                            "tissue_area_mm2": 2.0, "n_msc": [20, 40, 90, 10], "msc_per_mm2": [10.0, 20.0, 45.0, 5.0]})
    out = persistence_table(samples, bootstrap=0)
    # densities 10, 20, 45: mean 25, SD = sqrt(((-15)^2 + (-5)^2 + 20^2) / 2) = sqrt(325), SEM = sqrt(325 / 3)
    assert out["msc_per_mm2_mean"].tolist() == pytest.approx([25.0, 5.0])
    assert out["msc_per_mm2_sem"].iloc[0] == pytest.approx(math.sqrt(325.0 / 3.0))
    assert np.isnan(out["msc_per_mm2_sem"].iloc[1])
    assert out["fraction_remaining"].tolist() == pytest.approx([1.0, 0.2])


def test_bootstrap_is_seeded():
    samples = make_samples()
    a = persistence_table(samples, bootstrap=200, seed=3)
    b = persistence_table(samples, bootstrap=200, seed=3)
    c = persistence_table(samples, bootstrap=200, seed=4)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)  # the default Fieller interval uses no random numbers
    late = a["time_h"] > TIMES[0]
    ba = persistence_table(samples, bootstrap=200, seed=3, interval="bootstrap")
    bb = persistence_table(samples, bootstrap=200, seed=3, interval="bootstrap")
    bc = persistence_table(samples, bootstrap=200, seed=4, interval="bootstrap")
    pd.testing.assert_frame_equal(ba, bb)
    assert not np.allclose(ba.loc[late, "ci_low"], bc.loc[late, "ci_low"])
    noisy = noisy_samples()
    ca = persistence.compare_half_lives(noisy, bootstrap=100, seed=3)
    cb = persistence.compare_half_lives(noisy, bootstrap=100, seed=3)
    cc = persistence.compare_half_lives(noisy, bootstrap=100, seed=4)
    # the half-life comparison is analytic (MOVER from each group's t-interval): no random numbers
    pd.testing.assert_frame_equal(ca, cb)
    pd.testing.assert_frame_equal(ca, cc)
    assert np.isfinite(ca["ci_low_h"]).all() and (ca["ci_low_h"] < ca["difference_h"]).all()


def test_bootstrap_of_a_group_does_not_depend_on_other_groups():
    samples = make_samples()
    both = persistence_table(samples, bootstrap=100, seed=5)
    bm_only = persistence_table(samples[samples["group"] == "BM"], bootstrap=100, seed=5)
    pd.testing.assert_frame_equal(both[both["group"] == "BM"].reset_index(drop=True), bm_only)
    both = persistence_table(samples, bootstrap=100, seed=5, interval="bootstrap")
    bm_only = persistence_table(samples[samples["group"] == "BM"], bootstrap=100, seed=5, interval="bootstrap")
    pd.testing.assert_frame_equal(both[both["group"] == "BM"].reset_index(drop=True), bm_only)


def test_bootstrap_zero_gives_nan_ci():
    samples = make_samples()
    out = persistence_table(samples, bootstrap=0)
    assert out["ci_low"].isna().all() and out["ci_high"].isna().all()
    fit = fit_decay(samples, bootstrap=0)
    assert fit["ci_low_h"].isna().all() and fit["ci_high_h"].isna().all()
    one = fit[fit["model"] != "two_phase"]
    assert np.allclose(one["half_life_h"], one["group"].map(HALF_LIVES), rtol=1e-6)


# --------------------------------------------------------------------------- decay fits
def test_fit_noise_free_recovers_half_life_both_models():
    samples = make_samples()
    fit = fit_decay(samples, bootstrap=200, seed=0)
    assert list(fit.columns) == list(FIT_COLUMNS)
    models = ("exponential", "two_phase", "log_linear")
    assert list(zip(fit["group"], fit["model"])) == [(g, m) for g in ("BM", "UC") for m in models]
    assert fit.loc[fit["model"] == "two_phase", "half_life_h"].isna().all()  # 4 time points: not attempted
    assert fit.loc[fit["model"] == "two_phase", "note"].str.contains(">= 5 time points").all()
    log_f = [math.log(f) for f in FACTORS]
    for group, hl in HALF_LIVES.items():
        k = LN2 / hl
        exp_row, log_row = row(fit, group=group, model="exponential"), row(fit, group=group, model="log_linear")
        for r in (exp_row, log_row):
            assert r["half_life_h"] == pytest.approx(hl, rel=1e-6)
            assert r["ci_low_h"] <= hl <= r["ci_high_h"]
            assert r["ci_low_h"] < r["ci_high_h"]
            assert (r["n_animals"], r["n_timepoints"], r["n_zero_excluded"]) == (12, 4, 0)
        # exponential: weights equal within a time point -> fits the means, N0 = n0 * mean(f);
        # log-linear fits logs: n0 * geometric mean(f)
        assert exp_row["n0_per_mm2"] == pytest.approx(N0 * statistics.mean(FACTORS), rel=1e-6)
        assert log_row["n0_per_mm2"] == pytest.approx(N0 * math.exp(statistics.mean(log_f)), rel=1e-6)
        assert exp_row["selected"] and not log_row["selected"]
        # log-linear residuals are the centred log animal factors
        ss_res = len(TIMES) * sum((x - statistics.mean(log_f)) ** 2 for x in log_f)
        ss_tot = ss_res + len(FACTORS) * sum((k * (t - statistics.mean(TIMES))) ** 2 for t in TIMES)
        assert log_row["r2"] == pytest.approx(1 - ss_res / ss_tot, rel=1e-9)


def test_fit_with_poisson_noise_is_within_25_percent():
    fit = fit_decay(noisy_samples(), bootstrap=100, seed=0)
    for _, r in fit[fit["model"] != "two_phase"].iterrows():
        truth = HALF_LIVES[r["group"]]
        assert abs(r["half_life_h"] / truth - 1) < 0.25, (r["group"], r["model"], r["half_life_h"])
        assert (r["n_animals"], r["n_timepoints"]) == (20, 4)


def test_exponential_fit_equals_plain_curve_fit():
    samples = noisy_samples(seed=11)
    fit = fit_decay(samples, bootstrap=0)
    table = persistence_table(samples, bootstrap=0)
    for group in HALF_LIVES:
        ours = row(fit, group=group, model="exponential")["half_life_h"]
        assert ours == pytest.approx(plain_curve_fit_half_life(samples, group), rel=1e-6)
        g = table[table["group"] == group]
        sem_weighted = profile_ls_half_life(g["time_h"], g["msc_per_mm2_mean"], g["msc_per_mm2_sem"])
        assert abs(ours / sem_weighted - 1) > 1e-3  # the weighting matters for these data
        animals = animal_table(samples[samples["group"] == group])
        slope, _ = np.polyfit(animals["time_h"], np.log(animals["msc_per_mm2"]), 1)
        assert row(fit, group=group, model="log_linear")["half_life_h"] == pytest.approx(-LN2 / slope, rel=1e-9)


def test_without_counts_the_fit_is_relative_weighted_curve_fit():
    """Densities only (no counts/areas): weights 1 / fitted^2 (constant CV); a fixed point of curve_fit."""
    samples = noisy_samples(seed=3).drop(columns=["n_msc"])
    fit = fit_decay(samples, bootstrap=0)
    for group in HALF_LIVES:
        r = row(fit, group=group, model="exponential")
        a = animal_table(samples[samples["group"] == group])
        t, y = a["time_h"].to_numpy(float), a["msc_per_mm2"].to_numpy(float)
        k, n0 = LN2 / r["half_life_h"], r["n0_per_mm2"]
        (n0_cf, k_cf), _ = optimize.curve_fit(lambda x, n, kk: n * np.exp(-kk * x), t, y, p0=(n0, k),
                                              sigma=n0 * np.exp(-k * t), ftol=1e-14, xtol=1e-14, gtol=1e-14)
        assert (n0_cf, k_cf) == pytest.approx((n0, k), rel=1e-6)
        assert "constant CV" in r["ci_method"]


# --------------------------------------------------------------------------- edge cases
def test_missing_time_point_in_one_group():
    samples = make_samples()
    samples = samples[~((samples["group"] == "UC") & (samples["time_h"] == 24.0))]
    out = persistence_table(samples, bootstrap=50)
    assert out.loc[out["group"] == "UC", "time_h"].tolist() == [2.0, 6.0, 48.0]
    assert row(out, group="UC", time_h=48.0)["fraction_remaining"] == pytest.approx(2 ** (-46 / 20), rel=1e-12)
    fit = fit_decay(samples, bootstrap=50)
    for model in ("exponential", "log_linear"):
        r = row(fit, group="UC", model=model)
        assert r["half_life_h"] == pytest.approx(20.0, rel=1e-6)
        assert (r["n_timepoints"], r["n_animals"]) == (3, 9)
        assert row(fit, group="BM", model=model)["n_timepoints"] == 4


def test_group_with_one_animal(caplog):
    samples = make_samples()
    at = pd.DataFrame({"sample_id": ["at1", "at2"], "animal": "AT-m0", "group": "AT", "time_h": 2.0,
                       "section": [0, 1], "tissue_area_mm2": [1.0, 3.0], "n_msc": [100.0, 500.0],
                       "msc_per_mm2": [100.0, 500.0 / 3]})
    samples = pd.concat([samples, at], ignore_index=True)
    out = persistence_table(samples, bootstrap=50)
    r = row(out, group="AT")
    assert (r["n_animals"], r["msc_per_mm2_mean"], r["fraction_remaining"]) == (1, 150.0, 1.0)
    assert np.isnan(r["msc_per_mm2_sem"]) and np.isnan(r["ci_low"]) and np.isnan(r["ci_high"])
    with caplog.at_level(logging.WARNING, logger="lungtrack.persistence"):
        fit = fit_decay(samples, bootstrap=50)
    for model in ("exponential", "log_linear"):
        r = row(fit, group="AT", model=model)
        assert np.isnan(r["half_life_h"]) and np.isnan(r["ci_low_h"]) and np.isnan(r["n0_per_mm2"])
        assert (r["n_animals"], r["n_timepoints"]) == (1, 1)
        assert row(fit, group="BM", model=model)["half_life_h"] == pytest.approx(8.0, rel=1e-6)
    assert any("'AT'" in rec.getMessage() and rec.levelno == logging.WARNING for rec in caplog.records)


def test_one_animal_per_time_point_pools_the_variance_across_time_points():
    samples = make_samples(half_lives={"AT": 12.0}, factors=(1.0,))
    out = persistence_table(samples, bootstrap=50)
    assert out["msc_per_mm2_sem"].isna().all() and out["ci_low"].isna().all()
    assert out["fraction_remaining"].tolist() == pytest.approx([2 ** (-(t - 2) / 12) for t in TIMES], rel=1e-12)
    fit = fit_decay(samples, bootstrap=50).set_index("model")
    for model in ("exponential", "log_linear"):
        r = fit.loc[model]
        assert r["half_life_h"] == pytest.approx(12.0, rel=1e-6)
        assert r["n_animals"] == 4 and r["df"] == 2  # 4 animals - 2 parameters
        assert r["ci_low_h"] <= 12.0 <= r["ci_high_h"]
    # noise-free log densities: zero residual variance, a zero-width CI on the log scale
    assert fit.loc["log_linear", "ci_high_h"] == pytest.approx(12.0, rel=1e-6)
    # counts: at least Poisson noise (dispersion floored at 1), so the CI has a width
    assert fit.loc["exponential", "dispersion"] == 1.0
    assert fit.loc["exponential", "ci_high_h"] > 12.1


def _zero_out(samples, group, times):
    samples = samples.copy()
    sel = (samples["group"] == group) & samples["time_h"].isin(times)
    samples.loc[sel, "n_msc"] = 0.0
    samples.loc[sel, "msc_per_mm2"] = 0.0
    return samples


def test_time_point_with_zero_msc_everywhere():
    samples = _zero_out(make_samples(), "BM", [48.0])
    out = persistence_table(samples, bootstrap=100)
    r = row(out, group="BM", time_h=48.0)
    assert (r["n_animals"], r["msc_per_mm2_mean"], r["msc_per_mm2_sem"], r["fraction_remaining"]) == (3, 0.0, 0.0, 0.0)
    assert (r["ci_low"], r["ci_high"]) == (0.0, 0.0)
    fit = fit_decay(samples, bootstrap=100)
    lin = row(fit, group="BM", model="log_linear")
    assert lin["half_life_h"] == pytest.approx(8.0, rel=1e-6)  # the remaining points are exact
    assert (lin["n_zero_excluded"], lin["n_timepoints"], lin["n_animals"]) == (3, 3, 9)
    exp_row = row(fit, group="BM", model="exponential")
    # the zeros (62 cells expected) enter the exponential fit and pull it below the truth
    assert exp_row["half_life_h"] == pytest.approx(plain_curve_fit_half_life(samples, "BM"), rel=1e-6)
    assert exp_row["half_life_h"] < 8.0
    assert (exp_row["n_zero_excluded"], exp_row["n_timepoints"]) == (0, 4)
    assert row(fit, group="UC", model="exponential")["half_life_h"] == pytest.approx(20.0, rel=1e-6)


def test_all_zero_late_time_points():
    samples = _zero_out(make_samples(), "UC", [24.0, 48.0])
    fit = fit_decay(samples, bootstrap=100)
    lin = row(fit, group="UC", model="log_linear")
    assert lin["half_life_h"] == pytest.approx(20.0, rel=1e-6)  # from 2 h and 6 h only
    assert lin["ci_low_h"] <= 20.0 <= lin["ci_high_h"]
    assert (lin["n_zero_excluded"], lin["n_timepoints"], lin["n_animals"]) == (6, 2, 6)
    exp_row = row(fit, group="UC", model="exponential")
    assert exp_row["half_life_h"] == pytest.approx(plain_curve_fit_half_life(samples, "UC"), rel=1e-6)
    assert exp_row["ci_low_h"] <= exp_row["half_life_h"] <= exp_row["ci_high_h"]


def test_only_earliest_time_point_positive_gives_nan(caplog):
    samples = _zero_out(make_samples(), "UC", [6.0, 24.0, 48.0])
    out = persistence_table(samples, bootstrap=50)
    assert out.loc[out["group"] == "UC", "fraction_remaining"].tolist() == [1.0, 0.0, 0.0, 0.0]
    with caplog.at_level(logging.WARNING, logger="lungtrack.persistence"):
        fit = fit_decay(samples, bootstrap=50)
    uc = fit[fit["group"] == "UC"]
    assert uc["half_life_h"].isna().all() and uc["n0_per_mm2"].isna().all() and uc["r2"].isna().all()
    assert uc["n_zero_excluded"].tolist() == [0, 0, 9]
    assert uc["n_timepoints"].tolist() == [4, 4, 1]
    assert uc["note"].iloc[0].startswith("fewer than 2 time points with mean density > 0")
    assert len(caplog.records) >= 2
    assert row(fit, group="BM", model="exponential")["half_life_h"] == pytest.approx(8.0, rel=1e-6)


def test_zero_at_earliest_time_gives_nan_fraction(caplog):
    samples = _zero_out(make_samples(), "BM", [2.0])
    with caplog.at_level(logging.WARNING, logger="lungtrack.persistence"):
        out = persistence_table(samples, bootstrap=50)
    bm = out[out["group"] == "BM"]
    assert bm["fraction_remaining"].isna().all() and bm["ci_low"].isna().all()
    assert row(out, group="UC", time_h=48.0)["fraction_remaining"] == pytest.approx(2 ** (-46 / 20))
    assert any("earliest" in rec.getMessage() for rec in caplog.records)


def test_weights_that_do_not_settle_are_reported_in_the_note(caplog):
    """Zeros from 24 h on where the decay predicts ~100 per mm2: the moment estimate of alpha cycles."""
    dens = [707, 661, 703, 353, 459, 443, 0, 0, 0, 0, 0, 0]
    samples = pd.DataFrame({"animal": [f"m{i}" for i in range(12)], "group": "BM",
                            "time_h": np.repeat([2.0, 8.0, 24.0, 48.0], 3), "n_msc": dens, "tissue_area_mm2": 1.0,
                            "msc_per_mm2": np.asarray(dens, float)})
    with caplog.at_level(logging.WARNING, logger="lungtrack.persistence"):
        fit = fit_decay(samples)
    exp_row = row(fit, group="BM", model="exponential")
    assert "did not settle" in exp_row["note"] and np.isfinite(exp_row["half_life_h"])
    assert any("'BM'" in r.getMessage() and "did not settle" in r.getMessage() for r in caplog.records)
    # a data set whose weights settle has no such note
    assert not fit_decay(make_samples())["note"].str.contains("settle").any()


def test_empty_samples_give_empty_tables_with_columns():
    empty = make_samples().iloc[0:0]
    assert list(persistence_table(empty).columns) == list(PERSISTENCE_COLUMNS)
    assert len(persistence_table(empty)) == 0
    assert list(fit_decay(empty).columns) == list(FIT_COLUMNS)
    assert len(fit_decay(empty)) == 0


def test_bad_input_is_rejected_with_the_argument_named():
    samples = make_samples()
    with pytest.raises(ValueError, match="time_h"):
        persistence_table(samples.drop(columns=["time_h"]))
    with pytest.raises(ValueError, match="bootstrap"):
        fit_decay(samples, bootstrap=-1)
    with pytest.raises(ValueError, match="confidence"):
        persistence_table(samples, confidence=95)


def test_docstring_examples():
    result = doctest.testmod(persistence, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3
    assert result.failed == 0
