"""Densities per mm3 of tissue for z-stacks (issue 6): per image, pooled per animal, persistence per mm3."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tifffile

from lungtrack import analyze
from lungtrack.config import Config
from lungtrack.experiment import load_experiment
from lungtrack.io import write_image, write_labels
from lungtrack.persistence import (
    PERSISTENCE_COLUMNS,
    animal_table,
    compare_time_points,
    persistence_table,
    time_course,
)
from lungtrack.pipeline import process_sample
from lungtrack.synthetic import simulate_section

CHANNELS = {"nuclei": "DAPI", "msc": "GFP", "macrophage": "CD68"}
DZ, DXY = 2.5, 0.8  # anisotropic voxels: 2.5 x 0.8 x 0.8 um = 1.6 um3


def _write_sample(d, sid, s):
    """Image + its truth labels (msc, macrophage, tissue) as external label images; returns the manifest row."""
    axes = "CZYX" if s.image.ndim == 4 else "CYX"
    write_image(d / f"{sid}.ome.tif", s.image, axes=axes, spacing_um=s.spacing_um, channel_names=s.channel_names)
    row = {"path": f"{sid}.ome.tif", "sample_id": sid}
    for role, lab in (("msc", s.labels["msc"]), ("macrophage", s.labels["macrophage"]),
                      ("tissue", (s.labels["tissue"] > 0).astype(np.uint8))):
        write_labels(d / f"{sid}_{role}.tif", lab, s.spacing_um)
        row[f"{role}_labels"] = f"{sid}_{role}.tif"
    return row


def _stack(seed, n_msc=5):
    return simulate_section(shape=(8, 112, 112), pixel_size_um=DXY, z_step_um=DZ, n_msc=n_msc, n_macrophage=6,
                            seed=seed)


def test_zstack_row_has_tissue_volume_and_per_mm3_densities_exactly(tmp_path):
    s = _stack(seed=3)
    row = _write_sample(tmp_path, "z1", s)
    pd.DataFrame([{**row, "animal": "m1", "group": "BM", "time_h": 2, "section": 1}]).to_csv(
        tmp_path / "manifest.csv", index=False)
    sample = load_experiment(tmp_path / "manifest.csv").samples[0]
    out = process_sample(sample, Config.from_dict({"channels": CHANNELS}))["sample"]
    n_vox = int((s.labels["tissue"] > 0).sum())
    volume = n_vox * DZ * DXY * DXY * 1e-9  # um3 -> mm3
    area = int((s.labels["tissue"] > 0).any(axis=0).sum()) * DXY * DXY * 1e-6
    assert n_vox > 20000 and volume == pytest.approx(s.tissue_volume_mm3, rel=1e-12)
    assert out["tissue_volume_mm3"] == pytest.approx(volume, rel=1e-12)
    assert out["tissue_area_mm2"] == pytest.approx(area, rel=1e-12)  # per mm2 unchanged: projected area
    n_mac = int(s.labels["macrophage"].max())
    assert out["n_msc"] == s.n_msc == 5 and out["n_macrophage"] == n_mac == 6
    assert out["msc_per_mm3"] == pytest.approx(5 / volume, rel=1e-12)
    assert out["macrophage_per_mm3"] == pytest.approx(6 / volume, rel=1e-12)
    assert out["msc_per_mm2"] == pytest.approx(5 / area, rel=1e-12)
    # the spacing counts: the same voxels at isotropic 0.8 um would be 2.5x less volume
    assert out["tissue_volume_mm3"] / (n_vox * DXY ** 3 * 1e-9) == pytest.approx(DZ / DXY, rel=1e-12)


def test_2d_row_has_nan_volume_and_per_mm3(tmp_path):
    s = simulate_section(shape=(112, 112), pixel_size_um=DXY, n_msc=4, n_macrophage=5, seed=4)
    row = _write_sample(tmp_path, "a1", s)
    pd.DataFrame([{**row, "animal": "m1", "group": "BM", "time_h": 2, "section": 1}]).to_csv(
        tmp_path / "manifest.csv", index=False)
    out = process_sample(load_experiment(tmp_path / "manifest.csv").samples[0],
                         Config.from_dict({"channels": CHANNELS}))["sample"]
    assert math.isnan(out["tissue_volume_mm3"]) and math.isnan(out["msc_per_mm3"])
    assert math.isnan(out["macrophage_per_mm3"]) and math.isnan(s.tissue_volume_mm3)
    assert out["msc_per_mm2"] == pytest.approx(s.n_msc / s.tissue_area_mm2, rel=1e-12)


def test_chunked_path_reports_the_volume_of_its_tissue_mask(tmp_path):
    """process_large_sample (run.chunked_min_voxels = 0): volume = voxels of its written tissue label x dz dy dx."""
    s = _stack(seed=5)
    write_image(tmp_path / "z.ome.tif", s.image, axes="CZYX", spacing_um=s.spacing_um, channel_names=s.channel_names)
    pd.DataFrame([{"path": "z.ome.tif", "sample_id": "z", "animal": "m1", "group": "BM", "time_h": 2,
                   "section": 1}]).to_csv(tmp_path / "manifest.csv", index=False)
    cfg = Config.from_dict({"channels": CHANNELS, "run": {"chunked_min_voxels": 0, "chunk_size_px": 64}})
    (tmp_path / "labels").mkdir()
    out = process_sample(load_experiment(tmp_path / "manifest.csv").samples[0], cfg,
                         labels_dir=str(tmp_path / "labels"))["sample"]
    assert out["segmentation"] == "chunked"
    tissue = tifffile.imread(tmp_path / "labels" / "z_tissue.tif") > 0
    assert tissue.shape == (8, 112, 112) and tissue.sum() > 1000
    volume = float(tissue.sum()) * DZ * DXY * DXY * 1e-9
    assert out["tissue_volume_mm3"] == pytest.approx(volume, rel=1e-12)
    assert out["tissue_area_mm2"] == pytest.approx(float(tissue.any(axis=0).sum()) * DXY * DXY * 1e-6, rel=1e-12)
    assert out["msc_per_mm3"] == pytest.approx(out["n_msc"] / volume, rel=1e-12)
    assert out["macrophage_per_mm3"] == pytest.approx(out["n_macrophage"] / volume, rel=1e-12)


# --------------------------------------------------------------------------- pooling, by hand
def hand_samples():
    """Two z-stacks per animal with different volumes, plus one 2D section (no volume) of animal a1."""
    rows = [
        # animal, time, n_msc, n_mac, area mm2, volume mm3
        ("a1", 2.0, 10, 4, 0.010, 0.001),
        ("a1", 2.0, 50, 8, 0.020, 0.003),
        ("a1", 2.0, 7, 3, 0.050, math.nan),  # 2D section: in per mm2, not in per mm3
        ("a2", 2.0, 30, 6, 0.015, 0.002),
        ("a2", 2.0, 30, 6, 0.015, 0.002),
        ("b1", 24.0, 3, 9, 0.010, 0.001),
        ("b1", 24.0, 9, 9, 0.010, 0.002),
        ("b2", 24.0, 12, 2, 0.020, 0.003),
    ]
    df = pd.DataFrame(rows, columns=["animal", "time_h", "n_msc", "n_macrophage", "tissue_area_mm2",
                                     "tissue_volume_mm3"])
    df["group"] = "BM"
    df["sample_id"] = [f"s{i}" for i in range(len(df))]
    vol = df["tissue_volume_mm3"]
    df["msc_per_mm2"] = df["n_msc"] / df["tissue_area_mm2"]
    df["msc_per_mm3"] = df["n_msc"] / vol
    df["macrophage_per_mm3"] = df["n_macrophage"] / vol
    return df


# animal density = total count over total volume (not the mean of the section ratios)
TRUTH_MM3 = {"a1": 60 / 0.004, "a2": 60 / 0.004, "b1": 12 / 0.003, "b2": 12 / 0.003}  # 15000, 15000, 4000, 4000


def test_animal_density_per_mm3_is_total_count_over_total_volume():
    s = hand_samples()
    a = animal_table(s, value="msc_per_mm3").set_index("animal")
    for animal, d in TRUTH_MM3.items():
        assert a.loc[animal, "msc_per_mm3"] == pytest.approx(d, rel=1e-12)
    assert a.loc["a1", "n_sections"] == 2  # the 2D section has no volume: left out
    assert s[s.animal == "a1"].iloc[:2]["msc_per_mm3"].mean() == pytest.approx(40000 / 3, rel=1e-12)  # != 15000
    m = animal_table(s, value="macrophage_per_mm3").set_index("animal")
    assert m.loc["a1", "macrophage_per_mm3"] == pytest.approx(12 / 0.004, rel=1e-12)
    assert m.loc["b1", "macrophage_per_mm3"] == pytest.approx(18 / 0.003, rel=1e-12)
    # per mm2 still pools every section, the 2D one included
    a2 = animal_table(s, value="msc_per_mm2").set_index("animal")
    assert a2.loc["a1", "msc_per_mm2"] == pytest.approx(67 / 0.080, rel=1e-12) and a2.loc["a1", "n_sections"] == 3


def test_time_course_and_persistence_per_mm3():
    s = hand_samples()
    tc = time_course(s, value="msc_per_mm3").set_index("time_h")
    assert list(tc["n_animals"]) == [2, 2]
    assert tc.loc[2.0, "msc_per_mm3_mean"] == pytest.approx(15000.0) and tc.loc[2.0, "msc_per_mm3_sem"] == 0.0
    assert tc.loc[24.0, "msc_per_mm3_mean"] == pytest.approx(4000.0)
    p = persistence_table(s, value="msc_per_mm3", bootstrap=0)
    assert list(p.columns) == [c.replace("msc_per_mm2", "msc_per_mm3") for c in PERSISTENCE_COLUMNS]
    assert p["msc_per_mm3_mean"].tolist() == pytest.approx([15000.0, 4000.0])
    assert p["fraction_remaining"].tolist() == pytest.approx([1.0, 4000 / 15000])
    # the default table is unchanged: per mm2 over summed areas
    p2 = persistence_table(s, bootstrap=0)
    assert list(p2.columns) == list(PERSISTENCE_COLUMNS)
    assert p2["msc_per_mm2_mean"].iloc[0] == pytest.approx((67 / 0.080 + 60 / 0.030) / 2, rel=1e-12)
    r = compare_time_points(s.assign(group=np.where(s.animal.isin(["a1", "b1"]), "BM", "UC")), value="msc_per_mm3")
    assert set(r["measure"]) == {"msc_per_mm3"} and len(r) == 2


def test_an_animal_with_only_2d_sections_has_no_per_mm3_value():
    s = hand_samples()
    s.loc[s.animal == "b2", ["tissue_volume_mm3", "msc_per_mm3"]] = np.nan
    a = animal_table(s, value="msc_per_mm3").set_index("animal")
    assert math.isnan(a.loc["b2", "msc_per_mm3"]) and a.loc["b2", "n_sections"] == 0
    tc = time_course(s, value="msc_per_mm3").set_index("time_h")
    assert tc.loc[24.0, "n_animals"] == 1 and tc.loc[24.0, "msc_per_mm3_mean"] == pytest.approx(4000.0)


# --------------------------------------------------------------------------- the run
def test_run_writes_persistence_mm3_for_zstacks_only(tmp_path):
    """An experiment of z-stacks (plus one 2D image) with truth labels: persistence_mm3.csv from truth."""
    d = tmp_path / "exp"
    d.mkdir()
    plan = [("z1", "m1", 2, 6, 11), ("z2", "m1", 2, 3, 12), ("z3", "m2", 2, 5, 13), ("z4", "m3", 24, 2, 14),
            ("z5", "m4", 24, 1, 15)]
    rows, sims = [], {}
    for sid, animal, t, n, seed in plan:
        sims[sid] = _stack(seed=seed, n_msc=n)
        rows.append({**_write_sample(d, sid, sims[sid]), "animal": animal, "group": "BM", "time_h": t,
                     "section": sid})
    flat = simulate_section(shape=(112, 112), pixel_size_um=DXY, n_msc=4, n_macrophage=5, seed=16)
    rows.append({**_write_sample(d, "f1", flat), "animal": "m2", "group": "BM", "time_h": 2, "section": "f1"})
    pd.DataFrame(rows).to_csv(d / "manifest.csv", index=False)
    cfg = {"channels": CHANNELS, "persistence": {"bootstrap": 0}, "coloc": {"costes_randomisations": 0},
           "run": {"write_labels": False}}
    res = analyze(d / "manifest.csv", config=cfg, out=tmp_path / "out", use_dask=False)
    samples = pd.read_csv(tmp_path / "out" / "samples.csv").set_index("sample_id")
    for sid, s in sims.items():
        assert samples.loc[sid, "n_msc"] == s.n_msc
        assert samples.loc[sid, "tissue_volume_mm3"] == pytest.approx(s.tissue_volume_mm3, rel=1e-9)
    assert math.isnan(samples.loc["f1", "tissue_volume_mm3"]) and math.isnan(samples.loc["f1", "msc_per_mm3"])

    def pooled(ids):
        return sum(sims[i].n_msc for i in ids) / sum(sims[i].tissue_volume_mm3 for i in ids)

    truth_2h = [pooled(["z1", "z2"]), pooled(["z3"])]  # m2's 2D section f1 has no volume
    truth_24h = [pooled(["z4"]), pooled(["z5"])]
    p = pd.read_csv(tmp_path / "out" / "persistence_mm3.csv")
    assert p["n_animals"].tolist() == [2, 2]
    assert p["msc_per_mm3_mean"].tolist() == pytest.approx([np.mean(truth_2h), np.mean(truth_24h)], rel=1e-9)
    assert p["msc_per_mm3_sem"].iloc[0] == pytest.approx(np.std(truth_2h, ddof=1) / math.sqrt(2), rel=1e-9)
    assert p["fraction_remaining"].iloc[1] == pytest.approx(np.mean(truth_24h) / np.mean(truth_2h), rel=1e-9)
    assert "persistence_mm3" in res.persistence_tables
    assert "per mm3 of tissue" in (tmp_path / "out" / "report.html").read_text()


def test_run_of_2d_images_has_no_persistence_mm3(tmp_path):
    d = tmp_path / "exp"
    d.mkdir()
    rows = [{**_write_sample(d, f"f{i}", simulate_section(shape=(96, 96), n_msc=3, n_macrophage=4, seed=20 + i)),
             "animal": f"m{i}", "group": "BM", "time_h": t, "section": 1} for i, t in enumerate((2, 24))]
    pd.DataFrame(rows).to_csv(d / "manifest.csv", index=False)
    cfg = {"channels": CHANNELS, "persistence": {"bootstrap": 0}, "coloc": {"costes_randomisations": 0},
           "run": {"write_labels": False}}
    res = analyze(d / "manifest.csv", config=cfg, out=tmp_path / "out", use_dask=False)
    assert not (tmp_path / "out" / "persistence_mm3.csv").exists() and "persistence_mm3" not in res.persistence_tables
    samples = pd.read_csv(tmp_path / "out" / "samples.csv")
    assert samples["tissue_volume_mm3"].isna().all() and samples["msc_per_mm3"].isna().all()
    assert samples["msc_per_mm2"].notna().all()
