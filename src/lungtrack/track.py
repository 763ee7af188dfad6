"""Time-lapse: track MSCs and macrophages, contacts, engulfment and MSC survival.

The pipeline of a live lung-slice movie is a chain of small public functions:

1. `frame_interval_min` - the frame interval from the metadata or the config;
2. `analyse_frames` - segment every frame (Dask, one task per frame) and keep only
   small per-frame tables: objects, MSC-macrophage contacts, MSC fragments;
3. `link_objects` / `track_objects` - link objects over frames with laptrack's LAP
   tracker (Jaqaman 2008, as TrackMate), per role, distances in um;
4. `contact_events`, `track_summary` - contacts (onset, duration, which macrophage,
   engulfment after it) and one row per track (dwell, speed, straightness, fate);
5. `survival_table`, `kaplan_meier`, `median_survival`, `logrank_test`,
   `cumulative_incidence` - MSC intactness over time with censoring.

`track_image` runs all of it on one file and writes ``tracks.csv``,
``track_summary.csv``, ``contacts.csv``, ``survival.csv`` (the ``lungtrack track``
command). `tracking_accuracy` scores tracks against ground truth (CTC-style).

Examples
--------
>>> from lungtrack.synthetic import simulate_timelapse
>>> tl = simulate_timelapse(seed=0)
>>> res = track_movie(tl.image, spacing_um=tl.spacing_um, frame_interval_min=tl.frame_interval_min,
...                   channel_names=tl.channel_names, config={"channels": {"nuclei": None, "msc": "GFP",
...                   "macrophage": "CD68"}}, use_dask=False)
>>> res.summary.groupby("role").size().to_dict()
{'macrophage': 7, 'msc': 6}
>>> res.summary.query("role == 'msc'").fate.value_counts().sort_index().to_dict()
{'censored': 2, 'disappeared': 1, 'fragmented': 3}
>>> tracking_accuracy(res.tracks, {r: tl.labels[r] for r in TRACK_ROLES}, tl.spacing_um)["link_recall"]
1.0
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy import stats

from .config import Config, RoleTracking, load_config
from .io import Image, LungtrackInputError

log = logging.getLogger(__name__)

__all__ = [
    "frame_interval_min", "analyse_frame", "analyse_frames", "link_objects", "track_objects", "track_edges",
    "contact_events", "track_summary", "survival_table", "kaplan_meier", "median_survival", "logrank_test",
    "cumulative_incidence", "track_movie", "track_image", "tracking_accuracy", "survival_figure", "match_truth", "napari_tracks",
    "contact_raster_figure", "cumulative_incidence_table", "compare_survival", "TrackResult", "TRACK_ROLES",
]

TRACK_ROLES = ("msc", "macrophage")
DETECTION_COLUMNS = ["frame", "role", "label", "y_um", "x_um", "area_um2", "equivalent_diameter_um",
                     "engulfed_area_um2"]


# --- frame interval ---------------------------------------------------------------------------------

def frame_interval_min(image: Image, config: Config | dict | None = None) -> float:
    """Time between frames in minutes: ``config.track.frame_interval_min`` if set, else the metadata.

    The metadata is OME ``TimeIncrement`` (with its unit) or ImageJ ``finterval``, read
    by `lungtrack.io.read_image` into ``Image.time_interval_s``.

    Raises
    ------
    LungtrackInputError
        Neither the config nor the file gives a frame interval.

    Examples
    --------
    >>> import dask.array as da
    >>> img = Image(da.zeros((3, 2, 1, 4, 4)), (1.0, 1.0, 1.0), ["GFP", "CD68"], time_interval_s=90.0)
    >>> frame_interval_min(img)
    1.5
    >>> frame_interval_min(img, {"track": {"frame_interval_min": 10}})
    10.0
    """
    cfg = load_config(config)
    if cfg.track.frame_interval_min is not None:
        return float(cfg.track.frame_interval_min)
    if image.time_interval_s is not None and image.time_interval_s > 0:
        return float(image.time_interval_s) / 60.0
    raise LungtrackInputError(
        f"{image.path or 'image'}: no frame interval in the metadata (OME TimeIncrement or ImageJ finterval). "
        "Give it as track.frame_interval_min in the config, or --frame-interval-min on the command line (minutes)."
    )


_interval_of = frame_interval_min  # track_movie's keyword of the same name hides the function


# --- per-frame segmentation and measurement -----------------------------------------------------------

def _as_movie(image, spacing_um=None, channel_names=None) -> Image:
    """Wrap a (T, C, Y, X) or (T, C, Z, Y, X) array as an `Image`; check there is a time axis."""
    if not isinstance(image, Image):
        import dask.array as da

        arr = da.asarray(image)
        if arr.ndim == 4:
            arr = arr[:, :, None]
        if arr.ndim != 5:
            raise LungtrackInputError(f"a time-lapse array must be (T, C, Y, X) or (T, C, Z, Y, X), got {arr.shape}")
        if spacing_um is None:
            raise LungtrackInputError("spacing_um (y, x) or (z, y, x) in um is required for an array without metadata")
        sp = tuple(float(s) for s in spacing_um)
        sp = (1.0,) + sp if len(sp) == 2 else sp
        names = list(channel_names) if channel_names is not None else [f"C{i}" for i in range(arr.shape[1])]
        image = Image(data=arr, spacing_um=sp, channel_names=names)
    if int(image.data.shape[0]) < 2:
        raise LungtrackInputError(
            f"{image.path or 'image'}: has no time axis (T = {image.data.shape[0]}); tracking needs a time-lapse. "
            "If the frames were read as z or channels, set run.axes in the config (e.g. TCYX)."
        )
    return image


def _pair_table(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unique (a, b) label pairs where both are non-zero at the same voxel."""
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros((0, 2), np.int64)
    return np.unique(np.stack([a[both], b[both]], axis=1).astype(np.int64), axis=0)


