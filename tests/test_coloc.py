"""Tests of lungtrack.coloc against hand-computed values, brute force and Fiji Coloc 2."""
from __future__ import annotations

import json
import logging
import math

import dask.array as da
import numpy as np
import pytest
from conftest import shared_data_dir

from lungtrack import coloc
from lungtrack.coloc import (
    coloc_summary,
    costes_test,
    costes_thresholds,
    kendall_tau,
    li_icq,
    manders,
    overlap_coefficient,
    pearson,
    rwc,
    spearman,
    van_steensel_ccf,
)

# ----------------------------------------------------------------------------- helpers




FIJI = shared_data_dir() / "coloc_fiji"
needs_fiji = pytest.mark.skipif(
    not (FIJI / "expected_values.json").is_file(),
    reason=f"Fiji Coloc 2 reference images not found at {FIJI} (set LUNGTRACK_SHARED_DATA)",
)


def _read(name: str) -> np.ndarray:
    tifffile = pytest.importorskip("tifffile")
    return tifffile.imread(FIJI / name)


def _r_direct(x, y) -> float:
    """Pearson r with numpy's own corrcoef (independent of lungtrack)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _r_below(x, y, t_a, t_b) -> float:
    below = (x < t_a) | (y < t_b)
    return _r_direct(x[below], y[below])


def _costes_brute_force(x, y):
    """Costes thresholds by evaluating every candidate with np.corrcoef, top down.

    Uses lungtrack's regression line (tested separately against an eigenvector);
    the candidate set is every threshold on that line at which the below set changes.
    Returns (t_a, t_b, (t_a, t_b) of the next higher candidate or None).
    """
    slope, intercept = coloc._deming(x, y)
    y_on_x = (y - intercept) / slope
    cand = np.unique(np.minimum(x, y_on_x))[::-1]

    def pair(t):
        on_b = y_on_x == t
        return float(t), float(y[on_b][0] if on_b.any() else slope * t + intercept)

    for k, t in enumerate(cand):
        if _r_below(x, y, *pair(t)) <= 0:
            return pair(t) + (pair(cand[k - 1]) if k else None,)
    raise AssertionError("brute force found no threshold")


def _coloc2_bisection(x, y):
    """Replica of Fiji Coloc 2's AutoThresholdRegression with its BisectionStepper.

    Same regression and 'below' set as lungtrack; walks on channel 1 when
    -1 < slope < 1 (else channel 2), rounds both thresholds like Java's Math.round,
    halves the step while r_below > 0 (down) or < 0 (up), stops when the step < 1.
    """
    slope, intercept = coloc._deming(x, y)
    if -1 < slope < 1:
        to_a, to_b, hi, lo = (lambda t: t), (lambda t: t * slope + intercept), x.max(), x.min()
    else:
        to_a, to_b, hi, lo = (lambda t: (t - intercept) / slope), (lambda t: t), y.max(), y.min()
    t1, t2 = abs(hi + lo) * 0.5, hi
    diff, iterations = abs(t1 - t2), 0
    while not (iterations > 100 or diff < 1.0):
        ta, tb = math.floor(to_a(t1) + 0.5), math.floor(to_b(t1) + 0.5)
        r = _r_below(x, y, ta, tb)
        t2 = t1
        if r < 0:
            t1 += diff * 0.5
        elif r > 0:
            t1 -= diff * 0.5
        diff, iterations = abs(t1 - t2), iterations + 1
    return ta, tb


# ----------------------------------------------------------------------------- Pearson


def test_pearson_exact_lines():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert pearson(a, 2.0 * a + 3) == pytest.approx(1.0, abs=1e-12)
    assert pearson(a, -a.astype(float)) == pytest.approx(-1.0, abs=1e-12)


def test_pearson_matches_numpy_and_handles_mask():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 30))
    b = 0.5 * a + rng.normal(size=(20, 30))
    assert pearson(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-12)
    # Outside the mask a point that would make r negative.
    a2 = np.array([[1.0, 2.0], [3.0, 100.0]])
    b2 = np.array([[1.0, 2.0], [3.0, -100.0]])
    mask = np.array([[True, True], [True, False]])
    assert pearson(a2, b2, mask) == pytest.approx(1.0, abs=1e-12)
    assert pearson(a2, b2) < 0
    m = rng.random((20, 30)) > 0.4
    assert pearson(a, b, m) == pytest.approx(np.corrcoef(a[m], b[m])[0, 1], abs=1e-12)


def test_pearson_nan_when_undefined():
    a = np.arange(6.0).reshape(2, 3)
    assert math.isnan(pearson(a, np.full((2, 3), 7.0)))
    assert math.isnan(pearson(np.full((2, 3), 0.1), a))
    # constant only inside the mask
    b = np.array([[5.0, 5.0, 5.0], [1.0, 2.0, 3.0]])
    top = np.array([[True] * 3, [False] * 3])
    assert math.isnan(pearson(a, b, top))
    assert math.isnan(pearson(a, a, np.zeros((2, 3), bool)))


def test_dask_input_equals_numpy():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 255, (6, 16, 16)).astype(np.uint8)
    b = (a // 2 + rng.integers(0, 60, a.shape)).astype(np.uint8)
    m = rng.random(a.shape) > 0.3
    ad, bd, md = (da.from_array(v, chunks=(3, 8, 8)) for v in (a, b, m))
    assert pearson(ad, bd, md) == pearson(a, b, m)
    assert manders(ad, bd, 20, 30, md) == manders(a, b, 20, 30, m)
    assert costes_thresholds(ad, bd, md) == costes_thresholds(a, b, m)
    assert coloc_summary(ad, bd, md, randomisations=5) == coloc_summary(a, b, m, randomisations=5)


@pytest.mark.parametrize(
    "call",
    [
        lambda a, b, m: pearson(a, b, m),
        lambda a, b, m: manders(a, b, 0, 0, m),
        lambda a, b, m: costes_thresholds(a, b, m),
        lambda a, b, m: costes_test(a, b, m, n=2),
        lambda a, b, m: coloc_summary(a, b, m),
    ],
)
def test_validation_names_the_argument(call):
    a = np.zeros((4, 5))
    with pytest.raises(ValueError, match="b has shape"):
        call(a, np.zeros((5, 4)), None)
    with pytest.raises(ValueError, match="mask has shape"):
        call(a, a, np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="mask must be a boolean"):
        call(a, a, np.ones((4, 5), np.uint8))


# ----------------------------------------------------------------------------- Manders

A5 = np.array([0, 1, 2, 3, 4])
B5 = np.array([4, 0, 1, 5, 1])  # sum(a) = 10, sum(b) = 11


@pytest.mark.parametrize("convention", ["jacop", "coloc2"])
@pytest.mark.parametrize("thr", [None, 0])
def test_manders_unthresholded(convention, thr):
    # M1 = sum(a where b > 0) = 0+2+3+4 = 9 of 10; M2 = sum(b where a > 0) = 0+1+5+1 = 7 of 11
    m1, m2 = manders(A5, B5, thr, thr, convention=convention)
    assert m1 == pytest.approx(9 / 10, abs=1e-15)
    assert m2 == pytest.approx(7 / 11, abs=1e-15)


def test_manders_jacop_by_hand():
    # a > 2: a = 3, 4 (sum 7); b > 4: b = 5 (sum 5); both: pixel 3 (a 3, b 5)
    assert manders(A5, B5, 2, 4) == pytest.approx((3 / 7, 5 / 5), abs=1e-15)
    # thresholds are strict: a > 3 keeps a = 4 only, b > 5 keeps nothing
    m1, m2 = manders(A5, B5, 3, 5)
    assert m1 == 0.0
    assert math.isnan(m2)  # empty denominator
    assert manders(A5, B5, 1, 1) == pytest.approx((3 / 9, 5 / 9), abs=1e-15)


def test_manders_coloc2_by_hand():
    # tM1 = sum(a where b >= 4) = 0 + 3 of 10; tM2 = sum(b where a >= 2) = 1+5+1 of 11
    assert manders(A5, B5, 2, 4, convention="coloc2") == pytest.approx((3 / 10, 7 / 11), abs=1e-15)
    # ">=": b >= 5 keeps pixel 3 (a 3); a >= 3 keeps pixels 3, 4 (b 5 + 1)
    assert manders(A5, B5, 3, 5, convention="coloc2") == pytest.approx((3 / 10, 6 / 11), abs=1e-15)
    # "and > 0": a threshold below 0 still drops zero pixels (a = 0 at pixel 0)
    assert manders(A5, B5, -1, -1, convention="coloc2") == pytest.approx((9 / 10, 7 / 11), abs=1e-15)


def test_manders_mask_and_empty():
    mask = np.array([True, True, True, False, True])  # drop pixel 3 -> a [0 1 2 4], b [4 0 1 1]
    m1, m2 = manders(A5, B5, 2, 4, mask)
    assert m1 == 0.0 and math.isnan(m2)
    assert manders(A5, B5, None, None, mask, convention="coloc2") == pytest.approx((6 / 7, 2 / 6), abs=1e-15)
    assert all(math.isnan(v) for v in manders(np.zeros(5), np.zeros(5)))
    assert all(math.isnan(v) for v in manders(np.zeros(5), np.zeros(5), convention="coloc2"))
    with pytest.raises(ValueError, match="convention"):
        manders(A5, B5, convention="fiji")


# ----------------------------------------------------------------------------- Costes


def test_deming_line_is_the_principal_axis():
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 20.0, 5000)
    y = 0.6 * x + 10 + rng.normal(0, 8, 5000)
    slope, intercept = coloc._deming(x, y)
    w, v = np.linalg.eigh(np.cov(x, y))
    principal = v[:, np.argmax(w)]
    assert slope == pytest.approx(principal[1] / principal[0], rel=1e-10)
    assert intercept == pytest.approx(y.mean() - slope * x.mean(), rel=1e-10)
    # exact line b = 2a + 3: slope (3s + 5s) / 4s = 2
    a = np.arange(10.0)
    assert coloc._deming(a, 2 * a + 3) == pytest.approx((2.0, 3.0), abs=1e-12)
    assert coloc._deming(a, -a) is None


def test_costes_known_answer_symmetric():
    # Background (0,4), (4,0), (2,2): r = -1. Signal a = b = 10..20. The data are
    # symmetric in a <-> b, so the line is b = a; below(t) = background plus the
    # signal pixels < t. Background + (10,10) has r > 0 (centred products 0+0+4+36),
    # so lowering t from 20, r_below first drops to <= 0 at t = 10.
    sig = np.arange(10, 21)
    a = np.concatenate([[0, 4, 2], sig]).reshape(2, 7)
    b = np.concatenate([[4, 0, 2], sig]).reshape(2, 7)
    assert _r_direct([0, 4, 2, 10], [4, 0, 2, 10]) > 0
    t_a, t_b = costes_thresholds(a, b)
    assert t_a == pytest.approx(10.0, abs=1e-9)
    assert t_b == pytest.approx(10.0, abs=1e-9)
    # in 3D and inside a mask that hides an outlier
    a3 = np.concatenate([a.ravel(), [100]]).reshape(3, 1, 5)
    b3 = np.concatenate([b.ravel(), [0]]).reshape(3, 1, 5)
    mask = (np.arange(15) < 14).reshape(3, 1, 5)
    assert costes_thresholds(a3, b3, mask) == pytest.approx((10.0, 10.0), abs=1e-9)


def test_costes_known_answer_below_set_is_the_background():
    # Background anti-correlated (r = -1); signal on b = 2a + 3. Any signal pixel
    # added to the background gives r > 0 (checked below), so the Costes pair must
    # leave exactly the background below and the whole signal above both thresholds.
    bg_a, bg_b = np.array([0, 4, 2, 1, 3]), np.array([11, 3, 7, 9, 5])
    sig_a = np.arange(10, 31)
    sig_b = 2 * sig_a + 3
    for k in range(sig_a.size):
        assert _r_direct(np.r_[bg_a, sig_a[k]], np.r_[bg_b, sig_b[k]]) > 0
    a, b = np.r_[bg_a, sig_a].astype(float), np.r_[bg_b, sig_b].astype(float)
    t_a, t_b = costes_thresholds(a, b)
    slope, intercept = coloc._deming(a, b)
    assert t_b == pytest.approx(slope * t_a + intercept, abs=1e-9)  # on the line
    below = (a < t_a) | (b < t_b)
    assert below.tolist() == [True] * bg_a.size + [False] * sig_a.size
    assert np.all((a[bg_a.size:] >= t_a) & (b[bg_a.size:] >= t_b))


@pytest.mark.parametrize("integer", [False, True])
def test_costes_definition_on_noisy_data(integer):
    # Both channels = one signal (a spot on a flat background) + small independent
    # noise, as Costes assumes: the returned pair is the first (highest) candidate
    # with r_below <= 0, and the next higher candidate has r_below > 0.
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:24, 0:24]
    signal = 120 * np.exp(-((yy - 12) ** 2 + (xx - 10) ** 2) / 40.0)
    a = signal + rng.normal(0, 4, signal.shape) + 20
    b = 0.8 * signal + rng.normal(0, 4, signal.shape) + 15
    if integer:
        a, b = np.clip(np.round(a), 0, 255).astype(np.uint8), np.clip(np.round(b), 0, 255).astype(np.uint8)
    x, y = a.astype(float).ravel(), b.astype(float).ravel()
    t_a, t_b = costes_thresholds(a, b)
    bf_a, bf_b, higher = _costes_brute_force(x, y)
    assert (t_a, t_b) == pytest.approx((bf_a, bf_b), abs=1e-9)
    assert _r_below(x, y, t_a, t_b) <= 0
    assert higher is not None and higher[0] > t_a
    assert _r_below(x, y, *higher) > 0
    assert x.min() < t_a < x.max()


def test_costes_fallbacks_are_logged(caplog):
    a = np.arange(12.0).reshape(3, 4)
    # Anti-correlated channels are expected (MSC vs macrophage label): logged at INFO.
    with caplog.at_level(logging.INFO, logger="lungtrack.coloc"):
        assert costes_thresholds(a, -a) == (11.0, 0.0)  # maxima of a and of b
    assert "not positively correlated" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lungtrack.coloc"):
        assert costes_thresholds(a, np.full_like(a, 3.0)) == (11.0, 3.0)
    assert "not positively correlated" in caplog.text
    caplog.clear()
    # every pixel on one line: r_below never <= 0 -> lowest pair on the line
    with caplog.at_level(logging.WARNING, logger="lungtrack.coloc"):
        assert costes_thresholds(a, 2 * a + 3) == pytest.approx((0.0, 3.0), abs=1e-12)
    assert "never drops" in caplog.text
    assert all(math.isnan(v) for v in costes_thresholds(a, a, np.zeros(a.shape, bool)))


# ----------------------------------------------------------------------------- randomisation


def _smooth_field(shape, seed):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), 3.0)


def test_costes_test_colocalised_is_significant():
    a = _smooth_field((60, 60), 5)
    # r_obs = 1 and no block permutation reproduces it: p = 1 / (n + 1)
    assert costes_test(a, a, n=49) == pytest.approx(1 / 50, abs=1e-15)
    assert costes_test(a, 3 * a + 1, n=19, block_size=(2, 2)) == pytest.approx(1 / 20, abs=1e-15)


def test_costes_test_ties_count_as_exceeding():
    # A pattern repeating with the block period: every permutation reproduces r_obs
    # exactly, so the data carry no evidence at that scale and p = (1 + n) / (1 + n).
    a = np.tile(np.array([[1.0, 5.0, 2.0], [0.0, 3.0, 4.0], [7.0, 1.0, 6.0]]), (4, 5))
    assert costes_test(a, a, n=9, block_size=(3, 3)) == 1.0


def test_costes_test_independent_is_not_significant():
    a = _smooth_field((60, 60), 6)
    b = _smooth_field((60, 60), 7)
    p = costes_test(a, b, n=99, seed=1)
    assert 0.05 < p <= 1.0
    z = np.random.default_rng(8).normal(size=(3, 40, 40))
    w = np.random.default_rng(9).normal(size=(3, 40, 40))
    assert costes_test(z, w, n=99) > 0.05


def _costes_test_reference(a, b, mask, n, block, seed):
    """Direct transcription of the documented algorithm with np.corrcoef: (r_obs, r_rand)."""
    sl = tuple(slice(0, (s // k) * k) for s, k in zip(a.shape, block))
    a, b, mask = a[sl], b[sl], mask[sl]
    grid = [s // k for s, k in zip(a.shape, block)]
    blocks = [idx for idx in np.ndindex(*grid)
              if mask[tuple(slice(i * k, (i + 1) * k) for i, k in zip(idx, block))].any()]
    sls = [tuple(slice(i * k, (i + 1) * k) for i, k in zip(idx, block)) for idx in blocks]
    keep = np.zeros(a.shape, bool)
    for s in sls:
        keep[s] = mask[s]
    r_obs = _r_direct(a[keep], b[keep])
    rng = np.random.default_rng(seed)
    rs = []
    for _ in range(n):
        perm = rng.permutation(len(sls))
        xs, ys = [], []
        for dst, src in enumerate(perm):
            both = mask[sls[src]] & mask[sls[dst]]
            xs.append(a[sls[src]][both])
            ys.append(b[sls[dst]][both])
        rs.append(_r_direct(np.concatenate(xs), np.concatenate(ys)))
    return r_obs, np.array(rs)


@pytest.mark.parametrize("masked", [False, True])
def test_costes_test_matches_reference_transcription(masked):
    rng = np.random.default_rng(11)
    a = _smooth_field((4, 20, 23), 11)
    b = _smooth_field((4, 20, 23), 114)  # independent: p in mid-range, so every r counts
    mask = np.ones(a.shape, bool)
    if masked:  # sparse pixels, and no mask at all in the blocks beyond x = 12
        mask = (rng.random(a.shape) > 0.3) & (np.arange(23) < 12)
    r_obs, r_rand = _costes_test_reference(a, b, mask, 30, (2, 3, 3), 3)
    got_obs, got_rand = coloc._randomised_r(a, b, mask, (2, 3, 3), 30, 3)
    assert got_obs == pytest.approx(r_obs, abs=1e-12)
    np.testing.assert_allclose(got_rand, r_rand, rtol=0, atol=1e-12)
    p = (1 + np.sum(r_rand >= r_obs)) / 31
    assert 0.1 < p < 0.9  # mid-range: the comparison goes both ways
    assert costes_test(a, b, mask if masked else None, n=30, block_size=(2, 3, 3), seed=3) == p


def test_costes_test_arguments():
    a = _smooth_field((10, 10), 12)
    with pytest.raises(ValueError, match="block_size"):
        costes_test(a, a, block_size=(3, 3, 3))
    with pytest.raises(ValueError, match="block_size"):
        costes_test(a, a, block_size=11)
    with pytest.raises(ValueError, match="n must be"):
        costes_test(a, a, n=0)
    assert math.isnan(costes_test(a, np.ones_like(a), n=5))


# ----------------------------------------------------------------------------- summary


def test_coloc_summary_is_consistent():
    a = np.array([0, 4, 2, 10, 11, 12, 14, 13]).reshape(2, 4)
    b = np.array([4, 0, 2, 10, 11, 12, 13, 14]).reshape(2, 4)
    s = coloc_summary(a, b)
    assert list(s) == ["pearson_r", "manders_m1", "manders_m2", "costes_threshold_a",
                       "costes_threshold_b", "costes_p"]
    assert s["pearson_r"] == pytest.approx(_r_direct(a.ravel(), b.ravel()), abs=1e-12)
    assert (s["costes_threshold_a"], s["costes_threshold_b"]) == costes_thresholds(a, b)
    assert (s["manders_m1"], s["manders_m2"]) == manders(a, b, *costes_thresholds(a, b))
    assert math.isnan(s["costes_p"])
    s2 = coloc_summary(a, b, convention="coloc2", randomisations=7, seed=2, block_size=1)
    t = costes_thresholds(a, b)
    assert (s2["manders_m1"], s2["manders_m2"]) == manders(a, b, *t, convention="coloc2")
    assert s2["costes_p"] == costes_test(a, b, n=7, seed=2, block_size=1)
    assert all(isinstance(v, float) for v in s2.values())
    with pytest.raises(ValueError, match="convention"):
        coloc_summary(a, b, convention="JACoP")


# ----------------------------------------------------------------------------- Fiji Coloc 2


@pytest.fixture(scope="module")
def expected():
    return json.loads((FIJI / "expected_values.json").read_text())


@needs_fiji
@pytest.mark.parametrize("letter", list("ABCDEFGHI"))
def test_fiji_manders_paper_images(expected, letter):
    ref = expected["manders_paper_images"]
    a = _read("mandersA.tiff")
    x = _read(f"manders{letter}.tiff")
    value, tol = ref["pearson"]["A" + letter]
    assert pearson(a, x) == pytest.approx(value, abs=tol)
    m = ref["manders_no_threshold"]["A" + letter]
    for convention in ("coloc2", "jacop"):  # identical without thresholds (uint8 images)
        m1, m2 = manders(a, x, None, None, convention=convention)
        assert m1 == pytest.approx(m["M1"][0], abs=m["M1"][1])
        assert m2 == pytest.approx(m["M2"][0], abs=m["M2"][1])


@pytest.fixture(scope="module")
def sample1b():
    g = _read("colocsample1b-green.tif")
    r = _read("colocsample1b-red.tif")
    mask = _read("colocsample1b-mask.tif") > 0
    return g, r, mask


@needs_fiji
def test_fiji_colocsample1b(expected, sample1b):
    g, r, mask = sample1b
    ref = expected["colocsample1b"]
    value, tol = ref["pearson_all_pixels"]
    assert pearson(g, r) == pytest.approx(value, abs=tol)
    t = ref["manders_above_threshold_in_mask"]
    m1, m2 = manders(g, r, t["thr_ch1"], t["thr_ch2"], mask, convention="coloc2")
    assert m1 == pytest.approx(t["tM1"][0], abs=t["tM1"][1])
    assert m2 == pytest.approx(t["tM2"][0], abs=t["tM2"][1])


@needs_fiji
def test_fiji_colocsample1b_costes_thresholds(expected, sample1b):
    g, r, mask = sample1b
    t = expected["colocsample1b"]["manders_above_threshold_in_mask"]
    x, y = g[mask].astype(float), r[mask].astype(float)
    # Our regression line and 'below' set reproduce Coloc 2's own answer exactly when
    # driven by Coloc 2's bisection (rounded thresholds, stop when the step < 1).
    assert _coloc2_bisection(x, y) == (t["thr_ch1"], t["thr_ch2"])
    t_a, t_b = costes_thresholds(g, r, mask)
    # The exact scan is the first pair going down with r_below <= 0 (checked by brute force).
    assert (t_a, t_b) == pytest.approx(_costes_brute_force(x, y)[:2], abs=1e-9)
    assert _r_below(x, y, t_a, t_b) <= 0
    # Coloc 2 stopped just above that crossing: r_below(70, 53) > 0. Its bisection ends
    # when its step is < 1 grey level, so its last probe lies within the previous step
    # (< 2 levels on channel 1, the walking channel since the slope 0.67 < 1) of the
    # crossing, plus 0.5 for rounding: both thresholds agree within 2.5 grey levels.
    assert _r_below(x, y, t["thr_ch1"], t["thr_ch2"]) > 0
    assert abs(t_a - t["thr_ch1"]) <= 2.5
    assert abs(t_b - t["thr_ch2"]) <= 2.5
    # Regression guard on the measured pair (68, 51.71; slope 0.66806, intercept 6.2824).
    assert t_a == 68.0
    assert t_b == pytest.approx(51.7108, abs=1e-4)


@needs_fiji
def test_fiji_uncorrelated_zstacks(expected):
    g = _read("greenZstack.tif")
    r = _read("redZstack.tif")
    value, tol = expected["zero_correlation_zstacks"]["pearson"]
    assert abs(pearson(g, r) - value) < tol
    assert costes_test(g, r, n=49) > 0.05


@needs_fiji
def test_fiji_rank_and_icq_colocsample1b(expected):
    g = _read("colocsample1b-green.tif")
    r = _read("colocsample1b-red.tif")
    ref = expected["colocsample1b"]
    lo, hi = ref["spearman_all_pixels"]["range"]
    rho = spearman(g, r)
    assert lo <= rho <= hi
    assert rho == pytest.approx(0.5463, abs=5e-5)
    lo, hi = ref["li_icq_all_pixels"]["range"]
    assert lo <= li_icq(g, r) <= hi


@needs_fiji
def test_fiji_rank_and_icq_uncorrelated_and_negative(expected):
    g = _read("greenZstack.tif")
    r = _read("redZstack.tif")
    z = expected["zero_correlation_zstacks"]
    assert abs(li_icq(g, r)) < z["li_icq_abs_lt"]
    assert abs(spearman(g, r)) < z["spearman_abs_lt"]
    n1 = _read("syntheticNegCh1.tif")
    n2 = _read("syntheticNegCh2.tif")
    ref = expected["synthetic_negative"]["spearman"]
    rho = spearman(n1, n2)
    assert ref["range"][0] <= rho <= ref["range"][1]
    assert rho == pytest.approx(ref["exact"], abs=1e-3)


# ----------------------------------------------------------------------------- rank measures


def test_kendall_tau_b_coloc2_vectors():
    # The vectors of Coloc 2's KendallTauTest (also in expected_values.json).
    x = np.array([4, 10, 3, 1, 9, 2, 6, 7, 8, 5])
    y = np.array([5, 8, 6, 2, 10, 3, 9, 4, 7, 1])
    assert kendall_tau(x, y) == pytest.approx(23 / 45, abs=1e-12)
    assert kendall_tau(np.array([1, 1, 2, 3]), np.array([3, 2, 1, 1])) == pytest.approx(-0.8, abs=1e-12)
    assert math.isnan(kendall_tau(np.array([1, 1, 1, 1]), np.array([2, 2, 2, 2])))
    # 2D with a mask: the masked-out pixel would break the perfect ranking
    a = np.array([[1, 2], [3, 4]])
    b = np.array([[1, 2], [3, -9]])
    assert kendall_tau(a, b, np.array([[True, True], [True, False]])) == pytest.approx(1.0)


def test_spearman_average_ranks_and_scipy():
    from scipy import stats

    rng = np.random.default_rng(20)
    a = rng.integers(0, 8, (5, 6, 7))  # many ties
    b = a + rng.integers(0, 5, a.shape)
    m = rng.random(a.shape) > 0.3
    assert spearman(a, b, m) == pytest.approx(stats.spearmanr(a[m], b[m]).statistic, abs=1e-12)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel()).statistic, abs=1e-12)
    assert math.isnan(spearman(a, np.zeros_like(a)))
    assert math.isnan(spearman(a, b, np.zeros(a.shape, bool)))


def test_li_icq_by_hand():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # mean 3
    b = np.array([2.0, 1.0, 9.0, 5.0, 3.0])  # mean 4
    # products: (-2)(-2)=4 >0, (-1)(-3)=3 >0, 0*5=0 (not >0), 1*1=1 >0, 2*(-1) <0 -> 3/5
    assert li_icq(a, b) == pytest.approx(3 / 5 - 0.5, abs=1e-15)
    assert math.isnan(li_icq(a, b, np.zeros(5, bool)))


# ----------------------------------------------------------------------------- overlap, RWC


def test_overlap_coefficient_by_hand_and_negative_pixels(caplog):
    a = np.array([1.0, 2.0, 0.0, 3.0])
    b = np.array([2.0, 0.0, 1.0, 1.0])
    # sum ab = 2 + 0 + 0 + 3 = 5; sum a2 = 14; sum b2 = 6
    o = overlap_coefficient(a, b)
    assert o == pytest.approx({"overlap": 5 / math.sqrt(14 * 6), "k1": 5 / 14, "k2": 5 / 6}, abs=1e-15)
    assert o["overlap"] ** 2 == pytest.approx(o["k1"] * o["k2"], abs=1e-15)
    with caplog.at_level(logging.WARNING, logger="lungtrack.coloc"):
        o2 = overlap_coefficient(np.r_[a, -5.0], np.r_[b, 0.0])
    assert o2 == pytest.approx(o, abs=1e-15)  # the negative pixel counts as 0 (else sum a2 = 39)
    assert "negative" in caplog.text
    empty = overlap_coefficient(np.zeros(3), np.ones(3))
    assert math.isnan(empty["overlap"]) and math.isnan(empty["k1"]) and empty["k2"] == 0.0


def test_negative_pixels_do_not_abort_manders(caplog):
    a = np.array([-2.0, 1.0, 2.0, 3.0])
    b = np.array([1.0, -1.0, 2.0, 2.0])
    with caplog.at_level(logging.WARNING, logger="lungtrack.coloc"):
        m1, m2 = manders(a, b, convention="coloc2")
    # clipped: a = [0 1 2 3] (sum 6), b = [1 0 2 2] (sum 5); a where b > 0: 0+2+3; b where a > 0: 0+2+2
    assert (m1, m2) == pytest.approx((5 / 6, 4 / 5), abs=1e-15)
    assert "negative" in caplog.text
    assert manders(a, b) == pytest.approx((5 / 6, 4 / 5), abs=1e-15)  # jacop: > 0 excludes them anyway


def test_rwc_hand_case():
    # a ranks (dense): 10->0, 20->1, 30->2, 40->3; b: 5->0, 7->1, 9->2 (two pixels tie)
    a = np.array([10, 20, 30, 40])
    b = np.array([7, 5, 9, 9])
    # Rmax = max(3, 2) + 1 = 4; D = |0-1|, |1-0|, |2-2|, |3-2| = 1, 1, 0, 1; W = 3/4, 3/4, 1, 3/4
    rwc1, rwc2 = rwc(a, b)
    assert rwc1 == pytest.approx((10 * 0.75 + 20 * 0.75 + 30 * 1 + 40 * 0.75) / 100, abs=1e-15)
    assert rwc2 == pytest.approx((7 * 0.75 + 5 * 0.75 + 9 * 1 + 9 * 0.75) / 30, abs=1e-15)
    # thresholds (strict, JACoP style): a > 15 -> pixels 1, 2, 3; b > 6 -> pixels 0, 2, 3; C = pixels 2, 3
    r1, r2 = rwc(a, b, threshold_a=15, threshold_b=6)
    assert r1 == pytest.approx((30 * 1 + 40 * 0.75) / (20 + 30 + 40), abs=1e-15)
    assert r2 == pytest.approx((9 * 1 + 9 * 0.75) / (7 + 9 + 9), abs=1e-15)
    # with W = 1 everywhere RWC equals JACoP's Manders
    assert rwc(a, a * 2, threshold_a=15, threshold_b=30) == pytest.approx(manders(a, a * 2, 15, 30), abs=1e-15)
    assert all(math.isnan(v) for v in rwc(a, b, np.zeros(4, bool)))


# ----------------------------------------------------------------------------- van Steensel


def test_van_steensel_peaks_at_the_shift():
    f = _smooth_field((40, 64), 21)
    ccf = van_steensel_ccf(f, f, max_shift_um=1.0, spacing_um=0.1)
    assert list(ccf.columns) == ["shift_px", "shift_um", "pearson_r"]
    assert ccf["shift_px"].tolist() == list(range(-10, 11))
    assert ccf["shift_um"].to_numpy() == pytest.approx(np.arange(-10, 11) * 0.1)
    assert ccf.loc[ccf["pearson_r"].idxmax(), "shift_px"] == 0
    assert ccf.loc[ccf["shift_px"] == 0, "pearson_r"].item() == pytest.approx(1.0, abs=1e-12)
    for k in (3, -4):
        shifted = np.roll(f, k, axis=-1)
        c = van_steensel_ccf(f, shifted, max_shift_um=1.0, spacing_um=(0.3, 0.1))
        assert c.loc[c["pearson_r"].idxmax(), "shift_px"] == k
        assert c.loc[c["shift_px"] == k, "pearson_r"].item() == pytest.approx(1.0, abs=1e-12)
    # along another axis, 3D, with a mask
    g = _smooth_field((6, 30, 20), 22)
    c = van_steensel_ccf(g, np.roll(g, 2, axis=1), np.ones(g.shape, bool), max_shift_um=1.2,
                         spacing_um=(1.0, 0.4, 0.4), axis=1)
    assert c["shift_px"].tolist() == [-3, -2, -1, 0, 1, 2, 3]
    assert c.loc[c["pearson_r"].idxmax(), "shift_px"] == 2
    with pytest.raises(ValueError, match="max_shift_um"):
        van_steensel_ccf(f, f, max_shift_um=100, spacing_um=1.0)


# ----------------------------------------------------------------------------- scikit-image


def _skimage_coloc():
    return pytest.importorskip("skimage.measure")


def _check_against_skimage(a, b, mask=None):
    skm = _skimage_coloc()
    r_sk = skm.pearson_corr_coeff(a, b, mask)[0]
    assert pearson(a, b, mask) == pytest.approx(r_sk, abs=1e-9)
    # manders_coloc_coeff(image0, image1_mask) = sum(a[b_mask]) / sum(a) = Coloc 2 M1
    # with threshold_b below the smallest positive b (non-negative images).
    for thr in (0, float(np.percentile(b, 60))):
        bm = b > thr
        m_sk = skm.manders_coloc_coeff(a, bm, mask)
        assert manders(a, b, None, np.nextafter(thr, np.inf), mask, convention="coloc2")[0] \
            == pytest.approx(m_sk, abs=1e-9)
        am = a > thr
        # intersection_coeff(m0, m1) = |m0 & m1| / |m0| = Manders M1 of the binary images
        i_sk = skm.intersection_coeff(am, bm, mask)
        assert manders(am.astype(float), bm.astype(float), None, None, mask)[0] == pytest.approx(i_sk, abs=1e-9)
    assert overlap_coefficient(a, b, mask)["overlap"] == pytest.approx(
        skm.manders_overlap_coeff(a, b, mask), abs=1e-9)


def test_equals_scikit_image_on_random_images():
    rng = np.random.default_rng(30)
    a = rng.gamma(2.0, 10.0, (40, 50))
    b = 0.5 * a + rng.gamma(2.0, 5.0, a.shape)
    _check_against_skimage(a, b)
    _check_against_skimage(a, b, rng.random(a.shape) > 0.4)
    ai = rng.integers(0, 255, (30, 30)).astype(np.uint8)
    bi = rng.integers(0, 255, (30, 30)).astype(np.uint8)
    _check_against_skimage(ai.astype(float), bi.astype(float))


@needs_fiji
def test_equals_scikit_image_on_real_images():
    a = _read("mandersA.tiff").astype(float)
    for letter in "BF":
        _check_against_skimage(a, _read(f"manders{letter}.tiff").astype(float))
    g = _read("colocsample1b-green.tif")[16].astype(float)
    r = _read("colocsample1b-red.tif")[16].astype(float)
    m = _read("colocsample1b-mask.tif")[16] > 0
    _check_against_skimage(g, r)
    _check_against_skimage(g, r, m)


# ----------------------------------------------------------------------------- dask


@pytest.mark.parametrize("chunks", [(3, 8, 8), (2, 5, 16)])
def test_new_measures_dask_equals_numpy(chunks):
    rng = np.random.default_rng(40)
    a = rng.integers(0, 255, (6, 16, 16)).astype(np.uint8)
    b = (a // 2 + rng.integers(0, 60, a.shape)).astype(np.uint8)
    m = rng.random(a.shape) > 0.3
    ad, bd, md = (da.from_array(v, chunks=chunks) for v in (a, b, m))
    assert spearman(ad, bd, md) == spearman(a, b, m)
    assert kendall_tau(ad, bd, md) == kendall_tau(a, b, m)
    assert li_icq(ad, bd, md) == li_icq(a, b, m)
    assert overlap_coefficient(ad, bd, md) == overlap_coefficient(a, b, m)
    assert rwc(ad, bd, md, threshold_a=30) == rwc(a, b, m, threshold_a=30)
    kw = dict(max_shift_um=0.6, spacing_um=(1.0, 0.2, 0.2))
    assert van_steensel_ccf(ad, bd, md, **kw).equals(van_steensel_ccf(a, b, m, **kw))
    assert costes_thresholds(ad, bd, md) == costes_thresholds(a, b, m)
    assert costes_test(ad, bd, md, n=5, return_details=True) == costes_test(a, b, m, n=5, return_details=True)


# ----------------------------------------------------------------------------- Costes: sequential reference


def _costes_sequential(x, y):
    """Plain sequential Costes: start at the top and step t_a down one intensity step at a
    time, t_b on the regression line, recomputing the Pearson r of the pixels below either
    threshold with np.corrcoef until it is <= 0.

    The intensity steps are every distinct intensity of a, and every intensity of b
    mapped onto a's axis along the line (the below set can only change there); t_b is
    b's own intensity at a step that comes from b.
    """
    slope, intercept = coloc._deming(x, y)
    y_on_x = (y - intercept) / slope
    steps = sorted(set(x.tolist()) | set(y_on_x.tolist()), reverse=True)
    for t in steps:
        below = (x < t) | (y_on_x < t)  # == (a < t) | (b < slope * t + intercept)
        r = _r_direct(x[below], y[below])
        if r <= 0:
            on_b = y_on_x == t
            return float(t), float(y[on_b][0]) if on_b.any() else float(slope * t + intercept)
    raise AssertionError("no step with r_below <= 0")


@pytest.mark.parametrize("seed", range(6))
def test_costes_histogram_path_equals_sequential_reference(seed):
    rng = np.random.default_rng(100 + seed)
    shape = (14, 15) if seed % 2 else (3, 7, 9)
    sig = rng.integers(0, 40, shape)
    dtype = [np.uint8, np.uint16, np.int16][seed % 3]
    a = (sig + rng.integers(0, 25, shape)).astype(dtype)
    b = (sig // 2 + rng.integers(0, 25, shape) + (seed % 3 == 2) * -5).astype(dtype)
    x, y = a.astype(float).ravel(), b.astype(float).ravel()
    expected = _costes_sequential(x, y)
    assert costes_thresholds(a, b) == expected  # integer (histogram) path
    assert costes_thresholds(a.astype(float), b.astype(float)) == expected  # sort path
    m = rng.random(shape) > 0.25
    assert costes_thresholds(a, b, m) == _costes_sequential(a[m].astype(float), b[m].astype(float))


def test_costes_quality_warnings(caplog):
    rng = np.random.default_rng(50)
    sig = np.zeros((40, 40))
    sig[5:9, 5:9] = 100.0  # a small bright spot: thresholds end up far above the means
    a = sig + rng.normal(20, 2, sig.shape)
    b = 0.5 * sig + rng.normal(40, 2, sig.shape)  # offset: intercept far from zero
    with caplog.at_level(logging.WARNING, logger="lungtrack.coloc"):
        costes_thresholds(a, b)
    assert "y-intercept far from zero" in caplog.text
    assert "threshold of channel a too high" in caplog.text
    caplog.clear()
    tiny = np.array([0.0, 4, 2, 10, 11, 12])
    with caplog.at_level(logging.WARNING, logger="lungtrack.coloc"):
        costes_thresholds(tiny, np.array([4.0, 0, 2, 10, 11, 12]))
    assert "only 3 pixels are above both thresholds" in caplog.text


# ----------------------------------------------------------------------------- randomisation details


def test_costes_test_psf_blocks_and_details():
    a = _smooth_field((4, 30, 33), 60)
    b = a + 0.3 * _smooth_field((4, 30, 33), 61)
    d = costes_test(a, b, n=30, psf_um=(1.3, 0.5, 0.5), spacing_um=(0.65, 0.16, 0.16), return_details=True)
    assert d["block_size"] == (2, 3, 3)  # anisotropic: round(1.3/0.65), round(0.5/0.16)
    assert d["p"] == costes_test(a, b, n=30, block_size=(2, 3, 3))
    r_obs, r_rand = coloc._randomised_r(a, b, np.ones(a.shape, bool), (2, 3, 3), 30, 0)
    from scipy.stats import norm

    assert d["r_obs"] == r_obs
    assert d["r_rand_mean"] == pytest.approx(r_rand.mean(), abs=1e-15)
    assert d["r_rand_sd"] == pytest.approx(r_rand.std(ddof=1), abs=1e-15)
    assert d["p_coloc2"] == pytest.approx(norm.cdf(r_obs, r_rand.mean(), r_rand.std(ddof=1)), abs=1e-12)
    assert d["fraction_ge"] == pytest.approx(np.mean(r_rand >= r_obs), abs=1e-15)
    assert d["n_valid"] == 30
    assert d["p"] == pytest.approx((1 + np.sum(r_rand >= r_obs)) / 31, abs=1e-15)
    # scalar PSF and spacing
    assert costes_test(a, b, n=3, psf_um=0.5, spacing_um=0.16, return_details=True)["block_size"] == (3, 3, 3)
    with pytest.raises(ValueError, match="spacing_um"):
        costes_test(a, b, psf_um=0.5)
    with pytest.raises(ValueError, match="not both"):
        costes_test(a, b, psf_um=0.5, spacing_um=0.1, block_size=3)
    with pytest.raises(ValueError, match="psf_um must be"):
        costes_test(a, b, psf_um=(0.5, 0.5), spacing_um=0.1)


def test_costes_test_default_n_is_200():
    a = _smooth_field((30, 30), 70)
    assert costes_test(a, a, return_details=True)["n_valid"] == 200
    assert costes_test(a, a) == pytest.approx(1 / 201, abs=1e-15)


@pytest.mark.parametrize(("slope", "intercept"), [(1.0, 0.0), (2.0, 1.0), (0.5, -3.0), (1.37, 2.2)])
def test_costes_integer_scan_equals_sorted_scan(slope, intercept):
    # With slope 1 / intercept 0 (and 2 / 1, 0.5 / -3) grey levels of a and images of b's
    # levels on the line coincide, so the histogram scan must merge its a- and b-bins.
    rng = np.random.default_rng(7)
    sig = rng.integers(0, 60, 5000)
    a = (sig + rng.integers(0, 30, sig.size)).astype(np.uint16)
    b = (sig + rng.integers(0, 30, sig.size) + 5).astype(np.uint16)
    c_int, r_int, b_int = coloc._scan_integer(a, b, slope, intercept)
    c_srt, r_srt, b_srt = coloc._scan_sorted(a.astype(float), b.astype(float), slope, intercept)
    np.testing.assert_array_equal(c_int, c_srt)
    np.testing.assert_allclose(r_int, r_srt, rtol=1e-9, atol=1e-12, equal_nan=True)
    got = [b_int(t) for t in c_int]
    want = [b_srt(t) for t in c_srt]
    np.testing.assert_array_equal(got, want)
    assert sum(not math.isnan(v) for v in got) > 10  # some candidates do come from b


def test_costes_thresholds_too_low_warning(caplog):
    # On a line except one dim b pixel: r of the below set never drops to 0, and the
    # lowest pair lies below a's smallest intensity (Coloc 2: "thresholds too low").
    a = np.array([5, 6, 7, 8, 9, 10, 11, 12.0])
    b = np.array([2, 6, 7, 8, 9, 10, 11, 12.0])
    with caplog.at_level(logging.WARNING, logger="lungtrack.coloc"):
        t_a, t_b = costes_thresholds(a, b)
    assert t_a < a.min() and t_b == 2.0
    assert "thresholds too low" in caplog.text
