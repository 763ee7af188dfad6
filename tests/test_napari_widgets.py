"""The napari plugin beyond the first widget: reader formats, results folders, writer, settings and the
Segment (worker, cancel, preview, config), Interactions, Experiment and Export widgets in a real viewer.

Run under a virtual display: ``xvfb-run -a python -m pytest tests/test_napari_widgets.py``.
Screenshots go to ``$LUNGTRACK_NAPARI_SCREENSHOTS`` (default: the test's tmp folder).
"""
from __future__ import annotations

import json
import os
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("lungtrack_napari")
da = pytest.importorskip("dask.array")
QApplication = pytest.importorskip("qtpy.QtWidgets").QApplication

from lungtrack_napari._reader import channel_layer_kwargs, get_reader  # noqa: E402
from lungtrack_napari._settings import get_section  # noqa: E402
from lungtrack_napari._widget import add_or_update_layers, apply_config, config_from_widget, segment_layers  # noqa: E402,E501
from lungtrack_napari._writer import write_results  # noqa: E402

from lungtrack.config import Config  # noqa: E402
from lungtrack.io import write_labels  # noqa: E402
from lungtrack.spatial import msc_macrophage_relations  # noqa: E402
from lungtrack.synthetic import simulate_experiment, simulate_section  # noqa: E402

pytestmark = [pytest.mark.napari, pytest.mark.filterwarnings("ignore:System theme detection:UserWarning")]

needs_display = pytest.mark.skipif(
    sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
    reason="no display: run napari tests under `xvfb-run -a python -m pytest`",
)
PLUGIN = "lungtrack-napari"


@pytest.fixture(autouse=True)
def _own_settings(tmp_path, monkeypatch):
    """Widget settings go to a temporary file, never to the user's."""
    monkeypatch.setenv("LUNGTRACK_NAPARI_SETTINGS", str(tmp_path / "settings.json"))


@pytest.fixture
def shots(tmp_path) -> Path:
    d = Path(os.environ.get("LUNGTRACK_NAPARI_SCREENSHOTS", tmp_path / "screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def results_folder(tmp_path_factory) -> Path:
    """A 4-image simulated experiment analysed into a results folder (plain loop, about 3 s)."""
    from lungtrack import analyze

    root = tmp_path_factory.mktemp("napari_results")
    simulate_experiment(root / "exp", groups={"BM": 8.0, "UC": 16.0}, time_h=(2.0, 24.0), n_animals=1,
                        shape=(160, 160), seed=3)
    analyze(root / "exp", config=root / "exp" / "config.yaml", out=root / "res", use_dask=False)
    return root / "res"


def shot(viewer, path, reset=False):
    """Window screenshot (canvas with scale bar + docked widgets) at a size where the docks are readable."""
    from lungtrack_napari._export_widget import scale_bar_of

    viewer.window._qt_window.resize(1700, 1000)
    QApplication.processEvents()
    if reset:
        viewer.reset_view()
    scale_bar_of(viewer).visible = True
    viewer.screenshot(str(path), canvas_only=False)


def run(qtbot, widget, timeout=60_000):
    """Click the widget's button and wait until its worker thread has finished; returns the worker."""
    widget()
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)
    return widget.worker


# -- reader: label images, missing pixel size, OME-Zarr, a lazy 2 GB image -----------------------------

def test_reader_opens_label_tiffs_as_labels(tmp_path):
    lab = np.zeros((30, 40), np.uint32)
    lab[5:10, 5:12], lab[20:25, 30:38] = 1, 7
    path = tmp_path / "labels" / "S1_msc.tif"
    write_labels(path, lab, (1.0, 0.5, 0.25))
    (data, meta, kind), = get_reader(str(path))()
    assert kind == "labels" and meta["name"] == "S1_msc"
    assert meta["scale"] == (0.5, 0.25)
    assert meta["metadata"]["role"] == "msc" and meta["metadata"]["sample_id"] == "S1"
    np.testing.assert_array_equal(data, lab)


def test_reader_missing_pixel_size_warns_and_uses_settings(tmp_path):
    import tifffile
    from lungtrack_napari._settings import save_section

    pixels = np.arange(3 * 20 * 24, dtype=np.uint16).reshape(3, 20, 24)
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, pixels, photometric="minisblack")  # no axes, no pixel size: read as a z-stack
    with pytest.warns(UserWarning, match="no pixel size"):
        layers = get_reader(str(path))()
    assert len(layers) == 1 and layers[0][1]["metadata"]["spacing_missing"] is True
    # The Open image widget's values become the reader's defaults: 3 channels at 0.5 um.
    save_section("reader", {"axes": "CYX", "pixel_size_um": 0.5})
    layers = get_reader(str(path))()
    assert [m["name"] for _d, m, _k in layers] == ["C0", "C1", "C2"]
    assert all(m["scale"] == (0.5, 0.5) and "spacing_missing" not in m["metadata"] for _d, m, _k in layers)
    np.testing.assert_array_equal(layers[2][0].compute(), pixels[2])