def analyse_frame(frame_image, spacing_um, config: Config | dict | None = None, *, frame: int = 0,
                  channel_names=None) -> dict[str, pd.DataFrame]:
    """Segment one frame and reduce it to small tables (no label image is kept).

    Parameters
    ----------
    frame_image : array
        (C, Y, X) or (C, Z, Y, X) pixels of one time point.
    spacing_um : tuple
        (y, x) or (z, y, x) in um.

    Returns
    -------
    dict of DataFrame
        ``objects``: `DETECTION_COLUMNS` (+ ``z_um`` and ``volume_um3`` instead of
        ``area_um2`` in 3D) for intact MSCs and macrophages; ``engulfed_area_um2`` is the
        MSC-label area inside a macrophage that is not an intact MSC (debris being eaten;
        in 3D the area of its projection along z). ``contacts``: frame, msc_label,
        macrophage_label for pairs whose surfaces are within
        ``track.contact_tolerance_um``. ``fragments``: frame, y_um, x_um of dying
        (fragmented) MSCs.
    """
    from skimage.measure import regionprops_table
    from skimage.segmentation import expand_labels

    from .segment import segment_image

    cfg = load_config(config)
    arr = np.asarray(frame_image)
    seg = segment_image(arr, cfg, spacing_um=spacing_um, channel_names=channel_names, roles=("msc", "macrophage"))
    msc, mac = seg["msc"], seg["macrophage"]
    sp = tuple(float(s) for s in spacing_um)[-msc.ndim:]
    axes = ["z_um", "y_um", "x_um"][-msc.ndim:]
    vox = float(np.prod(sp))
    rows = []
    for role, lab in (("msc", msc), ("macrophage", mac)):
        props = regionprops_table(lab, properties=("label", "centroid", "area"), spacing=sp)
        t = pd.DataFrame({"frame": frame, "role": role, "label": props["label"].astype(np.int64)})
        for i, ax in enumerate(axes):
            t[ax] = props[f"centroid-{i}"]
        size = "area_um2" if msc.ndim == 2 else "volume_um3"  # regionprops' "area" is a volume in 3D
        t[size] = props["area"]
        t["equivalent_diameter_um"] = (2 * np.sqrt(t[size] / np.pi) if msc.ndim == 2
                                       else np.cbrt(6 * t[size] / np.pi))
        t["engulfed_area_um2"] = 0.0
        if role == "macrophage" and len(t):
            debris = seg["msc_positive"] & (msc == 0)
            if msc.ndim == 2:
                t["engulfed_area_um2"] = ndi.sum_labels(debris.astype(float), mac, t["label"].to_numpy()) * vox
            else:  # an area in 3D too (so track.engulfed_min_area_um2 keeps its unit): debris projected along z
                boxes = ndi.find_objects(mac)
                t["engulfed_area_um2"] = [
                    float(np.count_nonzero((debris[boxes[lab - 1]] & (mac[boxes[lab - 1]] == lab)).any(axis=0)))
                    * sp[1] * sp[2] for lab in t["label"]]
        rows.append(t)
    objects = pd.concat(rows, ignore_index=True)
    tol = cfg.track.contact_tolerance_um
    grown = expand_labels(msc, distance=tol, spacing=sp) if tol > 0 else msc
    pairs = _pair_table(grown, mac)
    contacts = pd.DataFrame({"frame": frame, "msc_label": pairs[:, 0], "macrophage_label": pairs[:, 1]})
    frag = seg["msc_fragmented"]
    fp = regionprops_table(frag, properties=("label", "centroid"), spacing=sp)
    fragments = pd.DataFrame({"frame": frame, **{ax: fp[f"centroid-{i}"] for i, ax in enumerate(axes)}})
    return {"objects": objects, "contacts": contacts, "fragments": fragments}


def analyse_frames(image, config: Config | dict | None = None, *, spacing_um=None, channel_names=None,
                   use_dask: bool = True, scheduler=None) -> dict[str, pd.DataFrame]:
    """`analyse_frame` on every frame of a movie, one Dask task per frame, tables concatenated.

    Only the small tables travel back from each task, so memory stays at a few frames
    whatever the movie's length. ``use_dask=False`` runs a plain loop (debugging).
    """
    img = _as_movie(image, spacing_um, channel_names)
    sp = img.spacing_um if img.is_3d else img.spacing_um[1:]
    n = int(img.data.shape[0])

    def pixels(t):  # (C, Y, X) or (C, Z, Y, X), still lazy
        return img.data[t] if img.is_3d else img.data[t, :, 0]

    if use_dask:
        import dask

        tasks = [dask.delayed(analyse_frame)(pixels(t), sp, config, frame=t, channel_names=img.channel_names)
                 for t in range(n)]
        parts = dask.compute(*tasks, scheduler=scheduler)
    else:
        parts = [analyse_frame(np.asarray(pixels(t)), sp, config, frame=t, channel_names=img.channel_names)
                 for t in range(n)]
    return {k: pd.concat([p[k] for p in parts], ignore_index=True) for k in ("objects", "contacts", "fragments")}


# --- linking (laptrack) -------------------------------------------------------------------------------

def _laptrack(params: RoleTracking):
    from laptrack import LapTrack

    gap = params.gap_closing_max_distance_um
    split, merge = params.splitting_max_distance_um, params.merging_max_distance_um
    return LapTrack(
        metric="sqeuclidean", cutoff=params.max_distance_um ** 2,
        gap_closing_metric="sqeuclidean", gap_closing_cutoff=(gap ** 2 if gap else False),
        gap_closing_max_frame_count=params.gap_closing_max_frames,
        splitting_metric="sqeuclidean", splitting_cutoff=(split ** 2 if split else False),
        merging_metric="sqeuclidean", merging_cutoff=(merge ** 2 if merge else False),
        alternative_cost_percentile_interpolation=params.alternative_cost_percentile_interpolation,
    )


def link_objects(objects: pd.DataFrame, params: RoleTracking | dict | None = None, *,
                 coordinate_cols=("y_um", "x_um"), frame_col: str = "frame"):
    """Link objects of one role over frames with laptrack (LAP linking + gap closing, optional split/merge).

    Parameters
    ----------
    objects : DataFrame
        One row per object, with ``frame_col`` and the coordinate columns (in um).
    params : RoleTracking or dict
        Largest moves in um (squared-Euclidean costs, as TrackMate's LAP tracker).

    Returns
    -------
    tracks : DataFrame
        A copy of ``objects`` (same index and order) with ``track_id`` and ``tree_id``
        (0-based; a tree is a track with its split/merge relatives).
    edges : DataFrame
        ``source``, ``target``: index values of ``objects`` linked by the tracker (frame
        to frame, across gaps, and at splits/merges).

    Examples
    --------
    >>> df = pd.DataFrame({"frame": [0, 0, 1, 1, 3], "y_um": [0., 50, 1, 51, 2], "x_um": [0., 0, 0, 0, 0]})
    >>> tracks, edges = link_objects(df, {"max_distance_um": 5, "gap_closing_max_distance_um": 5,
    ...                                    "gap_closing_max_frames": 2})
    >>> tracks.track_id.tolist()
    [0, 1, 0, 1, 0]
    >>> sorted(map(tuple, edges.to_numpy().tolist()))
    [(0, 2), (1, 3), (2, 4)]
    """
    from laptrack.data_conversion import (
        dataframe_to_coords_frame_index,
        tree_to_dataframe,
    )

    if isinstance(params, dict) or params is None:
        params = RoleTracking(**(params or {}))
    missing = [c for c in (frame_col, *coordinate_cols) if c not in objects.columns]
    if missing:
        raise LungtrackInputError(f"objects table has no column(s) {missing}; it needs {frame_col!r} and "
                                  f"{list(coordinate_cols)} (positions in um)")
    out = objects.copy()
    if len(objects) == 0:
        out["track_id"] = pd.Series(dtype=np.int64)
        out["tree_id"] = pd.Series(dtype=np.int64)
        return out, pd.DataFrame({"source": pd.Series(dtype=objects.index.dtype),
                                  "target": pd.Series(dtype=objects.index.dtype)})
    if objects[frame_col].min() < 0:
        raise LungtrackInputError(f"objects table: column {frame_col!r} has negative frame numbers")
    df = objects.reset_index(drop=True)
    coords, frame_index = dataframe_to_coords_frame_index(df, list(coordinate_cols), frame_col)
    tree = _laptrack(params).predict(coords)
    pos = {fi: i for i, fi in enumerate(map(tuple, frame_index))}
    index = objects.index.to_numpy()
    src, dst = [], []
    for a, b in tree.edges():
        ia, ib = pos[tuple(a)], pos[tuple(b)]
        if df[frame_col].iat[ia] > df[frame_col].iat[ib]:
            ia, ib = ib, ia
        src.append(index[ia])
        dst.append(index[ib])
    track_df, _split, _merge = tree_to_dataframe(tree)  # indexed by (frame, index in frame)
    ids = track_df.loc[pd.MultiIndex.from_tuples([tuple(map(int, fi)) for fi in frame_index]),
                       ["track_id", "tree_id"]].to_numpy()
    out["track_id"] = ids[:, 0].astype(np.int64)
    out["tree_id"] = ids[:, 1].astype(np.int64)
    edges = pd.DataFrame({"source": src, "target": dst}).sort_values(["source", "target"], ignore_index=True)
    return out, edges


