"""report.html: self-contained, every image's QC thumbnail, sortable tables, warnings, methods."""
from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pandas as pd
from matplotlib.image import imread

from lungtrack.pipeline import Results
from lungtrack.report import collect_warnings, report_from_folder


def test_demo_report_is_self_contained_with_one_thumbnail_per_image(demo_run):
    out = demo_run["out"]
    text = (out / "report.html").read_text()
    samples = pd.read_csv(out / "samples.csv")
    assert "src='http" not in text and 'src="http' not in text  # nothing fetched from elsewhere
    thumbs = re.findall(r"<figure><img alt='([^']+)' src='data:image/png;base64,([^']+)'><figcaption>", text)
    by_id = dict(thumbs)
    assert set(samples.sample_id) <= set(by_id)
    # each thumbnail is a real PNG about 170 px wide, with outlines painted in the MSC colour
    png = imread(io.BytesIO(base64.b64decode(by_id["BM_2h_m1_s1"])))
    assert 100 <= png.shape[1] <= 200  # 384 px subsampled by 3
    yellow = np.all(np.abs(png[..., :3] - np.array([0xF0, 0xE4, 0x42]) / 255) < 0.02, axis=-1)
    assert yellow.sum() > 50  # MSC outlines (28 MSCs in this image)
    png48 = imread(io.BytesIO(base64.b64decode(by_id["BM_48h_m1_s1"])))
    yellow48 = np.all(np.abs(png48[..., :3] - np.array([0xF0, 0xE4, 0x42]) / 255) < 0.02, axis=-1)
    assert yellow48.sum() == 0  # no MSC found at 48 h: no MSC outline
    assert text.count("<table class='sortable'>") >= 4 and "addEventListener('click'" in text
    assert "Methods (generated from this run)" in text and "Costes" in text
    assert "persistence.png" in text and "data:image/png;base64" in text


def test_report_is_rebuilt_from_the_folder_alone(demo_run, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(demo_run["out"], folder)
    (folder / "report.html").unlink()
    path = report_from_folder(folder)
    assert path.exists()
    assert path.read_text().count("<figure><img alt=") >= 24 + 1


def test_warnings_name_failed_images_empty_tissue_and_unfitted_groups():
    samples = pd.DataFrame({"sample_id": ["a", "b"], "tissue_area_mm2": [0.04, 0.0], "n_msc": [3, 0],
                            "n_macrophage": [5, 0]})
    fit = pd.DataFrame({"group": ["G", "H", "H"], "model": ["exponential", "exponential", "two_phase"],
                        "half_life_h": [8.0, np.nan, np.nan]})
    coloc = pd.DataFrame({"scope": ["image", "tissue", "object"],
                          "costes_warnings": ["intercept_far_from_zero", np.nan, "few_pixels_above_both"]})
    failures = pd.DataFrame({"sample_id": ["c"], "path": ["c.tif"], "stage": ["input"], "error": ["x"],
                             "hint": ["y"]})
    res = Results(samples=samples, objects=pd.DataFrame(), interactions=pd.DataFrame(), persistence=pd.DataFrame(),
                  persistence_fit=fit, coloc=coloc, failures=failures)
    w = collect_warnings(res)
    text = " | ".join(t for _, t in w)
    assert w[0][0] == "bad" and "1 image(s) could not be analysed" in text
    assert "no tissue detected" in text and ": b." in text
    assert "group(s) H" in text and "G" not in text.split("group(s)")[1].split("(")[0]
    assert "in 1 of 2 image/tissue" in text and "intercept far from zero ×1" in text


def test_report_states_reused_and_failed_counts(demo_run, tmp_path):
    run = json.loads((demo_run["out"] / "run.json").read_text())
    assert run["n_analysed"] == 24 and run["results_folder"] == str(demo_run["out"])
