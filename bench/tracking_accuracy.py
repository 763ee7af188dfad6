"""Tracking accuracy on simulated live lung-slice movies with exact truth (CTC-style measures).

For each seed: simulate a movie (`lungtrack.synthetic.simulate_timelapse`), run the whole
tracking pipeline (`lungtrack.track.track_movie`), and score it against the truth:
DET (detection F1), link recall/precision (truth frame-to-frame edges recovered), track
purity, TRA-like (1 - AOGM/AOGM_0 with the Cell Tracking Challenge weights, no split/merge
terms; and, when py-ctcmetrics is installed, the Cell Tracking Challenge's own DET, TRA and LNK
per role), plus the biology: MSC fates, MSC loss frames and contact events (onset, end,
macrophage, engulfment) equal to the truth.

Speed: Dask over frames (threads) vs a plain loop in the same run, and peak Python-heap
memory (tracemalloc) of one movie.

    python bench/tracking_accuracy.py [--seeds 5] [--frames 24] [--size 192]
"""
from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from lungtrack.synthetic import simulate_timelapse
from lungtrack.track import TRACK_ROLES, match_truth, track_movie, tracking_accuracy

CONFIG = {"channels": {"nuclei": None, "msc": "GFP", "macrophage": "CD68"}}
TRUTH_FATE = {"engulfed": "fragmented", "fragmented": "fragmented", "contact_censored": "censored",
              "censored": "censored", "disappeared": "disappeared"}


def biology_agreement(res, tl) -> dict:
    """Fraction of MSC fates, MSC loss frames and contact events equal to the truth."""
    truth_id = match_truth(res.tracks, {r: tl.labels[r] for r in TRACK_ROLES}, tl.spacing_um)
    tmap = res.tracks.assign(truth=truth_id).groupby("track_id")["truth"].agg(lambda s: s.mode().iloc[0])
    m = res.summary[res.summary.role == "msc"].assign(truth=lambda d: d.track_id.map(tmap))
    tm = tl.mscs.set_index("track_id")
    fate_ok = np.mean([TRUTH_FATE[tm.loc[r.truth, "fate"]] == r.fate for r in m.itertuples() if r.truth in tm.index])
    end_ok = np.mean([tm.loc[r.truth, "last_intact_frame"] == r.end_frame for r in m.itertuples() if r.truth in tm.index])
    got = {(tmap.get(c.msc_track_id), tmap.get(c.macrophage_track_id), c.onset_frame, c.end_frame, c.engulfment)
           for c in res.contacts.itertuples()}
    want = {(c.msc_track_id, c.macrophage_track_id, c.onset_frame, c.end_frame, c.engulfment)
            for c in tl.contacts.itertuples()}
    return {"msc_fate": fate_ok, "msc_loss_frame": end_ok, "contact_events_equal": got == want,
            "n_contacts": len(res.contacts), "n_contacts_truth": len(tl.contacts)}


def _write_ctc(folder: Path, masks: np.ndarray, tracks: pd.DataFrame, name: str) -> None:
    """One role as a Cell Tracking Challenge sequence: mask###.tif (or TRA/man_track###.tif) + track file.

    A track with a gap is cut into segments (CTC tracks are contiguous), each later
    segment a child of the one before.
    """
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    masks = masks.astype(np.uint16)
    lines, next_id = [], int(masks.max()) + 1
    for tid, g in tracks.groupby("track_id"):
        f = np.sort(g["frame"].to_numpy())
        runs = np.split(f, np.where(np.diff(f) > 1)[0] + 1)
        parent = 0
        for k, run in enumerate(runs):
            lab = tid
            if k:
                lab, next_id = next_id, next_id + 1
                for t in run:
                    masks[t][masks[t] == tid] = lab
            lines.append(f"{lab} {run[0]} {run[-1]} {parent}")
            parent = lab
    for t in range(masks.shape[0]):
        tifffile.imwrite(folder / f"{name}{t:03d}.tif", masks[t])
    (folder / ("man_track.txt" if name == "man_track" else "res_track.txt")).write_text("\n".join(lines) + "\n")


