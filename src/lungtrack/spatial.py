"""MSC-macrophage spatial relations: distances, neighbours, contact, engulfment, MSC states.

Distances are Euclidean in um with the voxel spacing, so they are right for
anisotropic z-stacks. Labels may be 2D (Y, X) or 3D (Z, Y, X); ``spacing_um`` is
always (z, y, x) (for 2D the last two are used).

Examples
--------
>>> msc = np.zeros((40, 60), np.int32); msc[15:25, 5:15] = 1
>>> mac = np.zeros((40, 60), np.int32); mac[15:25, 35:45] = 1
>>> t = msc_macrophage_relations(msc, mac, (1.0, 1.0, 1.0), radii_um=(25,))
>>> float(t.nearest_macrophage_um[0]), float(t.nearest_macrophage_surface_um[0]), bool(t.contact[0])
(30.0, 20.0, False)
>>> t.state[0]
'intact'
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

#: MSC states, from least to most affected; the rules are in `msc_states`.
STATES = ("intact", "near", "contact", "fragmented", "engulfed")


def interaction_columns(radii_um, ndim: int = 2) -> list[str]:
    """The ``interactions.csv`` columns (contact length in 2D, contact area in 3D)."""
    contact_size = "contact_length_um" if ndim == 2 else "contact_area_um2"
    return (["sample_id", "msc_label", "intact", "nearest_macrophage_label", "nearest_macrophage_um",
             "nearest_macrophage_surface_um"] + [f"n_macrophage_within_{r:g}um" for r in radii_um]
            + ["contact", contact_size, "n_macrophage_contacting", "engulfed_fraction", "equivalent_diameter_um",
               "n_pieces", "state"])


_INT_COLS = ("msc_label", "n_macrophage_contacting", "n_pieces")


def _empty_interactions(cols) -> pd.DataFrame:
    def dtype(c):
        if c in ("sample_id", "state"):
            return object
        if c in ("contact", "intact"):
            return bool
        if c == "nearest_macrophage_label":
            return "Int64"
        if c in _INT_COLS or c.startswith("n_macrophage_within_"):
            return np.int64
        return float
    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in cols})


def check_spacing(spacing_um, ndim: int, name: str = "spacing_um") -> tuple[float, ...]:
    """The last ``ndim`` voxel sizes as floats; a clear error if missing or not positive."""
    try:
        sp = tuple(float(s) for s in spacing_um)
    except TypeError:
        raise ValueError(f"{name} must be a sequence (z, y, x) of voxel sizes in um, got {spacing_um!r}") from None
    if len(sp) < ndim:
        raise ValueError(f"{name} has {len(sp)} value(s) for {ndim}D labels; give (z, y, x) voxel sizes in um.")
    sp = sp[-ndim:]
    if not all(math.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"{name} must be positive and finite, got {sp}")
    return sp


def _check_labels(name, labels, ndim=None):
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"{name} must be a 2D (Y, X) or 3D (Z, Y, X) label image, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
        raise ValueError(f"{name} must hold integer labels (0 = background), got dtype {labels.dtype}")
    if ndim is not None and labels.shape != ndim:
        raise ValueError(f"{name} has shape {labels.shape}; it must match the MSC labels' shape {ndim}")
    return labels


class _Foreground:
    """Flat indices, labels and per-axis indices of the foreground voxels: one image pass, reused."""

    def __init__(self, labels):
        self.labels = labels
        self.flat = labels.ravel()
        self.nz = np.flatnonzero(self.flat)
        self.lab = self.flat[self.nz].astype(np.int64)
        if self.lab.size and self.lab.min() < 0:
            raise ValueError("labels must be non-negative integers")
        self.idx = np.unravel_index(self.nz, labels.shape)


def object_centroids_um(labels: np.ndarray, spacing_um, *, _fg: _Foreground | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label ids, centroids in um (n, ndim) and voxel counts, in label order.

    Voxel ``i`` lies at ``i * spacing`` (as in `lungtrack.measure.measure_objects`).

    Examples
    --------
    >>> lab = np.zeros((4, 6), np.int32); lab[1:3, 1:3] = 1; lab[0, 5] = 4
    >>> ids, c, n = object_centroids_um(lab, (1.0, 2.0, 0.5))
    >>> ids.tolist(), c.tolist(), n.tolist()
    ([1, 4], [[3.0, 0.75], [0.0, 2.5]], [4, 1])
    """
    labels = np.asarray(labels)
    sp = check_spacing(spacing_um, labels.ndim)
    fg = _fg if _fg is not None else _Foreground(labels)
    if fg.nz.size == 0:
        return np.zeros(0, np.int64), np.zeros((0, labels.ndim)), np.zeros(0, np.int64)
    # bincount over foreground voxels only: no per-object Python loop.
    counts = np.bincount(fg.lab)
    ids = np.flatnonzero(counts)
    ids = ids[ids > 0]
    cen = np.empty((ids.size, labels.ndim))
    for ax, idx in enumerate(fg.idx):
        cen[:, ax] = np.bincount(fg.lab, weights=idx.astype(np.float64), minlength=counts.size)[ids] / counts[ids] * sp[ax]
    return ids, cen, counts[ids]


