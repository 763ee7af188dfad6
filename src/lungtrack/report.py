"""Results folder -> a self-contained report.html (figures embedded, tables inline)."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em} td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6} td,th{white-space:nowrap} .wide{overflow-x:auto}
.note{color:#666;font-size:.9em} img{max-width:100%}
"""


def _table(df: pd.DataFrame, max_rows: int = 60) -> str:
    shown = df.head(max_rows)
    out = '<div class="wide">' + shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0,
                                               na_rep="–") + "</div>"
    if len(df) > max_rows:
        out += f'<p class="note">{len(df) - max_rows} more rows in the CSV file.</p>'
    return out


def write_report(results, path) -> Path:
    """Write ``report.html`` for a `lungtrack.pipeline.Results` whose figures are beside it."""
    path = Path(path)
    folder = path.parent
    png = folder / "figures" / "persistence.png"
    img = ""
    if png.exists():
        b64 = base64.b64encode(png.read_bytes()).decode()
        img = f'<img alt="MSC persistence" src="data:image/png;base64,{b64}">'
    run = results.run or {}
    fit = results.persistence_fit
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>lungtrack report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>lungtrack report</h1>",
        f"<p class='note'>lungtrack {html.escape(str(run.get('lungtrack_version', '')))} · experiment "
        f"{html.escape(str(run.get('experiment', '')))} · {run.get('n_samples', len(results.samples))} images · "
        f"started {html.escape(str(run.get('started', '')))} · config, versions and input checksums in run.json</p>",
        "<h2>MSC persistence</h2>", img,
        "<h3>Half-life per group</h3>", _table(fit),
        "<p class='note'>Exponential: one-phase decay fitted to animal means (animals are the experimental unit); "
        "CI by bootstrapping animals. Fraction remaining is relative to the group's earliest time point.</p>",
        "<h3>Per group and time point</h3>", _table(results.persistence),
        "<h2>Per image</h2>", _table(results.samples),
        "<h2>Files</h2><ul>",
    ]
    for name in ["samples.csv", "objects.parquet", "objects.csv", "interactions.csv", "persistence.csv",
                 "persistence_fit.csv", "labels/", "figures/", "run.json"]:
        parts.append(f"<li><a href='{name}'>{name}</a></li>")
    parts.append("</ul></body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
