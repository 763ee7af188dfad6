"""Widget "Segment MSCs and macrophages": napari layers -> `lungtrack.segment.segment_image` -> Labels layers.

`segment_layers` is the plain function (layers in, layer-data tuples out, no Qt), and
`segment_steps` the same work as a generator that yields after each stage, so a napari
thread worker can show progress and stop between stages. `segment_widget` is the
magicgui form: "Segment" runs on the whole image in a worker thread (progress bar,
"Cancel" button), "Preview visible region" segments only what the canvas shows,
"Load config"/"Save config" read and write the same YAML as the ``lungtrack`` CLI.
All computation happens in `lungtrack`.
"""
import warnings
from pathlib import Path
from typing import Optional

import napari
import numpy as np
import pandas as pd
from magicgui import magic_factory
from magicgui.widgets import Label, PushButton, Table

from lungtrack.config import Config, RoleSegmentation, load_config
from lungtrack.measure import measure_objects
from lungtrack.segment import segment_image

from ._reader import channel_colormap

#: Output Labels layer name per role (the widget updates layers with these names).
LAYER_NAMES = {"msc": "msc labels", "macrophage": "macrophage labels", "nuclei": "nuclei labels", "tissue": "tissue"}

_DEFAULTS = Config().segment
#: Outline width (pixels) of each role's Labels layer; napari's ``contour`` (0 fills the labels).
CONTOUR_PX = {"msc": 2, "macrophage": 2, "nuclei": 1}


def _tip(role: str, field: str) -> str:
    """Tooltip: the Config field description (the single source of help text)."""
    return f"{role}: {RoleSegmentation.model_fields[field].description} (segment.{role}.{field} in the config)"


def _spatial_block(layer: "napari.layers.Image", region: tuple | None = None):
    """The first time point of a layer as numpy (Y, X) or (Z, Y, X), its spacing (z, y, x) and placement.

    Axes come from ``layer.metadata['axes']`` (set by the lungtrack reader); otherwise a
    2D layer is (Y, X), a 3D layer (Z, Y, X), and leading axes of 4D+ layers are taken
    at index 0 (first time point). ``region``: slices of the spatial axes; only those
    pixels are read, and the placement's ``translate`` moves to the region's corner.
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
    region = tuple(region) if region is not None else (slice(None),) * n_spatial
    if len(region) != n_spatial:
        raise ValueError(f"region has {len(region)} slices but layer {layer.name!r} has {n_spatial} spatial axes")
    block = np.asarray(data[(0,) * (ndim - n_spatial) + region])  # reads only this time point and region
    scale = tuple(float(s) for s in layer.scale[-n_spatial:])
    spacing = scale if n_spatial == 3 else (1.0,) + scale
    start = [sl.indices(n)[0] for sl, n in zip(region, data.shape[-n_spatial:])]
    # Labels sit exactly on the image: same scale, translate and (napari >= 0.6) units and axis labels.
    placement = {"scale": scale,
                 "translate": tuple(float(t) + a * sc for t, a, sc in zip(layer.translate[-n_spatial:], start, scale))}
    for key in ("units", "axis_labels"):
        if hasattr(layer, key):
            placement[key] = tuple(getattr(layer, key)[-n_spatial:])
    return block, spacing, placement


def segment_steps(
    msc_layer: "napari.layers.Image",
    macrophage_layer: "napari.layers.Image",
    nuclei_layer: Optional["napari.layers.Image"] = None,
    *,
    config: Config | dict | None = None,
    region: tuple | None = None,
):
    """`segment_layers` as a generator: yields a stage name after each stage, returns the layer data.

    Stages: ``"read pixels"``, ``"segment"``, then ``"measure <role>"`` per role; see
    `n_steps`. A napari ``thread_worker`` over it reports progress and can be stopped
    between stages (``worker.quit()``).
    """
    layers = [msc_layer, macrophage_layer] + ([nuclei_layer] if nuclei_layer is not None else [])
    blocks = [_spatial_block(lay, region) for lay in layers]
    ref_block, spacing, placement = blocks[0]
    for lay, (b, *_rest) in zip(layers[1:], blocks[1:]):
        if b.shape != ref_block.shape:
            raise ValueError(
                f"layer {lay.name!r} has shape {b.shape} but the MSC layer {msc_layer.name!r} has "
                f"{ref_block.shape}; choose layers of the same image"
            )
    yield "read pixels"
    arr = np.stack([b for b, *_rest in blocks])
    names = [lay.name for lay in layers]
    cfg = load_config(config).model_copy(deep=True)  # never mutate the caller's config
    unused = {k: getattr(cfg.channels, k) for k in ("tissue", "autofluorescence") if getattr(cfg.channels, k) is not None}
    if unused:
        # napari shows warnings as notifications; the user must know the result can differ from the CLI's.
        warnings.warn(f"the config maps {', '.join(f'{k} -> {v!r}' for k, v in unused.items())}, which the Segment "
                      "widget does not use (tissue mask from the chosen channels, no autofluorescence subtraction): "
                      "counts can differ from `lungtrack analyze` with this config.", stacklevel=2)
    cfg.channels.msc = 0
    cfg.channels.macrophage = 1
    cfg.channels.nuclei = 2 if nuclei_layer is not None else None
    cfg.channels.tissue = None
    cfg.channels.autofluorescence = None
    seg = segment_image(arr, cfg, spacing_um=spacing, channel_names=names)
    yield "segment"

    intensities = {name: block for name, (block, *_rest) in zip(names, blocks)}
    out = []
    for role in ("msc", "macrophage", "nuclei"):
        if role not in seg:
            continue
        labels = seg[role]
        features = measure_objects(labels, spacing, intensities=intensities, role=role)
        features.insert(0, "index", features["label"].to_numpy())
        meta = {"role": role, "spacing_um": tuple(spacing)}
        out.append((labels, {"name": LAYER_NAMES[role], "features": features, "opacity": 0.9, "metadata": meta,
                             **placement}, "labels"))
        yield f"measure {role}"
    out.append((seg["tissue"].astype(np.uint8), {"name": LAYER_NAMES["tissue"], "opacity": 0.15,
                                                  "metadata": {"role": "tissue", "spacing_um": tuple(spacing)},
                                                  **placement}, "labels"))
    return out


def n_steps(with_nuclei: bool) -> int:
    """Number of stages `segment_steps` yields (for a progress bar)."""
    return 4 + bool(with_nuclei)


def segment_layers(
    msc_layer: "napari.layers.Image",
    macrophage_layer: "napari.layers.Image",
    nuclei_layer: Optional["napari.layers.Image"] = None,
    *,
    config: Config | dict | None = None,
    region: tuple | None = None,
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
    region : tuple of slice, optional
        Spatial region (pixels of the layers) to segment; the whole image when None.

    Returns
    -------
    list of (data, kwargs, "labels")
        ``msc labels``, ``macrophage labels``, ``nuclei labels`` (if nuclei given) with
        ``features`` from `lungtrack.measure.measure_objects` plus a leading ``index``
        column equal to ``label``, and ``tissue`` (0/1); all with the MSC layer's
        spatial ``scale`` and ``translate`` (moved to the region's corner).
    """
    gen = segment_steps(msc_layer, macrophage_layer, nuclei_layer, config=config, region=region)
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value