def track_objects(objects: pd.DataFrame, config: Config | dict | None = None, *, frame_interval_min: float = 1.0):
    """Link every role with its own parameters (``config.track.<role>``); track ids unique across roles (from 1).

    Returns
    -------
    tracks : DataFrame
        ``objects`` sorted by role, track, frame, with track_id, tree_id, t_min and
        parent_track_id (the track it split from or merged out of; -1 if none).
    edges : DataFrame
        source, target: row positions in ``tracks`` linked by laptrack (frame to frame,
        across gaps, at splits and merges); equal to TrackMate's edge sets with the same
        parameters (tests/test_track.py).
    """
    cfg = load_config(config)
    parts, edge_parts, row_edges = [], [], []
    next_id, offset = 1, 0
    for role in TRACK_ROLES:
        sub = objects[objects["role"] == role].reset_index(drop=True)
        coords = [c for c in ("z_um", "y_um", "x_um") if c in sub.columns]
        tr, ed = link_objects(sub, getattr(cfg.track, role), coordinate_cols=coords)
        tr["track_id"] += next_id
        tr["tree_id"] += next_id
        next_id = int(tr["track_id"].max()) + 1 if len(tr) else next_id
        # laptrack's own edges, kept by a row key across the concat and sort below: a merged
        # track has two parents, which track ids and parent_track_id alone cannot carry.
        row_edges.append(ed[["source", "target"]].to_numpy(np.int64).reshape(-1, 2) + offset)
        tr["_row"] = np.arange(len(tr)) + offset
        offset += len(tr)
        ed = ed.assign(source=tr.loc[ed["source"], "track_id"].to_numpy(), target=tr.loc[ed["target"], "track_id"].to_numpy(),
                       source_frame=tr.loc[ed["source"], "frame"].to_numpy(),
                       target_frame=tr.loc[ed["target"], "frame"].to_numpy())
        parts.append(tr)
        edge_parts.append(ed)
    tracks = pd.concat(parts, ignore_index=True)
    tracks.insert(1, "t_min", tracks["frame"] * float(frame_interval_min))
    # A track's parent: the other track an edge comes from into its first object (split or merge;
    # the smaller id of a merge's two parents, the full graph is in ``edges``).
    e = pd.concat(edge_parts, ignore_index=True) if edge_parts else pd.DataFrame(columns=["source", "target"])
    cross = e[e["source"] != e["target"]]
    parent = cross.groupby("target")["source"].min()
    tracks["parent_track_id"] = tracks["track_id"].map(parent).fillna(-1).astype(np.int64)
    tracks = tracks.sort_values(["track_id", "frame"], ignore_index=True)
    new_pos = np.empty(len(tracks), np.int64)
    new_pos[tracks["_row"].to_numpy()] = np.arange(len(tracks))
    pairs = new_pos[np.concatenate(row_edges)] if row_edges else np.zeros((0, 2), np.int64)
    edges = pd.DataFrame(pairs, columns=["source", "target"]).sort_values(["source", "target"], ignore_index=True)
    cols = ["track_id", "frame", "t_min", "role", "label"] + [c for c in tracks.columns if c not in
                                                           ("track_id", "frame", "t_min", "role", "label", "_row")]
    return tracks[cols], edges


def track_edges(tracks: pd.DataFrame) -> pd.DataFrame:
    """Edges (source_row, target_row positions in ``tracks``) implied by track ids and parents.

    Consecutive objects of one track are linked; a track with a parent is linked from
    the parent's last object before its start.
    """
    t = tracks.reset_index(drop=True)
    src, dst = [], []
    for _tid, g in t.groupby("track_id", sort=False):
        g = g.sort_values("frame")
        src += g.index[:-1].tolist()
        dst += g.index[1:].tolist()
    firsts = t.loc[t.groupby("track_id")["frame"].idxmin()]
    for r in firsts[firsts["parent_track_id"] >= 0].itertuples():
        p = t[(t["track_id"] == r.parent_track_id) & (t["frame"] < r.frame)]
        if len(p):
            src.append(int(p["frame"].idxmax()))
            dst.append(int(r.Index))
    return pd.DataFrame({"source": src, "target": dst}, dtype=np.int64)


# --- contacts and per-track summary --------------------------------------------------------------------

CONTACT_COLUMNS = ["msc_track_id", "macrophage_track_id", "onset_frame", "end_frame", "onset_min",
                   "duration_min", "engulfment", "engulfment_frame", "engulfment_min"]


