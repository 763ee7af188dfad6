"""Tests of lungtrack.figures.cytofluorogram: threshold and regression lines, labels, PNG output."""
from __future__ import annotations

import dask.array as da
import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.figure import Figure

from lungtrack import coloc
from lungtrack.figures import cytofluorogram, save_figure


def channels(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 100, (40, 50))
    b = 0.8 * a + 5 + rng.normal(0, 6, a.shape)
    return a, b


def lines(fig):
    return {ln.get_gid(): ln for ln in fig.axes[0].lines}


def test_given_thresholds_are_drawn_where_given(tmp_path):
    a, b = channels()
    fig = cytofluorogram(a, b, thresholds=(20.0, 35.5), names=("GFP", "CD68"))
    assert isinstance(fig, Figure)
    ln = lines(fig)
    assert set(ln) == {"regression", "threshold_a", "threshold_b"}
    assert np.allclose(ln["threshold_a"].get_xdata(), 20.0)  # vertical line at t_a
    assert np.allclose(ln["threshold_b"].get_ydata(), 35.5)  # horizontal line at t_b
    ax = fig.axes[0]
    assert ax.get_xlabel() == "GFP intensity" and ax.get_ylabel() == "CD68 intensity"
    png = save_figure(fig, tmp_path / "cyto")[0]
    img = mpimg.imread(png)
    assert img.shape[:2] == (900, 1080)  # 3.0 x 3.6 in at 300 dpi
    assert img[..., :3].std() > 0.05  # something is drawn


def test_default_thresholds_are_costes_and_regression_is_orthogonal():
    a, b = channels(1)
    mask = np.zeros(a.shape, bool)
    mask[5:35] = True
    fig = cytofluorogram(a, b, mask=mask)
    t_a, t_b = coloc.costes_thresholds(a, b, mask)
    ln = lines(fig)
    assert np.allclose(ln["threshold_a"].get_xdata(), t_a)
    assert np.allclose(ln["threshold_b"].get_ydata(), t_b)
    # exact line: b = 2 a + 1 -> slope 2, intercept 1
    x = np.linspace(0, 50, 200)
    reg = lines(cytofluorogram(x, 2 * x + 1))["regression"]
    xs, ys = reg.get_xdata(), reg.get_ydata()
    assert (ys[1] - ys[0]) / (xs[1] - xs[0]) == pytest.approx(2.0)
    assert ys[0] - 2 * xs[0] == pytest.approx(1.0)


def test_lines_can_be_given_or_left_out_and_dask_input():
    a, b = channels(2)
    fig = cytofluorogram(a, b, thresholds=False, regression=False, log_counts=False)
    assert len(fig.axes[0].lines) == 0 and fig.axes[0].get_legend() is None
    reg = lines(cytofluorogram(a, b, regression=(0.5, 3.0), thresholds=(1.0, 2.0)))["regression"]
    assert reg.get_ydata()[0] == pytest.approx(0.5 * reg.get_xdata()[0] + 3.0)
    f1 = cytofluorogram(a, b, thresholds=(1.0, 2.0))
    f2 = cytofluorogram(da.from_array(a, chunks=7), da.from_array(b, chunks=9), thresholds=(1.0, 2.0))
    np.testing.assert_array_equal(f1.axes[0].collections[0].get_array(), f2.axes[0].collections[0].get_array())


def test_histogram_counts_every_masked_pixel():
    a = np.array([[0, 1], [2, 3]], np.uint8)
    mask = np.array([[True, True], [True, False]])
    fig = cytofluorogram(a, a, mask=mask, thresholds=False, regression=False)
    assert fig.axes[0].collections[0].get_array().sum() == 3


def test_bad_input():
    a, b = channels()
    with pytest.raises(ValueError, match="b has shape"):
        cytofluorogram(a, b[:3])
    with pytest.raises(ValueError, match="mask"):
        cytofluorogram(a, b, mask=np.ones(a.shape, int))


def test_real_confocal_stack(shared_data, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    d = shared_data / "coloc_fiji"
    if not (d / "colocsample1b-green.tif").exists():
        pytest.skip("colocsample1b images not found")
    g = tifffile.imread(d / "colocsample1b-green.tif")
    r = tifffile.imread(d / "colocsample1b-red.tif")
    m = tifffile.imread(d / "colocsample1b-mask.tif") > 0
    fig = cytofluorogram(g, r, mask=m, names=("green", "red"))
    assert fig.axes[0].collections[0].get_array().sum() == m.sum()  # 62307 pixels in the mask
    png = save_figure(fig, tmp_path / "colocsample1b")[0]
    assert png.stat().st_size > 10_000
