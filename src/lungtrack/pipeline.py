"""Experiment + Config -> results folder, in parallel with Dask.

Stages: validate every input (before any work) -> per image, in Dask tasks:
segment, measure, colocalization, MSC-macrophage relations, label TIFFs ->
per-group persistence and decay fits -> figures, report, provenance.

Results are written into a hidden staging folder beside ``out`` and moved into
place only when complete, so an interrupted or failed run never leaves a
half-written results folder.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .config import Config, load_config
from .experiment import Experiment, Sample, load_experiment
from .io import LungtrackInputError, check_tiff, read_image, sha256, write_labels
from .measure import measure_objects, object_columns
from .segment import segment_image
from .spatial import interaction_columns, macrophages_containing, msc_macrophage_relations

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = [
    "sample_id", "animal", "group", "time_h", "section", "tissue_area_mm2", "n_msc", "n_macrophage", "n_nuclei",
    "msc_per_mm2", "macrophage_per_mm2", "pearson_r", "manders_m1", "manders_m2", "costes_threshold_msc",
    "costes_threshold_macrophage", "costes_p", "frac_msc_contacting_macrophage", "frac_macrophage_containing_msc",
    "median_msc_to_macrophage_um",
]


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
    problems, records = [], []
    for s in experiment.samples:
        try:
            check_tiff(s.path)
            img = _open(s, config)
            for role in ("msc", "macrophage", "nuclei", "tissue"):
                ref = getattr(config.channels, role)
                if ref is not None:
                    img.channel_index(ref)
            if img.n_channels < 2:
                raise LungtrackInputError(f"{s.path}: has {img.n_channels} channel; MSC and macrophage channels are needed.")
            if 0 in img.data.shape:
                raise LungtrackInputError(f"{s.path}: the image is empty (shape {img.data.shape}).")
            records.append({"sample_id": s.sample_id, "path": s.path, "sha256": sha256(s.path),
                            "shape_tczyx": list(map(int, img.data.shape)), "spacing_um": list(img.spacing_um),
                            "channel_names": img.channel_names})
        except LungtrackInputError as exc:
            problems.append(f"  sample {s.sample_id}: {exc}")
    if problems:
        raise LungtrackInputError(
            f"{len(problems)} of {len(experiment.samples)} input image(s) cannot be analysed; nothing was written.\n"
            + "\n".join(problems)
        )
    return records


def _open(sample: Sample, config: Config):
    # The manifest's pixel size is explicit for that image; the config's only fills gaps.
    return read_image(sample.path, pixel_size_um=sample.pixel_size_um, axes=config.run.axes,
                      default_pixel_size_um=config.run.pixel_size_um, default_z_step_um=config.run.z_step_um)


# --------------------------------------------------------------------------- one image

def process_sample(sample: Sample, config: Config, labels_dir: str | None = None) -> dict:
    """Analyse one image; returns its tables (and writes its label TIFFs into ``labels_dir``).

    This is the unit of parallel work: it takes a path, not pixels, so a Dask
    task is cheap to send to any worker. Its pixels are read in the task's own
    thread (synchronous scheduler): inside a distributed worker, a nested compute
    would otherwise try to ship the open file to the scheduler.
    """
    import dask

    with dask.config.set(scheduler="synchronous"):
        return _process_sample(sample, config, labels_dir)


def _process_sample(sample: Sample, config: Config, labels_dir: str | None) -> dict:
    from .coloc_objects import object_coloc_summary
    from .coloc_table import coloc_table

    img = _open(sample, config)
    seg = segment_image(img, config)
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
        if role in seg:
            objects.append(measure_objects(seg[role], spacing, intensities=chans, role=role,
                                           sample_id=sample.sample_id))
    objects = pd.concat(objects, ignore_index=True) if objects else pd.DataFrame(
        columns=object_columns(2 if not three_d else 3, img.channel_names))

    inter = msc_macrophage_relations(seg["msc"], seg["macrophage"], spacing, msc_signal=seg["msc_signal"],
                                     radii_um=config.spatial.radii_um,
                                     contact_tolerance_um=config.spatial.contact_tolerance_um,
                                     sample_id=sample.sample_id)
    containing = macrophages_containing(seg["macrophage"], seg["msc_positive"], spacing,
                                        config.spatial.engulfed_min_area_um2)

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
    # Labels are numbered 1..n by the size filter, so the maximum is the count.
    n_msc = int(seg["msc"].max())
    n_mac = int(seg["macrophage"].max())
    n_nuc = int(seg["nuclei"].max()) if "nuclei" in seg else 0
    row = {
        "sample_id": sample.sample_id, "animal": sample.animal, "group": sample.group, "time_h": sample.time_h,
        "section": sample.section, "tissue_area_mm2": tissue_area, "n_msc": n_msc, "n_macrophage": n_mac,
        "n_nuclei": n_nuc,
        "msc_per_mm2": n_msc / tissue_area if tissue_area > 0 else np.nan,
        "macrophage_per_mm2": n_mac / tissue_area if tissue_area > 0 else np.nan,
        "pearson_r": float(co["pearson_r"]), "manders_m1": float(co["manders_m1"]),
        "manders_m2": float(co["manders_m2"]), "costes_threshold_msc": float(co["costes_threshold_a"]),
        "costes_threshold_macrophage": float(co["costes_threshold_b"]), "costes_p": float(co["costes_p"]),
        "frac_msc_centroid_in_macrophage": obj_co["frac_msc_centroid_in_macrophage"],
        "msc_intensity_fraction_in_macrophages": obj_co["msc_intensity_fraction_in_macrophages"],
        "frac_msc_contacting_macrophage": float(inter["contact"].mean()) if len(inter) else np.nan,
        "frac_macrophage_containing_msc": float(containing.mean()) if containing.size else np.nan,
        "median_msc_to_macrophage_um": float(np.median(inter["nearest_macrophage_um"])) if len(inter) else np.nan,
    }
    row.update(sample.metadata)
    if labels_dir is not None:
        for role in ("msc", "macrophage", "nuclei", "tissue"):
            if role in seg:
                write_labels(Path(labels_dir) / f"{sample.sample_id}_{role}.tif", seg[role], spacing)
    return {"sample": row, "objects": objects, "interactions": inter, "coloc": coloc_rows}


# --------------------------------------------------------------------------- the run

def _versions() -> dict:
    import importlib.metadata as md

    names = ["numpy", "scipy", "scikit-image", "dask", "distributed", "tifffile", "imagecodecs", "zarr", "pandas",
             "pyarrow", "matplotlib", "pydantic", "pyyaml"]
    out = {"lungtrack": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            out[n] = None
    return out


def _compute(tasks_args, config, labels_dir, *, client=None, scheduler=None, use_dask=True, progress=False):
    """Run process_sample over all samples: plain loop, local Dask scheduler or a distributed client."""
    if not use_dask:
        from .progress import progress_iter

        it = progress_iter(tasks_args, desc="analysing") if progress else tasks_args
        return [process_sample(s, config, labels_dir) for s in it]
    import dask

    if client is not None:
        # One future per image; only the Sample and the Config travel to the workers.
        futures = client.map(process_sample, tasks_args, config=config, labels_dir=labels_dir,
                             key=[f"lungtrack-sample-{s.sample_id}" for s in tasks_args])
        if progress:
            import sys

            from distributed import progress as dprogress

            dprogress(futures)
            sys.stderr.write("\n")
        return client.gather(futures)
    tasks = [dask.delayed(process_sample, pure=True)(s, config, labels_dir, dask_key_name=f"sample-{s.sample_id}")
             for s in tasks_args]
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return list(dask.compute(*tasks, scheduler=scheduler or "threads"))
    return list(dask.compute(*tasks, scheduler=scheduler or "threads"))


def analyze(experiment, config=None, out=None, client=None, *, scheduler: str | None = None,
            use_dask: bool = True, overwrite: bool = False, progress: bool = False) -> Results:
    """Analyse a whole experiment; write the results folder if ``out`` is given.

    Parameters
    ----------
    experiment : path, DataFrame or Experiment
        Manifest CSV, folder (with manifest.csv or matching file names), or table.
    config : Config, dict, YAML text or path, optional
    out : path, optional
        Results folder (DESIGN.md section 3). Refused if it exists unless ``overwrite``.
    client : distributed.Client, optional
        Run the per-image tasks on this cluster; else a local Dask scheduler.
    scheduler : str, optional
        Local Dask scheduler ("threads", default, or "synchronous").
    use_dask : bool
        False runs a plain Python loop (same numbers; for debugging and tests).

    Returns
    -------
    Results
    """
    t_start = time.time()
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    cfg = load_config(config)
    exp = load_experiment(experiment, cfg.run.filename_pattern)
    # Absolute, so that workers started elsewhere (a cluster) write to the same place.
    out_path = Path(out).resolve() if out is not None else None
    if out_path is not None and out_path.exists() and any(out_path.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_path}: results folder exists; choose another --out or pass --overwrite.")
    stages = {}

    t0 = time.time()
    inputs = validate_inputs(exp, cfg)
    stages["validate_s"] = time.time() - t0

    staging = None
    labels_dir = None
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        staging = out_path.parent / f".{out_path.name}.partial-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        if cfg.run.write_labels:
            labels_dir = staging / "labels"
            labels_dir.mkdir()
    try:
        t0 = time.time()
        parts = _compute(exp.samples, cfg, str(labels_dir) if labels_dir else None, client=client,
                         scheduler=scheduler, use_dask=use_dask, progress=progress)
        stages["per_image_s"] = time.time() - t0

        t0 = time.time()
        results = _assemble(parts, cfg)
        stages["persistence_s"] = time.time() - t0
        results.run = {
            "lungtrack_version": __version__, "started": started, "config": cfg.to_dict(),
            "experiment": exp.source, "n_samples": len(exp), "inputs": inputs, "versions": _versions(),
            "scheduler": ("distributed: " + str(getattr(client, "scheduler", None) and client.scheduler.address))
            if client is not None else (scheduler or "threads") if use_dask else "none (plain loop)",
        }
        if staging is not None:
            t0 = time.time()
            _write(results, staging)
            stages["write_s"] = time.time() - t0
            results.run["stages"] = stages
            results.run["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            results.run["elapsed_s"] = time.time() - t_start
            (staging / "run.json").write_text(json.dumps(results.run, indent=2, default=str))
            if out_path.exists():
                shutil.rmtree(out_path)
            staging.rename(out_path)
            results.out = out_path
        else:
            results.run["stages"] = stages
    except BaseException:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return results


def _assemble(parts: list[dict], cfg: Config) -> Results:
    from .persistence import fit_decay, persistence_table

    samples = pd.DataFrame([p["sample"] for p in parts])
    cols = SAMPLE_COLUMNS + [c for c in samples.columns if c not in SAMPLE_COLUMNS]
    samples = samples[cols]
    objects = pd.concat([p["objects"] for p in parts], ignore_index=True)
    inter_frames = [p["interactions"] for p in parts if len(p["interactions"])]
    interactions = (pd.concat(inter_frames, ignore_index=True) if inter_frames
                    else pd.DataFrame(columns=interaction_columns(cfg.spatial.radii_um)))
    pc = cfg.persistence
    pers = persistence_table(samples, bootstrap=pc.bootstrap, confidence=pc.confidence, seed=pc.seed)
    fit = fit_decay(samples, bootstrap=pc.bootstrap, confidence=pc.confidence, seed=pc.seed)
    coloc_frames = [p["coloc"] for p in parts if len(p.get("coloc", ()))]
    coloc = pd.concat(coloc_frames, ignore_index=True) if coloc_frames else pd.DataFrame()
    return Results(samples=samples, objects=objects, interactions=interactions, persistence=pers,
                   persistence_fit=fit, coloc=coloc)


def _write(results: Results, folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .figures import persistence_figure, save_figure
    from .persistence import animal_table
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
    fig = persistence_figure(results.persistence, results.persistence_fit, animals=animal_table(results.samples))
    save_figure(fig, folder / "figures" / "persistence")
    write_report(results, folder / "report.html")
