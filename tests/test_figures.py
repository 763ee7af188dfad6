"""Tests of lungtrack.figures: content of the persistence figure and the files save_figure writes."""
from __future__ import annotations

import doctest
import math

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from lungtrack import figures
from lungtrack.figures import persistence_figure, save_figure
from lungtrack.persistence import animal_table, fit_decay, persistence_table

LN2 = math.log(2.0)
TIMES = [2.0, 6.0, 24.0, 48.0]


def tables():
    """Hand-made persistence, fit and animal tables; AT has no fit row."""
    hl = {"BM": 8.1, "UC": 20.0, "AT": 12.0}
    n0 = {"BM": 1000.0, "UC": 900.0, "AT": 500.0}
    pers, animals = [], []
    for g in ("BM", "UC", "AT"):
        for t in TIMES:
            m = n0[g] * 2 ** (-t / hl[g])
            pers.append({"group": g, "time_h": t, "n_animals": 3, "msc_per_mm2_mean": m, "msc_per_mm2_sem": 0.1 * m,
                         "fraction_remaining": 2 ** (-(t - 2) / hl[g]), "ci_low": np.nan, "ci_high": np.nan})
            for i, f in enumerate((0.9, 1.0, 1.1)):
                animals.append({"group": g, "time_h": t, "animal": f"{g}{t:g}m{i}", "msc_per_mm2": f * m,
                                "n_sections": 2})
    fit = pd.DataFrame({
        "group": ["BM", "BM", "UC", "UC"], "model": ["exponential", "log_linear"] * 2,
        "half_life_h": [8.1, 7.0, 20.0, 33.0], "ci_low_h": [6.9, 5.0, 17.26, 30.0],
        "ci_high_h": [9.4, 9.0, 23.84, 40.0], "n0_per_mm2": [1000.0, 1.0, 900.0, 1.0], "r2": [0.99, 0.9, 0.98, 0.9],
        "n_animals": 12, "n_timepoints": 4, "n_zero_excluded": 0,
    })
    return pd.DataFrame(pers), fit, pd.DataFrame(animals)


def fit_lines(ax):
    return {line.get_gid()[4:]: line for line in ax.get_lines() if (line.get_gid() or "").startswith("fit:")}


def test_one_fit_line_per_fitted_group_following_the_exponential_row():
    pers, fit, _ = tables()
    fig = persistence_figure(pers, fit)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    lines = fit_lines(ax)
    assert sorted(lines) == ["BM", "UC"]  # AT has no exponential row: no curve
    for group, row in fit[fit["model"] == "exponential"].set_index("group").iterrows():
        x, y = lines[group].get_data()
        assert x.min() == pytest.approx(2.0) and x.max() == pytest.approx(48.0)
        assert np.allclose(y, row["n0_per_mm2"] * np.exp(-LN2 / row["half_life_h"] * x), rtol=1e-12)


def test_legend_shows_half_lives_from_the_fit_table():
    pers, fit, _ = tables()
    ax = persistence_figure(pers, fit).axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["AT", "BM: t1/2 = 8.1 h [6.9, 9.4]", "UC: t1/2 = 20.0 h [17.3, 23.8]"]


def test_nan_half_life_and_missing_ci_in_legend():
    pers, fit, _ = tables()
    fit = fit.copy()
    fit.loc[(fit["group"] == "BM") & (fit["model"] == "exponential"), ["half_life_h", "n0_per_mm2"]] = np.nan
    fit.loc[(fit["group"] == "UC") & (fit["model"] == "exponential"), ["ci_low_h", "ci_high_h"]] = np.nan
    ax = persistence_figure(pers, fit).axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["AT", "BM: t1/2 n/a", "UC: t1/2 = 20.0 h"]
    assert sorted(fit_lines(ax)) == ["UC"]


def test_labels_and_scale():
    pers, fit, _ = tables()
    ax = persistence_figure(pers, fit).axes[0]
    assert ax.get_xlabel() == "Time after infusion (h)"
    assert ax.get_ylabel() == "MSCs per mm² of tissue"
    assert ax.get_yscale() == "linear"
    assert persistence_figure(pers, fit, log_scale=True).axes[0].get_yscale() == "log"


