"""Writers: Labels layers and their ``features`` back to the results-folder format (DESIGN.md section 3).

- one Labels layer to ``*.tif``: a uint32 OME-TIFF with the layer's spacing
  (`lungtrack.io.write_labels`) and, when the layer has features, ``<stem>.csv`` beside it;
- several layers to a folder: ``labels/<sample_id>_<role>.tif`` per Labels layer,
  ``objects.csv`` + ``objects.parquet`` (features of every labels layer, with ``sample_id``
  and ``role``), and ``interactions.csv`` from an ``msc -> nearest macrophage`` Shapes layer.

The sample id and role come from ``layer.metadata`` (set by the reader and the widgets),
else from the layer name (``"msc labels [S1]"`` -> role ``msc``, sample ``S1``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from lungtrack.io import write_labels

ROLES = ("msc", "macrophage", "nuclei", "tissue")


def layer_identity(name: str, meta: dict) -> tuple[str, str | None]:
    """``(sample_id, role)`` of a layer from its metadata or its name.

    >>> layer_identity("msc labels [BM_2h_m1_s1]", {})
    ('BM_2h_m1_s1', 'msc')
    >>> layer_identity("tissue", {"sample_id": "S1"})
    ('S1', 'tissue')
    >>> layer_identity("my cells", {})
    ('napari', None)
    """
    m = re.search(r"\[([^\]]+)\]\s*$", name)
    sid = meta.get("sample_id") or (m.group(1) if m else None) or "napari"
    role = meta.get("role")
    if role is None:
        first = name.split(" ")[0].lower()
        role = first if first in ROLES else None
    return str(sid), role


def _spacing(meta: dict, ndim: int) -> tuple[float, float, float]:
    scale = [float(s) for s in meta.get("scale", (1.0,) * ndim)][-ndim:]
    return tuple(scale) if ndim == 3 else (1.0, *scale)


def write_labels_layer(path: str, data, meta: dict) -> list[str]:
    """napari single-layer writer: a Labels layer to an OME-TIFF (+ its features as CSV)."""
    data = np.asarray(data)
    if data.ndim not in (2, 3):
        raise ValueError(f"labels layer {meta.get('name')!r} has {data.ndim} dimensions; lungtrack writes (Y, X) or "
                         "(Z, Y, X) label images")
    p = Path(path)
    if p.suffix.lower() not in (".tif", ".tiff"):
        p = p.with_suffix(".tif")
    write_labels(p, data, _spacing(meta, data.ndim))
    written = [str(p)]
    features = meta.get("features")
    if isinstance(features, pd.DataFrame) and len(features.columns):
        csv = p.with_name(p.name.split(".")[0] + ".csv")
        features.drop(columns=["index"], errors="ignore").to_csv(csv, index=False)
        written.append(str(csv))
    return written


def write_results(path: str, layer_data: list[tuple]) -> list[str]:
    """napari multi-layer writer: Labels (+ lines) layers to a results folder at ``path``.

    Returns the files written. Image layers are not copied (the results folder refers to
    the original images).
    """
    out = Path(path)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    written, objects, interactions = [], [], []
    for data, meta, kind in layer_data:
        name = str(meta.get("name", kind))
        sid, role = layer_identity(name, meta.get("metadata", {}) or {})
        if kind == "labels":
            if role is None:
                role = re.sub(r"\W+", "_", name.split("[")[0].strip()) or "labels"
            arr = np.asarray(data)
            target = out / "labels" / f"{sid}_{role}.tif"
            write_labels(target, arr, _spacing(meta, arr.ndim))
            written.append(str(target))
            f = meta.get("features")
            if isinstance(f, pd.DataFrame) and len(f) and role != "tissue":
                f = f.drop(columns=["index"], errors="ignore").copy()
                f["sample_id"], f["role"] = sid, role
                objects.append(f)
        elif kind == "shapes":
            f = meta.get("features")
            if isinstance(f, pd.DataFrame) and "msc_label" in f.columns:
                f = f.copy()
                if "sample_id" not in f.columns or f["sample_id"].isna().all():
                    f["sample_id"] = sid
                interactions.append(f)
    if objects:
        table = pd.concat(objects, ignore_index=True)
        first = [c for c in ("sample_id", "role", "label") if c in table.columns]
        table = table[first + [c for c in table.columns if c not in first]]
        table.to_csv(out / "objects.csv", index=False)
        table.to_parquet(out / "objects.parquet", index=False)
        written += [str(out / "objects.csv"), str(out / "objects.parquet")]
    if interactions:
        pd.concat(interactions, ignore_index=True).to_csv(out / "interactions.csv", index=False)
        written.append(str(out / "interactions.csv"))
    return [os.fspath(w) for w in written]
