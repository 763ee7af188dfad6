"""Benchmark: Segment widget preview on a 1024 x 1024 view, and viewer responsiveness during a whole-image run.

Run under a display: ``xvfb-run -a python napari_plugin/bench/preview_and_worker.py [--size 2048]``.

1. Preview: `segment_layers` on a 1024 x 1024 region (the centre of what the canvas shows,
   zoomed to show at least 1024 px each way) vs the same call on the whole image (baseline,
   measured in the same run); median of 3 runs, and peak traced memory. Also the widget's
   "Preview visible region" button end to end (region from the camera, segmentation,
   layers added), on the whole visible region.
2. Freezing: a 10 ms QTimer on the main thread records the longest gap between its ticks
   while the whole image is segmented (a) in the widget's worker thread and (b) directly on
   the main thread (baseline). The longest gap is how long the viewer stopped responding.
"""
import argparse
import os
import time
import tracemalloc

import numpy as np


def _timed(fn):
    """(result, seconds, peak traced bytes): timed without tracemalloc (its hooks slow Python code), then traced."""
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, dt, peak


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=2048, help="side of the simulated section in pixels")
    args = ap.parse_args(argv)

    import napari
    from lungtrack_napari._widget import segment_layers, visible_region
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from lungtrack.synthetic import simulate_section

    n = args.size
    s = simulate_section(shape=(n, n), n_msc=int(20 * (n / 384) ** 2), n_macrophage=int(25 * (n / 384) ** 2), seed=0)
    viewer = napari.Viewer(show=True)
    layers = [viewer.add_image(s.image[c], name=name, scale=(1.0, 1.0)) for c, name in enumerate(s.channel_names)]
    _dock, widget = viewer.window.add_plugin_dock_widget("lungtrack-napari", "Segment MSCs and macrophages")
    viewer.window._qt_window.resize(1700, 1000)
    QApplication.processEvents()
    # Zoom so that the canvas shows 1024 x 1024 image pixels (or as close as the canvas allows).
    h, w = viewer.canvas.size
    viewer.scene.camera.zoom = min(h, w) / 1024
    viewer.scene.camera.center = (0.0, n / 2, n / 2)
    visible = visible_region(viewer, layers[1])
    vis_shape = tuple(r.stop - r.start for r in visible)
    # The centre 1024 x 1024 of the view.
    region = tuple(slice(r.start + (r.stop - r.start - 1024) // 2, r.start + (r.stop - r.start - 1024) // 2 + 1024)
                   for r in visible)
    shape = tuple(r.stop - r.start for r in region)

    segment_layers(layers[1], layers[2], region=(slice(0, 256), slice(0, 256)))  # warm-up (imports, caches)
    # As the widget's preview: MSCs, macrophages and tissue (no nuclei).
    runs = [_timed(lambda: segment_layers(layers[1], layers[2], region=region)) for _ in range(3)]
    t_prev, m_prev = float(np.median([r[1] for r in runs])), max(r[2] for r in runs)
    _, t_full, m_full = _timed(lambda: segment_layers(layers[1], layers[2]))
    widget.msc_layer.value, widget.macrophage_layer.value = layers[1], layers[2]
    # First press creates the three preview layers (napari builds their visuals); later presses update them.
    t_button = []
    for _ in range(2):
        t_button.append(_timed(lambda: widget.preview.clicked.emit())[1])
        QApplication.processEvents()

    print(f"image {n}x{n}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"preview of {shape[0]}x{shape[1]} px: {t_prev:.3f} s (median of 3: "
          f"{', '.join(f'{r[1]:.3f}' for r in runs)}), peak {m_prev / 2**20:.0f} MiB | whole image (baseline): "
          f"{t_full:.3f} s, peak {m_full / 2**20:.0f} MiB | ratio whole/preview {t_full / t_prev:.1f}x")
    print(f"'Preview visible region' button on the {vis_shape[0]}x{vis_shape[1]} px view, end to end: first press "
          f"{t_button[0]:.3f} s (adds the preview layers), second press {t_button[1]:.3f} s")

    gaps = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    t0 = time.perf_counter()
    widget()
    while widget.running:
        QApplication.processEvents()
        time.sleep(0.002)
    t_worker = time.perf_counter() - t0
    worker_gap = max(gaps) if gaps else float("nan")
    gaps.clear()
    last[0] = time.perf_counter()
    QApplication.processEvents()
    t0 = time.perf_counter()
    segment_layers(layers[1], layers[2])  # baseline: on the main thread, the GUI cannot draw meanwhile
    QApplication.processEvents()
    t_main = time.perf_counter() - t0
    main_gap = max(gaps) if gaps else float("nan")
    timer.stop()
    print(f"whole image in the worker thread: {t_worker:.2f} s, longest GUI pause {worker_gap * 1000:.0f} ms")
    print(f"whole image on the main thread (baseline): {t_main:.2f} s, longest GUI pause {main_gap * 1000:.0f} ms")
    print(f"ratio of longest pauses main/worker: {main_gap / worker_gap:.1f}x")
    n_msc = len(viewer.layers["msc labels"].features)
    print(f"MSCs found {n_msc}, truth {s.n_msc}")
    viewer.close()
    return np.array([t_prev, t_full, worker_gap, main_gap])


if __name__ == "__main__":
    main()
