"""Read and write images lazily, with physical spacing and channel names.

`read_image` opens TIFF, ImageJ hyperstacks and OME-TIFF through tifffile's zarr
store, so pixels are read only when a chunk is computed. Axes are normalised to
numpy order ``TCZYX`` (missing axes kept with length 1), spacing travels with the
data as ``spacing_um = (z, y, x)`` and channel names come from the metadata (OME
``Channel Name``, ImageJ ``Labels``), so a config can map roles to channels by name.

Examples
--------
>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "a.ome.tif")
>>> write_image(path, np.zeros((2, 8, 8), "uint16"), axes="CYX", spacing_um=(1.0, 0.5, 0.5),
...             channel_names=["DAPI", "GFP"])
>>> img = read_image(path)
>>> img.data.shape, img.spacing_um, img.channel_names
((1, 2, 1, 8, 8), (1.0, 0.5, 0.5), ['DAPI', 'GFP'])
>>> img.channel_index("GFP")
1
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np
import tifffile

log = logging.getLogger(__name__)

AXES = "TCZYX"


class LungtrackInputError(ValueError):
    """Bad input: the message names the file and says what to do."""


class ImageReadError(LungtrackInputError):
    """An image file is missing, corrupt, truncated or not a TIFF."""


class MissingPixelSizeError(LungtrackInputError):
    """An image has no pixel size in its metadata and none was given."""


@dataclass
class Image:
    """A lazily read image with its physical spacing.

    Attributes
    ----------
    data : dask.array.Array
        Pixels with axes ``TCZYX`` (missing axes have length 1).
    spacing_um : tuple of float
        Voxel size (z, y, x) in micrometres. z is 1.0 for 2D images.
    channel_names : list of str
        One name per channel (``"C0"``, ``"C1"``... when the file has none).
    path : str or None
        Where the image came from.
    time_interval_s : float or None
        Frame interval for time-lapse images, when the metadata has one.
    """

    data: da.Array
    spacing_um: tuple[float, float, float]
    channel_names: list[str]
    path: str | None = None
    time_interval_s: float | None = None
    axes: str = field(default=AXES, init=False)

    @property
    def n_channels(self) -> int:
        return int(self.data.shape[1])

    @property
    def is_3d(self) -> bool:
        return int(self.data.shape[2]) > 1

    def channel_index(self, ref: int | str) -> int:
        """Resolve a channel given by name (case-insensitive) or 0-based index."""
        if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
            if not 0 <= ref < self.n_channels:
                raise LungtrackInputError(
                    f"{self.path}: channel index {ref} is out of range; the image has "
                    f"{self.n_channels} channel(s) {self.channel_names}. Fix the 'channels' section of the config."
                )
            return int(ref)
        names = [n.lower() for n in self.channel_names]
        if str(ref).lower() in names:
            return names.index(str(ref).lower())
        if str(ref).isdigit():
            return self.channel_index(int(ref))
        raise LungtrackInputError(
            f"{self.path}: no channel named {ref!r}; the image has channels {self.channel_names}. "
            "Fix the 'channels' section of the config (names or 0-based indices)."
        )

    def channel(self, ref: int | str) -> da.Array:
        """One channel as a (T, Z, Y, X) dask array."""
        return self.data[:, self.channel_index(ref)]


def _um_per_unit(unit: str | None) -> float | None:
    if unit is None:
        return 1.0
    u = str(unit).strip().lower().replace("\\u00b5", "µ")
    table = {
        "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
        "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3, "cm": 1e4, "m": 1e6,
    }
    return table.get(u)


def _resolution_um(page: tifffile.TiffPage, unit_um: float | None) -> float | None:
    """Pixel size from the X/YResolution tags (pixels per unit)."""
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value
    if num == 0:
        return None
    per_unit = den / num
    res_unit = page.tags.get("ResolutionUnit")
    res_unit = int(res_unit.value) if res_unit is not None else 2
    if unit_um is not None:  # ImageJ: unit given in its metadata, resolution in that unit
        return per_unit * unit_um
    if res_unit == 3:  # centimetre
        return per_unit * 1e4
    if res_unit == 4:  # millimetre (TIFF extension used by tifffile and some microscopes)
        return per_unit * 1e3
    if res_unit == 5:  # micrometre
        return per_unit
    # No unit, or inches (dpi from a desktop program, not a microscope): treat as missing.
    return None


def _ome_info(tif: tifffile.TiffFile):
    meta = tifffile.xml2dict(tif.ome_metadata)
    images = meta.get("OME", {}).get("Image", {})
    if isinstance(images, list):
        images = images[0]
    pixels = images.get("Pixels", {})
    spacing = []
    for ax in "ZYX":
        size = pixels.get(f"PhysicalSize{ax}")
        unit = _um_per_unit(pixels.get(f"PhysicalSize{ax}Unit", "µm"))
        spacing.append(None if size is None or unit is None else float(size) * unit)
    channels = pixels.get("Channel", [])
    if isinstance(channels, dict):
        channels = [channels]
    names = [c.get("Name") for c in channels]
    dt = pixels.get("TimeIncrement")
    return spacing, names, _seconds(dt, pixels.get("TimeIncrementUnit", "s"))


def _seconds(value, unit) -> float | None:
    """A frame interval in seconds (OME TimeIncrementUnit / ImageJ tunit); None if absent, zero or unknown unit."""
    per = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "min": 60.0, "minute": 60.0,
           "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0}.get(str(unit).strip().lower())
    return float(value) * per if value not in (None, "", 0) and per is not None and float(value) > 0 else None


def _imagej_info(tif: tifffile.TiffFile, n_c: int):
    meta = tif.imagej_metadata or {}
    unit_um = _um_per_unit(meta.get("unit", "pixel"))
    xy = _resolution_um(tif.pages.first, unit_um) if unit_um is not None else None
    if meta.get("unit") in (None, "pixel", "pixels", ""):
        xy = None
    z = meta.get("spacing")
    z = float(z) * unit_um if (z is not None and unit_um is not None) else None
    names = None
    labels = meta.get("Labels")
    if labels and n_c > 0 and len(labels) >= n_c:
        # ImageJ slice labels run C fastest, so the first n_c name the channels.
        names = [str(x) for x in labels[:n_c]]
    return [z, xy, xy], names, _seconds(meta.get("finterval"), meta.get("tunit", "s"))


def _normalise_axes(axes: str, shape: tuple[int, ...], axes_hint: str | None) -> str:
    axes = axes.upper()
    if axes_hint is not None:
        if len(axes_hint) != len(shape):
            raise LungtrackInputError(f"axes={axes_hint!r} does not match the image shape {shape}")
        return axes_hint.upper()
    if "S" in axes:
        if "C" in axes and shape[axes.index("S")] > 1 and shape[axes.index("C")] > 1:
            raise LungtrackInputError("image has both samples (RGB) and channels; pass axes= explicitly")
        axes = axes.replace("C", "c") if "C" in axes and shape[axes.index("C")] == 1 else axes
        axes = axes.replace("S", "C") if "C" not in axes else axes.replace("S", "s")
    unknown = [a for a in axes if a not in AXES]
    if unknown:
        # tifffile calls plain page sequences 'I' or 'Q': most often a z-stack.
        free = [a for a in "ZCT" if a not in axes]
        mapped = []
        for a in axes:
            if a in AXES:
                mapped.append(a)
            elif a in "IQ" and free:
                mapped.append(free.pop(0))
            else:
                mapped.append(a.lower())  # dropped later if length 1
        log.info("interpreting axes %s as %s", axes, "".join(mapped))
        axes = "".join(mapped)
    return axes


def _to_tczyx(arr, axes: str):
    """Reorder an array with the given axes letters to TCZYX (lazy for dask)."""
    # Length-1 extra axes (lower-case) are dropped; others are an error.
    index = []
    keep = []
    for i, a in enumerate(axes):
        if a in AXES:
            index.append(slice(None))
            keep.append(a)
        elif arr.shape[i] == 1:
            index.append(0)
        else:
            raise LungtrackInputError(f"cannot interpret axis {a!r} of length {arr.shape[i]} (axes {axes!r})")
    arr = arr[tuple(index)]
    for a in AXES:
        if a not in keep:
            arr = arr.reshape(arr.shape + (1,))
            keep.append(a)
    order = [keep.index(a) for a in AXES]
    return arr.transpose(order)


def check_tiff(path: str | os.PathLike) -> None:
    """Raise `ImageReadError` if a TIFF cannot be opened or its pixel data runs past the end of the file.

    A truncated file opens fine and fails only when the missing strips are read;
    checking offsets against the file size finds it before any work is done.
    """
    path = str(path)
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: file not found. Check the path (relative paths are relative to the manifest).")
    size = os.path.getsize(path)
    # tifffile reports unreadable IFDs and tag values (a truncated file's tail) only in its log.
    records: list[logging.LogRecord] = []
    handler = _ListHandler(records)
    tlog = logging.getLogger("tifffile")
    tlog.addHandler(handler)
    propagate, tlog.propagate = tlog.propagate, False  # our error says it, with the file name
    try:
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                offsets = getattr(page, "dataoffsets", ()) or ()
                counts = getattr(page, "databytecounts", ()) or ()
                for off, cnt in zip(offsets, counts):
                    if off + cnt > size:
                        raise ImageReadError(
                            f"{path}: file is truncated (pixel data ends at byte {off + cnt}, file has {size}). "
                            "Copy or export the image again, or remove its row from the manifest."
                        )
            _ = tif.series[0].shape
    except ImageReadError:
        raise
    except Exception as exc:  # tifffile raises several types for corrupt files
        raise ImageReadError(
            f"{path}: not a readable TIFF ({type(exc).__name__}: {exc}). Export it again as TIFF/OME-TIFF, "
            "or remove its row from the manifest."
        ) from exc
    finally:
        tlog.removeHandler(handler)
        tlog.propagate = propagate
    bad = [r.getMessage() for r in records if "offset" in r.getMessage() or "truncat" in r.getMessage()]
    if bad:
        raise ImageReadError(
            f"{path}: file is truncated or corrupt ({bad[0].strip()}). Copy or export the image again, "
            "or remove its row from the manifest."
        )


class _ListHandler(logging.Handler):
    def __init__(self, records):
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record):
        self.records.append(record)


def read_image(
    path: str | os.PathLike,
    *,
    pixel_size_um: float | None = None,
    z_step_um: float | None = None,
    axes: str | None = None,
    require_spacing: bool = True,
    default_pixel_size_um: float | None = None,
    default_z_step_um: float | None = None,
) -> Image:
    """Open a TIFF / ImageJ hyperstack / OME-TIFF lazily.

    Parameters
    ----------
    path : str or Path
        The image file.
    pixel_size_um, z_step_um : float, optional
        Spacing to use instead of the metadata (it overrides what the file says).
    default_pixel_size_um, default_z_step_um : float, optional
        Spacing to use only where the metadata has none.
    axes : str, optional
        Axis letters of the stored series (e.g. ``"CYX"``) when the file does not say.
    require_spacing : bool
        If True (default), a missing pixel size is an error; otherwise 1.0 is used.

    Returns
    -------
    Image
        ``data`` is a dask array in ``TCZYX`` order; nothing is read yet.

    Raises
    ------
    ImageReadError
        The file is missing, corrupt or not a TIFF.
    MissingPixelSizeError
        No pixel size in the metadata and none given.
    """
    path = str(path)
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: file not found. Check the path (relative paths are relative to the manifest).")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            s_axes = _normalise_axes(series.axes, series.shape, axes)
            n_c = series.shape[s_axes.index("C")] if "C" in s_axes else 1
            spacing, names, dt = [None, None, None], None, None
            if tif.is_ome:
                spacing, names, dt = _ome_info(tif)
            elif tif.is_imagej:
                spacing, names, dt = _imagej_info(tif, n_c)
            else:
                xy = _resolution_um(tif.pages.first, None)
                spacing = [None, xy, xy]
    except LungtrackInputError:
        raise
    except Exception as exc:
        raise ImageReadError(
            f"{path}: not a readable TIFF ({type(exc).__name__}: {exc}). Export it again as TIFF/OME-TIFF, "
            "or remove its row from the manifest."
        ) from exc

    # The zarr store keeps its own file handle open for lazy reads. level=0: the full
    # resolution of a pyramidal OME-TIFF (without it the store is a multiscale group).
    store = tifffile.imread(path, aszarr=True, level=0)
    arr = da.from_zarr(store)
    data = _to_tczyx(arr, s_axes)

    if pixel_size_um is not None:
        spacing[1] = spacing[2] = float(pixel_size_um)
    if z_step_um is not None:
        spacing[0] = float(z_step_um)
    if default_pixel_size_um is not None and (spacing[1] is None or spacing[2] is None):
        spacing[1] = spacing[2] = float(default_pixel_size_um)
    if default_z_step_um is not None and spacing[0] is None:
        spacing[0] = float(default_z_step_um)
    if spacing[1] is None or spacing[2] is None:
        if require_spacing:
            raise MissingPixelSizeError(
                f"{path}: no pixel size in the image metadata. Give it in the manifest column "
                "'pixel_size_um', or as run.pixel_size_um in the config (in um)."
            )
        spacing[1] = spacing[2] = 1.0
    if spacing[0] is None:
        if data.shape[2] > 1 and require_spacing:
            raise MissingPixelSizeError(
                f"{path}: read as a z-stack of {data.shape[2]} planes without a z step in its metadata. Give "
                "run.z_step_um in the config (in um); or, if the pages are channels, set run.axes (e.g. CYX)."
            )
        spacing[0] = 1.0
    n_c = int(data.shape[1])
    if not names or len(names) != n_c or any(n is None for n in names):
        names = [f"C{i}" for i in range(n_c)]
    return Image(data=data, spacing_um=tuple(float(s) for s in spacing), channel_names=list(names), path=path,
                 time_interval_s=dt)


def write_image(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    axes: str,
    spacing_um: tuple[float, float, float],
    channel_names: list[str] | None = None,
    compression: str | None = "zlib",
) -> None:
    """Write an OME-TIFF with physical spacing and channel names (opens in Fiji and napari)."""
    axes = axes.upper()
    meta: dict = {
        "axes": axes,
        "PhysicalSizeX": float(spacing_um[2]), "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": float(spacing_um[1]), "PhysicalSizeYUnit": "µm",
    }
    if "Z" in axes:
        meta.update(PhysicalSizeZ=float(spacing_um[0]), PhysicalSizeZUnit="µm")
    if channel_names is not None:
        meta["Channel"] = {"Name": list(channel_names)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        path, np.asarray(data), ome=True, metadata=meta, compression=compression, photometric="minisblack",
        resolution=(1.0 / spacing_um[2], 1.0 / spacing_um[1]), resolutionunit="MICROMETER",
    )


def write_labels(path: str | os.PathLike, labels: np.ndarray, spacing_um: tuple[float, float, float]) -> None:
    """Write a uint32 label image (YX or ZYX) as OME-TIFF with the image's spacing."""
    labels = np.asarray(labels)
    axes = "ZYX" if labels.ndim == 3 else "YX"
    write_image(path, labels.astype(np.uint32, copy=False), axes=axes, spacing_um=spacing_um)


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
