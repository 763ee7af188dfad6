"""Reader: TIFF / OME-TIFF / ImageJ / OME-Zarr images, label images and lungtrack results folders.

Images: one lazy image layer per channel, named by the channel, with the physical voxel
size as ``scale`` so that labels, points and measurements line up in um. A single-channel
integer image in a ``labels/`` folder, or of a 32/64-bit integer type, opens as a Labels
layer. A results folder (``run.json`` + ``samples.csv``) opens one sample: its image, its
label images with ``features`` from ``objects.csv``, lines from each MSC to its nearest
macrophage (``interactions.csv``) and tracks (``tracks.csv``) when there are any.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from lungtrack.io import Image, MissingPixelSizeError, check_tiff, read_image

from ._settings import get_section

log = logging.getLogger(__name__)

SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIX = ".zarr"
ROLES = ("msc", "macrophage", "nuclei", "tissue")
#: Label images above this size stay lazy (dask) in the viewer.
LAZY_LABELS_BYTES = 256 * 2**20
#: Images with a side longer than this open as multiscale layers (see `lazy_pyramid`).
PYRAMID_MIN_SIDE = 4096

#: Channel-name fragments (lower case, letters and digits only) -> napari colormap.
_COLORMAPS = (
    (("dapi", "hoechst"), "blue"),
    (("gfp", "fitc", "cfse"), "green"),
    (("tdtomato", "dii", "mcherry"), "red"),
    (("cd68", "f480"), "magenta"),
)


def channel_colormap(name: str) -> str:
    """Guess a colormap from a channel name: DAPI -> blue, GFP -> green, tdTomato -> red, CD68 -> magenta.

    >>> channel_colormap("Hoechst 33342"), channel_colormap("eGFP"), channel_colormap("F4/80-AF647")
    ('blue', 'green', 'magenta')
    >>> channel_colormap("C0")
    'gray'
    """
    key = "".join(ch for ch in str(name).lower() if ch.isalnum())
    for fragments, cmap in _COLORMAPS:
        if any(f in key for f in fragments):
            return cmap
    return "gray"


@lru_cache(maxsize=8)
def _layer_kwargs_supported(kind: str = "Image") -> frozenset[str]:
    """Layer keyword arguments this napari accepts (``units``/``axis_labels`` came after 0.5)."""
    import inspect

    import napari.layers

    return frozenset(inspect.signature(getattr(napari.layers, kind).__init__).parameters)


def physical_axes_kwargs(axes: str, kind: str = "Image") -> dict:
    """``axis_labels`` and ``units`` for the given axes letters, where this napari supports them."""
    supported = _layer_kwargs_supported(kind)
    kw: dict = {}
    if "axis_labels" in supported:
        kw["axis_labels"] = tuple(a.lower() for a in axes)
    if "units" in supported:
        kw["units"] = tuple("pixel" if a == "T" else "um" for a in axes)
    return kw


def channel_layer_kwargs(name: str, axes: str, scale, metadata: dict | None = None) -> dict:
    """Keyword arguments for one channel's image layer: name, scale, colormap, additive blending."""
    kw = {
        "name": str(name),
        "scale": tuple(float(s) for s in scale),
        "colormap": channel_colormap(name),
        "blending": "additive",
        "metadata": dict(metadata or {}),
    }
    kw.update(physical_axes_kwargs(axes))
    return kw