def outline(layer) -> None:
    """Draw an MSC / macrophage / nuclei Labels layer as outlines (`CONTOUR_PX`), so the signal stays visible."""
    role = layer.metadata.get("role") if isinstance(layer, napari.layers.Labels) else None
    if role in CONTOUR_PX:
        layer.contour = CONTOUR_PX[role]  # not a Labels() argument in napari 0.9: set after adding


def add_or_update_layers(viewer: "napari.viewer.Viewer", layer_data: list[tuple]) -> list["napari.layers.Layer"]:
    """Add layer-data tuples to the viewer, updating layers of the same name and type in place.

    Object labels (``metadata['role']`` msc, macrophage, nuclei) are drawn as outlines.
    """
    result = []
    for data, kwargs, kind in layer_data:
        name = kwargs["name"]
        old = viewer.layers[name] if name in viewer.layers else None
        if old is not None and isinstance(old, getattr(napari.layers, kind.capitalize())) and old.ndim == np.ndim(data):
            old.data = data
            for key in ("scale", "translate", "units", "axis_labels", "features"):
                if key in kwargs:
                    setattr(old, key, kwargs[key])
            layer = old
        else:
            if old is not None:
                viewer.layers.remove(old)
            layer = getattr(viewer, f"add_{kind}")(data, **kwargs)
        outline(layer)
        result.append(layer)
    return result


