"""Time-lapse tracking, contacts, engulfment and MSC survival against exact truth and reference values."""
from __future__ import annotations

import contextlib
import io as _io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from lungtrack.cli import main
from lungtrack.config import Config, RoleTracking
from lungtrack.io import LungtrackInputError, read_image, write_image
from lungtrack.synthetic import save_timelapse, simulate_timelapse
from lungtrack.track import (
    TRACK_ROLES,
    contact_raster_figure,
    cumulative_incidence,
    frame_interval_min,
    kaplan_meier,
    link_objects,
    logrank_test,
    match_truth,
    median_survival,
    survival_figure,
    survival_table,
    track_image,
    track_movie,
    track_objects,
    tracking_accuracy,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"channels": {"nuclei": None, "msc": "GFP", "macrophage": "CD68"}}
TRUTH_FATE = {"engulfed": "fragmented", "fragmented": "fragmented", "contact_censored": "censored",
              "censored": "censored", "disappeared": "disappeared"}


@pytest.fixture(scope="module", params=[0, 3])
def tracked(request):
    tl = simulate_timelapse(seed=request.param)
    res = track_movie(tl.image, CONFIG, spacing_um=tl.spacing_um, frame_interval_min=tl.frame_interval_min,
                      channel_names=tl.channel_names, use_dask=True)
    truth = match_truth(res.tracks, {r: tl.labels[r] for r in TRACK_ROLES}, tl.spacing_um)
    to_truth = res.tracks.assign(truth=truth).groupby("track_id")["truth"].agg(lambda s: s.mode().iloc[0])
    return tl, res, to_truth


# --- synthetic truth ------------------------------------------------------------------------------

def test_synthetic_timelapse_truth_is_consistent():
    tl = simulate_timelapse(seed=1)
    T = tl.image.shape[0]
    m = tl.mscs.set_index("track_id")
    for tid, r in m.iterrows():
        present = [(tl.labels["msc"][t] == tid).any() for t in range(T)]
        assert present == [t <= r.last_intact_frame for t in range(T)]
    # Contact truth: a recruited macrophage overlaps its MSC by 1 um exactly in the contact frames.
    for c in tl.contacts.itertuples():
        for t in range(c.onset_frame, c.end_frame + 1):
            grown = tl.labels["msc"][t] == c.msc_track_id
            assert (grown & (tl.labels["macrophage"][t] == c.macrophage_track_id)).any(), (c, t)
        if c.onset_frame > 0:
            prev = tl.tracks.query("frame == @c.onset_frame - 1").set_index("track_id")
            gap = np.hypot(*(prev.loc[c.msc_track_id, ["y_um", "x_um"]].to_numpy(float)
                             - prev.loc[c.macrophage_track_id, ["y_um", "x_um"]].to_numpy(float))) - 16
            assert gap == pytest.approx(4.0 - 1.0)  # one 4 um step before touching (1 um overlap)
    # Engulfment: MSC puncta lie inside the engulfing macrophage from engulf_frame on.
    for r in m[m.fate == "engulfed"].itertuples():
        inside = (tl.labels["msc_puncta"][r.engulf_frame] == r.Index) & (tl.labels["macrophage"][r.engulf_frame] == r.engulfed_by)
        assert inside.sum() == (tl.labels["msc_puncta"][r.engulf_frame] == r.Index).sum() > 0
        at_fragmentation = tl.labels["msc_puncta"][r.fragment_frame] == r.Index  # still outside the macrophage
        assert at_fragmentation.any() and not (at_fragmentation & (tl.labels["macrophage"][r.fragment_frame] > 0)).any()


# --- tracking against truth -------------------------------------------------------------------------

def test_tracking_accuracy_on_default_movie(tracked):
    # Measured on seeds 0-5 (bench/tracking_accuracy.py): every score 1.0; floor asserted here.
    tl, res, _ = tracked
    acc = tracking_accuracy(res.tracks, {r: tl.labels[r] for r in TRACK_ROLES}, tl.spacing_um)
    assert acc["det"] == 1.0
    assert acc["link_recall"] >= 0.99 and acc["link_precision"] >= 0.99
    assert acc["track_purity"] >= 0.99 and acc["tra"] >= 0.99
    assert acc["n_truth_objects"] == len(tl.tracks)


