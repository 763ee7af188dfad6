"""Simulated lung sections and experiments with exact ground truth.

Everything a test or a user needs to check lungtrack against known truth:
alveolar septa and vessels with autofluorescence, tissue nuclei, MSCs (15-30 um,
bright cytoplasmic label, some in touching clusters), macrophages (10-15 um,
granular marker, some recruited to MSCs), dying MSCs fragmented into puncta,
MSC puncta inside engulfing macrophages, uneven illumination, Poisson and read
noise. 2D sections and z-stacks; seeded and deterministic.

Truth is defined before blur and noise: a pixel belongs to a cell when it lies
inside that cell's body; ``n_msc`` counts *intact* MSCs only (fragmented dying
MSCs and puncta inside macrophages are listed separately).

Examples
--------
>>> s = simulate_section(shape=(128, 128), n_msc=3, n_macrophage=4, seed=1)
>>> s.image.shape, s.channel_names
((3, 128, 128), ['DAPI', 'GFP', 'CD68'])
>>> int(s.labels["msc"].max()) == (s.cells.query("role == 'msc' and state == 'intact'").shape[0])
True
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

log = logging.getLogger(__name__)

CHANNELS = ["DAPI", "GFP", "CD68"]
#: Relative brightness (photons at full illumination) of each signal per channel.
_LEVELS = {
    "msc": {"GFP": 1400.0},
    "macrophage": {"CD68": 1000.0},
    "nucleus": {"DAPI": 900.0},
    "autofluorescence": {"DAPI": 60.0, "GFP": 220.0, "CD68": 120.0},
    "rbc": {"GFP": 450.0, "CD68": 250.0},
}


@dataclass
class SyntheticSection:
    """A simulated section and its ground truth.

    Attributes
    ----------
    image : ndarray
        uint16, (C, Y, X) or (C, Z, Y, X); channels ``channel_names``.
    spacing_um : tuple
        (z, y, x) voxel size in um (z = 1.0 for 2D).
    labels : dict of ndarray
        Truth label images: ``msc`` (intact MSCs), ``msc_fragments`` (puncta of
        dying MSCs, labelled by their cell), ``msc_puncta`` (MSC label inside
        macrophages, labelled by the macrophage), ``macrophage``, ``nuclei`` and
        ``tissue`` (0/1).
    cells : DataFrame
        One row per simulated cell: role, label, state, cluster, centroid_*_um,
        diameter_um, n_puncta, contact_msc (macrophages placed against an MSC).
    """

    image: np.ndarray
    spacing_um: tuple[float, float, float]
    labels: dict[str, np.ndarray]
    cells: pd.DataFrame
    channel_names: list[str] = field(default_factory=lambda: list(CHANNELS))

    @property
    def tissue_area_mm2(self) -> float:
        """Tissue area in mm2 (for z-stacks: the projected tissue area, as the pipeline reports)."""
        t = self.labels["tissue"] > 0
        if t.ndim == 3:
            t = t.any(axis=0)
        return float(t.sum()) * float(np.prod(self.spacing_um[1:])) * 1e-6

    @property
    def tissue_volume_mm3(self) -> float:
        """Tissue volume in mm3 of a z-stack (tissue voxels x dz dy dx, as the pipeline reports); NaN for 2D."""
        t = self.labels["tissue"] > 0
        return float(t.sum()) * float(np.prod(self.spacing_um)) * 1e-9 if t.ndim == 3 else math.nan

    @property
    def n_msc(self) -> int:
        return int(((self.cells.role == "msc") & (self.cells.state == "intact")).sum())


class _Scene:
    """Cell bodies share pixels by the nearest-surface rule, so truth labels are exact partitions."""

    def __init__(self, shape, spacing):
        self.shape = tuple(shape)
        self.ndim = len(shape)
        self.spacing = np.asarray(spacing, float)
        self.owner = np.zeros(shape, np.int32)
        self.rho = np.full(shape, np.inf, np.float32)
        self.objects: list[dict] = []

    def bbox(self, center, radius):
        lo = np.floor((np.asarray(center) - radius) / self.spacing).astype(int)
        hi = np.ceil((np.asarray(center) + radius) / self.spacing).astype(int) + 1
        lo = np.clip(lo, 0, self.shape)
        hi = np.clip(hi, 0, self.shape)
        if np.any(hi <= lo):
            return None
        return tuple(slice(a, b) for a, b in zip(lo, hi))

    def rho_in(self, sl, center, semi, angle, rough=None):
        """Normalised ellipsoid distance (1 on the surface) inside the bbox ``sl``."""
        axes = [np.arange(s.start, s.stop) * sp - c for s, sp, c in zip(sl, self.spacing, center)]
        grids = np.meshgrid(*axes, indexing="ij")
        y, x = grids[-2], grids[-1]
        ca, sa = math.cos(angle), math.sin(angle)
        u, v = ca * y + sa * x, -sa * y + ca * x
        r2 = (u / semi[-2]) ** 2 + (v / semi[-1]) ** 2
        if self.ndim == 3:
            r2 = r2 + (grids[0] / semi[0]) ** 2
        rho = np.sqrt(r2)
        if rough is not None:
            rho = rho * rough
        return rho

    def add(self, center, semi, angle, rough=None, **info) -> int:
        sl = self.bbox(center, max(semi) * 1.3)
        oid = len(self.objects) + 1
        info.update(id=oid, center=np.asarray(center, float), semi=np.asarray(semi, float), angle=angle, sl=sl)
        self.objects.append(info)
        if sl is None:
            return oid
        rho = self.rho_in(sl, center, semi, angle, rough)
        take = (rho < 1.0) & (rho < self.rho[sl])
        self.owner[sl][take] = oid
        self.rho[sl][take] = rho[take]
        return oid

    def free(self, center, radius, allowed=(0,)) -> bool:
        sl = self.bbox(center, radius)
        if sl is None:
            return False
        rho = self.rho_in(sl, center, [radius] * self.ndim, 0.0)
        return bool(np.isin(self.owner[sl][rho < 1.0], allowed).all())


def _septa(shape, spacing, rng, alveolus_um, wall_um):
    """Alveolar walls: a jittered Voronoi foam whose faces are the septa."""
    spacing = np.asarray(spacing, float)
    extent = np.asarray(shape) * spacing
    n_side = np.maximum(1, np.round(extent / alveolus_um).astype(int))
    grids = np.meshgrid(*[(np.arange(n) + 0.5) * (e / n) for n, e in zip(n_side, extent)], indexing="ij")
    seeds = np.stack([g.ravel() for g in grids], 1)
    seeds = seeds + rng.uniform(-0.35, 0.35, seeds.shape) * (extent / n_side)
    coords = np.indices(shape).reshape(len(shape), -1).T * spacing
    d, _ = cKDTree(seeds).query(coords, k=2)
    wall = (d[:, 1] - d[:, 0]) < wall_um
    return wall.reshape(shape)


def _smooth_noise(shape, rng, sigma_px, lo=0.6, hi=1.4):
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma_px)
    f = (f - f.min()) / max(float(np.ptp(f)), 1e-9)
    return lo + (hi - lo) * f


def simulate_section(
    *,
    shape: tuple[int, ...] = (384, 384),
    pixel_size_um: float = 1.0,
    z_step_um: float = 2.0,
    n_msc: int = 20,
    msc_per_mm2: float | None = None,
    n_macrophage: int = 25,
    frac_msc_clustered: float = 0.3,
    n_msc_fragmented: int = 2,
    frac_macrophage_recruited: float = 0.4,
    frac_macrophage_engulfing: float = 0.3,
    msc_diameter_um: tuple[float, float] = (15.0, 30.0),
    macrophage_diameter_um: tuple[float, float] = (10.0, 15.0),
    alveolus_um: float = 60.0,
    septum_um: float = 9.0,
    illumination: float = 0.35,
    read_noise: float = 6.0,
    offset: float = 100.0,
    seed: int | np.random.SeedSequence = 0,
) -> SyntheticSection:
    """Simulate one multi-channel lung section (2D) or z-stack (3D) with exact truth.

    Parameters
    ----------
    shape : tuple of int
        (Y, X) for a section or (Z, Y, X) for a z-stack, in pixels.
    pixel_size_um, z_step_um : float
        Voxel size.
    n_msc : int
        Intact MSCs to place (fewer are placed if the tissue is full; a warning says so).
    msc_per_mm2 : float, optional
        Instead of ``n_msc``: place MSCs until their number per mm2 of tissue (septa,
        vessel walls and the cells themselves) reaches this density. MSC bodies add
        tissue area, so a fixed count would not give a fixed density.
    n_macrophage : int
        Macrophages to place.
    frac_msc_clustered : float
        Share of MSCs placed in touching clusters of 2-4 cells (emboli).
    n_msc_fragmented : int
        Dying MSCs rendered as scattered puncta (not counted as intact MSCs).
    frac_macrophage_recruited, frac_macrophage_engulfing : float
        Share of macrophages placed in contact with an MSC, and share containing MSC-label puncta.
    seed : int or SeedSequence
        Everything random derives from it.

    Returns
    -------
    SyntheticSection
    """
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    spacing3 = (float(z_step_um) if ndim == 3 else 1.0, float(pixel_size_um), float(pixel_size_um))
    spacing = np.asarray(spacing3[-ndim:])
    px = float(pixel_size_um)
    scene = _Scene(shape, spacing)

    septa = _septa(shape, spacing, rng, alveolus_um, septum_um)
    # One vessel: a ring-shaped wall; its lumen is not tissue but holds red cells.
    extent = np.asarray(shape) * spacing
    v_center = rng.uniform(0.25, 0.75, ndim) * extent
    v_r = rng.uniform(25, 40)
    grids = np.meshgrid(*[np.arange(n) * s - c for n, s, c in zip(shape, spacing, v_center)], indexing="ij")
    dist_v = np.sqrt(sum(g ** 2 for g in grids[-2:]))  # a tube along z in 3D
    lumen = dist_v < v_r
    wall = (dist_v >= v_r) & (dist_v < v_r + 7.0)
    septa = (septa & ~lumen) | wall
    del grids, dist_v

    tissue_idx = np.flatnonzero(septa)

    def random_tissue_point():
        i = tissue_idx[rng.integers(len(tissue_idx))]
        return np.asarray(np.unravel_index(i, shape), float) * spacing

    def semi_axes(diam):
        r = diam / 2.0
        s = [r, r * rng.uniform(0.8, 1.0)]
        if ndim == 3:
            s = [r * rng.uniform(0.8, 1.0)] + s
        return s

    # --- MSCs, singly and in clusters (emboli) ---
    msc_ids: list[int] = []
    cluster = 0
    attempts = 0
    px_mm2 = float(np.prod(spacing[-2:])) * 1e-6

    def target() -> int:
        # Per mm2 of (projected, for z-stacks) tissue area: what the pipeline reports.
        if msc_per_mm2 is None:
            return n_msc
        tis = septa | (scene.owner > 0)
        area = float((tis.any(axis=0) if ndim == 3 else tis).sum()) * px_mm2
        return int(round(msc_per_mm2 * area))

    n_msc = target()
    while len(msc_ids) < n_msc and attempts < 200 * max(n_msc, 1):
        attempts += 1
        size = 1
        if rng.random() < frac_msc_clustered and n_msc - len(msc_ids) >= 2:
            size = int(min(rng.integers(2, 5), n_msc - len(msc_ids)))
        d = rng.uniform(*msc_diameter_um)
        c = random_tissue_point()
        if not scene.free(c, d / 2 * 1.25):
            continue
        cluster += 1
        members = [(c, d)]
        for _ in range(size - 1):
            for _try in range(20):
                base_c, base_d = members[rng.integers(len(members))]
                d2 = rng.uniform(*msc_diameter_um)
                direction = rng.standard_normal(ndim)
                if ndim == 3:
                    direction[0] *= 0.3
                direction /= np.linalg.norm(direction)
                c2 = base_c + direction * (base_d + d2) / 2 * 0.85  # overlap a little: they touch
                far_enough = all(np.linalg.norm(c2 - mc) > 0.75 * (md + d2) / 2 for mc, md in members)
                if far_enough and scene.free(c2, d2 / 2 * 1.1) and np.all((c2 >= 0) & (c2 < extent)):
                    members.append((c2, d2))
                    break
        for mc, md in members:
            oid = scene.add(mc, semi_axes(md), rng.uniform(0, np.pi), role="msc", state="intact",
                            cluster=cluster if len(members) > 1 else 0, diameter_um=md)
            msc_ids.append(oid)
        n_msc = max(target(), len(msc_ids)) if msc_per_mm2 is not None else n_msc
    if len(msc_ids) < n_msc:
        log.warning("placed %d of %d MSCs: the tissue is full", len(msc_ids), n_msc)

    # --- dying MSCs: puncta scattered over the former cell body ---
    frag = np.zeros(shape, np.int32)
    n_frag_cells = 0
    for _ in range(n_msc_fragmented):
        for _try in range(100):
            d = rng.uniform(*msc_diameter_um)
            c = random_tissue_point()
            if scene.free(c, d / 2 * 1.2):
                break
        else:
            continue
        n_frag_cells += 1
        oid = scene.add(c, [0.01] * ndim, 0.0, role="msc", state="fragmented", cluster=0, diameter_um=d,
                        frag_label=n_frag_cells)
        n_p = int(rng.integers(5, 12))
        for _p in range(n_p):
            pc = c + rng.uniform(-d / 2, d / 2, ndim) * (np.array([0.5] + [1] * 2)[-ndim:])
            pr = rng.uniform(1.0, 2.2)
            sl = scene.bbox(pc, pr * 1.2)
            if sl is None:
                continue
            rho = scene.rho_in(sl, pc, [pr] * ndim, 0.0)
            frag[sl][(rho < 1) & (scene.owner[sl] == 0)] = n_frag_cells
        scene.objects[oid - 1]["n_puncta"] = n_p

    # --- macrophages: irregular, some recruited against MSCs ---
    mac_ids: list[int] = []
    attempts = 0
    while len(mac_ids) < n_macrophage and attempts < 200 * max(n_macrophage, 1):
        attempts += 1
        d = rng.uniform(*macrophage_diameter_um)
        recruited = rng.random() < frac_macrophage_recruited and msc_ids
        target = 0
        if recruited:
            target = int(msc_ids[rng.integers(len(msc_ids))])
            t = scene.objects[target - 1]
            direction = rng.standard_normal(ndim)
            if ndim == 3:
                direction[0] *= 0.3
            direction /= np.linalg.norm(direction)
            c = t["center"] + direction * (t["diameter_um"] / 2 * 0.95 + d / 2 * 0.9)
            if not np.all((c >= 0) & (c < extent)):
                continue
            # Allowed to overlap its MSC slightly (contact), nothing else.
            if not scene.free(c, d / 2 * 1.1, allowed=(0, target)):
                continue
        else:
            c = random_tissue_point()
            if not scene.free(c, d / 2 * 1.3):
                continue
        sl = scene.bbox(c, d / 2 * 1.3)
        rough = None
        if sl is not None:
            rough = _smooth_noise(tuple(s.stop - s.start for s in sl), rng, 1.5 / px, 0.88, 1.12)
        oid = scene.add(c, semi_axes(d), rng.uniform(0, np.pi), rough=rough, role="macrophage", state="resting",
                        cluster=0, diameter_um=d, contact_msc=target)
        mac_ids.append(oid)

    owner = scene.owner
    obj = {o["id"]: o for o in scene.objects}

    # --- truth label images ---
    def relabel(ids):
        lut = np.zeros(len(scene.objects) + 1, np.int32)
        for k, i in enumerate(ids, 1):
            lut[i] = k
        return lut[owner]

    msc_lab = relabel(msc_ids)
    mac_lab = relabel(mac_ids)
    nuclei = np.zeros(shape, np.int32)
    puncta = np.zeros(shape, np.int32)

    # --- channels (photons before illumination and noise) ---
    sig = {ch: np.zeros(shape, np.float32) for ch in CHANNELS}
    texture = _smooth_noise(shape, rng, 2.0 / px, 0.5, 1.5).astype(np.float32)
    for ch, lvl in _LEVELS["autofluorescence"].items():
        sig[ch] += septa * texture * lvl

    n_nuc = 0

    def add_nucleus(center, semi, angle, level):
        nonlocal n_nuc
        sl = scene.bbox(center, max(semi) * 1.2)
        if sl is None:
            return
        rho = scene.rho_in(sl, center, semi, angle)
        m = (rho < 1) & (nuclei[sl] == 0)
        if not m.any():
            return
        n_nuc += 1
        nuclei[sl][m] = n_nuc
        sig["DAPI"][sl][m] += level * rng.uniform(0.7, 1.3)

    for k, oid in enumerate(msc_ids, 1):
        o = obj[oid]
        sl = o["sl"]
        if sl is None:
            continue
        m = msc_lab[sl] == k
        b = _LEVELS["msc"]["GFP"] * rng.uniform(0.7, 1.3)
        cyto = _smooth_noise(m.shape, rng, 1.5 / px, 0.8, 1.2)
        sig["GFP"][sl][m] += (b * cyto[m]).astype(np.float32)
        nc = o["center"] + rng.uniform(-0.15, 0.15, ndim) * o["diameter_um"] / 2
        add_nucleus(nc, np.asarray(o["semi"]) * 0.4, o["angle"], _LEVELS["nucleus"]["DAPI"])

    for k, oid in enumerate(mac_ids, 1):
        o = obj[oid]
        sl = o["sl"]
        if sl is None:
            continue
        m = mac_lab[sl] == k
        # Granular marker: lysosome-like granules on a dim cytoplasm.
        gran = ndi.gaussian_filter((rng.random(m.shape) < 0.08).astype(float), 0.6 / px)
        gran = gran / max(gran.max(), 1e-9)
        b = _LEVELS["macrophage"]["CD68"] * rng.uniform(0.7, 1.3)
        sig["CD68"][sl][m] += (b * (0.45 + 0.9 * gran[m])).astype(np.float32)
        nc = o["center"] + rng.uniform(-0.2, 0.2, ndim) * o["diameter_um"] / 2
        add_nucleus(nc, np.asarray(o["semi"]) * 0.45, o["angle"], _LEVELS["nucleus"]["DAPI"])
        o["n_puncta"] = 0
        if rng.random() < frac_macrophage_engulfing:
            n_p = int(rng.integers(1, 5))
            placed = 0
            for _p in range(n_p):
                pc = o["center"] + rng.uniform(-0.35, 0.35, ndim) * o["diameter_um"] / 2
                pr = rng.uniform(0.9, 1.6)
                psl = scene.bbox(pc, pr * 1.2)
                if psl is None:  # the macrophage is cut by the image border here
                    continue
                rho = scene.rho_in(psl, pc, [pr] * ndim, 0.0)
                pm = (rho < 1) & (mac_lab[psl] == k)
                if pm.sum() == 0:
                    continue
                placed += 1
                puncta[psl][pm] = k
                sig["GFP"][psl][pm] += _LEVELS["msc"]["GFP"] * rng.uniform(0.6, 1.0)
            o["n_puncta"] = placed
            if placed:
                o["state"] = "engulfing"

    fm = frag > 0
    sig["GFP"][fm] += _LEVELS["msc"]["GFP"] * 0.9

    # Tissue nuclei in the septa, away from the cells.
    n_tissue_nuclei = int(septa.sum() * np.prod(spacing) / (350.0 if ndim == 2 else 350.0 * 8))
    for _ in range(n_tissue_nuclei):
        c = random_tissue_point()
        r = rng.uniform(2.8, 4.0)
        if scene.free(c, r * 1.2):
            add_nucleus(c, [r, r * rng.uniform(0.6, 0.9)] if ndim == 2 else [r * 0.8, r, r * 0.7],
                        rng.uniform(0, np.pi), _LEVELS["nucleus"]["DAPI"] * 0.8)

    # Red cells in the vessel lumen: autofluorescent, smaller than any MSC.
    for _ in range(int(rng.integers(3, 8))):
        ang = rng.uniform(0, 2 * np.pi)
        rr = rng.uniform(0, v_r - 5)
        c = v_center.copy()
        c[-2:] += rr * np.array([np.cos(ang), np.sin(ang)])
        sl = scene.bbox(c, 4.0)
        if sl is None or not scene.free(c, 3.5):
            continue
        rho = scene.rho_in(sl, c, [3.3] * ndim, 0.0)
        for ch, lvl in _LEVELS["rbc"].items():
            sig[ch][sl][rho < 1] += lvl

    tissue = septa | (owner > 0) | fm

    # --- optics and camera ---
    psf = [0.6 / s for s in spacing]
    if ndim == 3:
        psf[0] = 1.5 / spacing[0]
    yy, xx = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape[-2:]], indexing="ij")
    cy, cx = rng.uniform(-0.4, 0.4, 2)
    field_ = (1.0 - illumination * ((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0).astype(np.float32)
    image = np.empty((len(CHANNELS),) + tuple(shape), np.uint16)
    for i, ch in enumerate(CHANNELS):
        s = ndi.gaussian_filter(sig[ch], psf) * field_
        s = rng.poisson(np.clip(s, 0, None)).astype(np.float32)
        s += offset + rng.normal(0, read_noise, shape).astype(np.float32)
        image[i] = np.clip(np.round(s), 0, 65535).astype(np.uint16)

    # --- truth table ---
    rows = []
    from skimage.measure import regionprops

    spacing_t = tuple(spacing)
    for role, lab, ids in (("msc", msc_lab, msc_ids), ("macrophage", mac_lab, mac_ids)):
        props = {p.label: p for p in regionprops(lab, spacing=spacing_t)}
        for k, oid in enumerate(ids, 1):
            o = obj[oid]
            p = props.get(k)
            cen = p.centroid if p is not None else tuple(o["center"])
            rows.append(_truth_row(role, k, o, cen, ndim, p is not None))
    frag_props = {p.label: p for p in regionprops(frag, spacing=spacing_t)}
    for o in scene.objects:
        if o["role"] == "msc" and o["state"] == "fragmented":
            p = frag_props.get(o["frag_label"])
            cen = p.centroid if p is not None else tuple(o["center"])
            rows.append(_truth_row("msc", o["frag_label"], o, cen, ndim, p is not None))
    cells = pd.DataFrame(rows, columns=_TRUTH_COLUMNS)

    labels = {
        "msc": msc_lab.astype(np.uint32),
        "msc_fragments": frag.astype(np.uint32),
        "msc_puncta": puncta.astype(np.uint32),
        "macrophage": mac_lab.astype(np.uint32),
        "nuclei": nuclei.astype(np.uint32),
        "tissue": tissue.astype(np.uint8),
    }
    return SyntheticSection(image=image, spacing_um=spacing3, labels=labels, cells=cells)


_TRUTH_COLUMNS = ["role", "label", "state", "cluster", "centroid_z_um", "centroid_y_um", "centroid_x_um",
                  "diameter_um", "n_puncta", "contact_msc", "in_image"]


def _truth_row(role, label, o, cen, ndim, in_image):
    cen = list(cen)
    if ndim == 2:
        cen = [0.0] + cen
    return {
        "role": role, "label": int(label), "state": o["state"], "cluster": int(o.get("cluster", 0)),
        "centroid_z_um": float(cen[0]), "centroid_y_um": float(cen[1]), "centroid_x_um": float(cen[2]),
        "diameter_um": float(o["diameter_um"]), "n_puncta": int(o.get("n_puncta", 0)),
        "contact_msc": int(o.get("contact_msc", 0)), "in_image": bool(in_image),
    }


# --------------------------------------------------------------------------- experiments

#: Default simulated cell sources and their MSC half-lives in the lung (hours).
DEFAULT_GROUPS = {"BM": 8.0, "UC": 16.0}
DEFAULT_TIMES_H = (2.0, 8.0, 24.0, 48.0)


def experiment_counts(
    *,
    groups: dict[str, float] | None = None,
    time_h: tuple[float, ...] = DEFAULT_TIMES_H,
    n_animals: int = 3,
    n_sections: int = 1,
    n0_per_mm2: float = 800.0,
    animal_cv: float = 0.1,
    seed: int = 0,
) -> pd.DataFrame:
    """The design of a simulated experiment: one row per image with its MSC density.

    The density of intact MSCs per mm2 of tissue in a section is
    ``n0_per_mm2 * 2**(-t / half_life)`` times a log-normal animal factor (about
    ``animal_cv`` coefficient of variation); the simulator places MSCs until the
    section reaches it, so counts are integers close to density x tissue area.

    Returns
    -------
    DataFrame
        sample_id, animal, group, time_h, section, half_life_h, msc_per_mm2_target, seed.
    """
    groups = dict(DEFAULT_GROUPS if groups is None else groups)
    rng = np.random.default_rng(seed)
    rows = []
    idx = 0
    for g, hl in groups.items():
        for t in time_h:
            for a in range(1, n_animals + 1):
                factor = float(np.exp(rng.normal(0, animal_cv)))
                animal = f"{g}-{t:g}h-m{a}"
                for s in range(1, n_sections + 1):
                    idx += 1
                    rows.append({
                        "sample_id": f"{g}_{t:g}h_m{a}_s{s}", "animal": animal, "group": g, "time_h": float(t),
                        "section": s, "half_life_h": float(hl),
                        "msc_per_mm2_target": n0_per_mm2 * 2 ** (-t / hl) * factor, "seed": seed * 100003 + idx,
                    })
    return pd.DataFrame(rows)


def simulate_experiment(
    out: str | Path,
    *,
    groups: dict[str, float] | None = None,
    time_h: tuple[float, ...] = DEFAULT_TIMES_H,
    n_animals: int = 3,
    n_sections: int = 1,
    n0_per_mm2: float = 800.0,
    shape: tuple[int, ...] = (384, 384),
    pixel_size_um: float = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Write a simulated experiment: images, manifest, config and ground truth.

    Layout of ``out``::

        manifest.csv             path, sample_id, animal, group, time_h, section, cell_source
        config.yaml              channel mapping for the simulated channels
        images/<sample_id>.ome.tif
        truth/<sample_id>_<role>.tif    truth labels (msc, macrophage, nuclei, tissue, ...)
        truth/cells.csv          one row per simulated cell
        truth/samples.csv        per image: n_msc, n_macrophage, tissue_area_mm2, msc_per_mm2,
                                 tissue_volume_mm3, msc_per_mm3 (NaN for 2D)
        truth/groups.csv         group, half_life_h

    Returns
    -------
    DataFrame
        The manifest.
    """
    from .io import write_image, write_labels

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    design = experiment_counts(groups=groups, time_h=time_h, n_animals=n_animals, n_sections=n_sections,
                               n0_per_mm2=n0_per_mm2, seed=seed)
    manifest, truth_samples, truth_cells = [], [], []
    rows = design.to_dict("records")
    iterator = rows
    if progress:
        from .progress import progress_iter
        iterator = progress_iter(rows, desc="simulating")
    for row in iterator:
        # Roughly expected count, to scale macrophage recruitment and dying MSCs with it.
        n_expected = row["msc_per_mm2_target"] * 0.045 * np.prod(shape[-2:]) * pixel_size_um ** 2 / 384 ** 2
        n_mac = int(round(20 + 0.3 * n_expected))
        s = simulate_section(shape=shape, pixel_size_um=pixel_size_um, msc_per_mm2=row["msc_per_mm2_target"],
                             n_macrophage=n_mac, n_msc_fragmented=max(1, int(round(0.15 * n_expected))),
                             seed=int(row["seed"]))
        sid = row["sample_id"]
        axes = "CZYX" if len(shape) == 3 else "CYX"
        write_image(out / "images" / f"{sid}.ome.tif", s.image, axes=axes, spacing_um=s.spacing_um,
                    channel_names=s.channel_names)
        for role in ("msc", "msc_fragments", "msc_puncta", "macrophage", "nuclei", "tissue"):
            write_labels(out / "truth" / f"{sid}_{role}.tif", s.labels[role], s.spacing_um)
        manifest.append({"path": f"images/{sid}.ome.tif", "sample_id": sid, "animal": row["animal"],
                         "group": row["group"], "time_h": row["time_h"], "section": row["section"],
                         "cell_source": row["group"]})
        area = s.tissue_area_mm2
        cells = s.cells.assign(sample_id=sid)
        truth_cells.append(cells)
        truth_samples.append({
            "sample_id": sid, "group": row["group"], "time_h": row["time_h"], "animal": row["animal"],
            "section": row["section"], "n_msc": s.n_msc,
            "n_msc_fragmented": int(((cells.role == "msc") & (cells.state == "fragmented")).sum()),
            "n_macrophage": int((cells.role == "macrophage").sum()),
            "n_macrophage_engulfing": int((cells.state == "engulfing").sum()),
            "tissue_area_mm2": area, "msc_per_mm2": s.n_msc / area if area > 0 else np.nan,
            "tissue_volume_mm3": s.tissue_volume_mm3,
            "msc_per_mm3": s.n_msc / s.tissue_volume_mm3 if s.tissue_volume_mm3 > 0 else np.nan,
        })
    man = pd.DataFrame(manifest)
    man.to_csv(out / "manifest.csv", index=False)
    pd.DataFrame(truth_samples).to_csv(out / "truth" / "samples.csv", index=False)
    cols = ["sample_id"] + _TRUTH_COLUMNS
    pd.concat(truth_cells, ignore_index=True)[cols].to_csv(out / "truth" / "cells.csv", index=False)
    g = design.groupby("group", sort=False)["half_life_h"].first().reset_index()
    g.to_csv(out / "truth" / "groups.csv", index=False)
    (out / "config.yaml").write_text(
        "# Channel mapping of the simulated images (DAPI, GFP-labelled MSCs, CD68 macrophages).\n"
        "channels:\n  nuclei: DAPI\n  msc: GFP\n  macrophage: CD68\n"
    )
    return man


