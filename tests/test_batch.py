"""Batch runs that never lose work: failures.csv, resume, kill -9, lost workers, determinism, bad input.

Each row of the bad-input table in docs/reliability.md has a test here (named in the table).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lungtrack.batch import FAILURE_COLUMNS, verify
from lungtrack.cli import main
from lungtrack.config import Config, ConfigError
from lungtrack.io import LungtrackInputError, read_image, write_image
from lungtrack.pipeline import analyze

TABLES = ["samples.csv", "objects.csv", "interactions.csv", "coloc.csv", "persistence.csv",
          "persistence_fit.csv"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """4 simulated images (one group, 2 and 8 h, two animals), 160 px: seconds per run."""
    from lungtrack.synthetic import simulate_experiment

    out = tmp_path_factory.mktemp("tiny") / "exp"
    simulate_experiment(out, groups={"G": 12.0}, time_h=(2.0, 8.0), n_animals=2, shape=(160, 160), seed=3)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg.setdefault("persistence", {})["bootstrap"] = 50
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    return out


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory) -> Path:
    """An uninterrupted run of `tiny`: the tables every other run must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("ref") / "results"
    assert main(["analyze", str(tiny), "--out", str(out), "--config", str(tiny / "config.yaml")]) == 0
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _same_tables(a: Path, b: Path, names=TABLES):
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    pd.testing.assert_frame_equal(pd.read_parquet(a / "objects.parquet"), pd.read_parquet(b / "objects.parquet"))


def _analyze_cli(exp, out, *extra):
    return main(["analyze", str(exp), "--out", str(out), "--config", str(exp / "config.yaml"), *extra])


# --------------------------------------------------------------------------- per-sample isolation + resume