def test_tracking_floor_on_a_crowded_fast_movie():
    # 12 wandering macrophages at 13 um/frame, 4 um apart at closest (bench: seeds 0-4 link recall
    # 0.993-1.0, purity 0.947-1.0). Floors: link recall >= 0.99, purity >= 0.94.
    tl = simulate_timelapse((256, 256), n_walkers=12, speed_um_per_frame=13, clearance_um=4, seed=0)
    res = track_movie(tl.image, CONFIG, spacing_um=tl.spacing_um, frame_interval_min=tl.frame_interval_min,
                      channel_names=tl.channel_names, use_dask=True)
    acc = tracking_accuracy(res.tracks, {r: tl.labels[r] for r in TRACK_ROLES}, tl.spacing_um)
    assert acc["det"] == 1.0 and acc["link_recall"] >= 0.99 and acc["track_purity"] >= 0.94
    assert acc["n_edges_to_add"] >= 1  # not trivially perfect: this movie has identity swaps


def test_fates_survival_and_contacts_equal_truth(tracked):
    tl, res, to_truth = tracked
    m = res.summary[res.summary.role == "msc"].assign(truth=lambda d: d.track_id.map(to_truth)).set_index("truth")
    tm = tl.mscs.set_index("track_id")
    assert sorted(m.index) == sorted(tm.index)
    assert (m.loc[tm.index, "fate"].to_numpy() == tm.fate.map(TRUTH_FATE).to_numpy()).all()
    assert (m.loc[tm.index, "end_frame"].to_numpy() == tm.last_intact_frame.to_numpy()).all()
    # Survival times: loss dated at the first frame without the MSC; censored at the last frame.
    s = res.survival.assign(truth=lambda d: d.track_id.map(to_truth)).set_index("truth").loc[tm.index]
    lost = tm.last_intact_frame < tl.image.shape[0] - 1
    want = np.where(lost, tm.last_intact_frame + 1, tm.last_intact_frame) * tl.frame_interval_min
    np.testing.assert_array_equal(s.duration_min.to_numpy(), want)
    np.testing.assert_array_equal(s.event.to_numpy(), lost.to_numpy())
    assert s.left_censored.all()  # every simulated MSC is there in frame 0
    # Contact events: same MSC, macrophage, onset, end and engulfment; engulfment frame exact.
    got = res.contacts.assign(msc=lambda d: d.msc_track_id.map(to_truth), mac=lambda d: d.macrophage_track_id.map(to_truth))
    got = {(r.msc, r.mac, r.onset_frame, r.end_frame, r.engulfment, r.engulfment_frame) for r in got.itertuples()}
    want = {(c.msc_track_id, c.macrophage_track_id, c.onset_frame, c.end_frame, c.engulfment,
             int(tm.loc[c.msc_track_id, "engulf_frame"]) if c.engulfment else -1) for c in tl.contacts.itertuples()}
    assert got == want
    dur = res.contacts.duration_min.sort_values().to_numpy()
    np.testing.assert_array_equal(dur, np.sort((tl.contacts.end_frame - tl.contacts.onset_frame + 1).to_numpy() * 10.0))
    # First-contact times in the survival table are the truth onsets (competing: lost before contact).
    ct = tl.contacts.set_index("msc_track_id")
    for truth_id, r in s.iterrows():
        if truth_id in ct.index:
            assert (r.contact_event, r.contact_min) == (1, ct.loc[truth_id, "onset_frame"] * 10.0)
        else:
            assert r.contact_event == (2 if r.event else 0)


def test_motion_measures_of_a_recruited_macrophage(tracked):
    tl, res, to_truth = tracked
    c = tl.contacts.iloc[0]
    pred = to_truth[to_truth == c.macrophage_track_id].index[0]
    row = res.summary.set_index("track_id").loc[pred]
    truth = tl.tracks[tl.tracks.track_id == c.macrophage_track_id]
    p = truth[["y_um", "x_um"]].to_numpy()
    path = np.hypot(*np.diff(p, axis=0).T).sum()
    assert row.path_length_um == pytest.approx(path, abs=0.1 * len(p))  # centroid error < 0.1 um per frame
    assert row.displacement_um == pytest.approx(np.hypot(*(p[-1] - p[0])), abs=1.0)
    assert row.speed_um_per_min == pytest.approx(row.path_length_um / row.dwell_min)
    assert 0 <= row.straightness <= 1 and row.fate == "censored" and row.dwell_min == 230.0


