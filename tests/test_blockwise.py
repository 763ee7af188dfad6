"""Chunked segmentation equals whole-image segmentation (np.array_equal, same label numbers)."""
from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from lungtrack.config import Config, RoleSegmentation
from lungtrack.io import LungtrackInputError, read_image
from lungtrack.measure import measure_objects
from lungtrack.segment import blockwise as bw
from lungtrack.segment import classic
from lungtrack.synthetic import simulate_section

CHUNKINGS_2D = [(7, 13), (1, 200), (200, 1), (16, 16), (33, 50), (64, 200)]


def _random_mask(shape, frac, seed):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape), 1.0) > frac


@pytest.mark.parametrize("chunks", CHUNKINGS_2D)
@pytest.mark.parametrize("connectivity", [1, 2])
def test_label_2d_equals_scipy_bit_for_bit(chunks, connectivity):
    m = _random_mask((64, 200), 0.52, seed=1)
    st = ndi.generate_binary_structure(2, connectivity)
    ref, nref = ndi.label(m, structure=st)
    assert nref > 50  # many components cross chunk faces
    lab, n = bw.label(da.from_array(m, chunks=chunks), structure=st)
    out = lab.compute()
    assert n == nref and out.dtype == ref.dtype and np.array_equal(out, ref)


@pytest.mark.parametrize("chunks", [(3, 7, 13), (20, 1, 40), (5, 16, 16)])
@pytest.mark.parametrize("connectivity", [1, 2, 3])
def test_label_3d_equals_scipy_bit_for_bit(chunks, connectivity):
    m = _random_mask((20, 32, 40), 0.53, seed=2)
    st = ndi.generate_binary_structure(3, connectivity)
    ref, nref = ndi.label(m, structure=st)
    lab, n = bw.label(da.from_array(m, chunks=chunks), structure=st)
    assert n == nref and np.array_equal(lab.compute(), ref)


def test_label_corners_empty_blocks_and_empty_image():
    # Two voxels meeting only at the corner where four 7 x 13 chunks meet: joined with full connectivity only.
    m = np.zeros((28, 39), bool)
    m[6, 12] = m[7, 13] = True
    m[20, 25] = m[21, 25] = True  # a vertical pair across a face
    for conn, n_expected in [(1, 3), (2, 2)]:
        st = ndi.generate_binary_structure(2, conn)
        lab, n = bw.label(da.from_array(m, chunks=(7, 13)), structure=st)
        assert n == n_expected and np.array_equal(lab.compute(), ndi.label(m, st)[0])
    lab, n = bw.label(da.zeros((30, 30), bool, chunks=7))
    assert n == 0 and lab.compute().max() == 0


@pytest.mark.parametrize("shape,chunks", [((60, 70), (7, 13)), ((6, 40, 50), (2, 9, 11))])
def test_fill_holes_equals_scipy(shape, chunks):
    m = _random_mask(shape, 0.45, seed=3)
    ref = ndi.binary_fill_holes(m) if m.ndim == 2 else np.stack([ndi.binary_fill_holes(p) for p in m])
    assert (ref != m).sum() > 10  # there are holes to fill
    assert np.array_equal(bw.fill_holes(da.from_array(m, chunks=chunks)).compute(), ref)


@pytest.mark.parametrize("spacing,chunks", [((1.0, 1.0), (31, 45)), ((0.5, 0.7), (100, 23)), ((2.0, 0.5, 0.5), (5, 60, 70))])
def test_background_and_smoothing_are_bit_identical(spacing, chunks):
    rng = np.random.default_rng(4)
    shape = (12, 150, 170) if len(spacing) == 3 else (150, 170)
    img = (rng.random(shape) * 1000).astype(np.uint16)
    ref = classic.subtract_background(img, spacing, 20.0)
    out = bw.subtract_background(da.from_array(img, chunks=chunks), spacing, 20.0).compute()
    assert np.array_equal(out, ref)
    sm = bw.smooth(da.from_array(ref, chunks=chunks), spacing, 1.5).compute()
    assert np.array_equal(sm, ndi.gaussian_filter(ref, classic._sigma_px(1.5, spacing)))


