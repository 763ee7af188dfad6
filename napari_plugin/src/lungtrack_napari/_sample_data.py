"""Sample data: a simulated lung section with exact truth (`lungtrack.synthetic`)."""
from __future__ import annotations

from lungtrack.synthetic import simulate_section

from ._reader import channel_layer_kwargs


def synthetic_section(seed: int = 0) -> list[tuple]:
    """Layer-data tuples of ``simulate_section(seed=seed)``: DAPI, GFP (MSC) and CD68 (macrophage).

    Each channel is a (Y, X) uint16 image layer with ``scale`` = pixel size in um.
    """
    s = simulate_section(seed=seed)
    spatial = s.image.shape[1:]
    axes = "ZYX" if len(spatial) == 3 else "YX"
    scale = s.spacing_um[-len(spatial):]
    meta = {"spacing_um": tuple(s.spacing_um), "source": f"lungtrack.synthetic.simulate_section(seed={seed})",
            "axes": axes}
    return [
        (s.image[c], channel_layer_kwargs(name, axes, scale, {**meta, "channel_name": name, "channel_index": c}),
         "image")
        for c, name in enumerate(s.channel_names)
    ]
