"""Experiment + Config -> results folder, in parallel with Dask.

Stages: validate every input (before any work) -> per image, in Dask tasks:
segment, measure, colocalization, MSC-macrophage relations, label TIFFs ->
per-group persistence and decay fits -> figures, report, provenance.

Results are written into a hidden staging folder beside ``out`` and moved into
place only when complete, so an interrupted or failed run never leaves a
half-written results folder.
"""
from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .config import Config
from .experiment import Experiment, Sample
from .io import LungtrackInputError, read_image, write_labels
from .measure import measure_msc, measure_objects, object_columns
from .segment import segment_image
from .spatial import (
    interaction_columns,
    macrophages_containing,
    msc_macrophage_relations,
    spatial_summary,
)

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = [
    "sample_id", "animal", "group", "time_h", "section", "tissue_area_mm2", "n_msc", "n_macrophage", "n_nuclei",
    "msc_per_mm2", "macrophage_per_mm2", "tissue_volume_mm3", "msc_per_mm3", "macrophage_per_mm3", "pearson_r",
    "manders_m1", "manders_m2", "costes_threshold_msc", "costes_threshold_macrophage", "costes_p",
    "frac_msc_contacting_macrophage", "frac_macrophage_containing_msc", "median_msc_to_macrophage_um",
]


def densities(n_msc: int, n_macrophage: int, tissue_area_mm2: float, tissue_volume_mm3: float = np.nan) -> dict:
    """The density columns of a samples.csv row: per mm2 of tissue area, and per mm3 of tissue volume.

    The volume is NaN for a 2D image (a section has no measured thickness), and so are
    the per-mm3 densities; a zero area or volume gives NaN densities, not inf.

    Examples
    --------
    >>> d = densities(12, 30, 0.5, 0.004)
    >>> d["msc_per_mm2"], d["msc_per_mm3"], d["macrophage_per_mm3"]
    (24.0, 3000.0, 7500.0)
    >>> bool(np.isnan(densities(12, 30, 0.5)["msc_per_mm3"]))
    True
    """
    def per(n, size):
        return n / size if size > 0 else np.nan  # NaN > 0 is False: NaN stays NaN

    return {"tissue_area_mm2": tissue_area_mm2, "msc_per_mm2": per(n_msc, tissue_area_mm2),
            "macrophage_per_mm2": per(n_macrophage, tissue_area_mm2), "tissue_volume_mm3": tissue_volume_mm3,
            "msc_per_mm3": per(n_msc, tissue_volume_mm3), "macrophage_per_mm3": per(n_macrophage, tissue_volume_mm3)}


@dataclass
class Results:
    """Tables of one run, and the folder they were written to (None if not written)."""

    samples: pd.DataFrame
    objects: pd.DataFrame
    interactions: pd.DataFrame
    persistence: pd.DataFrame
    persistence_fit: pd.DataFrame
    run: dict = field(default_factory=dict)
    out: Path | None = None
    coloc: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: More persistence tables, by file stem: persistence_compare, persistence_tests,
    #: persistence_residuals, recruitment, and persistence_mm3 when there are z-stacks (see lungtrack.persistence).
    persistence_tables: dict = field(default_factory=dict)

    def headline(self) -> str:
        """Half-life per group, as a few lines of text."""
        fit = self.persistence_fit
        lines = []
        for _, r in fit[fit["model"] == "exponential"].iterrows():
            lines.append(f"  {r['group']}: MSC half-life {r['half_life_h']:.1f} h "
                         f"[{r['ci_low_h']:.1f}, {r['ci_high_h']:.1f}] (n0 = {r['n0_per_mm2']:.0f} per mm2, "
                         f"R2 = {r['r2']:.2f})")
        return "\n".join(lines)


# --------------------------------------------------------------------------- validation

def validate_inputs(experiment: Experiment, config: Config) -> list[dict]:
    """Open every image's metadata and check what the run needs, before any work.

    Returns one record per sample (sample_id, path, sha256, shape, spacing_um).
    Raises `LungtrackInputError` listing *every* bad file with what to do.
    """
    from .batch import validate_sample

    problems, records = [], []
    for s in experiment.samples:
        try:
            records.append(validate_sample(s, config))
        except LungtrackInputError as exc:
            problems.append(f"  sample {s.sample_id}: {exc}")
    if problems:
        raise LungtrackInputError(
            f"{len(problems)} of {len(experiment.samples)} input image(s) cannot be analysed.\n"
            + "\n".join(problems)
        )
    return records