@pytest.mark.parametrize("method", ["otsu", "multiotsu", "yen"])
@pytest.mark.parametrize("ratio", [0.0, 3.0])
def test_global_threshold_equals_whole_image(method, ratio):
    rng = np.random.default_rng(5)
    img = rng.gamma(2.0, 10.0, (120, 90)).astype(np.float32)
    img[30:50, 20:40] += 200
    within = _random_mask(img.shape, 0.4, seed=6)
    for w in (None, within, np.zeros(img.shape, bool)):
        ref = classic.threshold_value(img, method, within=w, min_signal_ratio=ratio)
        for gather in (False, True):  # narrowing histograms (on disk) / gathered voxels (in memory)
            got = bw.threshold_value(da.from_array(img, chunks=(17, 23)), method,
                                     within=None if w is None else da.from_array(w, chunks=(17, 23)),
                                     min_signal_ratio=ratio, gather=gather)
            assert got == ref
    with pytest.raises(NotImplementedError, match="otsu"):
        bw.threshold_value(da.from_array(img), "li")


def _section(shape=(384, 384), seed=1, **kw):
    return simulate_section(shape=shape, n_msc=25, n_macrophage=30, seed=seed, **kw)


@pytest.mark.parametrize("chunks,on_disk", [((96, 130), True), ((200, 200), False)])
def test_segment_cells_2d_equals_whole_image(chunks, on_disk, tmp_path):
    s = _section()
    cfg = Config()
    tissue = s.labels["tissue"] > 0
    for role, name in [("msc", "GFP"), ("macrophage", "CD68"), ("nuclei", "DAPI")]:
        params = getattr(cfg.segment, role)
        ch = np.asarray(s.image[s.channel_names.index(name)])
        ref = classic.segment_cells(ch, s.spacing_um[-2:], params, within=tissue)
        res = bw.segment_cells(da.from_array(ch, chunks=chunks), s.spacing_um[-2:], params,
                               within=da.from_array(tissue, chunks=chunks), tmpdir=tmp_path if on_disk else None)
        assert res.n_objects == ref.max() > 5, role
        assert np.array_equal(res.labels.compute(), ref), role


@pytest.mark.parametrize("scheduler,on_disk", [("threads", False), ("synchronous", False), ("threads", True)])
def test_segment_roles_at_once_equal_each_role_alone(scheduler, on_disk, tmp_path):
    """The roles segmented at the same time on one shared pool (threads, in memory), or one after the
    other (synchronous; on disk), give each role's whole-image labels and objects table, and its label TIFF."""
    s = _section(seed=2)
    cfg = Config()
    tissue = s.labels["tissue"] > 0
    roles = {"msc": "GFP", "macrophage": "CD68", "nuclei": "DAPI"}
    chans = {r: da.from_array(np.asarray(s.image[s.channel_names.index(n)]), chunks=(150, 110))
             for r, n in roles.items()}
    spacing3 = (1.0,) + tuple(s.spacing_um[-2:])
    paths = {r: str(tmp_path / f"{r}.tif") for r in roles}
    out = bw.segment_roles(chans, spacing3, {r: getattr(cfg.segment, r) for r in roles},
                           within=da.from_array(tissue, chunks=(150, 110)), label_paths=paths,
                           tmpdir=tmp_path / "work" if on_disk else None, scheduler=scheduler)
    for r, name in roles.items():
        ch = np.asarray(s.image[s.channel_names.index(name)])
        ref = classic.segment_cells(ch, s.spacing_um[-2:], getattr(cfg.segment, r), within=tissue)
        assert out[r].segmentation.n_objects == ref.max() > 5, r
        assert np.array_equal(np.asarray(read_image(paths[r]).data[0, 0, 0]), ref), r
        table = measure_objects(ref, spacing3, intensities={r: ch}, role=r)
        pd.testing.assert_frame_equal(out[r].objects, table, rtol=1e-12, check_exact=False)


