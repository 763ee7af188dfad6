"""Figures of the persistence analysis: what is drawn equals the tables it comes from."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import stats

from lungtrack.figures import (
    persistence_figure,
    recruitment_figure,
    save_figure,
    superplot,
)
from lungtrack.persistence import (
    animal_table,
    fit_decay,
    persistence_table,
    recruitment_table,
)


def samples():
    rng = np.random.default_rng(0)
    rows = []
    for g, hl in (("BM", 8.0), ("UC", 16.0)):
        for t in (2.0, 8.0, 24.0, 48.0):
            for a in range(3):
                f = rng.lognormal(0, 0.2)
                for s in range(2):
                    n = int(rng.poisson(600 * f * 2 ** (-t / hl)))
                    rows.append({"sample_id": f"{g}{t}{a}{s}", "animal": f"{g}-{t:g}-{a}", "group": g, "time_h": t,
                                 "section": s, "n_msc": n, "tissue_area_mm2": 1.0, "msc_per_mm2": float(n),
                                 "n_macrophage": 50 + int(t), "macrophage_per_mm2": 50.0 + t,
                                 "frac_msc_contacting_macrophage": 0.2 + t / 100})
    return pd.DataFrame(rows)


def test_ci_band_is_the_delta_method_interval_of_the_fit():
    s = samples()
    fit = fit_decay(s)
    fig = persistence_figure(persistence_table(s), fit, animal_table(s))
    ax = fig.axes[0]
    bands = {c.get_gid()[5:]: c for c in ax.collections if (c.get_gid() or "").startswith("band:")}
    assert sorted(bands) == ["BM", "UC"]
    r = fit[(fit["group"] == "UC") & (fit["model"] == "exponential")].iloc[0]
    verts = bands["UC"].get_paths()[0].vertices  # fill_between: lower edge, then upper edge reversed
    t = 24.0
    sd = math.sqrt(r["se_log_n0"] ** 2 + t ** 2 * r["se_k_per_h"] ** 2 - 2 * t * r["cov_log_n0_k"])
    mid = r["n0_per_mm2"] * math.exp(-r["k_per_h"] * t)
    q = stats.t.ppf(0.975, r["df"])
    lower_edge = verts[1:201]
    hi_edge = verts[202:402][::-1]
    assert np.interp(t, lower_edge[:, 0], lower_edge[:, 1]) == pytest.approx(mid * math.exp(-q * sd), rel=1e-3)
    assert np.interp(t, hi_edge[:, 0], hi_edge[:, 1]) == pytest.approx(mid * math.exp(q * sd), rel=1e-3)
    # the band widens away from the data's centre of mass on the log scale
    assert persistence_figure(persistence_table(s), fit, log_scale=True).axes[0].get_yscale() == "log"


def test_superplot_draws_every_section_and_every_animal():
    s = samples()
    fig = superplot(s)
    assert isinstance(fig, Figure) and [ax.get_title() for ax in fig.axes] == ["BM", "UC"]
    for ax, g in zip(fig.axes, ("BM", "UC")):
        sec = next(c for c in ax.collections if c.get_gid() == f"sections:{g}")
        ani = next(c for c in ax.collections if c.get_gid() == f"animals:{g}")
        assert len(sec.get_offsets()) == 24 and len(ani.get_offsets()) == 12
        a = animal_table(s[s["group"] == g])
        assert sorted(ani.get_offsets()[:, 1]) == pytest.approx(sorted(a["msc_per_mm2"]))
        # the two sections of an animal share its colour, and its large point has that colour too
        names = s.loc[s["group"] == g, "animal"].to_numpy()
        colours = [tuple(c[:3]) for c in sec.get_facecolors()]
        for name in set(names):
            assert len({c for c, n in zip(colours, names) if n == name}) == 1
    with pytest.raises(ValueError, match="dose"):
        superplot(s, by="dose")
    # two grouping factors: one panel per combination, labelled like persistence.csv
    s["dose"] = np.where(s["animal"].str[-1] == "0", "low", "high")
    fig = superplot(s, by=["group", "dose"])
    assert [ax.get_title() for ax in fig.axes] == ["BM / high", "BM / low", "UC / high", "UC / low"]
    ani = next(c for c in fig.axes[1].collections if c.get_gid() == "animals:BM / low")
    low = animal_table(s[(s["group"] == "BM") & (s["dose"] == "low")])
    assert sorted(ani.get_offsets()[:, 1]) == pytest.approx(sorted(low["msc_per_mm2"]))


def test_recruitment_figure_shows_the_table_means(tmp_path):
    s = samples()
    rec = recruitment_table(s)
    fig = recruitment_figure(rec)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == rec["measure"].nunique() == 2
    line = next(ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "macrophage_per_mm2:UC")
    assert line.get_ydata().tolist() == pytest.approx([52.0, 58.0, 74.0, 98.0])
    paths = save_figure(fig, tmp_path / "recruitment")
    assert all(p.stat().st_size > 0 for p in paths)
