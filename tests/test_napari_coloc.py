"""The napari "Colocalization" widget: layers -> lungtrack.coloc_table -> table and cytofluorogram."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("lungtrack_napari")
pytest.importorskip("lungtrack.coloc_table")

from lungtrack_napari._coloc_widget import coloc_layers  # noqa: E402

pytestmark = [pytest.mark.napari, pytest.mark.filterwarnings("ignore:System theme detection:UserWarning")]

needs_display = pytest.mark.skipif(
    sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
    reason="no display: run napari tests under `xvfb-run -a python -m pytest`",
)


def _scene():
    """ROI 1: identical channels (r = 1); ROI 2: inverted (r = -1)."""
    rng = np.random.default_rng(0)
    a = rng.uniform(10, 100, (60, 80))
    b = a.copy()
    b[:, 40:] = 110 - a[:, 40:]
    rois = np.zeros(a.shape, np.int32)
    rois[:, :40] = 1
    rois[:, 40:] = 2
    return a, b, rois


def test_coloc_layers_per_roi_plain():
    from napari.layers import Image, Labels

    a, b, rois = _scene()
    df = coloc_layers(Image(a, name="GFP"), Image(b, name="CD68"), Labels(rois), scope="per ROI label")
    by_roi = df.dropna(subset=["roi"]).set_index("roi")
    assert by_roi.loc[1, "pearson_r"] == pytest.approx(1.0)
    assert by_roi.loc[2, "pearson_r"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="needs a labels layer"):
        coloc_layers(Image(a), Image(b), None, scope="per ROI label")


@needs_display
def test_coloc_widget_in_viewer(make_napari_viewer, tmp_path):
    a, b, rois = _scene()
    viewer = make_napari_viewer()
    la = viewer.add_image(a, name="GFP", scale=(0.5, 0.5))
    lb = viewer.add_image(b, name="CD68", scale=(0.5, 0.5))
    lr = viewer.add_labels(rois, name="rois", scale=(0.5, 0.5))
    _, widget = viewer.window.add_plugin_dock_widget("lungtrack-napari", "Colocalization")
    widget.a_layer.value, widget.b_layer.value, widget.labels_layer.value = la, lb, lr
    widget.scope.value = "per ROI label"
    df = widget()
    assert df.dropna(subset=["roi"]).set_index("roi").loc[2, "pearson_r"] == pytest.approx(-1.0)
    table = widget.coefficients.value
    assert "pearson_r" in table["columns"] and len(table["data"]) == len(df)
    assert "cytofluorogram" in viewer.window.dock_widgets
    shot = viewer.screenshot(str(tmp_path / "coloc.png"), canvas_only=False)
    assert shot.std() > 0
