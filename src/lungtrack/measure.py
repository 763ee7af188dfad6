"""Label images -> object tables in physical units.

Examples
--------
>>> lab = np.zeros((10, 10), np.int32); lab[2:4, 2:6] = 1
>>> t = measure_objects(lab, (1.0, 0.5, 0.5), role="msc", sample_id="s1")
>>> t[["label", "area_um2", "centroid_y_um", "centroid_x_um", "touches_border"]].to_dict("records")
[{'label': 1, 'area_um2': 2.0, 'centroid_y_um': 1.25, 'centroid_x_um': 1.75, 'touches_border': False}]
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd


def object_columns(ndim: int, channel_names=()) -> list[str]:
    """The objects-table columns for 2D (``area_um2``) or 3D (``volume_um3``) labels."""
    size = "area_um2" if ndim == 2 else "volume_um3"
    return (["sample_id", "role", "label", "centroid_z_um", "centroid_y_um", "centroid_x_um", size,
             "equivalent_diameter_um"] + [f"mean_intensity_{c}" for c in channel_names] + ["touches_border"])


def border_labels(labels: np.ndarray) -> np.ndarray:
    """Labels with a voxel on a face of the image (faces of length-1 axes excluded)."""
    found = []
    for ax, n in enumerate(labels.shape):
        if n <= 1:
            continue
        found.append(np.take(labels, 0, axis=ax).ravel())
        found.append(np.take(labels, n - 1, axis=ax).ravel())
    if not found:
        return np.zeros(0, labels.dtype)
    u = np.unique(np.concatenate(found))
    return u[u > 0]


def _label_bins(labels: np.ndarray):
    """Flat bin index per voxel, the object labels (> 0), the bin of each label and voxels per bin.

    Labels are bins directly when they are small non-negative integers (the usual
    1..n); sparse or huge label values (external label images) go through np.unique.
    """
    flat = labels.reshape(-1)
    if labels.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if flat.size == 0:
        return flat.astype(np.intp), np.zeros(0, np.int64), np.zeros(0, np.intp), np.zeros(1, np.intp)
    lo, hi = int(flat.min()), int(flat.max())
    if lo >= 0 and hi <= flat.size:
        bins = flat.astype(np.intp, copy=False)
        counts = np.bincount(bins)
        ids = np.flatnonzero(counts)
        ids = ids[ids > 0]
        return bins, ids.astype(np.int64), ids, counts
    values, inv = np.unique(flat, return_inverse=True)
    bins = inv.reshape(-1).astype(np.intp, copy=False)
    keep = np.flatnonzero(values > 0)
    return bins, values[keep].astype(np.int64), keep, np.bincount(bins)


def measure_objects(labels: np.ndarray, spacing_um, *, intensities: dict[str, np.ndarray] | None = None,
                    role: str | None = None, sample_id: str | None = None) -> pd.DataFrame:
    """One row per object: position, size and mean intensities in physical units.

    Parameters
    ----------
    labels : ndarray of int
        (Y, X) or (Z, Y, X) label image, 0 = background.
    spacing_um : sequence of float
        (z, y, x) voxel size in um; for 2D labels the last two are used.
    intensities : dict of name -> ndarray, optional
        Channels (same shape as ``labels``) whose per-object mean is reported as
        ``mean_intensity_<name>``.
    role, sample_id : str, optional
        Written into every row.

    Returns
    -------
    DataFrame
        ``sample_id, role, label, centroid_z_um, centroid_y_um, centroid_x_um,
        area_um2`` (2D) or ``volume_um3`` (3D), ``equivalent_diameter_um``,
        ``mean_intensity_<channel>``..., ``touches_border``. An image without
        objects gives an empty table with every column.

    Notes
    -----
    Centroids are voxel-centre means times spacing (voxel i lies at i * spacing);
    the equivalent diameter is that of the circle (2D) or sphere (3D) with the
    object's area or volume; for 2D images ``centroid_z_um`` is 0.
    """
    labels = np.asarray(labels)
    spacing = tuple(float(s) for s in spacing_um)
    sp = spacing[-labels.ndim:]
    intensities = intensities or {}
    cols = object_columns(labels.ndim, list(intensities))
    bins, ids, at, nvox = _label_bins(labels)
    if ids.size == 0:
        empty = pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in cols})
        return empty
    # One np.bincount per quantity: the sums scipy.ndimage.sum_labels / center_of_mass / mean
    # compute (same order, same bits), without their repeated unique/min/max/ravel passes.
    nb = nvox.size
    counts = nvox[at].astype(np.float64)
    vox = float(np.prod(sp))
    size = counts * vox
    cent = np.empty((len(ids), labels.ndim))
    for ax in range(labels.ndim):
        coord = np.arange(labels.shape[ax], dtype=np.float64).reshape((-1,) + (1,) * (labels.ndim - ax - 1))
        weights = np.broadcast_to(coord, labels.shape).reshape(-1)
        cent[:, ax] = np.bincount(bins, weights=weights, minlength=nb)[at] / counts
    cent = cent * np.asarray(sp)
    if labels.ndim == 2:
        cent = np.column_stack([np.zeros(len(ids)), cent])
        eqd = 2.0 * np.sqrt(size / math.pi)
    else:
        eqd = 2.0 * np.cbrt(3.0 * size / (4.0 * math.pi))
    data = {
        "sample_id": [sample_id] * len(ids), "role": [role] * len(ids), "label": ids.astype(np.int64),
        "centroid_z_um": cent[:, 0], "centroid_y_um": cent[:, 1], "centroid_x_um": cent[:, 2],
        cols[6]: size, "equivalent_diameter_um": eqd,
    }
    for name, img in intensities.items():
        w = np.asarray(img, np.float64).reshape(-1)
        data[f"mean_intensity_{name}"] = np.bincount(bins, weights=w, minlength=nb)[at] / counts
    data["touches_border"] = np.isin(ids, border_labels(labels))
    return pd.DataFrame(data, columns=cols)


def _dtype(col: str):
    if col in ("sample_id", "role"):
        return object
    if col == "label":
        return np.int64
    if col == "touches_border":
        return bool
    return np.float64


#: Extra columns of MSC rows: puncta per object (1 for an intact cell) and whether it is intact.
MSC_FRAGMENT_COLUMNS = ["n_fragments", "intact"]


def measure_msc(labels: np.ndarray, spacing_um, *, fragmented: np.ndarray | None = None,
                n_fragments=None, intensities: dict[str, np.ndarray] | None = None,
                sample_id: str | None = None) -> pd.DataFrame:
    """MSC rows of the objects table: intact MSCs, then fragmented (dying) MSCs, one row each.

    Parameters
    ----------
    labels : ndarray of int
        Intact MSCs (``segment_image(...)["msc"]``).
    spacing_um : sequence of float
        (z, y, x) voxel size in um.
    fragmented : ndarray of int, optional
        Dying MSCs: every punctum carries its cell's label, numbered after the intact
        MSCs (``segment_image(...)["msc_fragmented"]``).
    n_fragments : sequence of int, optional
        Puncta per fragmented MSC in label order (``segment_image(...)["msc_n_fragments"]``).
    intensities, sample_id
        As in `measure_objects`.

    Returns
    -------
    DataFrame
        The `measure_objects` columns plus ``n_fragments`` (Int64: 1 for an intact MSC,
        the number of puncta for a fragmented one) and ``intact`` (boolean); both are
        nullable, so other roles' rows concatenated with these hold <NA>. A fragmented MSC's
        centroid is that of its puncta and its area (volume) their sum.

    Examples
    --------
    >>> msc = np.zeros((20, 20), np.int32); msc[2:8, 2:8] = 1
    >>> frag = np.zeros((20, 20), np.int32); frag[12, 12] = frag[14, 16] = frag[17, 13] = 2
    >>> t = measure_msc(msc, (1.0, 1.0, 1.0), fragmented=frag, n_fragments=[3], sample_id="s1")
    >>> t[["label", "area_um2", "n_fragments", "intact"]].to_dict("records")
    [{'label': 1, 'area_um2': 36.0, 'n_fragments': 1, 'intact': True}, {'label': 2, 'area_um2': 3.0, 'n_fragments': 3, 'intact': False}]
    """
    intact = measure_objects(labels, spacing_um, intensities=intensities, role="msc", sample_id=sample_id)
    # Nullable dtypes: rows of other roles concatenated below get <NA>, not float NaN / object.
    intact["n_fragments"] = pd.array(np.ones(len(intact), np.int64), dtype="Int64")
    intact["intact"] = pd.array(np.ones(len(intact), bool), dtype="boolean")
    if fragmented is None or not np.any(fragmented):
        return intact
    frag = measure_objects(fragmented, spacing_um, intensities=intensities, role="msc", sample_id=sample_id)
    n = np.asarray(n_fragments if n_fragments is not None else [], np.int64)
    if n.size != len(frag):
        raise ValueError(f"n_fragments has {n.size} values for {len(frag)} fragmented MSCs")
    frag["n_fragments"] = pd.array(n, dtype="Int64")
    frag["intact"] = pd.array(np.zeros(len(frag), bool), dtype="boolean")
    if intact.empty:
        return frag.reset_index(drop=True)
    return pd.concat([intact, frag], ignore_index=True)
