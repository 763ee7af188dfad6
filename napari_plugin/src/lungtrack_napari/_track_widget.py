"""Widget "Track MSCs and macrophages (time-lapse)": two (T, [Z,] Y, X) image layers ->
`lungtrack.track.track_movie` -> a napari ``Tracks`` layer with track properties.

`track_layers` is the plain function (layers in, the `TrackResult` and the Tracks
layer-data tuple out); `track_widget` runs it in a worker thread and adds the layer.
The layer's ``features`` carry, per point, role, t_min and the track's fate,
dwell_min, n_contacts and contact_min; ``metadata`` holds the whole ``track_summary``
and ``contacts`` tables. All numbers come from `lungtrack`.
"""

from pathlib import Path

import dask.array as da
import napari
from magicgui import magic_factory
from magicgui.widgets import Label
from napari.qt.threading import FunctionWorker, thread_worker
from napari.types import LayerDataTuple

from lungtrack.config import TrackConfig, load_config
from lungtrack.io import Image
from lungtrack.track import TrackResult, napari_tracks, track_movie

from ._reader import physical_axes_kwargs

_TRACK = TrackConfig()


def _movie_axes(layer) -> str:
    """``TYX`` or ``TZYX`` from the lungtrack reader's ``metadata['axes']``, else from ndim."""
    data = layer.data[0] if layer.multiscale else layer.data
    axes = str(layer.metadata.get("axes", "")).upper()
    if len(axes) != data.ndim:
        axes = {3: "TYX", 4: "TZYX"}.get(data.ndim, "")
    if axes not in ("TYX", "TZYX"):
        raise ValueError(f"layer {layer.name!r} has {data.ndim} dimensions (axes {axes or '?'}); tracking needs a "
                         "time-lapse layer (T, Y, X) or (T, Z, Y, X)")
    return axes


def track_layers(msc_layer: "napari.layers.Image", macrophage_layer: "napari.layers.Image", *, config=None,
                 frame_interval_min: float | None = None, use_dask: bool = True) -> tuple[TrackResult, tuple]:
    """Track the MSCs and macrophages of two time-lapse image layers.

    Parameters
    ----------
    msc_layer, macrophage_layer : napari.layers.Image
        (T, Y, X) or (T, Z, Y, X) layers of one movie; ``scale`` gives the voxel size in um.
    config : Config, dict or path, optional
        The lungtrack config (``segment`` and ``track`` sections); its channel mapping is
        replaced by the two layers.
    frame_interval_min : float, optional
        Minutes between frames; None: ``track.frame_interval_min`` of the config, else
        ``metadata['time_interval_s']`` that the lungtrack reader set from the file.

    Returns
    -------
    result : TrackResult
        tracks, summary, contacts, survival (as ``lungtrack track`` writes them).
    layer_data : tuple
        ``(data, kwargs, "tracks")`` for a Tracks layer named ``tracks``, on the MSC
        layer's grid (scale and translate), with ``features`` and ``graph`` (splits/merges).
    """
    axes = _movie_axes(msc_layer)
    if _movie_axes(macrophage_layer) != axes or macrophage_layer.data.shape != msc_layer.data.shape:
        raise ValueError(f"layers {msc_layer.name!r} {msc_layer.data.shape} and {macrophage_layer.name!r} "
                         f"{macrophage_layer.data.shape} differ; choose two channels of one movie")
    n_spatial = len(axes) - 1
    scale = tuple(float(s) for s in msc_layer.scale[-n_spatial:])
    spacing = scale if n_spatial == 3 else (1.0, *scale)
    movie = da.stack([da.asarray(msc_layer.data), da.asarray(macrophage_layer.data)], axis=1)  # (T, C, [Z,] Y, X)
    if n_spatial == 2:
        movie = movie[:, :, None]
    dt_s = msc_layer.metadata.get("time_interval_s")
    image = Image(movie, spacing, [msc_layer.name, macrophage_layer.name],
                  path=f"layer {msc_layer.name!r}", time_interval_s=float(dt_s) if dt_s else None)
    cfg = load_config(config)
    cfg = cfg.model_copy(update={"channels": cfg.channels.model_copy(
        update={"nuclei": None, "msc": 0, "macrophage": 1, "tissue": None, "autofluorescence": None})})
    res = track_movie(image, cfg, frame_interval_min=frame_interval_min, use_dask=use_dask)
    data, features, graph = napari_tracks(res.tracks, res.summary, spacing_um=spacing, edges=res.edges)
    translate = (0.0, *(float(t) for t in msc_layer.translate[-n_spatial:]))
    kw = {"name": "tracks", "scale": (1.0, *scale), "translate": translate, "features": features, "graph": graph,
          "tail_length": res.n_frames, "metadata": {"track_summary": res.summary, "contacts": res.contacts,
                                                     "frame_interval_min": res.frame_interval_min,
                                                     "source": "lungtrack.track.track_movie"},
          **physical_axes_kwargs(axes, "Tracks")}
    return res, (data, kw, "tracks")


