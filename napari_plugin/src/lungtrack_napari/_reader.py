"""Reader: TIFF / OME-TIFF / ImageJ hyperstacks through `lungtrack.io.read_image`.

One lazy image layer per channel, named by the channel, with the physical voxel
size as ``scale`` so that labels, points and measurements line up in um.
"""
from __future__ import annotations

import logging
import os
from functools import lru_cache

from lungtrack.io import Image, check_tiff, read_image

log = logging.getLogger(__name__)

SUFFIXES = (".tif", ".tiff")

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


@lru_cache(maxsize=1)
def _layer_kwargs_supported() -> frozenset[str]:
    """Image-layer keyword arguments this napari accepts (``units``/``axis_labels`` came after 0.5)."""
    import inspect

    from napari.layers import Image as ImageLayer

    return frozenset(inspect.signature(ImageLayer.__init__).parameters)


def physical_axes_kwargs(axes: str) -> dict:
    """``axis_labels`` and ``units`` for the given axes letters, where this napari supports them."""
    supported = _layer_kwargs_supported()
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


def image_layer_data(image: Image) -> list[tuple]:
    """Layer-data tuples, one per channel, for a lungtrack `Image` (data stay lazy).

    Axes: ``(Y, X)`` for a 2D image, ``(Z, Y, X)`` for a z-stack, with a leading
    ``T`` for time-lapse; ``scale`` is the voxel size in um (1 per frame for T).
    ``metadata`` holds ``path``, ``spacing_um``, ``channel_name``, ``channel_index``
    and ``axes``.
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
        out.append((data, channel_layer_kwargs(name, axes, scale, meta), "image"))
    return out


def _open(path) -> Image | None:
    """The lazily opened image, or None for anything lungtrack cannot read."""
    p = os.fspath(path)
    if not isinstance(p, str) or not p.lower().endswith(SUFFIXES) or not os.path.isfile(p):
        return None
    try:
        check_tiff(p)  # corrupt and truncated files fail here, before any pixel is read
        return read_image(p, require_spacing=False)
    except Exception as exc:  # a reader never raises: napari then tries the next reader
        log.debug("lungtrack-napari cannot read %s: %s", p, exc)
        return None


def get_reader(path):
    """napari reader hook: a function returning layer data, or None if any path is not a readable TIFF."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        return None
    images = []
    for p in paths:
        try:
            img = _open(p)
        except Exception:  # pragma: no cover - paranoia: never raise from a reader hook
            img = None
        if img is None:
            return None
        images.append(img)

    def reader(_path=None) -> list[tuple]:
        return [ld for img in images for ld in image_layer_data(img)]

    return reader