def boundary_mask(labels: np.ndarray) -> np.ndarray:
    """Voxels of each object with a face neighbour outside that object.

    The nearest voxel of another set is always such a voxel, so distances between
    objects need only these: from a voxel whose face neighbours all belong to the
    object, one step along an axis where the target differs stays inside the object
    and is strictly closer.

    Examples
    --------
    >>> lab = np.zeros((5, 5), np.int32); lab[1:4, 1:4] = 1
    >>> int(boundary_mask(lab).sum())  # the 3 x 3 square's ring of 8
    8
    """
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, bool)
    idx, _ = _boundary_voxels(labels)
    out[tuple(idx.T)] = True
    return out


def _boundary_voxels(labels: np.ndarray, _fg: _Foreground | None = None):
    """Index (n, ndim) and label of every boundary voxel (see `boundary_mask`).

    Works on the foreground voxels only (gathers of their 2 * ndim face neighbours),
    so its cost follows the cells, not the image size.
    """
    labels = np.asarray(labels)
    fg = _fg if _fg is not None else _Foreground(labels)
    flat, nz, lab = fg.flat, fg.nz, fg.lab
    strides = [int(np.prod(labels.shape[k + 1:])) for k in range(labels.ndim)]  # C order of ravel()
    edge = np.zeros(nz.size, bool)
    for ax, (st, n) in enumerate(zip(strides, labels.shape)):
        st = int(st)
        hi = fg.idx[ax] < n - 1
        lo = fg.idx[ax] > 0
        edge |= ~hi | ~lo  # the image border counts as outside
        edge[hi] |= flat[nz[hi] + st] != lab[hi]
        edge[lo] |= flat[nz[lo] - st] != lab[lo]
    return np.stack([i[edge] for i in fg.idx], 1), lab[edge]


def _box_gap(delta_um: np.ndarray, sp: np.ndarray) -> np.ndarray:
    """Distance between two voxel boxes whose centres differ by ``delta_um`` (per axis)."""
    g = np.clip(np.abs(delta_um) - sp, 0, None)
    return np.sqrt((g ** 2).sum(axis=-1))


def _first_per_label(lab, d):
    """Index of the smallest ``d`` for each label (labels sorted)."""
    order = np.lexsort((d, lab))
    _, first = np.unique(lab[order], return_index=True)
    return order[first]


class _Targets:
    """Boundary voxels of the target (macrophage) labels in um, in a KD-tree; built once."""

    def __init__(self, target_labels, sp, fg: _Foreground | None = None):
        self.labels = target_labels
        self.sp = sp
        self.idx, self.lab = _boundary_voxels(target_labels, fg)
        self.pts = self.idx * sp
        # Unbalanced, uncompacted trees build ~2x faster on voxel grids; queries stay exact.
        self.tree = cKDTree(self.pts, balanced_tree=False, compact_nodes=False) if len(self.pts) else None