def test_component_whose_box_corner_lies_in_a_block_it_never_meets():
    """An L-shaped cluster whose bounding box starts in block (0, 0), which holds none of its voxels:
    its seeds are counted by the block with its first voxel (they were lost, and the numbering broke)."""
    img = np.zeros((100, 100))  # blocks of 45 px (the background's shrink grid is 15 px)
    img[50:60, 20:70] = 1000.0  # horizontal arm, blocks (1, 0) and (1, 1)
    img[25:60, 50:60] = 1000.0  # vertical arm, blocks (0, 1) and (1, 1): the box starts at (25, 20)
    img[75:87, 75:87] = 1000.0  # a second cell after it
    img = ndi.gaussian_filter(img, 1.0)
    p = RoleSegmentation(min_diameter_um=3, max_diameter_um=80, split_min_distance_um=4, min_signal_ratio=0,
                         smoothing_sigma_um=0.5, background_radius_um=60)
    ref = classic.segment_cells(img, (1.0, 1.0), p)
    assert ref.max() >= 3  # the L splits into its arms (and the corner), then the last cell
    res = bw.segment_cells(da.from_array(img, chunks=45), (1.0, 1.0), p, overlap_um=60)
    assert res.labels.chunks == ((45, 45, 10), (45, 45, 10))
    assert not (ref[:45, :45] > 0).any()  # no voxel of the L in block (0, 0)
    assert np.array_equal(res.labels.compute(), ref)


def test_segment_cells_3d_anisotropic_equals_whole_image():
    s = simulate_section(shape=(10, 128, 128), z_step_um=2.0, n_msc=6, n_macrophage=6, seed=5)
    params = Config().segment.msc
    ch = np.asarray(s.image[s.channel_names.index("GFP")])
    ref = classic.segment_cells(ch, s.spacing_um, params)
    res = bw.segment_cells(da.from_array(ch, chunks=(4, 50, 70)), s.spacing_um, params)
    assert ref.max() >= 3 and np.array_equal(res.labels.compute(), ref)


def test_components_larger_than_the_overlap_are_split_in_their_own_box(tmp_path):
    """A 4-cell cluster spanning several chunks with a 10 um overlap: split on the driver, still exact."""
    yy, xx = np.mgrid[:160, :200]
    img = np.zeros((160, 200))
    for cy, cx in [(80, 40), (80, 66), (80, 92), (80, 118)]:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 14 ** 2] = 500
    img = ndi.gaussian_filter(img, 1.0) + 20
    p = RoleSegmentation(min_diameter_um=5, max_diameter_um=40, min_signal_ratio=0, background_radius_um=40)
    ref = classic.segment_cells(img, (1.0, 1.0), p)
    for tmpdir in (None, tmp_path):  # in memory and on disk
        res = bw.segment_cells(da.from_array(img, chunks=(40, 48)), (1.0, 1.0), p, overlap_um=10, tmpdir=tmpdir)
        assert ref.max() == 4 and np.array_equal(res.labels.compute(), ref)


@pytest.mark.parametrize("shape,chunks,halo", [((160, 200), (40, 48), (12, 12)), ((90, 110), (7, 13), (4, 6)),
                                               ((6, 40, 50), (3, 13, 17), (2, 5, 5))])
def test_deferred_components_are_known_from_the_plan(shape, chunks, halo):
    """The components too large for a block's halo, predicted from the plan's boxes = those the blocks defer."""
    # blobs of every size (in 3D a lower density: with full connectivity 0.5 percolates)
    m = ndi.gaussian_filter(np.random.default_rng(5).random(shape), 1.5) > (0.5 if len(shape) == 2 else 0.53)
    full = np.ones((3,) * len(shape), bool)
    mask = da.from_array(m, chunks=chunks)
    plan = bw._plan_labels(mask, full, boxes=True)
    ref, n = ndi.label(m, structure=full)
    boxes = ndi.find_objects(ref)
    assert plan.n == n and [tuple(slice(a, b) for a, b in zip(lo, hi)) for lo, hi in zip(*plan.boxes)] == boxes
    cc = bw._apply_plan(mask, full, bw._relabel_block, plan, np.int32).persist()
    depth = {a: min(h, s) for a, (h, s) in enumerate(zip(halo, shape))}
    starts = [np.r_[0, np.cumsum(c)] for c in cc.chunks]
    predicted = bw._deferred_ids(plan, cc, depth)
    own = {g: classic.grow_box(tuple(slice(int(a), int(b)) for a, b in zip(plan.boxes[0][g - 1], plan.boxes[1][g - 1])),
                               shape) for g in predicted}
    # a component a block defers but the plan did not predict has no box here: KeyError
    _, _, _, patches = bw._split_blocks(cc, depth, starts, (1.0,) * len(shape), RoleSegmentation(), None,
                                        "synchronous", None, own, {}, (*plan.boxes, plan.first))
    assert len(patches) >= 3 and sorted(p[1] for p in patches) == predicted


