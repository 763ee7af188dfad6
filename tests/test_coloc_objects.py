"""Tests of lungtrack.coloc_objects on constructed scenes with exact overlaps and anisotropic voxels."""
from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from lungtrack import coloc_objects
from lungtrack.coloc_objects import (
    msc_in_macrophage,
    object_coloc_summary,
    overlap_pairs,
)

SPACING = (2.0, 0.5, 0.25)  # voxel = 0.25 um3


def scene():
    """MSC 1 half-in macrophage 5 (centroid inside); MSC 2 alone; MSC 3 touching macrophages 6 and 7 at its ends."""
    msc = np.zeros((8, 20, 16), np.int32)
    mac = np.zeros_like(msc)
    msc[2:4, 2:6, 2:12] = 1    # 80 voxels, centroid voxel (2.5, 3.5, 6.5) -> (3, 4, 7)
    mac[2:4, 2:6, 5:14] = 5    # 72 voxels; overlap with MSC 1: x 5..11 -> 2*4*7 = 56 voxels
    msc[6:8, 10:14, 2:6] = 2   # 32 voxels, no macrophage
    msc[0:2, 16:20, 0:12] = 3  # 96 voxels, centroid x 5.5 -> 6: between the macrophages
    mac[0:2, 16:20, 0:3] = 6   # 24 voxels, all inside MSC 3
    mac[0:2, 16:20, 9:12] = 7  # 24 voxels, all inside MSC 3
    signal = np.broadcast_to(np.arange(16, dtype=float), msc.shape).copy()  # signal = x index
    return msc, mac, signal


def test_msc_in_macrophage_exact():
    msc, mac, signal = scene()
    t = msc_in_macrophage(msc, mac, SPACING, msc_signal=signal)
    assert list(t.columns) == ["msc_label", "centroid_in_macrophage", "macrophage_label", "overlap_um3",
                               "overlap_fraction", "intensity_fraction_in_macrophages"]
    assert t["msc_label"].tolist() == [1, 2, 3]
    assert t["centroid_in_macrophage"].tolist() == [True, False, False]
    assert t["macrophage_label"].dtype == "Int64"
    assert t["macrophage_label"][0] == 5 and t["macrophage_label"][1:].isna().all()
    assert t["overlap_um3"].tolist() == [56 * 0.25, 0.0, 48 * 0.25]  # 14, 0, 12 um3
    assert t["overlap_fraction"].tolist() == pytest.approx([56 / 80, 0.0, 0.5])
    # sum of x over MSC 1 = 8 * (2+...+11) = 520; inside macrophage 5: 8 * (5+...+11) = 448
    # MSC 3: 8 * (0+...+11) = 528; inside: 8 * (0+1+2) + 8 * (9+10+11) = 264
    assert t["intensity_fraction_in_macrophages"].tolist() == pytest.approx([448 / 520, 0.0, 264 / 528])


def test_msc_in_macrophage_without_signal_and_2d():
    msc, mac, _ = scene()
    t = msc_in_macrophage(msc, mac, SPACING)
    assert t["intensity_fraction_in_macrophages"].isna().all()
    t2 = msc_in_macrophage(msc[2], mac[2], (0.5, 0.25))
    assert "overlap_um2" in t2.columns and t2["msc_label"].tolist() == [1]
    assert t2["overlap_um2"].tolist() == [4 * 7 * 0.125]
    pd.testing.assert_frame_equal(t2, msc_in_macrophage(msc[2], mac[2], SPACING))  # z spacing ignored in 2D


def test_centroid_uses_voxel_centres_for_a_crescent():
    """An L-shaped MSC whose centroid voxel is outside itself but inside a macrophage."""
    msc = np.zeros((10, 10), np.int32)
    msc[0:9, 0] = 1
    msc[8, 0:9] = 1   # centroid about (5.9, 2.1) -> voxel (6, 2), not in the L
    mac = np.zeros_like(msc)
    mac[5:8, 1:4] = 3
    t = msc_in_macrophage(msc, mac, (3.0, 0.2))
    assert bool(t["centroid_in_macrophage"][0]) and t["macrophage_label"][0] == 3
    assert t["overlap_um2"][0] == 0.0


def test_overlap_pairs_exact():
    msc, mac, _ = scene()
    p = overlap_pairs(msc, mac, SPACING)
    assert list(p.columns) == ["label_a", "label_b", "overlap_um3", "iou"]
    assert p[["label_a", "label_b"]].values.tolist() == [[1, 5], [3, 6], [3, 7]]
    assert p["overlap_um3"].tolist() == [14.0, 6.0, 6.0]
    assert p["iou"].tolist() == pytest.approx([56 / (80 + 72 - 56), 24 / 96, 24 / 96])


def test_object_coloc_summary_by_hand():
    msc, mac, signal = scene()
    s = object_coloc_summary(msc, mac, SPACING, msc_signal=signal)
    assert s["n_msc"] == 3 and s["n_macrophage"] == 3
    assert s["frac_msc_centroid_in_macrophage"] == pytest.approx(1 / 3)
    assert s["msc_overlap_fraction"] == pytest.approx((56 + 48) / (80 + 32 + 96))
    # MSC 2 adds 8 * (2+3+4+5) = 112 to the total, nothing inside
    assert s["msc_intensity_fraction_in_macrophages"] == pytest.approx((448 + 264) / (520 + 112 + 528))
    # signal outside MSC objects is not counted
    signal2 = signal.copy()
    signal2[msc == 0] = 1000.0
    s2 = object_coloc_summary(msc, mac, SPACING, msc_signal=signal2)
    assert s2["msc_intensity_fraction_in_macrophages"] == s["msc_intensity_fraction_in_macrophages"]


def test_empty_inputs_give_typed_empty_tables():
    empty = np.zeros((4, 5, 6), np.int32)
    msc, mac, _ = scene()
    t = msc_in_macrophage(empty, empty, SPACING)
    assert len(t) == 0
    assert t.dtypes.astype(str).tolist() == ["int64", "bool", "Int64", "float64", "float64", "float64"]
    t2 = msc_in_macrophage(empty[0], empty[0], SPACING)
    assert "overlap_um2" in t2.columns and len(t2) == 0
    p = overlap_pairs(msc, np.zeros_like(mac), SPACING)
    assert len(p) == 0 and p.dtypes.astype(str).tolist() == ["int64", "int64", "float64", "float64"]
    s = object_coloc_summary(empty, empty, SPACING, msc_signal=np.ones(empty.shape))
    assert s["n_msc"] == 0 and np.isnan(s["frac_msc_centroid_in_macrophage"])
    assert np.isnan(s["msc_intensity_fraction_in_macrophages"])
    t3 = msc_in_macrophage(msc, np.zeros_like(mac), SPACING)
    assert not t3["centroid_in_macrophage"].any() and t3["macrophage_label"].isna().all()


def test_bad_input_names_the_argument():
    msc, mac, _ = scene()
    with pytest.raises(ValueError, match="macrophage_labels"):
        msc_in_macrophage(msc, mac[:4], SPACING)
    with pytest.raises(ValueError, match="spacing_um"):
        msc_in_macrophage(msc, mac, (0.5, 0.25))
    with pytest.raises(ValueError, match="msc_signal"):
        msc_in_macrophage(msc, mac, SPACING, msc_signal=np.ones(3))
    with pytest.raises(ValueError, match="labels_a"):
        overlap_pairs(msc.astype(float), mac, SPACING)


def test_doctests():
    assert doctest.testmod(coloc_objects).failed == 0