def test_reader_imagej_hyperstack(tmp_path):
    import tifffile

    pixels = np.arange(5 * 2 * 12 * 16, dtype=np.uint16).reshape(5, 2, 12, 16)  # ImageJ order ZCYX
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, pixels, imagej=True, resolution=(1 / 0.4, 1 / 0.4),
                     metadata={"axes": "ZCYX", "spacing": 1.5, "unit": "um"})
    layers = get_reader(str(path))()
    assert len(layers) == 2
    for c, (data, meta, kind) in enumerate(layers):
        assert kind == "image" and isinstance(data, da.Array) and data.shape == (5, 12, 16)
        assert meta["scale"] == pytest.approx((1.5, 0.4, 0.4))
        np.testing.assert_array_equal(data.compute(), pixels[:, c])


def _write_ome_zarr(path: Path, shape_cyx, scale_um, chunks=(1, 1024, 1024), data=None, names=("GFP", "CD68")):
    import zarr

    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    for level in range(2):
        f = 2 ** level
        shp = (shape_cyx[0], shape_cyx[1] // f, shape_cyx[2] // f)
        arr = g.create_array(str(level), shape=shp, chunks=chunks, dtype="uint16", fill_value=0)
        if data is not None:
            arr[:] = data[:, ::f, ::f]
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, scale_um * f, scale_um * f]}]})
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "c", "type": "channel"}, {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"}], "datasets": datasets}]
    g.attrs["omero"] = {"channels": [{"label": n} for n in names]}


def test_reader_ome_zarr_multiscale(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 1000, (2, 64, 80), dtype=np.uint16)
    path = tmp_path / "section.ome.zarr"
    _write_ome_zarr(path, pixels.shape, 0.65, chunks=(1, 32, 32), data=pixels)
    layers = get_reader(str(path))()
    assert [m["name"] for _d, m, _k in layers] == ["GFP", "CD68"]
    assert [m["colormap"] for _d, m, _k in layers] == ["green", "magenta"]
    for c, (data, meta, kind) in enumerate(layers):
        assert kind == "image" and meta["multiscale"] and len(data) == 2
        assert meta["scale"] == pytest.approx((0.65, 0.65))
        assert isinstance(data[0], da.Array)
        np.testing.assert_array_equal(data[0].compute(), pixels[c])
        np.testing.assert_array_equal(data[1].compute(), pixels[c, ::2, ::2])


def test_reader_keeps_a_2gb_image_lazy(tmp_path):
    # 2 x 32768 x 16384 uint16 = 2 GiB; unwritten zarr chunks cost no disk and read as 0.
    path = tmp_path / "big.ome.zarr"
    _write_ome_zarr(path, (2, 32768, 16384), 0.5)
    tracemalloc.start()
    layers = get_reader(str(path))()
    tile = layers[0][0][0][:256, :256].compute()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sum(d[0].nbytes for d, _m, _k in layers) == 2 * 32768 * 16384 * 2
    assert tile.shape == (256, 256) and tile.max() == 0
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB: the reader loaded more than a chunk"


def _write_2gib_ome_tiff(path: Path) -> np.ndarray:
    """A 2 x 32768 x 16384 uint16 (2 GiB) tiled OME-TIFF at 0.5 um; every 1024 x 1024 tile is ``tile``.

    The tiles are one zlib-encoded buffer written 1024 times, so the file is about 26 MiB
    and takes a fraction of a second to write. Returns the tile.
    """
    import zlib

    import tifffile

    tile = (np.arange(1024 * 1024, dtype=np.uint32) % 4093).astype(np.uint16).reshape(1024, 1024)
    enc = zlib.compress(tile.tobytes(), 1)
    tifffile.imwrite(path, (enc for _ in range(2 * 32 * 16)), shape=(2, 32768, 16384), dtype="uint16",
                     tile=(1024, 1024), compression="zlib", ome=True,
                     metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                               "Channel": {"Name": ["GFP", "CD68"]}})
    return tile


