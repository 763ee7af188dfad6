"""Batch runs that never lose work: per-sample isolation, atomic results, resume, provenance.

A results folder is built sample by sample. Each image is analysed in its own task
and its tables are written to ``samples/.<id>.tmp-<uuid>/`` and renamed to
``samples/<id>/`` only when complete, with a ``done.json`` that records the input's
sha256 and the config hash. The summary tables (DESIGN.md section 3) are then
rebuilt from those per-sample results, written beside the folder and moved in
place file by file. So a crash, a ``kill -9``, a full disk or a lost Dask worker
costs at most the samples in flight: ``--resume`` recomputes exactly the samples
whose results are missing or stale (other input checksum or config) and rebuilds
the tables. A sample that fails is recorded in ``failures.csv`` (sample_id, stage,
error, hint) and the run goes on, unless ``strict``.

Layout::

    .lungtrack/state.json          run identity: config hash, status (running/finished)
    samples/<sample_id>/           one finished sample (parquet tables + done.json)
    labels/<sample_id>_<role>.tif
    failures.csv, samples.csv, objects.parquet, ..., report.html, run.json

Examples
--------
>>> config_hash({"a": 1}) == config_hash({"a": 1})
True
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import socket
import time
import uuid
from pathlib import Path

import pandas as pd

from . import __version__
from .config import Config, load_config
from .experiment import Experiment, Sample, load_experiment
from .io import LungtrackInputError, check_tiff, sha256

log = logging.getLogger(__name__)

__all__ = ["run_batch", "config_hash", "validate_sample", "verify", "FAILURE_COLUMNS", "EXIT_FAILURES"]

FAILURE_COLUMNS = ["sample_id", "path", "stage", "error", "hint"]
#: Exit code of the CLI for a run that finished but with failed samples.
EXIT_FAILURES = 3
STATE = Path(".lungtrack") / "state.json"
_PART_TABLES = ("objects", "interactions", "coloc")


# --------------------------------------------------------------------------- small pieces

def config_hash(config) -> str:
    """sha256 of the config as canonical JSON (key order and YAML formatting do not matter)."""
    d = config.to_dict() if hasattr(config, "to_dict") else config
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _errno(exc: BaseException) -> int | None:
    # pyarrow raises OSError without errno set; its message carries "[errno N]".
    if getattr(exc, "errno", None):
        return exc.errno
    m = re.search(r"\[errno (\d+)\]", str(exc), flags=re.IGNORECASE)
    return int(m.group(1)) if m else None


def _hint(exc: BaseException, stage: str) -> str:
    """What the user can do about a failure, in one sentence."""
    code = _errno(exc) if isinstance(exc, OSError) else None
    if code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return "The disk (or quota) is full: free space or choose another --out, then run again with --resume."
    if code in (errno.EACCES, errno.EROFS, errno.EPERM):
        return "lungtrack cannot write or read here: check the permissions, then run again with --resume."
    if isinstance(exc, MemoryError):
        return "Out of memory: use fewer --workers (each holds one image), then run again with --resume."
    if isinstance(exc, LungtrackInputError) or stage == "input":
        return "Fix this file or its manifest row (or remove the row), then run again with --resume."
    return ("Unexpected error: run again with --resume; if it repeats, report it with run.json and this "
            "message (lungtrack -v analyze ... shows the full traceback).")


_WRITE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM)


def _failure(sample: Sample, stage: str, exc: BaseException, out: Path | None = None) -> dict:
    msg = str(exc)
    if not isinstance(exc, LungtrackInputError):
        msg = f"{type(exc).__name__}: {msg}"
    if out is not None and isinstance(exc, OSError) and _errno(exc) in _WRITE_ERRNOS:
        # Label images are written while analysing: a full disk there is a write failure too.
        stage = "write"
        if not getattr(exc, "filename", None):
            msg += f" (writing this image's results into {out})"
    return {"sample_id": sample.sample_id, "path": sample.path, "stage": stage, "error": msg,
            "hint": _hint(exc, stage)}


def validate_sample(sample: Sample, config: Config) -> dict:
    """Check that one image can be analysed (readable, channels, pixel size, not empty).

    Returns its provenance record (sample_id, path, sha256, shape_tczyx, spacing_um,
    channel_names); raises `LungtrackInputError` naming the file and what to do.
    """
    import numpy as np

    from .pipeline import _open

    check_tiff(sample.path)
    img = _open(sample, config)
    for role in ("msc", "macrophage", "nuclei", "tissue"):
        ref = getattr(config.channels, role)
        if ref is not None:
            img.channel_index(ref)
    if img.n_channels < 2:
        raise LungtrackInputError(f"{sample.path}: has {img.n_channels} channel; MSC and macrophage channels are "
                                  "needed.")
    if 0 in img.data.shape:
        raise LungtrackInputError(f"{sample.path}: the image is empty (shape {img.data.shape}).")
    if np.issubdtype(img.data.dtype, np.floating):
        # Float images (e.g. after deconvolution) may carry NaN; lungtrack will not guess what they mean.
        n_nan = int(np.isnan(img.data).sum().compute())
        if n_nan:
            raise LungtrackInputError(
                f"{sample.path}: {n_nan} pixel(s) are NaN; lungtrack cannot segment undefined intensities. "
                "Replace them (e.g. with 0) in Fiji: Process > Math > NaN Background, or re-export the image.")
    labels_sha = {}
    for role, path in sorted(getattr(sample, "labels", {}).items()):
        if not Path(path).is_file():
            raise LungtrackInputError(f"{path}: {role} label image named in the manifest ({role}_labels) not found; "
                                      "fix the path or leave the cell empty to let lungtrack segment.")
        labels_sha[role] = sha256(path)
    rec = {"sample_id": sample.sample_id, "path": sample.path, "sha256": sha256(sample.path),
           "shape_tczyx": list(map(int, img.data.shape)), "spacing_um": list(img.spacing_um),
           "channel_names": img.channel_names}
    if labels_sha:
        rec["labels"] = dict(sorted(sample.labels.items()))
        rec["labels_sha256"] = labels_sha
    return rec


def _input_digest(rec: dict) -> str:
    """The image's sha256, combined with those of external label images when there are any."""
    if not rec.get("labels_sha256"):
        return rec["sha256"]
    return hashlib.sha256(json.dumps([rec["sha256"], rec["labels_sha256"]], sort_keys=True).encode()).hexdigest()


