"""report.html: self-contained, every image's QC thumbnail, sortable tables, warnings, methods."""
from __future__ import annotations

import base64
import html
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
    text = path.read_text()
    assert text.count("<figure><img alt=") == 24  # one QC thumbnail per image
    assert text.count("<figure id='fig-") == len(list((folder / "figures").glob("*.png"))) == 12


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


def test_report_shows_every_figure_with_its_caption_at_print_size_and_every_table(demo_run):
    from lungtrack.figures import PNG_DPI
    from lungtrack.report import _CAPTIONS, FIGURE_ORDER

    out = demo_run["out"]
    text = (out / "report.html").read_text()
    figs = re.findall(r"<figure id='fig-([^']+)' style='width:(\d+)px'><img alt='[^']+' "
                      r"src='data:image/png;base64,([^']+)'><figcaption class='note'>", text)
    stems = [f[0] for f in figs]
    assert set(stems) == {p.stem for p in (out / "figures").glob("*.png")}
    assert stems == sorted(stems, key=FIGURE_ORDER.index)  # the story's order, persistence first
    for stem, width, b64 in figs:
        png = imread(io.BytesIO(base64.b64decode(b64)))
        assert int(width) == round(png.shape[1] / PNG_DPI * 115)  # print width x 115 CSS px per inch
        assert f"<b>{stem}</b>: {html.escape(_CAPTIONS[stem])}" in text  # a written caption for each figure
    # every table of the folder, with its columns as sortable headers
    for name in ("samples", "persistence", "persistence_fit", "persistence_compare", "persistence_tests",
                 "persistence_residuals", "recruitment", "coloc", "interactions", "objects"):
        df = pd.read_parquet(out / "objects.parquet") if name == "objects" else pd.read_csv(out / f"{name}.csv")
        head = "<thead><tr>" + "".join(f"<th>{c}</th>" for c in df.columns) + "</tr></thead>"
        assert head in text, name
    assert "MOVER" in text and "bootstrap CI" not in text  # the comparison note says what was computed


def test_run_summary_states_design_counts_and_half_lives(demo_run):
    out = demo_run["out"]
    text = (out / "report.html").read_text()
    s = pd.read_csv(out / "samples.csv")
    fit = pd.read_csv(out / "persistence_fit.csv").query("model == 'exponential'")
    assert f"<dd>{int(s.n_msc.sum())} MSCs, {int(s.n_macrophage.sum())} macrophages</dd>" in text
    assert f"{s.animal.nunique()} animals" in text and "time points 2, 8, 24, 48 h" in text
    for r in fit.itertuples():
        assert f"{r.group}: {r.half_life_h:.3g} h [{r.ci_low_h:.3g}, {r.ci_high_h:.3g}]" in text
    assert all(f"id='{a}'" in text for a in ("warnings", "figures", "persistence", "qc", "methods", "files"))