@needs_display
def test_reader_opens_a_2gb_tiff_in_the_viewer_without_loading_it(make_napari_viewer, tmp_path):
    path = tmp_path / "big.ome.tif"
    tile = _write_2gib_ome_tiff(path)
    tracemalloc.start()
    layers = get_reader(str(path))()
    block = layers[1][0][0][1000:1300, 2000:2100].compute()  # crosses 4 tiles
    peak_reader = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [m["name"] for _d, m, _k in layers] == ["GFP", "CD68"]
    for data, meta, _k in layers:
        assert meta["multiscale"] and isinstance(data[0], da.Array) and data[0].shape == (32768, 16384)
        assert data[-1].shape == (2048, 1024) and meta["scale"] == (0.5, 0.5)
    np.testing.assert_array_equal(block, tile[np.ix_(np.arange(1000, 1300) % 1024, np.arange(2000, 2100) % 1024)])
    assert peak_reader < 64 * 2**20, f"peak {peak_reader / 2**20:.0f} MiB in the reader"

    # In the viewer: napari draws the overview level, read chunk by chunk; a single-resolution
    # layer would make napari read whole 1 GiB planes. napari's own dask chunk cache (which
    # keeps up to a fraction of RAM on purpose) is off for the measurement.
    from napari.settings import get_settings

    dask_settings = get_settings().application.dask
    was = dask_settings.enabled
    dask_settings.enabled = False
    try:
        viewer = make_napari_viewer(show=True)
        tracemalloc.start()
        opened = viewer.open(str(path), plugin=PLUGIN)
        QApplication.processEvents()
        peak_viewer = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        dask_settings.enabled = was
    assert [lay.multiscale for lay in opened] == [True, True]
    assert [lay.data_level for lay in opened] == [4, 4]  # the 2048 x 1024 overview
    assert peak_viewer < 256 * 2**20, f"peak {peak_viewer / 2**20:.0f} MiB while napari showed the image"


def test_reader_returns_none_for_plain_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    assert get_reader(str(tmp_path / "sub")) is None


# -- sample data: z-stack and time-lapse ---------------------------------------------------------------------

def test_zstack_sample_segments_in_3d_like_the_truth():
    from lungtrack_napari._sample_data import ZSTACK_KWARGS, synthetic_zstack

    truth = simulate_section(**ZSTACK_KWARGS, seed=0)
    data = synthetic_zstack()
    assert [m["name"] for _d, m, _k in data] == truth.channel_names
    layers = {m["name"]: napari.layers.Image(d, name=m["name"], scale=m["scale"], metadata=m["metadata"])
              for d, m, _k in data}
    assert all(tuple(lay.scale) == (2.0, 1.0, 1.0) for lay in layers.values())
    out = segment_layers(layers["GFP"], layers["CD68"])
    msc, meta, _ = out[0]
    assert msc.shape == truth.image.shape[1:] and "volume_um3" in meta["features"]
    assert len(meta["features"]) == truth.n_msc


def test_timelapse_sample_has_frames_and_true_tracks():
    from lungtrack_napari._sample_data import has_timelapse, synthetic_timelapse

    if not has_timelapse():
        pytest.skip("this lungtrack has no synthetic.simulate_timelapse")
    from lungtrack.synthetic import simulate_timelapse

    tl = simulate_timelapse(seed=0)
    data = synthetic_timelapse()
    images = [(d, m) for d, m, k in data if k == "image"]
    (tracks, tmeta, _), = [x for x in data if x[2] == "tracks"]
    assert [m["name"] for _d, m in images] == tl.channel_names
    assert all(d.shape == tl.image[:, 0].shape and m["scale"] == (1.0, *tl.spacing_um) for d, m in images)
    assert len(np.unique(tracks[:, 0])) == tl.tracks["track_id"].nunique()
    # vertices in pixels: y_um / spacing
    first = tl.tracks.sort_values(["track_id", "frame"]).iloc[0]
    np.testing.assert_allclose(tracks[0, 1:], (first.frame, first.y_um / tl.spacing_um[0], first.x_um / tl.spacing_um[1]))