def test_bad_files_are_recorded_the_rest_analysed_then_resume_completes(tiny, reference, tmp_path, capsys):
    exp = _copy(tiny, tmp_path / "exp")
    man = pd.read_csv(exp / "manifest.csv")
    truncated, garbage = exp / man.path[1], exp / man.path[2]
    good_bytes = {p: p.read_bytes() for p in (truncated, garbage)}
    truncated.write_bytes(good_bytes[truncated][: len(good_bytes[truncated]) // 3])
    garbage.write_bytes(b"\x00" * 1000)  # not a TIFF, named .tif
    out = tmp_path / "results"
    assert _analyze_cli(exp, out) == 3  # finished, with failures
    printed = capsys.readouterr().out
    assert "FAILED: 2 image(s)" in printed and truncated.name in printed
    fail = pd.read_csv(out / "failures.csv")
    assert list(fail.columns) == FAILURE_COLUMNS
    assert fail.sample_id.tolist() == [man.sample_id[1], man.sample_id[2]]
    assert (fail.stage == "input").all()
    assert truncated.name in fail.error[0] and garbage.name in fail.error[1]
    assert fail.hint.str.contains("--resume").all()
    samples = pd.read_csv(out / "samples.csv")
    assert samples.sample_id.tolist() == [man.sample_id[0], man.sample_id[3]]
    run = json.loads((out / "run.json").read_text())
    assert (run["n_analysed"], run["n_failed"]) == (2, 2)
    # The user fixes the files and resumes: only the two failed images are analysed.
    for p, data in good_bytes.items():
        p.write_bytes(data)
    assert _analyze_cli(exp, out, "--resume") == 0
    assert "Resumed: 2 images reused" in capsys.readouterr().out
    assert pd.read_csv(out / "failures.csv").empty
    _same_tables(out, reference)


def test_missing_file_named_in_failures(tiny, tmp_path):
    exp = _copy(tiny, tmp_path / "exp")
    man = pd.read_csv(exp / "manifest.csv")
    man.loc[1, "path"] = "images/not_there.ome.tif"
    man.to_csv(exp / "manifest.csv", index=False)
    res = analyze(exp, config=exp / "config.yaml", out=tmp_path / "r")
    f = res.failures.set_index("sample_id").loc[man.sample_id[1]]
    assert "not_there.ome.tif" in f.error and "not found" in f.error and f.stage == "input"
    assert len(res.samples) == 3


def test_strict_stops_at_the_first_failure(tiny, tmp_path):
    exp = _copy(tiny, tmp_path / "exp")
    victim = exp / pd.read_csv(exp / "manifest.csv").path[0]
    victim.write_bytes(b"II*\x00garbage")
    with pytest.raises(LungtrackInputError, match=victim.name):
        analyze(exp, config=exp / "config.yaml", out=tmp_path / "r", strict=True)
    assert not (tmp_path / "r" / "samples.csv").exists()
    assert not list((tmp_path / "r" / "samples").iterdir())  # stopped before any image was analysed
    assert json.loads((tmp_path / "r" / ".lungtrack" / "state.json").read_text())["status"] == "stopped_strict"
    fail = pd.read_csv(tmp_path / "r" / "failures.csv")
    assert fail.path.tolist() == [str(victim)] and fail.hint.str.contains("--resume").all()
    assert _analyze_cli(exp, tmp_path / "r", "--resume", "--strict") == 2  # the CLI: error, exit 2


def test_every_image_failing_is_an_error_with_the_list(tiny, tmp_path):
    cfg = {"channels": {"msc": "tdTomato", "macrophage": "CD68", "nuclei": "DAPI"}}
    with pytest.raises(LungtrackInputError, match="(?s)no image could be analysed.*no channel named 'tdTomato'"):
        analyze(tiny, config=cfg, out=tmp_path / "r2")
    fail = pd.read_csv(tmp_path / "r2" / "failures.csv")
    assert len(fail) == 4 and fail.error.str.contains("tdTomato").all()
    assert not (tmp_path / "r2" / "samples.csv").exists()


def test_existing_runs_need_resume_or_overwrite_and_foreign_folders_are_never_touched(tiny, reference, tmp_path):
    out = tmp_path / "r"
    shutil.copytree(reference, out)
    with pytest.raises(FileExistsError, match="already holds a lungtrack run.*the same config.*--resume"):
        analyze(tiny, config=tiny / "config.yaml", out=out)
    res = analyze(tiny, config=tiny / "config.yaml", out=out, resume=True)
    assert res.run["n_reused"] == 4  # nothing recomputed
    _same_tables(out, reference)
    cfg = yaml.safe_load((tiny / "config.yaml").read_text())
    cfg.setdefault("spatial", {})["radii_um"] = [30.0]
    with pytest.raises(FileExistsError, match="a different config"):
        analyze(tiny, config=cfg, out=out)
    res = analyze(tiny, config=cfg, out=out, resume=True)
    assert res.run["n_reused"] == 0 and "n_macrophage_within_30um" in pd.read_csv(out / "interactions.csv")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    for kw in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(FileExistsError, match="not a lungtrack results folder"):
            analyze(tiny, config=tiny / "config.yaml", out=foreign, **kw)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_changed_input_is_recomputed_on_resume_and_verify_sees_it(tiny, tmp_path, capsys):
    exp = _copy(tiny, tmp_path / "exp")
    out = tmp_path / "r"
    assert _analyze_cli(exp, out) == 0
    assert main(["verify", str(out)]) == 0
    assert "verified" in capsys.readouterr().out
    # An edited output table and a replaced input image are both reported.
    (out / "samples.csv").write_text((out / "samples.csv").read_text().replace("G_2h", "G_3h", 1))
    man = pd.read_csv(exp / "manifest.csv")
    img = read_image(exp / man.path[0])
    arr = np.asarray(img.data[0, :, 0])
    write_image(exp / man.path[0], arr[:, ::-1].copy(), axes="CYX", spacing_um=img.spacing_um,
                channel_names=img.channel_names)
    assert main(["verify", str(out)]) == 1
    text = capsys.readouterr().out
    assert "MISMATCH output samples.csv: modified" in text and "MISMATCH input" in text and "sha256 changed" in text
    res = analyze(exp, config=exp / "config.yaml", out=out, resume=True)
    assert res.run["n_reused"] == 3  # only the changed image is analysed again
    assert verify(out)["ok"].all()
    # The image then breaks: its old results and label images go, the other three stay in the tables.
    sid = man.sample_id[0]
    assert len(list((out / "labels").glob(f"{sid}_*.tif"))) >= 3
    (exp / man.path[0]).write_bytes(b"not a tiff")
    assert _analyze_cli(exp, out, "--resume") == 3
    assert not (out / "samples" / sid).exists() and not list((out / "labels").glob(f"{sid}_*.tif"))
    assert pd.read_csv(out / "samples.csv").sample_id.tolist() == man.sample_id[1:].tolist()
    assert pd.read_csv(out / "failures.csv").sample_id.tolist() == [sid]
    checks = verify(out)  # the tables no longer depend on the broken image: it is not among the inputs
    assert checks["ok"].all() and (checks["kind"] == "input").sum() == 3 and sid not in set(checks["name"])


# --------------------------------------------------------------------------- faults

def _wait_for(pred, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _n_done(out: Path) -> int:
    return len(list((out / "samples").glob("*/done.json"))) if (out / "samples").exists() else 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_identical_tables(tiny, reference, tmp_path, sig):
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "lungtrack.cli", "analyze", str(tiny), "--out", str(out), "--config",
           str(tiny / "config.yaml"), "--no-dask"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert _wait_for(lambda: _n_done(out) >= 1 or proc.poll() is not None)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    n_done = _n_done(out)
    assert 1 <= n_done < 4
    # Nothing half-written: no summary tables, every sample folder complete, state says running.
    assert not (out / "samples.csv").exists() and not (out / "run.json").exists()
    for d in (out / "samples").iterdir():
        if not d.name.startswith("."):
            assert (d / "done.json").exists() and (d / "objects.parquet").exists()
    assert json.loads((out / ".lungtrack" / "state.json").read_text())["status"] == "running"
    if sig == signal.SIGTERM:  # a clean stop also removes what the task in flight had begun
        assert not list((out / "samples").glob(".*.tmp-*"))
    res = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"Resumed: {n_done} images reused" in res.stdout
    assert not list((out / "samples").glob(".*.tmp-*"))
    _same_tables(out, reference)


def test_lost_distributed_worker_gives_complete_identical_results(tiny, reference, tmp_path):
    from distributed import Client, LocalCluster

    out = tmp_path / "r"
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, processes=True) as cluster, \
            Client(cluster) as client:
        pids = client.run(os.getpid)
        result = {}
        t = threading.Thread(target=lambda: result.setdefault(
            "res", analyze(tiny, config=tiny / "config.yaml", out=out, client=client)))
        t.start()
        # Kill a worker process while it runs a sample (its nanny starts a new one).
        busy = {}
        assert _wait_for(lambda: busy.update({w: k for w, k in client.processing().items() if k}) or busy)
        victim = next(iter(busy))
        os.kill(pids[victim], signal.SIGKILL)
        assert _wait_for(lambda: victim not in client.scheduler_info()["workers"], timeout=60)
        t.join(timeout=300)
    assert "res" in result
    assert result["res"].failures.empty and result["res"].run["n_analysed"] == 4
    _same_tables(out, reference)


@pytest.mark.parametrize("limit_bytes", [3_000, 30_000])
def test_disk_full_is_a_clear_failure_and_resume_recovers(tiny, reference, tmp_path, limit_bytes):
    # A file-size limit (RLIMIT_FSIZE) makes larger writes fail like a full disk, without root:
    # 3 kB stops the per-image tables, 30 kB only the report at the end.
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "lungtrack.cli", "analyze", str(tiny), "--out", str(out), "--config",
           str(tiny / "config.yaml"), "--no-dask"]

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "disk" in res.stderr and "--resume" in res.stderr
    if limit_bytes == 3_000:
        assert "no image could be analysed" in res.stderr and "File too large" in res.stderr
        fail = pd.read_csv(out / "failures.csv")
        assert len(fail) == 4 and (fail.stage == "write").all() and fail.hint.str.contains("disk").all()
        assert fail.error.str.contains(f"writing this image's results into {out}", regex=False).all()
        assert _n_done(out) == 0
    else:
        assert "could not write the summary tables" in res.stderr and _n_done(out) == 4
    assert not (out / "run.json").exists()
    res = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    _same_tables(out, reference)


# --------------------------------------------------------------------------- determinism

def test_byte_identical_tables_on_every_scheduler(tiny, reference, tmp_path):
    from distributed import Client, LocalCluster

    analyze(tiny, config=tiny / "config.yaml", out=tmp_path / "loop", use_dask=False)
    analyze(tiny, config=tiny / "config.yaml", out=tmp_path / "sync", scheduler="synchronous")
    _same_tables(tmp_path / "loop", reference)
    _same_tables(tmp_path / "sync", reference)
    for n in (1, 2):
        with LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None, processes=True) as c, \
                Client(c) as client:
            res = analyze(tiny, config=tiny / "config.yaml", out=tmp_path / f"dist{n}", client=client)
        assert f"{n} workers" in res.run["scheduler"]
        _same_tables(tmp_path / f"dist{n}", reference)
    run = json.loads((reference / "run.json").read_text())
    for key in ("config", "config_hash", "versions", "inputs", "stages", "host", "scheduler", "outputs_sha256"):
        assert key in run
    assert len(run["inputs"][0]["sha256"]) == 64
    assert set(run["stages"]) == {"validate_s", "per_image_s", "summary_s", "write_s"}
    assert sorted(run["analyse_s_per_sample"]) == sorted(pd.read_csv(reference / "samples.csv").sample_id)
    assert all(v > 0 for v in run["analyse_s_per_sample"].values())


