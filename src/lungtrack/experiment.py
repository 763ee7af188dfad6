"""An experiment: which image belongs to which group, time point, animal and section.

From a manifest CSV (``path, sample_id, animal, group, time_h, section``, optional
``pixel_size_um``, any extra columns kept as metadata) or from a folder whose
file names follow a pattern (``run.filename_pattern`` in the config).

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "manifest.csv").write_text(
...     "path,sample_id,animal,group,time_h,section,dose\\na.tif,s1,m1,BM,2,1,1e6\\n")
>>> exp = load_experiment(d)
>>> exp.samples[0].group, exp.samples[0].time_h, exp.samples[0].metadata
('BM', 2.0, {'dose': 1000000.0})
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .io import LungtrackInputError

REQUIRED = ["path", "sample_id", "animal", "group", "time_h", "section"]
#: Optional manifest columns naming external label images per role (Cellpose, StarDist, QuPath, ilastik).
LABEL_COLUMNS = {f"{role}_labels": role for role in ("msc", "macrophage", "nuclei", "tissue")}


@dataclass(frozen=True)
class Sample:
    """One image of the experiment."""

    sample_id: str
    path: str
    animal: str
    group: str
    time_h: float
    section: str
    pixel_size_um: float | None = None
    metadata: dict = field(default_factory=dict, hash=False, compare=False)
    #: role -> absolute path of a label image made elsewhere (manifest columns ``<role>_labels``).
    labels: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass
class Experiment:
    """The samples of an experiment and where they were described."""

    samples: list[Sample]
    source: str

    @property
    def table(self) -> pd.DataFrame:
        rows = []
        for s in self.samples:
            row = {"sample_id": s.sample_id, "path": s.path, "animal": s.animal, "group": s.group,
                   "time_h": s.time_h, "section": s.section}
            row.update(s.metadata)
            rows.append(row)
        return pd.DataFrame(rows)

    def __len__(self) -> int:
        return len(self.samples)


def _from_table(df: pd.DataFrame, root: Path, source: str) -> Experiment:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise LungtrackInputError(
            f"{source}: manifest lacks column(s) {missing}; it needs {REQUIRED} (pixel_size_um optional). "
            "Add the column(s) (header names are case-sensitive)."
        )
    if df.empty:
        raise LungtrackInputError(f"{source}: manifest has no rows.")
    dup = df["sample_id"][df["sample_id"].duplicated()].tolist()
    if dup:
        raise LungtrackInputError(f"{source}: sample_id values must be unique; repeated: {dup[:5]}. Give each "
                                  "row (image) its own sample_id, e.g. with the section number, or remove the "
                                  "duplicate rows.")
    t = pd.to_numeric(df["time_h"], errors="coerce")
    bad = df.loc[t.isna(), "sample_id"].tolist()
    if bad:
        raise LungtrackInputError(f"{source}: time_h must be a number (hours) for every row; not for {bad[:5]}. "
                                  "Write plain numbers (8, not '8h'; 30 min is 0.5).")
    if "pixel_size_um" in df.columns:
        px = pd.to_numeric(df["pixel_size_um"], errors="coerce")
        bad = df.loc[df["pixel_size_um"].notna() & ~(px > 0), "sample_id"].tolist()
        if bad:
            raise LungtrackInputError(f"{source}: pixel_size_um must be a positive number (um per pixel) or empty; "
                                      f"not for {bad[:5]}. Correct it, or leave it empty to use the image's metadata.")
    extra = [c for c in df.columns if c not in REQUIRED + ["pixel_size_um"] + list(LABEL_COLUMNS)]
    samples = []
    for (_, row), time_h in zip(df.iterrows(), t):
        p = Path(str(row["path"]))
        if not p.is_absolute():
            p = root / p
        # Absolute paths: Dask workers may run in another working directory.
        p = p.absolute()
        px = row.get("pixel_size_um")
        px = None if px is None or pd.isna(px) else float(px)
        meta = {c: (None if pd.isna(row[c]) else row[c].item() if hasattr(row[c], "item") else row[c])
                for c in extra}
        labels = {}
        for col, role in LABEL_COLUMNS.items():
            v = row.get(col)
            if v is None or pd.isna(v) or str(v).strip() == "":
                continue
            lp = Path(str(v))
            labels[role] = str((lp if lp.is_absolute() else root / lp).absolute())
        samples.append(Sample(sample_id=str(row["sample_id"]), path=str(p), animal=str(row["animal"]),
                              group=str(row["group"]), time_h=float(time_h), section=str(row["section"]),
                              pixel_size_um=px, metadata=meta, labels=labels))
    return Experiment(samples=samples, source=source)


def load_experiment(source, pattern: str | None = None) -> Experiment:
    """Load an experiment from a manifest CSV, a folder with ``manifest.csv``, or a folder of images.

    Parameters
    ----------
    source : str, Path, DataFrame or Experiment
        Manifest path, folder, a manifest table (paths relative to the working
        directory) or an existing Experiment.
    pattern : str, optional
        Regular expression with named groups ``group``, ``time_h``, ``animal``,
        ``section`` for a folder without manifest; the default is
        `lungtrack.config.RunConfig.filename_pattern`.
    """
    if isinstance(source, Experiment):
        return source
    if isinstance(source, pd.DataFrame):
        return _from_table(source, Path.cwd().absolute(), "manifest table")
    p = Path(source).absolute()
    if p.is_dir() and (p / "manifest.csv").exists():
        p = p / "manifest.csv"
    if p.is_file():
        try:
            df = pd.read_csv(p)
        except Exception as exc:
            raise LungtrackInputError(f"{p}: cannot read the manifest CSV ({exc}).") from exc
        return _from_table(df, p.parent, str(p))
    if p.is_dir():
        return discover(p, pattern)
    raise LungtrackInputError(f"{p}: no such manifest or folder.")


def discover(folder: Path, pattern: str | None = None) -> Experiment:
    """Build an experiment from file names (no manifest)."""
    from .config import RunConfig

    rx = re.compile(pattern or RunConfig().filename_pattern)
    rows, skipped = [], []
    for f in sorted(folder.rglob("*")):
        if not f.is_file():
            continue
        m = rx.fullmatch(f.name)
        if m is None:
            if f.suffix.lower() in {".tif", ".tiff"}:
                skipped.append(f.name)
            continue
        g = m.groupdict()
        rows.append({"path": str(f), "sample_id": f.name.split(".")[0], "animal": g.get("animal", f.stem),
                     "group": g.get("group", "all"), "time_h": g.get("time_h", 0), "section": g.get("section", 1)})
    if not rows:
        raise LungtrackInputError(
            f"{folder}: no manifest.csv and no file matches the pattern {rx.pattern!r}. Write a manifest "
            "(columns path, sample_id, animal, group, time_h, section) or set run.filename_pattern."
        )
    if skipped:
        import logging

        logging.getLogger(__name__).warning("%d TIFF file(s) do not match the pattern and are ignored: %s",
                                            len(skipped), skipped[:5])
    return _from_table(pd.DataFrame(rows), folder, str(folder))
