"""The napari plugin (napari_plugin/, distribution lungtrack-napari): reader, sample data, widget.

Run under a virtual display: ``xvfb-run -a python -m pytest tests/test_napari.py``.
Plain functions are tested first, then a real viewer with the manifest's contributions.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

napari = pytest.importorskip("napari")
lungtrack_napari = pytest.importorskip("lungtrack_napari")
da = pytest.importorskip("dask.array")

from lungtrack_napari import get_reader, synthetic_section  # noqa: E402
from lungtrack_napari._widget import segment_layers  # noqa: E402

from lungtrack.io import write_image  # noqa: E402
from lungtrack.measure import object_columns  # noqa: E402
from lungtrack.synthetic import simulate_section  # noqa: E402

pytestmark = [pytest.mark.napari, pytest.mark.filterwarnings("ignore:System theme detection:UserWarning")]

# Without a display Qt aborts the whole pytest process, so viewer tests skip instead.
needs_display = pytest.mark.skipif(
    sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
    reason="no display: run napari tests under `xvfb-run -a python -m pytest`",
)

PLUGIN = "lungtrack-napari"
WIDGET = "Segment MSCs and macrophages"


# -- reader (plain function) ------------------------------------------------------------------------

def test_reader_ome_tiff_2d(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4000, (3, 40, 50), dtype=np.uint16)
    path = tmp_path / "section.ome.tif"
    # y and x spacing differ so that a swapped scale would show.
    write_image(path, pixels, axes="CYX", spacing_um=(1.0, 0.4, 0.5), channel_names=["Hoechst", "tdTomato", "F4/80"])

    reader = get_reader(str(path))
    assert callable(reader)
    layers = reader(str(path))
    assert [kind for *_x, kind in layers] == ["image"] * 3
    assert [meta["name"] for _d, meta, _k in layers] == ["Hoechst", "tdTomato", "F4/80"]
    assert [meta["colormap"] for _d, meta, _k in layers] == ["blue", "red", "magenta"]
    for c, (data, meta, _kind) in enumerate(layers):
        assert isinstance(data, da.Array)  # lazy: nothing read yet
        assert data.shape == (40, 50)
        assert meta["scale"] == (0.4, 0.5)
        assert meta["blending"] == "additive"
        assert meta["metadata"]["path"] == str(path)
        assert meta["metadata"]["spacing_um"] == (1.0, 0.4, 0.5)
        np.testing.assert_array_equal(data[5:9, 10:20].compute(), pixels[c, 5:9, 10:20])


def test_reader_ome_tiff_zstack(tmp_path):
    pixels = np.arange(2 * 4 * 16 * 16, dtype=np.uint16).reshape(2, 4, 16, 16)
    path = tmp_path / "stack.ome.tif"
    write_image(path, pixels, axes="CZYX", spacing_um=(2.0, 0.5, 0.5), channel_names=["DAPI", "GFP"])
    layers = get_reader(str(path))(str(path))
    assert [meta["name"] for _d, meta, _k in layers] == ["DAPI", "GFP"]
    assert [meta["colormap"] for _d, meta, _k in layers] == ["blue", "green"]
    for data, meta, _kind in layers:
        assert isinstance(data, da.Array) and data.shape == (4, 16, 16)
        assert meta["scale"] == (2.0, 0.5, 0.5)


def test_reader_returns_none_for_what_it_cannot_read(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"this is not a TIFF file at all" * 20)
    truncated = tmp_path / "truncated.ome.tif"
    write_image(truncated, np.ones((2, 64, 64), np.uint16), axes="CYX", spacing_um=(1, 1, 1), compression=None)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])

    assert get_reader(str(text)) is None
    assert get_reader(str(garbage)) is None
    assert get_reader(str(truncated)) is None
    assert get_reader(str(tmp_path / "missing.tif")) is None
    assert get_reader([str(garbage), str(text)]) is None


# -- sample data and the plain segmentation function ------------------------------------------------

def test_sample_data_layers():
    truth = simulate_section(seed=0)
    layers = synthetic_section()
    assert len(layers) == 3
    assert [meta["name"] for _d, meta, _k in layers] == truth.channel_names == ["DAPI", "GFP", "CD68"]
    for c, (data, meta, kind) in enumerate(layers):
        assert kind == "image"
        assert meta["scale"] == tuple(truth.spacing_um[1:])
        np.testing.assert_array_equal(data, truth.image[c])


def test_segment_layers_plain_function_uses_layer_scale():
    s = simulate_section(shape=(256, 256), pixel_size_um=0.75, n_msc=6, n_macrophage=6, seed=3)
    layers = {name: napari.layers.Image(s.image[c], name=name, scale=(0.75, 0.75)) for c, name in enumerate(s.channel_names)}
    out = segment_layers(layers["GFP"], layers["CD68"], layers["DAPI"])
    names = [meta["name"] for _d, meta, _k in out]
    assert names == ["msc labels", "macrophage labels", "nuclei labels", "tissue"]
    for data, meta, kind in out:
        assert kind == "labels" and data.shape == (256, 256) and meta["scale"] == (0.75, 0.75)
    msc, meta, _ = out[0]
    f = meta["features"]
    assert len(f) == s.n_msc
    # Areas are in um2 at 0.75 um pixels: the layer scale reached the library as spacing.
    first = int(f["label"].iloc[0])
    assert f["area_um2"].iloc[0] == pytest.approx((msc == first).sum() * 0.75**2)
    # Without a nuclei layer no nuclei are segmented.
    assert [m["name"] for _d, m, _k in segment_layers(layers["GFP"], layers["CD68"])] == [
        "msc labels", "macrophage labels", "tissue"]


# -- in a real viewer --------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _own_settings(tmp_path, monkeypatch):
    """Widget settings go to a temporary file, never to the user's."""
    monkeypatch.setenv("LUNGTRACK_NAPARI_SETTINGS", str(tmp_path / "settings.json"))


