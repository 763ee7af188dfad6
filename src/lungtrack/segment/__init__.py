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
['macrophage', 'msc', 'msc_fragmented', 'msc_n_fragments', 'msc_positive', 'msc_signal', 'nuclei', 'tissue']
"""
from __future__ import annotations

import numpy as np

from ..config import Config, load_config
from ..io import Image, LungtrackInputError
from .background import correct_background, subtract_autofluorescence
from .classic import (
    positive_mask,
    segment_cells,
    segment_corrected,
    size_filter,
    subtract_background,
    threshold_value,
    tissue_mask,
)
from .fragments import group_fragments
from .nuclei import segment_nuclei, split_by_seeds, threshold_mask

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
                  roles=("tissue", "nuclei", "msc", "macrophage"), time_index: int = 0,
                  labels: dict | None = None) -> dict[str, np.ndarray]:
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
    labels : dict of role -> ndarray, optional
        Label images made elsewhere (`lungtrack.segment.external.read_external_labels`),
        used for those roles instead of lungtrack's segmentation (``tissue``: a mask).

    Returns
    -------
    dict of ndarray
        ``msc``, ``macrophage``, ``nuclei``: int32 labels (Y, X) or (Z, Y, X);
        ``tissue``: bool mask; ``msc_positive``: bool mask of all MSC-label voxels
        (puncta included) at the MSC threshold, used for engulfment; ``msc_signal``: the
        background-subtracted MSC channel (float32), for intensity-weighted measures;
        ``msc_fragmented`` (not with external MSC labels): int32 labels of dying MSCs (puncta grouped per cell, labels
        after the intact MSCs', see `lungtrack.segment.fragments.group_fragments`) and
        ``msc_n_fragments``: puncta per fragmented MSC (int64, in label order).
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
    given = _check_given_labels(labels, img)
    for role in roles:
        if role == "tissue" and "tissue" in given:
            out["tissue"] = np.asarray(given["tissue"]) > 0
            continue
        if role == "tissue":
            ref = cfg.channels.tissue
            data = img.data[time_index] if ref is None else img.data[time_index, img.channel_index(ref)][None]
            arr = np.asarray(data)
            arr, spacing = (arr[:, 0], img.spacing_um[1:]) if not img.is_3d else (arr, img.spacing_um)
            out["tissue"] = tissue_mask(arr, spacing, cfg.segment.tissue)
            continue
        ref = getattr(cfg.channels, role)
        if ref is None:
            if role in given:
                out[role] = np.asarray(given[role], np.int32)
            continue
        arr, spacing = _spatial(img, np.asarray(img.data[time_index, img.channel_index(ref)]))
        params = getattr(cfg.segment, role)
        if cfg.channels.autofluorescence is not None:
            af, _ = _spatial(img, np.asarray(img.data[time_index, img.channel_index(cfg.channels.autofluorescence)]))
            arr = subtract_autofluorescence(arr, af, params.autofluorescence_scale)
        corrected = correct_background(arr, spacing, method=params.background, radius_um=params.background_radius_um)
        within = out.get("tissue")
        if role in given:
            role_labels = np.asarray(given[role], np.int32)
            t = threshold_mask(corrected, spacing, params, within=within)[1] if role == "msc" else None
        else:
            role_labels, t = _segment_role(role, corrected, spacing, params, within, out)
        out[role] = role_labels
        if role == "msc":
            out["msc_positive"] = positive_mask(corrected, spacing, t)
            out["msc_signal"] = corrected
            msc_threshold, msc_spacing = t, spacing
    # With MSC labels from another segmenter, that segmenter defines the MSC objects: no
    # fragment groups are added to them.
    if "msc_positive" in out and "msc" not in given:
        p = cfg.segment.msc
        puncta = positive_mask(out["msc_signal"], msc_spacing, msc_threshold * p.fragment_threshold_ratio)
        out["msc_fragmented"], out["msc_n_fragments"] = group_fragments(
            puncta, out["msc"], msc_spacing, distance_um=p.fragment_distance_um,
            min_diameter_um=p.fragment_min_diameter_um, exclude=out.get("macrophage"),
            min_fragments=p.fragment_min_count, label_offset=int(out["msc"].max()))
    return out


def _segment_role(role, corrected, spacing, params, within, done):
    """Labels and threshold of one role by the method its config selects."""
    if role == "nuclei" and params.method == "hmaxima":
        return segment_nuclei(corrected, spacing, params, within=within, return_threshold=True)
    if role in ("msc", "macrophage") and params.seeds == "nuclei" and "nuclei" in done:
        mask, t = threshold_mask(corrected, spacing, params, within=within)
        lab = split_by_seeds(mask, done["nuclei"], spacing)
        return size_filter(lab, spacing, params.min_diameter_um, params.max_diameter_um), t
    return segment_corrected(corrected, spacing, params, within=within, return_threshold=True)


def _check_given_labels(labels, img: Image) -> dict:
    """External labels must have the image's spatial shape (z dropped for 2D images)."""
    given = dict(labels or {})
    shape = tuple(img.data.shape[2:]) if img.is_3d else tuple(img.data.shape[3:])
    for role, lab in given.items():
        if role not in ("msc", "macrophage", "nuclei", "tissue"):
            raise LungtrackInputError(f"external labels: unknown role {role!r}; use msc, macrophage, nuclei or tissue.")
        if tuple(np.shape(lab)) != shape:
            raise LungtrackInputError(
                f"external {role} labels have shape {tuple(np.shape(lab))} but the image's spatial shape is {shape}."
            )
    return given
