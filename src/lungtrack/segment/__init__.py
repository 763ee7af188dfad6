"""Segmentation of MSCs, macrophages, nuclei and the tissue mask.

`segment_image` takes a whole image (an `Image` or a numpy array) and returns one
label image per role; `classic` holds the per-role functions on numpy blocks.

Examples
--------
>>> from lungtrack.synthetic import simulate_section
>>> s = simulate_section(shape=(160, 160), n_msc=4, n_macrophage=4, seed=2)
>>> seg = segment_image(s.image, spacing_um=s.spacing_um, channel_names=s.channel_names,
...                     config={"channels": {"nuclei": "DAPI", "msc": "GFP", "macrophage": "CD68"}})
>>> sorted(seg)
['macrophage', 'msc', 'msc_positive', 'msc_signal', 'nuclei', 'tissue']
"""
from __future__ import annotations


import numpy as np

from ..config import Config, load_config
from ..io import Image, LungtrackInputError
from .classic import (positive_mask, segment_cells, segment_corrected, subtract_background, threshold_value,
                      tissue_mask)

__all__ = ["segment_image", "segment_cells", "segment_corrected", "tissue_mask", "positive_mask", "subtract_background",
           "threshold_value", "as_image", "ROLES"]

ROLES = ("msc", "macrophage", "nuclei")


def as_image(image, spacing_um=None, channel_names=None) -> Image:
    """Wrap a numpy/dask array (C, Y, X) or (C, Z, Y, X) as an `Image`; pass an `Image` through."""
    if isinstance(image, Image):
        return image
    import dask.array as da

    arr = da.asarray(image)
    if arr.ndim == 3:
        arr = arr[None, :, None]
    elif arr.ndim == 4:
        arr = arr[None]
    else:
        raise LungtrackInputError(f"image must be (C, Y, X) or (C, Z, Y, X), got shape {arr.shape}")
    if spacing_um is None:
        raise LungtrackInputError("spacing_um (z, y, x) in um is required for an array without metadata")
    spacing = tuple(float(s) for s in spacing_um)
    if len(spacing) == 2:
        spacing = (1.0,) + spacing
    names = list(channel_names) if channel_names is not None else [f"C{i}" for i in range(arr.shape[1])]
    return Image(data=arr, spacing_um=spacing, channel_names=names)


def _spatial(img: Image, arr: np.ndarray):
    """Drop a length-1 z axis: 2D images are segmented in 2D."""
    if img.is_3d:
        return arr, img.spacing_um
    return arr[0], img.spacing_um[1:]


def segment_image(image, config: Config | dict | None = None, *, spacing_um=None, channel_names=None,
                  roles=("tissue", "nuclei", "msc", "macrophage"), time_index: int = 0) -> dict[str, np.ndarray]:
    """Segment every role of one image (one time point).

    Parameters
    ----------
    image : Image or array
        An `Image` from `lungtrack.io.read_image`, or an array (C, Y, X) / (C, Z, Y, X)
        with ``spacing_um`` and optionally ``channel_names``.
    config : Config, dict or YAML, optional
        Channel roles and segmentation parameters (defaults if None).
    roles : sequence of str
        Which of ``tissue``, ``nuclei``, ``msc``, ``macrophage`` to segment.

    Returns
    -------
    dict of ndarray
        ``msc``, ``macrophage``, ``nuclei``: int32 labels (Y, X) or (Z, Y, X);
        ``tissue``: bool mask; ``msc_positive``: bool mask of all MSC-label voxels
        (puncta included) at the MSC threshold, used for engulfment; ``msc_signal``: the
        background-subtracted MSC channel (float32), for intensity-weighted measures.
    """
    cfg = load_config(config)
    img = as_image(image, spacing_um, channel_names)
    out: dict[str, np.ndarray] = {}
    if img.n_channels < 2:
        raise LungtrackInputError(
            f"{img.path or 'image'}: has {img.n_channels} channel(s); lungtrack needs at least the MSC and "
            "macrophage channels. Check the file, or map roles in the 'channels' config section."
        )
    spacing = None
    for role in roles:
        if role == "tissue":
            ref = cfg.channels.tissue
            data = img.data[time_index] if ref is None else img.data[time_index, img.channel_index(ref)][None]
            arr = np.asarray(data)
            arr, spacing = (arr[:, 0], img.spacing_um[1:]) if not img.is_3d else (arr, img.spacing_um)
            out["tissue"] = tissue_mask(arr, spacing, cfg.segment.tissue)
            continue
        ref = getattr(cfg.channels, role)
        if ref is None:
            continue
        arr, spacing = _spatial(img, np.asarray(img.data[time_index, img.channel_index(ref)]))
        params = getattr(cfg.segment, role)
        corrected = subtract_background(arr, spacing, params.background_radius_um)
        labels, t = segment_corrected(corrected, spacing, params, within=out.get("tissue"), return_threshold=True)
        out[role] = labels
        if role == "msc":
            out["msc_positive"] = positive_mask(corrected, spacing, t)
            out["msc_signal"] = corrected
    return out
