"""Paper figures of the sample experiment: the expected artists, values equal to the tables, units,
scale bars, and `lungtrack figures` redrawing identical files."""
from __future__ import annotations

import numpy as np
import pytest

from lungtrack.cli import main
from lungtrack.figures import coefficient_dotplot, state_composition_figure
from lungtrack.overlay import nice_length_um, representative_sample
from lungtrack.report import load_results

EXPECTED = {"persistence", "persistence_log", "superplot", "recruitment", "msc_states", "msc_contact",
            "efferocytosis", "coloc_pearson", "example_images", "cytofluorogram", "msc_macrophage_distances"}


def test_every_figure_in_three_formats_and_redrawn_identically(demo_run, tmp_path, capsys):
    import shutil

    figs = demo_run["out"] / "figures"
    assert {p.stem for p in figs.glob("*.png")} == EXPECTED
    for stem in EXPECTED:
        assert (figs / f"{stem}.svg").exists() and (figs / f"{stem}.pdf").exists()
    copy = tmp_path / "r"
    shutil.copytree(demo_run["out"], copy)
    shutil.rmtree(copy / "figures")
    assert main(["figures", str(copy)]) == 0
    assert "11 figures" in capsys.readouterr().out
    for stem in EXPECTED:  # SVG carries no date and fixed ids: the same bytes again
        assert (copy / "figures" / f"{stem}.svg").read_bytes() == (figs / f"{stem}.svg").read_bytes(), stem


def test_state_bars_are_the_state_fractions_of_interactions(demo_run):
    res = load_results(demo_run["out"])
    fig = state_composition_figure(res.interactions, res.samples)
    df = res.interactions.merge(res.samples[["sample_id", "group", "time_h"]], on="sample_id")
    bars = {p.get_gid(): p.get_height() for p in fig.axes[0].patches if p.get_gid()}
    for (g, t), sub in df.groupby(["group", "time_h"]):
        frac = sub["state"].value_counts(normalize=True)
        for state, f in frac.items():
            assert bars[f"bar_{g}_{t:g}_{state}"] == pytest.approx(f)
        assert sum(v for k, v in bars.items() if k.startswith(f"bar_{g}_{t:g}_")) == pytest.approx(1.0)
    assert fig.axes[0].get_ylabel() == "Fraction of MSCs"


def test_dotplot_means_are_means_of_animal_means(demo_run):
    res = load_results(demo_run["out"])
    s = res.samples
    fig = coefficient_dotplot(s, "pearson_r")
    ax = fig.axes[0]
    animal = s.groupby(["group", "time_h", "animal"])["pearson_r"].mean().groupby(["group", "time_h"]).mean()
    lines = {ln.get_gid(): ln.get_ydata()[0] for ln in ax.lines if ln.get_gid()}
    for (g, t), v in animal.items():
        assert lines[f"mean_{g}_{t:g}"] == pytest.approx(v)
    n_points = sum(len(c.get_offsets()) for c in ax.collections if str(c.get_gid()).startswith("images_"))
    assert n_points == s["pearson_r"].notna().sum()
    assert ax.get_xlabel() == "Time after infusion (h)"


def test_example_images_show_the_median_sample_with_a_true_scale_bar(demo_run):
    from lungtrack.figures import example_images_figure

    res = load_results(demo_run["out"])
    inputs = {r["sample_id"]: r["path"] for r in res.run["inputs"]}
    fig = example_images_figure(res.samples, inputs, demo_run["out"] / "labels")
    for ax, g in zip(fig.axes, ["BM", "UC"]):
        sid = representative_sample(res.samples, g, 2.0)
        assert ax.get_title() == f"{g}, 2 h: {sid}"
        bar = [p for p in ax.patches if p.get_gid() == "scale_bar"][0]
        assert bar.get_width() == pytest.approx(nice_length_um(384 * 1.0) / 1.0)  # 384 px at 1.0 um
        assert {ln.get_gid() for ln in ax.lines} == {"outline_msc", "outline_macrophage"}


def test_distance_ecdf_matches_the_objects_table(demo_run):
    from scipy.spatial import cKDTree

    from lungtrack.pipeline import _distance_envelope

    res = load_results(demo_run["out"])
    fig = _distance_envelope(res, demo_run["out"] / "labels", res.run["config"])
    o = res.objects
    msc = o[(o.role == "msc") & o.intact.fillna(True).astype(bool)]
    mac = o[o.role == "macrophage"]
    sids = res.samples.query("group == 'UC' and time_h == 2").sample_id
    d = np.concatenate([cKDTree(mac[mac.sample_id == s][["centroid_y_um", "centroid_x_um"]])
                        .query(msc[msc.sample_id == s][["centroid_y_um", "centroid_x_um"]])[0] for s in sids])
    line = [ln for ln in fig.axes[0].lines if ln.get_gid() == "ecdf_UC_2"][0]
    r = line.get_xdata()
    assert np.allclose(line.get_ydata(), [np.mean(d <= x) for x in r])
    assert any(c.get_gid() == "null_UC_2" for c in fig.axes[0].collections)


def test_axis_labels_carry_units(demo_run):
    from lungtrack.figures import persistence_figure
    from lungtrack.persistence import animal_table

    res = load_results(demo_run["out"])
    fig = persistence_figure(res.persistence, res.persistence_fit, animals=animal_table(res.samples))
    ax = fig.axes[0]
    assert "mm²" in ax.get_ylabel() and "(h)" in ax.get_xlabel()
