"""Widget "Segment MSCs and macrophages": napari layers -> `lungtrack.segment.segment_image` -> Labels layers.

`segment_layers` is the plain function (layers in, layer-data tuples out, no Qt);
`segment_widget` is its magicgui form: it adds or updates the Labels layers in the
viewer and shows the object counts. All computation happens in `lungtrack`.
"""
from typing import Optional

import napari
import numpy as np
from magicgui import magic_factory
from magicgui.widgets import Label

from lungtrack.config import Config, RoleSegmentation, load_config
from lungtrack.measure import measure_objects
from lungtrack.segment import segment_image

from ._reader import channel_colormap

#: Output Labels layer name per role (the widget updates layers with these names).
LAYER_NAMES = {"msc": "msc labels", "macrophage": "macrophage labels", "nuclei": "nuclei labels", "tissue": "tissue"}

_DEFAULTS = Config().segment


def _tip(role: str, field: str) -> str:
    """Tooltip: the Config field description (the single source of help text)."""
    return f"{role}: {RoleSegmentation.model_fields[field].description} (segment.{role}.{field} in the config)"


def _spatial_block(layer: "napari.layers.Image"):
    """The first time point of a layer as numpy (Y, X) or (Z, Y, X), its spacing (z, y, x) and placement.

    Axes come from ``layer.metadata['axes']`` (set by the lungtrack reader); otherwise a
    2D layer is (Y, X), a 3D layer (Z, Y, X), and leading axes of 4D+ layers are taken
    at index 0 (first time point).
    """
    if getattr(layer, "rgb", False):
        raise ValueError(f"layer {layer.name!r} is RGB; choose a single-channel image layer")
    data = layer.data[0] if layer.multiscale else layer.data
    ndim = data.ndim
    axes = str(layer.metadata.get("axes", "")).upper()
    if len(axes) != ndim:
        axes = "YX" if ndim == 2 else "T" * (ndim - 3) + "ZYX"
    n_spatial = sum(a in "ZYX" for a in axes)
    if ndim < 2 or axes[-n_spatial:] != "ZYX"[-n_spatial:]:
        raise ValueError(f"layer {layer.name!r} has axes {axes!r}; expected (..., [Z,] Y, X)")
    block = np.asarray(data[(0,) * (ndim - n_spatial)])  # reads only this time point
    scale = tuple(float(s) for s in layer.scale[-n_spatial:])
    spacing = scale if n_spatial == 3 else (1.0,) + scale
    # Labels sit exactly on the image: same scale, translate and (napari >= 0.6) units and axis labels.
    placement = {"scale": scale, "translate": tuple(float(t) for t in layer.translate[-n_spatial:])}
    for key in ("units", "axis_labels"):
        if hasattr(layer, key):
            placement[key] = tuple(getattr(layer, key)[-n_spatial:])
    return block, spacing, placement


def segment_layers(
    msc_layer: "napari.layers.Image",
    macrophage_layer: "napari.layers.Image",
    nuclei_layer: Optional["napari.layers.Image"] = None,
    *,
    config: Config | dict | None = None,
) -> list[tuple]:
    """Segment the chosen layers with lungtrack and return Labels layer-data tuples.

    Parameters
    ----------
    msc_layer, macrophage_layer : napari.layers.Image
        MSC label channel and macrophage marker channel (same spatial shape).
    nuclei_layer : napari.layers.Image, optional
        Nuclear stain; without it no nuclei are segmented.
    config : Config or dict, optional
        Segmentation parameters (``channels`` is overwritten: msc 0, macrophage 1, nuclei 2).

    Returns
    -------
    list of (data, kwargs, "labels")
        ``msc labels``, ``macrophage labels``, ``nuclei labels`` (if nuclei given) with
        ``features`` from `lungtrack.measure.measure_objects` plus a leading ``index``
        column equal to ``label``, and ``tissue`` (0/1); all with the MSC layer's
        spatial ``scale`` and ``translate``.
    """
    layers = [msc_layer, macrophage_layer] + ([nuclei_layer] if nuclei_layer is not None else [])
    blocks = [_spatial_block(lay) for lay in layers]
    ref_block, spacing, placement = blocks[0]
    for lay, (b, *_rest) in zip(layers[1:], blocks[1:]):
        if b.shape != ref_block.shape:
            raise ValueError(
                f"layer {lay.name!r} has shape {b.shape} but the MSC layer {msc_layer.name!r} has "
                f"{ref_block.shape}; choose layers of the same image"
            )
    arr = np.stack([b for b, *_rest in blocks])
    names = [lay.name for lay in layers]
    cfg = load_config(config).model_copy(deep=True)  # never mutate the caller's config
    cfg.channels.msc = 0
    cfg.channels.macrophage = 1
    cfg.channels.nuclei = 2 if nuclei_layer is not None else None
    seg = segment_image(arr, cfg, spacing_um=spacing, channel_names=names)

    intensities = {name: block for name, (block, *_rest) in zip(names, blocks)}
    out = []
    for role in ("msc", "macrophage", "nuclei"):
        if role not in seg:
            continue
        labels = seg[role]
        features = measure_objects(labels, spacing, intensities=intensities, role=role)
        features.insert(0, "index", features["label"].to_numpy())
        out.append((labels, {"name": LAYER_NAMES[role], "features": features, "opacity": 0.6, **placement}, "labels"))
    out.append((seg["tissue"].astype(np.uint8), {"name": LAYER_NAMES["tissue"], "opacity": 0.15, **placement}, "labels"))
    return out