def _check_paths(exp: Experiment, root: Path | None, allow_outside: bool) -> None:
    """Manifest paths stay inside the experiment folder unless explicitly allowed."""
    if allow_outside or root is None:
        return
    root = root.resolve()
    bad = [(s.sample_id, p) for s in exp.samples for p in (s.path, *getattr(s, "labels", {}).values())
           if not Path(p).resolve().is_relative_to(root)]
    if bad:
        lines = "\n".join(f"  sample {sid}: {p}" for sid, p in bad[:10])
        raise LungtrackInputError(
            f"{exp.source}: {len(bad)} path(s) point outside the experiment folder {root}:\n{lines}\n"
            "Move the images into the folder, or allow it explicitly with run.allow_paths_outside_experiment: "
            "true in the config (or --allow-outside-paths).")


def _experiment_root(experiment) -> Path | None:
    if isinstance(experiment, (str, os.PathLike)):
        p = Path(experiment)
        return p if p.is_dir() else p.parent
    return None


# --------------------------------------------------------------------------- one sample (runs in a task)

def _sample_dir(out: Path, sample_id: str) -> Path:
    return out / "samples" / sample_id


def _is_done(out: Path, sample: Sample, sha: str, chash: str, write_labels: bool) -> bool:
    done = _sample_dir(out, sample.sample_id) / "done.json"
    if not done.exists():
        return False
    try:
        d = json.loads(done.read_text())
    except (OSError, ValueError):
        return False
    if d.get("sha256") != sha or d.get("config_hash") != chash:
        return False
    if write_labels and not all((out / "labels" / name).exists() for name in d.get("labels", [])):
        return False
    return all((_sample_dir(out, sample.sample_id) / f"{t}.parquet").exists() for t in ("sample", *_PART_TABLES))


def _write_part(part: dict, folder: Path) -> None:
    pd.DataFrame([part["sample"]]).to_parquet(folder / "sample.parquet", index=False)
    for name in _PART_TABLES:
        table = part.get(name)
        (pd.DataFrame() if table is None else table).to_parquet(folder / f"{name}.parquet", index=False)


