"""The methods paragraph states this run's values (not the defaults) and every parameter."""
from __future__ import annotations

import json

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
    assert "within 20, 70 µm" in text and "321 resamples" in text
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
