"""MSC-macrophage spatial relations: distances, neighbours, contact, engulfment.

Distances are Euclidean in um with the voxel spacing, so they are right for
anisotropic z-stacks.

Examples
--------
>>> msc = np.zeros((40, 60), np.int32); msc[15:25, 5:15] = 1
>>> mac = np.zeros((40, 60), np.int32); mac[15:25, 35:45] = 1
>>> t = msc_macrophage_relations(msc, mac, (1.0, 1.0, 1.0), radii_um=(25,))
>>> float(t.nearest_macrophage_um[0]), float(t.nearest_macrophage_surface_um[0]), bool(t.contact[0])
(30.0, 20.0, False)
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .measure import measure_objects


def interaction_columns(radii_um) -> list[str]:
    return (["sample_id", "msc_label", "nearest_macrophage_label", "nearest_macrophage_um",
             "nearest_macrophage_surface_um"] + [f"n_macrophage_within_{r:g}um" for r in radii_um]
            + ["contact", "engulfed_fraction"])


def _centroids(labels, spacing):
    t = measure_objects(labels, spacing)
    cols = ["centroid_z_um", "centroid_y_um", "centroid_x_um"]
    return t["label"].to_numpy(), t[cols].to_numpy()


def surface_distance_um(labels: np.ndarray, target_mask: np.ndarray, spacing_um) -> tuple[np.ndarray, np.ndarray]:
    """Per object of ``labels``: gap to the nearest ``target_mask`` voxel in um, and that voxel's index.

    The gap is the distance between voxel centres minus one voxel (the smallest
    spacing), floored at 0: objects in adjacent voxels touch (gap 0). Overlap is 0.
    Returns (ids, gap_um).
    """
    sp = tuple(float(s) for s in spacing_um)[-labels.ndim:]
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return ids, np.zeros(0)
    if not np.any(target_mask):
        return ids, np.full(ids.size, np.inf)
    dist = ndi.distance_transform_edt(~np.asarray(target_mask, bool), sampling=sp)
    d = np.asarray(ndi.minimum(dist, labels, ids), float)
    return ids, np.clip(d - min(sp), 0, None)


def msc_macrophage_relations(msc_labels: np.ndarray, macrophage_labels: np.ndarray, spacing_um, *,
                             msc_signal: np.ndarray | None = None, radii_um=(25.0, 50.0),
                             contact_tolerance_um: float = 1.0, sample_id: str | None = None) -> pd.DataFrame:
    """One row per MSC: nearest macrophage, neighbours within r, contact, engulfed fraction.

    Parameters
    ----------
    msc_labels, macrophage_labels : ndarray of int
        Label images of the same shape, (Y, X) or (Z, Y, X).
    spacing_um : sequence of float
        (z, y, x) voxel size in um.
    msc_signal : ndarray, optional
        Background-corrected MSC-label intensity; needed for ``engulfed_fraction``.
    radii_um : sequence of float
        Count macrophage centroids within these distances of each MSC centroid.
    contact_tolerance_um : float
        Contact when the surface gap is at most this.

    Returns
    -------
    DataFrame
        ``sample_id, msc_label, nearest_macrophage_label, nearest_macrophage_um``
        (centroid to centroid), ``nearest_macrophage_surface_um`` (surface gap),
        ``n_macrophage_within_<r>um``..., ``contact`` (bool), ``engulfed_fraction``
        (share of the MSC's label intensity inside macrophage masks; NaN without
        ``msc_signal``). No macrophage: distances are inf, counts 0.
    """
    cols = interaction_columns(radii_um)
    msc_ids, msc_c = _centroids(msc_labels, spacing_um)
    if msc_ids.size == 0:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "sample_id" else
                                          (bool if c == "contact" else float)) for c in cols})
    mac_ids, mac_c = _centroids(macrophage_labels, spacing_um)
    out = {"sample_id": [sample_id] * len(msc_ids), "msc_label": msc_ids.astype(np.int64)}
    if mac_ids.size:
        tree = cKDTree(mac_c)
        d, j = tree.query(msc_c, k=1)
        out["nearest_macrophage_label"] = pd.array(mac_ids[j], dtype="Int64")
        out["nearest_macrophage_um"] = d
        for r in radii_um:
            out[f"n_macrophage_within_{r:g}um"] = np.array([len(x) for x in tree.query_ball_point(msc_c, r)])
    else:
        out["nearest_macrophage_label"] = pd.array([pd.NA] * len(msc_ids), dtype="Int64")
        out["nearest_macrophage_um"] = np.full(len(msc_ids), np.inf)
        for r in radii_um:
            out[f"n_macrophage_within_{r:g}um"] = np.zeros(len(msc_ids), int)
    mac_mask = np.asarray(macrophage_labels) > 0
    _, gap = surface_distance_um(msc_labels, mac_mask, spacing_um)
    out["nearest_macrophage_surface_um"] = gap
    out["contact"] = gap <= contact_tolerance_um
    out["engulfed_fraction"] = signal_fraction_inside(msc_signal, msc_labels, msc_ids, mac_mask)
    return pd.DataFrame(out, columns=cols)


def signal_fraction_inside(signal, labels, ids, inside) -> np.ndarray:
    """Per object: share of its (non-negative) signal lying inside a mask.

    ``sum(s[labels == i & inside]) / sum(s[labels == i])`` with ``s = max(signal, 0)``;
    NaN where an object's signal sums to 0, or everywhere when ``signal`` is None.

    Examples
    --------
    >>> lab = np.array([[1, 1, 2, 2]]); sig = np.array([[1.0, 3.0, 0.0, 0.0]])
    >>> signal_fraction_inside(sig, lab, [1, 2], np.array([[False, True, True, True]]))
    array([0.75,  nan])
    """
    ids = np.asarray(ids)
    if signal is None:
        return np.full(ids.size, np.nan)
    s = np.clip(np.asarray(signal, np.float64), 0, None)
    total = ndi.sum_labels(s, labels, ids)
    inside_sum = ndi.sum_labels(s * np.asarray(inside, bool), labels, ids)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside_sum / np.where(total > 0, total, 1.0), np.nan).astype(np.float64)


def macrophages_containing(macrophage_labels: np.ndarray, msc_positive: np.ndarray, spacing_um,
                           min_area_um2: float = 2.0) -> np.ndarray:
    """Boolean per macrophage (in label order): at least ``min_area_um2`` (um3 in 3D) of MSC label inside.

    This is the efferocytosis index's numerator: macrophages holding MSC-label puncta.
    """
    ids = np.unique(macrophage_labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return np.zeros(0, bool)
    sp = tuple(float(s) for s in spacing_um)[-macrophage_labels.ndim:]
    vox = float(np.prod(sp))
    area = ndi.sum_labels(np.asarray(msc_positive, float), macrophage_labels, ids) * vox
    return area >= min_area_um2