def contact_events(tracks: pd.DataFrame, contacts: pd.DataFrame, *, frame_interval_min: float,
                   engulfed_min_area_um2: float = 2.0, window_frames: int = 5) -> pd.DataFrame:
    """Contact events: runs of consecutive frames in which one MSC track touches one macrophage track.

    Parameters
    ----------
    tracks : DataFrame
        From `track_objects` (needs role, frame, label, track_id; macrophage rows with
        ``engulfed_area_um2``).
    contacts : DataFrame
        Per-frame pairs (frame, msc_label, macrophage_label) from `analyse_frames`.
    window_frames : int
        Engulfment "follows" when the macrophage holds at least ``engulfed_min_area_um2``
        of MSC debris between the contact's onset and ``window_frames`` after its end.

    Returns
    -------
    DataFrame
        `CONTACT_COLUMNS`; duration_min = frames in contact x frame interval.

    Examples
    --------
    >>> tr = pd.DataFrame({"role": ["msc"] * 3 + ["macrophage"] * 3, "frame": [0, 1, 2] * 2,
    ...                    "label": [1, 1, 1, 4, 4, 4], "track_id": [1, 1, 1, 2, 2, 2],
    ...                    "engulfed_area_um2": [0, 0, 0, 0, 0, 9.0]})
    >>> c = pd.DataFrame({"frame": [0, 1], "msc_label": [1, 1], "macrophage_label": [4, 4]})
    >>> ev = contact_events(tr, c, frame_interval_min=5)
    >>> ev[["onset_min", "duration_min", "engulfment", "engulfment_min"]].values.tolist()
    [[0.0, 10.0, True, 10.0]]
    """
    dt = float(frame_interval_min)
    if len(contacts) == 0 or len(tracks) == 0:
        return pd.DataFrame({c: pd.Series(dtype=float if c.endswith("_min") else
                                          (bool if c == "engulfment" else np.int64)) for c in CONTACT_COLUMNS})
    key = tracks.set_index(["role", "frame", "label"])["track_id"]
    msc = key.loc["msc"].reindex(pd.MultiIndex.from_arrays([contacts["frame"], contacts["msc_label"]])).to_numpy()
    mac = key.loc["macrophage"].reindex(pd.MultiIndex.from_arrays([contacts["frame"], contacts["macrophage_label"]])).to_numpy()
    c = pd.DataFrame({"frame": contacts["frame"].to_numpy(), "msc": msc, "mac": mac}).dropna()
    c = c.astype(np.int64).drop_duplicates().sort_values(["msc", "mac", "frame"])
    macs = tracks[tracks["role"] == "macrophage"]
    eating = macs[macs.get("engulfed_area_um2", pd.Series(0.0, index=macs.index)) >= engulfed_min_area_um2]
    eat_frames = eating.groupby("track_id")["frame"].apply(lambda s: np.sort(s.to_numpy())).to_dict()
    rows = []
    for (m, w), g in c.groupby(["msc", "mac"]):
        f = g["frame"].to_numpy()
        runs = np.split(f, np.where(np.diff(f) > 1)[0] + 1)
        for run in runs:
            onset, end = int(run[0]), int(run[-1])
            ef = eat_frames.get(w, np.zeros(0, int))
            ef = ef[(ef >= onset) & (ef <= end + window_frames)]
            rows.append({"msc_track_id": m, "macrophage_track_id": w, "onset_frame": onset, "end_frame": end,
                         "onset_min": onset * dt, "duration_min": len(run) * dt, "engulfment": bool(ef.size),
                         "engulfment_frame": int(ef[0]) if ef.size else -1,
                         "engulfment_min": ef[0] * dt if ef.size else np.nan})
    return pd.DataFrame(rows, columns=CONTACT_COLUMNS).sort_values(["msc_track_id", "onset_frame"], ignore_index=True)


SUMMARY_COLUMNS = ["track_id", "role", "start_frame", "end_frame", "start_min", "end_min", "dwell_min", "n_frames",
                   "left_censored", "right_censored", "displacement_um", "path_length_um", "speed_um_per_min",
                   "straightness", "fate", "n_contacts", "contact_min", "engulfed", "parent_track_id"]


def track_summary(tracks: pd.DataFrame, contacts: pd.DataFrame | None = None,
                  fragments: pd.DataFrame | None = None, *, n_frames: int, frame_interval_min: float,
                  fragment_radius_um: float = 15.0, gap_frames: int = 2) -> pd.DataFrame:
    """One row per track: start/end, dwell, displacement, speed, straightness, fate, contacts.

    Parameters
    ----------
    tracks : DataFrame
        From `track_objects`.
    contacts : DataFrame, optional
        From `contact_events`.
    fragments : DataFrame, optional
        Fragmented-MSC positions per frame (frame, y_um, x_um) from `analyse_frames`.
    n_frames : int
        Frames in the movie (a track present in the last frame is right-censored).

    Returns
    -------
    DataFrame
        `SUMMARY_COLUMNS`. dwell_min = end_min - start_min (TrackMate's track duration);
        displacement_um: first to last position; path_length_um: sum of steps;
        speed_um_per_min = path_length_um / dwell_min; straightness = displacement /
        path length (1 = straight; NaN for a track that does not move). fate:
        ``censored`` (present in the last frame), ``fragmented`` (split into tracks, or
        an MSC with fragments within ``fragment_radius_um`` of its last position in the
        ``gap_frames`` frames after it ends) or ``disappeared``. left_censored: present
        in frame 0 (its start is unknown, taken as 0).
    """
    dt = float(frame_interval_min)
    xy = [c for c in ("z_um", "y_um", "x_um") if c in tracks.columns]
    rows = []
    children = set(tracks.loc[tracks["parent_track_id"] >= 0, "parent_track_id"]) if "parent_track_id" in tracks else set()
    cs = contacts if contacts is not None else pd.DataFrame(columns=CONTACT_COLUMNS)
    frag = fragments if fragments is not None else pd.DataFrame(columns=["frame"] + xy)
    for tid, g in tracks.groupby("track_id", sort=True):
        g = g.sort_values("frame")
        p = g[xy].to_numpy(float)
        steps = np.sqrt((np.diff(p, axis=0) ** 2).sum(axis=1))
        path = float(steps.sum())
        disp = float(np.sqrt(((p[-1] - p[0]) ** 2).sum()))
        start, end = int(g["frame"].iat[0]), int(g["frame"].iat[-1])
        dwell = (end - start) * dt
        role = g["role"].iat[0]
        if end == n_frames - 1:
            fate = "censored"
        elif tid in children:
            fate = "fragmented"
        else:
            fate = "disappeared"
            if role == "msc" and len(frag):
                near = frag[(frag["frame"] > end) & (frag["frame"] <= end + gap_frames)]
                d = np.sqrt(((near[xy].to_numpy(float) - p[-1]) ** 2).sum(axis=1))
                if np.any(d <= fragment_radius_um):
                    fate = "fragmented"
        col = "msc_track_id" if role == "msc" else "macrophage_track_id"
        mine = cs[cs[col] == tid]
        rows.append({"track_id": int(tid), "role": role, "start_frame": start, "end_frame": end,
                     "start_min": start * dt, "end_min": end * dt, "dwell_min": dwell, "n_frames": len(g),
                     "left_censored": start == 0, "right_censored": end == n_frames - 1,
                     "displacement_um": disp, "path_length_um": path,
                     "speed_um_per_min": path / dwell if dwell > 0 else np.nan,
                     "straightness": disp / path if path > 0 else np.nan, "fate": fate,
                     "n_contacts": len(mine), "contact_min": float(mine["duration_min"].sum()),
                     "engulfed": bool(mine["engulfment"].any()) if len(mine) else False,
                     "parent_track_id": int(g["parent_track_id"].iat[0]) if "parent_track_id" in g else -1})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