def test_segment_warns_when_the_config_maps_channels_it_cannot_use():
    s = simulate_section(shape=(128, 128), n_msc=2, n_macrophage=2, seed=1)
    gfp, cd68 = (napari.layers.Image(s.image[c], name=n) for c, n in ((1, "GFP"), (2, "CD68")))
    cfg = {"channels": {"msc": "GFP", "macrophage": "CD68", "autofluorescence": "AF"}}
    with pytest.warns(UserWarning, match="autofluorescence -> 'AF'.*differ from `lungtrack analyze`"):
        out = segment_layers(gfp, cd68, config=cfg)
    assert len(out[0][1]["features"]) == len(segment_layers(gfp, cd68)[0][1]["features"])


# -- results folder: reader and writer round trip -------------------------------------------------------

def test_results_folder_layers_and_round_trip(results_folder, tmp_path):
    objects = pd.read_csv(results_folder / "objects.csv")
    inter = pd.read_csv(results_folder / "interactions.csv")
    sid = pd.read_csv(results_folder / "samples.csv")["sample_id"].iloc[0]
    layers = {m["name"]: (d, m, k) for d, m, k in get_reader(str(results_folder))()}
    suffix = f" [{sid}]"
    assert {f"{c}{suffix}" for c in ("DAPI", "GFP", "CD68")} <= set(layers)
    assert all(isinstance(layers[f"{c}{suffix}"][0], da.Array) for c in ("DAPI", "GFP", "CD68"))
    msc, meta, kind = layers[f"msc labels{suffix}"]
    assert kind == "labels"
    truth = objects[(objects.sample_id == sid) & (objects.role == "msc")]
    truth = truth[truth["intact"].fillna(True).astype(bool)].reset_index(drop=True)  # fragmented MSCs: own layer file
    pd.testing.assert_frame_equal(meta["features"].drop(columns="index"), truth, check_dtype=False)
    ids = np.unique(msc)
    assert sorted(truth["label"]) == ids[ids > 0].tolist()
    # One line per MSC with a nearest macrophage; its length (um) is the centroid distance in interactions.csv.
    lines, lmeta, lkind = layers[f"msc -> nearest macrophage{suffix}"]
    rows = inter[inter.sample_id == sid]
    assert lkind == "shapes" and len(lines) == rows["nearest_macrophage_label"].notna().sum() > 0
    lengths = [np.linalg.norm((v[1] - v[0]) * np.asarray(lmeta["scale"])) for v in lines]
    np.testing.assert_allclose(lengths, lmeta["features"]["nearest_macrophage_um"], rtol=1e-9)

    # Writer: labels and tables back to the results-folder format, identical on reading.
    written = write_results(str(tmp_path / "out"), [layers[n] for n in layers if layers[n][2] in ("labels", "shapes")])
    assert (tmp_path / "out" / "labels" / f"{sid}_msc.tif").is_file() and str(tmp_path / "out" / "objects.csv") in written
    again = get_reader(str(tmp_path / "out" / "labels" / f"{sid}_msc.tif"))()[0]
    np.testing.assert_array_equal(again[0], msc)
    assert again[1]["scale"] == meta["scale"]
    back = pd.read_csv(tmp_path / "out" / "objects.csv")
    pd.testing.assert_frame_equal(back[back.role == "msc"].reset_index(drop=True)[truth.columns], truth,
                                  check_dtype=False)
    assert len(pd.read_csv(tmp_path / "out" / "interactions.csv")) == len(lines)


# -- widgets in a real viewer -----------------------------------------------------------------------------