def lazy_pyramid(data, *, min_side: int = PYRAMID_MIN_SIDE, coarsest_side: int = 2048) -> list:
    """``[data, data[..., ::2, ::2], data[..., ::4, ::4], ...]`` down to ``coarsest_side``, or ``[data]``.

    napari reads the whole displayed plane of a single-resolution layer (a 32768 x 16384
    section: 1 GiB per channel, and a minute, before anything shows). A multiscale layer
    reads only the visible tiles of the level that fits the canvas. The levels are lazy
    strided views of the same dask array: nothing is read here, and the coarsest level
    (the overview) is read chunk by chunk, in bounded memory. Images whose longest side
    is at most ``min_side`` stay single-resolution.

    >>> import dask.array as da
    >>> [lev.shape for lev in lazy_pyramid(da.zeros((3, 10000, 6000), chunks=1024))]
    [(3, 10000, 6000), (3, 5000, 3000), (3, 2500, 1500), (3, 1250, 750)]
    >>> len(lazy_pyramid(da.zeros((512, 512))))
    1
    """
    if max(data.shape[-2:]) <= min_side:
        return [data]
    levels, f = [data], 2
    while max(data.shape[-2:]) / (f // 2) > coarsest_side:
        levels.append(data[..., ::f, ::f])
        f *= 2
    return levels


def image_layer_data(image: Image, *, name_suffix: str = "") -> list[tuple]:
    """Layer-data tuples, one per channel, for a lungtrack `Image` (data stay lazy).

    Axes: ``(Y, X)`` for a 2D image, ``(Z, Y, X)`` for a z-stack, with a leading
    ``T`` for time-lapse; ``scale`` is the voxel size in um (1 per frame for T).
    ``metadata`` holds ``path``, ``spacing_um``, ``channel_name``, ``channel_index``
    and ``axes``. Images longer than `PYRAMID_MIN_SIDE` on a side are multiscale
    (`lazy_pyramid`); ``data[0]`` is then the full resolution.
    """
    n_t, _, n_z = (int(s) for s in image.data.shape[:3])
    axes = ("T" if n_t > 1 else "") + ("Z" if n_z > 1 else "") + "YX"
    z, y, x = image.spacing_um
    scale = ([1.0] if n_t > 1 else []) + ([z] if n_z > 1 else []) + [y, x]
    out = []
    for c, name in enumerate(image.channel_names):
        data = image.data[:, c]  # (T, Z, Y, X), still a dask array
        data = data[:, 0] if n_z == 1 else data
        data = data[0] if n_t == 1 else data
        meta = {
            "path": image.path,
            "spacing_um": tuple(image.spacing_um),
            "channel_name": name,
            "channel_index": c,
            "axes": axes,
        }
        if image.time_interval_s is not None:
            meta["time_interval_s"] = image.time_interval_s
        if getattr(image, "spacing_missing", False):
            meta["spacing_missing"] = True
        kw = channel_layer_kwargs(name, axes, scale, meta)
        kw["name"] = f"{name}{name_suffix}"
        levels = lazy_pyramid(data)
        if len(levels) > 1:
            kw["multiscale"] = True
            data = levels
        out.append((data, kw, "image"))
    return out


# -- options: reader defaults kept in the settings ---------------------------------------------------

def reader_options() -> dict:
    """``pixel_size_um``, ``z_step_um`` and ``axes`` used for files whose metadata lacks them.

    They are set in the "Open image" widget (`open_image_widget`) and persist between
    sessions; 0 or empty means "not set".
    """
    saved = get_section("reader")
    return {
        "pixel_size_um": float(saved["pixel_size_um"]) if saved.get("pixel_size_um") else None,
        "z_step_um": float(saved["z_step_um"]) if saved.get("z_step_um") else None,
        "axes": str(saved["axes"]).upper() if saved.get("axes") else None,
    }


def open_image(path, *, pixel_size_um=None, z_step_um=None, axes=None) -> Image:
    """`lungtrack.io.read_image` that never refuses a file for lack of pixel size, but says so.

    Spacing missing from the metadata comes from ``pixel_size_um`` / ``z_step_um``; when
    these are not given either, 1.0 is used and a warning names the file and the fix
    (napari shows warnings as notifications). The returned image then has
    ``spacing_missing = True``.
    """
    p = os.fspath(path)
    try:
        img = read_image(p, axes=axes, default_pixel_size_um=pixel_size_um, default_z_step_um=z_step_um)
        img.spacing_missing = False
    except MissingPixelSizeError as exc:
        img = read_image(p, axes=axes, default_pixel_size_um=pixel_size_um, default_z_step_um=z_step_um,
                         require_spacing=False)
        img.spacing_missing = True
        warnings.warn(f"{exc} Opened with 1 um per pixel: sizes in um are pixels. Set the pixel size in "
                      "Plugins > lungtrack > Open image, or convert the file to OME-TIFF with its pixel size.",
                      stacklevel=2)
    return img


# -- label images --------------------------------------------------------------------------------

def looks_like_labels(image: Image) -> bool:
    """A single-channel integer image in a ``labels/`` folder, or of a 32/64-bit integer type."""
    if image.n_channels != 1 or image.data.shape[0] != 1 or not np.issubdtype(image.data.dtype, np.integer):
        return False
    in_labels_dir = image.path is not None and Path(image.path).parent.name == "labels"
    return in_labels_dir or np.dtype(image.data.dtype).itemsize >= 4


def _role_from_name(stem: str) -> str | None:
    for role in ROLES:
        if stem.endswith(f"_{role}"):
            return role
    return None


def labels_layer_data(image: Image, *, name: str | None = None, features: pd.DataFrame | None = None,
                      metadata: dict | None = None) -> tuple:
    """A Labels layer-data tuple for a single-channel label image (lazy when large)."""
    data = image.data[0, 0]
    data = data if image.is_3d else data[0]
    if data.nbytes <= LAZY_LABELS_BYTES:
        data = np.asarray(data)
    axes = "ZYX" if image.is_3d else "YX"
    scale = tuple(float(s) for s in (image.spacing_um if image.is_3d else image.spacing_um[1:]))
    stem = Path(image.path).name.split(".")[0] if image.path else "labels"
    role = _role_from_name(stem)
    meta = {"path": image.path, "spacing_um": tuple(image.spacing_um), "axes": axes, "role": role,
            "sample_id": stem[: -len(role) - 1] if role else None, **(metadata or {})}
    kw = {"name": name or stem, "scale": scale, "metadata": meta, **physical_axes_kwargs(axes, "Labels")}
    if role == "tissue":
        kw["opacity"] = 0.15
    if features is not None:
        kw["features"] = features
    return (data, kw, "labels")


# -- OME-Zarr (NGFF 0.4 / 0.5), read with zarr + dask -------------------------------------------------

def _zarr_attrs(path: str) -> dict | None:
    """The group attributes of an OME-Zarr image (``multiscales`` present), or None."""
    for name in (".zattrs", "zarr.json"):
        f = os.path.join(path, name)
        if os.path.isfile(f):
            try:
                attrs = json.loads(Path(f).read_text())
            except Exception:
                return None
            attrs = attrs.get("attributes", attrs)  # zarr v3: zarr.json {"attributes": {...}}
            attrs = attrs.get("ome", attrs)  # NGFF 0.5 nests under "ome"
            return attrs if attrs.get("multiscales") else None
    return None


def ome_zarr_layer_data(path: str) -> list[tuple]:
    """One lazy multiscale image layer per channel of an OME-Zarr image (NGFF 0.4/0.5).

    Hand-written glue (about 40 lines) because ome-zarr-py is not a lungtrack dependency:
    axes and scale come from ``multiscales[0]`` (``axes``, the first dataset's
    ``coordinateTransformations``), channel names from ``omero.channels[].label``.
    """
    import dask.array as da

    attrs = _zarr_attrs(path)
    ms = attrs["multiscales"][0]
    axes = "".join(a["name"] if isinstance(a, dict) else a for a in ms["axes"]).upper()
    levels = [da.from_zarr(os.path.join(path, d["path"])) for d in ms["datasets"]]
    scale = [1.0] * len(axes)
    for t in ms["datasets"][0].get("coordinateTransformations", []):
        if t.get("type") == "scale":
            scale = [float(v) for v in t["scale"]]
    units = [(a.get("unit") if isinstance(a, dict) else None) for a in ms["axes"]]
    # Spatial units other than micrometres are converted to um.
    per_um = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, None: 1.0}
    scale = [s * per_um.get(u, 1.0) if a in "ZYX" else s for s, u, a in zip(scale, units, axes)]
    channels = [c.get("label") or f"C{i}" for i, c in enumerate(attrs.get("omero", {}).get("channels", []))]
    c_ax = axes.find("C")
    n_c = levels[0].shape[c_ax] if c_ax >= 0 else 1
    if len(channels) != n_c:
        channels = [f"C{i}" for i in range(n_c)]
    keep_axes = axes.replace("C", "")
    keep_scale = tuple(s for s, a in zip(scale, axes) if a != "C")
    out = []
    for c, name in enumerate(channels):
        data = [lev if c_ax < 0 else da.take(lev, c, axis=c_ax) for lev in levels]
        meta = {"path": path, "channel_name": name, "channel_index": c, "axes": keep_axes,
                "spacing_um": tuple(keep_scale[keep_axes.find(a)] if a in keep_axes else 1.0 for a in "ZYX")}
        kw = channel_layer_kwargs(name, keep_axes, keep_scale, meta)
        if len(data) > 1:
            kw["multiscale"] = True
        out.append((data if len(data) > 1 else data[0], kw, "image"))
    return out