def test_measure_from_partial_sums_equals_measure_objects():
    s = _section(seed=3)
    lab = classic.segment_cells(np.asarray(s.image[1]), (1.0, 1.0), Config().segment.msc)
    chans = {n: np.asarray(s.image[i]) for i, n in enumerate(s.channel_names)}
    ref = measure_objects(lab, s.spacing_um, intensities=chans, role="msc", sample_id="a")
    got = bw.measure_objects(da.from_array(lab, chunks=(50, 70)), s.spacing_um,
                             intensities={k: da.from_array(v, chunks=64) for k, v in chans.items()},
                             role="msc", sample_id="a")
    assert list(got.columns) == list(ref.columns) and len(got) == len(ref) > 5
    pd.testing.assert_frame_equal(got, ref, rtol=1e-12, check_exact=False)
    empty = bw.measure_objects(da.zeros((20, 20), np.int32, chunks=7), (1, 1, 1), intensities={"GFP": np.ones((20, 20))})
    assert len(empty) == 0 and list(empty.columns) == list(ref.columns[:8]) + ["mean_intensity_GFP", "touches_border"]


@pytest.mark.parametrize("suffix", [".ome.tif", ".zarr"])
def test_labels_written_chunk_by_chunk_read_back_equal(tmp_path, suffix):
    lab = (np.arange(300 * 260).reshape(300, 260) % 977).astype(np.int32)
    path = tmp_path / f"lab{suffix}"
    bw.write_labels(path, da.from_array(lab, chunks=(128, 100)), (1.0, 0.4, 0.4))
    if suffix == ".zarr":
        back = da.from_zarr(str(path)).compute()
    else:
        img = read_image(path)
        assert img.spacing_um == (1.0, 0.4, 0.4)
        back = img.data[0, 0, 0].compute()
    assert back.dtype == np.uint32 and np.array_equal(back, lab)
    stack = np.arange(3 * 40 * 50).reshape(3, 40, 50).astype(np.int32)
    bw.write_labels(tmp_path / "s.ome.tif", da.from_array(stack, chunks=(2, 16, 50)), (2.0, 0.5, 0.5))
    assert np.array_equal(read_image(tmp_path / "s.ome.tif").data[0, 0].compute(), stack)


def test_bad_input_nan_no_signal_saturated():
    p = Config().segment.msc
    img = np.ones((80, 80), np.float32)
    img[5, 5] = np.nan
    with pytest.raises(LungtrackInputError, match="NaN"):
        bw.segment_cells(da.from_array(img, chunks=40), (1.0, 1.0), p).labels.compute()
    with pytest.raises(LungtrackInputError, match="NaN"):
        classic.subtract_background(img, (1.0, 1.0), 40.0)
    for value in (0, 65535):  # no signal, saturated: zero objects, and a table with every column
        flat = np.full((80, 80), value, np.uint16)
        res = bw.segment_cells(da.from_array(flat, chunks=40), (1.0, 1.0), p)
        assert res.n_objects == 0 and res.labels.compute().max() == 0
        t = bw.measure_objects(res.labels, (1, 1, 1), role="msc")
        assert len(t) == 0 and "equivalent_diameter_um" in t.columns


def test_distributed_local_cluster_gives_identical_labels():
    distributed = pytest.importorskip("distributed")
    s = _section(shape=(256, 256), seed=4)
    params = Config().segment.macrophage
    ch = np.asarray(s.image[2])
    ref = classic.segment_cells(ch, (1.0, 1.0), params)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        res = bw.segment_cells(da.from_array(ch, chunks=(100, 90)), (1.0, 1.0), params, scheduler=client.get)
        out = res.labels.compute(scheduler=client.get)
    assert ref.max() > 5 and np.array_equal(out, ref)


