"""Widget "Experiment": run `lungtrack.analyze` in the background, show persistence, open any sample.

Pick a manifest CSV or an image folder, a config (the CLI's YAML, optional) and a results
folder. "Run analyze" starts `lungtrack.analyze` in a worker thread; the napari progress
bar counts finished samples (``samples/<id>/done.json`` in the results folder, written by
`lungtrack.batch`). When it returns, the persistence figure (`lungtrack.figures.
persistence_figure`) is docked and any sample can be opened with its labels and tables
(`results_layer_data`). "Load results" does the same for an existing results folder.
"""

import time
from pathlib import Path

import napari
import pandas as pd
from magicgui import magic_factory
from magicgui.widgets import ComboBox, Label, PushButton

from ._reader import is_results_folder, results_layer_data, results_sample_ids
from ._widget import _viewer_of, add_or_update_layers

FIGURE_DOCK = "persistence"


def run_analyze_steps(experiment, out, config=None, *, overwrite: bool = False, resume: bool = False,
                      poll_s: float = 0.2):
    """Generator: runs `lungtrack.analyze` in a thread, yields ``(done, total)`` while it runs, returns Results.

    Progress is the number of ``samples/*/done.json`` in ``out``: the batch runner
    writes one per finished sample. Stopping the generator (``worker.quit()``) stops
    waiting, not the run, which finishes in the background (lungtrack has no cancel).
    """
    from concurrent.futures import ThreadPoolExecutor

    from lungtrack import analyze
    from lungtrack.experiment import load_experiment

    total = len(load_experiment(experiment))
    out = Path(out)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lungtrack-analyze")
    future = pool.submit(analyze, experiment, config=config, out=out, overwrite=overwrite, resume=resume,
                         use_dask=True, scheduler="threads")
    pool.shutdown(wait=False)
    last = -1
    while not future.done():
        done = len(list((out / "samples").glob("*/done.json"))) if (out / "samples").is_dir() else 0
        if done != last:
            last = done
            yield done, total
        time.sleep(poll_s)
    yield total, total
    return future.result()


def persistence_figure_of(folder):
    """The persistence figure of a results folder, from its tables (`lungtrack.figures.persistence_figure`)."""
    from lungtrack.figures import persistence_figure
    from lungtrack.persistence import animal_table

    folder = Path(folder)
    pers = pd.read_csv(folder / "persistence.csv")
    fit = pd.read_csv(folder / "persistence_fit.csv") if (folder / "persistence_fit.csv").is_file() else None
    samples = pd.read_csv(folder / "samples.csv")
    return persistence_figure(pers, fit, animals=animal_table(samples))


def dock_figure(viewer, fig, name: str):
    """Dock a matplotlib figure (replacing a dock of the same name); returns the canvas."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

    canvas = FigureCanvasQTAgg(fig)
    canvas.setMinimumSize(360, 300)
    if name in viewer.window.dock_widgets:
        viewer.window.remove_dock_widget(viewer.window.dock_widgets[name])
    viewer.window.add_dock_widget(canvas, name=name, area="right")
    return canvas


def _init(widget) -> None:
    from ._settings import persist

    status = Label(name="status", label="status", value="", gui_only=True)
    load = PushButton(name="load_results", text="Load results", gui_only=True,
                      tooltip="Show the figure and samples of the results folder without running.")
    # Choices from a function: napari calls reset_choices() whenever layers change, which would
    # empty a static list.
    sample_ids: list[str] = []
    sample = ComboBox(name="sample", label="sample", choices=lambda _w: list(sample_ids), gui_only=True)
    open_btn = PushButton(name="open_sample", text="Open sample", gui_only=True,
                          tooltip="Open the chosen sample's image, labels (with object tables) and lines.")
    widget.extend([status, load, sample, open_btn])
    widget.worker = None
    widget.running = False

    def show(folder):
        viewer = _viewer_of(widget)
        folder = Path(folder)
        sample_ids[:] = results_sample_ids(folder)
        sample.reset_choices()
        if (folder / "persistence.csv").is_file():
            dock_figure(viewer, persistence_figure_of(folder), FIGURE_DOCK)
        status.value = f"{len(sample.choices)} samples in {folder.name}"

    def on_called(worker):
        if worker is None:
            return
        widget.worker = worker
        widget.running = True
        worker.finished.connect(lambda: setattr(widget, "running", False))
        status.value = "running..."
        worker.yielded.connect(lambda p: setattr(status, "value", f"{p[0]} / {p[1]} samples"))
        worker.returned.connect(lambda _res: show(widget.out.value))
        worker.errored.connect(lambda exc: setattr(status, "value", f"error: {exc}"))
        worker.start()

    def on_load():
        if not is_results_folder(widget.out.value):
            raise ValueError(f"{widget.out.value} is not a lungtrack results folder (no run.json + samples.csv)")
        show(widget.out.value)

    def on_open():
        if not sample.value:
            raise ValueError("no sample to open: run analyze or load a results folder first")
        add_or_update_layers(_viewer_of(widget), results_layer_data(widget.out.value, sample.value))

    widget.called.connect(on_called)
    load.changed.connect(on_load)
    open_btn.changed.connect(on_open)
    persist(widget, "experiment", names=["experiment", "config_file", "out", "overwrite", "resume"])


@magic_factory(
    call_button="Run analyze",
    widget_init=_init,
    experiment={"label": "manifest or folder", "mode": "r",
                "tooltip": "manifest.csv (path, sample_id, animal, group, time_h, section) or a folder of images "
                           "named by run.filename_pattern (type the folder path)."},
    config_file={"label": "config (YAML, optional)", "mode": "r", "filter": "*.yaml *.yml",
                 "tooltip": "The same YAML as `lungtrack analyze --config`; empty: defaults."},
    out={"label": "results folder", "mode": "d", "tooltip": "Where the results folder is written."},
    overwrite={"tooltip": "Replace an existing lungtrack run in the results folder."},
    resume={"tooltip": "Keep samples already analysed with the same input and config; redo the rest."},
)
def experiment_widget(
    viewer: napari.viewer.Viewer,
    experiment: Path = Path(""),
    config_file: Path = Path(""),
    out: Path = Path("lungtrack-results"),
    overwrite: bool = False,
    resume: bool = False,
):
    """Run `lungtrack.analyze` in a worker thread; returns the (not yet started) worker."""
    from napari.qt.threading import thread_worker

    if not str(experiment) or str(experiment) == "." or not Path(experiment).exists():
        raise ValueError(f"experiment {str(experiment)!r} does not exist; choose a manifest.csv or an image folder")
    config = Path(config_file) if str(config_file) not in ("", ".") and Path(config_file).is_file() else None
    worker = thread_worker(run_analyze_steps, start_thread=False,
                           progress={"total": 0, "desc": "lungtrack: analysing"})(
        Path(experiment), Path(out), config, overwrite=overwrite, resume=resume)
    return worker
