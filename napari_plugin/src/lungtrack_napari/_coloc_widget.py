"""Widget "Colocalization": two image layers (+ optional labels) -> `lungtrack.coloc_table` -> a table and a cytofluorogram.

`coloc_layers` is the plain function (layers in, DataFrame out, no Qt); `coloc_widget`
is its magicgui form, which shows the table under the button and the 2D histogram
with the Costes thresholds in a dock. All numbers come from `lungtrack`.
"""

from typing import Optional

import napari
import numpy as np
import pandas as pd
from magicgui import magic_factory
from magicgui.widgets import Table

from ._widget import _spatial_block

SCOPES = ("whole image", "inside labels (mask)", "per ROI label", "per object label")


def coloc_layers(a_layer: "napari.layers.Image", b_layer: "napari.layers.Image",
                 labels_layer: Optional["napari.layers.Labels"] = None, *, scope: str = "whole image",
                 convention: str = "jacop", randomisations: int = 0) -> pd.DataFrame:
    """Colocalization table of two image layers (first time point), in the chosen scope.

    Examples
    --------
    The table has ``scope, roi, z, frame`` and one column per coefficient
    (``pearson_r, manders_m1, manders_m2, costes_threshold_a, ...``).
    """
    from lungtrack.coloc_table import coloc_table

    a, spacing, _ = _spatial_block(a_layer)
    b, _, _ = _spatial_block(b_layer)
    if a.shape != b.shape:
        raise ValueError(f"layers {a_layer.name!r} {a.shape} and {b_layer.name!r} {b.shape} differ in shape")
    kwargs: dict = {}
    if scope != "whole image":
        if labels_layer is None:
            raise ValueError(f"scope {scope!r} needs a labels layer (tissue mask, ROIs or objects)")
        labels = np.asarray(labels_layer.data)
        if labels.shape != a.shape:
            raise ValueError(f"labels layer {labels_layer.name!r} {labels.shape} does not match the images {a.shape}")
        if scope == "inside labels (mask)":
            kwargs["mask"] = labels > 0
        elif scope == "per ROI label":
            kwargs["rois"] = labels
        else:
            kwargs["objects"] = labels
    return coloc_table(a, b, spacing_um=spacing, convention=convention, randomisations=randomisations,
                       sample_id=a_layer.name, **kwargs)


def _show_cytofluorogram(viewer, a_layer, b_layer, labels_layer, scope) -> None:
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

    from lungtrack.figures import cytofluorogram

    a, _, _ = _spatial_block(a_layer)
    b, _, _ = _spatial_block(b_layer)
    mask = None
    if labels_layer is not None and scope != "whole image":
        mask = np.asarray(labels_layer.data) > 0
    fig = cytofluorogram(a, b, mask=mask, names=(a_layer.name, b_layer.name))
    canvas = FigureCanvasQTAgg(fig)
    canvas.setMinimumSize(360, 320)
    name = "cytofluorogram"
    if name in viewer.window.dock_widgets:
        viewer.window.remove_dock_widget(viewer.window.dock_widgets[name])
    viewer.window.add_dock_widget(canvas, name=name, area="right")


def _add_table(widget) -> None:
    table = Table(name="coefficients", value={"": []}, gui_only=True)
    widget.append(table)

    def update(df):
        if isinstance(df, pd.DataFrame):
            shown = df.drop(columns=[c for c in ("sample_id",) if c in df.columns])
            table.value = shown.round(4).astype(object).where(shown.notna(), "").to_dict("list")

    widget.called.connect(update)


@magic_factory(
    call_button="Measure",
    widget_init=_add_table,
    a_layer={"label": "channel A (MSC)", "tooltip": "First channel, e.g. the MSC label."},
    b_layer={"label": "channel B (macrophage)", "tooltip": "Second channel, e.g. the macrophage marker."},
    labels_layer={"label": "labels (mask / ROIs / objects)",
                  "tooltip": "Tissue mask, hand-drawn ROIs or segmented objects (e.g. 'msc labels')."},
    scope={"choices": SCOPES, "tooltip": "Which pixels: all, inside the labels, one row per ROI, one row per object."},
    convention={"choices": ("jacop", "coloc2"),
                "tooltip": "Manders: jacop/CellProfiler (thresholded denominators) or Fiji Coloc 2 (whole-scope denominators)."},
    randomisations={"min": 0, "max": 10000, "tooltip": "Costes randomisation test (0 = skip; p shown as NaN)."},
)
def coloc_widget(
    viewer: napari.viewer.Viewer,
    a_layer: napari.layers.Image,
    b_layer: napari.layers.Image,
    labels_layer: Optional[napari.layers.Labels] = None,
    scope: str = "whole image",
    convention: str = "jacop",
    randomisations: int = 0,
) -> pd.DataFrame:
    """Pearson, Manders (Costes thresholds) and more for two channels; table below, cytofluorogram docked."""
    df = coloc_layers(a_layer, b_layer, labels_layer, scope=scope, convention=convention,
                      randomisations=randomisations)
    _show_cytofluorogram(viewer, a_layer, b_layer, labels_layer, scope)
    return df
