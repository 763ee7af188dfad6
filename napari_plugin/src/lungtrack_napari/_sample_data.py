"""Sample data: simulated lung sections with exact truth (`lungtrack.synthetic`).

- ``synthetic_2d``: a 384 x 384 px section at 1 um per pixel;
- ``synthetic_zstack``: a 16-plane z-stack (2 um steps) of 192 x 192 px;
- ``synthetic_timelapse``: ``lungtrack.synthetic.simulate_timelapse``: a live lung-slice movie
  (T, Y, X) per channel and its true tracks (a Tracks layer).
"""
from __future__ import annotations

import numpy as np

from lungtrack import synthetic
from lungtrack.synthetic import simulate_section

from ._reader import channel_layer_kwargs, tracks_layer_data


def _layers(image: np.ndarray, channel_names, spacing_um, axes: str, source: str) -> list[tuple]:
    scale = tuple(spacing_um[-(len(axes) - ("T" in axes)):])
    if "T" in axes:
        scale = (1.0, *scale)
    meta = {"spacing_um": tuple(spacing_um), "source": source, "axes": axes}
    c_axis = 1 if "T" in axes else 0
    return [
        (np.take(image, c, axis=c_axis),
         channel_layer_kwargs(name, axes, scale, {**meta, "channel_name": name, "channel_index": c}), "image")
        for c, name in enumerate(channel_names)
    ]


def synthetic_section(seed: int = 0) -> list[tuple]:
    """Layer-data tuples of ``simulate_section(seed=seed)``: DAPI, GFP (MSC) and CD68 (macrophage).

    Each channel is a (Y, X) uint16 image layer with ``scale`` = pixel size in um.
    """
    s = simulate_section(seed=seed)
    return _layers(s.image, s.channel_names, s.spacing_um, "YX", f"lungtrack.synthetic.simulate_section(seed={seed})")


#: Parameters of the z-stack sample (tests compare against the same call).
ZSTACK_KWARGS = {"shape": (16, 192, 192), "pixel_size_um": 1.0, "z_step_um": 2.0, "n_msc": 6, "n_macrophage": 8}


def synthetic_zstack(seed: int = 0) -> list[tuple]:
    """Layer-data tuples of a simulated confocal z-stack: (Z, Y, X) layers with scale (2, 1, 1) um."""
    s = simulate_section(**ZSTACK_KWARGS, seed=seed)
    return _layers(s.image, s.channel_names, s.spacing_um, "ZYX",
                   f"lungtrack.synthetic.simulate_section(**{ZSTACK_KWARGS}, seed={seed})")


def has_timelapse() -> bool:
    """Whether the installed lungtrack can simulate a time-lapse (``synthetic.simulate_timelapse``)."""
    return callable(getattr(synthetic, "simulate_timelapse", None))


def synthetic_timelapse(seed: int = 0) -> list[tuple]:
    """Layer-data tuples of ``lungtrack.synthetic.simulate_timelapse(seed=seed)``: (T, Y, X) layers.

    The simulator's result must carry ``image`` (T, C, Y, X) or (T, C, Z, Y, X), ``channel_names``
    and ``spacing_um``.
    """
    if not has_timelapse():
        raise RuntimeError("this lungtrack has no synthetic.simulate_timelapse; update lungtrack for the "
                           "time-lapse sample")
    s = synthetic.simulate_timelapse(seed=seed)
    image = np.asarray(s.image)
    axes = "TZYX" if image.ndim == 5 else "TYX"
    out = _layers(image, s.channel_names, s.spacing_um, axes, f"lungtrack.synthetic.simulate_timelapse(seed={seed})")
    tracks = getattr(s, "tracks", None)
    if tracks is not None and len(tracks):
        out.append(tracks_layer_data(tracks, s.spacing_um, name="true tracks"))
    return out