# --- TrackMate reference (laptrack's BSD-3 test data) ---------------------------------------------

TRACKMATE_CASES = {
    "without_gap_closing": dict(gap_closing_max_distance_um=None),
    "with_gap_closing": dict(gap_closing_max_distance_um=15, gap_closing_max_frames=2),
    "with_splitting": dict(gap_closing_max_distance_um=15, splitting_max_distance_um=15),
    "with_merging": dict(gap_closing_max_distance_um=15, merging_max_distance_um=15),
    "with_splitting_merging": dict(gap_closing_max_distance_um=15, splitting_max_distance_um=15,
                                   merging_max_distance_um=15, alternative_cost_percentile_interpolation="higher"),
}


@pytest.mark.parametrize("case", list(TRACKMATE_CASES))
def test_trackmate_edge_sets_reproduced(shared_data, case, tmp_path):
    d = shared_data / "tracking_trackmate_reference" / "tests_data"
    spots = pd.read_csv(d / f"trackmate_tracks_{case}_spots.csv", index_col=0).set_index("id")
    ref_edges = pd.read_csv(d / f"trackmate_tracks_{case}_edges.csv", index_col=0)
    frame = spots["frame"]
    want = {(a, b) if frame[a] < frame[b] else (b, a) for a, b in ref_edges[["spot_source_id", "spot_target_id"]].to_numpy()}
    assert len(want) > 100
    _, edges = link_objects(spots, RoleTracking(max_distance_um=15, **TRACKMATE_CASES[case]),
                            coordinate_cols=("position_x", "position_y"))
    assert set(map(tuple, edges.to_numpy().tolist())) == want
    # The same through the entry point of `lungtrack track` (track_objects, parameters from a YAML config):
    # laptrack's edges come back, both parents of a merge included.
    cfg = tmp_path / "config.yaml"
    cfg.write_text(Config(track={"msc": dict(max_distance_um=15, **TRACKMATE_CASES[case])}).to_yaml())
    objs = pd.DataFrame({"frame": frame.to_numpy(), "role": "msc", "label": spots.index.to_numpy(),
                         "y_um": spots["position_y"].to_numpy(), "x_um": spots["position_x"].to_numpy()})
    tracks, edges = track_objects(objs, str(cfg), frame_interval_min=1)
    lab = tracks["label"].to_numpy()
    assert {(lab[a], lab[b]) for a, b in edges[["source", "target"]].to_numpy()} == want


def test_split_gives_parent_and_fragmented_fate():
    from lungtrack.track import track_summary

    # One MSC at (50, 50) for 3 frames, then two pieces 4 um either side for 3 frames.
    rows = [dict(frame=f, role="msc", label=1, y_um=50.0, x_um=50.0) for f in range(3)]
    rows += [dict(frame=f, role="msc", label=k + 1, y_um=50.0, x_um=50.0 + s) for f in range(3, 6)
             for k, s in enumerate((-4.0, 4.0))]
    cfg = {"track": {"msc": {"splitting_max_distance_um": 6}}}
    tracks, edges = track_objects(pd.DataFrame(rows), cfg, frame_interval_min=5)
    assert tracks.track_id.nunique() == 3 and len(edges) == 2 + 2 + 2 * 2
    summ = track_summary(tracks, n_frames=8, frame_interval_min=5).set_index("track_id")
    parent = summ[summ.start_frame == 0].iloc[0]
    assert parent.fate == "fragmented" and parent.dwell_min == 10.0
    assert (summ[summ.start_frame == 3].parent_track_id == parent.name).all()


# --- survival: textbook values --------------------------------------------------------------------

# Freireich et al. 1963 leukaemia remission times (weeks), as tabulated in Kleinbaum & Klein,
# Survival Analysis: A Self-Learning Text (3rd ed., 2012), ch. 2: 6-MP group (0 = censored) and placebo.
MP_T = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
MP_E = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
PL_T = [1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23]


