"""Object tables in physical units against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lungtrack.measure import measure_objects, object_columns


def test_rectangle_anisotropic_2d():
    lab = np.zeros((20, 30), np.int32)
    lab[4:8, 10:20] = 3          # 4 x 10 px
    lab[0:2, 0:2] = 5            # touches the border
    t = measure_objects(lab, (1.0, 0.5, 0.25), intensities={"GFP": lab * 2.0}, role="msc", sample_id="s")
    r = t.set_index("label").loc[3]
    assert r.area_um2 == pytest.approx(40 * 0.5 * 0.25)
    assert r.centroid_y_um == pytest.approx(5.5 * 0.5)
    assert r.centroid_x_um == pytest.approx(14.5 * 0.25)
    assert r.centroid_z_um == 0.0
    assert r.equivalent_diameter_um == pytest.approx(2 * math.sqrt(5.0 / math.pi))
    assert r.mean_intensity_GFP == 6.0
    assert not r.touches_border and t.set_index("label").loc[5].touches_border
    assert list(t.columns) == object_columns(2, ["GFP"])
    assert set(t.role) == {"msc"} and set(t.sample_id) == {"s"}


def test_sphere_volume_3d_anisotropic():
    spacing = (2.0, 0.5, 0.5)
    z, y, x = np.meshgrid(np.arange(30) * 2.0, np.arange(120) * 0.5, np.arange(120) * 0.5, indexing="ij")
    r = 12.0
    lab = (((z - 30) ** 2 + (y - 30) ** 2 + (x - 30) ** 2) <= r ** 2).astype(np.int32)
    t = measure_objects(lab, spacing)
    assert "volume_um3" in t.columns
    assert t.volume_um3[0] == pytest.approx(4 / 3 * math.pi * r ** 3, rel=0.02)
    assert t.equivalent_diameter_um[0] == pytest.approx(2 * r, rel=0.01)
    assert (t.centroid_z_um[0], t.centroid_y_um[0], t.centroid_x_um[0]) == pytest.approx((30, 30, 30), abs=1e-6)


def test_empty_labels_give_empty_table_with_columns_and_dtypes():
    t = measure_objects(np.zeros((8, 8), np.int32), (1, 1, 1), intensities={"GFP": np.ones((8, 8))})
    assert len(t) == 0
    assert list(t.columns) == object_columns(2, ["GFP"])
    assert t.area_um2.dtype == np.float64 and t.label.dtype == np.int64 and t.touches_border.dtype == bool