def _surface_gaps(labels, ids, targets: _Targets, fg: _Foreground | None = None):
    sp = targets.sp
    gap = np.full(ids.size, np.inf)
    tlab = np.zeros(ids.size, np.int64)
    if ids.size == 0 or targets.tree is None:
        return gap, tlab, None
    fg = fg if fg is not None else _Foreground(labels)
    m_idx, m_lab = _boundary_voxels(labels, fg)
    m_pts = m_idx * sp
    d, j = targets.tree.query(m_pts, k=1)
    best = _first_per_label(m_lab, d)
    pos = np.searchsorted(ids, m_lab[best])
    gap[pos] = _box_gap(m_pts[best] - targets.pts[j[best]], sp)
    tlab[pos] = targets.lab[j[best]]
    # Overlap: gap 0, and the nearest target is the one overlapping most (foreground voxels only).
    t_under = targets.labels.ravel()[fg.nz]
    hit = t_under > 0
    if hit.any():
        pair = pd.DataFrame({"m": fg.lab[hit], "t": t_under[hit]}).value_counts().reset_index()
        pair = pair.sort_values(["m", "count"], ascending=[True, False]).drop_duplicates("m")
        pos = np.searchsorted(ids, pair["m"].to_numpy())
        gap[pos] = 0.0
        tlab[pos] = pair["t"].to_numpy()
    return gap, tlab, (m_idx, m_lab)


def surface_distance_um(labels: np.ndarray, target_labels: np.ndarray, spacing_um):
    """Per object of ``labels``: surface gap to the nearest ``target_labels`` object, in um.

    The gap is the distance between the voxel boxes (voxel ``i`` spans
    ``(i - 1/2, i + 1/2) * spacing``) of the nearest pair of voxels, found exactly
    with a KD-tree over boundary voxels in um: adjacent voxels (faces, edges or
    corners) touch (gap 0) and overlapping objects have gap 0. Along any axis the
    gap is exact (e.g. 3 empty z slices of 2 um: 6 um); for oblique pairs it is
    the box distance of the nearest centre-to-centre pair (within one voxel
    diagonal of the smallest box distance).

    Returns
    -------
    ids, gap_um, target_label : ndarray
        Object ids, their gap (inf without any target) and the nearest target's label (0 if none).

    Examples
    --------
    >>> a = np.zeros((3, 10), np.int32); a[:, 0:2] = 1
    >>> b = np.zeros((3, 10), np.int32); b[:, 5:7] = 7  # 3 empty columns of 0.5 um between them
    >>> ids, gap, lab = surface_distance_um(a, b, (1.0, 1.0, 0.5))
    >>> ids.tolist(), gap.tolist(), lab.tolist()
    ([1], [1.5], [7])
    """
    labels = np.asarray(labels)
    target_labels = np.asarray(target_labels)
    if target_labels.dtype == bool:
        target_labels = target_labels.astype(np.int32)
    sp = np.asarray(check_spacing(spacing_um, labels.ndim))
    ids, _, _ = object_centroids_um(labels, sp)
    gap, tlab, _ = _surface_gaps(labels, ids, _Targets(target_labels, sp))
    return ids, gap, tlab


def _contact_size(msc_crop: np.ndarray, mac_crop: np.ndarray, origin, sp, tol, targets: "_Targets"):
    """Length (2D, um) or area (3D, um2) of the MSC surface within ``tol`` of a macrophage, and those macrophages.

    The surface is the marching-squares/-cubes isoline of the MSC mask (scikit-image);
    each segment/triangle counts when the box distance from its midpoint to the
    nearest macrophage voxel is at most ``tol`` (0 inside a macrophage voxel); the
    labels of those nearest macrophage voxels are the touching macrophages.
    """
    from skimage import measure

    pad = np.pad(msc_crop, 1).astype(np.float32)
    ndim = msc_crop.ndim
    if ndim == 2:
        segs, lens = [], []
        for c in measure.find_contours(pad, 0.5):
            a, b = c[:-1], c[1:]
            segs.append((a + b) / 2)
            lens.append(np.sqrt(((((b - a) * sp)) ** 2).sum(1)))
        if not segs:
            return 0.0, set()
        mid = np.concatenate(segs)
        size = np.concatenate(lens)
    else:
        verts, faces, _, _ = measure.marching_cubes(pad, 0.5)
        tri = verts[faces] * sp  # (n, 3, 3) in um
        size = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        mid = verts[faces].mean(axis=1)
    mid = mid - 1 + np.asarray(origin)  # index coordinates in the whole image
    d, j = targets.tree.query(mid * sp, k=1)
    dist = _box_gap(mid * sp - targets.pts[j], sp / 2)
    lab = targets.lab[j]
    # A midpoint inside a macrophage voxel is at distance 0 (from that macrophage).
    vox = np.clip(np.rint(mid).astype(int) - np.asarray(origin), 0, np.asarray(mac_crop.shape) - 1)
    under = mac_crop[tuple(vox.T)]
    dist[under > 0] = 0.0
    lab = np.where(under > 0, under, lab)
    close = dist <= tol + 1e-9
    return float(size[close].sum()), set(np.unique(lab[close]).tolist())


