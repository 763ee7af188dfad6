"""The persistence tables and figures a results folder gets (on the shipped sample experiment)."""
from __future__ import annotations

import pandas as pd
import pytest

from lungtrack.persistence import (
    COMPARE_COLUMNS,
    FIT_COLUMNS,
    RECRUITMENT_COLUMNS,
    TEST_COLUMNS,
)


def test_results_folder_has_the_persistence_tables_and_figures(demo_run):
    out = demo_run["out"]
    for f in ("persistence_compare.csv", "persistence_tests.csv", "persistence_residuals.csv", "recruitment.csv",
              "figures/persistence_log.png", "figures/superplot.svg", "figures/recruitment.pdf"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    fit = pd.read_csv(out / "persistence_fit.csv")
    assert list(fit.columns) == list(FIT_COLUMNS)
    exp_rows = fit[fit["model"] == "exponential"].set_index("group")
    # the simulated half-lives (BM 8 h, UC 16 h) lie inside the reported intervals
    for group, hl in (("BM", 8.0), ("UC", 16.0)):
        assert exp_rows.loc[group, "ci_low_h"] <= hl <= exp_rows.loc[group, "ci_high_h"]
    comp = pd.read_csv(out / "persistence_compare.csv")
    assert list(comp.columns) == list(COMPARE_COLUMNS)
    row = comp.iloc[0]
    assert (row["group_a"], row["group_b"]) == ("BM", "UC")
    assert row["difference_h"] == pytest.approx(exp_rows.loc["BM", "half_life_h"] - exp_rows.loc["UC", "half_life_h"])
    assert row["ci_low_h"] <= row["difference_h"] <= row["ci_high_h"] and row["p_value"] < 0.05
    tests = pd.read_csv(out / "persistence_tests.csv")
    assert list(tests.columns) == list(TEST_COLUMNS)
    assert set(tests["measure"]) == {"msc_per_mm2", "macrophage_per_mm2"} and (tests["correction"] == "holm").all()
    assert (tests["p_adjusted"] >= tests["p_value"]).all()
    rec = pd.read_csv(out / "recruitment.csv")
    assert list(rec.columns) == list(RECRUITMENT_COLUMNS)
    assert {"macrophage_per_mm2", "engulfment_index"} <= set(rec["measure"])
    assert (rec.loc[rec["measure"] == "macrophage_per_mm2", "n_animals"] == 3).all()
    html = (out / "report.html").read_text()
    assert "Half-lives compared between groups" in html and "superplot" in html
