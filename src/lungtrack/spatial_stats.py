"""MSC-macrophage relations against chance, inside the tissue mask.

Two tools answer "do macrophages gather around MSCs more than chance would put them
there?", where chance only places cells where cells can be (tissue, not air):

- `null_model_test`: place the macrophages (or the MSCs) at random inside the tissue
  mask, keeping their number and their shapes, N seeded times; compare the observed
  per-image statistics (mean nearest distance, mean count within r, fraction in
  contact) with the null distribution (mean, envelope, empirical p-value).
- `cross_k`, `cross_k_envelope`: cross-type Ripley K, Besag's L and the pair
  correlation g of MSC vs macrophage centroids over r in um, translation edge
  correction for an arbitrary mask, and a simulation envelope with a global test.

Works in 2D and 3D; coordinates and radii in um.

Examples
--------
>>> tissue = np.ones((60, 60), bool)
>>> a = np.array([[30.0, 30.0]]); b = np.array([[30.0, 35.0], [5.0, 5.0]])
>>> k = cross_k(a, b, tissue, (1, 1, 1), [4.0, 10.0])
>>> k.k_um2.round(1).tolist()   # 1 pair within 10 um: |W| * e / (n_a n_b) = 3600 * 3600/(55*60) / 2
[0.0, 1963.6]
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .spatial import check_spacing, object_centroids_um, surface_distance_um

# --------------------------------------------------------------------------- random placement


def _tissue_mask(tissue, shape):
    if tissue is None:
        return np.ones(shape, bool)
    tissue = np.asarray(tissue, bool)
    if tissue.shape != tuple(shape):
        raise ValueError(f"tissue mask has shape {tissue.shape}; it must match the label images' shape {tuple(shape)}")
    if not tissue.any():
        raise ValueError("tissue mask is empty: there is nowhere to place cells at random")
    return tissue


def random_points_in_mask(mask: np.ndarray, n: int, spacing_um, rng, *, _flat=None) -> np.ndarray:
    """``n`` points (um) uniform inside a voxel mask: a random voxel, then uniform within it.

    Examples
    --------
    >>> m = np.zeros((5, 5), bool); m[2, 3] = True
    >>> p = random_points_in_mask(m, 100, (1, 2.0, 1.0), np.random.default_rng(0))
    >>> bool(np.all(np.abs(p - [4.0, 3.0]) <= [1.0, 0.5]))
    True
    """
    mask = np.asarray(mask, bool)
    sp = np.asarray(check_spacing(spacing_um, mask.ndim))
    flat = np.flatnonzero(mask) if _flat is None else _flat
    if flat.size == 0:
        raise ValueError("mask is empty: there is nowhere to place points")
    idx = np.stack(np.unravel_index(flat[rng.integers(flat.size, size=n)], mask.shape), 1)
    return (idx + rng.uniform(-0.5, 0.5, (n, mask.ndim))) * sp


def place_at_random(labels: np.ndarray, tissue: np.ndarray | None, rng, *, avoid: np.ndarray | None = None
                    ) -> np.ndarray:
    """Move every object of ``labels`` to a random place inside ``tissue``, keeping its shape.

    Each object's voxel pattern is translated so that its centroid voxel lands on a
    uniformly drawn tissue voxel that is free (not on an object placed before, nor on
    ``avoid``; redrawn otherwise). Voxels falling outside the image, on an object
    placed before, or on ``avoid`` are dropped, so objects keep their number and, away
    from borders and neighbours, their exact size. Labels keep their values.

    Examples
    --------
    >>> lab = np.zeros((20, 20), np.int32); lab[2:5, 2:5] = 1
    >>> t = np.zeros((20, 20), bool); t[10, 10] = True
    >>> moved = place_at_random(lab, t, np.random.default_rng(0))
    >>> np.argwhere(moved == 1).min(0).tolist(), int((moved == 1).sum())
    ([9, 9], 9)
    """
    labels = np.asarray(labels)
    tissue = _tissue_mask(tissue, labels.shape)
    out = np.zeros_like(labels)
    free = np.ones(labels.shape, bool) if avoid is None else ~np.asarray(avoid, bool)
    tvox = np.flatnonzero(tissue)
    boxes = ndi.find_objects(labels)
    shape = np.asarray(labels.shape)
    # A per-object loop: each object keeps its own voxel pattern (no library places
    # arbitrary shapes in an arbitrary mask); objects are small, the loop is cheap.
    for i, box in enumerate(boxes, 1):
        if box is None:
            continue
        m = labels[box] == i
        rel = np.argwhere(m)
        c = np.rint(rel.mean(0)).astype(int)
        # Redraw a centre on an occupied voxel, so that no object vanishes (number kept).
        for _try in range(100):
            target = np.asarray(np.unravel_index(tvox[rng.integers(tvox.size)], labels.shape))
            if free[tuple(target)]:
                break
        pos = rel - c + target
        ok = np.all((pos >= 0) & (pos < shape), axis=1)
        pos = pos[ok]
        pos = pos[free[tuple(pos.T)]]
        out[tuple(pos.T)] = i
        free[tuple(pos.T)] = False
    return out


# --------------------------------------------------------------------------- null model

def _statistics(msc_labels, mac_labels, sp, radii_um, tol):
    """Per-image means of the per-MSC relations (as `msc_macrophage_relations` defines them)."""
    _, msc_c, _ = object_centroids_um(msc_labels, sp)
    _, mac_c, _ = object_centroids_um(mac_labels, sp)
    if len(msc_c) == 0 or len(mac_c) == 0:
        out = {"mean_nearest_macrophage_um": np.nan, "mean_nearest_macrophage_surface_um": np.nan}
        out.update({f"mean_n_macrophage_within_{r:g}um": np.nan for r in radii_um})
        out["frac_msc_contacting_macrophage"] = np.nan
        return out
    out = _point_statistics(msc_c, mac_c, radii_um)
    _, gap, _ = surface_distance_um(msc_labels, mac_labels, sp)
    out["mean_nearest_macrophage_surface_um"] = float(gap.mean())
    out["frac_msc_contacting_macrophage"] = float(np.mean(gap <= tol))
    order = ["mean_nearest_macrophage_um", "mean_nearest_macrophage_surface_um"] + [
        f"mean_n_macrophage_within_{r:g}um" for r in radii_um] + ["frac_msc_contacting_macrophage"]
    return {k: out[k] for k in order}


def _point_statistics(msc_c, mac_c, radii_um):
    tree = cKDTree(mac_c)
    d, _ = tree.query(msc_c, k=1)
    out = {"mean_nearest_macrophage_um": float(d.mean())}
    for r in radii_um:
        out[f"mean_n_macrophage_within_{r:g}um"] = float(tree.query_ball_point(msc_c, r, return_length=True).mean())
    return out


def _attraction_is_small(name):
    return "nearest" in name  # distances shrink when macrophages gather; counts and contacts grow


def empirical_p(observed: float, null: np.ndarray, *, smaller: bool, alternative: str = "attraction") -> float:
    """Monte Carlo p-value ``(1 + #{null at least as extreme}) / (N + 1)`` (Davison & Hinkley 1997).

    ``smaller`` says whether attraction makes the statistic smaller (a distance) or
    larger (a count). ``alternative``: ``attraction``, ``avoidance`` or ``two-sided``.

    Examples
    --------
    >>> empirical_p(1.0, np.arange(2.0, 21.0), smaller=True)
    0.05
    """
    null = np.asarray(null, float)
    null = null[np.isfinite(null)]
    if not np.isfinite(observed) or null.size == 0:
        return float("nan")
    n = null.size
    p_small = (1 + np.sum(null <= observed)) / (n + 1)
    p_large = (1 + np.sum(null >= observed)) / (n + 1)
    if alternative == "two-sided":
        return float(min(1.0, 2 * min(p_small, p_large)))
    if alternative not in ("attraction", "avoidance"):
        raise ValueError(f"alternative must be 'attraction', 'avoidance' or 'two-sided', got {alternative!r}")
    want_small = smaller == (alternative == "attraction")
    return float(p_small if want_small else p_large)


def null_model_test(msc_labels: np.ndarray, macrophage_labels: np.ndarray, spacing_um, *,
                    tissue: np.ndarray | None = None, n_simulations: int = 99, seed: int = 0,
                    radii_um=(25.0, 50.0), contact_tolerance_um: float = 2.0, move: str = "macrophage",
                    placement: str = "shapes", alternative: str = "attraction", envelope: float = 0.95,
                    avoid_other: bool = False, return_null: bool = False):
    """Observed MSC-macrophage statistics against random placement inside the tissue.

    Parameters
    ----------
    msc_labels, macrophage_labels : ndarray of int
        Label images, (Y, X) or (Z, Y, X).
    spacing_um : sequence of float
        (z, y, x) voxel size in um.
    tissue : ndarray of bool, optional
        Where cells can be (air spaces excluded); the whole image if None.
    n_simulations : int
        Random placements (99 gives p down to 0.01; 199 down to 0.005).
    seed : int
        Seed: the same seed gives the same null distribution.
    radii_um, contact_tolerance_um
        As in `lungtrack.spatial.msc_macrophage_relations`.
    move : {"macrophage", "msc"}
        Which cells are placed at random; the others stay where they are.
    placement : {"shapes", "points"}
        ``shapes`` moves whole label shapes (`place_at_random`; all statistics incl.
        surface distance and contact). ``points`` moves only centroids (uniform in
        the tissue; centre distance and counts only), fast for 10^4-10^5 cells.
    alternative : {"attraction", "avoidance", "two-sided"}
        Direction of the p-value.
    envelope : float
        Central share of the null distribution given as ``null_low``-``null_high``.
    avoid_other : bool
        With ``placement="shapes"``: keep the moved cells off the fixed cells' voxels
        (a hard core between types). Off by default: MSC and macrophage labels come
        from separate channels and overlap in real images (2D sections, engulfment),
        and a null that forbids what the data allow pushes the moved cells away and
        inflates the attraction p-values (on random scenes it rejected 11% at
        alpha 0.05 instead of 5%). Use it only when the two label images never overlap.

    Returns
    -------
    DataFrame
        One row per statistic: ``statistic, observed, null_mean, null_sd, null_low,
        null_high, p_value, n_simulations, alternative``. With ``return_null``, also
        the (n_simulations, n_statistics) null DataFrame.

    Notes
    -----
    The p-value is ``(1 + #{simulations at least as extreme}) / (N + 1)``
    (Besag & Diggle 1977; Davison & Hinkley 1997); under the null it is uniform on
    ``{1/(N+1), ..., 1}``.
    """
    msc_labels = np.asarray(msc_labels)
    macrophage_labels = np.asarray(macrophage_labels)
    if macrophage_labels.shape != msc_labels.shape:
        raise ValueError(f"macrophage_labels has shape {macrophage_labels.shape}; it must match msc_labels' "
                         f"shape {msc_labels.shape}")
    if move not in ("macrophage", "msc"):
        raise ValueError(f"move must be 'macrophage' or 'msc', got {move!r}")
    if placement not in ("shapes", "points"):
        raise ValueError(f"placement must be 'shapes' or 'points', got {placement!r}")
    if n_simulations < 1:
        raise ValueError(f"n_simulations must be >= 1, got {n_simulations}")
    sp = check_spacing(spacing_um, msc_labels.ndim)
    tissue = _tissue_mask(tissue, msc_labels.shape)
    radii_um = [float(r) for r in radii_um]
    rng = np.random.default_rng(seed)
    if placement == "shapes":
        observed = _statistics(msc_labels, macrophage_labels, sp, radii_um, contact_tolerance_um)
        sims = []
        fixed = (msc_labels if move == "macrophage" else macrophage_labels) > 0
        avoid = fixed if avoid_other else None
        for _ in range(n_simulations):
            if move == "macrophage":
                sims.append(_statistics(msc_labels, place_at_random(macrophage_labels, tissue, rng, avoid=avoid),
                                        sp, radii_um, contact_tolerance_um))
            else:
                sims.append(_statistics(place_at_random(msc_labels, tissue, rng, avoid=avoid),
                                        macrophage_labels, sp, radii_um, contact_tolerance_um))
    else:
        _, msc_c, _ = object_centroids_um(msc_labels, sp)
        _, mac_c, _ = object_centroids_um(macrophage_labels, sp)
        if len(msc_c) == 0 or len(mac_c) == 0:
            observed = {"mean_nearest_macrophage_um": np.nan, **{f"mean_n_macrophage_within_{r:g}um": np.nan
                                                                 for r in radii_um}}
            sims = [observed]
        else:
            observed = _point_statistics(msc_c, mac_c, radii_um)
            flat = np.flatnonzero(tissue)
            sims = []
            for _ in range(n_simulations):
                if move == "macrophage":
                    moved = random_points_in_mask(tissue, len(mac_c), sp, rng, _flat=flat)
                    sims.append(_point_statistics(msc_c, moved, radii_um))
                else:
                    moved = random_points_in_mask(tissue, len(msc_c), sp, rng, _flat=flat)
                    sims.append(_point_statistics(moved, mac_c, radii_um))
    null = pd.DataFrame(sims, columns=list(observed))
    q = (1 - envelope) / 2
    rows = []
    for name, obs in observed.items():
        v = null[name].to_numpy(float)
        fin = v[np.isfinite(v)]
        rows.append({
            "statistic": name, "observed": obs,
            "null_mean": float(fin.mean()) if fin.size else np.nan,
            "null_sd": float(fin.std(ddof=1)) if fin.size > 1 else np.nan,
            "null_low": float(np.quantile(fin, q)) if fin.size else np.nan,
            "null_high": float(np.quantile(fin, 1 - q)) if fin.size else np.nan,
            "p_value": empirical_p(obs, v, smaller=_attraction_is_small(name), alternative=alternative),
            "n_simulations": int(n_simulations), "alternative": alternative,
        })
    table = pd.DataFrame(rows)
    return (table, null) if return_null else table


# --------------------------------------------------------------------------- cross-type K, L, g

def set_covariance(mask: np.ndarray, spacing_um, max_voxels: int = 2 ** 18):
    """Set covariance ``gamma(h) = |W ∩ (W + h)|`` of a mask, by FFT autocorrelation.

    Large masks are first averaged over blocks so that the grid has at most about
    ``max_voxels`` voxels (gamma is smooth in h, so this costs little accuracy).
    Returns ``(gamma, step_um)``: gamma in um^ndim on a grid of lags centred at the
    middle index, with lag step ``step_um`` per axis.
    """
    from scipy.signal import fftconvolve

    mask = np.asarray(mask, bool)
    sp = np.asarray(check_spacing(spacing_um, mask.ndim))
    f = max(1, int(math.ceil((mask.size / max_voxels) ** (1 / mask.ndim))))
    if f > 1:
        pad = [(0, (-n) % f) for n in mask.shape]
        m = np.pad(mask.astype(np.float32), pad)
        shp = []
        for n in m.shape:
            shp += [n // f, f]
        m = m.reshape(shp).mean(axis=tuple(range(1, 2 * mask.ndim, 2)))
    else:
        m = mask.astype(np.float32)
    step = sp * f
    g = fftconvolve(m, m[(slice(None, None, -1),) * m.ndim], mode="full")
    return np.clip(g, 0, None) * float(np.prod(step)), step


def _pairs(a, b, r_max):
    ta, tb = cKDTree(a), cKDTree(b)
    sdm = ta.sparse_distance_matrix(tb, r_max, output_type="ndarray")
    return sdm["i"], sdm["j"], sdm["v"]


def _translation_weights(a, b, i, j, gamma, step, area):
    """Ohser's translation correction ``e_ij = |W| / |W ∩ (W + (b_j - a_i))|``."""
    centre = (np.asarray(gamma.shape) - 1) // 2
    lag = np.rint((b[j] - a[i]) / step).astype(int) + centre
    lag = np.clip(lag, 0, np.asarray(gamma.shape) - 1)
    g = gamma[tuple(lag.T)]
    with np.errstate(divide="ignore"):
        return np.where(g > 0, area / np.maximum(g, 1e-300), 0.0)


def _l_from_k(k, ndim):
    k = np.clip(k, 0, None)
    return np.sqrt(k / math.pi) if ndim == 2 else np.cbrt(3 * k / (4 * math.pi))


def cross_k(points_a: np.ndarray, points_b: np.ndarray, tissue: np.ndarray, spacing_um, radii_um, *,
            bandwidth_um: float | None = None, _cov=None) -> pd.DataFrame:
    """Cross-type Ripley K, Besag's L and pair correlation g of two point sets inside a mask.

    Parameters
    ----------
    points_a, points_b : ndarray (n, ndim)
        Centroids in um, (y, x) or (z, y, x), voxel ``i`` at ``i * spacing`` (as in the
        objects table), e.g. MSCs (a) and macrophages (b).
    tissue : ndarray of bool
        The observation window W (tissue mask, air excluded), (Y, X) or (Z, Y, X).
    spacing_um : sequence of float
        (z, y, x) voxel size in um.
    radii_um : sequence of float
        Distances r (> 0) at which to evaluate.
    bandwidth_um : float, optional
        Epanechnikov kernel half-width for g; default ``0.15 / lambda**(1/ndim)``
        with ``lambda = (n_a + n_b) / |W|`` (Stoyan & Stoyan 1994).

    Returns
    -------
    DataFrame
        ``r_um, k_um2`` (``k_um3`` in 3D)``, l_um, l_minus_r_um, g, k_csr`` (the CSR
        value: pi r^2 or 4/3 pi r^3). NaN without points.

    Notes
    -----
    ``K(r) = |W| / (n_a n_b) * sum_ij 1(|a_i - b_j| <= r) e_ij`` with the translation
    correction ``e_ij = |W| / |W ∩ (W + b_j - a_i)|`` (Ohser 1983; Baddeley, Rubak &
    Turner 2015, sec. 7.4 and 7.10). ``L = sqrt(K / pi)`` (2D) or
    ``(3K / 4 pi)^(1/3)`` (3D); under independence (CSR) ``L(r) = r`` and ``g = 1``.
    ``g(r) = |W| / (n_a n_b) * sum_ij k_h(r - d_ij) e_ij / (2 pi r)`` (``4 pi r^2``
    in 3D).
    """
    tissue = np.asarray(tissue, bool)
    ndim = tissue.ndim
    sp = check_spacing(spacing_um, ndim)
    a = np.asarray(points_a, float).reshape(-1, ndim)
    b = np.asarray(points_b, float).reshape(-1, ndim)
    r = np.asarray(radii_um, float)
    if r.size == 0 or np.any(r <= 0):
        raise ValueError("radii_um must be a non-empty sequence of distances > 0 (um)")
    size_col = "k_um2" if ndim == 2 else "k_um3"
    k_csr = math.pi * r ** 2 if ndim == 2 else 4 / 3 * math.pi * r ** 3
    area = float(tissue.sum()) * float(np.prod(sp))
    if len(a) == 0 or len(b) == 0 or area == 0:
        nan = np.full(r.size, np.nan)
        return pd.DataFrame({"r_um": r, size_col: nan, "l_um": nan, "l_minus_r_um": nan, "g": nan, "k_csr": k_csr})
    gamma, step = _cov if _cov is not None else set_covariance(tissue, sp)
    lam = (len(a) + len(b)) / area
    h = bandwidth_um if bandwidth_um is not None else 0.15 / lam ** (1 / ndim)
    i, j, d = _pairs(a, b, float(r.max()) + h)
    e = _translation_weights(a, b, i, j, gamma, step, area)
    scale = area / (len(a) * len(b))
    order = np.argsort(d)
    d, e = d[order], e[order]
    cum = np.concatenate([[0.0], np.cumsum(e)])
    k = scale * cum[np.searchsorted(d, r, side="right")]
    # Pair correlation: Epanechnikov kernel on the pair distances within r +- h (sorted, so a slice each).
    lo, hi = np.searchsorted(d, r - h, side="left"), np.searchsorted(d, r + h, side="right")
    ksum = np.empty(r.size)
    for n_, (a_, b_) in enumerate(zip(lo, hi)):
        u = (r[n_] - d[a_:b_]) / h
        ksum[n_] = np.sum(np.clip(0.75 * (1 - u ** 2) / h, 0, None) * e[a_:b_])
    surface = 2 * math.pi * r if ndim == 2 else 4 * math.pi * r ** 2
    g = scale * ksum / surface
    ell = _l_from_k(k, ndim)
    return pd.DataFrame({"r_um": r, size_col: k, "l_um": ell, "l_minus_r_um": ell - r, "g": g, "k_csr": k_csr})


def cross_k_envelope(points_a: np.ndarray, points_b: np.ndarray, tissue: np.ndarray, spacing_um, radii_um, *,
                     n_simulations: int = 99, seed: int = 0, move: str = "b", envelope: float = 0.95,
                     bandwidth_um: float | None = None) -> pd.DataFrame:
    """`cross_k` with a simulation envelope: one point set placed uniformly in the tissue N times.

    The other set stays where it is (the null conditions on it, as Lotwick &
    Silverman 1982 condition on each component's own pattern).

    Returns
    -------
    DataFrame
        The `cross_k` columns plus ``l_minus_r_null_mean_um, l_minus_r_low_um,
        l_minus_r_high_um, g_low, g_high``. ``attrs``: ``p_value`` of the global
        maximum-absolute-deviation test of L(r) - r over all r (Diggle 2003;
        Baddeley et al. 2014), ``n_simulations``, ``seed``.

    Examples
    --------
    >>> rng = np.random.default_rng(1); tissue = np.ones((100, 100), bool)
    >>> a = rng.uniform(0, 99, (30, 2)); b = rng.uniform(0, 99, (40, 2))
    >>> env = cross_k_envelope(a, b, tissue, (1, 1, 1), [5, 10, 20], n_simulations=19)
    >>> bool(env.attrs["p_value"] > 0.05), list(env.columns[-5:])
    (True, ['l_minus_r_null_mean_um', 'l_minus_r_low_um', 'l_minus_r_high_um', 'g_low', 'g_high'])
    """
    tissue = np.asarray(tissue, bool)
    sp = check_spacing(spacing_um, tissue.ndim)
    if move not in ("a", "b"):
        raise ValueError(f"move must be 'a' or 'b', got {move!r}")
    cov = set_covariance(tissue, sp)
    obs = cross_k(points_a, points_b, tissue, sp, radii_um, bandwidth_um=bandwidth_um, _cov=cov)
    a = np.asarray(points_a, float).reshape(-1, tissue.ndim)
    b = np.asarray(points_b, float).reshape(-1, tissue.ndim)
    rng = np.random.default_rng(seed)
    ls, gs = [], []
    if len(a) and len(b) and tissue.any():
        if bandwidth_um is None:  # the same bandwidth for every simulation
            area = float(tissue.sum()) * float(np.prod(sp))
            bandwidth_um = 0.15 / ((len(a) + len(b)) / area) ** (1 / tissue.ndim)
        flat = np.flatnonzero(tissue)
        for _ in range(n_simulations):
            if move == "b":
                sim = cross_k(a, random_points_in_mask(tissue, len(b), sp, rng, _flat=flat), tissue, sp, radii_um,
                              bandwidth_um=bandwidth_um, _cov=cov)
            else:
                sim = cross_k(random_points_in_mask(tissue, len(a), sp, rng, _flat=flat), b, tissue, sp, radii_um,
                              bandwidth_um=bandwidth_um, _cov=cov)
            ls.append(sim["l_minus_r_um"].to_numpy())
            gs.append(sim["g"].to_numpy())
    q = (1 - envelope) / 2
    out = obs.copy()
    if ls:
        L, G = np.array(ls), np.array(gs)
        mean = L.mean(0)
        out["l_minus_r_null_mean_um"] = mean
        out["l_minus_r_low_um"], out["l_minus_r_high_um"] = np.quantile(L, q, axis=0), np.quantile(L, 1 - q, axis=0)
        out["g_low"], out["g_high"] = np.quantile(G, q, axis=0), np.quantile(G, 1 - q, axis=0)
        t_obs = np.max(np.abs(obs["l_minus_r_um"].to_numpy() - mean))
        t_sim = np.max(np.abs(L - mean), axis=1)
        p = (1 + np.sum(t_sim >= t_obs)) / (len(t_sim) + 1)
    else:
        for c in ("l_minus_r_null_mean_um", "l_minus_r_low_um", "l_minus_r_high_um", "g_low", "g_high"):
            out[c] = np.nan
        p = np.nan
    out.attrs.update(p_value=float(p), n_simulations=int(n_simulations), seed=seed, envelope=envelope)
    return out


def nearest_distances_null(msc_points_um, n_macrophages: int, tissue: np.ndarray, spacing_um, *,
                           n_simulations: int = 99, seed: int = 0) -> np.ndarray:
    """Nearest MSC-to-macrophage centroid distances when the macrophages are placed at random in the tissue.

    The null for the distance distribution: MSCs stay where they are; the same number
    of macrophage centroids is drawn uniformly inside the tissue mask (air spaces
    excluded), ``n_simulations`` times.

    Parameters
    ----------
    msc_points_um : array_like, shape (n, ndim)
        MSC centroids in um (voxel i at ``i * spacing``).
    n_macrophages : int
    tissue : ndarray of bool
        Tissue mask (2D or 3D).
    spacing_um : sequence of float

    Returns
    -------
    ndarray, shape (n_simulations, n)
        One row of distances (um) per simulation; ``inf`` rows when there is no
        macrophage to place.

    Examples
    --------
    >>> tissue = np.zeros((50, 50), bool); tissue[:, :10] = True
    >>> d = nearest_distances_null([[25.0, 45.0]], 3, tissue, (1, 1, 1), n_simulations=20)
    >>> bool(d.shape == (20, 1) and d.min() >= 35)  # macrophages can only be in the tissue strip
    True
    """
    tissue = np.asarray(tissue, bool)
    sp = check_spacing(spacing_um, tissue.ndim)
    pts = np.asarray(msc_points_um, float).reshape(-1, tissue.ndim)
    out = np.full((n_simulations, len(pts)), np.inf)
    if n_macrophages <= 0 or len(pts) == 0 or not tissue.any():
        return out
    rng = np.random.default_rng(seed)
    flat = np.flatnonzero(tissue)
    for k in range(n_simulations):
        mac = random_points_in_mask(tissue, n_macrophages, sp, rng, _flat=flat)
        out[k] = cKDTree(mac).query(pts)[0]
    return out