def add_result_table(widget, name: str, *, shown, on_row=None):
    """A table under a magicgui form that shows ``shown(df)`` after each call of the widget.

    ``widget.last_table`` keeps the full DataFrame the widget returned; selecting a row
    calls ``on_row(df, row_index)``. Used by the Colocalization and Interactions widgets.
    """
    table = Table(name=name, value={"": []}, gui_only=True)
    table.native.setMinimumHeight(260)
    # Straight into the Qt layout (no label column), so that the table gets the dock's full width.
    widget.native.layout().addWidget(table.native)
    setattr(widget, name, table)
    widget.last_table = None

    def update(df):
        if isinstance(df, pd.DataFrame):
            widget.last_table = df
            table.value = shown(df)
            table.native.resizeColumnsToContents()  # full column names, no clipped numbers

    def selected():
        rows = sorted({i.row() for i in table.native.selectedIndexes()})
        if on_row is not None and widget.last_table is not None and rows:
            on_row(widget.last_table, rows[0])

    widget.called.connect(update)
    table.native.itemSelectionChanged.connect(selected)
    return table


def summary(layer_data: list[tuple]) -> str:
    """One line with the object count per labels layer, e.g. ``'19 msc, 25 macrophage, 116 nuclei'``."""
    return ", ".join(f"{len(kw['features'])} {kw.get('metadata', {}).get('role') or kw['name']}"
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


# -- visible region, config <-> widget -------------------------------------------------------------

def _camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def visible_region(viewer: "napari.viewer.Viewer", layer: "napari.layers.Layer") -> tuple:
    """Slices of ``layer``'s spatial axes (pixels) that the 2D canvas shows now.

    From the camera centre and zoom (screen pixels per world unit) and the canvas size;
    for a z-stack all planes are kept. Rotation and shear of the layer are not handled.
    """
    size = getattr(getattr(viewer, "canvas", None), "size", None) or getattr(viewer, "_canvas_size", None)
    if not size:
        raise RuntimeError("this napari does not report its canvas size; use 'Segment' on the whole image")
    h, w = (float(v) for v in size)
    zoom = float(_camera(viewer).zoom)
    centre = np.asarray(_camera(viewer).center[-2:], float)
    half = np.array([h, w]) / zoom / 2
    scale = np.asarray(layer.scale[-2:], float)
    translate = np.asarray(layer.translate[-2:], float)
    shape = np.asarray((layer.data[0] if layer.multiscale else layer.data).shape[-2:])
    lo = np.clip(np.floor((centre - half - translate) / scale), 0, shape).astype(int)
    hi = np.clip(np.ceil((centre + half - translate) / scale), 0, shape).astype(int)
    if np.any(hi <= lo):
        raise ValueError(f"the canvas does not show any part of layer {layer.name!r}; pan to the image first")
    n_spatial = 3 if str(layer.metadata.get("axes", "")).upper().endswith("ZYX") or (
        not layer.metadata.get("axes") and layer.ndim == 3) else 2
    return (slice(None),) * (n_spatial - 2) + (slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])))


#: Exposed parameters: (role, config field, label). Widget names are ``<role>_<field>``.
PARAMETERS = (
    ("msc", "min_diameter_um", "MSC min diameter (um)"),
    ("msc", "max_diameter_um", "MSC max diameter (um)"),
    ("msc", "smoothing_sigma_um", "MSC smoothing (um)"),
    ("macrophage", "min_diameter_um", "macrophage min diameter (um)"),
    ("macrophage", "max_diameter_um", "macrophage max diameter (um)"),
    ("macrophage", "smoothing_sigma_um", "macrophage smoothing (um)"),
)


def _channel_ref(layer) -> str | None:
    """The channel name a config uses for a layer (reader metadata, else the layer name)."""
    if layer is None:
        return None
    return str(layer.metadata.get("channel_name") or layer.name)


def build_config(base: Config | dict | str | Path | None, *, msc_layer=None, macrophage_layer=None, nuclei_layer=None,
                 **params) -> Config:
    """A `Config`: ``base`` (a YAML path, dict or Config; defaults if None) with the widget's choices.

    ``channels`` get the chosen layers' channel names (nuclei: null when no layer), and
    ``params`` (``<role>_<field>`` from `PARAMETERS`) set the segmentation fields.
    Raises ValueError when a min diameter is not below its max.
    """
    if isinstance(base, (str, Path)) and not Path(base).is_file():
        base = None
    cfg = load_config(base).model_copy(deep=True)
    if msc_layer is not None:
        cfg.channels.msc = _channel_ref(msc_layer)
    if macrophage_layer is not None:
        cfg.channels.macrophage = _channel_ref(macrophage_layer)
    if msc_layer is not None or macrophage_layer is not None:
        cfg.channels.nuclei = _channel_ref(nuclei_layer)
    for role, field, _label in PARAMETERS:
        key = f"{role}_{field}"
        if key in params and params[key] is not None:
            setattr(getattr(cfg.segment, role), field, float(params[key]))
    for role in ("msc", "macrophage"):
        r = getattr(cfg.segment, role)
        if r.min_diameter_um >= r.max_diameter_um:
            raise ValueError(f"{role} min diameter ({r.min_diameter_um} um) must be smaller than its max diameter "
                             f"({r.max_diameter_um} um)")
    return cfg