# --- survival -------------------------------------------------------------------------------------------

def survival_table(summary: pd.DataFrame, contacts: pd.DataFrame | None = None, *, frame_interval_min: float,
                   group: str | None = None) -> pd.DataFrame:
    """One row per MSC track: time to loss of intactness, to first contact and to engulfment.

    Time runs from the track's start (0 for MSCs present in frame 0: ``left_censored``
    flags them, their true start is earlier). Loss happens between the last intact frame
    and the next, and is dated at the first frame without the MSC: ``duration_min =
    (end_frame + 1 - start_frame) x interval`` with ``event = True``; an MSC present in
    the last frame is right-censored at ``end_frame - start_frame`` intervals.
    ``contact_event`` / ``engulfment_event``: 1 = happened (at ``contact_min`` /
    ``engulfment_min``), 2 = competing event (the MSC was lost first), 0 = censored.

    Examples
    --------
    >>> s = pd.DataFrame({"track_id": [1, 2], "role": ["msc", "msc"], "start_frame": [0, 2], "end_frame": [3, 9],
    ...                   "left_censored": [True, False], "right_censored": [False, True]})
    >>> survival_table(s, frame_interval_min=10)[["track_id", "duration_min", "event", "contact_event"]].values.tolist()
    [[1, 40.0, True, 2], [2, 70.0, False, 0]]
    """
    dt = float(frame_interval_min)
    m = summary[summary["role"] == "msc"]
    lost = ~m["right_censored"].to_numpy(bool)
    dur = np.where(lost, m["end_frame"] + 1 - m["start_frame"], m["end_frame"] - m["start_frame"]) * dt
    out = pd.DataFrame({"track_id": m["track_id"].to_numpy(), "duration_min": dur.astype(float), "event": lost,
                        "left_censored": m["left_censored"].to_numpy(bool)})
    if group is not None:
        out.insert(1, "group", group)
    cs = contacts if contacts is not None else pd.DataFrame(columns=CONTACT_COLUMNS)
    start = dict(zip(m["track_id"], m["start_frame"]))
    first_c = cs.groupby("msc_track_id")["onset_frame"].min()
    eng = cs[cs["engulfment"].astype(bool)].groupby("msc_track_id")["engulfment_frame"].min()
    for name, first in (("contact", first_c), ("engulfment", eng)):
        t = out["track_id"].map(first)
        rel = (t - out["track_id"].map(start)) * dt
        ev = np.where(t.notna(), 1, np.where(out["event"], 2, 0))
        out[f"{name}_min"] = np.where(t.notna(), rel, out["duration_min"]).astype(float)
        out[f"{name}_event"] = ev.astype(np.int64)
    return out


def kaplan_meier(durations, events, *, confidence: float = 0.95) -> pd.DataFrame:
    """Kaplan-Meier survival with Greenwood variance and log(-log) confidence band.

    Parameters
    ----------
    durations : array of float
        Time to the event or to censoring.
    events : array of bool
        True = event observed, False = right-censored.

    Returns
    -------
    DataFrame
        One row at 0 and one per distinct time: time, n_at_risk, n_events, n_censored,
        survival, std_err (Greenwood), ci_low, ci_high.

    Notes
    -----
    S(t) = prod_{t_i <= t} (1 - d_i / n_i); Var S = S^2 sum d_i / (n_i (n_i - d_i))
    (Greenwood 1926); the band is exp(-exp(log(-log S) -/+ z sqrt(V) / |log S|))
    (Kalbfleisch & Prentice 1980; lifelines' default). Written with numpy because
    lifelines would pin pandas below 3.

    Examples
    --------
    >>> km = kaplan_meier([1, 2, 2, 3], [True, True, False, True])
    >>> km.survival.round(3).tolist()
    [1.0, 0.75, 0.5, 0.0]
    """
    d = np.asarray(durations, float)
    e = np.asarray(events, bool)
    if d.shape != e.shape or d.ndim != 1:
        raise LungtrackInputError("durations and events must be 1-D arrays of the same length")
    if np.any(~np.isfinite(d)) or np.any(d < 0):
        raise LungtrackInputError("durations must be finite and >= 0")
    times = np.unique(d)
    n_at = np.array([(d >= t).sum() for t in times])
    n_ev = np.array([((d == t) & e).sum() for t in times])
    n_ce = np.array([((d == t) & ~e).sum() for t in times])
    s = np.cumprod(1 - n_ev / n_at)
    with np.errstate(divide="ignore", invalid="ignore"):
        gw = np.cumsum(np.where(n_at > n_ev, n_ev / (n_at * (n_at - n_ev)), np.inf))
        se = s * np.sqrt(gw)
        z = stats.norm.ppf(0.5 + confidence / 2)
        logs = np.log(s)
        half = z * np.sqrt(gw) / np.abs(logs)
        lo = np.exp(-np.exp(np.log(-logs) + half))
        hi = np.exp(-np.exp(np.log(-logs) - half))
    lo = np.where(s >= 1, 1.0, np.where(s <= 0, 0.0, lo))
    hi = np.where(s >= 1, 1.0, np.where(s <= 0, 0.0, hi))
    km = pd.DataFrame({"time": times, "n_at_risk": n_at, "n_events": n_ev, "n_censored": n_ce, "survival": s,
                       "std_err": np.where(s <= 0, 0.0, se), "ci_low": lo, "ci_high": hi})
    if len(times) == 0 or times[0] > 0:
        first = pd.DataFrame({"time": [0.0], "n_at_risk": [len(d)], "n_events": [0], "n_censored": [0],
                              "survival": [1.0], "std_err": [0.0], "ci_low": [1.0], "ci_high": [1.0]})
        km = pd.concat([first, km], ignore_index=True)
    return km


def median_survival(km: pd.DataFrame) -> dict:
    """Median survival time and its CI: where survival and the band's edges first reach 0.5 or below.

    Returns ``{"median": t, "ci_low": t_lo, "ci_high": t_hi}``, inf where a curve never
    reaches 0.5 (Brookmeyer & Crowley 1982 style, as lifelines reports it).

    Examples
    --------
    >>> median_survival(kaplan_meier([1, 2, 3, 4], [True] * 4))["median"]
    2.0
    """
    def first(col):
        hit = km.loc[km[col] <= 0.5, "time"]
        return float(hit.iloc[0]) if len(hit) else math.inf

    return {"median": first("survival"), "ci_low": first("ci_low"), "ci_high": first("ci_high")}