# -- lungtrack results folders ------------------------------------------------------------------------

def is_results_folder(path) -> bool:
    """A folder written by ``lungtrack analyze``: ``run.json`` and ``samples.csv``."""
    p = Path(path)
    return p.is_dir() and (p / "run.json").is_file() and (p / "samples.csv").is_file()


def results_sample_ids(folder) -> list[str]:
    """The samples of a results folder, in ``samples.csv`` order."""
    return pd.read_csv(Path(folder) / "samples.csv", usecols=["sample_id"])["sample_id"].astype(str).tolist()


def _read_table(folder: Path, stem: str) -> pd.DataFrame | None:
    if (folder / f"{stem}.parquet").is_file():
        return pd.read_parquet(folder / f"{stem}.parquet")
    if (folder / f"{stem}.csv").is_file():
        return pd.read_csv(folder / f"{stem}.csv")
    return None


def results_layer_data(folder, sample_id: str | None = None) -> list[tuple]:
    """Layer data of one sample of a results folder (the first sample when None).

    Layers (names end with `` [<sample_id>]``): the input image's channels (lazy, when
    the file in ``run.json`` still exists), ``<role> labels`` with ``features`` = the
    sample's rows of ``objects`` (plus ``index`` = label), ``tissue``, ``msc -> nearest
    macrophage`` lines (Shapes, with the ``interactions`` row of each MSC as features)
    and ``tracks`` when the folder has ``tracks.csv``.
    """
    folder = Path(folder)
    ids = results_sample_ids(folder)
    if not ids:
        raise ValueError(f"{folder / 'samples.csv'} lists no sample")
    sid = str(sample_id) if sample_id is not None else ids[0]
    if sid not in ids:
        raise ValueError(f"sample {sid!r} is not in {folder / 'samples.csv'}; samples: {', '.join(ids[:10])}")
    suffix = f" [{sid}]"
    run = json.loads((folder / "run.json").read_text())
    inputs = {str(i.get("sample_id")): i for i in run.get("inputs", [])}
    out: list[tuple] = []
    spacing = None
    info = inputs.get(sid, {})
    img_path = info.get("path")
    if img_path and os.path.isfile(img_path):
        sp = info.get("spacing_um") or [None, None, None]
        img = read_image(img_path, require_spacing=False, default_pixel_size_um=sp[-1], default_z_step_um=sp[0])
        for data, kw, kind in image_layer_data(img, name_suffix=suffix):
            kw["metadata"]["sample_id"] = sid
            out.append((data, kw, kind))
        spacing = img.spacing_um
    elif img_path:
        warnings.warn(f"{folder / 'run.json'}: the image of {sid} ({img_path}) is not there any more; "
                      "opening its labels and tables only.", stacklevel=2)
    objects = _read_table(folder, "objects")
    label_layers = {}
    for role in ROLES:
        f = folder / "labels" / f"{sid}_{role}.tif"
        if not f.is_file():
            continue
        lab = read_image(f, require_spacing=False)
        features = None
        if objects is not None and role != "tissue":
            rows = objects[(objects["sample_id"].astype(str) == sid) & (objects["role"] == role)]
            if role == "msc" and "intact" in rows:
                # dying (fragmented) MSCs are rows too, but their label image is <sid>_msc_fragmented.tif
                rows = rows[rows["intact"].fillna(True).astype(bool)]
            features = rows.reset_index(drop=True)
            features.insert(0, "index", features["label"].to_numpy())
        name = (f"{role} labels" if role != "tissue" else "tissue") + suffix
        ld = labels_layer_data(lab, name=name, features=features, metadata={"sample_id": sid, "role": role})
        out.append(ld)
        label_layers[role] = ld
        spacing = spacing or lab.spacing_um
    inter = _read_table(folder, "interactions")
    if inter is not None and objects is not None and len(inter):
        lines = nearest_lines(inter[inter["sample_id"].astype(str) == sid], objects[objects["sample_id"].astype(str) == sid],
                              spacing or (1.0, 1.0, 1.0), is_3d=bool(label_layers) and np.ndim(
                                  next(iter(label_layers.values()))[0]) == 3)
        if lines is not None:
            lines[1]["name"] = "msc -> nearest macrophage" + suffix
            out.append(lines)
    tracks = _read_table(folder, "tracks")
    if tracks is not None and len(tracks):
        if "sample_id" in tracks.columns:
            tracks = tracks[tracks["sample_id"].astype(str) == sid]
        if len(tracks):
            out.append(tracks_layer_data(tracks, spacing or (1.0, 1.0, 1.0), name="tracks" + suffix))
    return out