def test_means_with_sem_and_jittered_animals():
    pers, fit, animals = tables()
    ax = persistence_figure(pers, fit, animals).axes[0]
    span = max(TIMES) - min(TIMES)
    for group in ("AT", "BM", "UC"):
        (mean_line,) = [line for line in ax.get_lines() if line.get_gid() == f"mean:{group}"]
        x, y = mean_line.get_data()
        g = pers[pers["group"] == group]
        assert np.allclose(y, g["msc_per_mm2_mean"])
        assert np.allclose(x, g["time_h"], atol=0.02 * span)  # dodged by at most 1.2 % of the range per group
        (pts,) = [c for c in ax.collections if c.get_gid() == f"animals:{group}"]
        xy = pts.get_offsets()
        a = animals[animals["group"] == group]
        assert len(xy) == len(a) == 12
        assert np.allclose(xy[:, 1], a["msc_per_mm2"])
        assert np.all(np.abs(xy[:, 0] - a["time_h"].to_numpy()) <= 0.025 * span)
        assert np.any(xy[:, 0] != a["time_h"].to_numpy())


def test_log_scale_leaves_out_zero_animals():
    pers, fit, animals = tables()
    animals = animals.copy()
    animals.loc[animals["animal"] == "BM48m0", "msc_per_mm2"] = 0.0
    ax = persistence_figure(pers, fit, animals, log_scale=True).axes[0]
    (pts,) = [c for c in ax.collections if c.get_gid() == "animals:BM"]
    assert len(pts.get_offsets()) == 11


def test_figure_from_real_tables():
    rng = np.random.default_rng(0)
    rows = []
    for g, hl in (("BM", 8.0), ("UC", 20.0)):
        for t in TIMES:
            for i in range(4):
                n = rng.poisson(400 * 2 ** (-t / hl) * 2.0)
                rows.append({"sample_id": f"{g}{t}{i}", "animal": f"{g}{t}{i}", "group": g, "time_h": t, "section": 0,
                             "tissue_area_mm2": 2.0, "n_msc": n, "msc_per_mm2": n / 2.0})
    samples = pd.DataFrame(rows)
    pers, fit = persistence_table(samples, bootstrap=50), fit_decay(samples, bootstrap=50)
    ax = persistence_figure(pers, fit, animal_table(samples)).axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    for text, (_, row) in zip(texts, fit[fit["model"] == "exponential"].iterrows()):
        assert text == (f"{row['group']}: t1/2 = {row['half_life_h']:.1f} h "
                        f"[{row['ci_low_h']:.1f}, {row['ci_high_h']:.1f}]")


def test_no_pyplot_state_is_touched():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    pers, fit, animals = tables()
    persistence_figure(pers, fit, animals)
    assert plt.get_fignums() == before


def test_missing_column_is_named():
    pers, fit, _ = tables()
    with pytest.raises(ValueError, match="msc_per_mm2_sem"):
        persistence_figure(pers.drop(columns=["msc_per_mm2_sem"]), fit)


def test_save_figure_writes_png_svg_pdf(tmp_path):
    pers, fit, animals = tables()
    fig = persistence_figure(pers, fit, animals)
    paths = save_figure(fig, tmp_path / "figures" / "persistence.v1")
    assert [p.name for p in paths] == ["persistence.v1.png", "persistence.v1.svg", "persistence.v1.pdf"]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)
    w, h = fig.get_size_inches()
    img = mpimg.imread(paths[0])
    assert img.shape[:2] == (round(h * 300), round(w * 300))  # 300 dpi, as journals ask
    assert paths[1].read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert "<svg" in paths[1].read_text(encoding="utf-8")
    assert paths[2].read_bytes().startswith(b"%PDF")
    # no dates in SVG/PDF: saving again gives identical files
    again = save_figure(fig, tmp_path / "again" / "persistence.v1")
    assert again[1].read_bytes() == paths[1].read_bytes()
    assert again[2].read_bytes() == paths[2].read_bytes()


def test_docstring_examples():
    result = doctest.testmod(figures)
    assert result.attempted >= 1
    assert result.failed == 0