def _open(sample: Sample, config: Config):
    # The manifest's pixel size is explicit for that image; the config's only fills gaps.
    return read_image(sample.path, pixel_size_um=sample.pixel_size_um, axes=config.run.axes,
                      default_pixel_size_um=config.run.pixel_size_um, default_z_step_um=config.run.z_step_um)


# --------------------------------------------------------------------------- one image

def _external_labels(sample: Sample, config: Config, img) -> dict:
    """Label images made elsewhere for this sample (manifest ``<role>_labels`` or config patterns)."""
    from .segment.external import external_label_paths, read_external_labels

    paths = external_label_paths(sample, config)
    shape = tuple(img.data.shape[2:]) if img.is_3d else tuple(img.data.shape[3:])
    return {role: read_external_labels(p, shape=shape, spacing_um=img.spacing_um, role=role)
            for role, p in paths.items()}


def process_sample(sample: Sample, config: Config, labels_dir: str | None = None) -> dict:
    """Analyse one image; returns its tables (and writes its label TIFFs into ``labels_dir``).

    This is the unit of parallel work: it takes a path, not pixels, so a Dask
    task is cheap to send to any worker. Its pixels are read in the task's own
    thread (synchronous scheduler): inside a distributed worker, a nested compute
    would otherwise try to ship the open file to the scheduler.
    """
    import dask

    img = _open(sample, config)
    if int(np.prod(img.data.shape[2:])) >= config.run.chunked_min_voxels:
        # Too large for one numpy call: chunk by chunk, bounded memory (segment/blockwise.py).
        from .segment.blockwise import process_large_sample

        return process_large_sample(img, sample, config, labels_dir)
    with dask.config.set(scheduler="synchronous"):
        return _process_sample(sample, config, labels_dir)