@needs_display
def test_segment_widget_config_round_trip_settings_cancel_and_preview(make_napari_viewer, qtbot, tmp_path, shots):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "synthetic_2d")
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment MSCs and macrophages")

    # config -> YAML -> widget -> config
    cfg = Config.from_dict({"channels": {"nuclei": "DAPI", "msc": "GFP", "macrophage": "CD68"},
                            "segment": {"msc": {"min_diameter_um": 12.5, "max_diameter_um": 40.0,
                                                "threshold": "li"},
                                        "macrophage": {"smoothing_sigma_um": 2.5}},
                            "spatial": {"radii_um": [30.0]}})
    path = tmp_path / "lungtrack.yaml"
    path.write_text(cfg.to_yaml())
    widget.config_file.value = path
    assert widget.msc_min_diameter_um.value == 12.5 and widget.nuclei_layer.value is viewer.layers["DAPI"]
    assert config_from_widget(widget) == cfg
    widget.msc_max_diameter_um.value = 41.0
    widget.save_config.clicked.emit()
    assert Config.from_yaml(path).segment.msc.max_diameter_um == 41.0
    assert Config.from_yaml(path).segment.msc.threshold == "li"  # fields without a widget survive
    apply_config(widget, Config())
    assert widget.msc_min_diameter_um.value == Config().segment.msc.min_diameter_um

    # settings persist: a second widget starts with the first one's values
    widget.msc_smoothing_sigma_um.value = 1.75
    assert get_section("segment")["msc_smoothing_sigma_um"] == 1.75
    from lungtrack_napari._widget import segment_widget

    widget2 = segment_widget()  # as in a new napari session
    assert widget2.msc_smoothing_sigma_um.value == 1.75
    widget2.close()
    widget.msc_smoothing_sigma_um.value = Config().segment.msc.smoothing_sigma_um

    # cancel: the run stops at its first stage and adds nothing
    widget()
    widget.worker.quit()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert widget.counts.value == "cancelled" and "msc labels" not in viewer.layers

    # whole image in the worker thread: same labels as the library on the same pixels
    run(qtbot, widget)
    full = viewer.layers["msc labels"]
    plain = segment_layers(viewer.layers["GFP"], viewer.layers["CD68"], viewer.layers["DAPI"],
                           config=config_from_widget(widget))  # the config file's threshold 'li' included
    np.testing.assert_array_equal(full.data, plain[0][0])
    truth = simulate_section(seed=0)
    assert abs(len(full.features) - truth.n_msc) <= 0.1 * truth.n_msc

    # preview: only the visible region, placed where it belongs. Centre on the MSC nearest the image centre.
    viewer.window._qt_window.resize(1700, 1000)
    QApplication.processEvents()
    f = full.features
    c = f.iloc[int(np.argmin(np.hypot(f.centroid_y_um - 192, f.centroid_x_um - 192)))]
    viewer.scene.camera.center = (0.0, float(c.centroid_y_um), float(c.centroid_x_um))
    viewer.scene.camera.zoom = 4.0
    widget.preview.clicked.emit()
    prev = viewer.layers["msc labels (preview)"]
    h, w = viewer.canvas.size
    y0, x0 = (max(0, int(np.floor(v - e / 8))) for v, e in ((c.centroid_y_um, h), (c.centroid_x_um, w)))
    y1, x1 = (min(384, int(np.ceil(v + e / 8))) for v, e in ((c.centroid_y_um, h), (c.centroid_x_um, w)))
    assert prev.data.shape == (y1 - y0, x1 - x0) and max(prev.data.shape) < 384
    np.testing.assert_allclose(prev.translate, (y0, x0))
    assert "nuclei labels (preview)" not in viewer.layers  # the preview skips nuclei
    # MSCs well inside the view are found by the preview as by the whole-image run (centroids within 2 um)
    inner = f[(f.centroid_y_um > y0 + 25) & (f.centroid_y_um < y1 - 25)
              & (f.centroid_x_um > x0 + 25) & (f.centroid_x_um < x1 - 25)]
    assert len(inner) >= 1
    pf = prev.features
    for _i, r in inner.iterrows():
        d = np.hypot(pf.centroid_y_um + y0 - r.centroid_y_um, pf.centroid_x_um + x0 - r.centroid_x_um)
        assert d.min() < 2.0
    assert widget.counts.value.startswith(f"preview: {len(pf)} msc")
    for layer in list(viewer.layers):
        if layer.name.endswith("(preview)"):
            layer.visible = False
    shot(viewer, shots / "napari-segment.png", reset=True)