def nearest_lines(interactions: pd.DataFrame, objects: pd.DataFrame, spacing_um, *, is_3d: bool = False):
    """Shapes layer data: a line from each MSC centroid to its nearest macrophage centroid.

    Vertices are in pixels with ``scale`` = spacing, so the lines sit on the labels;
    ``features`` is the interactions table (one row per line), and each line is labelled
    with ``nearest_macrophage_um``. None when no MSC has a macrophage.
    """
    cols = ["centroid_z_um", "centroid_y_um", "centroid_x_um"] if is_3d else ["centroid_y_um", "centroid_x_um"]
    sp = np.asarray(spacing_um[-len(cols):], float)
    pos = {(r, int(lab)): np.asarray(v, float) / sp
           for r, lab, *v in objects[["role", "label"] + cols].itertuples(index=False)}
    shapes, rows = [], []
    for row in interactions.itertuples(index=False):
        mac = getattr(row, "nearest_macrophage_label")
        if pd.isna(mac):
            continue
        a, b = pos.get(("msc", int(row.msc_label))), pos.get(("macrophage", int(mac)))
        if a is None or b is None:
            continue
        shapes.append(np.stack([a, b]))
        rows.append(row._asdict())
    if not shapes:
        return None
    features = pd.DataFrame(rows).reset_index(drop=True)
    kw = {"name": "msc -> nearest macrophage", "shape_type": "line", "edge_color": "yellow", "edge_width": 1.0,
          "scale": tuple(float(s) for s in sp), "features": features,
          "text": {"string": "{nearest_macrophage_um:.1f} um", "size": 8, "color": "yellow"},
          "metadata": {"source": "interactions"}, **physical_axes_kwargs("ZYX" if is_3d else "YX", "Shapes")}
    return (shapes, kw, "shapes")