def config_from_widget(widget) -> Config:
    """The config the Segment widget stands for: its config file (if any) + channels + parameters."""
    return build_config(widget.config_file.value, msc_layer=widget.msc_layer.value,
                        macrophage_layer=widget.macrophage_layer.value, nuclei_layer=widget.nuclei_layer.value,
                        **{f"{r}_{f}": getattr(widget, f"{r}_{f}").value for r, f, _ in PARAMETERS})


def apply_config(widget, config: Config | dict | str | Path) -> None:
    """Fill the Segment widget from a config: parameters, and layers whose channel matches ``channels``."""
    cfg = load_config(config)
    for role, field, _label in PARAMETERS:
        getattr(widget, f"{role}_{field}").value = getattr(getattr(cfg.segment, role), field)
    for role in ("msc", "macrophage", "nuclei"):
        ref = getattr(cfg.channels, role)
        combo = getattr(widget, f"{role}_layer")
        if ref is None:
            if role == "nuclei":
                combo.value = None
            continue
        for layer in combo.choices:
            if layer is None:
                continue
            names = {str(layer.name).lower(), str(layer.metadata.get("channel_name", "")).lower()}
            if str(ref).lower() in names or (isinstance(ref, int) and layer.metadata.get("channel_index") == ref):
                combo.value = layer
                break


def _viewer_of(widget):
    try:
        v = widget.viewer.value
        if v is not None:
            return v
    except Exception:
        pass
    return napari.current_viewer()


def _init_segment(widget) -> None:
    """Counts line, Preview / Cancel / Save config buttons, settings and the worker plumbing."""
    from ._settings import persist

    counts = Label(name="counts", label="objects", value="(not run yet)", gui_only=True)
    preview = PushButton(name="preview", text="Preview visible region", gui_only=True,
                         tooltip="Segment only the region the canvas shows now (fast), into '... (preview)' layers.")
    cancel = PushButton(name="cancel", text="Cancel", enabled=False, gui_only=True,
                        tooltip="Stop the whole-image run after its current stage.")
    save = PushButton(name="save_config", text="Save config", gui_only=True,
                      tooltip="Write the parameters and channel mapping to the config file (the YAML of the CLI).")
    widget.extend([preview, cancel, counts, save])
    widget.worker = None
    widget.running = False

    def on_called(worker):
        if worker is None:
            return
        widget.worker = worker
        widget.running = True
        worker.finished.connect(lambda: setattr(widget, "running", False))
        cancel.enabled = True
        counts.value = "running..."

        def done(layer_data):
            counts.value = summary(layer_data).replace(", ", "\n")

        def aborted():
            counts.value = "cancelled"

        def finished():
            cancel.enabled = False

        worker.returned.connect(done)
        worker.aborted.connect(aborted)
        worker.errored.connect(lambda exc: setattr(counts, "value", f"error: {exc}"))
        worker.finished.connect(finished)
        worker.start()

    def on_preview():
        viewer = _viewer_of(widget)
        layer_data = preview_layers(viewer, widget)
        counts.value = "preview: " + summary(layer_data).replace(", ", "\n")

    def on_cancel():
        if widget.worker is not None:
            widget.worker.quit()

    def on_config_file(path):
        if path and Path(path).is_file():
            apply_config(widget, path)

    def on_save():
        path = Path(widget.config_file.value)
        if not str(widget.config_file.value) or path.is_dir():
            raise ValueError("choose a config file name (e.g. lungtrack.yaml) first")
        path.write_text(config_from_widget(widget).to_yaml())

    widget.called.connect(on_called)
    preview.changed.connect(on_preview)
    cancel.changed.connect(on_cancel)
    save.changed.connect(on_save)
    # Restore the last session's values first: they win over the config file they were loaded from.
    persist(widget, "segment", names=[f"{r}_{f}" for r, f, _ in PARAMETERS] + ["config_file"])
    widget.config_file.changed.connect(on_config_file)


