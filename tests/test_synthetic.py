"""The simulator: deterministic, and its truth agrees with what it rendered."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lungtrack.measure import measure_objects
from lungtrack.synthetic import experiment_counts, simulate_experiment, simulate_section


def test_seeded_and_deterministic():
    a = simulate_section(shape=(128, 128), n_msc=5, seed=4)
    b = simulate_section(shape=(128, 128), n_msc=5, seed=4)
    c = simulate_section(shape=(128, 128), n_msc=5, seed=5)
    np.testing.assert_array_equal(a.image, b.image)
    pd.testing.assert_frame_equal(a.cells, b.cells)
    assert not np.array_equal(a.image, c.image)


def test_truth_labels_match_table_and_sizes():
    s = simulate_section(n_msc=25, n_macrophage=30, n_msc_fragmented=3, seed=2)
    cells = s.cells
    intact = cells[(cells.role == "msc") & (cells.state == "intact")]
    assert s.labels["msc"].max() == len(intact) == s.n_msc == 25
    assert s.labels["macrophage"].max() == (cells.role == "macrophage").sum() == 30
    assert s.labels["msc_fragments"].max() == (cells.state == "fragmented").sum() == 3
    assert intact.diameter_um.between(15, 30).all()
    assert cells[cells.role == "macrophage"].diameter_um.between(10, 15).all()
    # Rendered MSCs that are whole in the image have equivalent diameters near their nominal size.
    t = measure_objects(s.labels["msc"], s.spacing_um)
    whole = t[~t.touches_border]
    assert whole.equivalent_diameter_um.between(12, 31).all()
    # Engulfing macrophages hold MSC-label puncta, the others none.
    eng = set(cells.loc[cells.state == "engulfing", "label"])
    holding = set(np.unique(s.labels["msc_puncta"])) - {0}
    assert eng == holding and len(eng) > 0
    # MSC label sits where truth says: bright GFP inside MSCs, dim in air.
    gfp = s.image[1].astype(float)
    air = s.labels["tissue"] == 0
    assert np.median(gfp[s.labels["msc"] > 0]) > 4 * np.median(gfp[air])


def test_density_target_is_met_on_total_tissue():
    s = simulate_section(msc_per_mm2=500.0, seed=3)
    expected = 500.0 * s.tissue_area_mm2
    # Placement stops at the target; a final cluster may add up to 3 more, macrophages add a little tissue.
    assert expected - 1 <= s.n_msc <= expected + 4


def test_zstack_shape_and_spacing():
    s = simulate_section(shape=(8, 96, 96), z_step_um=2.0, n_msc=3, n_macrophage=3, seed=1)
    assert s.image.shape == (3, 8, 96, 96)
    assert s.spacing_um == (2.0, 1.0, 1.0)
    assert s.labels["msc"].shape == (8, 96, 96) and s.labels["msc"].max() == 3


def test_experiment_design_decays_with_the_half_life():
    d = experiment_counts(groups={"A": 6.0}, time_h=(0.0, 6.0, 12.0), n_animals=4, animal_cv=0.0)
    means = d.groupby("time_h").msc_per_mm2_target.mean()
    np.testing.assert_allclose(means.to_numpy(), 800.0 * np.array([1.0, 0.5, 0.25]))


def test_simulate_experiment_writes_manifest_images_truth(tmp_path):
    man = simulate_experiment(tmp_path, groups={"A": 5.0}, time_h=(1.0, 10.0), n_animals=2, shape=(96, 96), seed=1)
    assert len(man) == 4
    for p in man.path:
        assert (tmp_path / p).exists()
    truth = pd.read_csv(tmp_path / "truth" / "samples.csv")
    assert list(truth.sample_id) == list(man.sample_id)
    assert (tmp_path / "truth" / f"{man.sample_id[0]}_msc.tif").exists()
    assert "channels:" in (tmp_path / "config.yaml").read_text()


def test_zstack_density_is_per_mm2_of_projected_tissue():
    s = simulate_section(shape=(6, 160, 160), z_step_um=2.0, msc_per_mm2=1500.0, n_macrophage=4, seed=2)
    assert s.n_msc >= 8
    assert s.n_msc == pytest.approx(1500.0 * s.tissue_area_mm2, abs=4)
