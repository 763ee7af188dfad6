"""Composites, outlines, scale bars and representative images, checked against exact construction."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb

from lungtrack.overlay import (
    ROLE_COLORS,
    add_scale_bar,
    composite,
    image_panel,
    nice_length_um,
    outlines,
    representative_sample,
)
from lungtrack.synthetic import simulate_section


def test_composite_scales_each_channel_between_its_limits_and_adds_tints():
    c = np.zeros((2, 4, 4))
    c[0, 0, 0], c[0, 1, 1] = 100, 50
    c[1, 1, 1] = 10
    rgb = composite(c, colors=("#FF0000", "#0000FF"), limits=[(0, 100), (0, 10)])
    assert rgb[0, 0].tolist() == [1.0, 0.0, 0.0]
    assert rgb[1, 1].tolist() == [0.5, 0.0, 1.0]  # half-bright red plus full blue
    assert rgb[2, 2].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="2 channels but 1 colours"):
        composite(c, colors=("#FF0000",))


def test_outlines_are_the_inner_border_of_each_object():
    lab = np.zeros((9, 9), int)
    lab[2:7, 2:7] = 3
    o = outlines(lab)
    ring = np.zeros_like(o)
    ring[2:7, 2:7] = True
    ring[3:6, 3:6] = False
    assert np.array_equal(o, ring)


@pytest.mark.parametrize("pixel_um, length_um, width_px", [(0.5, 10.0, 20.0), (0.325, 50.0, 50 / 0.325)])
def test_scale_bar_length_in_pixels_follows_the_spacing(pixel_um, length_um, width_px):
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    ax.imshow(np.zeros((300, 400)))
    bar = add_scale_bar(ax, pixel_um, length_um)
    assert bar.get_width() == pytest.approx(width_px)
    assert bar.get_gid() == "scale_bar"
    label = [t for t in ax.texts if t.get_gid() == "scale_bar_label"][0]
    assert label.get_text() == f"{length_um:g} µm"


def test_image_panel_on_a_simulated_section():
    s = simulate_section(shape=(200, 240), n_msc=5, n_macrophage=8, seed=4, pixel_size_um=0.8)
    truth = s.labels
    fig = image_panel(s.image, 0.8, channel_names=s.channel_names,
                      labels={"msc": truth["msc"], "macrophage": truth["macrophage"]}, inset=(50, 100, 60, 110))
    ax = fig.axes[0]
    bar = [p for p in ax.patches if p.get_gid() == "scale_bar"][0]
    length = nice_length_um(240 * 0.8)
    assert bar.get_width() == pytest.approx(length / 0.8)
    assert {ln.get_gid() for ln in ax.lines} == {"outline_msc", "outline_macrophage"}
    shown = ax.get_images()[0].get_array()
    # every MSC border pixel is painted in the MSC outline colour
    border = outlines(truth["msc"])
    assert border.sum() > 0
    assert np.allclose(np.asarray(shown)[border & ~outlines(truth["macrophage"])], to_rgb(ROLE_COLORS["msc"]))
    assert any(p.get_gid() == "inset_frame" for p in ax.patches)
    assert len(fig.axes[0].child_axes) == 1


def test_representative_sample_is_closest_to_the_median_per_group_and_time():
    s = pd.DataFrame({"sample_id": ["a", "b", "c", "d", "e"], "group": ["G", "G", "G", "H", "G"],
                      "time_h": [2.0, 2.0, 2.0, 2.0, 8.0], "msc_per_mm2": [10.0, 30.0, 80.0, 5.0, 1.0]})
    assert representative_sample(s, "G", 2.0) == "b"
    assert representative_sample(s, "H") == "d"
    with pytest.raises(ValueError, match="group 'X'"):
        representative_sample(s, "X")
