"""Null models and cross-type K/L/g inside a tissue mask, checked on scenes with known answers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lungtrack.spatial_stats import (
    cross_k,
    cross_k_envelope,
    empirical_p,
    null_model_test,
    place_at_random,
    random_points_in_mask,
    set_covariance,
)


def _tissue(shape=(200, 200), seed=0):
    """Tissue with round air spaces (alveoli) punched out."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    t = np.ones(shape, bool)
    for cy, cx in rng.uniform(0, shape, (8, 2)):
        t &= (yy - cy) ** 2 + (xx - cx) ** 2 > 18 ** 2
    return t


def _stamp(lab, centre, r, value):
    yy, xx = np.indices(lab.shape)
    lab[((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r ** 2) & (lab == 0)] = value


def _msc_scene(tissue, rng, n=6):
    msc = np.zeros(tissue.shape, np.int32)
    cand = np.argwhere(tissue[15:-15, 15:-15]) + 15
    for k in range(1, n + 1):
        _stamp(msc, cand[rng.integers(len(cand))], 6, k)
    return msc


def test_macrophages_gathered_around_mscs_are_significant():
    rng = np.random.default_rng(1)
    tissue = _tissue()
    msc = _msc_scene(tissue, rng)
    mac = np.zeros_like(msc)
    k = 0
    ids = np.unique(msc)[1:]
    for i in ids:  # 3 macrophages touching each MSC
        c = np.argwhere(msc == i).mean(0)
        for ang in rng.uniform(0, 2 * np.pi, 3):
            k += 1
            _stamp(mac, c + 10 * np.array([np.sin(ang), np.cos(ang)]), 3, k)
    res = null_model_test(msc, mac, (1, 1, 1), tissue=tissue, n_simulations=199, seed=0, radii_um=(15, 40))
    p = res.set_index("statistic").p_value
    assert p["mean_nearest_macrophage_um"] < 0.01
    assert p["mean_nearest_macrophage_surface_um"] < 0.01
    assert p["mean_n_macrophage_within_15um"] < 0.01
    assert p["frac_msc_contacting_macrophage"] < 0.01
    row = res.set_index("statistic").loc["mean_nearest_macrophage_um"]
    assert row.observed < row.null_low <= row.null_mean <= row.null_high
    # Moving the MSCs instead, and the centroid-only null, say the same.
    p_msc = null_model_test(msc, mac, (1, 1, 1), tissue=tissue, n_simulations=199, seed=1, move="msc",
                            radii_um=(15,)).set_index("statistic").p_value
    assert p_msc["mean_nearest_macrophage_um"] < 0.01
    p_pts = null_model_test(msc, mac, (1, 1, 1), tissue=tissue, n_simulations=199, seed=2, placement="points",
                            radii_um=(15,)).set_index("statistic").p_value
    assert p_pts["mean_n_macrophage_within_15um"] < 0.01


def test_null_model_in_3d_anisotropic():
    """3D z-stack at (2, 1, 1) um voxels: macrophage cubes against MSC cubes are significant, shapes kept."""
    rng = np.random.default_rng(4)
    tissue = np.ones((12, 60, 60), bool)
    tissue[:, 25:35, :] = False  # an air band
    msc = np.zeros(tissue.shape, np.int32)
    mac = np.zeros_like(msc)
    for k, (y, x) in enumerate([(8, 8), (8, 45), (45, 10), (48, 45)], 1):
        msc[4:8, y:y + 6, x:x + 6] = k
        mac[4:7, y:y + 3, x + 6:x + 9] = k  # touching on the x side
    res = null_model_test(msc, mac, (2.0, 1.0, 1.0), tissue=tissue, n_simulations=99, seed=3, radii_um=(10,))
    p = res.set_index("statistic").p_value
    assert p["frac_msc_contacting_macrophage"] <= 0.02 and p["mean_nearest_macrophage_surface_um"] <= 0.02
    assert res.set_index("statistic").loc["frac_msc_contacting_macrophage", "observed"] == 1.0
    moved = place_at_random(mac, tissue, rng, avoid=msc > 0)
    assert sorted(np.unique(moved)[1:].tolist()) == [1, 2, 3, 4]


def test_random_placement_is_rejected_at_the_nominal_rate():
    """Macrophages dropped uniformly in the tissue (by other code than the null's, free to overlap MSCs as
    separate label images do): p roughly uniform. 120 scenes x 19 simulations; a null that kept macrophages
    off the MSCs (``avoid_other=True``) rejected 17 of these 120 at alpha 0.05, the default 9 (6 expected)."""
    tissue = _tissue((150, 150), seed=4)
    cand = np.argwhere(tissue)
    ps = {"mean_nearest_macrophage_um": [], "mean_nearest_macrophage_surface_um": []}
    for seed in range(120):
        rng = np.random.default_rng(100 + seed)
        msc = _msc_scene(tissue, rng, n=5)
        mac = np.zeros_like(msc)
        for k in range(1, 16):
            _stamp(mac, cand[rng.integers(len(cand))], 3, k)
        res = null_model_test(msc, mac, (1, 1, 1), tissue=tissue, n_simulations=19, seed=seed, radii_um=(20,))
        for name in ps:
            ps[name].append(res.set_index("statistic").p_value[name])
    for name, p in ps.items():
        p = np.array(p)
        print(name, "rejections at 0.05:", int((p <= 0.05).sum()), "of", p.size, "mean p:", round(p.mean(), 3))
        # Binomial(120, 0.05): 6 expected; P(>= 12 rejections) < 0.02.
        assert (p <= 0.05).sum() <= 11, name
        assert 0.42 <= p.mean() <= 0.6, name  # uniform on {1/20, ..., 1}: mean 0.525 (sd of the mean ~0.026)


def test_empirical_p_directions():
    null = np.arange(1.0, 20.0)  # 19 simulations
    assert empirical_p(0.5, null, smaller=True) == pytest.approx(1 / 20)
    assert empirical_p(0.5, null, smaller=True, alternative="avoidance") == pytest.approx(1.0)
    assert empirical_p(25.0, null, smaller=False) == pytest.approx(1 / 20)
    assert empirical_p(25.0, null, smaller=False, alternative="two-sided") == pytest.approx(2 / 20)
    with pytest.raises(ValueError, match="alternative"):
        empirical_p(1.0, null, smaller=True, alternative="less")


def test_place_at_random_keeps_shapes_inside_tissue():
    tissue = _tissue((120, 120), seed=2)
    lab = np.zeros(tissue.shape, np.int32)
    lab[10:15, 10:13] = 1
    lab[50:52, 60:70] = 2
    rng = np.random.default_rng(0)
    for _ in range(20):
        moved = place_at_random(lab, tissue, rng)
        for i, n in ((1, 15), (2, 20)):
            pos = np.argwhere(moved == i)
            c = np.rint(np.argwhere(lab == i).mean(0) - np.argwhere(lab == i).min(0)).astype(int) + pos.min(0)
            assert tissue[tuple(c)]  # the centroid voxel lands in tissue
            if np.all(pos.min(0) > 0) and np.all(pos.max(0) < 119):
                assert len(pos) == n  # the shape is kept whole away from the borders
    # Crowded: 8 objects of 2 x 2 in an 8 x 8 tissue patch, half of it to be avoided; none vanishes, none on `avoid`.
    small = np.zeros((40, 40), bool)
    small[16:24, 16:24] = True
    avoid = np.zeros_like(small)
    avoid[16:24, 16:20] = True
    many = np.zeros((40, 40), np.int32)
    for k in range(8):
        many[2 + 4 * k:4 + 4 * k, 2:4] = k + 1
    for _ in range(20):
        moved = place_at_random(many, small, rng, avoid=avoid)
        assert sorted(np.unique(moved)[1:].tolist()) == list(range(1, 9))
        assert not (moved[avoid] > 0).any()
    with pytest.raises(ValueError, match="tissue mask has shape"):
        place_at_random(lab, tissue[:10], rng)
    with pytest.raises(ValueError, match="empty"):
        place_at_random(lab, np.zeros_like(tissue), rng)


def test_set_covariance_of_a_rectangle():
    """gamma(h) of an a x b rectangle is (a - |hy|)(b - |hx|) voxel areas."""
    m = np.zeros((30, 40), bool)
    m[5:25, 5:35] = True
    g, step = set_covariance(m, (1, 0.5, 2.0))
    c = (np.asarray(g.shape) - 1) // 2
    assert g[c[0], c[1]] == pytest.approx(20 * 30 * 1.0)
    assert g[c[0] + 3, c[1] - 7] == pytest.approx((20 - 3) * (30 - 7) * 1.0)
    assert step.tolist() == [0.5, 2.0]


def _csr_k(tissue, sp, radii, n_a, n_b, seeds, naive=False):
    ks, ls, gs = [], [], []
    for s in seeds:
        rng = np.random.default_rng(s)
        a = random_points_in_mask(tissue, n_a, sp, rng)
        b = random_points_in_mask(tissue, n_b, sp, rng)
        if naive:  # no edge correction: every weight 1, i.e. a covariance equal to |W| everywhere
            area = float(tissue.sum()) * np.prod(sp)
            g = np.full([2 * n - 1 for n in tissue.shape], area)
            k = cross_k(a, b, tissue, sp, radii, _cov=(g, np.asarray(sp)))
        else:
            k = cross_k(a, b, tissue, sp, radii)
        ks.append(k.iloc[:, 1].to_numpy())
        ls.append(k.l_minus_r_um.to_numpy())
        gs.append(k.g.to_numpy())
    return np.mean(ks, 0), np.mean(ls, 0), np.mean(gs, 0), k


def test_cross_k_on_csr_in_a_mask_with_air_spaces():
    tissue = _tissue((200, 200), seed=6)
    sp = (1.0, 1.0)
    radii = np.array([5.0, 10.0, 20.0, 30.0])
    k, lmr, g, last = _csr_k(tissue, sp, radii, 60, 80, range(40))
    np.testing.assert_allclose(k / (math.pi * radii ** 2), 1.0, atol=0.06)
    assert np.all(np.abs(lmr) < 0.6)
    np.testing.assert_allclose(g[1:], 1.0, atol=0.12)
    np.testing.assert_allclose(last.k_csr, math.pi * radii ** 2)
    # Without the edge correction K is biased low in a holed window (pairs cut off by air and borders).
    k_naive, _, _, _ = _csr_k(tissue, sp, radii, 60, 80, range(40), naive=True)
    assert k_naive[-1] / (math.pi * radii[-1] ** 2) < 0.8


def test_cross_k_on_csr_in_3d_anisotropic():
    tissue = np.ones((20, 60, 60), bool)
    tissue[:, 20:40, 20:40] = False  # a vessel lumen through the stack
    sp = (2.0, 1.0, 1.0)
    radii = np.array([6.0, 12.0])
    k, lmr, _, last = _csr_k(tissue, sp, radii, 80, 80, range(30))
    assert "k_um3" in last.columns
    np.testing.assert_allclose(k / (4 / 3 * math.pi * radii ** 3), 1.0, atol=0.08)
    assert np.all(np.abs(lmr) < 0.5)


def test_cross_k_envelope_global_test():
    """CSR: the global L test rejects near its nominal rate; attraction: L(r) - r leaves the envelope."""
    tissue = _tissue((160, 160), seed=7)
    sp = (1.0, 1.0)
    radii = np.arange(2.0, 31.0, 2.0)
    pvals = []
    for s in range(30):
        rng = np.random.default_rng(500 + s)
        a = random_points_in_mask(tissue, 30, sp, rng)
        b = random_points_in_mask(tissue, 40, sp, rng)
        pvals.append(cross_k_envelope(a, b, tissue, sp, radii, n_simulations=19, seed=s).attrs["p_value"])
    pvals = np.array(pvals)
    assert (pvals <= 0.05).sum() <= 5 and 0.3 <= pvals.mean() <= 0.7
    rng = np.random.default_rng(9)
    a = random_points_in_mask(tissue, 30, sp, rng)
    b = a[rng.integers(30, size=60)] + rng.normal(0, 3.0, (60, 2))  # macrophages within ~5 um of MSCs
    env = cross_k_envelope(a, b, tissue, sp, radii, n_simulations=99, seed=1)
    assert env.attrs["p_value"] <= 0.01
    small = env.r_um <= 8
    assert np.all(env.l_minus_r_um[small] > env.l_minus_r_high_um[small])
    assert env.g.iloc[1] > 3


def test_cross_k_bad_input_and_empty():
    tissue = np.ones((20, 20), bool)
    with pytest.raises(ValueError, match="radii_um"):
        cross_k(np.zeros((1, 2)), np.zeros((1, 2)), tissue, (1, 1, 1), [0, 5])
    e = cross_k(np.zeros((0, 2)), np.ones((3, 2)), tissue, (1, 1, 1), [5])
    assert np.isnan(e.k_um2[0]) and e.k_csr[0] == pytest.approx(25 * math.pi)


def test_cross_l_figure_draws_observed_and_envelope():
    from matplotlib.figure import Figure

    from lungtrack.figures import cross_l_figure

    tissue = np.ones((80, 80), bool)
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 79, (20, 2)), rng.uniform(0, 79, (30, 2))
    env = cross_k_envelope(a, b, tissue, (1, 1, 1), [2, 5, 10, 15], n_simulations=9)
    fig = cross_l_figure(env)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    line = [ln for ln in ax.lines if ln.get_gid() == "observed"][0]
    np.testing.assert_allclose(line.get_ydata(), env.l_minus_r_um)
    assert any(c.get_gid() == "envelope" for c in ax.collections)


