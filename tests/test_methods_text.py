"""The methods paragraph states this run's values (not the defaults) and every parameter."""
from __future__ import annotations

import json
import re

from lungtrack.config import Config
from lungtrack.methods_text import flatten_config, methods_paragraph


def _run(cfg: Config) -> dict:
    return {"config": cfg.to_dict(), "versions": {"lungtrack": "9.9.9", "python": "3.11.7", "numpy": "2.4.6",
                                                    "scikit-image": "0.26.0"}}


def test_every_parameter_value_is_stated():
    cfg = Config.from_dict({"segment": {"msc": {"min_diameter_um": 13.5}}, "spatial": {"radii_um": [20.0, 70.0]},
                            "persistence": {"bootstrap": 321}})
    text = methods_paragraph(_run(cfg))
    assert "lungtrack 9.9.9" in text and "numpy 2.4.6" in text
    assert "13.5-45 µm (MSCs)" in text  # the run's value, in the prose
    assert "within 20, 70 µm" in text
    # half-lives are compared analytically (MOVER), not by resampling: the text must not claim a bootstrap
    assert "MOVER" in text and "bootstrapping" not in text
    for key, value in flatten_config(cfg.to_dict()):
        if key.startswith("run.filename"):
            continue
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) \
            if isinstance(value, list) else (f"{value:g}" if isinstance(value, float) else str(value))
        assert f"{key} = {shown}" in text, key


def test_costes_test_and_references_follow_the_config():
    plain = methods_paragraph(_run(Config()))
    assert "randomisation test" not in plain
    with_test = methods_paragraph(_run(Config.from_dict({"coloc": {"costes_randomisations": 200}})))
    assert "Costes randomisation test with 200 randomisations" in with_test
    assert "[6] Costes SV et al. (2004)" in with_test
    assert "References:" not in methods_paragraph(_run(Config()), references=False)


def test_methods_from_a_real_run_json(demo_run):
    run = json.loads((demo_run["out"] / "run.json").read_text())
    text = methods_paragraph(run)
    assert f"lungtrack {run['versions']['lungtrack']}" in text
    assert "channels.msc = GFP" in text and "nuclei = DAPI" in text
    assert "pixel size 1 µm" in text  # the spacing the run used (run.json inputs)
    assert f"Images ({run['n_analysed']})" in text


def _numbers_and_references(text):
    body, refs = text.split("\n\nReferences: ")
    cited = [int(n) for group in re.findall(r"\[([0-9, ]+)\]", body) for n in group.split(",")]
    listed = [int(n) for n in re.findall(r"\[([0-9]+)\] ", "References: " + refs)]
    return body, cited, listed, refs


def test_references_are_numbered_in_reading_order_and_match_the_text():
    text = methods_paragraph(_run(Config()))
    body, cited, listed, refs = _numbers_and_references(text)
    first = list(dict.fromkeys(cited))
    assert first == list(range(1, len(first) + 1))  # first citations read 1, 2, 3...
    assert listed == first  # every number cited has its reference, and no reference is uncited
    # every statistical test named in the text carries its reference
    for test, ref in (("Mann-Whitney U", "Mann HB, Whitney DR (1947)"), ("Kruskal-Wallis", "Kruskal WH, Wallis WA"),
                      ("Holm correction", "Holm S (1979)"), ("Fieller's formula", "Fieller EC (1954)"),
                      ("(MOVER)", "Zou GY, Donner A (2008)"), ("AICc", "Burnham KP, Anderson DR"),
                      ("Costes thresholds", "Costes SV et al. (2004)"), ("superplots", "Lord SJ et al. (2020)"),
                      ("Monte Carlo test", "Besag J, Diggle PJ (1977)")):
        n = re.search(re.escape(test) + r"[^\[]{0,40}\[([0-9]+)", body)
        assert n, test
        assert re.search(rf"\[{n.group(1)}\] " + re.escape(ref), refs), (test, ref)


def test_methods_follow_threshold_correction_and_null_model_settings():
    cfg = Config.from_dict({"segment": {"msc": {"threshold": "triangle"}, "macrophage": {"threshold": 250.0}},
                            "persistence": {"correction": "bh"}, "spatial": {"null_simulations": 49}})
    text = methods_paragraph(_run(cfg))
    assert "the triangle method [2] (MSCs) and a fixed threshold of 250 (macrophages)" in text
    assert "Otsu N (1979)" not in text  # no step used Otsu: not cited
    assert "Benjamini-Hochberg correction" in text and "Benjamini Y, Hochberg Y (1995)" in text
    assert "compared with 49 random placements of the macrophages (whole shapes)" in text
    plain = methods_paragraph(_run(Config.from_dict({"persistence": {"correction": "none"}})))
    assert "with no correction" in plain and "Holm S" not in plain