def test_kaplan_meier_textbook_values():
    km = kaplan_meier(MP_T, np.array(MP_E, bool)).set_index("time")
    # Kleinbaum & Klein (2012), ch. 2: KM of the 6-MP group.
    want = {6: 0.8571, 7: 0.8067, 10: 0.7529, 13: 0.6902, 16: 0.6275, 22: 0.5378, 23: 0.4482}
    for t, s in want.items():
        assert km.loc[t, "survival"] == pytest.approx(s, abs=5e-5)
    # Greenwood standard error at 6 weeks by hand: 0.8571 x sqrt(3 / (21 x 18)) = 0.0764.
    assert km.loc[6, "std_err"] == pytest.approx(0.0764, abs=5e-5)
    # log(-log) band at 6 weeks by hand: 0.8571 ** exp(-/+ 1.96 x 0.0891 / 0.1542) = 0.6197, 0.9516.
    assert (km.loc[6, "ci_low"], km.loc[6, "ci_high"]) == pytest.approx((0.6197, 0.9516), abs=5e-5)
    assert km.loc[32, "n_censored"] == 2 and km.loc[35, "n_at_risk"] == 1
    assert median_survival(kaplan_meier(MP_T, np.array(MP_E, bool)))["median"] == 23
    med = median_survival(kaplan_meier(PL_T, np.ones(21, bool)))
    assert med["median"] == 8 and med["ci_low"] <= 8 <= med["ci_high"] < math.inf
    assert median_survival(kaplan_meier(MP_T, np.array(MP_E, bool)))["ci_high"] == math.inf  # never reaches 0.5


def test_logrank_textbook_value():
    r = logrank_test(MP_T + PL_T, np.array(MP_E + [1] * 21, bool), ["6-MP"] * 21 + ["placebo"] * 21)
    # Kleinbaum & Klein ch. 2: O = 9 / 21, E = 19.25 / 10.75, log-rank chi-square 16.79 (1 df).
    assert r["statistic"] == pytest.approx(16.79, abs=5e-3)
    assert r["expected"]["6-MP"] == pytest.approx(19.25, abs=5e-3) and r["observed"]["placebo"] == 21
    assert r["p_value"] == pytest.approx(4.17e-5, rel=1e-2) and r["df"] == 1
    same = logrank_test([1, 2, 3, 1, 2, 3], [True] * 6, list("aaabbb"))
    assert same["statistic"] == pytest.approx(0.0) and same["p_value"] == pytest.approx(1.0)
    three = logrank_test(MP_T + PL_T + PL_T, np.array(MP_E + [1] * 42, bool), ["a"] * 21 + ["b"] * 21 + ["c"] * 21)
    assert three["df"] == 2 and three["statistic"] > 16


def test_censoring_and_cumulative_incidence():
    # All censored: survival stays 1; a censored time removes a subject from the risk set.
    km = kaplan_meier([2, 4, 6], [False] * 3)
    assert km.survival.tolist() == [1.0] * 4
    km = kaplan_meier([1, 2, 3], [False, True, True]).set_index("time")
    assert km.loc[2, "survival"] == 0.5 and km.loc[2, "n_at_risk"] == 2 and km.loc[3, "survival"] == 0
    # Without competing events the cumulative incidence is 1 - KM.
    d, e = np.array(MP_T), np.array(MP_E)
    ci = cumulative_incidence(d, e).set_index("time")
    km = kaplan_meier(d, e.astype(bool)).set_index("time")
    np.testing.assert_allclose(ci.incidence, 1 - km.survival.loc[ci.index], atol=1e-12)
    # Aalen-Johansen by hand: times 1 (cause), 2 (competing), 3 (cause), 4 (censored):
    # 1/4; S = 3/4 -> 1/2 after t=2; + 1/2 x 1/2 at t=3 = 0.5.
    ci = cumulative_incidence([1, 2, 3, 4], [1, 2, 1, 0])
    assert ci.incidence.iloc[-1] == pytest.approx(0.5)
    # Left censoring flagged; right-censored MSCs are not events; loss dated at the next frame.
    summ = pd.DataFrame({"track_id": [1, 2, 3], "role": "msc", "start_frame": [0, 4, 0], "end_frame": [5, 9, 9],
                         "left_censored": [True, False, True], "right_censored": [False, True, True]})
    contacts = pd.DataFrame({"msc_track_id": [1, 2], "onset_frame": [3, 6], "engulfment": [True, False],
                             "engulfment_frame": [7, -1]})
    st = survival_table(summ, contacts, frame_interval_min=10).set_index("track_id")
    assert st.duration_min.tolist() == [60.0, 50.0, 90.0] and st.event.tolist() == [True, False, False]
    assert st.left_censored.tolist() == [True, False, True]
    assert st.contact_min.tolist() == [30.0, 20.0, 90.0] and st.contact_event.tolist() == [1, 1, 0]
    assert st.engulfment_event.tolist() == [1, 0, 0] and st.engulfment_min[1] == 70.0


