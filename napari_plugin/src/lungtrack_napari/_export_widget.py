"""Widgets "Export" (tables, figures, screenshot with scale bar, labels) and "Open image" (axes, pixel size).

Export writes, into one folder:

- ``<layer name>.csv`` or ``.parquet``: the ``features`` table of every layer that has one
  (labels layers from Segment or the reader, nearest-macrophage lines from Interactions);
- ``figures/<dock name>.png`` + ``.svg``: every docked matplotlib figure (cytofluorogram,
  persistence), with `lungtrack.figures.save_figure`;
- ``screenshot.png``: the canvas with napari's scale bar in um;
- ``results/``: Labels layers and tables in the results-folder layout (`write_results`).

"Open image" opens a file with axes and pixel size given by hand, for files whose metadata
lacks them; the values become the reader's defaults (kept between sessions).
"""

import re
from pathlib import Path

import napari
import pandas as pd
from magicgui import magic_factory

from ._reader import image_layer_data, labels_layer_data, looks_like_labels, open_image
from ._writer import write_results


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "layer"


def export_tables(viewer, folder, fmt: str = "csv") -> list[Path]:
    """Write the ``features`` table of every layer that has rows, as CSV or parquet."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for layer in viewer.layers:
        f = getattr(layer, "features", None)
        if not isinstance(f, pd.DataFrame) or not len(f):
            continue
        path = folder / f"{_safe(layer.name)}.{fmt}"
        if fmt == "parquet":
            f.to_parquet(path, index=False)
        else:
            f.to_csv(path, index=False)
        out.append(path)
    return out


def docked_figures(viewer) -> dict:
    """``{dock name: matplotlib Figure}`` of the docked figure canvases."""
    out = {}
    for name, w in dict(viewer.window.dock_widgets).items():
        fig = getattr(w, "figure", None)
        if fig is None and hasattr(w, "widget"):
            fig = getattr(w.widget(), "figure", None)
        if fig is not None:
            out[name] = fig
    return out


def export_figures(viewer, folder) -> list[Path]:
    """Save each docked figure as ``figures/<name>.png`` and ``.svg``."""
    from lungtrack.figures import save_figure

    folder = Path(folder) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, fig in docked_figures(viewer).items():
        out += [Path(p) for p in save_figure(fig, folder / _safe(name)) if str(p).endswith((".png", ".svg"))]
    return out


def scale_bar_of(viewer):
    """napari's scale-bar overlay (``viewer.canvas.overlays`` from 0.9, ``viewer.scale_bar`` before)."""
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    return overlays["scale_bar"] if overlays is not None and "scale_bar" in overlays else viewer.scale_bar


def screenshot_with_scale_bar(viewer, path, *, canvas_only: bool = True):
    """Screenshot of the canvas with a scale bar (the bar's previous state is restored).

    From napari 0.9 the bar's unit comes from the layers' ``units`` (the lungtrack reader
    sets um); before, the bar is told "um".
    """
    bar = scale_bar_of(viewer)
    old_units = not hasattr(viewer, "canvas") and hasattr(bar, "unit")
    before = (bar.visible, bar.unit if old_units else None)
    bar.visible = True
    if old_units:
        bar.unit = "um"
    try:
        return viewer.screenshot(str(path), canvas_only=canvas_only)
    finally:
        bar.visible = before[0]
        if old_units:
            bar.unit = before[1]


def _init_export(widget) -> None:
    from ._settings import persist

    persist(widget, "export", names=["folder", "table_format", "tables", "figures", "screenshot", "results_folder"])


@magic_factory(
    call_button="Export",
    widget_init=_init_export,
    folder={"label": "export folder", "mode": "d"},
    table_format={"choices": ("csv", "parquet"), "label": "table format"},
    tables={"tooltip": "features table of every layer that has one"},
    figures={"tooltip": "docked figures (cytofluorogram, persistence) as PNG and SVG"},
    screenshot={"tooltip": "the canvas with a scale bar in um"},
    results_folder={"label": "labels as results folder",
                    "tooltip": "Labels layers to results/labels/<sample>_<role>.tif and results/objects.csv"},
)
def export_widget(
    viewer: napari.viewer.Viewer,
    folder: Path = Path("lungtrack-export"),
    table_format: str = "csv",
    tables: bool = True,
    figures: bool = True,
    screenshot: bool = True,
    results_folder: bool = False,
) -> list[str]:
    """Export tables, figures, a screenshot with scale bar and (optionally) labels; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if tables:
        written += export_tables(viewer, folder, table_format)
    if figures:
        written += export_figures(viewer, folder)
    if screenshot:
        screenshot_with_scale_bar(viewer, folder / "screenshot.png")
        written.append(folder / "screenshot.png")
    if results_folder:
        layer_data = [lay.as_layer_data_tuple() for lay in viewer.layers
                      if isinstance(lay, (napari.layers.Labels, napari.layers.Shapes))]
        written += [Path(p) for p in write_results(str(folder / "results"), layer_data)]
    return [str(p) for p in written]


def _init_open(widget) -> None:
    from ._settings import persist

    persist(widget, "reader", names=["axes", "pixel_size_um", "z_step_um"])


@magic_factory(
    call_button="Open",
    widget_init=_init_open,
    path={"label": "image file", "mode": "r", "filter": "*.tif *.tiff"},
    axes={"label": "axes (if the file does not say)",
          "tooltip": "Axis letters of the stored image, e.g. CYX or ZCYX; empty: from the metadata. "
                     "Also used by the reader (File > Open) from now on."},
    pixel_size_um={"label": "pixel size (um, if missing)", "min": 0.0, "max": 1000.0, "step": 0.01,
                   "tooltip": "Used where the metadata has no pixel size (0: not set). Also the reader's default."},
    z_step_um={"label": "z step (um, if missing)", "min": 0.0, "max": 1000.0, "step": 0.1,
               "tooltip": "Used where a z-stack has no z step (0: not set). Also the reader's default."},
)
def open_image_widget(
    viewer: napari.viewer.Viewer,
    path: Path = Path(""),
    axes: str = "",
    pixel_size_um: float = 0.0,
    z_step_um: float = 0.0,
) -> list:
    """Open an image (or label image) with the axes and pixel size given here."""
    if not Path(path).is_file():
        raise ValueError(f"image file {str(path)!r} does not exist")
    img = open_image(path, axes=axes.upper() or None, pixel_size_um=pixel_size_um or None,
                     z_step_um=z_step_um or None)
    data = [labels_layer_data(img)] if looks_like_labels(img) else image_layer_data(img)
    return [getattr(viewer, f"add_{kind}")(d, **kw) for d, kw, kind in data]