def msc_states(table: pd.DataFrame, *, near_um: float = 10.0, engulfed_min_fraction: float = 0.5,
               fragmented_min_pieces: int = 3, fragmented_max_diameter_um: float = 8.0) -> pd.Series:
    """Classify each MSC as ``intact``, ``near``, ``contact``, ``fragmented`` or ``engulfed``.

    Rules, first match wins:

    1. ``engulfed``: ``engulfed_fraction >= engulfed_min_fraction`` (most of its label inside macrophages);
    2. ``fragmented``: a dying MSC found as a group of puncta (``intact`` column False, when
       present), or the label is split into ``>= fragmented_min_pieces`` pieces, or its
       equivalent diameter is below ``fragmented_max_diameter_um`` (an intact MSC is 15-30 um);
    3. ``contact``: its surface is within the contact tolerance of a macrophage;
    4. ``near``: nearest macrophage surface within ``near_um``;
    5. ``intact``: otherwise.

    Examples
    --------
    >>> t = pd.DataFrame({"engulfed_fraction": [0.9, 0.0, 0.0, 0.0, np.nan], "n_pieces": [1, 5, 1, 1, 1],
    ...                   "equivalent_diameter_um": [20, 20, 20, 20, 20], "contact": [True, False, True, False, False],
    ...                   "nearest_macrophage_surface_um": [0, 30, 0, 5, 40]})
    >>> msc_states(t).tolist()
    ['engulfed', 'fragmented', 'contact', 'near', 'intact']
    """
    ef = table["engulfed_fraction"].to_numpy(float)
    frag = (table["n_pieces"].to_numpy() >= fragmented_min_pieces) | (
        table["equivalent_diameter_um"].to_numpy(float) < fragmented_max_diameter_um)
    if "intact" in table:
        frag = frag | ~table["intact"].to_numpy(bool)
    state = np.select(
        [np.nan_to_num(ef, nan=0.0) >= engulfed_min_fraction, frag, table["contact"].to_numpy(bool),
         table["nearest_macrophage_surface_um"].to_numpy(float) <= near_um],
        ["engulfed", "fragmented", "contact", "near"], default="intact")
    return pd.Series(state, index=table.index, name="state", dtype=object)