def ctc_scores(res, tl, config) -> dict:
    """DET, TRA and LNK from py-ctcmetrics (the Cell Tracking Challenge's own measures), per role.

    The result masks are the segmentation labels of each frame renumbered to track ids.
    Returns {} when py-ctcmetrics is not installed.
    """
    import contextlib
    import io
    import tempfile

    try:
        from ctc_metrics import evaluate_sequence
    except ImportError:
        return {}
    from lungtrack.segment import segment_image

    T = tl.image.shape[0]
    pred = {r: np.zeros((T,) + tl.image.shape[2:], np.int32) for r in TRACK_ROLES}
    ids = res.tracks.set_index(["role", "frame", "label"])["track_id"]
    for t in range(T):
        seg = segment_image(tl.image[t], config, spacing_um=tl.spacing_um, channel_names=tl.channel_names,
                            roles=TRACK_ROLES)
        for r in TRACK_ROLES:
            lut = np.zeros(int(seg[r].max()) + 1, np.int32)
            sub = ids.loc[r].loc[t] if (r, t) in ids.droplevel(2).index else pd.Series(dtype=int)
            lut[sub.index.to_numpy()] = sub.to_numpy()
            pred[r][t] = lut[seg[r]]
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for r in TRACK_ROLES:
            gt, rs = Path(d) / r / "GT", Path(d) / r / "RES"
            _write_ctc(gt / "TRA", tl.labels[r], tl.tracks[tl.tracks.role == r], "man_track")
            _write_ctc(rs, pred[r], res.tracks[res.tracks.role == r], "mask")
            with contextlib.redirect_stdout(io.StringIO()):
                m = evaluate_sequence(str(rs), str(gt), metrics=["DET", "TRA", "LNK"], threads=1)
            out.update({f"ctc_{k}_{r}": m[k] for k in ("DET", "TRA", "LNK")})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--walkers", type=int, default=4, help="wandering macrophages")
    ap.add_argument("--speed", type=float, default=4.0, help="macrophage speed, um per frame")
    ap.add_argument("--clearance", type=float, default=8.0, help="um wandering macrophages keep from other cells")
    ap.add_argument("--noise", type=float, default=30.0, help="Gaussian noise sigma (signal 1000-1400)")
    args = ap.parse_args(argv)
    rows = []
    for seed in range(args.seeds):
        tl = simulate_timelapse((args.size, args.size), n_frames=args.frames, n_walkers=args.walkers,
                                speed_um_per_frame=args.speed, noise=args.noise,
                                clearance_um=args.clearance, seed=seed)
        kw = dict(spacing_um=tl.spacing_um, frame_interval_min=tl.frame_interval_min, channel_names=tl.channel_names)
        t0 = time.perf_counter()
        res = track_movie(tl.image, CONFIG, use_dask=False, **kw)
        t_loop = time.perf_counter() - t0
        t0 = time.perf_counter()
        track_movie(tl.image, CONFIG, use_dask=True, **kw)
        t_dask = time.perf_counter() - t0
        acc = tracking_accuracy(res.tracks, {r: tl.labels[r] for r in TRACK_ROLES}, tl.spacing_um)
        rows.append({"seed": seed, **{k: acc[k] for k in ("det", "link_recall", "link_precision", "track_purity",
                                                          "tra")},
                     **biology_agreement(res, tl), **ctc_scores(res, tl, CONFIG), "loop_s": t_loop,
                     "dask_s": t_dask})
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(df.round(4).to_string(index=False))
    print(f"\nmean over {len(df)} movies ({args.frames} frames, {args.size}x{args.size} px): "
          f"DET {df.det.mean():.4f}, link recall {df.link_recall.mean():.4f}, link precision "
          f"{df.link_precision.mean():.4f}, TRA-like {df.tra.mean():.4f}, track purity {df.track_purity.mean():.4f}; "
          f"MSC fate {df.msc_fate.mean():.3f}, contact events equal in {int(df.contact_events_equal.sum())}/{len(df)}")
    print(f"speed: plain loop {df.loop_s.mean():.2f} s/movie, Dask threads {df.dask_s.mean():.2f} s/movie "
          f"(ratio loop/dask {df.loop_s.sum() / df.dask_s.sum():.2f}x)")
    tl = simulate_timelapse((args.size, args.size), n_frames=args.frames, seed=0)
    tracemalloc.start()
    track_movie(tl.image, CONFIG, use_dask=True, spacing_um=tl.spacing_um, frame_interval_min=tl.frame_interval_min,
                channel_names=tl.channel_names)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"peak traced memory of one movie: {peak / 2**20:.1f} MiB (movie itself {tl.image.nbytes / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
