"""Hand-made scenes with known distances, contacts and engulfment."""
from __future__ import annotations

import numpy as np
import pytest

from lungtrack.spatial import macrophages_containing, msc_macrophage_relations


def _disc(shape, c, r, spacing=(1.0, 1.0)):
    yy, xx = np.meshgrid(np.arange(shape[0]) * spacing[0], np.arange(shape[1]) * spacing[1], indexing="ij")
    return (yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r ** 2


def test_two_discs_10um_apart_surface_and_centre():
    msc = _disc((100, 200), (50, 50), 10).astype(np.int32)
    mac = _disc((100, 200), (50, 80), 10).astype(np.int32)  # centres 30 um apart, surfaces 10 um
    t = msc_macrophage_relations(msc, mac, (1, 1, 1), radii_um=(25, 35), contact_tolerance_um=1.0)
    assert t.nearest_macrophage_um[0] == pytest.approx(30.0)
    # Edge pixels at x=60 and x=70: 9 empty pixels (9 um) lie between the pixelised discs.
    assert t.nearest_macrophage_surface_um[0] == pytest.approx(9.0)
    assert t.n_macrophage_within_25um[0] == 0 and t.n_macrophage_within_35um[0] == 1
    assert not t.contact[0]


def test_touching_discs_are_in_contact():
    msc = _disc((60, 100), (30, 30), 10).astype(np.int32)
    mac = (_disc((60, 100), (30, 51), 10) & ~msc.astype(bool)).astype(np.int32)
    t = msc_macrophage_relations(msc, mac, (1, 1, 1))
    assert t.nearest_macrophage_surface_um[0] == 0.0 and bool(t.contact[0])


def test_anisotropic_z_gap():
    """Two slabs separated along z by 3 empty slices of 2 um: gap 6 um, whatever the xy pixel size."""
    msc = np.zeros((10, 20, 20), np.int32)
    mac = np.zeros_like(msc)
    msc[1:3, 5:15, 5:15] = 1
    mac[6:8, 5:15, 5:15] = 1
    t = msc_macrophage_relations(msc, mac, (2.0, 0.2, 0.2), contact_tolerance_um=1.0)
    # centre-to-centre: z 1.5*2=3 vs 6.5*2=13 -> 10 um
    assert t.nearest_macrophage_um[0] == pytest.approx(10.0)
    # voxel centres z=4 um and z=12 um -> 8 um, minus the smallest voxel size (0.2) for the surface gap
    assert t.nearest_macrophage_surface_um[0] == pytest.approx(8.0 - 0.2)


def test_engulfed_fraction_and_no_macrophage():
    msc = np.zeros((40, 40), np.int32)
    msc[10:20, 10:20] = 1
    mac = np.zeros_like(msc)
    mac[10:20, 15:30] = 1  # covers the right half of the MSC
    signal = np.where(msc > 0, 100.0, 0.0)
    signal[10:20, 15:20] = 300.0  # 3x brighter where inside the macrophage
    t = msc_macrophage_relations(msc, mac, (1, 1, 1), msc_signal=signal)
    assert t.engulfed_fraction[0] == pytest.approx(300 / 400)
    t0 = msc_macrophage_relations(msc, np.zeros_like(mac), (1, 1, 1))
    assert np.isinf(t0.nearest_macrophage_um[0]) and t0.n_macrophage_within_25um[0] == 0
    assert np.isnan(t0.engulfed_fraction[0])


def test_macrophages_containing_msc_label():
    mac = np.zeros((30, 30), np.int32)
    mac[2:12, 2:12] = 1
    mac[15:25, 15:25] = 2
    pos = np.zeros(mac.shape, bool)
    pos[5:7, 5:7] = True     # 4 px inside macrophage 1
    pos[20, 20] = True       # 1 px inside macrophage 2
    np.testing.assert_array_equal(macrophages_containing(mac, pos, (1, 0.5, 0.5), min_area_um2=0.5),
                                  [True, False])
    np.testing.assert_array_equal(macrophages_containing(mac, pos, (1, 1, 1), min_area_um2=1.0), [True, True])