def run(qtbot, widget, timeout=60_000):
    """Click the widget's button and wait until its worker thread has finished; returns the worker."""
    widget()
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)
    return widget.worker


def _assert_features(layer, channel_names):
    f = layer.features
    assert list(f.columns[:1]) == ["index"]
    assert set(object_columns(layer.data.ndim, channel_names)) <= set(f.columns)
    np.testing.assert_array_equal(f["index"].to_numpy(), f["label"].to_numpy())
    ids = np.unique(np.asarray(layer.data))
    np.testing.assert_array_equal(np.sort(f["label"].to_numpy()), ids[ids > 0])


@needs_display
def test_widget_on_sample_data_in_viewer(make_napari_viewer, tmp_path, qtbot):
    truth = simulate_section(seed=0)
    viewer = make_napari_viewer(show=True)
    layers = viewer.open_sample(PLUGIN, "synthetic_2d")
    assert [lay.name for lay in layers] == ["DAPI", "GFP", "CD68"]
    assert all(tuple(lay.scale) == truth.spacing_um[1:] for lay in layers)

    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    # Defaults are guessed from channel names; nuclei stay optional.
    assert widget.msc_layer.value is viewer.layers["GFP"]
    assert widget.macrophage_layer.value is viewer.layers["CD68"]
    assert widget.nuclei_layer.value is None
    assert widget.msc_min_diameter_um.tooltip.startswith("msc: Objects with a smaller equivalent diameter")
    widget.nuclei_layer.value = viewer.layers["DAPI"]
    run(qtbot, widget)

    msc = viewer.layers["msc labels"]
    for name in ("msc labels", "macrophage labels", "nuclei labels", "tissue"):
        lay = viewer.layers[name]
        assert isinstance(lay, napari.layers.Labels)
        np.testing.assert_array_equal(lay.scale, viewer.layers["GFP"].scale)
        assert lay.data.shape == truth.image.shape[1:]
    n_msc = len(msc.features)
    assert abs(n_msc - truth.n_msc) <= 0.1 * truth.n_msc, (n_msc, truth.n_msc)
    for name in ("msc labels", "macrophage labels", "nuclei labels"):
        _assert_features(viewer.layers[name], ["GFP", "CD68", "DAPI"])
    assert (msc.features["role"] == "msc").all()
    assert f"{n_msc} msc" in widget.counts.value

    # Running again updates the same layers instead of adding new ones.
    n_layers = len(viewer.layers)
    widget.msc_min_diameter_um.value = 12.0
    run(qtbot, widget)
    assert len(viewer.layers) == n_layers and viewer.layers["msc labels"] is msc
    widget.msc_max_diameter_um.value = 5.0
    with pytest.raises(ValueError, match="msc min diameter"):
        widget()

    shot = tmp_path / "viewer.png"
    viewer.screenshot(str(shot), canvas_only=False)
    import imageio.v3 as iio

    img = iio.imread(shot)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    rgb = img[..., :3].reshape(-1, 3)
    assert rgb.std(axis=0).max() > 10 and len(np.unique(rgb, axis=0)) > 50


@needs_display
def test_reader_and_widget_keep_physical_scale_in_viewer(make_napari_viewer, tmp_path, qtbot):
    s = simulate_section(shape=(256, 256), pixel_size_um=0.75, n_msc=6, n_macrophage=6, seed=3)
    path = tmp_path / "section.ome.tif"
    write_image(path, s.image, axes="CYX", spacing_um=s.spacing_um, channel_names=s.channel_names)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin=PLUGIN)
    assert [lay.name for lay in layers] == ["DAPI", "GFP", "CD68"]
    assert all(isinstance(lay.data, da.Array) for lay in layers)
    assert all(tuple(lay.scale) == (0.75, 0.75) for lay in layers)
    assert layers[1].metadata["path"] == str(path)

    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    run(qtbot, widget)  # GFP and CD68 chosen from the channel names, no nuclei
    assert "nuclei labels" not in viewer.layers
    msc = viewer.layers["msc labels"]
    np.testing.assert_array_equal(msc.scale, (0.75, 0.75))
    _assert_features(msc, ["GFP", "CD68"])
    assert len(msc.features) == s.n_msc
    assert msc.features["area_um2"].iloc[0] == pytest.approx(
        (np.asarray(msc.data) == msc.features["label"].iloc[0]).sum() * 0.75**2)