# --- I/O, CLI, figures, bad input -----------------------------------------------------------------

def test_frame_interval_from_ome_and_imagej(tmp_path):
    tl = simulate_timelapse(seed=0)
    save_timelapse(tmp_path / "a.ome.tif", tl)
    img = read_image(tmp_path / "a.ome.tif")
    assert img.data.shape == (24, 2, 1, 192, 192) and frame_interval_min(img) == 10.0
    np.testing.assert_array_equal(img.data[5].compute()[:, 0], tl.image[5])
    tl.image = tl.image[:3, :, :96, :96]
    tifffile.imwrite(tmp_path / "b.tif", tl.image, imagej=True, resolution=(1.0, 1.0),
                     metadata={"axes": "TCYX", "unit": "um", "finterval": 2.0, "tunit": "min"})
    assert frame_interval_min(read_image(tmp_path / "b.tif")) == 2.0
    tifffile.imwrite(tmp_path / "c.tif", tl.image, imagej=True, resolution=(1.0, 1.0),
                     metadata={"axes": "TCYX", "unit": "um", "finterval": 30.0})
    assert frame_interval_min(read_image(tmp_path / "c.tif")) == 0.5  # seconds by default


def test_bad_input_errors(tmp_path):
    tl = simulate_timelapse(seed=0)
    tl.image = tl.image[:3, :, :96, :96]
    write_image(tmp_path / "nodt.ome.tif", tl.image, axes="TCYX", spacing_um=(1.0, 1.0, 1.0),
                channel_names=["GFP", "CD68"])
    with pytest.raises(LungtrackInputError, match=r"nodt.ome.tif: no frame interval.*frame_interval_min"):
        track_image(tmp_path / "nodt.ome.tif", tmp_path / "out", CONFIG)
    write_image(tmp_path / "still.ome.tif", tl.image[0], axes="CYX", spacing_um=(1.0, 1.0, 1.0),
                channel_names=["GFP", "CD68"])
    with pytest.raises(LungtrackInputError, match=r"still.ome.tif: has no time axis"):
        track_image(tmp_path / "still.ome.tif", tmp_path / "out", CONFIG, frame_interval_min=5)
    with pytest.raises(LungtrackInputError, match="no column"):
        link_objects(pd.DataFrame({"frame": [0]}), coordinate_cols=("y_um", "x_um"))
    err = _io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["track", str(tmp_path / "nodt.ome.tif"), "--out", str(tmp_path / "o")]) == 2
    assert "no frame interval" in err.getvalue()


def test_cli_track_on_sample_timelapse(tmp_path):
    sample = ROOT / "sample_data" / "timelapse"
    out = tmp_path / "res"
    buf = _io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["track", str(sample / "timelapse.ome.tif"), "--config", str(sample / "config.yaml"),
                   "--out", str(out)])
    assert rc == 0 and "Tracked 6 MSCs and 7 macrophages over 24 frames" in buf.getvalue()
    tracks = pd.read_csv(out / "tracks.csv")
    assert list(tracks.columns[:7]) == ["track_id", "frame", "t_min", "role", "label", "y_um", "x_um"]
    truth = pd.read_csv(sample / "truth" / "tracks.csv")
    assert len(tracks) == len(truth) and (tracks.t_min == tracks.frame * 10.0).all()
    summ = pd.read_csv(out / "track_summary.csv")
    assert {"track_id", "role", "start_min", "end_min", "dwell_min", "n_contacts", "fate"} <= set(summ.columns)
    mscs = pd.read_csv(sample / "truth" / "mscs.csv")
    assert sorted(summ[summ.role == "msc"].end_frame) == sorted(mscs.last_intact_frame)
    assert len(pd.read_csv(out / "contacts.csv")) == len(pd.read_csv(sample / "truth" / "contacts.csv"))
    assert (out / "figures" / "survival.png").stat().st_size > 1000


