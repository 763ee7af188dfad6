"""Tests of lungtrack.coloc_table: per-ROI, per-object, per-z and per-frame coefficients with known truth."""
from __future__ import annotations

import doctest
import math

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from lungtrack import coloc
from lungtrack import coloc_table as ct_module
from lungtrack.coloc_table import coloc_table

EXTRA = {n: col for n, (_, col) in ct_module.EXTRA_COEFFICIENTS.items()}
KEYS = ["sample_id", "scope", "roi", "z", "frame"]
BASE = ["pearson_r", "manders_m1", "manders_m2", "costes_threshold_a", "costes_threshold_b", "costes_p", "costes_warnings"]


def roi_scene(seed=1):
    """60 x 90 image, three 20-row ROI bands (identical / independent / inverted) and a 4th ROI outside the mask."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(10, 200, (60, 90))
    b = np.empty_like(a)
    b[0:20] = a[0:20]                          # ROI 1: identical
    b[20:40] = rng.uniform(10, 200, (20, 90))   # ROI 2: independent
    b[40:60] = 210 - a[40:60]                   # ROI 3: inverted
    rois = np.zeros(a.shape, np.int32)
    rois[0:20, :80], rois[20:40, :80], rois[40:60, :80] = 1, 2, 3
    rois[:, 85:] = 4
    mask = np.ones(a.shape, bool)
    mask[:, 82:] = False                        # ROI 4 lies wholly outside the mask
    return a, b, rois, mask


def test_per_roi_known_values():
    a, b, rois, mask = roi_scene()
    t = coloc_table(a, b, mask=mask, rois=rois, sample_id="s1")
    # the public name scripts use is lungtrack.coloc.coloc_table
    pd.testing.assert_frame_equal(t, coloc.coloc_table(a, b, mask=mask, rois=rois, sample_id="s1"))
    assert list(t.columns) == KEYS + BASE + ["n_pixels", "convention"]
    assert t["scope"].tolist() == ["image", "mask", "roi", "roi", "roi", "roi"]
    assert t["roi"].dtype == "Int64" and t["z"].isna().all() and t["frame"].isna().all()
    assert (t["sample_id"] == "s1").all() and (t["convention"] == "jacop").all()
    r = t[t.scope == "roi"].set_index("roi")
    assert r.loc[1, "pearson_r"] == pytest.approx(1.0, abs=1e-12)
    assert r.loc[1, "manders_m1"] == pytest.approx(1.0) and r.loc[1, "manders_m2"] == pytest.approx(1.0)
    assert abs(r.loc[2, "pearson_r"]) < 0.1
    assert r.loc[3, "pearson_r"] == pytest.approx(-1.0, abs=1e-12)
    assert r.loc[1, "n_pixels"] == r.loc[2, "n_pixels"] == r.loc[3, "n_pixels"] == 20 * 80
    # ROI 4 is outside the mask: a row with NaN and 0 pixels, not an error
    assert r.loc[4, "n_pixels"] == 0 and r.loc[4, BASE[:-1]].isna().all()
    assert r.loc[4, "costes_warnings"] == "empty_region"
    # every row equals lungtrack.coloc on its own region
    for i in (1, 2, 3):
        region = (rois == i) & mask
        s = coloc.coloc_summary(a, b, region)
        for col in BASE[:-1]:
            assert r.loc[i, col] == pytest.approx(s[col], nan_ok=True), (i, col)
    m = t[t.scope == "mask"].iloc[0]
    assert m["n_pixels"] == mask.sum() and m["pearson_r"] == pytest.approx(coloc.pearson(a, b, mask))
    assert t[t.scope == "image"].iloc[0]["n_pixels"] == a.size


def test_per_z_each_plane_known_r():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 100, (3, 30, 40))
    b = np.stack([a[0], 100 - a[1], a[2] + rng.normal(0, 30, (30, 40))])
    t = coloc_table(a, b, per_z=True, coefficients=("pearson",), spacing_um=(2.0, 0.5, 0.25))
    assert t["scope"].tolist() == ["image"] * 3 and t["z"].tolist() == [0, 1, 2]
    assert list(t.columns) == KEYS + ["pearson_r", "n_pixels", "area_um2", "convention"]
    assert t["pearson_r"].tolist()[:2] == pytest.approx([1.0, -1.0], abs=1e-12)
    assert t["pearson_r"].iloc[2] == pytest.approx(np.corrcoef(a[2].ravel(), b[2].ravel())[0, 1], rel=1e-12)
    assert (t["n_pixels"] == 1200).all() and t["area_um2"].tolist() == [150.0] * 3  # 1200 * 0.5 * 0.25
    whole = coloc_table(a, b, coefficients=("pearson",), spacing_um=(2.0, 0.5, 0.25))
    assert len(whole) == 1 and whole["volume_um3"].iloc[0] == 3600 * 0.25


def test_per_frame_and_per_frame_per_z():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, (2, 20, 20))
    b = np.stack([3 * a[0] + 1, -a[1]])
    t = coloc_table(a, b, per_frame=True, coefficients=("pearson",))
    assert t["frame"].tolist() == [0, 1] and t["z"].isna().all()
    assert t["pearson_r"].tolist() == pytest.approx([1.0, -1.0], abs=1e-12)
    # (T, Z, Y, X): one row per frame and plane; a mask of one frame's shape serves every frame
    a4 = rng.uniform(0, 1, (2, 3, 10, 10))
    mask = np.zeros((3, 10, 10), bool)
    mask[:, :5] = True
    t4 = coloc_table(a4, a4, per_frame=True, per_z=True, mask=mask, coefficients=("pearson",))
    assert len(t4) == 2 * 3 * 2
    assert t4[["frame", "z"]].drop_duplicates().shape[0] == 6
    assert (t4[t4.scope == "mask"]["n_pixels"] == 50).all()
    assert t4["pearson_r"].to_numpy() == pytest.approx(1.0, abs=1e-12)


def test_object_scope_two_blobs():
    yy, xx = np.mgrid[0:40, 0:40]
    a = (xx + 2.0 * yy).astype(float)
    b = a.copy()
    objects = np.zeros((40, 40), np.uint16)
    objects[(yy - 10) ** 2 + (xx - 10) ** 2 <= 36] = 1
    objects[(yy - 28) ** 2 + (xx - 28) ** 2 <= 49] = 2
    b[objects == 2] = 500 - a[objects == 2]
    t = coloc_table(a, b, objects=objects, coefficients=("pearson", "manders"))
    o = t[t.scope == "object"].set_index("roi")
    assert o.loc[1, "pearson_r"] == pytest.approx(1.0, abs=1e-12)
    assert o.loc[2, "pearson_r"] == pytest.approx(-1.0, abs=1e-12)
    assert o.loc[1, "manders_m1"] == pytest.approx(1.0)
    assert o.loc[1, "n_pixels"] == (objects == 1).sum() and o.loc[2, "n_pixels"] == (objects == 2).sum()


def test_roi_missing_from_a_plane_gives_empty_row():
    a = np.random.default_rng(4).uniform(0, 1, (2, 8, 8))
    rois = np.zeros((2, 8, 8), np.int32)
    rois[0, :4] = 1
    rois[:, 4:] = 2
    t = coloc_table(a, a, rois=rois, per_z=True, coefficients=("pearson",))
    r = t[t.scope == "roi"]
    row = r[(r.z == 1) & (r.roi == 1)].iloc[0]
    assert row["n_pixels"] == 0 and math.isnan(row["pearson_r"])
    assert len(r) == 4


@pytest.mark.parametrize("chunks", [(7, 11), (60, 90), (13, 90), (1, 5)])
def test_dask_equals_numpy_for_any_chunking(chunks):
    a, b, rois, mask = roi_scene(5)
    ref = coloc_table(a, b, mask=mask, rois=rois, randomisations=5)
    got = coloc_table(da.from_array(a, chunks=chunks), da.from_array(b, chunks=chunks),
                      mask=da.from_array(mask, chunks=chunks), rois=da.from_array(rois, chunks=chunks),
                      randomisations=5)
    pd.testing.assert_frame_equal(got, ref)


def test_costes_p_and_tiny_regions():
    a, b, rois, mask = roi_scene(6)
    rois[0, 0] = 9  # a one-pixel ROI: too small for the randomisation blocks
    t = coloc_table(a, b, rois=rois, randomisations=9)
    r = t[t.scope == "roi"].set_index("roi")
    assert r.loc[1, "costes_p"] == pytest.approx(0.1)  # identical channels: no randomised r >= 1
    assert math.isnan(r.loc[9, "costes_p"]) and r.loc[9, "n_pixels"] == 1


def test_extra_coefficients_known_values():
    names = list(ct_module.EXTRA_COEFFICIENTS)
    a, b, rois, _ = roi_scene(8)
    t = coloc_table(a, b, rois=rois, coefficients=names)
    r = t[t.scope == "roi"].set_index("roi")
    assert r.loc[1, "spearman"] == pytest.approx(1.0) and r.loc[3, "spearman"] == pytest.approx(-1.0)
    assert r.loc[1, "overlap"] == pytest.approx(1.0)  # identical channels: Manders overlap r = 1
    assert r.loc[1, "kendall_tau"] == pytest.approx(1.0) and r.loc[3, "kendall_tau"] == pytest.approx(-1.0)
    assert not t[[EXTRA[n] for n in names]].isna().any().any()


def test_bad_input_names_the_argument():
    a = np.zeros((5, 5))
    with pytest.raises(ValueError, match="mask"):
        coloc_table(a, a, mask=np.ones((4, 5), bool))
    with pytest.raises(ValueError, match="mask"):
        coloc_table(a, a, mask=np.ones((5, 5), int))
    with pytest.raises(ValueError, match="rois"):
        coloc_table(a, a, rois=np.ones((5, 5)))
    with pytest.raises(ValueError, match="coefficients"):
        coloc_table(a, a, coefficients=("pearsn",))
    with pytest.raises(ValueError, match="per_z"):
        coloc_table(a, a, per_z=True)
    with pytest.raises(ValueError, match="convention"):
        coloc_table(a, a, convention="fiji")


def test_doctests():
    assert doctest.testmod(ct_module).failed == 0


def test_polygon_rois_equal_the_same_labels_image_and_may_overlap():
    rng = np.random.default_rng(3)
    a = rng.random((3, 30, 40))
    b = 0.5 * a + rng.random(a.shape)
    # a rectangle covering rows 2..11, columns 5..24 (pixel centres inside), and a
    # triangle overlapping it
    rect = [(1.5, 4.5), (1.5, 24.5), (11.5, 24.5), (11.5, 4.5)]
    tri = [(5.0, 20.0), (28.0, 20.0), (28.0, 39.0)]
    polys = {4: rect, 9: tri}
    lab_rect = np.zeros(a.shape, np.int32)
    lab_rect[:, 2:12, 5:25] = 4
    t_poly = coloc_table(a, b, rois=polys, per_z=True, coefficients=("pearson", "manders"))
    t_lab = coloc_table(a, b, rois=lab_rect, per_z=True, coefficients=("pearson", "manders"))
    got = t_poly[t_poly["roi"] == 4].reset_index(drop=True)
    want = t_lab[t_lab["scope"] == "roi"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert (got["n_pixels"] == 10 * 20).all()
    tri_mask = ct_module.polygon_rois({9: tri}, a.shape[1:])[0][1]
    r9 = t_poly[(t_poly["roi"] == 9) & (t_poly["z"] == 1)]
    assert int(r9["n_pixels"].iloc[0]) == int(tri_mask.sum())
    assert (tri_mask & (lab_rect[0] > 0)).any()  # the two ROIs share pixels
    assert float(r9["pearson_r"].iloc[0]) == pytest.approx(coloc.pearson(a[1], b[1], tri_mask), abs=1e-12)
    # a list of polygons numbers them 1, 2, ...; a mask restricts them
    m = np.zeros(a.shape[1:], bool)
    m[:, :15] = True
    t_list = coloc_table(a[0], b[0], rois=[rect, tri], mask=m, coefficients=("pearson",))
    assert t_list[t_list["scope"] == "roi"]["roi"].tolist() == [1, 2]
    assert int(t_list[t_list["roi"] == 1]["n_pixels"].iloc[0]) == 10 * 10


def test_polygon_roi_errors_name_the_roi():
    a = np.zeros((10, 10))
    with pytest.raises(ValueError, match="ROI 2: a polygon needs at least 3"):
        coloc_table(a, a, rois={1: [(0, 0), (0, 5), (5, 5)], 2: [(0, 0), (3, 3)]})


def test_costes_warnings_column_instead_of_log_lines(caplog):
    import logging

    rng = np.random.default_rng(50)
    sig = np.zeros((40, 40))
    sig[5:9, 5:9] = 100.0  # a small bright spot: thresholds end up far above the means
    a = sig + rng.normal(20, 2, sig.shape)
    b = 0.5 * sig + rng.normal(40, 2, sig.shape)  # offset: intercept far from zero
    objects = np.zeros(sig.shape, np.int32)
    objects[5:9, 5:9] = 1  # a 16-pixel object: too few pixels above both thresholds
    with caplog.at_level(logging.WARNING, logger="lungtrack.coloc"):
        t = coloc_table(a, b, objects=objects, coefficients=("pearson", "costes"))
    assert "costes_thresholds" not in caplog.text  # nothing logged per region
    image = t[t.scope == "image"]["costes_warnings"].iloc[0].split(";")
    assert "intercept_far_from_zero" in image and "threshold_a_too_high" in image
    # the same codes the public function logs as messages
    with caplog.at_level(logging.WARNING, logger="lungtrack.coloc"):
        coloc.costes_thresholds(a, b)
    assert "y-intercept far from zero" in caplog.text and "threshold of channel a too high" in caplog.text
    tiny = coloc_table(np.array([[0.0, 4, 2, 10, 11, 12]]), np.array([[4.0, 0, 2, 10, 11, 12]]),
                       objects=np.ones((1, 6), np.int32), coefficients=("costes",))
    assert tiny["costes_warnings"].tolist() == ["threshold_a_too_high;threshold_b_too_high;few_pixels_above_both"] * 2


def test_anti_correlated_region_says_why_manders_is_undefined():
    """No Costes thresholds exist when the channels are anti-correlated: the row carries a code, M1/M2 are NaN."""
    rng = np.random.default_rng(51)
    a = rng.uniform(10, 200, (30, 30))
    b = 210 - a + rng.normal(0, 1, a.shape)
    t = coloc_table(a, b, coefficients=("pearson", "manders", "costes"))
    row = t.iloc[0]
    assert row["pearson_r"] < -0.99 and np.isnan(row["manders_m1"]) and np.isnan(row["manders_m2"])
    assert row["costes_warnings"] == "not_positively_correlated"
    assert row["costes_threshold_a"] == a.max() and row["costes_threshold_b"] == b.max()