def _process_sample(sample: Sample, config: Config, labels_dir: str | None) -> dict:
    from .coloc_objects import object_coloc_summary
    from .coloc_table import coloc_table

    img = _open(sample, config)
    seg = segment_image(img, config, labels=_external_labels(sample, config, img))
    three_d = img.is_3d
    spacing = img.spacing_um
    sp = spacing if three_d else spacing[1:]
    data = np.asarray(img.data[0])  # (C, Z, Y, X), one time point
    chans = {name: (data[i] if three_d else data[i, 0]) for i, name in enumerate(img.channel_names)}
    i_msc = img.channel_index(config.channels.msc)
    i_mac = img.channel_index(config.channels.macrophage)
    msc_raw = chans[img.channel_names[i_msc]]
    mac_raw = chans[img.channel_names[i_mac]]
    tissue = seg["tissue"]

    objects = []
    for role in ("msc", "macrophage", "nuclei"):
        if role == "msc" and "msc" in seg:
            # intact MSCs, then dying (fragmented) MSCs as one object each, with n_fragments / intact
            objects.append(measure_msc(seg["msc"], spacing, fragmented=seg.get("msc_fragmented"),
                                       n_fragments=seg.get("msc_n_fragments"), intensities=chans,
                                       sample_id=sample.sample_id))
        elif role in seg:
            objects.append(measure_objects(seg[role], spacing, intensities=chans, role=role,
                                           sample_id=sample.sample_id))
    objects = pd.concat(objects, ignore_index=True) if objects else pd.DataFrame(
        columns=object_columns(2 if not three_d else 3, img.channel_names))

    spc = config.spatial
    # interactions.csv: one row per MSC object, intact (n_msc of them) and dying (intact False,
    # state fragmented or engulfed), as the MSC rows of the objects table.
    msc_all = seg["msc"]
    inter = msc_macrophage_relations(msc_all, seg["macrophage"], spacing, msc_signal=seg["msc_signal"],
                                     radii_um=spc.radii_um, contact_tolerance_um=spc.contact_tolerance_um,
                                     near_um=spc.near_um, engulfed_min_fraction=spc.engulfed_min_fraction,
                                     fragmented_min_pieces=spc.fragmented_min_pieces,
                                     fragmented_max_diameter_um=spc.fragmented_max_diameter_um,
                                     msc_fragmented=seg.get("msc_fragmented"), sample_id=sample.sample_id)
    containing = macrophages_containing(seg["macrophage"], seg["msc_positive"], spacing, spc.engulfed_min_area_um2)
    spatial_row = spatial_summary(inter, msc_all, seg["macrophage"], spacing, tissue=tissue,
                                  containing=containing, density_radius_um=spc.density_radius_um)
    if spc.null_simulations > 0 and int(msc_all.max()) > 0 and int(seg["macrophage"].max()) > 0 and tissue.any():
        from .spatial_stats import null_model_test

        null = null_model_test(msc_all, seg["macrophage"], spacing, tissue=tissue,
                               n_simulations=spc.null_simulations, seed=spc.seed, radii_um=spc.radii_um,
                               contact_tolerance_um=spc.contact_tolerance_um, placement=spc.null_placement)
        for _, r in null.iterrows():
            # observed (frac_msc_contacting_macrophage is already there, the same value), null mean, envelope, p
            spatial_row.setdefault(r["statistic"], r["observed"])
            spatial_row[f"{r['statistic']}_null_mean"] = r["null_mean"]
            spatial_row[f"{r['statistic']}_null_low"] = r["null_low"]
            spatial_row[f"{r['statistic']}_null_high"] = r["null_high"]
            spatial_row[f"{r['statistic']}_p"] = r["p_value"]

    cc = config.coloc
    use_tissue = cc.scope == "tissue" and tissue.any()
    # One table of every coefficient for the image, the tissue and each MSC; the samples.csv
    # numbers are its row for the configured scope (the same computation as coloc_summary).
    coefs = list(dict.fromkeys(["pearson", "manders", "costes", *cc.coefficients]))
    coloc_rows = coloc_table(msc_raw, mac_raw, mask=tissue if use_tissue else None,
                             objects=seg["msc"] if cc.per_msc else None, spacing_um=sp, coefficients=coefs,
                             convention=cc.manders_convention, randomisations=cc.costes_randomisations,
                             seed=cc.seed, sample_id=sample.sample_id)
    co = coloc_rows[coloc_rows["scope"] == ("mask" if use_tissue else "image")].iloc[0]
    coloc_rows["scope"] = coloc_rows["scope"].replace({"mask": "tissue"})
    obj_co = object_coloc_summary(seg["msc"], seg["macrophage"], spacing, msc_signal=seg["msc_signal"])

    vox_um2 = float(np.prod(sp[-2:]))
    # Counts are per mm2 of section; for a z-stack the tissue area is its projection.
    tissue_area = float((tissue.any(axis=0) if three_d else tissue).sum()) * vox_um2 * 1e-6
    # and per mm3 of tissue volume: tissue voxels x (dz dy dx), anisotropic spacing included
    tissue_volume = float(tissue.sum()) * float(np.prod(sp)) * 1e-9 if three_d else np.nan
    # Labels are numbered 1..n by the size filter, so the maximum is the count.
    n_msc = int(seg["msc"].max())
    n_mac = int(seg["macrophage"].max())
    n_nuc = int(seg["nuclei"].max()) if "nuclei" in seg else 0
    row = {
        "sample_id": sample.sample_id, "animal": sample.animal, "group": sample.group, "time_h": sample.time_h,
        "section": sample.section, "tissue_area_mm2": tissue_area, "n_msc": n_msc, "n_macrophage": n_mac,
        "n_nuclei": n_nuc, **densities(n_msc, n_mac, tissue_area, tissue_volume),
        "pearson_r": float(co["pearson_r"]), "manders_m1": float(co["manders_m1"]),
        "manders_m2": float(co["manders_m2"]), "costes_threshold_msc": float(co["costes_threshold_a"]),
        "costes_threshold_macrophage": float(co["costes_threshold_b"]), "costes_p": float(co["costes_p"]),
        "frac_msc_centroid_in_macrophage": obj_co["frac_msc_centroid_in_macrophage"],
        "msc_intensity_fraction_in_macrophages": obj_co["msc_intensity_fraction_in_macrophages"],
        **spatial_row,  # frac_msc_contacting_macrophage, frac_macrophage_containing_msc, median_msc_to_macrophage_um, ...
    }
    row.update(sample.metadata)
    if labels_dir is not None:
        for role in ("msc", "msc_fragmented", "macrophage", "nuclei", "tissue"):
            if role in seg:
                write_labels(Path(labels_dir) / f"{sample.sample_id}_{role}.tif", seg[role], spacing)
    return {"sample": row, "objects": objects, "interactions": inter, "coloc": coloc_rows}


# --------------------------------------------------------------------------- the run