def _read_part(folder: Path) -> dict:
    part = {"sample": pd.read_parquet(folder / "sample.parquet").iloc[0].to_dict()}
    for name in _PART_TABLES:
        part[name] = pd.read_parquet(folder / f"{name}.parquet")
    return part


def run_sample(sample: Sample, config: Config, out: str, chash: str, sha: str, strict: bool = False) -> dict:
    """Analyse one image and commit its results to ``out/samples/<id>`` atomically.

    Returns ``{"sample_id", "status": "done"}`` or a failure record
    (``status: "failed"`` with the `FAILURE_COLUMNS`); with ``strict`` the error is
    raised instead. Safe to run twice for one sample (a rescheduled Dask task): the
    last complete result wins, never a mixture.
    """
    from .pipeline import process_sample

    out = Path(out)
    t0 = time.time()
    tmp = out / "samples" / f".{sample.sample_id}.tmp-{uuid.uuid4().hex[:12]}"
    stage = "analyse"
    try:
        tmp.mkdir(parents=True)
        labels_tmp = tmp / "labels"
        if config.run.write_labels:
            labels_tmp.mkdir()
        part = process_sample(sample, config, str(labels_tmp) if config.run.write_labels else None)
        stage = "write"
        _write_part(part, tmp)
        labels = sorted(p.name for p in labels_tmp.glob("*.tif")) if config.run.write_labels else []
        (out / "labels").mkdir(exist_ok=True)
        for name in labels:
            os.replace(labels_tmp / name, out / "labels" / name)
        if config.run.write_labels:
            labels_tmp.rmdir()
        (tmp / "done.json").write_text(json.dumps({
            "sample_id": sample.sample_id, "path": sample.path, "sha256": sha, "config_hash": chash,
            "labels": labels, "lungtrack_version": __version__, "host": socket.gethostname(),
            "analyse_s": round(time.time() - t0, 3),
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}, indent=1))
        final = _sample_dir(out, sample.sample_id)
        if final.exists():
            shutil.rmtree(final)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "done.json").exists():  # not a twin task that committed first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        return {"sample_id": sample.sample_id, "status": "done"}
    except BaseException as exc:  # SystemExit (SIGTERM) and Ctrl-C too: no half-written sample folder
        shutil.rmtree(tmp, ignore_errors=True)
        if strict or not isinstance(exc, Exception):
            raise
        log.warning("sample %s failed at %s: %s", sample.sample_id, stage, exc)
        return {"status": "failed", **_failure(sample, stage, exc, out)}


# --------------------------------------------------------------------------- the run