def test_byte_identical_tables_across_chunkings(tiny, reference, tmp_path):
    # Chunk-by-chunk segmentation (large images) with three chunk sizes, one of them the whole image.
    for px in (48, 112, 160):
        assert _analyze_cli(tiny, tmp_path / f"c{px}", "--chunk-all", "--chunk-size", str(px)) == 0
    _same_tables(tmp_path / "c48", tmp_path / "c112")
    _same_tables(tmp_path / "c48", tmp_path / "c160")
    # ... and the same cells as the in-memory path (which adds fragmented MSCs and colocalization).
    s, ref = pd.read_csv(tmp_path / "c48" / "samples.csv"), pd.read_csv(reference / "samples.csv")
    for col in ("sample_id", "n_msc", "n_macrophage", "n_nuclei", "tissue_area_mm2"):
        assert s[col].tolist() == ref[col].tolist(), col
    key = ["sample_id", "role", "label"]
    a = pd.read_parquet(tmp_path / "c48" / "objects.parquet").sort_values(key, ignore_index=True)
    b = pd.read_parquet(reference / "objects.parquet")
    b = b[b["intact"].fillna(True).astype(bool)][a.columns].sort_values(key, ignore_index=True)
    assert len(a) == len(b) > 100
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=False)


# --------------------------------------------------------------------------- the bad-input table

