"""Widget "MSC-macrophage interactions": labels layers -> `lungtrack.spatial.msc_macrophage_relations`.

`interactions_layers` is the plain function (layers in: the per-MSC table and a Shapes
layer of lines from each MSC to its nearest macrophage); `interactions_widget` shows the
table, colours MSCs by state (intact, near, contact, fragmented, engulfed) and centres
the camera on an MSC when its row is clicked. All numbers come from `lungtrack`.
"""

from typing import Optional

import napari
import numpy as np
import pandas as pd
from magicgui import magic_factory

from lungtrack.config import SpatialConfig
from lungtrack.spatial import msc_macrophage_relations, object_centroids_um

from ._reader import nearest_lines
from ._widget import _camera, add_or_update_layers, add_result_table

#: Colour of each MSC state (`lungtrack.spatial.msc_states`).
STATE_COLORS = {"intact": "limegreen", "near": "yellow", "contact": "orange", "fragmented": "gray",
                "engulfed": "magenta"}
LINES_NAME = "msc -> nearest macrophage"
_SPATIAL = SpatialConfig()


def _labels_and_spacing(layer):
    data = np.asarray(layer.data)
    if data.ndim not in (2, 3):
        raise ValueError(f"labels layer {layer.name!r} has {data.ndim} dimensions; expected (Y, X) or (Z, Y, X)")
    scale = tuple(float(s) for s in layer.scale[-data.ndim:])
    return data, (scale if data.ndim == 3 else (1.0, *scale))


def interactions_layers(msc_labels: "napari.layers.Labels", macrophage_labels: "napari.layers.Labels", *,
                        radii_um=tuple(_SPATIAL.radii_um), contact_tolerance_um: float = _SPATIAL.contact_tolerance_um,
                        near_um: float = 10.0) -> tuple[pd.DataFrame, tuple | None]:
    """Per-MSC relations of two labels layers and the nearest-macrophage lines.

    Returns
    -------
    table : DataFrame
        `lungtrack.spatial.msc_macrophage_relations` (one row per MSC, with ``state``),
        plus ``centroid_y_um``, ``centroid_x_um`` (and ``centroid_z_um`` in 3D) in world
        coordinates of the MSC layer (its translate included).
    lines : layer-data tuple or None
        Shapes layer ``msc -> nearest macrophage`` on the MSC layer's grid.
    """
    msc, spacing = _labels_and_spacing(msc_labels)
    mac, _ = _labels_and_spacing(macrophage_labels)
    if mac.shape != msc.shape:
        raise ValueError(f"labels layers {msc_labels.name!r} {msc.shape} and {macrophage_labels.name!r} {mac.shape} "
                         "differ in shape; choose the labels of one image")
    table = msc_macrophage_relations(msc, mac, spacing, radii_um=radii_um, contact_tolerance_um=contact_tolerance_um,
                                     near_um=near_um)
    ndim = msc.ndim
    axes = ["z", "y", "x"][-ndim:]
    rows = []
    for role, lab in (("msc", msc), ("macrophage", mac)):
        ids, cen, _n = object_centroids_um(lab, spacing)
        for i, c in zip(ids, np.asarray(cen).reshape(len(ids), ndim)):
            rows.append({"role": role, "label": int(i), **{f"centroid_{a}_um": float(v) for a, v in zip(axes, c)}})
    objects = pd.DataFrame(rows, columns=["role", "label"] + [f"centroid_{a}_um" for a in axes])
    lines = nearest_lines(table, objects, spacing, is_3d=ndim == 3)
    if lines is not None:
        lines[1]["translate"] = tuple(float(t) for t in msc_labels.translate[-ndim:])
        for key in ("units", "axis_labels"):  # the same as the MSC layer, so napari's scale bar agrees
            if hasattr(msc_labels, key):
                lines[1][key] = tuple(getattr(msc_labels, key)[-ndim:])
    offset = np.asarray(msc_labels.translate[-ndim:], float)
    pos = objects[objects["role"] == "msc"].set_index("label")
    for a, off in zip(axes, offset):
        table[f"centroid_{a}_um"] = pos.loc[table["msc_label"].astype(int), f"centroid_{a}_um"].to_numpy() + off
    return table, lines