def test_pipeline_writes_null_model_columns(tmp_path):
    """`spatial.null_simulations > 0`: samples.csv gets observed, null mean, envelope and p of each statistic,
    equal to `null_model_test` on the same labels and tissue with the same seed."""
    from lungtrack.config import Config
    from lungtrack.experiment import load_experiment
    from lungtrack.io import write_image
    from lungtrack.pipeline import process_sample
    from lungtrack.segment import segment_image
    from lungtrack.synthetic import simulate_section

    s = simulate_section(shape=(192, 192), n_msc=6, n_macrophage=14, frac_macrophage_recruited=0.6, seed=8)
    (tmp_path / "images").mkdir()
    write_image(tmp_path / "images" / "s1.ome.tif", s.image, axes="CYX", spacing_um=s.spacing_um,
                channel_names=s.channel_names)
    pd.DataFrame([{"path": "images/s1.ome.tif", "sample_id": "s1", "animal": "m1", "group": "BM", "time_h": 2,
                   "section": 1}]).to_csv(tmp_path / "manifest.csv", index=False)
    cfg = Config.from_dict({"channels": {"nuclei": "DAPI", "msc": "GFP", "macrophage": "CD68"},
                            "spatial": {"null_simulations": 19, "seed": 4, "radii_um": [30.0]}})
    row = process_sample(load_experiment(tmp_path / "manifest.csv").samples[0], cfg)["sample"]
    seg = segment_image(s.image, spacing_um=s.spacing_um, channel_names=s.channel_names)
    ref = null_model_test(seg["msc"], seg["macrophage"], s.spacing_um, tissue=seg["tissue"], n_simulations=19,
                          seed=4, radii_um=(30.0,), contact_tolerance_um=cfg.spatial.contact_tolerance_um)
    assert len(ref) == 4
    for _, r in ref.iterrows():
        name = r["statistic"]
        for suffix, col in (("", "observed"), ("_null_mean", "null_mean"), ("_null_low", "null_low"),
                            ("_null_high", "null_high"), ("_p", "p_value")):
            assert row[name + suffix] == pytest.approx(r[col]), name + suffix
    assert row["mean_nearest_macrophage_um_null_low"] <= row["mean_nearest_macrophage_um_null_high"]