def logrank_test(durations, events, groups) -> dict:
    """Log-rank test (Mantel 1966) between two or more groups of survival times.

    Returns
    -------
    dict
        statistic (chi-square), df (groups - 1), p_value, and per group ``observed``
        and ``expected`` event counts.

    Notes
    -----
    At each event time: E_g = n_g d / n; V_gh = d (n - d) / (n - 1) n_g / n (delta_gh - n_h / n);
    statistic = (O - E)' V^- (O - E) over all groups but one.

    Examples
    --------
    >>> r = logrank_test([1, 2, 3, 4, 5, 6], [True] * 6, ["a", "a", "a", "b", "b", "b"])
    >>> round(r["statistic"], 3), r["df"]
    (5.052, 1)
    """
    d = np.asarray(durations, float)
    e = np.asarray(events, bool)
    g = np.asarray(groups)
    labels = list(pd.unique(g))
    if len(labels) < 2:
        raise LungtrackInputError(f"log-rank needs at least two groups, got {labels}")
    k = len(labels)
    O, E = np.zeros(k), np.zeros(k)
    V = np.zeros((k, k))
    for t in np.unique(d[e]):
        at = d >= t
        n = at.sum()
        n_g = np.array([(at & (g == lab)).sum() for lab in labels], float)
        d_g = np.array([((d == t) & e & (g == lab)).sum() for lab in labels], float)
        dd = d_g.sum()
        O += d_g
        E += n_g * dd / n
        if n > 1:
            V += dd * (n - dd) / (n - 1) * (np.diag(n_g / n) - np.outer(n_g, n_g) / n ** 2)
    diff = (O - E)[:-1]
    stat = float(diff @ np.linalg.pinv(V[:-1, :-1]) @ diff)
    return {"statistic": stat, "df": k - 1, "p_value": float(stats.chi2.sf(stat, k - 1)),
            "observed": dict(zip(labels, O)), "expected": dict(zip(labels, E))}


def cumulative_incidence(durations, events, *, cause: int = 1) -> pd.DataFrame:
    """Cumulative incidence of one cause with competing events (Aalen-Johansen).

    ``events``: 0 = censored, ``cause`` = the event of interest, any other positive
    value = a competing event. CIF(t) = sum_{t_j <= t} S(t_j-) d_cause(t_j) / n(t_j),
    S being the Kaplan-Meier of any event. Without competing events, CIF = 1 - KM.

    Examples
    --------
    >>> ci = cumulative_incidence([1, 2, 3, 4], [1, 2, 1, 0])
    >>> ci.incidence.round(3).tolist()
    [0.0, 0.25, 0.25, 0.5, 0.5]
    """
    d = np.asarray(durations, float)
    ev = np.asarray(events, int)
    times = np.unique(d)
    s_prev, cif = 1.0, 0.0
    rows = [{"time": 0.0, "n_at_risk": len(d), "n_events": 0, "incidence": 0.0}]
    for t in times:
        n = (d >= t).sum()
        d_c = ((d == t) & (ev == cause)).sum()
        d_all = ((d == t) & (ev > 0)).sum()
        cif += s_prev * d_c / n
        s_prev *= 1 - d_all / n
        rows.append({"time": float(t), "n_at_risk": int(n), "n_events": int(d_c), "incidence": cif})
    out = pd.DataFrame(rows)
    return out[~((out["time"] == 0) & (out.index > 0))].reset_index(drop=True) if (times == 0).any() else out


# --- whole movie -------------------------------------------------------------------------------------

@dataclass
class TrackResult:
    """Everything `track_movie` computes (tables in um and minutes)."""

    tracks: pd.DataFrame
    summary: pd.DataFrame
    contacts: pd.DataFrame
    survival: pd.DataFrame
    fragments: pd.DataFrame
    frame_interval_min: float
    n_frames: int
    #: laptrack's edges: source, target row positions in ``tracks`` (splits and merges included).
    edges: pd.DataFrame | None = None

    def kaplan_meier(self, confidence: float = 0.95) -> pd.DataFrame:
        return kaplan_meier(self.survival["duration_min"], self.survival["event"], confidence=confidence)


def track_movie(image, config: Config | dict | None = None, *, spacing_um=None, channel_names=None,
                frame_interval_min: float | None = None, use_dask: bool = True, scheduler=None,
                group: str | None = None) -> TrackResult:
    """Segment, link and summarise a time-lapse: the whole tracking pipeline on one movie.

    ``image`` is an `Image` (from `lungtrack.io.read_image`) or an array (T, C, Y, X)
    with ``spacing_um`` and ``frame_interval_min``.
    """
    cfg = load_config(config)
    img = _as_movie(image, spacing_um, channel_names)
    dt = float(frame_interval_min) if frame_interval_min is not None else _interval_of(img, cfg)
    per_frame = analyse_frames(img, cfg, use_dask=use_dask, scheduler=scheduler)
    tracks, edges = track_objects(per_frame["objects"], cfg, frame_interval_min=dt)
    n = int(img.data.shape[0])
    events = contact_events(tracks, per_frame["contacts"], frame_interval_min=dt,
                            engulfed_min_area_um2=cfg.track.engulfed_min_area_um2,
                            window_frames=cfg.track.engulfment_window_frames)
    summary = track_summary(tracks, events, per_frame["fragments"], n_frames=n, frame_interval_min=dt,
                            fragment_radius_um=cfg.track.msc.max_distance_um + cfg.segment.msc.max_diameter_um / 2,
                            gap_frames=cfg.track.msc.gap_closing_max_frames)
    surv = survival_table(summary, events, frame_interval_min=dt, group=group)
    return TrackResult(tracks=tracks, summary=summary, contacts=events, survival=surv,
                       fragments=per_frame["fragments"], frame_interval_min=dt, n_frames=n, edges=edges)


def track_image(path, out, config: Config | dict | str | None = None, *, frame_interval_min: float | None = None,
                use_dask: bool = True, figures: bool = True) -> TrackResult:
    """Read a time-lapse file, track it, write tracks.csv, track_summary.csv, contacts.csv, survival.csv.

    Also writes ``kaplan_meier.csv``, ``cumulative_incidence.csv`` (first contact and
    engulfment, `cumulative_incidence_table`), ``track_edges.csv`` (laptrack's links,
    splits and merges included: source/target track id and frame) and, with ``figures``,
    ``figures/survival`` and ``figures/contact_raster`` (PNG, SVG, PDF).
    """
    from .io import read_image

    cfg = load_config(config)
    r = cfg.run
    img = read_image(path, default_pixel_size_um=r.pixel_size_um, default_z_step_um=r.z_step_um, axes=r.axes)
    if frame_interval_min is not None:
        cfg = cfg.model_copy(update={"track": cfg.track.model_copy(update={"frame_interval_min": frame_interval_min})})
    res = track_movie(img, cfg, use_dask=use_dask)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res.tracks.to_csv(out / "tracks.csv", index=False)
    res.summary.to_csv(out / "track_summary.csv", index=False)
    res.contacts.to_csv(out / "contacts.csv", index=False)
    res.survival.to_csv(out / "survival.csv", index=False)
    km = res.kaplan_meier(cfg.track.confidence)
    km.to_csv(out / "kaplan_meier.csv", index=False)
    cumulative_incidence_table(res.survival).to_csv(out / "cumulative_incidence.csv", index=False)
    t = res.tracks
    e = res.edges
    pd.DataFrame({"source_track_id": t["track_id"].to_numpy()[e["source"]], "source_frame": t["frame"].to_numpy()[e["source"]],
                  "target_track_id": t["track_id"].to_numpy()[e["target"]],
                  "target_frame": t["frame"].to_numpy()[e["target"]]}).to_csv(out / "track_edges.csv", index=False)
    if figures:
        from .figures import save_figure

        for name, fig in (("survival", survival_figure({"MSC": res.survival}, confidence=cfg.track.confidence)),
                          ("contact_raster", contact_raster_figure(res.summary, res.contacts,
                                                                   n_frames=res.n_frames,
                                                                   frame_interval_min=res.frame_interval_min))):
            save_figure(fig, out / "figures" / name)
    return res


