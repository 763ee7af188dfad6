"""Widget "Colocalization": two image layers (+ optional labels or polygons) -> `lungtrack.coloc_table`.

`coloc_layers` is the plain function (layers in, DataFrame out, no Qt); `coloc_widget`
is its magicgui form, which shows the table under the button and the 2D histogram
with the Costes thresholds in a dock. Scopes: whole image, a tissue mask (any labels
layer, > 0), one row per label of a labels layer (hand-drawn ROIs), one row per object,
or one row per polygon of a Shapes layer. Clicking a ROI row selects the ROI (label or
shape) and centres the camera on it. All numbers come from `lungtrack`.
"""

from typing import Optional

import napari
import numpy as np
import pandas as pd
from magicgui import magic_factory

from ._widget import _camera, _spatial_block, add_result_table

SCOPES = ("whole image", "inside labels (mask)", "per ROI label", "per object label", "per Shapes polygon")


def shapes_to_polygons(shapes_layer: "napari.layers.Shapes", image_layer: "napari.layers.Image") -> dict:
    """``{roi_id: (N, 2) (row, col) vertices}`` in ``image_layer``'s pixels; ids are shape index + 1.

    Vertices go through world coordinates (scale and translate of both layers), so
    polygons drawn on any layer land on the right pixels. Only polygons and rectangles
    (and ellipses, as their vertex polygons) are used; lines and paths are skipped.
    """
    out = {}
    for i, (verts, kind) in enumerate(zip(shapes_layer.data, shapes_layer.shape_type)):
        if kind in ("line", "path") or len(verts) < 3:
            continue
        v = np.asarray(verts, float)[:, -2:]
        world = v * np.asarray(shapes_layer.scale[-2:]) + np.asarray(shapes_layer.translate[-2:])
        out[i + 1] = (world - np.asarray(image_layer.translate[-2:])) / np.asarray(image_layer.scale[-2:])
    return out


def coloc_layers(a_layer: "napari.layers.Image", b_layer: "napari.layers.Image",
                 labels_layer: Optional["napari.layers.Labels"] = None, *, scope: str = "whole image",
                 convention: str = "jacop", randomisations: int = 0,
                 shapes_layer: Optional["napari.layers.Shapes"] = None) -> pd.DataFrame:
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
    if scope == "per Shapes polygon":
        if shapes_layer is None:
            raise ValueError("scope 'per Shapes polygon' needs a Shapes layer with polygons or rectangles")
        polygons = shapes_to_polygons(shapes_layer, a_layer)
        if not polygons:
            raise ValueError(f"Shapes layer {shapes_layer.name!r} has no polygon or rectangle; draw one first")
        kwargs["rois"] = polygons
    elif scope != "whole image":
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


def _show_cytofluorogram(viewer, a_layer, b_layer, labels_layer, scope, shapes_layer=None) -> None:
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

    from lungtrack.coloc_table import polygon_rois
    from lungtrack.figures import cytofluorogram

    a, _, _ = _spatial_block(a_layer)
    b, _, _ = _spatial_block(b_layer)
    mask = None
    if scope == "per Shapes polygon" and shapes_layer is not None:
        masks = [m for _i, m in polygon_rois(shapes_to_polygons(shapes_layer, a_layer), a.shape[-2:])]
        mask = np.broadcast_to(np.logical_or.reduce(masks), a.shape) if masks else None
    elif labels_layer is not None and scope != "whole image":
        mask = np.asarray(labels_layer.data) > 0
    fig = cytofluorogram(a, b, mask=mask, names=(a_layer.name, b_layer.name))
    canvas = FigureCanvasQTAgg(fig)
    canvas.setMinimumSize(360, 320)
    name = "cytofluorogram"
    if name in viewer.window.dock_widgets:
        viewer.window.remove_dock_widget(viewer.window.dock_widgets[name])
    viewer.window.add_dock_widget(canvas, name=name, area="right")


