"""The napari "Track MSCs and macrophages (time-lapse)" widget: a Tracks layer equal to `lungtrack track`.

Run under a virtual display: ``xvfb-run -a python -m pytest tests/test_napari_track.py``.
Screenshots go to ``$LUNGTRACK_NAPARI_SCREENSHOTS`` (default: the test's tmp folder).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("lungtrack_napari")
QApplication = pytest.importorskip("qtpy.QtWidgets").QApplication

from lungtrack_napari._track_widget import track_layers  # noqa: E402

from lungtrack.track import TRACK_ROLES, match_truth, napari_tracks, track_image, tracking_accuracy  # noqa: E402

pytestmark = [pytest.mark.napari, pytest.mark.filterwarnings("ignore:System theme detection:UserWarning"),
              pytest.mark.skipif(sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                                           or os.environ.get("WAYLAND_DISPLAY")),
                                 reason="no display: run napari tests under `xvfb-run -a python -m pytest`")]
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "timelapse"
PLUGIN = "lungtrack-napari"


@pytest.fixture(autouse=True)
def _own_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGTRACK_NAPARI_SETTINGS", str(tmp_path / "settings.json"))


def test_track_widget_tracks_layer_equals_cli(make_napari_viewer, qtbot, tmp_path):
    # The library's (and `lungtrack track`'s) result on the shipped movie is the reference.
    ref = track_image(SAMPLE / "timelapse.ome.tif", tmp_path / "cli", SAMPLE / "config.yaml", figures=False)
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(SAMPLE / "timelapse.ome.tif"), plugin=PLUGIN)
    gfp, cd68 = (next(lay for lay in layers if lay.name == n) for n in ("GFP", "CD68"))
    assert gfp.metadata["time_interval_s"] == 600.0  # the frame interval travels from the OME metadata
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Track MSCs and macrophages (time-lapse)")
    widget.msc_layer.value, widget.macrophage_layer.value = gfp, cd68
    assert widget.frame_interval_min.value == 0.0  # 0 = from the metadata
    widget()
    qtbot.waitUntil(lambda: not widget.running and "tracks" in viewer.layers, timeout=120_000)
    layer = viewer.layers["tracks"]
    assert isinstance(layer, napari.layers.Tracks)
    data, features, _graph = napari_tracks(ref.tracks, ref.summary, spacing_um=(1.0, 1.0), edges=ref.edges)
    np.testing.assert_allclose(layer.data, data)
    assert len(np.unique(layer.data[:, 0])) == 13  # 6 MSCs + 7 macrophages
    f = layer.features
    for col in ("role", "fate", "dwell_min", "n_contacts", "contact_min"):
        assert col in f.columns
        pd.testing.assert_series_equal(f[col].reset_index(drop=True), features[col], check_names=False)
    fates = f.assign(track_id=layer.data[:, 0]).drop_duplicates("track_id").query("role == 'msc'").fate
    assert fates.value_counts().to_dict() == {"fragmented": 3, "censored": 2, "disappeared": 1}
    pd.testing.assert_frame_equal(layer.metadata["track_summary"], ref.summary)
    assert layer.metadata["frame_interval_min"] == 10.0
    assert tuple(layer.scale) == (1.0, 1.0, 1.0)
    assert widget.status.value.startswith("6 MSCs (censored 2, disappeared 1, fragmented 3)")
    shots = Path(os.environ.get("LUNGTRACK_NAPARI_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    viewer.dims.set_point(0, 15)
    viewer.window._qt_window.resize(1700, 1000)
    QApplication.processEvents()
    viewer.reset_view()
    viewer.screenshot(str(shots / "napari-tracks.png"), canvas_only=False)


def test_track_layers_on_sample_layers_scores_against_truth(make_napari_viewer):
    from lungtrack.synthetic import simulate_timelapse

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "synthetic_timelapse")
    gfp, cd68 = viewer.layers["GFP"], viewer.layers["CD68"]
    # The sample layers carry no frame interval: without one the error says what to do.
    with pytest.raises(Exception, match="frame_interval_min"):
        track_layers(gfp, cd68, use_dask=False)
    res, (data, kw, kind) = track_layers(gfp, cd68, frame_interval_min=10.0)
    tl = simulate_timelapse(seed=0)
    acc = tracking_accuracy(res.tracks, {r: tl.labels[r] for r in TRACK_ROLES}, tl.spacing_um)
    assert acc["det"] == 1.0 and acc["link_recall"] == 1.0 and acc["link_precision"] == 1.0
    assert kind == "tracks" and data.shape == (len(res.tracks), 4)
    truth = match_truth(res.tracks, {r: tl.labels[r] for r in TRACK_ROLES}, tl.spacing_um)
    assert (truth > 0).all()
    with pytest.raises(ValueError, match="time-lapse layer"):
        track_layers(viewer.add_image(np.zeros((32, 32)), name="still"), cd68, frame_interval_min=10.0)
