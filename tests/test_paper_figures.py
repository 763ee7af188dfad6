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
            "efferocytosis", "coloc_pearson", "example_images", "cytofluorogram", "msc_macrophage_distances",
            "cross_l"}


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
    assert f"{len(EXPECTED)} figures" in capsys.readouterr().out
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


def test_files_are_paper_ready_300_dpi_text_as_text_and_column_widths(demo_run):
    from PIL import Image

    from lungtrack.figures import DOUBLE_COLUMN_IN, SINGLE_COLUMN_IN

    figs = demo_run["out"] / "figures"
    for stem in EXPECTED:
        with Image.open(figs / f"{stem}.png") as im:
            assert min(im.info["dpi"]) >= 299.9, stem  # journals ask for >= 300 dpi
            width_px = im.size[0]
        svg = (figs / f"{stem}.svg").read_text(encoding="utf-8")
        assert "<text" in svg and "font-family" in svg.replace("font:", "font-family:"), stem  # editable text
        pdf = (figs / f"{stem}.pdf").read_bytes()
        assert b"/FontFile2" in pdf and b"/Subtype /Type3" not in pdf, stem  # TrueType embedded, not Type 3
        if stem in ("msc_states", "msc_contact", "efferocytosis", "coloc_pearson"):
            assert width_px == round(SINGLE_COLUMN_IN * 300), stem
        if stem in ("example_images", "msc_macrophage_distances", "cross_l"):
            assert width_px == round(DOUBLE_COLUMN_IN * 300), stem
    # axis labels are in the SVG as words a journal's editor can change
    assert "Time after infusion (h)" in (figs / "msc_contact.svg").read_text(encoding="utf-8")


def test_every_panel_has_axis_labels_with_units(demo_run):
    from lungtrack.figures import PALETTE, coloc_example_figure
    from lungtrack.pipeline import _cross_l, _distance_envelope

    res = load_results(demo_run["out"])
    labels_dir = demo_run["out"] / "labels"
    inputs = {r["sample_id"]: r["path"] for r in res.run["inputs"]}
    for value in ("pearson_r", "frac_msc_contacting_macrophage", "frac_macrophage_containing_msc"):
        ax = coefficient_dotplot(res.samples, value).axes[0]
        assert ax.get_xlabel() == "Time after infusion (h)" and ax.get_ylabel()
        # group colours come from the colour-blind-safe palette, in group order
        cols = [c for c in ax.collections if str(c.get_gid()).startswith("animals_")]
        assert [tuple(c.get_facecolor()[0][:3]) for c in cols] == [
            tuple(int(h[i:i + 2], 16) / 255 for i in (1, 3, 5)) for h in PALETTE[:len(cols)]]
    dist = _distance_envelope(res, labels_dir, res.run["config"])
    assert "(µm)" in dist.get_supxlabel() and dist.axes[0].get_ylabel() == "Fraction of MSCs (ECDF)"
    cl = _cross_l(res, labels_dir, res.run["config"])
    assert all(ax.get_xlabel() == "r (µm)" for ax in cl.axes) and "(µm)" in cl.axes[0].get_ylabel()
    cf = coloc_example_figure(res.samples, inputs, labels_dir, res.run["config"]["channels"], coloc=res.coloc)
    ax = cf.axes[0]
    sid = ax.get_title().split(" ")[0]
    flags = res.coloc.query("sample_id == @sid and scope == 'tissue'")["costes_warnings"].dropna()
    # the shown image's own Costes warnings (tissue scope) are named under the title
    assert ("Costes warnings" in ax.get_title()) == bool(len(flags) and flags.iloc[0])
    assert all(f.replace("_", " ") in ax.get_title().replace("\n", " ") for v in flags for f in v.split(";"))
    # thresholds at the top of the intensity range are flagged, not shown as if they were a result
    row = res.samples.set_index("sample_id").loc[sid]
    hist = [c for c in ax.collections if c.get_gid() == "histogram"][0]
    at_top = (row.costes_threshold_msc >= ax.get_xlim()[1] - 0.5
              or row.costes_threshold_macrophage >= ax.get_ylim()[1] - 0.5)  # bins end half a grey level above max
    assert hist.get_array().count() > 0 and ("top of the range" in ax.get_title()) == bool(at_top)
    assert ax.get_xlabel() == "MSC label (GFP) intensity (a.u.)"
    assert ax.get_ylabel() == "Macrophage marker (CD68) intensity (a.u.)"
    assert {ln.get_gid() for ln in ax.lines} >= {"regression", "threshold_a", "threshold_b"}


def test_cross_l_panel_is_the_cross_k_of_the_representative_image(demo_run):
    import tifffile

    from lungtrack.pipeline import _cross_l
    from lungtrack.spatial_stats import cross_k

    res = load_results(demo_run["out"])
    fig = _cross_l(res, demo_run["out"] / "labels", res.run["config"])
    o = res.objects
    for ax, g in zip(fig.axes, ["BM", "UC"]):
        sid = representative_sample(res.samples, g, 2.0)
        assert ax.get_title() == f"{g}, 2 h: {sid}"
        obs = [ln for ln in ax.lines if ln.get_gid() == "observed"][0]
        cols = ["centroid_y_um", "centroid_x_um"]
        a = o[(o.sample_id == sid) & (o.role == "msc") & o.intact.fillna(True).astype(bool)][cols].to_numpy()
        b = o[(o.sample_id == sid) & (o.role == "macrophage")][cols].to_numpy()
        tissue = tifffile.imread(demo_run["out"] / "labels" / f"{sid}_tissue.tif") > 0
        k = cross_k(a, b, tissue, (1.0, 1.0, 1.0), obs.get_xdata())
        assert np.allclose(obs.get_ydata(), k["l_minus_r_um"])
        assert any(c.get_gid() == "envelope" for c in ax.collections)
        assert "99 simulations" in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_example_images_inset_colours_sample_choice_and_spacing(demo_run):
    from matplotlib.colors import to_hex

    from lungtrack.figures import example_images_figure

    res = load_results(demo_run["out"])
    inputs = {r["sample_id"]: r["path"] for r in res.run["inputs"]}
    labels = demo_run["out"] / "labels"
    fig = example_images_figure(res.samples, inputs, labels, sample_ids=["UC_24h_m1_s1"],
                                colors={"GFP": "#FFFF00"}, channels=res.run["config"]["channels"],
                                spacing_um={"UC_24h_m1_s1": (1.0, 0.5, 0.5)})
    ax = fig.axes[0]
    assert ax.get_title() == "UC, 24 h: UC_24h_m1_s1"  # chosen by id
    bar = [p for p in ax.patches if p.get_gid() == "scale_bar"][0]
    assert bar.get_width() == pytest.approx(nice_length_um(384 * 0.5) / 0.5)  # 50 um = 100 px at 0.5 um
    (inset,) = ax.child_axes  # zoom chosen automatically around an MSC
    frame = [p for p in ax.patches if p.get_gid() == "inset_frame"][0]
    side = frame.get_width()
    ibar = [p for p in inset.patches if p.get_gid() == "scale_bar"][0]
    assert ibar.get_width() == pytest.approx(nice_length_um(side * 0.5) / 0.5)
    legend = {t.get_text(): h for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    assert set(legend) == {"DAPI (nuclei)", "GFP (MSC)", "CD68 (macrophage)", "MSC outline", "macrophage outline"}
    assert to_hex(legend["GFP (MSC)"].get_facecolor()) == "#ffff00"  # the chosen colour
    with pytest.raises(ValueError, match="not in the samples table"):
        example_images_figure(res.samples, inputs, labels, sample_ids=["nope"])