def preview_layers(viewer, widget) -> list[tuple]:
    """Segment the region the canvas shows into ``<name> (preview)`` layers; returns their layer data.

    Only MSCs, macrophages and the tissue mask (the parameters the widget tunes): nuclei
    are left to the whole-image run, to keep the preview fast.
    """
    cfg = config_from_widget(widget)
    msc = widget.msc_layer.value
    if msc is None or widget.macrophage_layer.value is None:
        raise ValueError("choose the MSC and macrophage layers first")
    region = visible_region(viewer, msc)
    layer_data = segment_layers(msc, widget.macrophage_layer.value, None, config=cfg, region=region)
    for _d, kw, _k in layer_data:
        kw["name"] = f"{kw['name']} (preview)"
    add_or_update_layers(viewer, layer_data)
    return layer_data


def _um(role: str, field: str, label: str) -> dict:
    return {"label": label, "tooltip": _tip(role, field), "min": 0.0, "max": 10000.0, "step": 0.5}


# widget_type="ComboBox" is needed for our `choices` to win over napari's registered layer choices.
@magic_factory(
    call_button="Segment whole image",
    widget_init=_init_segment,
    msc_layer={"label": "MSC channel", "widget_type": "ComboBox", "choices": _ranked_layers("msc"),
               "tooltip": "Image layer with the MSC label (GFP, tdTomato, DiI, CellTracker)."},
    macrophage_layer={"label": "macrophage channel", "widget_type": "ComboBox", "choices": _ranked_layers("macrophage"),
                      "tooltip": "Image layer with the macrophage marker (CD68, F4/80)."},
    nuclei_layer={"label": "nuclei channel (optional)", "widget_type": "ComboBox", "choices": _ranked_layers("nuclei"),
                  "tooltip": "Image layer with the nuclear stain (DAPI, Hoechst); empty: no nuclei."},
    msc_min_diameter_um=_um("msc", "min_diameter_um", "MSC min diameter (um)"),
    msc_max_diameter_um=_um("msc", "max_diameter_um", "MSC max diameter (um)"),
    msc_smoothing_sigma_um=_um("msc", "smoothing_sigma_um", "MSC smoothing (um)"),
    macrophage_min_diameter_um=_um("macrophage", "min_diameter_um", "macrophage min diameter (um)"),
    macrophage_max_diameter_um=_um("macrophage", "max_diameter_um", "macrophage max diameter (um)"),
    macrophage_smoothing_sigma_um=_um("macrophage", "smoothing_sigma_um", "macrophage smoothing (um)"),
    config_file={"label": "config file (YAML)", "mode": "w", "filter": "*.yaml *.yml",
                 "tooltip": "The lungtrack config (same YAML as `lungtrack analyze --config`): choosing an existing "
                            "file fills the widget; 'Save config' writes it; other parameters come from it."},
)
def segment_widget(
    viewer: napari.viewer.Viewer,
    msc_layer: napari.layers.Image,
    macrophage_layer: napari.layers.Image,
    nuclei_layer: Optional[napari.layers.Image] = None,
    msc_min_diameter_um: float = _DEFAULTS.msc.min_diameter_um,
    msc_max_diameter_um: float = _DEFAULTS.msc.max_diameter_um,
    msc_smoothing_sigma_um: float = _DEFAULTS.msc.smoothing_sigma_um,
    macrophage_min_diameter_um: float = _DEFAULTS.macrophage.min_diameter_um,
    macrophage_max_diameter_um: float = _DEFAULTS.macrophage.max_diameter_um,
    macrophage_smoothing_sigma_um: float = _DEFAULTS.macrophage.smoothing_sigma_um,
    config_file: Path = Path(""),
):
    """Segment MSCs, macrophages (and nuclei) of the first time point in a worker thread.

    Returns the (not yet started) napari worker; the widget starts it, shows progress and
    adds Labels layers with object tables when it returns.
    """
    from napari.qt.threading import thread_worker

    params = {"msc_min_diameter_um": msc_min_diameter_um, "msc_max_diameter_um": msc_max_diameter_um,
              "msc_smoothing_sigma_um": msc_smoothing_sigma_um,
              "macrophage_min_diameter_um": macrophage_min_diameter_um,
              "macrophage_max_diameter_um": macrophage_max_diameter_um,
              "macrophage_smoothing_sigma_um": macrophage_smoothing_sigma_um}
    cfg = build_config(config_file if str(config_file) not in ("", ".") else None, msc_layer=msc_layer,
                       macrophage_layer=macrophage_layer, nuclei_layer=nuclei_layer, **params)
    worker = thread_worker(segment_steps, start_thread=False,
                           progress={"total": n_steps(nuclei_layer is not None), "desc": "lungtrack: segmenting"})(
        msc_layer, macrophage_layer, nuclei_layer, config=cfg)
    worker.returned.connect(lambda layer_data: add_or_update_layers(viewer, layer_data))
    return worker