@needs_display
def test_interactions_widget_matches_library(make_napari_viewer, qtbot, shots):
    s = simulate_section(shape=(256, 256), n_msc=8, n_macrophage=16, seed=5)
    viewer = make_napari_viewer(show=True)
    imgs = [viewer.add_image(s.image[c], **channel_layer_kwargs(n, "YX", (1.0, 1.0)))
            for c, n in enumerate(s.channel_names)]
    add_or_update_layers(viewer, segment_layers(imgs[1], imgs[2]))  # as the Segment widget adds them
    msc, mac = viewer.layers["msc labels"], viewer.layers["macrophage labels"]
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "MSC-macrophage interactions")
    widget.msc_labels.value, widget.macrophage_labels.value = msc, mac
    table = widget()
    ref = msc_macrophage_relations(np.asarray(msc.data), np.asarray(mac.data), (1.0, 1.0, 1.0), radii_um=(25.0,))
    pd.testing.assert_frame_equal(table[ref.columns], ref)
    assert len(table) == len(msc.features) and "state" in msc.features
    lines = viewer.layers["msc -> nearest macrophage"]
    assert len(lines.data) == len(table)
    np.testing.assert_allclose([np.linalg.norm(v[1] - v[0]) for v in lines.data], table["nearest_macrophage_um"],
                               rtol=1e-6)  # napari keeps vertices as float32
    # colours: each MSC label is drawn in its state's colour
    from lungtrack_napari._interactions_widget import STATE_COLORS
    from napari.utils.colormaps.standardize_color import transform_color

    for lab, state in zip(table["msc_label"], table["state"]):
        np.testing.assert_allclose(msc.colormap.map(int(lab))[:3], transform_color(STATE_COLORS[state])[0][:3],
                                   atol=1e-6)
    # clicking a row centres the camera on that MSC and selects it
    widget.msc_table.native.selectRow(2)
    r = table.iloc[2]
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], (r.centroid_y_um, r.centroid_x_um))
    assert msc.selected_label == int(r.msc_label)
    shot(viewer, shots / "napari-interactions.png", reset=True)


@needs_display
def test_coloc_widget_shapes_scope_and_row_click(make_napari_viewer, shots):
    rng = np.random.default_rng(0)
    a = rng.uniform(10, 100, (60, 80))
    b = a.copy()
    b[:, 40:] = 110 - a[:, 40:]
    viewer = make_napari_viewer(show=True)
    la = viewer.add_image(a, name="GFP", scale=(0.5, 0.5))
    lb = viewer.add_image(b, name="CD68", scale=(0.5, 0.5))
    # two rectangles in world um: left half (identical channels), right half (inverted)
    shapes = viewer.add_shapes([np.array([[0, 0], [29.5, 0], [29.5, 19.5], [0, 19.5]]),
                                np.array([[0, 20], [29.5, 20], [29.5, 39.5], [0, 39.5]])],
                               shape_type="polygon", name="rois", face_color="transparent", edge_color="white")
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Colocalization")
    widget.a_layer.value, widget.b_layer.value, widget.shapes_layer.value = la, lb, shapes
    widget.scope.value = "per Shapes polygon"
    df = widget()
    rois = df.dropna(subset=["roi"]).set_index("roi")
    assert rois.loc[1, "pearson_r"] == pytest.approx(1.0) and rois.loc[2, "pearson_r"] == pytest.approx(-1.0)
    row = int(np.flatnonzero(df["roi"].to_numpy() == 2)[0])
    widget.coefficients.native.selectRow(row)
    assert shapes.selected_data == {1}
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], (14.75, 29.75))


@needs_display
def test_coloc_widget_per_msc_on_the_sample_section(make_napari_viewer, shots):
    from lungtrack.coloc_table import coloc_table

    viewer = make_napari_viewer(show=True)
    dapi, gfp, cd68 = viewer.open_sample(PLUGIN, "synthetic_2d")
    add_or_update_layers(viewer, segment_layers(gfp, cd68))
    msc = viewer.layers["msc labels"]
    viewer.layers["macrophage labels"].visible = False
    viewer.layers["tissue"].visible = False
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Colocalization")
    widget.a_layer.value, widget.b_layer.value, widget.labels_layer.value = gfp, cd68, msc
    widget.scope.value = "per object label"
    df = widget()
    # The widget's table is the library's, on the same pixels.
    ref = coloc_table(np.asarray(gfp.data), np.asarray(cd68.data), objects=np.asarray(msc.data),
                      spacing_um=(1.0, 1.0, 1.0), sample_id="GFP")
    pd.testing.assert_frame_equal(df, ref)
    objects = df[df["scope"] == "object"]
    assert sorted(objects["roi"].astype(int)) == sorted(msc.features["label"])
    assert list(widget.coefficients.value["columns"][:5]) == ["scope", "roi", "pearson_r", "manders_m1", "manders_m2"]
    # Clicking the row of an MSC selects it and centres the camera on it.
    row = int(np.flatnonzero(df["scope"].to_numpy() == "object")[3])
    widget.coefficients.native.selectRow(row)
    lab = int(df["roi"].iloc[row])
    assert msc.selected_label == lab and msc.show_selected_label
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], np.argwhere(np.asarray(msc.data) == lab).mean(0))
    assert "cytofluorogram" in viewer.window.dock_widgets
    msc.show_selected_label = False  # the screenshot shows all MSC outlines; the camera stays on the chosen one
    viewer.window._qt_window.resize(1700, 1000)
    QApplication.processEvents()
    viewer.scene.camera.zoom = 3.0
    shot(viewer, shots / "napari-coloc.png")