# --- Time-lapse with exact ground-truth tracks (lungtrack.track) ---------------------------------

TIMELAPSE_CHANNELS = ["GFP", "CD68"]
#: MSC fates cycled over the simulated MSCs (see `simulate_timelapse`).
TIMELAPSE_FATES = ("engulfed", "fragmented", "contact_censored", "censored", "engulfed", "disappeared")


@dataclass
class SyntheticTimelapse:
    """A simulated live lung-slice movie with its exact truth.

    Attributes
    ----------
    image : ndarray
        (T, C, Y, X) uint16, channels `TIMELAPSE_CHANNELS` (MSC label GFP, macrophage CD68).
    spacing_um : tuple of float
        (y, x) pixel size in um.
    frame_interval_min : float
        Time between frames in minutes.
    labels : dict of ndarray
        (T, Y, X) int32 truth per frame: ``msc`` (intact MSC bodies), ``macrophage``,
        ``msc_puncta`` (fragments of dying MSCs, inside macrophages once engulfed). Label
        values are the truth track ids (MSCs 1..n_msc, macrophages after them).
    tracks : DataFrame
        One row per object and frame: track_id, role, frame, t_min, y_um, x_um.
    mscs : DataFrame
        One row per MSC: track_id, y_um, x_um, diameter_um, fate, last_intact_frame,
        fragment_frame, engulfed_by, engulf_frame (-1 where it does not apply).
    contacts : DataFrame
        One row per MSC-macrophage contact: msc_track_id, macrophage_track_id,
        onset_frame, end_frame, engulfment.
    """

    image: np.ndarray
    spacing_um: tuple[float, float]
    frame_interval_min: float
    labels: dict
    tracks: pd.DataFrame
    mscs: pd.DataFrame
    contacts: pd.DataFrame
    channel_names: list = field(default_factory=lambda: list(TIMELAPSE_CHANNELS))


