"""One tidy table of pixel colocalization coefficients over images, masks, ROIs and objects.

`coloc_table` computes the coefficients of `lungtrack.coloc` for every region of
interest of an image pair (the whole image, a tissue mask, each ROI of a labels
image, each object of a labels image), optionally plane by plane (``z``) and
frame by frame (``frame``), and returns them as one DataFrame, one row per
region.

Examples
--------
>>> import numpy as np
>>> a = np.arange(16.0).reshape(4, 4)
>>> rois = np.zeros((4, 4), int); rois[:2] = 1; rois[2:] = 2
>>> t = coloc_table(a, a, rois=rois, coefficients=("pearson",))
>>> print(t[["scope", "roi", "pearson_r", "n_pixels"]].to_string(index=False))
scope  roi  pearson_r  n_pixels
image <NA>        1.0        16
  roi    1        1.0         8
  roi    2        1.0         8
"""
from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from . import coloc

log = logging.getLogger(__name__)

__all__ = ["coloc_table", "coloc_table_columns", "polygon_rois", "BASE_COEFFICIENTS", "EXTRA_COEFFICIENTS"]

#: Coefficient names of `coloc_table` computed by the functions that always exist in
#: `lungtrack.coloc`, with the columns each one fills.
BASE_COEFFICIENTS = {
    "pearson": ("pearson_r",),
    "manders": ("manders_m1", "manders_m2"),
    "costes": ("costes_threshold_a", "costes_threshold_b", "costes_p", "costes_warnings"),
}
_TEXT_COLUMNS = ("costes_warnings",)
#: Further coefficients: name in `coefficients` -> (function of `lungtrack.coloc`, column).
EXTRA_COEFFICIENTS = {
    "spearman": ("spearman", "spearman"),
    "kendall_tau": ("kendall_tau", "kendall_tau"),
    "li_icq": ("li_icq", "li_icq"),
    "overlap": ("overlap_coefficient", "overlap"),
}
SCOPES = ("image", "mask", "roi", "object")
_KEY_COLUMNS = ["sample_id", "scope", "roi", "z", "frame"]


def coloc_table_columns(coefficients=("pearson", "manders", "costes"), ndim=None, spacing_um=None) -> list[str]:
    """Columns of `coloc_table` for these `coefficients` (in table order).

    ``ndim`` (2 or 3, the dimensionality of one region) is needed only with
    `spacing_um`, to name the size column ``area_um2`` or ``volume_um3``.
    """
    cols = list(_KEY_COLUMNS)
    for name in coefficients:
        if name in BASE_COEFFICIENTS:
            cols += BASE_COEFFICIENTS[name]
        else:
            cols.append(EXTRA_COEFFICIENTS[name][1])
    cols.append("n_pixels")
    if spacing_um is not None:
        cols.append("area_um2" if ndim == 2 else "volume_um3")
    cols.append("convention")
    return cols


def _check_coefficients(coefficients) -> tuple[str, ...]:
    if isinstance(coefficients, str):
        coefficients = (coefficients,)
    coefficients = tuple(dict.fromkeys(coefficients))
    known = tuple(BASE_COEFFICIENTS) + tuple(EXTRA_COEFFICIENTS)
    bad = [c for c in coefficients if c not in known]
    if bad:
        raise ValueError(f"coefficients has unknown names {bad}; known: {known}")
    # Table order: base coefficients first, then extras, each in the order of `known`.
    return tuple(c for c in known if c in coefficients)


def _aligned(name, arr, shape, per_frame):
    """Validate a mask/labels array against the image shape; broadcast a per-frame-constant one."""
    if arr is None:
        return None
    if not hasattr(arr, "shape"):
        arr = np.asarray(arr)
    if tuple(arr.shape) == tuple(shape):
        return arr
    if per_frame and tuple(arr.shape) == tuple(shape[1:]):
        return arr  # same for every frame; indexed per frame below
    expect = f"{tuple(shape)}" + (f" or {tuple(shape[1:])}" if per_frame else "")
    raise ValueError(f"{name} has shape {tuple(arr.shape)} but a has shape {tuple(shape)}; expected {expect}")