def _n_pieces(labels, ids, fg):
    """Connected pieces (full connectivity) of each label; ``fg`` are the foreground flat indices."""
    cc, n_cc = ndi.label(labels > 0, structure=np.ones((3,) * labels.ndim))
    key = labels.ravel()[fg].astype(np.int64) * (int(n_cc) + 1) + cc.ravel()[fg]
    u, n = np.unique(np.unique(key) // (int(n_cc) + 1), return_counts=True)
    out = np.zeros(ids.size, np.int64)
    out[np.searchsorted(ids, u)] = n
    return out


def msc_macrophage_relations(msc_labels: np.ndarray, macrophage_labels: np.ndarray, spacing_um, *,
                             msc_signal: np.ndarray | None = None, radii_um=(25.0, 50.0),
                             contact_tolerance_um: float = 2.0, near_um: float = 10.0,
                             engulfed_min_fraction: float = 0.5, fragmented_min_pieces: int = 3,
                             fragmented_max_diameter_um: float = 8.0, msc_fragmented: np.ndarray | None = None,
                             sample_id: str | None = None) -> pd.DataFrame:
    """One row per MSC: nearest macrophage, neighbours within r, contact, engulfment, state.

    Parameters
    ----------
    msc_labels, macrophage_labels : ndarray of int
        Label images of the same shape, (Y, X) or (Z, Y, X).
    spacing_um : sequence of float
        (z, y, x) voxel size in um.
    msc_signal : ndarray, optional
        Background-corrected MSC-label intensity, for ``engulfed_fraction``; without
        it every MSC voxel weighs the same (volume fraction).
    radii_um : sequence of float
        Count macrophage centroids within these distances of each MSC centroid.
    contact_tolerance_um : float
        Contact when the surface gap is at most this.
    near_um, engulfed_min_fraction, fragmented_min_pieces, fragmented_max_diameter_um
        State rules, see `msc_states`.
    msc_fragmented : ndarray of int, optional
        Dying MSCs found as groups of puncta (``segment_image(...)["msc_fragmented"]``:
        each punctum carries its cell's label, numbered after the intact MSCs). They get
        rows too, with ``intact`` False and state ``fragmented`` (or ``engulfed``).

    Returns
    -------
    DataFrame
        ``sample_id, msc_label, intact, nearest_macrophage_label, nearest_macrophage_um``
        (centroid to centroid, KD-tree), ``nearest_macrophage_surface_um`` (surface gap,
        see `surface_distance_um`), ``n_macrophage_within_<r>um``..., ``contact``
        (bool), ``contact_length_um`` (2D) or ``contact_area_um2`` (3D): the MSC
        surface within the tolerance of a macrophage, ``n_macrophage_contacting``,
        ``engulfed_fraction`` (share of the MSC's label intensity inside macrophage
        masks), ``equivalent_diameter_um``, ``n_pieces`` (connected pieces of the
        label), ``state``. No macrophage: distances are inf, counts 0. No MSC: an
        empty table with every column.
    """
    msc_labels = _check_labels("msc_labels", msc_labels)
    dying = np.zeros(0, np.int64)
    if msc_fragmented is not None:
        msc_fragmented = _check_labels("msc_fragmented", msc_fragmented, msc_labels.shape)
        dying = np.unique(msc_fragmented[msc_fragmented > 0]).astype(np.int64)
        if dying.size:
            # segment_image numbers dying MSCs after the intact ones: the exact check only when it could fail
            if dying[0] <= int(msc_labels.max()) and np.isin(dying, msc_labels[msc_labels > 0]).any():
                raise ValueError("msc_fragmented labels must differ from the intact MSC labels "
                                 "(segment_image numbers them after the intact MSCs)")
            msc_labels = np.where(msc_labels > 0, msc_labels, msc_fragmented)
    macrophage_labels = _check_labels("macrophage_labels", macrophage_labels, msc_labels.shape)
    if macrophage_labels.dtype == bool:
        macrophage_labels = macrophage_labels.astype(np.int32)
    ndim = msc_labels.ndim
    sp = np.asarray(check_spacing(spacing_um, ndim))
    radii_um = [float(r) for r in radii_um]
    if contact_tolerance_um < 0:
        raise ValueError(f"contact_tolerance_um must be >= 0, got {contact_tolerance_um}")
    cols = interaction_columns(radii_um, ndim)
    msc_fg = _Foreground(msc_labels)
    msc_ids, msc_c, msc_n = object_centroids_um(msc_labels, sp, _fg=msc_fg)
    if msc_ids.size == 0:
        return _empty_interactions(cols)
    n = msc_ids.size
    mac_fg = _Foreground(macrophage_labels)
    mac_ids, mac_c, _ = object_centroids_um(macrophage_labels, sp, _fg=mac_fg)
    out = {"sample_id": [sample_id] * n, "msc_label": msc_ids.astype(np.int64), "intact": ~np.isin(msc_ids, dying)}
    if mac_ids.size:
        tree = cKDTree(mac_c)
        d, j = tree.query(msc_c, k=1)
        out["nearest_macrophage_label"] = pd.array(mac_ids[j], dtype="Int64")
        out["nearest_macrophage_um"] = d
        for r in radii_um:
            out[f"n_macrophage_within_{r:g}um"] = tree.query_ball_point(msc_c, r, return_length=True).astype(np.int64)
    else:
        out["nearest_macrophage_label"] = pd.array([pd.NA] * n, dtype="Int64")
        out["nearest_macrophage_um"] = np.full(n, np.inf)
        for r in radii_um:
            out[f"n_macrophage_within_{r:g}um"] = np.zeros(n, np.int64)
    targets = _Targets(macrophage_labels, sp, mac_fg)
    gap, _, msc_boundary = _surface_gaps(msc_labels, msc_ids, targets, msc_fg)
    out["nearest_macrophage_surface_um"] = gap
    contact = gap <= contact_tolerance_um
    out["contact"] = contact
    size = np.zeros(n)
    n_touch = np.zeros(n, np.int64)
    if contact.any():
        size, n_touch = _contacts(msc_labels, targets, msc_ids, contact, contact_tolerance_um, msc_boundary)
    out["contact_length_um" if ndim == 2 else "contact_area_um2"] = size
    out["n_macrophage_contacting"] = n_touch
    # Sums over the MSC voxels only (not the whole image): share of signal inside macrophages.
    fg, lab = msc_fg.nz, msc_fg.lab
    w = (np.ones(fg.size) if msc_signal is None
         else np.clip(np.asarray(msc_signal, np.float64).ravel()[fg], 0, None))
    total = np.bincount(lab, weights=w)[msc_ids]
    inside = np.bincount(lab, weights=w * (macrophage_labels.ravel()[fg] > 0), minlength=int(lab.max()) + 1)[msc_ids]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["engulfed_fraction"] = np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)
    vox = float(np.prod(sp))
    out["equivalent_diameter_um"] = ((msc_n * vox / math.pi) ** 0.5 * 2 if ndim == 2
                                     else (6 * msc_n * vox / math.pi) ** (1 / 3))
    out["n_pieces"] = _n_pieces(msc_labels, msc_ids, fg)
    t = pd.DataFrame(out)
    t["state"] = msc_states(t, near_um=near_um, engulfed_min_fraction=engulfed_min_fraction,
                            fragmented_min_pieces=fragmented_min_pieces,
                            fragmented_max_diameter_um=fragmented_max_diameter_um)
    return t[cols]


