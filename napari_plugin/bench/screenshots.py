"""Screenshots for docs/napari.md: the widgets in use on the synthetic section.

``xvfb-run -a python napari_plugin/bench/screenshots.py OUT_DIR`` writes napari-coloc.png
(per-MSC colocalization on the sample section; the tests write napari-segment/-interactions/
-experiment/-export.png, and a test-scene napari-coloc.png, to ``$LUNGTRACK_NAPARI_SCREENSHOTS``).
"""
import sys
from pathlib import Path


def main(out):
    import napari
    from lungtrack_napari._widget import segment_layers
    from qtpy.QtWidgets import QApplication

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1700, 1000)
    layers = viewer.open_sample("lungtrack-napari", "synthetic_2d")
    gfp, cd68 = layers[1], layers[2]
    for d, kw, _k in segment_layers(gfp, cd68):
        viewer.add_labels(d, **kw)
    viewer.layers["macrophage labels"].visible = False
    _dock, coloc = viewer.window.add_plugin_dock_widget("lungtrack-napari", "Colocalization")
    coloc.a_layer.value, coloc.b_layer.value = gfp, cd68
    coloc.labels_layer.value = viewer.layers["msc labels"]
    coloc.scope.value = "per object label"
    coloc()
    coloc.coefficients.native.selectRow(3)  # centres on that MSC and selects it
    viewer.scene.camera.zoom = 2.5
    QApplication.processEvents()
    viewer.screenshot(str(out / "napari-coloc.png"), canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "screenshots")