def select_roi(viewer, roi, *, labels_layer=None, shapes_layer=None, scope: str = "per ROI label") -> None:
    """Select ROI ``roi`` (a label or a shape index + 1) and centre the camera on it."""
    if scope == "per Shapes polygon" and shapes_layer is not None:
        i = int(roi) - 1
        shapes_layer.selected_data = {i}
        v = np.asarray(shapes_layer.data[i], float)[:, -2:]
        centre = v.mean(axis=0) * np.asarray(shapes_layer.scale[-2:]) + np.asarray(shapes_layer.translate[-2:])
        viewer.layers.selection.active = shapes_layer
    elif labels_layer is not None:
        labels_layer.selected_label = int(roi)
        labels_layer.show_selected_label = True
        pix = np.argwhere(np.asarray(labels_layer.data) == int(roi))
        if not len(pix):
            return
        mean = pix.mean(axis=0)[-2:]
        centre = mean * np.asarray(labels_layer.scale[-2:]) + np.asarray(labels_layer.translate[-2:])
        viewer.layers.selection.active = labels_layer
    else:
        return
    _camera(viewer).center = tuple(_camera(viewer).center[:-2]) + tuple(float(c) for c in centre)


def _add_table(widget) -> None:
    from ._settings import persist

    def shown(df):
        shown = df.drop(columns=[c for c in ("sample_id",) if c in df.columns]).dropna(axis=1, how="all")
        first = [c for c in ("scope", "roi", "pearson_r", "manders_m1", "manders_m2") if c in shown.columns]
        shown = shown[first + [c for c in shown.columns if c not in first]]
        return shown.round(4).astype(object).where(shown.notna(), "").to_dict("list")

    def on_row(df, row):
        roi = df["roi"].iloc[row] if "roi" in df.columns else None
        if roi is None or pd.isna(roi) or roi == "":
            return
        from ._widget import _viewer_of

        select_roi(_viewer_of(widget), roi, labels_layer=widget.labels_layer.value,
                   shapes_layer=widget.shapes_layer.value, scope=widget.scope.value)

    add_result_table(widget, "coefficients", shown=shown, on_row=on_row)
    persist(widget, "coloc", names=["scope", "convention", "randomisations"])


@magic_factory(
    call_button="Measure",
    widget_init=_add_table,
    a_layer={"label": "channel A (MSC)", "tooltip": "First channel, e.g. the MSC label."},
    b_layer={"label": "channel B (macrophage)", "tooltip": "Second channel, e.g. the macrophage marker."},
    labels_layer={"label": "labels (mask / ROIs / objects)",
                  "tooltip": "Tissue mask, hand-drawn ROIs or segmented objects (e.g. 'msc labels')."},
    shapes_layer={"label": "polygons (Shapes)", "tooltip": "A Shapes layer of polygons/rectangles: one row per shape."},
    scope={"choices": SCOPES, "tooltip": "Which pixels: all, inside the labels (e.g. 'tissue'), one row per ROI "
                                         "label, one row per object, one row per Shapes polygon."},
    convention={"choices": ("jacop", "coloc2"),
                "tooltip": "Manders: jacop/CellProfiler (thresholded denominators) or Fiji Coloc 2 (whole-scope denominators)."},
    randomisations={"min": 0, "max": 10000, "tooltip": "Costes randomisation test (0 = skip; p shown as NaN)."},
)
def coloc_widget(
    viewer: napari.viewer.Viewer,
    a_layer: napari.layers.Image,
    b_layer: napari.layers.Image,
    labels_layer: Optional[napari.layers.Labels] = None,
    shapes_layer: Optional[napari.layers.Shapes] = None,
    scope: str = "whole image",
    convention: str = "jacop",
    randomisations: int = 0,
) -> pd.DataFrame:
    """Pearson, Manders (Costes thresholds) and more for two channels; table below, cytofluorogram docked."""
    df = coloc_layers(a_layer, b_layer, labels_layer, scope=scope, convention=convention,
                      randomisations=randomisations, shapes_layer=shapes_layer)
    _show_cytofluorogram(viewer, a_layer, b_layer, labels_layer, scope, shapes_layer)
    return df