def cumulative_incidence_table(survival: pd.DataFrame) -> pd.DataFrame:
    """Cumulative incidence of first macrophage contact and of engulfment per MSC (MSC loss competing).

    Parameters
    ----------
    survival : DataFrame
        `survival_table` output (``contact_min``, ``contact_event``, ``engulfment_min``,
        ``engulfment_event``; and ``group`` when it has one).

    Returns
    -------
    DataFrame
        [group,] event (``contact`` or ``engulfment``), time_min, n_at_risk, n_events,
        incidence: `cumulative_incidence` (Aalen-Johansen) of each event.

    Examples
    --------
    >>> s = pd.DataFrame({"contact_min": [10.0, 20, 30], "contact_event": [1, 2, 0],
    ...                   "engulfment_min": [30.0, 20, 30], "engulfment_event": [1, 2, 0]})
    >>> cumulative_incidence_table(s).groupby("event").incidence.max().round(3).to_dict()
    {'contact': 0.333, 'engulfment': 0.333}
    """
    by = [("group", g) for g in pd.unique(survival["group"])] if "group" in survival else [(None, None)]
    parts = []
    for col, g in by:
        s = survival if col is None else survival[survival[col] == g]
        for event in ("contact", "engulfment"):
            ci = cumulative_incidence(s[f"{event}_min"], s[f"{event}_event"]).rename(columns={"time": "time_min"})
            ci.insert(0, "event", event)
            if col is not None:
                ci.insert(0, "group", g)
            parts.append(ci)
    return pd.concat(parts, ignore_index=True)


def compare_survival(folders, out=None, *, confidence: float = 0.95) -> dict:
    """Pool the MSC survival of several tracked movies per group; medians, log-rank, figure.

    Parameters
    ----------
    folders : list of (group, folder) or dict group -> list of folders
        Folders written by `track_image` (``lungtrack track``), each with ``survival.csv``.
        Several movies of one group are pooled (one row per MSC track).
    out : path, optional
        Writes ``survival_by_group.csv`` (group, n_msc, n_lost, median_min, ci_low_min,
        ci_high_min), ``logrank.csv`` (statistic, df, p_value), ``survival_pooled.csv``,
        ``cumulative_incidence.csv`` (per group) and ``figures/survival_by_group``.

    Returns
    -------
    dict
        ``survival`` (pooled, with group and folder), ``by_group``, ``logrank`` (dict of
        `logrank_test`; None with one group), ``cumulative_incidence``.

    Raises
    ------
    LungtrackInputError
        A folder has no ``survival.csv``.
    """
    pairs = [(g, f) for g, fs in folders.items() for f in ([fs] if isinstance(fs, (str, Path)) else fs)] \
        if isinstance(folders, dict) else list(folders)
    parts = []
    for g, f in pairs:
        path = Path(f) / "survival.csv"
        if not path.is_file():
            raise LungtrackInputError(f"{path}: not found; run `lungtrack track MOVIE --out {f}` first")
        st = pd.read_csv(path)
        parts.append(st.drop(columns=["group"], errors="ignore").assign(group=str(g), folder=str(f)))
    if not parts:
        raise LungtrackInputError("no results folders given; give GROUP=FOLDER pairs")
    pooled = pd.concat(parts, ignore_index=True)
    rows = []
    for g, st in pooled.groupby("group", sort=False):
        med = median_survival(kaplan_meier(st["duration_min"], st["event"], confidence=confidence))
        rows.append({"group": g, "n_msc": len(st), "n_lost": int(st["event"].sum()), "median_min": med["median"],
                     "ci_low_min": med["ci_low"], "ci_high_min": med["ci_high"]})
    by_group = pd.DataFrame(rows)
    lr = logrank_test(pooled["duration_min"], pooled["event"], pooled["group"]) if len(by_group) > 1 else None
    cif = cumulative_incidence_table(pooled)
    if out is not None:
        from .figures import kaplan_meier_figure, save_figure

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        pooled.to_csv(out / "survival_pooled.csv", index=False)
        by_group.to_csv(out / "survival_by_group.csv", index=False)
        cif.to_csv(out / "cumulative_incidence.csv", index=False)
        if lr is not None:
            pd.DataFrame([{k: lr[k] for k in ("statistic", "df", "p_value")}]).to_csv(out / "logrank.csv", index=False)
        fig = kaplan_meier_figure({g: st for g, st in pooled.groupby("group", sort=False)}, confidence=confidence)
        save_figure(fig, out / "figures" / "survival_by_group")
    return {"survival": pooled, "by_group": by_group, "logrank": lr, "cumulative_incidence": cif}


# --- accuracy against ground truth ----------------------------------------------------------------

def match_truth(tracks: pd.DataFrame, truth_labels: dict, spacing_um) -> np.ndarray:
    """The truth label under each tracked object's centroid (0 = none, or a second claim on one truth object).

    ``truth_labels`` maps a role to a (T, Y, X) truth label movie (label = truth track id).

    Examples
    --------
    >>> lab = np.zeros((1, 4, 4), int); lab[0, :2, :2] = 7
    >>> tr = pd.DataFrame({"role": ["msc", "msc"], "frame": [0, 0], "y_um": [0.5, 3.0], "x_um": [0.5, 3.0]})
    >>> match_truth(tr, {"msc": lab}, (1.0, 1.0)).tolist()
    [7, 0]
    """
    t = tracks.reset_index(drop=True)
    sp = tuple(float(s) for s in spacing_um)[-2:]
    truth = np.zeros(len(t), np.int64)
    for role, lab in truth_labels.items():
        sel = np.where(t["role"].to_numpy() == role)[0]
        if sel.size == 0:
            continue
        f = t["frame"].to_numpy()[sel]
        y = np.clip(np.rint(t["y_um"].to_numpy()[sel] / sp[0]).astype(int), 0, lab.shape[1] - 1)
        x = np.clip(np.rint(t["x_um"].to_numpy()[sel] / sp[1]).astype(int), 0, lab.shape[2] - 1)
        truth[sel] = lab[f, y, x]
    key = pd.Series(list(zip(t["role"], t["frame"], truth)))
    truth[(key.duplicated() & (truth > 0)).to_numpy()] = 0
    return truth