def _prepare_out(out: Path, chash: str, *, resume: bool, overwrite: bool) -> dict | None:
    """Create or re-open the results folder; returns the previous state when resuming."""
    state_file = out / STATE
    if state_file.exists():
        # Leftovers of tasks killed mid-write: never complete, never read.
        for tmp in (out / "samples").glob(".*.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
    if out.exists() and any(out.iterdir()):
        if state_file.exists():
            try:
                prev = json.loads(state_file.read_text())
            except (OSError, ValueError):
                prev = {}
            if overwrite:
                shutil.rmtree(out)
            elif resume:
                if prev.get("config_hash") != chash:
                    log.warning("%s: the config differs from the previous run's; every sample will be "
                                "recomputed with the new one", out)
                return prev
            else:
                same = "the same" if prev.get("config_hash") == chash else "a different"
                status = prev.get("status", "unknown")
                raise FileExistsError(
                    f"{out}: already holds a lungtrack run ({status}, started {prev.get('started', '?')}, "
                    f"{same} config). Use --resume to finish or update it, --overwrite to replace it, or "
                    "choose another --out.")
        elif overwrite and (out / "run.json").exists():
            shutil.rmtree(out)  # a results folder from lungtrack before per-sample commits
        else:
            raise FileExistsError(
                f"{out}: exists and is not a lungtrack results folder; choose another --out "
                "(lungtrack never deletes folders it did not write).")
    try:
        (out / ".lungtrack").mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(exist_ok=True)
    except OSError as exc:
        raise LungtrackInputError(
            f"{out}: cannot create the results folder ({exc.strerror or exc}); choose a writable --out.") from exc
    return None


def _remove_sample(out: Path, sample_id: str) -> None:
    """Delete one sample's committed results and the label images its done.json lists."""
    folder = _sample_dir(out, sample_id)
    try:
        names = json.loads((folder / "done.json").read_text()).get("labels", [])
    except (OSError, ValueError):
        names = []
    # Also labels moved into place by an attempt that failed before its done.json was written.
    roles = ("msc", "msc_fragmented", "macrophage", "nuclei", "tissue")
    for name in {*names, *(f"{sample_id}_{r}.tif" for r in roles)}:
        (out / "labels" / name).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def _stopped(out: Path, state: dict, failure: dict | None = None) -> None:
    """--strict stopped the run: say so in the state (and failures.csv); the images committed so far stay."""
    state["status"] = "stopped_strict"
    try:
        if failure is not None:
            pd.DataFrame([failure], columns=FAILURE_COLUMNS).to_csv(out / ".lungtrack" / "failures.csv.tmp",
                                                                   index=False)
            os.replace(out / ".lungtrack" / "failures.csv.tmp", out / "failures.csv")
        _atomic_write_text(out / STATE, json.dumps(state, indent=1))
    except OSError:  # the error being raised matters more than this record
        log.warning("%s: could not record the --strict stop", out)


def _cluster_description(client) -> str:
    if client is None:
        return ""
    try:
        info = client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        return f"distributed {client.scheduler.address}: {len(workers)} workers, {threads} threads"
    except Exception as exc:  # noqa: BLE001 -- provenance must not fail the run
        return f"distributed (description unavailable: {exc})"


def _execute(todo, records, cfg, out, chash, *, client, scheduler, use_dask, strict, progress):
    args = [(s, _input_digest(records[s.sample_id])) for s in todo]
    if not args:
        return []
    if not use_dask:
        from .progress import progress_iter

        it = progress_iter(args, desc="analysing") if progress else args
        return [run_sample(s, cfg, str(out), chash, sha, strict) for s, sha in it]
    if client is not None:
        futures = client.map(run_sample, [s for s, _ in args], config=cfg, out=str(out), chash=chash,
                             sha=[sha for _, sha in args], strict=strict,
                             key=[f"lungtrack-sample-{s.sample_id}-{chash[:8]}" for s, _ in args])
        if progress:
            import sys

            from distributed import progress as dprogress

            dprogress(futures)
            sys.stderr.write("\n")
        return client.gather(futures)
    import dask

    tasks = [dask.delayed(run_sample, pure=False)(s, cfg, str(out), chash, sha, strict,
                                                   dask_key_name=f"sample-{s.sample_id}")
             for s, sha in args]
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return list(dask.compute(*tasks, scheduler=scheduler or "threads"))
    return list(dask.compute(*tasks, scheduler=scheduler or "threads"))


def _report_costes_warnings(coloc: pd.DataFrame) -> None:
    """One log line for the Costes quality warnings of the image/tissue rows (not one per region)."""
    if coloc.empty or "costes_warnings" not in coloc:
        return
    rows = coloc[coloc["scope"].isin(["image", "tissue"])]
    flagged = rows["costes_warnings"].fillna("").astype(str)
    flagged = flagged[flagged != ""]
    if len(flagged):
        counts = pd.Series([c for v in flagged for c in v.split(";")]).value_counts()
        log.warning("Costes quality warnings in %d of %d image/tissue rows of coloc.csv (%s); see its "
                    "costes_warnings column and docs/methods.md", len(flagged), len(rows),
                    ", ".join(f"{k}: {v}" for k, v in counts.items()))


def _write_summary(results, out: Path) -> dict:
    """Write the summary tables beside the folder, then move each into place (atomic per file)."""
    from .pipeline import _write

    staging = out / ".lungtrack" / f"summary-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        _write(results, staging)
        outputs = {}
        for p in sorted(staging.rglob("*")):
            if p.is_file():
                outputs[str(p.relative_to(staging))] = sha256(p)
        for p in sorted(staging.iterdir()):
            dest = out / p.name
            if p.is_dir():
                if dest.exists():
                    shutil.rmtree(dest)
                os.rename(p, dest)
            else:
                os.replace(p, dest)
        return outputs
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_batch(experiment, config=None, out=None, client=None, *, scheduler: str | None = None,
              use_dask: bool = True, resume: bool = False, overwrite: bool = False, strict: bool = False,
              allow_outside_paths: bool | None = None, progress: bool = False):
    """Analyse an experiment into a results folder, sample by sample; see the module docstring.

    Parameters
    ----------
    experiment : path, DataFrame or Experiment
    config : Config, dict, YAML text or path, optional
    out : path
        Results folder. An existing lungtrack run there is refused unless ``resume``
        (finish or update it) or ``overwrite``; a folder lungtrack did not write is
        always refused.
    client, scheduler, use_dask
        Where the per-image tasks run (see `lungtrack.pipeline.analyze`).
    resume : bool
        Keep every sample whose results exist for the same input sha256 and config
        hash; recompute the rest; rebuild the summary tables.
    strict : bool
        Stop at the first failing sample (raising its error) instead of recording it;
        the state then says ``stopped_strict`` and the samples committed so far stay.
    allow_outside_paths : bool, optional
        Allow manifest paths outside the experiment folder (default: the config's
        ``run.allow_paths_outside_experiment``).

    Returns
    -------
    Results
        With ``failures`` (one row per failed sample, `FAILURE_COLUMNS`).
    """
    from .pipeline import _assemble, _versions

    t_start = time.time()
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    cfg = load_config(config)
    chash = config_hash(cfg)
    exp = load_experiment(experiment, cfg.run.filename_pattern)
    allow = cfg.run.allow_paths_outside_experiment if allow_outside_paths is None else allow_outside_paths
    _check_paths(exp, _experiment_root(experiment), allow)
    if out is None:
        raise ValueError("run_batch needs an output folder (out=...)")
    out = Path(out).resolve()  # absolute: workers elsewhere write to the same place
    prev = _prepare_out(out, chash, resume=resume, overwrite=overwrite)
    state = {"status": "running", "config_hash": chash, "started": started, "lungtrack_version": __version__,
             "experiment": exp.source, "resumed_from": prev.get("started") if prev else None}
    try:
        _atomic_write_text(out / STATE, json.dumps(state, indent=1))
    except OSError as exc:
        raise LungtrackInputError(f"{out}: cannot write the results folder ({exc.strerror or exc}); "
                                  "choose a writable --out.") from exc
    stages = {}

    t0 = time.time()
    records, failures = {}, []
    for s in exp.samples:
        try:
            records[s.sample_id] = validate_sample(s, cfg)
        except LungtrackInputError as exc:
            if strict:
                _stopped(out, state, _failure(s, "input", exc))
                raise
            failures.append(_failure(s, "input", exc))
    stages["validate_s"] = time.time() - t0

    valid = [s for s in exp.samples if s.sample_id in records]
    todo = [s for s in valid if not _is_done(out, s, _input_digest(records[s.sample_id]), chash, cfg.run.write_labels)]
    skipped = len(valid) - len(todo)
    if skipped:
        log.info("resuming: %d of %d samples already analysed with this input and config", skipped, len(valid))
    t0 = time.time()
    try:
        statuses = _execute(todo, records, cfg, out, chash, client=client, scheduler=scheduler,
                            use_dask=use_dask, strict=strict, progress=progress)
    except Exception as exc:
        if strict:
            _stopped(out, state)
        raise
    stages["per_image_s"] = time.time() - t0
    failures += [{k: st[k] for k in FAILURE_COLUMNS} for st in statuses if st["status"] == "failed"]
    failed_ids = {f["sample_id"] for f in failures}
    # Results of samples that failed now are stale even if an older run left some (labels included).
    for sid in failed_ids:
        _remove_sample(out, sid)

    order = {s.sample_id: i for i, s in enumerate(exp.samples)}
    failures_df = pd.DataFrame(sorted(failures, key=lambda f: order[f["sample_id"]]), columns=FAILURE_COLUMNS)
    failures_df.to_csv(out / ".lungtrack" / "failures.csv.tmp", index=False)
    os.replace(out / ".lungtrack" / "failures.csv.tmp", out / "failures.csv")
    done = [s for s in valid if s.sample_id not in failed_ids]
    if not done:
        state["status"] = "failed"
        _atomic_write_text(out / STATE, json.dumps(state, indent=1))
        raise LungtrackInputError(
            f"no image could be analysed ({len(failures)} failed); see {out / 'failures.csv'}:\n"
            + "\n".join(f"  sample {f['sample_id']} ({f['stage']}): {f['error']}" for f in failures[:10])
            + "\n" + "\n".join(dict.fromkeys(f["hint"] for f in failures)))

    t0 = time.time()
    parts = [_read_part(_sample_dir(out, s.sample_id)) for s in done]
    # Per-image analysis time, also of images reused from an earlier run (their done.json keeps it).
    sample_times = {
        s.sample_id: json.loads((_sample_dir(out, s.sample_id) / "done.json").read_text()).get("analyse_s")
        for s in done}
    results = _assemble(parts, cfg)
    stages["summary_s"] = time.time() - t0
    _report_costes_warnings(results.coloc)
    results.failures = failures_df
    results.run = {
        "lungtrack_version": __version__, "started": started, "config": cfg.to_dict(), "config_hash": chash,
        "experiment": exp.source, "results_folder": str(out), "n_samples": len(exp), "n_analysed": len(done),
        "n_failed": len(failures),
        "n_reused": skipped, "resumed_from": state["resumed_from"], "analyse_s_per_sample": sample_times,
        "inputs": [records[s.sample_id] for s in valid], "versions": _versions(),
        "host": {"hostname": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "scheduler": _cluster_description(client) if client is not None
        else (scheduler or "threads") if use_dask else "none (plain loop)",
    }
    t0 = time.time()
    try:
        results.run["outputs_sha256"] = _write_summary(results, out)
        stages["write_s"] = time.time() - t0
        results.run["stages"] = stages
        results.run["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        results.run["elapsed_s"] = time.time() - t_start
        _atomic_write_text(out / "run.json", json.dumps(results.run, indent=2, default=str))
    except OSError as exc:
        raise LungtrackInputError(
            f"{out}: could not write the summary tables ({exc.strerror or exc}). The {len(done)} analysed "
            f"images are kept in {out / 'samples'}. {_hint(exc, 'write')}") from exc
    state["status"] = "finished_with_failures" if failures else "finished"
    _atomic_write_text(out / STATE, json.dumps(state, indent=1))
    results.out = out
    return results


# --------------------------------------------------------------------------- verify

def verify(results_folder) -> pd.DataFrame:
    """Re-check a results folder: input checksums, output checksums, per-sample config.

    Returns one row per check: ``kind`` (input/output/sample), ``name``, ``ok``
    (bool), ``detail``. Raises `LungtrackInputError` when the folder has no run.json.
    """
    folder = Path(results_folder)
    run_file = folder / "run.json"
    if not run_file.exists():
        raise LungtrackInputError(f"{folder}: no run.json; this is not a finished lungtrack results folder.")
    run = json.loads(run_file.read_text())
    rows = []
    for rec in run.get("inputs", []):
        files = [(rec["path"], rec["sha256"])]
        files += [(p, rec["labels_sha256"][role]) for role, p in sorted(rec.get("labels", {}).items())]
        for path, want in files:
            p = Path(path)
            if not p.exists():
                rows.append({"kind": "input", "name": str(p), "ok": False, "detail": "missing"})
                continue
            got = sha256(p)
            rows.append({"kind": "input", "name": str(p), "ok": got == want,
                         "detail": "sha256 matches" if got == want else f"sha256 changed: {got[:12]}... "
                         f"(recorded {want[:12]}...)"})
    for name, digest in sorted(run.get("outputs_sha256", {}).items()):
        p = folder / name
        ok = p.exists() and sha256(p) == digest
        rows.append({"kind": "output", "name": name, "ok": ok,
                     "detail": "sha256 matches" if ok else ("missing" if not p.exists() else "modified")})
    chash = run.get("config_hash")
    fail_csv = folder / "failures.csv"
    failed = set(pd.read_csv(fail_csv, dtype=str)["sample_id"]) if fail_csv.exists() else set()
    for rec in run.get("inputs", []):
        if rec["sample_id"] in failed:
            continue
        done = folder / "samples" / rec["sample_id"] / "done.json"
        d = json.loads(done.read_text()) if done.exists() else {}
        ok = d.get("config_hash") == chash and d.get("sha256") == _input_digest(rec)
        rows.append({"kind": "sample", "name": rec["sample_id"], "ok": ok,
                     "detail": "config and input match the run" if ok else "stale or missing per-sample result"})
    return pd.DataFrame(rows, columns=["kind", "name", "ok", "detail"])