def _disk(shape, center, radius):
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius ** 2


def simulate_timelapse(shape=(192, 192), *, n_frames: int = 24, frame_interval_min: float = 10.0,
                       pixel_size_um: float = 1.0, n_msc: int = 6, n_walkers: int = 4,
                       msc_diameter_um: float = 20.0, macrophage_diameter_um: float = 12.0,
                       speed_um_per_frame: float = 4.0, noise: float = 30.0, clearance_um: float = 8.0,
                       seed: int = 0, max_tries: int = 200) -> SyntheticTimelapse:
    """Simulate a live lung-slice movie: static MSCs that fragment and vanish, crawling macrophages.

    MSC ``i`` gets the fate ``TIMELAPSE_FATES[i % 6]``: *engulfed* (a macrophage crawls to
    it, touches it, the MSC fragments into puncta that the macrophage then carries
    away), *fragmented* (puncta without a macrophage, gone 3 frames later),
    *contact_censored* (touched, survives to the end), *censored* (never touched) and
    *disappeared* (vanishes in one frame without puncta). ``n_walkers`` more
    macrophages wander at random and keep ``clearance_um`` from everything else (no
    contacts), so the contact truth is exact by construction; a small clearance and a
    high speed make linking harder. Truth lies in the returned tables;
    positions are in um from the image corner (pixel centres at index x spacing).

    Examples
    --------
    >>> tl = simulate_timelapse(seed=0)
    >>> tl.image.shape, tl.frame_interval_min
    ((24, 2, 192, 192), 10.0)
    >>> tl.mscs.fate.tolist()
    ['engulfed', 'fragmented', 'contact_censored', 'censored', 'engulfed', 'disappeared']
    >>> int(tl.contacts.engulfment.sum())
    2
    """
    if n_frames < 16:
        raise ValueError(f"n_frames={n_frames}: the simulated MSC fates need at least 16 frames")
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        plan = _plan_timelapse(rng, shape, n_frames, pixel_size_um, n_msc, n_walkers, msc_diameter_um / 2,
                               macrophage_diameter_um / 2, speed_um_per_frame, clearance_um)
        if plan is not None:
            break
    else:
        raise ValueError(f"could not place {n_msc} MSCs and {n_walkers} wandering macrophages without collisions in "
                         f"{shape} pixels after {max_tries} tries; use a larger shape or fewer cells")
    mscs, mac_paths, puncta = plan
    return _render_timelapse(rng, shape, n_frames, frame_interval_min, pixel_size_um, mscs, mac_paths, puncta,
                             msc_diameter_um / 2, macrophage_diameter_um / 2, noise)