#: Cell Tracking Challenge AOGM weights (Matula et al. 2015): false negative, false positive,
#: edge to add, edge to delete.
CTC_WEIGHTS = {"fn": 10.0, "fp": 1.0, "ea": 1.5, "ed": 1.0}


def tracking_accuracy(tracks: pd.DataFrame, truth_labels: dict, spacing_um) -> dict:
    """Score tracks against ground-truth label movies (CTC-style DET/TRA-like measures).

    A tracked object matches the truth object whose mask holds its centroid (one to
    one; a second claim on the same truth object is a false positive). Truth edges link
    a truth track's consecutive frames; a truth edge is recovered when its two objects
    are matched and the tracker linked them (same track, or a parent/child link).

    Returns
    -------
    dict
        det_precision, det_recall, det (F1), link_recall (recovered / truth edges),
        link_precision (correct / predicted edges), track_purity (objects in a track that
        belong to its main truth track, pooled), tra (1 - AOGM / AOGM_0 with `CTC_WEIGHTS`,
        no split/merge terms), n_truth_objects, n_truth_edges, and the counts.
    """
    t = tracks.reset_index(drop=True)
    truth = match_truth(t, truth_labels, spacing_um)
    tp = int((truth > 0).sum())
    fp = len(t) - tp
    n_truth = 0
    truth_edges = set()
    for role, lab in truth_labels.items():
        present = [set(np.unique(lab[f])) - {0} for f in range(lab.shape[0])]
        n_truth += sum(len(p) for p in present)
        for f in range(lab.shape[0] - 1):
            for tid in present[f] & present[f + 1]:
                truth_edges.add((role, int(tid), f))
    fn = n_truth - tp
    edges = track_edges(t)
    pred_edges = set()
    n_pred_edges = 0
    for a, b in edges[["source", "target"]].to_numpy():
        n_pred_edges += 1
        ta, tb = truth[a], truth[b]
        fa, fb = int(t["frame"].iat[a]), int(t["frame"].iat[b])
        if ta > 0 and ta == tb and fb == fa + 1:
            pred_edges.add((t["role"].iat[a], int(ta), fa))
    correct = len(pred_edges & truth_edges)
    ea = len(truth_edges) - correct
    ed = n_pred_edges - correct
    w = CTC_WEIGHTS
    aogm = w["fn"] * fn + w["fp"] * fp + w["ea"] * ea + w["ed"] * ed
    aogm0 = w["fn"] * n_truth + w["ea"] * len(truth_edges)
    matched = t.assign(truth=truth)[truth > 0]
    purity = (matched.groupby("track_id")["truth"].agg(lambda s: s.value_counts().iloc[0]).sum() / len(matched)
              if len(matched) else float("nan"))
    prec = tp / len(t) if len(t) else float("nan")
    rec = tp / n_truth if n_truth else float("nan")
    return {"det_precision": prec, "det_recall": rec, "det": 2 * prec * rec / (prec + rec) if tp else 0.0,
            "link_recall": correct / len(truth_edges) if truth_edges else float("nan"),
            "link_precision": correct / n_pred_edges if n_pred_edges else float("nan"),
            "track_purity": float(purity), "tra": 1 - min(aogm, aogm0) / aogm0 if aogm0 else float("nan"),
            "n_truth_objects": n_truth, "n_truth_edges": len(truth_edges), "n_fp": fp, "n_fn": fn,
            "n_edges_to_add": ea, "n_edges_to_delete": ed}


def napari_tracks(tracks: pd.DataFrame, summary: pd.DataFrame | None = None, *, spacing_um=(1.0, 1.0),
                  edges: pd.DataFrame | None = None):
    """Data, features and graph for a napari ``Tracks`` layer (the plugin only displays them).

    Returns ``(data, features, graph)``: data (N, 4) = track_id, frame, y, x in *pixels*
    ((N, 5) with z for 3D tracks; give the layer ``scale`` for um); features: role, t_min
    and, with ``summary``, the track's fate, dwell_min, n_contacts and contact_min per
    point; graph {child: [parent]} from splits and merges (``edges`` of `track_objects`
    give both parents of a merge; without them, ``parent_track_id``).

    Examples
    --------
    >>> tr = pd.DataFrame({"track_id": [1, 1], "frame": [0, 1], "t_min": [0.0, 5.0], "role": "msc",
    ...                    "y_um": [2.0, 2.0], "x_um": [4.0, 5.0], "parent_track_id": -1})
    >>> data, features, graph = napari_tracks(tr, spacing_um=(0.5, 0.5))
    >>> data.tolist(), graph
    ([[1.0, 0.0, 4.0, 8.0], [1.0, 1.0, 4.0, 10.0]], {})
    """
    t = tracks.sort_values(["track_id", "frame"])
    spatial = [c for c in ("z_um", "y_um", "x_um") if c in t.columns]
    sp = np.asarray(tuple(float(s) for s in spacing_um)[-len(spatial):], float)
    data = np.column_stack([t["track_id"].to_numpy(float), t["frame"].to_numpy(float),
                            t[spatial].to_numpy(float) / sp])
    features = t[["role", "t_min"]].reset_index(drop=True)
    if summary is not None:
        s = summary.set_index("track_id")
        for col in ("fate", "dwell_min", "n_contacts", "contact_min"):
            features[col] = t["track_id"].map(s[col]).to_numpy()
    graph: dict = {}
    if edges is not None and len(edges):
        ids = tracks["track_id"].to_numpy()
        for a, b in edges[["source", "target"]].to_numpy():
            if ids[a] != ids[b]:
                graph.setdefault(int(ids[b]), set()).add(int(ids[a]))
        graph = {k: sorted(v) for k, v in sorted(graph.items())}
    elif "parent_track_id" in t:
        firsts = t.groupby("track_id")["parent_track_id"].first()
        graph = {int(k): [int(v)] for k, v in firsts.items() if v >= 0}
    return data, features, graph


# --- figures (drawn by lungtrack.figures; kept here for scripts that import them from track) ---------

def survival_figure(survival: dict, *, confidence: float = 0.95, time_unit: str = "h"):
    """Kaplan-Meier curves with bands and censor marks: `lungtrack.figures.kaplan_meier_figure`."""
    from .figures import kaplan_meier_figure

    return kaplan_meier_figure(survival, confidence=confidence, time_unit=time_unit)


def contact_raster_figure(summary: pd.DataFrame, contacts: pd.DataFrame, *, n_frames: int,
                          frame_interval_min: float):
    """Per-MSC raster of intact period, contacts, engulfment, loss: `lungtrack.figures.contact_raster_figure`."""
    from . import figures

    return figures.contact_raster_figure(summary, contacts, n_frames=n_frames, frame_interval_min=frame_interval_min)