def _one_image_experiment(tiny, tmp_path, data, channel_names=("DAPI", "GFP", "CD68"), spacing=(1.0, 1.0, 1.0),
                          name="x"):
    exp = _copy(tiny, tmp_path / "exp")
    path = exp / "images" / f"{name}.ome.tif"
    write_image(path, data, axes="CYX", spacing_um=spacing, channel_names=list(channel_names))
    man = pd.read_csv(exp / "manifest.csv")
    row = dict(path=f"images/{name}.ome.tif", sample_id=name, animal="G-2h-m9", group="G", time_h=2.0, section=1)
    pd.concat([man, pd.DataFrame([row])]).to_csv(exp / "manifest.csv", index=False)
    return exp


def _first_image(tiny):
    img = read_image(tiny / pd.read_csv(tiny / "manifest.csv").path[0])
    return np.asarray(img.data[0, :, 0])


@pytest.mark.parametrize("case", ["one_channel", "channel_name", "nan"])
def test_bad_image_rows_fail_alone_with_a_clear_message(tiny, tmp_path, case):
    arr = _first_image(tiny)
    if case == "one_channel":
        exp = _one_image_experiment(tiny, tmp_path, arr[1:2], channel_names=["GFP"])
        expect = "the image has channels ['GFP']"
    elif case == "channel_name":
        exp = _one_image_experiment(tiny, tmp_path, arr, channel_names=["DAPI", "EGFP", "CD68"])
        expect = "no channel named 'GFP'"
    else:
        f = arr.astype(np.float32)
        f[1, 10, 10] = np.nan
        exp = _one_image_experiment(tiny, tmp_path, f)
        expect = "1 pixel(s) are NaN"
    res = analyze(exp, config=exp / "config.yaml", out=tmp_path / "r")
    assert res.failures.sample_id.tolist() == ["x"]
    assert expect in res.failures.error[0] and "x.ome.tif" in res.failures.error[0]
    assert len(res.samples) == 4


