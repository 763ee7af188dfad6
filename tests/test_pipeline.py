"""The whole pipeline on real files: accuracy, schedulers, bad input, results-folder contract."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from lungtrack.cli import main
from lungtrack.io import LungtrackInputError, read_image, sha256
from lungtrack.pipeline import SAMPLE_COLUMNS, analyze

from conftest import SAMPLE_EXPERIMENT

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
    assert len(inter) == samples.n_msc.sum()
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


def _tables(res):
    return {"samples": res.samples, "objects": res.objects, "interactions": res.interactions,
            "persistence": res.persistence, "persistence_fit": res.persistence_fit}


def test_dask_threads_distributed_and_plain_loop_give_identical_tables(small_experiment, tmp_path):
    from distributed import Client, LocalCluster

    plain = analyze(small_experiment, config=small_experiment / "config.yaml", use_dask=False)
    threads = analyze(small_experiment, config=small_experiment / "config.yaml", scheduler="threads")
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, processes=True) as cluster, \
            Client(cluster) as client:
        dist = analyze(small_experiment, config=small_experiment / "config.yaml", client=client,
                       out=tmp_path / "dist")
    for name, table in _tables(plain).items():
        pd.testing.assert_frame_equal(table, _tables(threads)[name], check_exact=True)
        pd.testing.assert_frame_equal(table, _tables(dist)[name], check_exact=True)
    assert plain.samples.n_msc.sum() > 0
    assert (tmp_path / "dist" / "labels").is_dir()


def _copy_experiment(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_missing_file_fails_clearly_and_writes_nothing(small_experiment, tmp_path, capsys):
    exp = _copy_experiment(small_experiment, tmp_path / "exp")
    man = pd.read_csv(exp / "manifest.csv")
    man.loc[1, "path"] = "images/not_there.ome.tif"
    man.to_csv(exp / "manifest.csv", index=False)
    out = tmp_path / "results"
    code = main(["analyze", str(exp), "--out", str(out), "--config", str(exp / "config.yaml")])
    err = capsys.readouterr().err
    assert code != 0
    assert "not_there.ome.tif" in err and "not found" in err
    assert not out.exists()
    assert not list(tmp_path.glob(".results.partial*"))


def test_corrupt_tiff_fails_clearly_and_writes_nothing(small_experiment, tmp_path, capsys):
    exp = _copy_experiment(small_experiment, tmp_path / "exp")
    man = pd.read_csv(exp / "manifest.csv")
    victim = exp / man.path[2]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])  # truncated copy
    (exp / man.path[3]).write_bytes(b"\x00" * 1000)  # garbage
    out = tmp_path / "results"
    code = main(["analyze", str(exp), "--out", str(out), "--config", str(exp / "config.yaml")])
    err = capsys.readouterr().err
    assert code != 0
    assert victim.name in err and (exp / man.path[3]).name in err
    assert "2 of" in err  # every bad file is listed, not just the first
    assert not out.exists()


def test_wrong_channel_mapping_and_missing_pixel_size(small_experiment, tmp_path):
    with pytest.raises(LungtrackInputError, match="no channel named 'tdTomato'"):
        analyze(small_experiment, config={"channels": {"msc": "tdTomato", "macrophage": "CD68", "nuclei": "DAPI"}})
    # An image without pixel size: an error naming it, unless the manifest gives it.
    exp = tmp_path / "nopx"
    exp.mkdir()
    src = read_image(small_experiment / pd.read_csv(small_experiment / "manifest.csv").path[0])
    tifffile.imwrite(exp / "a.tif", np.asarray(src.data[0, :, 0]), metadata=None, photometric="minisblack")
    pd.DataFrame([{"path": "a.tif", "sample_id": "a", "animal": "m1", "group": "G", "time_h": 1, "section": 1}]
                 ).to_csv(exp / "manifest.csv", index=False)
    cfg = {"persistence": {"bootstrap": 0}, "run": {"axes": "CYX"},
           "channels": {"nuclei": 0, "msc": 1, "macrophage": 2}}
    with pytest.raises(LungtrackInputError, match=r"a\.tif.*pixel_size_um"):
        analyze(exp, config=cfg)
    man = pd.read_csv(exp / "manifest.csv").assign(pixel_size_um=1.0)
    man.to_csv(exp / "manifest.csv", index=False)
    res = analyze(exp, config=cfg)
    assert res.samples.n_msc[0] > 0


def test_existing_results_folder_is_not_overwritten(small_experiment, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        analyze(small_experiment, config=small_experiment / "config.yaml", out=out)
    assert (out / "keep.txt").read_text() == "mine"


def test_config_pixel_size_only_fills_gaps(small_experiment):
    from lungtrack.config import Config
    from lungtrack.experiment import load_experiment
    from lungtrack.pipeline import validate_inputs

    cfg = Config.from_dict({"channels": {"msc": "GFP", "macrophage": "CD68", "nuclei": "DAPI"},
                            "run": {"pixel_size_um": 2.0}})
    rec = validate_inputs(load_experiment(small_experiment), cfg)
    assert all(r["spacing_um"] == [1.0, 1.0, 1.0] for r in rec)  # the files say 1.0 um


def test_sigterm_leaves_no_partial_results(small_experiment, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "lungtrack.cli", "analyze", str(small_experiment), "--out",
                             str(out), "--config", str(small_experiment / "config.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Wait until the run has started writing into its staging folder, then stop it like a batch system.
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".r.partial-*")) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not list(tmp_path.glob(".r.partial-*"))
    assert not out.exists()