def test_figures(tracked):
    tl, res, _ = tracked
    fig = survival_figure({"BM": res.survival, "UC": res.survival.assign(duration_min=res.survival.duration_min * 2)})
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    med = median_survival(kaplan_meier(res.survival.duration_min, res.survival.event))["median"]
    assert len(texts) == 2 and f"median {med / 60:.3g} h" in texts[0]
    assert len(ax.collections) == 2  # one confidence band per group
    fig = contact_raster_figure(res.summary, res.contacts, n_frames=res.n_frames,
                                frame_interval_min=res.frame_interval_min)
    assert len(fig.axes[0].get_yticks()) == (res.summary.role == "msc").sum()


def test_dask_equals_plain_loop_and_empty_frames():
    from lungtrack.track import analyse_frames

    tl = simulate_timelapse(seed=2)
    movie = tl.image[8:14]
    kw = dict(spacing_um=tl.spacing_um, channel_names=tl.channel_names)
    a = analyse_frames(movie, CONFIG, use_dask=True, **kw)
    b = analyse_frames(movie, CONFIG, use_dask=False, **kw)
    for k in ("objects", "contacts", "fragments"):
        pd.testing.assert_frame_equal(a[k], b[k])
    assert len(a["objects"]) == ((tl.tracks.frame >= 8) & (tl.tracks.frame < 14)).sum()
    # Frames without any object of a role (here: no MSC at all) link without error.
    objs = a["objects"][a["objects"].role == "macrophage"]
    tracks, _ = track_objects(objs, CONFIG, frame_interval_min=10)
    assert tracks.track_id.nunique() == tl.tracks[tl.tracks.role == "macrophage"].track_id.nunique()
    assert (tracks.role == "macrophage").all()


def _timelapse_3d(tl, z_um=(-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0)):
    """The 2D truth movie rendered as spheres in (T, C, Z, Y, X) planes 2 um apart (cells centred at z = 6 um)."""
    from scipy import ndimage as ndi

    T = tl.image.shape[0]
    rng = np.random.default_rng(0)
    mov = np.zeros((T, 2, len(z_um)) + tl.image.shape[2:], np.float32)
    for t in range(T):
        for c, (role, r, amp, base) in enumerate((("msc", 10.0, 1400, 150), ("macrophage", 6.0, 1000, 120))):
            lab = tl.labels[role][t] > 0
            depth = ndi.distance_transform_edt(lab)  # r - distance from the centre, inside a disk
            for k, d in enumerate(z_um):
                disk = lab & (depth >= r - np.sqrt(max(r * r - d * d, 0.0))) if abs(d) < r else np.zeros_like(lab)
                img = amp * disk.astype(np.float32)
                if role == "msc" and abs(d) <= 2:  # puncta are small: three planes
                    img += amp * (tl.labels["msc_puncta"][t] > 0)
                mov[t, c, k] = base + ndi.gaussian_filter(img, 0.8)
    mov += rng.normal(0, 30, mov.shape).astype(np.float32)
    return np.clip(np.rint(mov), 0, 65535).astype(np.uint16)


def test_tczyx_timelapse_file_tracks_like_the_truth(tmp_path):
    # A (T, C, Z, Y, X) OME-TIFF with TimeIncrement: read, segment in 3D per frame, link in 3D (z_um).
    tl = simulate_timelapse(seed=0)
    mov = _timelapse_3d(tl)
    meta = {"axes": "TCZYX", "PhysicalSizeX": 1.0, "PhysicalSizeY": 1.0, "PhysicalSizeZ": 2.0,
            "TimeIncrement": 600.0, "TimeIncrementUnit": "s", "Channel": {"Name": ["GFP", "CD68"]}}
    tifffile.imwrite(tmp_path / "movie3d.ome.tif", mov, ome=True, metadata=meta, photometric="minisblack")
    res = track_image(tmp_path / "movie3d.ome.tif", tmp_path / "out", CONFIG, figures=False)
    assert res.frame_interval_min == 10.0 and res.n_frames == 24
    assert {"z_um", "volume_um3"} <= set(res.tracks.columns) and "area_um2" not in res.tracks.columns
    assert res.tracks.z_um.between(5.5, 6.5).all()  # sphere centres at z = 6 um
    acc = tracking_accuracy(res.tracks, {r: tl.labels[r] for r in TRACK_ROLES}, tl.spacing_um)
    assert acc["det"] == 1.0 and acc["link_recall"] == 1.0 and acc["link_precision"] == 1.0
    assert res.summary[res.summary.role == "msc"].fate.value_counts().to_dict() == \
        {"fragmented": 3, "censored": 2, "disappeared": 1}
    assert len(res.contacts) == len(tl.contacts) and res.contacts.engulfment.sum() == tl.contacts.engulfment.sum()
    assert sorted(res.contacts.onset_frame) == sorted(tl.contacts.onset_frame)