def colour_by_state(layer: "napari.layers.Labels", table: pd.DataFrame) -> None:
    """Colour each MSC label by its ``state`` (`STATE_COLORS`); labels not in the table stay transparent."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {None: "transparent", 0: "transparent"}
    colors.update({int(lab): STATE_COLORS.get(str(state), "white")
                   for lab, state in zip(table["msc_label"], table["state"])})
    layer.colormap = DirectLabelColormap(color_dict=colors)


def centre_on(viewer, table: pd.DataFrame, row: int, layer=None) -> None:
    """Centre the camera on the MSC of ``table`` row ``row`` (and select its label)."""
    r = table.iloc[int(row)]
    ndim = 3 if "centroid_z_um" in table.columns else 2
    cols = ["centroid_z_um", "centroid_y_um", "centroid_x_um"][-ndim:]
    centre = [float(r[c]) for c in cols][-2:]
    _camera(viewer).center = tuple(_camera(viewer).center[:-2]) + tuple(centre)
    if layer is not None:
        layer.selected_label = int(r["msc_label"])


def _init(widget) -> None:
    from ._settings import persist
    from ._widget import _viewer_of

    def shown(df):
        keep = [c for c in ("msc_label", "state", "nearest_macrophage_um", "nearest_macrophage_surface_um",
                            "contact", "engulfed_fraction") if c in df.columns]
        return df[keep].round(2).astype(object).to_dict("list")

    add_result_table(widget, "msc_table", shown=shown,
                     on_row=lambda df, row: centre_on(_viewer_of(widget), df, row, widget.msc_labels.value))
    persist(widget, "interactions", names=["contact_tolerance_um", "near_um", "radius_um", "colour_msc_by_state"])


@magic_factory(
    call_button="Measure interactions",
    widget_init=_init,
    msc_labels={"label": "MSC labels", "tooltip": "Labels layer of the MSCs (e.g. 'msc labels' from Segment)."},
    macrophage_labels={"label": "macrophage labels", "tooltip": "Labels layer of the macrophages."},
    radius_um={"label": "neighbourhood radius (um)", "min": 0.0, "max": 1000.0,
               "tooltip": "Count macrophage centroids within this distance of each MSC centroid "
                          f"(spatial.radii_um: {SpatialConfig.model_fields['radii_um'].description})"},
    contact_tolerance_um={"label": "contact tolerance (um)", "min": 0.0, "max": 100.0,
                          "tooltip": SpatialConfig.model_fields["contact_tolerance_um"].description},
    near_um={"label": "near within (um)", "min": 0.0, "max": 1000.0,
             "tooltip": "An MSC whose nearest macrophage surface is this close (but not touching) is 'near'."},
    colour_msc_by_state={"label": "colour MSCs by state",
                         "tooltip": "intact green, near yellow, contact orange, fragmented grey, engulfed magenta"},
)
def interactions_widget(
    viewer: napari.viewer.Viewer,
    msc_labels: napari.layers.Labels,
    macrophage_labels: napari.layers.Labels,
    radius_um: float = float(_SPATIAL.radii_um[0]),
    contact_tolerance_um: float = _SPATIAL.contact_tolerance_um,
    near_um: float = 10.0,
    colour_msc_by_state: bool = True,
) -> Optional[pd.DataFrame]:
    """One row per MSC: nearest macrophage, contact, engulfment, state; lines to the nearest macrophage."""
    table, lines = interactions_layers(msc_labels, macrophage_labels, radii_um=(radius_um,),
                                       contact_tolerance_um=contact_tolerance_um, near_um=near_um)
    if lines is not None:
        add_or_update_layers(viewer, [lines])
    elif LINES_NAME in viewer.layers:
        viewer.layers.remove(LINES_NAME)
    if colour_msc_by_state and len(table):
        colour_by_state(msc_labels, table)
    f = msc_labels.features
    if isinstance(f, pd.DataFrame) and "label" in f.columns and len(f) == len(table):
        extra = table.set_index("msc_label").drop(columns=[c for c in table.columns if c in f.columns], errors="ignore")
        msc_labels.features = f.join(extra, on="label")
    return table
