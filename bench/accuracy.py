"""Benchmark: segmentation accuracy against ground truth (object F1 at IoU 0.5 and count error).

    python bench/accuracy.py [--seeds N] [--data DIR] [--quick]

Part 1, the simulator (`lungtrack.synthetic.simulate_section`, exact truth) at several
difficulty levels: density (MSCs per section), noise (camera read noise, dimmer
illumination), clustering (share of MSCs in touching emboli). For each level and role
(msc, macrophage, nuclei) it prints mean F1 over N seeds and the mean relative count
error ``(n_pred - n_true) / n_true``; for nuclei both the classic path and the
``hmaxima`` method. Also the fragmented dying MSCs: found (one object per dying cell),
split and false objects.

Part 2, real nuclei with manual masks in ``../shared/data`` (skipped if absent):
BBBC039 (8 images; pixel size not given by the collection, 0.5 um assumed) and the
DSB2018 image shipped with stardist; per image F1 and count error, classic vs hmaxima.
Plus peak memory (max RSS) of this process.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from lungtrack.config import Config, NucleiSegmentation
from lungtrack.segment import segment_corrected, segment_image
from lungtrack.segment.background import correct_background
from lungtrack.segment.metrics import match_objects
from lungtrack.segment.nuclei import segment_nuclei
from lungtrack.synthetic import simulate_section

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = {"nuclei": "DAPI", "msc": "GFP", "macrophage": "CD68"}

#: Difficulty levels: name -> simulate_section keywords (defaults elsewhere).
LEVELS = {
    "default": {},
    "dense (60 MSC)": {"n_msc": 60, "n_macrophage": 50},
    "sparse (5 MSC)": {"n_msc": 5, "n_macrophage": 10},
    "noisy (read 40)": {"read_noise": 40.0},
    "very noisy (read 80, dim)": {"read_noise": 80.0, "illumination": 0.6},
    "no clusters": {"frac_msc_clustered": 0.0},
    "clustered (80%)": {"frac_msc_clustered": 0.8},
    "dying (8 fragmented)": {"n_msc_fragmented": 8},
    "z-stack 12x192x192, z 2 um": {"shape": (12, 192, 192), "z_step_um": 2.0, "n_msc": 8, "n_macrophage": 10,
                                   "n_msc_fragmented": 1},
}

#: Same values as tests/test_segment_accuracy.py.
BBBC039_PX_UM = 0.5
BBBC039_NUCLEI = NucleiSegmentation(method="hmaxima", background="tophat", background_radius_um=10.0,
                                    threshold="li", min_signal_ratio=0, smoothing_sigma_um=0.5,
                                    seed_h_um=0.5, seed_smoothing_um=0.5, min_diameter_um=3.0, max_diameter_um=30.0)
BBBC039_CLASSIC = NucleiSegmentation(min_signal_ratio=0, background_radius_um=10.0, min_diameter_um=3.0,
                                     max_diameter_um=30.0)


def _count_err(m):
    return (m["n_pred"] - m["n_true"]) / m["n_true"] if m["n_true"] else float("nan")


def _fragments(s, seg):
    """(dying cells found as exactly one object, dying cells split, objects on no dying cell)."""
    truth, pred = s.labels["msc_fragments"], seg["msc_fragmented"]
    found = split = false = 0
    for k in np.unique(truth[truth > 0]):
        objs = np.unique(pred[(truth == k) & (pred > 0)])
        found += objs.size == 1
        split += objs.size > 1
    for k in np.unique(pred[pred > 0]):
        false += not np.any(truth[pred == k] > 0)
    return found, split, false, int(len(np.unique(truth[truth > 0])))


def simulator_table(seeds: int) -> None:
    cfg_classic = Config.from_dict({"channels": CHANNELS})
    cfg_hmax = Config.from_dict({"channels": CHANNELS, "segment": {"nuclei": {"method": "hmaxima"}}})
    cfg_seed = Config.from_dict({"channels": CHANNELS, "segment": {"msc": {"seeds": "nuclei"},
                                                                   "macrophage": {"seeds": "nuclei"}}})
    print(f"Simulator: 384x384 px at 1 um, {seeds} seeds per level; mean F1 at IoU 0.5 / mean count error.\n"
          "MSC/mac: distance seeds (default); MSCn/macn: seeds: nuclei; nuc: classic; nucH: method hmaxima.")
    head = (f"{'level':28s} {'MSC F1':>7s} {'cnt':>6s} {'MSCn F1':>7s} {'mac F1':>7s} {'cnt':>6s} {'macn F1':>7s} "
            f"{'nuc F1':>7s} {'cnt':>6s} {'nucH F1':>7s} {'cnt':>6s} {'dying found/split/false/true':>29s} "
            f"{'s/img':>6s}")
    print(head)
    print("-" * len(head))
    for name, kw in LEVELS.items():
        acc = {k: [] for k in ("msc", "mac", "nuc", "nuch", "mscn", "macn",
                               "msc_c", "mac_c", "nuc_c", "nuch_c", "mscn_c", "macn_c")}
        frag = np.zeros(4, int)
        dt = 0.0
        for seed in range(seeds):
            s = simulate_section(seed=1000 + seed, **kw)
            t0 = time.perf_counter()
            seg = segment_image(s.image, cfg_classic, spacing_um=s.spacing_um, channel_names=s.channel_names)
            dt += time.perf_counter() - t0
            seg_h = segment_image(s.image, cfg_hmax, spacing_um=s.spacing_um, channel_names=s.channel_names,
                                  roles=("tissue", "nuclei"))
            seg_n = segment_image(s.image, cfg_seed, spacing_um=s.spacing_um, channel_names=s.channel_names)
            for key, truth, pred in (("msc", s.labels["msc"], seg["msc"]),
                                     ("mac", s.labels["macrophage"], seg["macrophage"]),
                                     ("nuc", s.labels["nuclei"], seg["nuclei"]),
                                     ("nuch", s.labels["nuclei"], seg_h["nuclei"]),
                                     ("mscn", s.labels["msc"], seg_n["msc"]),
                                     ("macn", s.labels["macrophage"], seg_n["macrophage"])):
                m = match_objects(truth, pred)
                acc[key].append(m["f1"])
                acc[key + "_c"].append(_count_err(m))
            frag += np.asarray(_fragments(s, seg))
        mean = {k: float(np.mean(v)) for k, v in acc.items()}
        print(f"{name:28s} {mean['msc']:7.3f} {mean['msc_c']:+6.2f} {mean['mscn']:7.3f} {mean['mac']:7.3f} "
              f"{mean['mac_c']:+6.2f} {mean['macn']:7.3f} "
              f"{mean['nuc']:7.3f} {mean['nuc_c']:+6.2f} {mean['nuch']:7.3f} {mean['nuch_c']:+6.2f} "
              f"{'%d/%d/%d/%d' % tuple(frag):>29s} {dt / seeds:6.2f}")
    print()


def _nuclei_rows(pairs, px):
    sp = (px, px)
    rows = []
    for name, img, truth in pairs:
        t0 = time.perf_counter()
        h = segment_nuclei(correct_background(img, sp, method="tophat", radius_um=BBBC039_NUCLEI.background_radius_um),
                           sp, BBBC039_NUCLEI)
        dt = time.perf_counter() - t0
        c = segment_corrected(correct_background(img, sp, method="opening", radius_um=10.0), sp, BBBC039_CLASSIC)
        mh, mc = match_objects(truth, h), match_objects(truth, c)
        rows.append((name, mh["n_true"], mc["f1"], _count_err(mc), mh["f1"], _count_err(mh), mh["mean_matched_iou"], dt))
    return rows


def real_table(data: Path) -> None:
    import tifffile

    bb = data / "nuclei_bbbc039"
    if not bb.is_dir():
        print(f"real nuclei: {data} not found; skipped")
        return
    pairs = [(f.name[:14], tifffile.imread(f), tifffile.imread(bb / "labels_derived" / f.name))
             for f in sorted((bb / "images").glob("*.tif"))]
    print(f"Real nuclei, manual masks (pixel size {BBBC039_PX_UM} um assumed); classic path vs hmaxima method")
    head = (f"{'image':16s} {'n_true':>6s} {'classic F1':>10s} {'cnt':>6s} {'hmaxima F1':>10s} {'cnt':>6s} "
            f"{'IoU':>5s} {'s':>5s}")
    print(head)
    print("-" * len(head))
    rows = _nuclei_rows(pairs, BBBC039_PX_UM)
    for r in rows:
        print(f"{r[0]:16s} {r[1]:6d} {r[2]:10.3f} {r[3]:+6.2f} {r[4]:10.3f} {r[5]:+6.2f} {r[6]:5.2f} {r[7]:5.2f}")
    f1c, f1h = np.mean([r[2] for r in rows]), np.mean([r[4] for r in rows])
    print(f"{'BBBC039 mean':16s} {sum(r[1] for r in rows):6d} {f1c:10.3f} {'':6s} {f1h:10.3f}   "
          f"(floor 0.85: {'PASS' if f1h >= 0.85 else 'FAIL'})")
    sd = data / "nuclei_stardist"
    if sd.is_dir():
        r = _nuclei_rows([("stardist img2d", tifffile.imread(sd / "img2d.tif"), tifffile.imread(sd / "mask2d.tif"))],
                         BBBC039_PX_UM)[0]
        print(f"{r[0]:16s} {r[1]:6d} {r[2]:10.3f} {r[3]:+6.2f} {r[4]:10.3f} {r[5]:+6.2f} {r[6]:5.2f} {r[7]:5.2f}")
        # 3D synthetic nuclei (stardist's img3d, 51 nuclei, low contrast, spacing not given: 1 um assumed)
        img, truth = tifffile.imread(sd / "img3d.tif"), tifffile.imread(sd / "mask3d.tif")
        p3 = NucleiSegmentation(method="hmaxima", background="none", threshold="otsu", min_signal_ratio=0,
                                smoothing_sigma_um=0.5, seed_h_um=0.1, seed_smoothing_um=0.5, min_diameter_um=3.0,
                                max_diameter_um=30.0)
        sp3 = (1.0, 1.0, 1.0)
        m3 = match_objects(truth, segment_nuclei(np.asarray(img, np.float32), sp3, p3))
        c3 = match_objects(truth, segment_corrected(np.asarray(img, np.float32), sp3, NucleiSegmentation(
            min_signal_ratio=0, threshold="otsu", smoothing_sigma_um=0.5, min_diameter_um=3.0, max_diameter_um=30.0)))
        print(f"{'stardist img3d':16s} {m3['n_true']:6d} {c3['f1']:10.3f} {_count_err(c3):+6.2f} {m3['f1']:10.3f} "
              f"{_count_err(m3):+6.2f} {m3['mean_matched_iou']:5.2f}")
    print()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="simulated sections per difficulty level")
    ap.add_argument("--data", default=os.environ.get("LUNGTRACK_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--quick", action="store_true", help="1 seed, real images only for BBBC039")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    simulator_table(1 if a.quick else a.seeds)
    real_table(Path(a.data))
    print(f"total {time.perf_counter() - t0:.1f} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