def test_analyze_chunked_on_a_local_cluster_equals_whole_image_segmentation(tmp_path):
    """`lungtrack analyze --chunk-all --workers 2`: label TIFFs equal classic.segment_cells with the same tissue mask."""
    import contextlib
    import io

    from lungtrack.cli import main
    from lungtrack.synthetic import simulate_experiment

    exp = tmp_path / "exp"
    simulate_experiment(exp, groups={"BM": 8.0}, time_h=(2.0, 24.0), n_animals=1, shape=(224, 224), seed=3)
    out = tmp_path / "res"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["analyze", str(exp), "--config", str(exp / "config.yaml"), "--out", str(out), "--chunk-all",
                     "--chunk-size", "96", "--workers", "2"])
    assert code == 0
    samples = pd.read_csv(out / "samples.csv")
    objects = pd.read_parquet(out / "objects.parquet")
    cfg = Config.from_yaml(exp / "config.yaml")
    for _, row in samples.iterrows():
        src = read_image(row["path"] if "path" in row else next((exp / "images").glob(f"{row.sample_id}*")))
        data = src.data[0, :, 0].compute()
        sp = src.spacing_um[1:]
        tissue = classic.tissue_mask(data.astype(np.float32), sp, cfg.segment.tissue)
        for role in ("msc", "macrophage"):
            ref = classic.segment_cells(data[src.channel_index(getattr(cfg.channels, role))], sp,
                                        getattr(cfg.segment, role), within=tissue)
            lab = read_image(out / "labels" / f"{row.sample_id}_{role}.tif").data[0, 0, 0].compute()
            assert np.array_equal(lab, ref), (row.sample_id, role)
            assert row[f"n_{role}"] == ref.max() == (objects[(objects.sample_id == row.sample_id)
                                                            & (objects.role == role)]).shape[0]
        assert row["tissue_area_mm2"] == pytest.approx(tissue.sum() * np.prod(sp) * 1e-6)
    assert samples["n_msc"].iloc[0] > samples["n_msc"].iloc[-1] > 0  # MSCs disappear over time


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64])
def test_compiled_block_sums_equal_numpy(ndim, dtype):
    """Per-label partial sums, present labels and (component, seed) counts from compiled passes = numpy's, exactly.

    Labels with gaps, at the block's border, far apart (the sorted fallback) and none.
    """
    rng = np.random.default_rng(ndim * 10 + np.dtype(dtype).itemsize)
    shape = (5, 23, 31)[-ndim:]
    image_shape = (9, 80, 70)[-ndim:]
    start = (2, 40, 0)[-ndim:]
    for case in range(5):
        lab = rng.integers(0, 40, shape).astype(dtype) * (rng.random(shape) < 0.5)
        lab[lab > 0] += 1000
        if case == 3:
            lab.flat[0] = 5_000_000  # far from the others: the sorted fallback
        if case == 4:
            lab[:] = 0
        ims = {"a": rng.integers(0, 60000, shape).astype(np.uint16), "b": rng.random(shape).astype(np.float32)}
        got = bw._partial_sums(lab, ims, start, image_shape)
        ref = bw._partial_sums_sorted(lab, ims, start, image_shape)
        # (np.bincount of nothing is int64, of something float64: the dtypes differ only when empty)
        pd.testing.assert_frame_equal(got, ref, check_exact=True, check_dtype=case != 4)
        assert len(got) == len(np.unique(lab[lab > 0]))
        assert np.array_equal(bw._present(lab), np.unique(lab[lab > 0]).astype(np.int64))
        seeds = (rng.integers(0, 4, shape) * (lab > 0)).astype(np.int32)
        keys, counts = bw._key_counts(seeds, lab)
        rk, rc = np.unique(bw._keys(seeds, lab)[0], return_counts=True)
        assert np.array_equal(keys, rk) and np.array_equal(counts, rc)
        view = lab[..., 1:-1]  # not contiguous
        assert np.array_equal(bw._present(view), np.unique(view[view > 0]).astype(np.int64))


def test_use_one_malloc_arena_in_a_fresh_process():
    """On glibc it sets M_ARENA_MAX and the variable child processes read; an existing setting is left alone."""
    import os
    import platform
    import subprocess
    import sys

    code = ("import os; from lungtrack.segment.blockwise import use_one_malloc_arena as f; "
            "print(f(), os.environ.get('MALLOC_ARENA_MAX'))")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == (["True", "1"] if platform.libc_ver()[0] == "glibc" else ["False", "None"])
    out = subprocess.run([sys.executable, "-c", code], env={**env, "MALLOC_ARENA_MAX": "4"}, capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["False", "4"]
