"""The config tree: defaults, YAML round trip, typos rejected."""
from __future__ import annotations

import contextlib
import io

import pydantic
import pytest

from lungtrack.cli import main
from lungtrack.config import Config, load_config


def test_yaml_round_trip_keeps_every_value():
    cfg = Config.from_dict({"channels": {"msc": "GFP", "macrophage": 2}, "spatial": {"radii_um": [10, 30.5]},
                            "segment": {"msc": {"min_diameter_um": 12}}})
    back = Config.from_yaml(cfg.to_yaml())
    assert back == cfg
    assert back.channels.msc == "GFP" and back.channels.macrophage == 2
    assert back.spatial.radii_um == [10.0, 30.5]
    assert back.segment.msc.min_diameter_um == 12.0
    # A partial role section keeps that role's own defaults for the other fields.
    assert back.segment.msc.smoothing_sigma_um == Config().segment.msc.smoothing_sigma_um == 1.5
    assert back.segment.msc.max_diameter_um == 45.0
    # Untouched sections keep their role-specific defaults.
    assert back.segment.macrophage.max_diameter_um == Config().segment.macrophage.max_diameter_um == 25.0


@pytest.mark.parametrize("bad", [{"chanels": {}}, {"segment": {"msc": {"min_diameter": 3}}},
                                 {"spatial": {"radii_um": "ten"}}, {"persistence": {"confidence": 1.5}}])
def test_typos_and_bad_values_are_rejected(bad):
    with pytest.raises(pydantic.ValidationError):
        Config.from_dict(bad)


def test_load_config_from_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("channels:\n  msc: tdTomato\n")
    assert load_config(p).channels.msc == "tdTomato"
    assert load_config(str(p)).channels.msc == "tdTomato"
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.yaml")


def test_cli_prints_default_config_that_parses_back():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["config", "--default"]) == 0
    assert Config.from_yaml(buf.getvalue()) == Config()


def test_cli_check_reports_invalid_config(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("segment:\n  msc:\n    min_diameter: 3\n")
    assert main(["config", "--check", str(p)]) == 2
    assert "invalid config" in capsys.readouterr().err
