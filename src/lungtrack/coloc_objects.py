"""Object-based colocalization of MSCs and macrophages: centroid-in-object, overlap, IoU.

Works on label images (0 = background), 2D ``(Y, X)`` or 3D ``(Z, Y, X)``, in
physical units: centroids use the voxel spacing, areas and volumes are voxel
counts times ``prod(spacing)``, so anisotropic z-stacks are measured right.

Examples
--------
>>> import numpy as np
>>> msc = np.zeros((6, 8), np.int32); msc[1:3, 1:3] = 1; msc[4:6, 5:8] = 2
>>> mac = np.zeros((6, 8), np.int32); mac[0:3, 0:3] = 7
>>> t = msc_in_macrophage(msc, mac, (1.0, 0.5, 0.5))
>>> print(t[["msc_label", "centroid_in_macrophage", "macrophage_label", "overlap_um2"]].to_string(index=False))
 msc_label  centroid_in_macrophage  macrophage_label  overlap_um2
         1                    True                 7          1.0
         2                   False              <NA>          0.0
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .segment.metrics import overlap_counts
from .spatial import signal_fraction_inside

__all__ = ["msc_in_macrophage", "overlap_pairs", "object_coloc_summary"]


def _size_col(ndim: int) -> str:
    return "overlap_um2" if ndim == 2 else "overlap_um3"


def _check_labels(name, labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"{name} must be a 2D (Y, X) or 3D (Z, Y, X) labels image, got shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"{name} must be an integer labels image, got dtype {labels.dtype}")
    return labels


def _check_pair(name_a, a, name_b, b, spacing_um):
    a = _check_labels(name_a, a)
    b = _check_labels(name_b, b)
    if a.shape != b.shape:
        raise ValueError(f"{name_b} has shape {b.shape} but {name_a} has shape {a.shape}; they must match")
    sp = tuple(float(s) for s in np.atleast_1d(spacing_um))
    if len(sp) < a.ndim or any(not (s > 0 and math.isfinite(s)) for s in sp):
        raise ValueError(f"spacing_um must hold at least {a.ndim} positive sizes ((z,) y, x in um), "
                         f"got {spacing_um!r}")
    return a, b, sp[-a.ndim:]


def _ids(labels) -> np.ndarray:
    u = np.unique(labels)
    return u[u > 0].astype(np.int64)


def msc_in_macrophage_columns(ndim: int) -> list[str]:
    """Columns of `msc_in_macrophage` for 2D or 3D labels."""
    return ["msc_label", "centroid_in_macrophage", "macrophage_label", _size_col(ndim), "overlap_fraction",
            "intensity_fraction_in_macrophages"]


def msc_in_macrophage(msc_labels, macrophage_labels, spacing_um, *, msc_signal=None) -> pd.DataFrame:
    """Per MSC: is its centroid inside a macrophage, and how much of it overlaps macrophages.

    Parameters
    ----------
    msc_labels, macrophage_labels : array_like of int
        Label images of the same shape, ``(Y, X)`` or ``(Z, Y, X)``; 0 is background.
    spacing_um : sequence of float
        Voxel size in um, ``(z, y, x)``; for 2D labels the last two are used.
    msc_signal : array_like, optional
        MSC-label intensity (background-corrected), same shape; needed for
        ``intensity_fraction_in_macrophages``. Negative values count as 0.

    Returns
    -------
    pandas.DataFrame
        One row per MSC label, ascending: ``msc_label`` (int64),
        ``centroid_in_macrophage`` (bool), ``macrophage_label`` (Int64: the
        macrophage holding the centroid voxel, ``<NA>`` if none),
        ``overlap_um2`` (2D) or ``overlap_um3`` (3D) (float: MSC area/volume
        inside any macrophage), ``overlap_fraction`` (float: that over the MSC's
        area/volume), ``intensity_fraction_in_macrophages`` (float: share of the
        MSC's signal inside macrophages; NaN without `msc_signal` or when the
        MSC's signal sums to 0). No MSC: an empty table with these columns and
        dtypes.

    Notes
    -----
    Voxel i lies at ``i * spacing`` (centre), as in `lungtrack.measure`. The
    centroid is the mean voxel position in um; the voxel holding it is
    ``floor(centroid_um / spacing + 0.5)`` per axis. A crescent-shaped MSC can
    thus have its centroid outside itself (and inside a macrophage) -- the
    usual centroid-in-object definition.
    ``overlap = #{v : msc(v) == i and macrophage(v) > 0} * prod(spacing)``;
    ``intensity_fraction = sum(s[msc == i and macrophage > 0]) / sum(s[msc == i])``
    with ``s = max(msc_signal, 0)``.
    """
    msc, mac, sp = _check_pair("msc_labels", msc_labels, "macrophage_labels", macrophage_labels, spacing_um)
    cols = msc_in_macrophage_columns(msc.ndim)
    ids = _ids(msc)
    if msc_signal is not None:
        sig = np.asarray(msc_signal)
        if sig.shape != msc.shape:
            raise ValueError(f"msc_signal has shape {sig.shape} but msc_labels has shape {msc.shape}; they must match")
    if ids.size == 0:
        return pd.DataFrame({
            "msc_label": pd.Series(dtype=np.int64), "centroid_in_macrophage": pd.Series(dtype=bool),
            "macrophage_label": pd.Series(dtype="Int64"), cols[3]: pd.Series(dtype=np.float64),
            "overlap_fraction": pd.Series(dtype=np.float64),
            "intensity_fraction_in_macrophages": pd.Series(dtype=np.float64)})[cols]
    vox = float(np.prod(sp))
    inside = mac > 0
    ones = np.ones(msc.shape, np.float64)
    n_vox = ndi.sum_labels(ones, msc, ids)
    n_in = ndi.sum_labels(inside.astype(np.float64), msc, ids)
    cent = np.asarray(ndi.center_of_mass(ones, msc, ids), float).reshape(ids.size, msc.ndim)  # voxel units
    cent_um = cent * np.asarray(sp)
    vidx = np.floor(cent_um / np.asarray(sp) + 0.5).astype(np.int64)
    vidx = np.clip(vidx, 0, np.asarray(msc.shape) - 1)
    at = mac[tuple(vidx.T)].astype(np.int64)
    ifrac = signal_fraction_inside(msc_signal, msc, ids, inside)
    return pd.DataFrame({
        "msc_label": ids,
        "centroid_in_macrophage": at > 0,
        "macrophage_label": pd.array([int(v) if v > 0 else pd.NA for v in at], dtype="Int64"),
        cols[3]: n_in * vox,
        "overlap_fraction": n_in / n_vox,
        "intensity_fraction_in_macrophages": ifrac.astype(np.float64),
    })[cols]


def overlap_pairs(labels_a, labels_b, spacing_um) -> pd.DataFrame:
    """Every pair of overlapping objects of two label images, with overlap size and IoU.

    Parameters
    ----------
    labels_a, labels_b : array_like of int
        Label images of the same shape, ``(Y, X)`` or ``(Z, Y, X)``; 0 is background.
    spacing_um : sequence of float
        Voxel size in um, ``(z, y, x)``; for 2D labels the last two are used.

    Returns
    -------
    pandas.DataFrame
        One row per pair sharing at least one voxel, sorted by ``label_a`` then
        ``label_b``: ``label_a``, ``label_b`` (int64), ``overlap_um2`` (2D) or
        ``overlap_um3`` (3D) (float), ``iou`` (float, intersection over union
        of the two objects). No overlap: an empty table with these columns.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4), int); a[:, :2] = 1
    >>> b = np.zeros((4, 4), int); b[:2, :] = 5
    >>> overlap_pairs(a, b, (1.0, 2.0)).to_dict("records")
    [{'label_a': 1, 'label_b': 5, 'overlap_um2': 8.0, 'iou': 0.3333333333333333}]
    """
    la, lb, sp = _check_pair("labels_a", labels_a, "labels_b", labels_b, spacing_um)
    col = _size_col(la.ndim)
    ids_a, ids_b, inter, sa, sb = overlap_counts(la, lb)
    return pd.DataFrame({
        "label_a": ids_a, "label_b": ids_b,
        col: inter.astype(np.float64) * float(np.prod(sp)),
        "iou": inter / (sa + sb - inter).astype(np.float64),
    })


def object_coloc_summary(msc_labels, macrophage_labels, spacing_um, *, msc_signal=None) -> dict:
    """Image-level object colocalization of MSCs with macrophages, in one dict.

    Parameters
    ----------
    msc_labels, macrophage_labels : array_like of int
        Label images of the same shape, ``(Y, X)`` or ``(Z, Y, X)``.
    spacing_um : sequence of float
        Voxel size in um, ``(z, y, x)``.
    msc_signal : array_like, optional
        MSC-label intensity (background-corrected), same shape.

    Returns
    -------
    dict
        ``n_msc``, ``n_macrophage`` (int); ``frac_msc_centroid_in_macrophage``
        (share of MSCs whose centroid voxel is in a macrophage; NaN with no
        MSC); ``msc_overlap_fraction`` (share of all MSC area/volume inside
        macrophages; NaN with no MSC); ``msc_intensity_fraction_in_macrophages``
        (see Notes; NaN without `msc_signal` or when the signal in MSC objects
        sums to 0).

    Notes
    -----
    With ``s = max(msc_signal, 0)``, ``M = msc_labels > 0`` and
    ``P = macrophage_labels > 0``::

        msc_intensity_fraction_in_macrophages = sum(s[M & P]) / sum(s[M])

    i.e. the fraction of the MSC signal *within segmented MSC objects* that
    lies inside macrophage masks (an intensity-weighted Manders-like M1
    restricted to MSC objects). MSC signal outside MSC objects (background,
    unsegmented puncta) is not counted. This equals the per-MSC
    ``intensity_fraction_in_macrophages`` of `msc_in_macrophage` averaged with
    weights ``sum(s[msc == i])``.

    Examples
    --------
    >>> import numpy as np
    >>> msc = np.zeros((6, 8), np.int32); msc[1:3, 1:3] = 1; msc[4:6, 5:8] = 2
    >>> mac = np.zeros((6, 8), np.int32); mac[0:3, 0:3] = 7
    >>> object_coloc_summary(msc, mac, (1.0, 1.0), msc_signal=msc > 0)["msc_intensity_fraction_in_macrophages"]
    0.4
    """
    rows = msc_in_macrophage(msc_labels, macrophage_labels, spacing_um)
    msc = np.asarray(msc_labels)
    mac = np.asarray(macrophage_labels)
    m, p = msc > 0, mac > 0
    n_msc = len(rows)
    n_m = int(np.count_nonzero(m))
    ifrac = math.nan
    if msc_signal is not None:
        s = np.asarray(msc_signal)
        if s.shape != msc.shape:
            raise ValueError(f"msc_signal has shape {s.shape} but msc_labels has shape {msc.shape}; they must match")
        s = np.clip(s.astype(np.float64), 0, None)
        tot = float(s[m].sum())
        ifrac = float(s[m & p].sum()) / tot if tot > 0 else math.nan
    return {
        "n_msc": n_msc,
        "n_macrophage": int(_ids(mac).size),
        "frac_msc_centroid_in_macrophage": float(rows["centroid_in_macrophage"].mean()) if n_msc else math.nan,
        "msc_overlap_fraction": float(np.count_nonzero(m & p)) / n_m if n_m else math.nan,
        "msc_intensity_fraction_in_macrophages": ifrac,
    }