def _versions() -> dict:
    import importlib.metadata as md

    names = ["numpy", "scipy", "scikit-image", "dask", "distributed", "tifffile", "imagecodecs", "zarr", "pandas",
             "pyarrow", "matplotlib", "pydantic", "pyyaml", "numba", "llvmlite", "laptrack"]
    out = {"lungtrack": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            out[n] = None
    return out


def analyze(experiment, config=None, out=None, client=None, *, scheduler: str | None = None,
            use_dask: bool = True, overwrite: bool = False, resume: bool = False, strict: bool = False,
            allow_outside_paths: bool | None = None, progress: bool = False) -> Results:
    """Analyse a whole experiment into a results folder (DESIGN.md section 3).

    Parameters
    ----------
    experiment : path, DataFrame or Experiment
        Manifest CSV, folder (with manifest.csv or matching file names), or table.
    config : Config, dict, YAML text or path, optional
    out : path, optional
        Results folder. An existing lungtrack run there is refused unless
        ``resume`` or ``overwrite``. None: the run is made in a temporary folder
        and only the tables are returned.
    client : distributed.Client, optional
        Run the per-image tasks on this cluster; else a local Dask scheduler.
    scheduler : str, optional
        Local Dask scheduler ("threads", default, or "synchronous").
    use_dask : bool
        False runs a plain Python loop (same numbers; for debugging and tests).
    resume : bool
        Keep the samples already analysed with the same input and config; redo the rest.
    strict : bool
        Stop at the first failing image instead of recording it in failures.csv.
    allow_outside_paths : bool, optional
        Allow manifest paths outside the experiment folder (default from the config).

    Returns
    -------
    Results
        Tables, ``failures`` (one row per image that could not be analysed), the
        provenance in ``run`` and the folder in ``out``. See `lungtrack.batch`.
    """
    from .batch import run_batch

    kw = dict(client=client, scheduler=scheduler, use_dask=use_dask, strict=strict,
              allow_outside_paths=allow_outside_paths, progress=progress)
    if out is not None:
        return run_batch(experiment, config, out, resume=resume, overwrite=overwrite, **kw)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lungtrack-") as tmp:
        res = run_batch(experiment, config, Path(tmp) / "results", **kw)
    res.out = None
    return res


def _assemble(parts: list[dict], cfg: Config) -> Results:
    from .persistence import (
        compare_half_lives,
        compare_time_points,
        decay_residuals,
        fit_decay,
        persistence_table,
        recruitment_table,
    )

    samples = pd.DataFrame([p["sample"] for p in parts])
    cols = SAMPLE_COLUMNS + [c for c in samples.columns if c not in SAMPLE_COLUMNS]
    samples = samples.reindex(columns=cols)  # a part kept by --resume from an older version may lack new columns
    objects = pd.concat([p["objects"] for p in parts], ignore_index=True)
    inter_frames = [p["interactions"] for p in parts if len(p["interactions"])]
    interactions = (pd.concat(inter_frames, ignore_index=True) if inter_frames
                    else pd.DataFrame(columns=interaction_columns(cfg.spatial.radii_um)))
    pc = cfg.persistence
    by = tuple(pc.group_by)
    pers = persistence_table(samples, by=by, bootstrap=pc.bootstrap, confidence=pc.confidence, seed=pc.seed)
    fit = fit_decay(samples, by=by, bootstrap=pc.bootstrap, confidence=pc.confidence, seed=pc.seed)
    tests = [compare_time_points(samples, value=v, by=by, correction=pc.correction)
             for v in ("msc_per_mm2", "macrophage_per_mm2") if v in samples.columns]
    extra = {
        "persistence_compare": compare_half_lives(samples, by=by, bootstrap=pc.bootstrap, confidence=pc.confidence,
                                                  seed=pc.seed),
        "persistence_tests": pd.concat(tests, ignore_index=True) if tests else pd.DataFrame(),
        "persistence_residuals": decay_residuals(samples, by=by, confidence=pc.confidence),
        "recruitment": recruitment_table(samples, interactions, by=by, confidence=pc.confidence),
    }
    if np.isfinite(pd.to_numeric(samples["tissue_volume_mm3"], errors="coerce")).any():
        # z-stacks: the same table per mm3 of tissue volume (2D images, without a volume, left out)
        extra["persistence_mm3"] = persistence_table(samples, value="msc_per_mm3", by=by, bootstrap=pc.bootstrap,
                                                     confidence=pc.confidence, seed=pc.seed)
    coloc_frames = [p["coloc"] for p in parts if len(p.get("coloc", ()))]
    coloc = pd.concat(coloc_frames, ignore_index=True) if coloc_frames else pd.DataFrame()
    return Results(samples=samples, objects=objects, interactions=interactions, persistence=pers,
                   persistence_fit=fit, coloc=coloc, persistence_tables=extra)


def _write(results: Results, folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .report import write_report

    table = pa.Table.from_pandas(results.objects, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"lungtrack"] = json.dumps({"version": __version__, "config": results.run.get("config")}).encode()
    pq.write_table(table.replace_schema_metadata(meta), folder / "objects.parquet")
    results.objects.to_csv(folder / "objects.csv", index=False)
    results.samples.to_csv(folder / "samples.csv", index=False)
    results.interactions.to_csv(folder / "interactions.csv", index=False)
    results.coloc.to_csv(folder / "coloc.csv", index=False)
    results.persistence.to_csv(folder / "persistence.csv", index=False)
    results.persistence_fit.to_csv(folder / "persistence_fit.csv", index=False)
    for name, table in results.persistence_tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
    write_figures(results, folder / "figures")
    write_report(results, folder / "report.html")


def write_figures(results: Results, figures_dir: Path) -> list[Path]:
    """Every figure of a results folder (PNG, SVG, PDF) from its tables; returns the PNG paths."""
    from .figures import persistence_figure, recruitment_figure, save_figure, superplot
    from .persistence import animal_table

    figures_dir = Path(figures_dir)
    cfg = results.run.get("config") or {}
    by = tuple(cfg.get("persistence", {}).get("group_by", ["group"]))
    animals = animal_table(results.samples, by=by)
    if by != ("group",):  # the figures show the joined group label of persistence.csv
        animals["group"] = animals[list(by)].astype(str).agg(" / ".join, axis=1)
    confidence = cfg.get("persistence", {}).get("confidence", 0.95)
    for stem, log_scale in (("persistence", False), ("persistence_log", True)):
        fig = persistence_figure(results.persistence, results.persistence_fit, animals=animals, log_scale=log_scale,
                                 confidence=confidence)
        save_figure(fig, figures_dir / stem)
    save_figure(superplot(results.samples, by=list(by)), figures_dir / "superplot")
    rec = results.persistence_tables.get("recruitment")
    if rec is not None and len(rec):
        save_figure(recruitment_figure(rec), figures_dir / "recruitment")
    _paper_figures(results, figures_dir)
    return sorted(figures_dir.glob("*.png"))


def _distance_envelope(results: Results, labels_dir: Path, cfg: dict):
    """Observed nearest MSC-macrophage centroid distances vs random macrophages in each image's tissue."""
    import tifffile

    from .figures import distance_envelope_figure
    from .spatial_stats import nearest_distances_null

    obj = results.objects
    msc = obj[(obj["role"] == "msc") & obj.get("intact", pd.Series(True, index=obj.index)).fillna(True).astype(bool)]
    mac = obj[obj["role"] == "macrophage"]
    n_sim = int((cfg.get("spatial") or {}).get("null_simulations") or 0) or 99
    seed = int((cfg.get("spatial") or {}).get("seed") or 0)
    spacing = {str(r["sample_id"]): r["spacing_um"] for r in results.run.get("inputs", [])}
    observed, null = {}, {}
    for _, s in results.samples.iterrows():
        sid = str(s["sample_id"])
        tissue_file = labels_dir / f"{sid}_tissue.tif"
        m = msc[msc["sample_id"].astype(str) == sid]
        b = mac[mac["sample_id"].astype(str) == sid]
        if not len(m) or not tissue_file.exists() or sid not in spacing:
            continue
        tissue = tifffile.imread(tissue_file) > 0
        cols = ["centroid_y_um", "centroid_x_um"] if tissue.ndim == 2 else ["centroid_z_um", "centroid_y_um",
                                                                            "centroid_x_um"]
        from scipy.spatial import cKDTree

        pts = m[cols].to_numpy(float)
        obs = cKDTree(b[cols].to_numpy(float)).query(pts)[0] if len(b) else np.full(len(pts), np.inf)
        sim = nearest_distances_null(pts, len(b), tissue, spacing[sid], n_simulations=n_sim, seed=seed)
        key = (s["group"], float(s["time_h"]))
        observed[key] = np.concatenate([observed.get(key, np.zeros(0)), obs])
        null[key] = np.concatenate([null[key], sim], axis=1) if key in null else sim
    return distance_envelope_figure(observed, null) if observed else None


def _cross_l(results: Results, labels_dir: Path, cfg: dict):
    """Cross-type L(r) - r (MSC -> macrophage) with its envelope, for each group's representative earliest image."""
    import tifffile

    from .figures import cross_l_panels
    from .overlay import representative_sample
    from .spatial_stats import cross_k_envelope

    obj, s = results.objects, results.samples
    msc = obj[(obj["role"] == "msc") & obj.get("intact", pd.Series(True, index=obj.index)).fillna(True).astype(bool)]
    mac = obj[obj["role"] == "macrophage"]
    sp_cfg = cfg.get("spatial") or {}
    n_sim = int(sp_cfg.get("null_simulations") or 0) or 99
    r_max = max(sp_cfg.get("radii_um") or [50.0])
    radii = np.linspace(r_max / 25, r_max, 25)
    spacing = {str(r["sample_id"]): r["spacing_um"] for r in results.run.get("inputs", [])}
    envelopes = {}
    for g in dict.fromkeys(s["group"]):
        t = s.loc[s["group"] == g, "time_h"].min()
        sid = representative_sample(s, g, t)
        tissue_file = labels_dir / f"{sid}_tissue.tif"
        if not tissue_file.exists() or sid not in spacing:
            continue
        tissue = tifffile.imread(tissue_file) > 0
        cols = ["centroid_y_um", "centroid_x_um"] if tissue.ndim == 2 else ["centroid_z_um", "centroid_y_um",
                                                                            "centroid_x_um"]
        a = msc.loc[msc["sample_id"].astype(str) == sid, cols].to_numpy(float)
        b = mac.loc[mac["sample_id"].astype(str) == sid, cols].to_numpy(float)
        if len(a) and len(b):
            envelopes[f"{g}, {t:g} h: {sid}"] = cross_k_envelope(a, b, tissue, spacing[sid], radii,
                                                                 n_simulations=n_sim, seed=int(sp_cfg.get("seed") or 0))
    return cross_l_panels(envelopes) if envelopes else None


def _paper_figures(results: Results, figures_dir: Path) -> None:
    """MSC states, contact and colocalization dot plots, example images, a cytofluorogram, distances, cross-L.

    Each figure is optional: one that cannot be drawn (e.g. no MSC at all) is logged and
    skipped, never costing the run.
    """
    from .figures import (
        coefficient_dotplot,
        coloc_example_figure,
        example_images_figure,
        save_figure,
        state_composition_figure,
    )

    run = results.run or {}
    cfg = run.get("config") or {}
    inputs = {str(r["sample_id"]): r["path"] for r in run.get("inputs", [])}
    labels_dir = Path(run["results_folder"]) / "labels" if run.get("results_folder") else None
    axes = cfg.get("run", {}).get("axes")
    spacing = {str(r["sample_id"]): r["spacing_um"] for r in run.get("inputs", []) if r.get("spacing_um")}
    jobs = [
        ("msc_states", lambda: state_composition_figure(results.interactions, results.samples)
         if len(results.interactions) and "state" in results.interactions else None),
        ("msc_contact", lambda: coefficient_dotplot(results.samples, "frac_msc_contacting_macrophage")),
        ("efferocytosis", lambda: coefficient_dotplot(results.samples, "frac_macrophage_containing_msc")),
        ("coloc_pearson", lambda: coefficient_dotplot(results.samples, "pearson_r")),
        ("example_images", lambda: example_images_figure(results.samples, inputs, labels_dir, axes=axes,
                                                         spacing_um=spacing, channels=cfg.get("channels"))
         if labels_dir is not None and inputs else None),
        ("cytofluorogram", lambda: coloc_example_figure(results.samples, inputs, labels_dir, cfg.get("channels", {}),
                                                        axes=axes, coloc=results.coloc)
         if labels_dir is not None and inputs else None),
    ]
    if labels_dir is not None and len(results.objects):
        jobs.append(("msc_macrophage_distances", lambda: _distance_envelope(results, labels_dir, cfg)))
        jobs.append(("cross_l", lambda: _cross_l(results, labels_dir, cfg)))
    for stem, make in jobs:
        try:
            fig = make()
        except Exception as exc:  # noqa: BLE001 -- a figure must never cost the tables
            log.warning("figure %s not drawn: %s", stem, exc)
            continue
        if fig is not None:
            save_figure(fig, figures_dir / stem)