def _init_track(widget) -> None:
    """A status line, and the worker started once napari has hooked its result to the viewer."""
    status = Label(name="status", label="tracks", value="(not run yet)", gui_only=True)
    widget.append(status)
    widget.worker = None
    widget.running = False

    def on_called(worker):
        # magicgui runs the FunctionWorker return callback (result -> layer) before `called`.
        widget.worker, widget.running = worker, True
        status.value = "running..."
        worker.returned.connect(lambda ld: setattr(status, "value", _status_text(ld[1]["metadata"]["track_summary"])))
        worker.errored.connect(lambda exc: setattr(status, "value", f"error: {exc}"))
        worker.finished.connect(lambda: setattr(widget, "running", False))
        worker.start()

    widget.called.connect(on_called)


def _status_text(summary) -> str:
    m = summary[summary["role"] == "msc"]
    fates = ", ".join(f"{k} {v}" for k, v in m["fate"].value_counts().sort_index().items())
    return f"{len(m)} MSCs ({fates})\n{int((summary['role'] == 'macrophage').sum())} macrophages"


@magic_factory(
    call_button="Track",
    widget_init=_init_track,
    msc_layer={"label": "MSC channel (T, Y, X)", "tooltip": "Time-lapse image layer with the MSC label (GFP, ...)."},
    macrophage_layer={"label": "macrophage channel", "tooltip": "Time-lapse layer with the macrophage marker (CD68)."},
    frame_interval_min={"label": "frame interval (min)", "min": 0.0, "max": 1e6, "step": 0.5,
                        "tooltip": "0: from the file's metadata (OME TimeIncrement, ImageJ finterval) or the config. "
                                   + TrackConfig.model_fields["frame_interval_min"].description},
    msc_max_distance_um={"label": "MSC max move (um)", "min": 0.1, "max": 1e4,
                         "tooltip": "track.msc.max_distance_um: largest MSC move between frames, in um."},
    macrophage_max_distance_um={"label": "macrophage max move (um)", "min": 0.1, "max": 1e4,
                                "tooltip": "track.macrophage.max_distance_um: largest macrophage move between "
                                           "frames, in um."},
    config_file={"label": "config file (YAML)", "mode": "r", "filter": "*.yaml *.yml",
                 "tooltip": "The lungtrack config (same YAML as `lungtrack track --config`); the fields above "
                            "override its track section."},
)
def track_widget(
    msc_layer: napari.layers.Image,
    macrophage_layer: napari.layers.Image,
    frame_interval_min: float = 0.0,
    msc_max_distance_um: float = _TRACK.msc.max_distance_um,
    macrophage_max_distance_um: float = _TRACK.macrophage.max_distance_um,
    config_file: Path = Path(""),
) -> FunctionWorker[LayerDataTuple]:
    """Track in a worker thread; napari adds the returned Tracks layer when it is done."""
    cfg = load_config(config_file if str(config_file) not in ("", ".") else None)
    track = cfg.track.model_copy(update={
        "msc": cfg.track.msc.model_copy(update={"max_distance_um": msc_max_distance_um}),
        "macrophage": cfg.track.macrophage.model_copy(update={"max_distance_um": macrophage_max_distance_um})})
    cfg = cfg.model_copy(update={"track": track})

    def work():
        return track_layers(msc_layer, macrophage_layer, config=cfg,
                            frame_interval_min=frame_interval_min or None)[1]

    return thread_worker(work, start_thread=False, progress={"desc": "lungtrack: tracking"})()


__all__ = ["track_layers", "track_widget"]