def test_missing_and_invalid_pixel_size(tiny, tmp_path):
    arr = _first_image(tiny)
    exp = tmp_path / "nopx"
    exp.mkdir()
    import tifffile

    tifffile.imwrite(exp / "a.tif", arr, metadata=None, photometric="minisblack")
    man = pd.DataFrame([{"path": "a.tif", "sample_id": "a", "animal": "m1", "group": "G", "time_h": 1, "section": 1}])
    man.to_csv(exp / "manifest.csv", index=False)
    cfg = {"persistence": {"bootstrap": 0}, "run": {"axes": "CYX"}, "channels": {"nuclei": 0, "msc": 1, "macrophage": 2}}
    with pytest.raises(LungtrackInputError, match=r"a\.tif.*pixel_size_um"):
        analyze(exp, config=cfg, out=tmp_path / "r1")
    for bad in (0, -0.5, "abc"):
        man.assign(pixel_size_um=bad).to_csv(exp / "manifest.csv", index=False)
        with pytest.raises(LungtrackInputError, match="pixel_size_um must be a positive number"):
            analyze(exp, config=cfg, out=tmp_path / "r2")
        assert not (tmp_path / "r2").exists()
    with pytest.raises(ValueError, match="greater than 0"):
        Config.from_dict({"run": {"pixel_size_um": -1}})
    man.assign(pixel_size_um=1.0).to_csv(exp / "manifest.csv", index=False)
    assert analyze(exp, config=cfg, out=tmp_path / "r3").samples.n_msc[0] > 0


