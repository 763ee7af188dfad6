"""Label images made elsewhere (Cellpose, StarDist, QuPath, ilastik) used instead of lungtrack's.

Per role, a label image is given per sample by a manifest column ``<role>_labels``
(``msc_labels``, ``macrophage_labels``, ``nuclei_labels``, ``tissue_labels``) or for
all samples by ``segment.<role>.labels_pattern`` in the config (a path with
``{sample_id}``; relative paths are taken from the image's folder). The label image
must have the image's spatial shape (Y, X) or (Z, Y, X); when its metadata carries a
pixel size, that must equal the image's. Objects are renumbered 1..n in the order of
their original label values (lungtrack's tables count objects by the maximum label).

Examples
--------
>>> import tempfile, pathlib, tifffile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> lab = np.zeros((8, 8), np.uint16); lab[1:3, 1:3] = 5; lab[5:7, 5:7] = 9
>>> tifffile.imwrite(d / "s1_msc.tif", lab)
>>> out = read_external_labels(d / "s1_msc.tif", shape=(8, 8), spacing_um=(0.5, 0.5), role="msc")
>>> out.dtype.name, int(out.max()), int(out[1, 1]), int(out[6, 6])
('int32', 2, 1, 2)
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from skimage.segmentation import relabel_sequential

from ..io import LungtrackInputError, MissingPixelSizeError, read_image

log = logging.getLogger(__name__)

__all__ = ["read_external_labels", "external_label_paths", "LABEL_ROLES"]

#: Roles that can come from external label images (``tissue``: any label > 0 is tissue).
LABEL_ROLES = ("msc", "macrophage", "nuclei", "tissue")


def external_label_paths(sample, config) -> dict[str, str]:
    """Role -> label-image path for one sample: its manifest columns, else the config patterns.

    Parameters
    ----------
    sample : lungtrack.experiment.Sample
        ``sample.labels`` holds the manifest's ``<role>_labels`` paths (absolute).
    config : Config

    Examples
    --------
    >>> from lungtrack.config import Config
    >>> from lungtrack.experiment import Sample
    >>> s = Sample("s1", "/data/images/s1.tif", "m1", "BM", 2.0, "1", labels={"nuclei": "/x/n.tif"})
    >>> cfg = Config.from_dict({"segment": {"msc": {"labels_pattern": "../cellpose/{sample_id}_cp.tif"}}})
    >>> paths = external_label_paths(s, cfg)
    >>> paths["nuclei"], Path(paths["msc"]).as_posix()
    ('/x/n.tif', '/data/images/../cellpose/s1_cp.tif')
    """
    out = {}
    given = dict(getattr(sample, "labels", {}) or {})
    for role in LABEL_ROLES:
        if given.get(role):
            out[role] = str(given[role])
            continue
        pattern = getattr(getattr(config.segment, role), "labels_pattern", None)
        if pattern:
            try:
                rel = pattern.format(sample_id=sample.sample_id)
            except (KeyError, IndexError) as exc:
                raise LungtrackInputError(
                    f"segment.{role}.labels_pattern {pattern!r}: only {{sample_id}} can be filled in ({exc})."
                ) from exc
            p = Path(rel)
            if not p.is_absolute():
                p = Path(sample.path).parent / p
            out[role] = str(p)
    return out


def _load(path: Path):
    """(array with length-1 axes dropped, spacing (z, y, x) or None when the file has none)."""
    if path.suffix.lower() == ".npy":
        return np.load(path), None
    try:
        img = read_image(path, require_spacing=True)
        spacing = img.spacing_um
    except MissingPixelSizeError:
        img = read_image(path, require_spacing=False)
        spacing = None
    arr = np.asarray(img.data)
    if arr.shape[0] != 1 or arr.shape[1] != 1:
        raise LungtrackInputError(
            f"{path}: a label image must have one channel and one time point; it has shape (T, C, Z, Y, X) = "
            f"{arr.shape}."
        )
    return arr[0, 0], spacing


def read_external_labels(path, *, shape, spacing_um, role: str, rtol: float = 0.01) -> np.ndarray:
    """Read and check one external label image for ``role``.

    Parameters
    ----------
    path : str or Path
        TIFF/OME-TIFF (or ``.npy``) label image: 0 = background, one integer per object.
    shape : tuple of int
        The image's spatial shape, (Y, X) or (Z, Y, X).
    spacing_um : sequence of float
        The image's voxel size for those axes (2 or 3 values, or (z, y, x) for 2D).
    role : str
        For messages, and ``tissue`` returns a bool mask.
    rtol : float
        Relative tolerance on the pixel size when the label file carries one.

    Returns
    -------
    ndarray of int32 labels renumbered 1..n (order kept), or bool for ``tissue``.

    Raises
    ------
    LungtrackInputError
        Missing file, shape or pixel size different from the image's, non-integer or
        negative labels, each naming the file and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise LungtrackInputError(
            f"{path}: external {role} label image not found. Fix the manifest column '{role}_labels' or "
            f"segment.{role}.labels_pattern."
        )
    try:
        arr, file_spacing = _load(path)
    except LungtrackInputError:
        raise
    except Exception as exc:  # unreadable file: say which and why
        raise LungtrackInputError(f"{path}: cannot read the external {role} label image ({exc}).") from exc
    shape = tuple(int(s) for s in shape)
    if arr.ndim == 3 and arr.shape[0] == 1 and len(shape) == 2:
        arr = arr[0]
    if tuple(arr.shape) != shape:
        raise LungtrackInputError(
            f"{path}: external {role} labels have shape {tuple(arr.shape)} but the image is {shape} (spatial axes); "
            "make the label image from the same image at the same size (no crop, resize or padding)."
        )
    if file_spacing is not None:
        want = tuple(float(s) for s in spacing_um)[-len(shape):]
        got = tuple(float(s) for s in file_spacing)[-len(shape):]
        # A 2D file's z spacing is meaningless; compare only y, x there.
        axes = slice(-2, None) if len(shape) == 2 else slice(None)
        if not np.allclose(got[axes], want[axes], rtol=rtol, atol=0):
            raise LungtrackInputError(
                f"{path}: external {role} labels have pixel size {got} um but the image has {want} um; the labels "
                "must be made on the image at its own resolution (or save them without a pixel size)."
            )
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int32)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise LungtrackInputError(
                f"{path}: external {role} labels must be integers (0 = background); this file holds fractional or "
                "NaN values (a probability map?). Export instance labels instead."
            )
    if arr.size and arr.min() < 0:
        raise LungtrackInputError(f"{path}: external {role} labels contain negative values; 0 is background.")
    if role == "tissue":
        return np.asarray(arr) > 0
    lab = np.asarray(arr).astype(np.int64)
    if lab.max(initial=0) > np.iinfo(np.int32).max:
        raise LungtrackInputError(f"{path}: label values exceed int32.")
    lab, _, _ = relabel_sequential(lab)
    return lab.astype(np.int32)