def tracks_layer_data(tracks: pd.DataFrame, spacing_um, *, name: str = "tracks") -> tuple:
    """Tracks layer data from a ``tracks.csv`` table: ``track_id, frame, [z_um,] y_um, x_um`` -> pixels."""
    spatial = [c for c in ("z_um", "y_um", "x_um") if c in tracks.columns]
    missing = {"track_id", "frame", "y_um", "x_um"} - set(tracks.columns)
    if missing:
        raise ValueError(f"tracks table lacks column(s) {sorted(missing)}; expected track_id, frame, y_um, x_um")
    sp = np.asarray(spacing_um[-len(spatial):], float)
    t = tracks.sort_values(["track_id", "frame"])
    data = np.column_stack([t["track_id"].to_numpy(float), t["frame"].to_numpy(float), t[spatial].to_numpy(float) / sp])
    axes = "T" + "ZYX"[-len(spatial):]
    return (data, {"name": name, "scale": (1.0, *(float(v) for v in sp)), "features": t.reset_index(drop=True),
                   **physical_axes_kwargs(axes, "Tracks")}, "tracks")


# -- the reader hook ------------------------------------------------------------------------------------

def _open(path) -> Image | None:
    """The lazily opened image, or None for anything lungtrack cannot read."""
    p = os.fspath(path)
    if not isinstance(p, str) or not p.lower().endswith(SUFFIXES) or not os.path.isfile(p):
        return None
    try:
        check_tiff(p)  # corrupt and truncated files fail here, before any pixel is read
        return open_image(p, **reader_options())
    except Exception as exc:  # a reader never raises: napari then tries the next reader
        log.debug("lungtrack-napari cannot read %s: %s", p, exc)
        return None


def _layers_of(p: str):
    """A zero-argument function giving the layer data of one path, or None."""
    if os.path.isdir(p):
        if is_results_folder(p):
            return lambda: results_layer_data(p)
        if _zarr_attrs(p) is not None:
            return lambda: ome_zarr_layer_data(p)
        return None
    img = _open(p)
    if img is None:
        return None
    if looks_like_labels(img):
        return lambda: [labels_layer_data(img)]
    return lambda: image_layer_data(img)


def get_reader(path):
    """napari reader hook: a function returning layer data, or None if any path is not readable.

    Accepts TIFF / OME-TIFF / ImageJ files, OME-Zarr folders and lungtrack results folders.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        return None
    makers = []
    for p in paths:
        try:
            make = _layers_of(os.fspath(p))
        except Exception:  # never raise from a reader hook
            make = None
        if make is None:
            return None
        makers.append(make)

    def reader(_path=None) -> list[tuple]:
        return [ld for make in makers for ld in make()]

    return reader