def test_negative_values_zero_image_and_image_without_cells_are_analysed(tiny, tmp_path):
    arr = _first_image(tiny)
    exp = _one_image_experiment(tiny, tmp_path, arr.astype(np.float32) - 500.0, name="shifted")
    man = pd.read_csv(exp / "manifest.csv")
    blank = arr.copy()
    blank[1] = np.median(arr[1])
    for name, data in (("zero", np.zeros_like(arr)), ("empty_msc", blank)):
        write_image(exp / "images" / f"{name}.ome.tif", data, axes="CYX", spacing_um=(1.0, 1.0, 1.0),
                    channel_names=["DAPI", "GFP", "CD68"])
        man = pd.concat([man, pd.DataFrame([dict(path=f"images/{name}.ome.tif", sample_id=name, animal="G-2h-m9",
                                                 group="G", time_h=2.0, section=1)])])
    man.to_csv(exp / "manifest.csv", index=False)
    res = analyze(exp, config=exp / "config.yaml", out=tmp_path / "r")
    assert res.failures.empty
    s = res.samples.set_index("sample_id")
    first = man.sample_id.iloc[0]
    # Background subtraction makes segmentation blind to a constant offset, negative values included.
    assert s.loc["shifted", "n_msc"] == s.loc[first, "n_msc"] > 0
    assert s.loc["shifted", "n_macrophage"] == s.loc[first, "n_macrophage"]
    z = s.loc["zero"]
    assert z.tissue_area_mm2 == 0 and z.n_msc == 0 and z.n_macrophage == 0 and np.isnan(z.msc_per_mm2)
    # No MSC at all (the MSC channel blank): zero MSCs, the macrophages still counted, every column there.
    e = s.loc["empty_msc"]
    # (the macrophage count moves by a cell or two: the tissue mask uses every channel's autofluorescence)
    assert e.n_msc == 0 and e.msc_per_mm2 == 0 and abs(e.n_macrophage - s.loc[first, "n_macrophage"]) <= 2
    assert np.isnan(e.median_msc_to_macrophage_um)
    assert list(pd.read_csv(tmp_path / "r" / "samples.csv").columns) == list(res.samples.columns)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.drop(columns=["animal"]), r"lacks column\(s\) \['animal'\].*Add the column"),
    (lambda m: m.assign(sample_id="same"), r"must be unique; repeated: \['same'.*its own sample_id"),
    (lambda m: m.assign(time_h=["2h"] + m.time_h.astype(str).tolist()[1:]),
     r"time_h must be a number.*not for \['G_2h_m1_s1'\].*plain numbers"),
    (lambda m: m.assign(path=["../elsewhere.tif"] + m.path.tolist()[1:]),
     r"(?s)outside the experiment folder.*elsewhere\.tif.*Move the images"),
    (lambda m: m.assign(pixel_size_um=[0.0] + [1.0] * (len(m) - 1)),
     r"pixel_size_um must be a positive number.*not for \['G_2h_m1_s1'\].*leave it empty"),
])
def test_bad_manifest_is_refused_before_anything_is_written(tiny, tmp_path, edit, message):
    exp = _copy(tiny, tmp_path / "exp")
    edit(pd.read_csv(exp / "manifest.csv")).to_csv(exp / "manifest.csv", index=False)
    out = tmp_path / "r"
    with pytest.raises(LungtrackInputError, match=message) as err:
        analyze(exp / "manifest.csv", config=exp / "config.yaml", out=out)
    assert str(err.value).startswith(str(exp / "manifest.csv"))
    assert not out.exists()


def test_paths_outside_the_folder_only_when_allowed(tiny, tmp_path):
    exp = _copy(tiny, tmp_path / "exp")
    elsewhere = _copy(tiny / "images", tmp_path / "elsewhere")
    man = pd.read_csv(exp / "manifest.csv")
    man["path"] = [str(elsewhere / Path(p).name) for p in man.path]  # absolute paths
    man.to_csv(exp / "manifest.csv", index=False)
    with pytest.raises(LungtrackInputError, match="4 path.*outside the experiment folder"):
        analyze(exp, config=exp / "config.yaml", out=tmp_path / "r")
    res = analyze(exp, config=exp / "config.yaml", out=tmp_path / "r", allow_outside_paths=True)
    assert len(res.samples) == 4


def test_unwritable_output_folder(tiny, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(LungtrackInputError, match=r"a_file/results: cannot create the results folder.*writable"):
        analyze(tiny, config=tiny / "config.yaml", out=blocker / "results")
    # No write permission: a read-only folder (root ignores mode bits, so it gets the read-only /sys).
    if os.geteuid() == 0:
        out = Path("/sys/lungtrack-test-results")
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        out = ro / "results"
    assert _analyze_cli(tiny, out) == 2
    err = capsys.readouterr().err
    assert f"{out}: cannot create the results folder (" in err and "choose a writable --out" in err
    assert "Traceback" not in err and not out.exists()


def test_config_unknown_key_and_unsafe_yaml(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("segment:\n  msc:\n    min_diameter: 10\n")
    assert main(["config", "--check", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}: invalid config" in err and "segment.msc.min_diameter: Extra inputs are not permitted" in err
    assert "lungtrack config --default" in err
    assert main(["analyze", str(tmp_path), "--out", str(tmp_path / "r"), "--config", str(p)]) == 2
    assert "segment.msc.min_diameter" in capsys.readouterr().err and not (tmp_path / "r").exists()
    p.write_text("channels: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="tags lungtrack does not accept"):
        Config.from_yaml(p)
    assert not Path("pwned").exists()