def add_or_update_layers(viewer: "napari.viewer.Viewer", layer_data: list[tuple]) -> list["napari.layers.Layer"]:
    """Add layer-data tuples to the viewer, updating layers of the same name and type in place."""
    result = []
    for data, kwargs, kind in layer_data:
        name = kwargs["name"]
        old = viewer.layers[name] if name in viewer.layers else None
        if old is not None and isinstance(old, getattr(napari.layers, kind.capitalize())) and old.ndim == np.ndim(data):
            old.data = data
            for key in ("scale", "translate", "units", "axis_labels", "features"):
                if key in kwargs:
                    setattr(old, key, kwargs[key])
            result.append(old)
            continue
        if old is not None:
            viewer.layers.remove(old)
        result.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return result


def summary(layer_data: list[tuple]) -> str:
    """One line with the object count per labels layer, e.g. ``'19 msc, 25 macrophage, 116 nuclei'``."""
    return ", ".join(f"{len(kw['features'])} {kw['name'].removesuffix(' labels')}"
                     for _data, kw, _kind in layer_data if "features" in kw)


# -- magicgui widget ------------------------------------------------------------------------------

_PREFERRED = {"msc": ("green", "red"), "macrophage": ("magenta",), "nuclei": ("blue",)}


def _ranked_layers(role: str):
    """ComboBox choices: the viewer's image layers, best guess for ``role`` (by channel name) first."""

    def choices(gui) -> list:
        try:
            from napari.utils._magicgui import get_layers

            layers = get_layers(gui)
        except Exception:  # private napari helper moved: fall back to the current viewer
            viewer = napari.current_viewer()
            layers = [lay for lay in viewer.layers if isinstance(lay, gui.annotation)] if viewer else []
        return sorted(layers, key=lambda lay: channel_colormap(lay.name) not in _PREFERRED[role])

    return choices


def _add_counts_label(widget) -> None:
    """A read-only line under the button that shows the object counts of the last run."""
    counts = Label(name="counts", label="objects", value="(not run yet)", gui_only=True)
    widget.append(counts)
    widget.called.connect(lambda text: setattr(counts, "value", str(text).replace(", ", "\n")))


def _um(role: str, field: str, label: str) -> dict:
    return {"label": label, "tooltip": _tip(role, field), "min": 0.0, "max": 10000.0, "step": 0.5}


# widget_type="ComboBox" is needed for our `choices` to win over napari's registered layer choices.
@magic_factory(
    call_button="Segment",
    widget_init=_add_counts_label,
    msc_layer={"label": "MSC channel", "widget_type": "ComboBox", "choices": _ranked_layers("msc"),
               "tooltip": "Image layer with the MSC label (GFP, tdTomato, DiI, CellTracker)."},
    macrophage_layer={"label": "macrophage channel", "widget_type": "ComboBox", "choices": _ranked_layers("macrophage"),
                      "tooltip": "Image layer with the macrophage marker (CD68, F4/80)."},
    nuclei_layer={"label": "nuclei channel (optional)", "widget_type": "ComboBox", "choices": _ranked_layers("nuclei"),
                  "tooltip": "Image layer with the nuclear stain (DAPI, Hoechst); empty: no nuclei."},
    msc_min_diameter_um=_um("msc", "min_diameter_um", "MSC min diameter (um)"),
    msc_max_diameter_um=_um("msc", "max_diameter_um", "MSC max diameter (um)"),
    msc_smoothing_um=_um("msc", "smoothing_sigma_um", "MSC smoothing (um)"),
    macrophage_min_diameter_um=_um("macrophage", "min_diameter_um", "macrophage min diameter (um)"),
    macrophage_max_diameter_um=_um("macrophage", "max_diameter_um", "macrophage max diameter (um)"),
    macrophage_smoothing_um=_um("macrophage", "smoothing_sigma_um", "macrophage smoothing (um)"),
)
def segment_widget(
    viewer: napari.viewer.Viewer,
    msc_layer: napari.layers.Image,
    macrophage_layer: napari.layers.Image,
    nuclei_layer: Optional[napari.layers.Image] = None,
    msc_min_diameter_um: float = _DEFAULTS.msc.min_diameter_um,
    msc_max_diameter_um: float = _DEFAULTS.msc.max_diameter_um,
    msc_smoothing_um: float = _DEFAULTS.msc.smoothing_sigma_um,
    macrophage_min_diameter_um: float = _DEFAULTS.macrophage.min_diameter_um,
    macrophage_max_diameter_um: float = _DEFAULTS.macrophage.max_diameter_um,
    macrophage_smoothing_um: float = _DEFAULTS.macrophage.smoothing_sigma_um,
) -> str:
    """Segment MSCs, macrophages (and nuclei) of the first time point; add Labels layers with object tables."""
    cfg = Config()
    for role, lo, hi, sigma in (("msc", msc_min_diameter_um, msc_max_diameter_um, msc_smoothing_um),
                                ("macrophage", macrophage_min_diameter_um, macrophage_max_diameter_um,
                                 macrophage_smoothing_um)):
        if lo >= hi:
            raise ValueError(f"{role} min diameter ({lo} um) must be smaller than its max diameter ({hi} um)")
        params = getattr(cfg.segment, role)
        params.min_diameter_um, params.max_diameter_um, params.smoothing_sigma_um = lo, hi, sigma
    layer_data = segment_layers(msc_layer, macrophage_layer, nuclei_layer, config=cfg)
    add_or_update_layers(viewer, layer_data)
    return summary(layer_data)