@needs_display
def test_experiment_widget_runs_analyze_and_opens_a_sample(make_napari_viewer, qtbot, tmp_path, shots):
    exp = tmp_path / "exp"
    simulate_experiment(exp, groups={"BM": 8.0}, time_h=(2.0, 24.0), n_animals=2, shape=(160, 160), seed=4)
    viewer = make_napari_viewer(show=True)
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Experiment")
    widget.experiment.value, widget.config_file.value, widget.out.value = exp, exp / "config.yaml", tmp_path / "res"
    worker = run(qtbot, widget, timeout=120_000)
    assert widget.status.value == "4 samples in res", widget.status.value
    assert "persistence" in viewer.window.dock_widgets
    samples = pd.read_csv(tmp_path / "res" / "samples.csv")
    assert list(widget.sample.choices) == samples["sample_id"].tolist()
    assert worker is widget.worker
    widget.sample.value = samples["sample_id"].iloc[1]
    widget.open_sample.clicked.emit()
    sid = samples["sample_id"].iloc[1]
    msc = viewer.layers[f"msc labels [{sid}]"]
    assert list(widget.sample.choices) == samples["sample_id"].tolist()  # still there after layers changed
    assert len(msc.features) == samples.set_index("sample_id").loc[sid, "n_msc"]
    truth = pd.read_csv(exp / "truth" / "samples.csv").set_index("sample_id")
    assert abs(len(msc.features) - truth.loc[sid, "n_msc"]) <= max(1, 0.1 * truth.loc[sid, "n_msc"])
    shot(viewer, shots / "napari-experiment.png", reset=True)


@needs_display
def test_export_widget_writes_tables_figures_screenshot(make_napari_viewer, results_folder, tmp_path, shots):
    viewer = make_napari_viewer(show=True)
    viewer.open(str(results_folder), plugin=PLUGIN)
    from lungtrack_napari._experiment_widget import dock_figure, persistence_figure_of

    dock_figure(viewer, persistence_figure_of(results_folder), "persistence")
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Export")
    widget.folder.value = tmp_path / "export"
    widget.table_format.value = "parquet"
    widget.results_folder.value = True
    files = widget()
    sid = pd.read_csv(results_folder / "samples.csv")["sample_id"].iloc[0]
    msc = viewer.layers[f"msc labels [{sid}]"]
    table = pd.read_parquet(tmp_path / "export" / f"msc_labels_{sid}.parquet")
    pd.testing.assert_frame_equal(table, msc.features, check_dtype=False)
    assert str(tmp_path / "export" / "figures" / "persistence.png") in files
    import imageio.v3 as iio

    img = iio.imread(tmp_path / "export" / "screenshot.png")
    assert img.ndim == 3 and img[..., :3].std() > 5
    from lungtrack_napari._export_widget import scale_bar_of

    assert not scale_bar_of(viewer).visible  # restored after the screenshot
    # The scale bar (drawn at the bottom right) is what differs from a plain canvas screenshot.
    plain = viewer.screenshot(canvas_only=True)
    assert plain.shape == img.shape
    diff = np.abs(plain[..., :3].astype(int) - img[..., :3].astype(int)).max(axis=2) > 0
    ys, xs = np.nonzero(diff)
    assert len(ys) > 100 and ys.min() > img.shape[0] / 2 and xs.min() > img.shape[1] / 2
    import shutil

    shutil.copy(tmp_path / "export" / "screenshot.png", shots / "napari-export-screenshot.png")
    back = pd.read_csv(tmp_path / "export" / "results" / "objects.csv")
    assert len(back[back.role == "msc"]) == len(msc.features)
    meta = json.loads((results_folder / "run.json").read_text())
    assert meta["inputs"][0]["sample_id"] == sid
    shot(viewer, shots / "napari-export.png")
