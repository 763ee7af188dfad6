"""The whole pipeline on real files: accuracy, schedulers, bad input, results-folder contract."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE_EXPERIMENT

from lungtrack.io import read_image, sha256
from lungtrack.pipeline import SAMPLE_COLUMNS

DESIGN_FILES = ["objects.parquet", "objects.csv", "samples.csv", "interactions.csv", "persistence.csv",
                "persistence_fit.csv", "report.html", "run.json", "figures/persistence.png",
                "figures/persistence.svg"]


def test_demo_writes_every_result_file_and_prints_half_lives(demo_run):
    assert demo_run["code"] == 0
    out = demo_run["out"]
    for f in DESIGN_FILES:
        assert (out / f).exists() and (out / f).stat().st_size > 0, f
    assert "BM: MSC half-life" in demo_run["stdout"] and "UC: MSC half-life" in demo_run["stdout"]
    samples = pd.read_csv(out / "samples.csv")
    assert list(samples.columns[: len(SAMPLE_COLUMNS)]) == SAMPLE_COLUMNS
    objects = pd.read_parquet(out / "objects.parquet")
    for c in ["sample_id", "role", "label", "centroid_z_um", "centroid_y_um", "centroid_x_um", "area_um2",
              "equivalent_diameter_um", "mean_intensity_GFP", "touches_border"]:
        assert c in objects.columns
    assert set(objects.role) == {"msc", "macrophage", "nuclei"}
    inter = pd.read_csv(out / "interactions.csv")
    assert {"sample_id", "msc_label", "nearest_macrophage_um", "n_macrophage_within_25um", "contact",
            "engulfed_fraction"} <= set(inter.columns)
    # one row per MSC object: the intact ones n_msc counts, and the dying (fragmented) ones
    assert inter["intact"].sum() == samples.n_msc.sum()
    msc_objects = objects[objects.role == "msc"]
    assert len(inter) == len(msc_objects) and (~inter["intact"]).sum() == (~msc_objects["intact"].astype(bool)).sum()
    assert set(inter.loc[~inter["intact"], "state"]) <= {"fragmented", "engulfed"}
    assert (inter.loc[~inter["intact"], "state"] == "fragmented").sum() > 0
    pers = pd.read_csv(out / "persistence.csv")
    assert list(pers.columns) == ["group", "time_h", "n_animals", "msc_per_mm2_mean", "msc_per_mm2_sem",
                                  "fraction_remaining", "ci_low", "ci_high"]
    fit = pd.read_csv(out / "persistence_fit.csv")
    assert {"group", "model", "half_life_h", "ci_low_h", "ci_high_h", "n0_per_mm2", "r2"} <= set(fit.columns)
    # Label images: one per image and role, uint32, same spacing as the input, counts agree with the table.
    sid = samples.sample_id[0]
    lab = read_image(out / "labels" / f"{sid}_msc.tif")
    src = read_image(SAMPLE_EXPERIMENT / "images" / f"{sid}.ome.tif")
    assert lab.data.dtype == np.uint32 and lab.spacing_um == pytest.approx(src.spacing_um)
    assert int(lab.data.max().compute()) == samples.n_msc[0]
    # Provenance: config, versions, input checksums.
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["channels"]["msc"] == "GFP"
    assert run["versions"]["lungtrack"] and run["versions"]["dask"]
    rec = run["inputs"][0]
    assert rec["sha256"] == sha256(rec["path"])
    assert "<img" in (out / "report.html").read_text()


def test_sample_experiment_accuracy_against_truth(demo_run):
    """Per-image MSC counts within 10% of truth on average; each half-life within 25% of the simulated one."""
    res = pd.read_csv(demo_run["out"] / "samples.csv")
    truth = pd.read_csv(SAMPLE_EXPERIMENT / "truth" / "samples.csv")
    m = res.merge(truth, on="sample_id", suffixes=("", "_true"))
    assert len(m) == len(truth) == 24
    # "On average": total absolute error over total true count (images with 0-1 cells would
    # make a mean of per-image ratios meaningless).
    rel_err = (m.n_msc - m.n_msc_true).abs().sum() / m.n_msc_true.sum()
    assert rel_err <= 0.10, rel_err
    assert (m.tissue_area_mm2 / m.tissue_area_mm2_true).between(0.9, 1.1).all()
    fit = pd.read_csv(demo_run["out"] / "persistence_fit.csv")
    groups = pd.read_csv(SAMPLE_EXPERIMENT / "truth" / "groups.csv")
    for g, hl in zip(groups.group, groups.half_life_h):
        est = fit.query("group == @g and model == 'exponential'").half_life_h.item()
        assert est == pytest.approx(hl, rel=0.25), (g, est, hl)
    # Efferocytosis index: macrophages containing MSC label vs truth (engulfing / all).
    frac_true = m.n_macrophage_engulfing / m.n_macrophage_true
    assert (m.frac_macrophage_containing_msc - frac_true).abs().mean() < 0.1


def test_config_pixel_size_only_fills_gaps(small_experiment):
    from lungtrack.config import Config
    from lungtrack.experiment import load_experiment
    from lungtrack.pipeline import validate_inputs

    cfg = Config.from_dict({"channels": {"msc": "GFP", "macrophage": "CD68", "nuclei": "DAPI"},
                            "run": {"pixel_size_um": 2.0}})
    rec = validate_inputs(load_experiment(small_experiment), cfg)
    assert all(r["spacing_um"] == [1.0, 1.0, 1.0] for r in rec)  # the files say 1.0 um