def _contacts(msc_labels, targets: _Targets, msc_ids, contact, tol, msc_boundary):
    """Contact length/area and number of touching macrophages, for MSCs in contact."""
    sp = targets.sp
    n = msc_ids.size
    size = np.zeros(n)
    n_touch = np.zeros(n, np.int64)
    # Bounding boxes of the contacting MSCs from their boundary voxels (no whole-image pass).
    b_idx, b_lab = msc_boundary
    keep = np.isin(b_lab, msc_ids[contact])
    b_idx, b_lab = b_idx[keep], b_lab[keep]
    order = np.argsort(b_lab, kind="stable")
    b_idx, b_lab = b_idx[order], b_lab[order]
    starts = np.searchsorted(b_lab, msc_ids[contact])
    ends = np.searchsorted(b_lab, msc_ids[contact], side="right")
    margin = np.ceil((tol + 2 * sp.max()) / sp).astype(int) + 1
    # One small crop per MSC in contact: its surface mesh against the macrophage KD-tree.
    for k, a, b in zip(np.flatnonzero(contact), starts, ends):
        i = int(msc_ids[k])
        lo = b_idx[a:b].min(0) - margin
        hi = b_idx[a:b].max(0) + 1 + margin
        sl = tuple(slice(max(int(x), 0), min(int(y), dim)) for x, y, dim in zip(lo, hi, msc_labels.shape))
        m = msc_labels[sl] == i
        mac = targets.labels[sl]
        size[k], touching = _contact_size(m, mac, [s.start for s in sl], sp, tol, targets)
        touching.update(np.unique(mac[m & (mac > 0)]).tolist())  # overlapping macrophages
        touching.discard(0)
        n_touch[k] = len(touching)
    return size, n_touch


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

    Examples
    --------
    >>> mac = np.array([[1, 1, 0, 2, 2]]); pos = np.array([[1, 1, 0, 1, 0]], bool)
    >>> macrophages_containing(mac, pos, (1, 1, 1), min_area_um2=2).tolist()
    [True, False]
    """
    ids = np.unique(macrophage_labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return np.zeros(0, bool)
    sp = check_spacing(spacing_um, np.asarray(macrophage_labels).ndim)
    vox = float(np.prod(sp))
    area = ndi.sum_labels(np.asarray(msc_positive, float), macrophage_labels, ids) * vox
    return area >= min_area_um2


def within_distance(mask: np.ndarray, spacing_um, radius_um: float, *, max_voxels: int = 2 ** 22) -> np.ndarray:
    """Voxels within ``radius_um`` (Euclidean, in um) of any ``mask`` voxel.

    The same as ``distance_transform_edt(~mask, sampling=spacing) <= radius_um`` (scipy),
    computed in slabs along the longest axis, each with a margin of ``radius_um``: a
    voxel's nearest mask voxel within the radius lies inside its slab's margin, so the
    answer is exact, while memory stays at about ``max_voxels`` voxels of distances
    and slabs without any mask voxel cost nothing (MSCs are sparse in whole sections).

    Examples
    --------
    >>> m = np.zeros((5, 12), bool); m[2, 0] = True
    >>> within_distance(m, (1.0, 1.0), 3.0)[2].astype(int).tolist()
    [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    """
    mask = np.asarray(mask, bool)
    sp = check_spacing(spacing_um, mask.ndim)
    ax = int(np.argmax(mask.shape))
    m = np.moveaxis(mask, ax, 0)
    sp_m = (sp[ax],) + tuple(s for k, s in enumerate(sp) if k != ax)
    out = np.zeros(m.shape, bool)
    margin = int(math.ceil(radius_um / sp_m[0])) + 1
    n = m.shape[0]
    step = max(1, max_voxels // max(1, int(np.prod(m.shape[1:]))))
    for a in range(0, n, step):
        b = min(a + step, n)
        lo, hi = max(0, a - margin), min(n, b + margin)
        sub = m[lo:hi]
        if not sub.any():
            continue
        out[a:b] = ndi.distance_transform_edt(~sub, sampling=sp_m)[a - lo:b - lo] <= radius_um
    return np.moveaxis(out, 0, ax)


def spatial_summary(interactions: pd.DataFrame, msc_labels: np.ndarray, macrophage_labels: np.ndarray,
                    spacing_um, *, tissue: np.ndarray | None = None, containing: np.ndarray | None = None,
                    density_radius_um: float = 50.0) -> dict:
    """Per-image spatial columns for ``samples.csv``.

    Parameters
    ----------
    interactions : DataFrame
        `msc_macrophage_relations` of this image.
    msc_labels, macrophage_labels : ndarray of int
    spacing_um : sequence of float
    tissue : ndarray of bool, optional
        Tissue mask (air excluded); the whole image if None.
    containing : ndarray of bool, optional
        `macrophages_containing` per macrophage (for the efferocytosis index).
    density_radius_um : float
        Tissue within this distance of an MSC's surface is "near MSCs"; the rest is "far".

    Returns
    -------
    dict
        ``frac_msc_contacting_macrophage``, ``frac_macrophage_containing_msc`` (the
        efferocytosis index), ``median_msc_to_macrophage_um`` (centroids),
        ``median_msc_to_macrophage_surface_um``, ``frac_msc_engulfed``,
        ``frac_msc_<state>`` for every state, ``macrophage_per_mm2_near_msc``,
        ``macrophage_per_mm2_far_msc`` (macrophage centroids per mm2 of tissue; for
        z-stacks per mm2 of projected tissue, as ``macrophage_per_mm2``) and their
        ratio ``macrophage_near_far_ratio``. NaN where undefined. With an ``intact``
        column, contact and distance figures are over the intact MSCs (those ``n_msc``
        counts) and the state shares over every MSC row, dying (fragmented) ones included.

    Examples
    --------
    >>> msc = np.zeros((100, 100), np.int32); msc[45:55, 45:55] = 1
    >>> mac = np.zeros_like(msc); mac[45:55, 56:60] = 1; mac[2:6, 2:6] = 2
    >>> inter = msc_macrophage_relations(msc, mac, (1, 1, 1))
    >>> s = spatial_summary(inter, msc, mac, (1, 1, 1), density_radius_um=20)
    >>> s["frac_msc_contacting_macrophage"], round(s["macrophage_near_far_ratio"], 2)  # 1 in ~2000 px vs 1 in ~7800 px
    (1.0, 3.82)
    """
    msc_labels = np.asarray(msc_labels)
    sp = check_spacing(spacing_um, msc_labels.ndim)
    states = interactions["state"]
    n_all = len(interactions)
    if "intact" in interactions:  # contact and distances are over intact MSCs (n_msc), states over all
        interactions = interactions[interactions["intact"].astype(bool)]
    n = len(interactions)
    out = {
        "frac_msc_contacting_macrophage": float(interactions["contact"].mean()) if n else np.nan,
        "frac_macrophage_containing_msc": (float(np.mean(containing)) if containing is not None
                                           and np.size(containing) else np.nan),
        "median_msc_to_macrophage_um": float(np.median(interactions["nearest_macrophage_um"])) if n else np.nan,
        "median_msc_to_macrophage_surface_um": (float(np.median(interactions["nearest_macrophage_surface_um"]))
                                                if n else np.nan),
    }
    for s in STATES:
        out[f"frac_msc_{s}"] = float((states == s).mean()) if n_all else np.nan
    tissue = np.ones(msc_labels.shape, bool) if tissue is None else np.asarray(tissue, bool)
    near_pm, far_pm = np.nan, np.nan
    _, mac_c, _ = object_centroids_um(macrophage_labels, sp)
    if n and tissue.any():
        near = within_distance(msc_labels > 0, sp, density_radius_um)
        idx = np.clip(np.rint(mac_c / np.asarray(sp)).astype(int), 0, np.asarray(msc_labels.shape) - 1)
        mac_near = near[tuple(idx.T)] if len(idx) else np.zeros(0, bool)
        mac_in = tissue[tuple(idx.T)] if len(idx) else np.zeros(0, bool)
        if msc_labels.ndim == 3:  # per mm2 of projected tissue, as the pipeline's densities
            near_area = (near & tissue).any(axis=0)
            far_area = tissue.any(axis=0) & ~near_area
            mac_near = near_area[idx[:, 1], idx[:, 2]] if len(idx) else mac_near
            mac_in = tissue.any(axis=0)[idx[:, 1], idx[:, 2]] if len(idx) else mac_in
        else:
            near_area, far_area = near & tissue, tissue & ~near
        px_mm2 = float(np.prod(sp[-2:])) * 1e-6
        a_near, a_far = near_area.sum() * px_mm2, far_area.sum() * px_mm2
        near_pm = float((mac_near & mac_in).sum() / a_near) if a_near > 0 else np.nan
        far_pm = float((~mac_near & mac_in).sum() / a_far) if a_far > 0 else np.nan
    out["macrophage_per_mm2_near_msc"] = near_pm
    out["macrophage_per_mm2_far_msc"] = far_pm
    out["macrophage_near_far_ratio"] = near_pm / far_pm if far_pm and np.isfinite(far_pm) else np.nan
    return out


#: The samples.csv columns `spatial_summary` adds (in order).
SUMMARY_COLUMNS = (["frac_msc_contacting_macrophage", "frac_macrophage_containing_msc", "median_msc_to_macrophage_um",
                    "median_msc_to_macrophage_surface_um"] + [f"frac_msc_{s}" for s in STATES]
                   + ["macrophage_per_mm2_near_msc", "macrophage_per_mm2_far_msc", "macrophage_near_far_ratio"])
