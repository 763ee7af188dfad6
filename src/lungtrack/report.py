"""Results folder -> one self-contained ``report.html``.

Everything is embedded (figures as PNG data, QC thumbnails, tables), so the file can be
mailed or archived alone. Tables sort by clicking a column header (a few lines of inline
JavaScript, no external library). Sections: run summary, warnings, figures, per-sample
QC thumbnails with segmentation outlines, tables, the methods paragraph, files.
"""
from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["write_report", "qc_thumbnail", "collect_warnings"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1150px;color:#222;padding:0 1em}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd} h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.82em} td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f4f4f4;cursor:pointer;position:sticky;top:0} th:hover{background:#e8e8e8}
.wide{overflow:auto;max-height:32em;border:1px solid #eee} .note{color:#666;font-size:.9em} img{max-width:100%}
.warn{background:#fff6e0;border-left:4px solid #e69f00;padding:.4em .8em;margin:.4em 0}
.bad{background:#fde8e8;border-left:4px solid #d55e00;padding:.4em .8em;margin:.4em 0}
.thumbs{display:flex;flex-wrap:wrap;gap:10px} .thumbs figure{margin:0;width:170px;font-size:.75em;text-align:center}
.thumbs img{width:170px;height:auto;image-rendering:pixelated;border:1px solid #ccc}
.figs{display:flex;flex-wrap:wrap;gap:1.2em 2em;align-items:flex-start} .figs figure{margin:0;max-width:100%} .figs img{width:100%}
nav{font-size:.9em;margin:1em 0} nav a{margin-right:1em} .methods{font-size:.9em;line-height:1.45}
dl.run{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;font-size:.9em} dt{color:#666}
"""

# Click a header to sort by that column (numbers numerically); click again to reverse.
_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var body=t.tBodies[0],rows=Array.from(body.rows),asc=th.dataset.asc!=='1';
      t.querySelectorAll('th').forEach(function(h){h.dataset.asc='';});th.dataset.asc=asc?'1':'0';
      rows.sort(function(a,b){var x=a.cells[i].dataset.v||a.cells[i].textContent,y=b.cells[i].dataset.v||b.cells[i].textContent;
        var nx=parseFloat(x),ny=parseFloat(y);var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c;});
      rows.forEach(function(r){body.appendChild(r);});});});});
"""


def _table(df: pd.DataFrame, max_rows: int = 500, caption: str | None = None) -> str:
    """An HTML table with the ``sortable`` class; long tables are cut with a note."""
    shown = df.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = []
    for row in shown.itertuples(index=False):
        cells = []
        for v in row:
            if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
                cells.append("<td data-v=''>–</td>")
            elif isinstance(v, (float, np.floating)):
                cells.append(f"<td data-v='{float(v)!r}'>{float(v):.4g}</td>")
            else:
                cells.append(f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    out = (f"<div class='wide'><table class='sortable'>{'<caption>' + html.escape(caption) + '</caption>' if caption else ''}"
           f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
    if len(df) > max_rows:
        out += f"<p class='note'>First {max_rows} of {len(df)} rows; all rows are in the CSV file.</p>"
    return out


def _png_b64(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _thumb_array(image_path, size_px: int, axes=None):
    """(C, y, x) maximum projection subsampled by striding before loading; and channel names."""
    from .io import read_image

    img = read_image(image_path, require_spacing=False, axes=axes)
    data = img.data[0]  # (C, Z, Y, X)
    step = max(1, int(np.ceil(max(data.shape[-2:]) / size_px)))
    return np.asarray(data[:, :, ::step, ::step].max(axis=1)), img.channel_names, step


def qc_thumbnail(image_path, labels: dict, *, size_px: int = 170, channel_names=None, axes=None,
                 limits=None) -> bytes:
    """A small PNG: the image's composite (maximum projection for stacks) with segmentation outlines.

    The image is read lazily and subsampled by striding before it is loaded, so a
    whole-slide section costs about ``size_px**2`` pixels per channel. ``limits``
    (one ``(low, high)`` per channel) fixes the display range, so that thumbnails of
    one experiment are comparable; default: this image's own percentiles.
    """
    arr, names, step = _thumb_array(image_path, size_px, axes)
    return _thumb_png(arr, names if channel_names is None else channel_names, step, labels, limits)


def _thumb_png(arr, names, step, labels, limits) -> bytes:
    from matplotlib.colors import to_rgb
    from matplotlib.image import imsave

    from .overlay import ROLE_COLORS, composite, outlines

    rgb = composite(arr, channel_names=names, limits=limits)
    for role, lab in labels.items():
        lab = np.asarray(lab)
        if lab.ndim == 3:
            lab = lab.max(axis=0)
        lab = lab[::step, ::step][: rgb.shape[0], : rgb.shape[1]]
        rgb[outlines(lab)] = to_rgb(ROLE_COLORS.get(role, "#FFFFFF"))
    buf = io.BytesIO()
    imsave(buf, rgb, format="png")
    return buf.getvalue()


def collect_warnings(results) -> list[tuple[str, str]]:
    """(level, text) pairs a reader must see before trusting the numbers."""
    out = []
    fails = getattr(results, "failures", None)
    if fails is not None and len(fails):
        out.append(("bad", f"{len(fails)} image(s) could not be analysed and are missing from every table "
                           "(see 'Failed images' below and failures.csv)."))
    s = results.samples
    if "tissue_area_mm2" in s:
        zero = s.loc[~(s["tissue_area_mm2"] > 0), "sample_id"].tolist()
        if zero:
            out.append(("warn", f"{len(zero)} image(s) with no tissue detected (densities undefined): "
                                f"{', '.join(map(str, zero[:10]))}."))
    fit = results.persistence_fit
    if len(fit) and "half_life_h" in fit:
        main = fit[fit["model"] == "exponential"] if "model" in fit else fit
        nofit = main.loc[main["half_life_h"].isna(), "group"].astype(str).tolist()
        if nofit:
            out.append(("warn", f"No exponential half-life could be fitted for group(s) {', '.join(nofit)} (too "
                                "few time points with MSCs, or no decay)."))
    co = getattr(results, "coloc", None)
    if co is not None and len(co) and "costes_warnings" in co:
        rows = co[co["scope"].isin(["image", "tissue"])]
        flagged = rows["costes_warnings"].fillna("").astype(str)
        flagged = flagged[flagged != ""]
        if len(flagged):
            counts = pd.Series([c for v in flagged for c in v.split(";")]).value_counts()
            out.append(("warn", f"Costes threshold quality warnings (Coloc 2's criteria) in {len(flagged)} of "
                                f"{len(rows)} image/tissue colocalization rows: "
                                + ", ".join(f"{k.replace('_', ' ')} ×{v}" for k, v in counts.items())
                                + ". Thresholded Manders values of those rows deserve caution (docs/methods.md)."))
    return out


_CAPTIONS = {
    "persistence": "MSC density per mm² of tissue over time: animals (points), mean ± SEM, fitted one-phase "
                   "decay with its confidence band and half-life.",
    "persistence_log": "The same on a logarithmic density axis (a one-phase decay is a straight line; "
                       "animals with no MSC are not drawn).",
    "superplot": "Superplot: each image (section) a small point coloured by its animal, each animal (sections "
                 "pooled) a large point, the bar the mean of the animals.",
    "recruitment": "Macrophage recruitment and engulfment over time: mean ± SEM of the animal values per group.",
    "msc_states": "Composition of MSC states (intact, near, in contact, fragmented, engulfed) per group and time "
                  "point: share of the MSCs pooled over the images; numbers above the bars: MSCs.",
    "msc_contact": "Fraction of MSCs touching a macrophage: images (small points), animals (large points), mean of "
                   "the animals (bar), by group and time point.",
    "efferocytosis": "Fraction of macrophages containing MSC label (efferocytosis): images, animals and the mean of "
                     "the animals, by group and time point.",
    "coloc_pearson": "Pearson correlation of the MSC and macrophage channels inside the tissue mask: images, animals "
                     "and the mean of the animals, by group and time point.",
    "example_images": "Representative images (closest to the group median of MSCs per mm², earliest time point): "
                      "channel composite, segmentation outlines, scale bars in µm; the framed region is shown "
                      "magnified in the inset.",
    "cytofluorogram": "Cytofluorogram of the image with the median Pearson r: 2D histogram of MSC-label vs "
                      "macrophage-marker intensity in the tissue, orthogonal regression and Costes thresholds.",
    "msc_macrophage_distances": "Cumulative distribution of the distance from each MSC to the nearest macrophage "
                                "(centres) per group and time point; band: 95 % envelope with the macrophages "
                                "placed at random in the tissue mask. A curve left of its band means macrophages "
                                "nearer than chance.",
    "cross_l": "Cross-type L function (MSC → macrophage), L(r) − r, of each group's representative image with its "
               "95 % envelope of random macrophage placement in the tissue and the global deviation test p-value "
               "(above the band: attraction at that distance).",
}
#: Order of the figures in the report (the story: persistence, macrophages, space, colocalization, images);
#: other PNGs in figures/ follow by name.
FIGURE_ORDER = ("persistence", "persistence_log", "superplot", "recruitment", "msc_states", "msc_contact",
                "efferocytosis", "msc_macrophage_distances", "cross_l", "coloc_pearson", "cytofluorogram",
                "example_images", "survival", "contact_raster")
#: CSS pixels per inch of figure: a figure is shown a bit larger than its print size (1 in = 96 CSS px).
_FIG_PX_PER_IN = 115


def _png_width_px(data: bytes) -> int:
    """Width from the PNG header (IHDR), without decoding the image."""
    return int.from_bytes(data[16:20], "big") if data[:8] == b"\x89PNG\r\n\x1a\n" else 0


def _design_items(results) -> list[tuple[str, str]]:
    """Run-summary lines: groups, time points, animals, objects and half-lives."""
    s = results.samples
    out = []
    if len(s) and {"group", "time_h"} <= set(s.columns):
        groups = ", ".join(map(str, dict.fromkeys(s["group"])))
        times = ", ".join(f"{t:g}" for t in sorted(s["time_h"].dropna().unique()))
        animals = s["animal"].nunique() if "animal" in s else "?"
        out.append(("design", f"groups {groups}; time points {times} h; {animals} animals"))
    if len(s) and {"n_msc", "n_macrophage"} <= set(s.columns):
        out.append(("objects", f"{int(s['n_msc'].sum())} MSCs, {int(s['n_macrophage'].sum())} macrophages"))
    fit = results.persistence_fit
    if len(fit) and {"group", "model", "half_life_h"} <= set(fit.columns):
        rows = fit[fit["model"] == "exponential"]
        conf = ((results.run or {}).get("config") or {}).get("persistence", {}).get("confidence", 0.95)
        out.append(("MSC half-life", "; ".join(
            f"{r.group}: {r.half_life_h:.3g} h [{getattr(r, 'ci_low_h', np.nan):.3g}, "
            f"{getattr(r, 'ci_high_h', np.nan):.3g}]" for r in rows.itertuples())
            + f" (one-phase fit, {round(100 * conf)} % CI)"))
    return out


def write_report(results, path, *, labels_dir=None, thumbnails: bool = True) -> Path:
    """Write ``report.html`` for a `lungtrack.pipeline.Results` whose figures are in ``figures/`` beside it.

    ``labels_dir`` (default: ``labels/`` of the results folder named in
    ``results.run["results_folder"]``, else beside ``path``) is where the QC
    thumbnails find the segmentation outlines.
    """
    from .methods_text import methods_paragraph

    path = Path(path)
    folder = path.parent
    run = results.run or {}
    if labels_dir is None:
        root = Path(run["results_folder"]) if run.get("results_folder") else folder
        labels_dir = root / "labels"
    labels_dir = Path(labels_dir)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>lungtrack report</title>",
             f"<style>{_CSS}</style></head><body>", "<h1>lungtrack report</h1>"]

    # Run summary
    fails = getattr(results, "failures", pd.DataFrame())
    items = [("lungtrack", run.get("lungtrack_version", "")), ("experiment", run.get("experiment", "")),
             ("images", f"{len(results.samples)} analysed" + (f", {len(fails)} failed" if len(fails) else "")
              + (f", {run.get('n_reused')} reused from an earlier run" if run.get("n_reused") else "")),
             *_design_items(results),
             ("started", run.get("started", "")),
             ("finished", run.get("finished", "") + (f" ({run['elapsed_s']:.0f} s)" if run.get("elapsed_s") else "")),
             ("scheduler", run.get("scheduler", "")),
             ("config hash", str(run.get("config_hash", ""))[:16]),
             ("provenance", "config, versions, input and output checksums in run.json; check with "
                            "<code>lungtrack verify</code>")]
    parts.append("<dl class='run'>" + "".join(
        f"<dt>{html.escape(k)}</dt><dd>{v if k == 'provenance' else html.escape(str(v))}</dd>" for k, v in items)
        + "</dl>")
    parts.append("<nav>" + " ".join(f"<a href='#{a}'>{t}</a>" for a, t in (
        ("warnings", "Warnings"), ("figures", "Figures"), ("persistence", "Persistence"), ("per-image", "Per image"),
        ("coloc", "Colocalization"), ("relations", "MSC–macrophage"), ("objects", "Objects"), ("qc", "QC images"),
        ("methods", "Methods"), ("files", "Files"))) + "</nav>")

    # Warnings
    warns = collect_warnings(results)
    parts.append("<h2 id='warnings'>Warnings</h2>")
    parts += [f"<div class='{lvl}'>{html.escape(t)}</div>" for lvl, t in warns] or ["<p class='note'>None.</p>"]
    if len(fails):
        parts += ["<h3>Failed images</h3>", _table(fails)]

    # Figures: every PNG lungtrack wrote, in name order, persistence first
    figs = sorted((folder / "figures").glob("*.png"),
                  key=lambda p: (FIGURE_ORDER.index(p.stem) if p.stem in FIGURE_ORDER else len(FIGURE_ORDER), p.stem))
    if figs:
        parts.append("<h2 id='figures'>Figures</h2><div class='figs'>")
        from .figures import PNG_DPI

        for png in figs:
            cap = _CAPTIONS.get(png.stem, png.stem.replace("_", " "))
            data = png.read_bytes()
            # Shown at about print size (the PNG is PNG_DPI), not at its 300-dpi pixel size.
            width = round(_png_width_px(data) / PNG_DPI * _FIG_PX_PER_IN)
            style = f" style='width:{width}px'" if width else ""
            parts.append(f"<figure id='fig-{html.escape(png.stem)}'{style}><img alt='"
                         f"{html.escape(png.stem)}' src='{_png_b64(data)}'><figcaption class='note'><b>"
                         f"{html.escape(png.stem)}</b>: {html.escape(cap)} (figures/{html.escape(png.stem)}"
                         ".png, .svg, .pdf)</figcaption></figure>")
        parts.append("</div>")

    # Tables
    parts += ["<h2 id='persistence'>MSC persistence</h2>", "<h3>Half-life per group and model</h3>",
              _table(results.persistence_fit),
              "<p class='note'>Animals are the experimental unit. Half-life CI: t interval on the animal level "
              "(one-phase: quasi-likelihood weights, Poisson + animal variance); 'selected' marks the model with "
              "the smaller AICc (one- vs two-phase). Fraction remaining is relative to the group's earliest time "
              "point, with Fieller's CI (docs/methods.md).</p>",
              "<h3>Per group and time point</h3>", _table(results.persistence)]
    _ptables = getattr(results, "persistence_tables", None) or {}
    for _name, _title, _note in (
            ("persistence_compare", "Half-lives compared between groups",
             "Difference a - b with its CI combined from each group's half-life t-interval (MOVER, Zou & Donner "
             "2008) and the matching p-value (persistence_compare.csv, method column)."),
            ("persistence_tests", "Groups compared at each time point",
             "Rank tests on animal values (Mann-Whitney for 2 groups, Kruskal-Wallis for more); p_adjusted "
             "corrected over the time points of each measure as stated in the correction column."),
            ("persistence_mm3", "Per group and time point, per mm3 of tissue (z-stacks)",
             "As above with MSCs per mm3: counts over the summed tissue volume of each animal's z-stacks "
             "(persistence_mm3.csv; 2D images have no volume and are left out)."),
            ("recruitment", "Macrophage recruitment and engulfment over time", "Mean, SEM and t CI over animals."),
            ("persistence_residuals", "Residuals of the decay fits per animal",
             "Observed and fitted density per animal; Pearson residuals far from ±2 flag animals that the model "
             "does not describe.")):
        _t = _ptables.get(_name)
        if _t is not None and len(_t):
            parts += [f"<h3>{_title}</h3>", _table(_t), f"<p class='note'>{_note}</p>"]
    parts += [
              "<h2 id='per-image'>Per image</h2>", _table(results.samples)]
    co = getattr(results, "coloc", None)
    if co is not None and len(co):
        parts += ["<h2 id='coloc'>Colocalization</h2><p class='note'>MSC channel = a, macrophage channel = b; "
                  "scope image, "
                  "tissue, or one MSC (roi = its label).</p>", _table(co, max_rows=300)]
    if len(results.interactions):
        parts += ["<h2 id='relations'>MSC–macrophage relations (per MSC)</h2>",
                  _table(results.interactions, max_rows=300)]
    if len(results.objects):
        parts += ["<h2 id='objects'>Objects</h2><p class='note'>Every segmented object with its measurements "
                  "(objects.parquet / objects.csv).</p>", _table(results.objects, max_rows=300)]

    # QC thumbnails
    inputs = run.get("inputs", [])
    if thumbnails and inputs:
        parts.append("<h2 id='qc'>Quality control: every image with its segmentation</h2><p class='note'>"
                     "Outlines: MSCs "
                     "yellow, macrophages light blue; one display range per channel for all images. Look for "
                     "missed or merged cells and failed tissue masks.</p><div class='thumbs'>")
        done = set(results.samples["sample_id"].astype(str))
        axes = (run.get("config") or {}).get("run", {}).get("axes")
        thumbs = []
        for rec in inputs:
            sid = str(rec["sample_id"])
            if sid not in done:
                continue
            try:
                thumbs.append((sid, *_thumb_array(rec["path"], 170, axes)))
            except Exception as exc:  # noqa: BLE001 -- a thumbnail must never cost the report
                log.warning("report: no thumbnail for %s (%s)", sid, exc)
        # One display range per channel for the whole experiment, so brightness is comparable.
        limits = None
        n_ch = {t[1].shape[0] for t in thumbs}
        if thumbs and len(n_ch) == 1:
            limits = [tuple(np.percentile(np.concatenate([t[1][c].ravel() for t in thumbs]), (0.5, 99.8)))
                      for c in range(n_ch.pop())]
        import tifffile

        for sid, arr, names, step in thumbs:
            labels = {role: tifffile.imread(labels_dir / f"{sid}_{role}.tif") for role in ("msc", "macrophage")
                      if (labels_dir / f"{sid}_{role}.tif").exists()}
            png = _thumb_png(arr, names, step, labels, limits)
            row = results.samples[results.samples["sample_id"].astype(str) == sid].iloc[0]
            cap = f"{sid}<br>{int(row.get('n_msc', 0))} MSC · {int(row.get('n_macrophage', 0))} macrophages"
            parts.append(f"<figure><img alt='{html.escape(sid)}' src='{_png_b64(png)}'><figcaption>{cap}"
                         "</figcaption></figure>")
        parts.append("</div>")

    # Methods
    if run.get("config"):
        paras = methods_paragraph(run).split("\n\n")
        parts.append("<h2 id='methods'>Methods (generated from this run)</h2><div class='methods'>"
                     + "".join(f"<p>{html.escape(p)}</p>" for p in paras) + "</div>")

    parts.append("<h2 id='files'>Files</h2><ul>")
    for name in ["samples.csv", "objects.parquet", "objects.csv", "interactions.csv", "coloc.csv", "persistence.csv",
                 "persistence_fit.csv", "persistence_compare.csv", "persistence_tests.csv",
                 "persistence_residuals.csv", "recruitment.csv", "failures.csv", "labels/", "figures/", "run.json"]:
        parts.append(f"<li><a href='{name}'>{name}</a></li>")
    parts.append(f"</ul><script>{_JS}</script></body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def load_results(folder):
    """The tables and provenance of a finished results folder, as a `lungtrack.pipeline.Results`."""
    from .pipeline import Results

    folder = Path(folder)
    if not (folder / "run.json").exists():
        from .io import LungtrackInputError

        raise LungtrackInputError(f"{folder}: no run.json; not a finished lungtrack results folder.")
    read = lambda n: pd.read_csv(folder / n) if (folder / n).exists() else pd.DataFrame()  # noqa: E731
    run = json.loads((folder / "run.json").read_text())
    run["results_folder"] = str(folder.resolve())  # the folder may have moved since the run
    return Results(samples=read("samples.csv"), objects=pd.read_parquet(folder / "objects.parquet"),
                   interactions=read("interactions.csv"), persistence=read("persistence.csv"),
                   persistence_fit=read("persistence_fit.csv"), coloc=read("coloc.csv"),
                   failures=read("failures.csv"), run=run, out=folder,
                   persistence_tables={n: read(f"{n}.csv") for n in ("persistence_compare", "persistence_tests",
                                                                      "persistence_residuals", "recruitment",
                                                                      "persistence_mm3")})


def report_from_folder(folder) -> Path:
    """Rebuild ``report.html`` of a finished results folder from its files."""
    res = load_results(folder)
    return write_report(res, Path(folder) / "report.html", labels_dir=Path(folder) / "labels")


def figures_from_folder(folder) -> list[Path]:
    """Redraw every figure of a finished results folder from its tables (and images, for the examples)."""
    from .pipeline import write_figures

    res = load_results(folder)
    return write_figures(res, Path(folder) / "figures")
