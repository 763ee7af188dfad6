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


def test_choose_inset_avoids_the_inset_corner_and_the_scale_bar_and_prefers_contacts():
    from lungtrack.overlay import INSET_BOX, choose_inset

    h = w = 200
    msc = np.zeros((h, w), int)
    mac = np.zeros((h, w), int)
    msc[20:28, 20:28] = 1      # under the inset (upper left): never chosen
    msc[185:193, 170:178] = 2  # under the scale bar (lower right): never chosen
    msc[130:138, 96:104] = 3   # near the centre, but alone
    msc[60:68, 140:148] = 4    # off centre, touching a macrophage
    mac[60:68, 149:155] = 1
    assert choose_inset({"msc": msc, "macrophage": mac}, (h, w)) == (44, 84, 124, 164)  # MSC 4, side 40
    assert choose_inset({"msc": msc}, (h, w)) == (114, 154, 80, 120)  # no macrophages: MSC 3, nearer the centre
    only_bad = np.where(np.isin(msc, [1, 2]), msc, 0)
    assert choose_inset({"msc": only_bad}, (h, w)) is None
    assert choose_inset({"msc": np.zeros((h, w), int)}, (h, w)) is None
    x0, y0, iw, ih = INSET_BOX
    assert x0 + iw < 0.5 and y0 > 0.5  # the inset sits in the upper-left quarter


def test_inset_has_its_own_true_scale_bar():
    s = simulate_section(shape=(200, 240), n_msc=5, n_macrophage=8, seed=4, pixel_size_um=0.8)
    fig = image_panel(s.image, 0.8, channel_names=s.channel_names, labels={"msc": s.labels["msc"]},
                      inset=(50, 100, 60, 110))
    (iax,) = fig.axes[0].child_axes
    bar = [p for p in iax.patches if p.get_gid() == "scale_bar"][0]
    assert bar.get_width() == pytest.approx(nice_length_um(50 * 0.8) / 0.8)  # 10 um over 50 px at 0.8 um
    shown = np.asarray(iax.get_images()[0].get_array())
    assert shown.shape[:2] == (50, 50)  # the framed region, magnified
