"""Manifests and folder discovery."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lungtrack.config import Config
from lungtrack.experiment import load_experiment
from lungtrack.io import LungtrackInputError, write_image


def _img(path):
    write_image(path, np.zeros((2, 8, 8), np.uint16), axes="CYX", spacing_um=(1, 1, 1))


def test_manifest_paths_are_absolute_and_metadata_kept(tmp_path, monkeypatch):
    (tmp_path / "exp" / "images").mkdir(parents=True)
    _img(tmp_path / "exp" / "images" / "a.ome.tif")
    pd.DataFrame([{"path": "images/a.ome.tif", "sample_id": "a", "animal": "m1", "group": "BM", "time_h": "2.5",
                   "section": 1, "dose": 1e6, "anticoagulant": "heparin"}]).to_csv(tmp_path / "exp" / "manifest.csv",
                                                                                    index=False)
    monkeypatch.chdir(tmp_path)
    exp = load_experiment("exp")  # relative folder
    s = exp.samples[0]
    assert Path(s.path).is_absolute() and Path(s.path).exists()
    assert s.time_h == 2.5 and s.metadata == {"dose": 1e6, "anticoagulant": "heparin"}


def test_folder_discovery_relative_path_and_ome_names(tmp_path, monkeypatch):
    d = tmp_path / "sim" / "images"
    d.mkdir(parents=True)
    for name in ["BM_2h_m1_s1.ome.tif", "UC_24h_m2_s1.tif", "notes.txt"]:
        (_img(d / name) if name.endswith("tif") else (d / name).write_text("x"))
    monkeypatch.chdir(tmp_path)
    exp = load_experiment("sim/images", Config().run.filename_pattern)
    t = exp.table.sort_values("sample_id")
    assert list(t.sample_id) == ["BM_2h_m1_s1", "UC_24h_m2_s1"]
    assert list(t.time_h) == [2.0, 24.0] and list(t.group) == ["BM", "UC"]
    assert all(Path(p).exists() for p in t.path)


@pytest.mark.parametrize("bad,match", [
    ({"drop": "animal"}, "lacks column"),
    ({"time_h": "late"}, "time_h must be a number"),
    ({"dup": True}, "unique"),
])
def test_bad_manifests_are_explained(tmp_path, bad, match):
    rows = [{"path": "a.tif", "sample_id": "a", "animal": "m1", "group": "G", "time_h": 1, "section": 1}]
    if bad.get("dup"):
        rows = rows * 2
    df = pd.DataFrame(rows)
    if "drop" in bad:
        df = df.drop(columns=bad["drop"])
    if "time_h" in bad:
        df["time_h"] = bad["time_h"]
    df.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(LungtrackInputError, match=match):
        load_experiment(tmp_path / "manifest.csv")