def test_cumulative_incidence_of_contact_and_engulfment_equals_truth(tmp_path):
    sample = ROOT / "sample_data" / "timelapse"
    track_image(sample / "timelapse.ome.tif", tmp_path, sample / "config.yaml", figures=False)
    ci = pd.read_csv(tmp_path / "cumulative_incidence.csv")
    mscs = pd.read_csv(sample / "truth" / "mscs.csv")
    contacts = pd.read_csv(sample / "truth" / "contacts.csv")
    n = len(mscs)
    c = ci[ci.event == "contact"]
    # Every truth contact onset is a step of 1/n (no MSC is lost before its contact in this movie).
    steps = c[c.n_events > 0]
    assert sorted(steps.time_min) == sorted(contacts.onset_frame * 10.0)
    assert c.incidence.iloc[-1] == pytest.approx(len(contacts) / n)
    e = ci[ci.event == "engulfment"]
    assert e.incidence.iloc[-1] == pytest.approx((mscs.fate == "engulfed").sum() / n)
    assert sorted(e[e.n_events > 0].time_min) == sorted(mscs.loc[mscs.fate == "engulfed", "engulf_frame"] * 10.0)
    edges = pd.read_csv(tmp_path / "track_edges.csv")
    assert len(edges) == len(pd.read_csv(tmp_path / "tracks.csv")) - 13  # no gaps, no splits: n_objects - n_tracks


def test_cli_survival_logrank_between_groups_textbook_value(tmp_path):
    # `lungtrack survival GROUP=FOLDER ...` on survival.csv files holding the Freireich remission times.
    for name, t, e in (("mp", MP_T, MP_E), ("pl", PL_T, [1] * 21)):
        (tmp_path / name).mkdir()
        pd.DataFrame({"track_id": range(1, 22), "duration_min": t, "event": np.array(e, bool),
                      "left_censored": True, "contact_min": t, "contact_event": 0, "engulfment_min": t,
                      "engulfment_event": 0}).to_csv(tmp_path / name / "survival.csv", index=False)
    buf = _io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["survival", f"6-MP={tmp_path / 'mp'}", f"placebo={tmp_path / 'pl'}", "--out", str(tmp_path / "cmp")])
    assert rc == 0 and "log-rank chi2 = 16.79" in buf.getvalue()
    lr = pd.read_csv(tmp_path / "cmp" / "logrank.csv").iloc[0]
    assert lr.statistic == pytest.approx(16.79, abs=5e-3) and lr.df == 1
    g = pd.read_csv(tmp_path / "cmp" / "survival_by_group.csv").set_index("group")
    assert g.loc["6-MP", "median_min"] == 23 and g.loc["placebo", "median_min"] == 8
    assert g.loc["6-MP", "n_lost"] == 9 and g.loc["placebo", "n_msc"] == 21
    assert (tmp_path / "cmp" / "figures" / "survival_by_group.png").stat().st_size > 1000
    # A folder without survival.csv, or an argument without GROUP=, is an error that says what to do.
    err = _io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["survival", f"BM={tmp_path}", "--out", str(tmp_path / "x")]) == 2
        assert main(["survival", str(tmp_path / "mp"), "--out", str(tmp_path / "x")]) == 2
    assert "survival.csv: not found; run `lungtrack track" in err.getvalue() and "GROUP=FOLDER" in err.getvalue()