def polygon_rois(polygons, shape_yx) -> list[tuple[int, np.ndarray]]:
    """Rasterise polygon ROIs: a list of ``(roi_id, 2D bool mask)``.

    Parameters
    ----------
    polygons : dict or sequence
        ``{roi_id: vertices}`` or a sequence of vertices (ids 1, 2, ...); vertices
        are ``(N, 2)`` ``(row, column)`` pixel coordinates of the image's last two
        axes (napari Shapes data in pixel units, ImageJ ROI coordinates swapped).
    shape_yx : tuple of int
        Shape of one plane ``(Y, X)``.

    Notes
    -----
    A pixel belongs to a polygon when its centre lies inside it
    (`skimage.draw.polygon2mask`). Polygons may overlap: each keeps all its pixels.

    Examples
    --------
    >>> rois = polygon_rois({7: [(0, 0), (0, 3), (3, 3), (3, 0)]}, (5, 5))
    >>> rois[0][0], int(rois[0][1].sum())
    (7, 16)
    """
    from skimage.draw import polygon2mask

    items = polygons.items() if isinstance(polygons, dict) else enumerate(polygons, start=1)
    out = []
    for roi_id, verts in items:
        v = np.asarray(verts, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
            raise ValueError(f"ROI {roi_id}: a polygon needs at least 3 (row, column) vertices, "
                             f"got an array of shape {v.shape}")
        out.append((int(roi_id), polygon2mask(tuple(shape_yx), v)))
    return out


def _is_polygons(rois) -> bool:
    if isinstance(rois, dict):
        return True
    if isinstance(rois, (list, tuple)) and rois:
        return all(np.asarray(r).ndim == 2 and np.asarray(r).shape[-1] == 2 for r in rois)
    return False


def _take(arr, idx, full_ndim):
    """``arr[idx]`` as numpy, where `arr` may lack the leading T axis (constant over frames)."""
    if arr is None:
        return None
    if arr.ndim < full_ndim:  # broadcast over frames: drop the frame index
        idx = idx[1:]
    return np.asarray(arr[idx])


def _scalar(value, col) -> float:
    if isinstance(value, dict):  # e.g. overlap_coefficient -> {"overlap": r, "k1": ..., "k2": ...}
        value = value[col]
    if isinstance(value, (tuple, list)):
        value = value[0]
    value = getattr(value, "statistic", getattr(value, "correlation", value))
    return float(value)


def _coefficients(a, b, mask, names, *, convention, randomisations, seed, extras) -> dict:
    """All requested coefficients of one region; `mask` (bool, same shape, or None: all) selects its pixels."""
    out = {}
    n = int(a.size if mask is None else np.count_nonzero(mask))
    wants_base = any(c in names for c in BASE_COEFFICIENTS)
    if n == 0:
        for c in names:
            for col in (BASE_COEFFICIENTS[c] if c in BASE_COEFFICIENTS else (EXTRA_COEFFICIENTS[c][1],)):
                out[col] = math.nan
        if "costes" in names:
            out["costes_warnings"] = "empty_region"
        return out
    if "pearson" in names:
        out["pearson_r"] = coloc.pearson(a, b, mask)
    if wants_base and ("manders" in names or "costes" in names):
        with coloc.collect_warnings() as codes:
            t_a, t_b = coloc.costes_thresholds(a, b, mask)
        if "costes" in names:
            out["costes_warnings"] = ";".join(dict.fromkeys(codes))
        if "manders" in names:
            out["manders_m1"], out["manders_m2"] = coloc.manders(a, b, t_a, t_b, mask, convention=convention)
        if "costes" in names:
            out["costes_threshold_a"], out["costes_threshold_b"] = t_a, t_b
            p = math.nan
            if randomisations:
                try:
                    p = coloc.costes_test(a, b, mask, n=int(randomisations), seed=seed)
                except ValueError as err:  # region smaller than the randomisation blocks
                    log.warning("coloc_table: Costes test skipped for a region of %d pixels: %s", n, err)
            out["costes_p"] = p
    if extras:
        x = (a.ravel() if mask is None else a[mask]).astype(np.float64)
        y = (b.ravel() if mask is None else b[mask]).astype(np.float64)
        for func_name, col in extras.values():
            try:
                out[col] = _scalar(getattr(coloc, func_name)(x, y), col)
            except ValueError as err:  # e.g. a region too small for the coefficient
                log.warning("coloc_table: lungtrack.coloc.%s failed (%s); %s is NaN", func_name, err, col)
                out[col] = math.nan
    return out


def coloc_table(a, b, *, mask=None, rois=None, objects=None, per_z=False, per_frame=False, spacing_um=None,
                coefficients=("pearson", "manders", "costes"), convention="jacop", randomisations=0, seed=0,
                sample_id=None) -> pd.DataFrame:
    """Colocalization coefficients of two channels per image, mask, ROI, object, z-plane and frame.

    Parameters
    ----------
    a, b : array_like
        The two channels (e.g. MSC label and macrophage marker), same shape;
        numpy or dask arrays. Axes: ``([T,] [Z,] Y, X)`` -- with
        ``per_frame=True`` the first axis is time, so the shape is
        ``(T, Y, X)`` or ``(T, Z, Y, X)``; otherwise ``(Y, X)`` or ``(Z, Y, X)``.
    mask : array_like of bool, optional
        Pixels to analyse (e.g. tissue). Adds ``scope == "mask"`` rows, and
        restricts the ``roi`` and ``object`` rows to the mask. Same shape as
        `a`, or, with ``per_frame=True``, the shape of one frame (used for all
        frames).
    rois : array_like of int, dict or list of polygons, optional
        Labels image of regions of interest (0 = none), shape as for `mask`;
        one ``scope == "roi"`` row per ROI id > 0 found anywhere in `rois`. Or
        polygons (``{roi_id: (N, 2) vertices}`` or a list of vertex arrays, ids
        1, 2, ...; ``(row, column)`` pixel coordinates, see `polygon_rois`),
        which apply to every z-plane and frame and may overlap.
    objects : array_like of int, optional
        Labels image of objects (e.g. segmented MSCs), shape as for `mask`.
        One ``scope == "object"`` row per label > 0.
    per_z : bool
        Compute every row per z-plane (3D regions only) instead of over the
        whole stack; ``z`` holds the plane index.
    per_frame : bool
        Treat the first axis as time and compute every row per frame; ``frame``
        holds the frame index.
    spacing_um : sequence of float, optional
        Voxel size ``(z, y, x)`` (or ``(y, x)``) in um. When given, a column
        ``area_um2`` (2D regions) or ``volume_um3`` (3D regions) holds the size
        of each region: ``n_pixels * prod(spacing)``.
    coefficients : sequence of str
        Any of ``"pearson"`` (column ``pearson_r``), ``"manders"``
        (``manders_m1``, ``manders_m2``), ``"costes"``
        (``costes_threshold_a``, ``costes_threshold_b``, ``costes_p``, and
        ``costes_warnings``: Coloc 2's quality warnings for the region's Costes
        thresholds as ``;``-separated codes -- ``intercept_far_from_zero``,
        ``threshold_a_too_high``, ``threshold_b_too_high``, ``thresholds_too_low``,
        ``few_pixels_above_both``, ``r_never_drops_to_zero``, ``empty_region``, and
        ``not_positively_correlated`` (no Costes thresholds exist: they are set to the
        channel maxima and thresholded Manders values are NaN) -- instead of one log
        line per region), and the
        optional ``"spearman"``, ``"kendall_tau"``, ``"li_icq"``, ``"overlap"``
        (columns of the same name; from ``lungtrack.coloc.spearman``,
        ``kendall_tau``, ``li_icq`` and ``overlap_coefficient``).
    convention : {"jacop", "coloc2"}
        Manders convention, see `lungtrack.coloc.manders`.
    randomisations : int
        Costes randomisations per region (0: ``costes_p`` is NaN).
    seed : int
        Seed of the randomisation test (the same for every region).
    sample_id : str, optional
        Written into every row.

    Returns
    -------
    pandas.DataFrame
        Columns ``sample_id, scope, roi, z, frame``, the coefficient columns in
        the order above, ``n_pixels``, [``area_um2`` | ``volume_um3``],
        ``convention``. ``scope`` is one of ``"image", "mask", "roi",
        "object"``; ``roi`` (the ROI id or object label), ``z`` and ``frame``
        are nullable ``Int64``, ``<NA>`` where they do not apply. Rows are
        ordered by frame, z, scope (image, mask, roi, object), then roi.

    Notes
    -----
    Each row is computed from the pixels of its region only: ``pearson_r =
    pearson(a, b, region)``; Manders are thresholded with that region's own
    Costes thresholds (``manders(a, b, *costes_thresholds(a, b, region),
    region, convention=...)``), as in `lungtrack.coloc.coloc_summary`. The
    region of an ROI or object row is ``(labels == id) & mask``.

    An ROI or object with no pixel in a plane, a frame or the mask gives a row
    with NaN coefficients and ``n_pixels == 0`` (not an error). When the
    Costes test cannot run on a region (fewer than two blocks), ``costes_p`` is
    NaN and a warning is logged; likewise for a coefficient that cannot be
    computed on a region.

    Dask inputs are read one frame (or one plane with ``per_z``) at a time, so
    memory is bounded by one frame of each input; the values equal those of
    the numpy arrays, whatever the chunking. ROI and object ids are found
    from the whole labels images first.

    References
    ----------
    .. [1] Manders EMM, Verbeek FJ, Aten JA (1993). J Microsc 169:375-382.
    .. [2] Costes SV et al. (2004). Biophys J 86:3993-4003.
    .. [3] Dunn KW, Kamocka MM, McDonald JH (2011). Am J Physiol Cell Physiol 300:C723-C742.
    """
    names = _check_coefficients(coefficients)
    if convention not in coloc.CONVENTIONS:
        raise ValueError(f"convention must be one of {coloc.CONVENTIONS}, got {convention!r}")
    if int(randomisations) < 0:
        raise ValueError(f"randomisations must be >= 0, got {randomisations}")
    if not hasattr(a, "shape"):
        a = np.asarray(a)
    if not hasattr(b, "shape"):
        b = np.asarray(b)
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"b has shape {tuple(b.shape)} but a has shape {tuple(a.shape)}; they must match")
    shape = tuple(a.shape)
    space_ndim = len(shape) - (1 if per_frame else 0)
    if space_ndim not in (2, 3):
        axes = "(T, [Z,] Y, X)" if per_frame else "([Z,] Y, X)"
        raise ValueError(f"a has shape {shape}; expected axes {axes} with per_frame={per_frame}")
    if per_z and space_ndim != 3:
        raise ValueError(f"per_z=True needs a z axis, but a has shape {shape} (per_frame={per_frame})")
    mask = _aligned("mask", mask, shape, per_frame)
    polygons = None
    if _is_polygons(rois):
        polygons, rois = polygon_rois(rois, shape[-2:]), None
    rois = _aligned("rois", rois, shape, per_frame)
    objects = _aligned("objects", objects, shape, per_frame)
    if mask is not None and mask.dtype != bool:
        raise ValueError(f"mask must be a boolean array, got dtype {mask.dtype} (pass e.g. mask > 0)")
    for lname, lab in (("rois", rois), ("objects", objects)):
        if lab is not None and not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(f"{lname} must be an integer labels image, got dtype {lab.dtype}")
    region_ndim = 2 if per_z else space_ndim
    vox = None
    if spacing_um is not None:
        sp = tuple(float(s) for s in np.atleast_1d(spacing_um))
        if len(sp) < space_ndim or any(not s > 0 for s in sp):
            raise ValueError(f"spacing_um must hold {space_ndim} positive sizes (z, y, x), got {spacing_um!r}")
        vox = float(np.prod(sp[-space_ndim:][-region_ndim:]))
    extras = {n: EXTRA_COEFFICIENTS[n] for n in names if n in EXTRA_COEFFICIENTS}
    cols = coloc_table_columns(names, region_ndim, spacing_um)

    def ids_of(lab):
        if lab is None:
            return None
        u = np.unique(np.asarray(lab))
        return u[u > 0].astype(np.int64)

    roi_ids, obj_ids = ids_of(rois), ids_of(objects)
    if polygons is not None:
        ids = [i for i, _ in polygons]
        if len(set(ids)) != len(ids):
            raise ValueError(f"polygon ROI ids must be unique, got {ids}")
    frames = range(shape[0]) if per_frame else [None]
    n_z = shape[-3] if per_z else 0
    planes = range(n_z) if per_z else [None]
    rows = []
    kw = dict(convention=convention, randomisations=randomisations, seed=seed, extras=extras)
    for t in frames:
        for z in planes:
            idx = tuple(i for i in (t, z) if i is not None)
            full = len(shape)
            aa, bb = np.asarray(a[idx]), np.asarray(b[idx])
            mm = _take(mask, idx, full)
            key = {"sample_id": sample_id, "roi": None, "z": z, "frame": t}
            rows.append({**key, "scope": "image", "n_pixels": aa.size,
                         **_coefficients(aa, bb, None, names, **kw)})
            if mm is not None:
                rows.append({**key, "scope": "mask", "n_pixels": int(np.count_nonzero(mm)),
                             **_coefficients(aa, bb, mm, names, **kw)})
            for roi_id, poly in polygons or ():
                ys, xs = np.nonzero(poly)
                if ys.size == 0:
                    region, sa, sb = np.zeros(0, bool), None, None
                else:
                    sl = (Ellipsis, slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
                    sa, sb = aa[sl], bb[sl]
                    region = np.broadcast_to(poly[sl[1:]], sa.shape).copy()
                    if mm is not None:
                        region &= mm[sl]
                rows.append({**key, "scope": "roi", "roi": roi_id, "n_pixels": int(np.count_nonzero(region)),
                             **_coefficients(sa, sb, region, names, **kw)})
            for scope, lab_all, ids in (("roi", rois, roi_ids), ("object", objects, obj_ids)):
                if lab_all is None:
                    continue
                lab = _take(lab_all, idx, full)
                boxes = ndi.find_objects(lab, max_label=int(ids.max()) if ids.size else 0) if ids.size else []
                for i in ids:
                    sl = boxes[i - 1] if i - 1 < len(boxes) else None
                    if sl is None:  # not in this plane/frame: an empty region
                        region, sa, sb = np.zeros(0, bool), None, None
                    else:
                        region = lab[sl] == i
                        if mm is not None:
                            region &= mm[sl]
                        sa, sb = aa[sl], bb[sl]
                    rows.append({**key, "scope": scope, "roi": int(i), "n_pixels": int(np.count_nonzero(region)),
                                 **_coefficients(sa, sb, region, names, **kw)})
    df = pd.DataFrame(rows)
    df["convention"] = convention
    if vox is not None:
        df[cols[-2]] = df["n_pixels"] * vox
    for c in ("roi", "z", "frame"):
        df[c] = pd.array([pd.NA if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
                          for v in df[c]], dtype="Int64")
    df["n_pixels"] = df["n_pixels"].astype(np.int64)
    df["sample_id"] = df["sample_id"].astype(object)
    for c in cols:
        if c not in _KEY_COLUMNS and c not in ("n_pixels", "convention", *_TEXT_COLUMNS):
            df[c] = df[c].astype(np.float64)
    return df[cols].reset_index(drop=True)