def _plan_timelapse(rng, shape, T, px, n_msc, n_walkers, r_msc, r_mac, v, gap=8.0):
    """Positions (um) of every cell in every frame; None when a random draw collides."""
    size = np.array(shape, float) * px
    margin = r_msc + 3 * r_mac
    centres = []
    for _ in range(500):
        c = rng.uniform(margin, size - margin)
        if all(np.hypot(*(c - o)) > 2 * r_msc + 6 * r_mac for o in centres):
            centres.append(c)
        if len(centres) == n_msc:
            break
    if len(centres) < n_msc:
        return None
    touch = r_msc + r_mac - 1.0  # centre distance of a touching pair: surfaces overlap by 1 um
    v_walk, v = v, min(v, 4.0)  # recruited macrophages crawl at most 4 um per frame (their path fits the field)
    mscs, mac_paths, puncta, owners = [], [], {}, []
    for i, c in enumerate(centres):
        fate = TIMELAPSE_FATES[i % len(TIMELAPSE_FATES)]
        last = T - 1
        frag = -1
        if fate in ("engulfed", "fragmented", "disappeared"):
            last = int(rng.integers(T // 3, T - 8))
            frag = last + 1 if fate != "disappeared" else -1
        row = dict(track_id=i + 1, y_um=c[0], x_um=c[1], diameter_um=2 * r_msc, fate=fate, last_intact_frame=last,
                   fragment_frame=frag, engulfed_by=-1, engulf_frame=-1, contact_onset=-1, contact_end=-1)
        # Four puncta on a ring (half the MSC radius), far enough apart to stay separate after blur.
        a = rng.uniform(0, 2 * np.pi) + np.arange(4) * np.pi / 2
        offs = 0.4 * r_msc * np.stack([np.sin(a), np.cos(a)], axis=1)
        if fate in ("engulfed", "contact_censored"):
            onset = int(rng.integers(6, 9)) if fate == "contact_censored" else max(3, last - int(rng.integers(3, 6)))
            end = last if fate == "engulfed" else min(onset + 4, T - 5)
            ang = rng.uniform(0, 2 * np.pi)
            u = np.array([np.sin(ang), np.cos(ang)])
            path = np.empty((T, 2))
            for t in range(T):
                if t <= onset:
                    path[t] = c + u * (touch + v * (onset - t))
                elif t <= end + (fate == "engulfed"):  # touching; still there when the MSC fragments
                    path[t] = c + u * touch
                elif fate == "engulfed" and t <= end + 3:  # moves onto the debris
                    path[t] = c + u * (touch - v * (t - end - 1))
                else:  # leaves the way it came
                    base = c + u * ((touch - 2 * v) if fate == "engulfed" else touch)
                    k = t - (end + 3 if fate == "engulfed" else end)
                    path[t] = base + u * v * k
            row.update(contact_onset=onset, contact_end=end)
            if fate == "engulfed":
                row.update(engulfed_by=len(mac_paths), engulf_frame=last + 2)
                for t in range(frag, min(frag + 6, T)):
                    if t == frag:
                        puncta[(i + 1, t)] = c + offs
                    else:  # inside the macrophage
                        puncta[(i + 1, t)] = path[t] + offs * (0.5 * r_mac / r_msc)
            mac_paths.append(path)
            owners.append(i)
        elif fate == "fragmented":
            for t in range(frag, min(frag + 3, T)):
                puncta[(i + 1, t)] = c + offs
        mscs.append(row)
    cen = np.array(centres)
    # Recruited macrophages must stay inside the image and clear of other cells.
    for j, p in enumerate(mac_paths):
        if np.any(p < r_mac + 2) or np.any(p > size - r_mac - 2):
            return None
        for k, q in enumerate(mac_paths[:j]):
            if np.min(np.hypot(*(p - q).T)) < 2 * r_mac + 6:
                return None
        d = np.hypot(p[:, None, 0] - cen[None, :, 0], p[:, None, 1] - cen[None, :, 1])
        for m in range(len(cen)):
            if m != owners[j] and np.min(d[:, m]) < r_msc + r_mac + 8:
                return None
    # Wandering macrophages: persistent random walk, every step kept clear of all other cells.
    for _ in range(n_walkers):
        for _attempt in range(50):
            start = rng.uniform(r_mac + 4, size - r_mac - 4)
            if _clear(start, 0, cen, mac_paths, r_msc, r_mac, gap):
                break
        else:
            return None
        path = [start]
        heading = rng.uniform(0, 2 * np.pi)
        for t in range(1, T):
            for _attempt in range(40):
                h = heading + rng.normal(0, 0.6)
                step = path[-1] + v_walk * np.array([np.sin(h), np.cos(h)])
                inside = np.all(step > r_mac + 2) and np.all(step < size - r_mac - 2)
                if inside and _clear(step, t, cen, mac_paths, r_msc, r_mac, gap):
                    heading = h
                    break
                heading = rng.uniform(0, 2 * np.pi)
            else:
                step = path[-1]
                if not _clear(step, t, cen, mac_paths, r_msc, r_mac, gap):
                    return None
            path.append(step)
        mac_paths.append(np.array(path))
    return mscs, mac_paths, puncta


def _clear(p, t, cen, mac_paths, r_msc, r_mac, gap_um=8.0):
    """True when a macrophage at ``p`` in frame ``t`` keeps ``gap_um`` from every MSC and macrophage."""
    if len(cen) and np.min(np.hypot(*(cen - p).T)) < r_msc + r_mac + gap_um:
        return False
    return all(np.hypot(*(q[t] - p)) >= 2 * r_mac + gap_um for q in mac_paths)


def _render_timelapse(rng, shape, T, dt_min, px, mscs, mac_paths, puncta, r_msc, r_mac, noise):
    n_msc = len(mscs)
    lab = {k: np.zeros((T,) + tuple(shape), np.int32) for k in ("msc", "macrophage", "msc_puncta")}
    img = np.zeros((T, 2) + tuple(shape), np.float32)
    rows = []
    r_punct = 1.6
    for t in range(T):
        for m in mscs:
            if t <= m["last_intact_frame"]:
                c = np.array([m["y_um"], m["x_um"]]) / px
                lab["msc"][t][_disk(shape, c, r_msc / px)] = m["track_id"]
                rows.append(dict(track_id=m["track_id"], role="msc", frame=t, y_um=m["y_um"], x_um=m["x_um"]))
        for j, p in enumerate(mac_paths):
            tid = n_msc + j + 1
            lab["macrophage"][t][_disk(shape, p[t] / px, r_mac / px)] = tid
            rows.append(dict(track_id=tid, role="macrophage", frame=t, y_um=p[t][0], x_um=p[t][1]))
        for (tid, tt), pts in puncta.items():
            if tt == t:
                for q in pts:
                    lab["msc_puncta"][t][_disk(shape, q / px, r_punct / px)] = tid
        gfp = 1400.0 * (lab["msc"][t] > 0) + 1400.0 * (lab["msc_puncta"][t] > 0)
        cd68 = 1000.0 * (lab["macrophage"][t] > 0)
        sigma = 0.8 / px
        img[t, 0] = 150 + ndi.gaussian_filter(gfp, sigma)
        img[t, 1] = 120 + ndi.gaussian_filter(cd68, sigma)
    img += rng.normal(0, noise, img.shape).astype(np.float32)
    image = np.clip(np.rint(img), 0, 65535).astype(np.uint16)
    tracks = pd.DataFrame(rows, columns=["track_id", "role", "frame", "y_um", "x_um"])
    tracks.insert(3, "t_min", tracks["frame"] * float(dt_min))
    tracks = tracks.sort_values(["track_id", "frame"], ignore_index=True)
    m = pd.DataFrame(mscs)
    m["engulfed_by"] = np.where(m["engulfed_by"] >= 0, m["engulfed_by"] + n_msc + 1, -1)
    contacts = []
    for r in m.itertuples():
        if r.contact_onset >= 0:
            mac = r.engulfed_by if r.engulfed_by > 0 else _contact_partner(r, mac_paths, n_msc, r_msc, r_mac)
            contacts.append(dict(msc_track_id=r.track_id, macrophage_track_id=int(mac), onset_frame=int(r.contact_onset),
                                 end_frame=int(r.contact_end), engulfment=bool(r.fate == "engulfed")))
    contacts = pd.DataFrame(contacts, columns=["msc_track_id", "macrophage_track_id", "onset_frame", "end_frame",
                                               "engulfment"])
    m = m.drop(columns=["contact_onset", "contact_end"])
    return SyntheticTimelapse(image=image, spacing_um=(float(px), float(px)), frame_interval_min=float(dt_min),
                              labels=lab, tracks=tracks, mscs=m, contacts=contacts)


def _contact_partner(r, mac_paths, n_msc, r_msc, r_mac):
    c = np.array([r.y_um, r.x_um])
    d = [np.hypot(*(p[r.contact_onset] - c)) for p in mac_paths]
    return n_msc + int(np.argmin(d)) + 1


def save_timelapse(path, tl: SyntheticTimelapse) -> None:
    """Write a `SyntheticTimelapse` as OME-TIFF (TCYX) with pixel size and frame interval (TimeIncrement, s)."""
    import tifffile

    px = tl.spacing_um
    meta = {"axes": "TCYX", "PhysicalSizeX": px[1], "PhysicalSizeXUnit": "µm", "PhysicalSizeY": px[0],
            "PhysicalSizeYUnit": "µm", "TimeIncrement": tl.frame_interval_min * 60.0, "TimeIncrementUnit": "s",
            "Channel": {"Name": list(tl.channel_names)}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, tl.image, ome=True, metadata=meta, compression="zlib", photometric="minisblack",
                     resolution=(1.0 / px[1], 1.0 / px[0]), resolutionunit="MICROMETER")


def write_timelapse_sample(folder, *, seed: int = 0, **kwargs) -> Path:
    """Write a simulated movie with its truth: ``timelapse.ome.tif``, ``config.yaml`` and ``truth/``.

    ``truth/`` holds ``tracks.csv``, ``mscs.csv``, ``contacts.csv`` and the label movies
    ``msc.tif``, ``macrophage.tif`` (T, Y, X; label = truth track id). Returns the movie's path.
    """
    import tifffile

    folder = Path(folder)
    tl = simulate_timelapse(seed=seed, **kwargs)
    movie = folder / "timelapse.ome.tif"
    save_timelapse(movie, tl)
    truth = folder / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    tl.tracks.to_csv(truth / "tracks.csv", index=False)
    tl.mscs.to_csv(truth / "mscs.csv", index=False)
    tl.contacts.to_csv(truth / "contacts.csv", index=False)
    for role in ("msc", "macrophage"):
        tifffile.imwrite(truth / f"{role}.tif", tl.labels[role].astype(np.uint16), compression="zlib")
    (folder / "config.yaml").write_text(
        "# Channel mapping of the simulated time-lapse (GFP-labelled MSCs, CD68 macrophages; no nuclei).\n"
        "channels:\n  nuclei: null\n  msc: GFP\n  macrophage: CD68\n"
    )
    return movie
