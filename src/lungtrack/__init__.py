"""lungtrack: measure the fate of infused MSCs in lung tissue."""
from __future__ import annotations

__version__ = "0.1.0"

from .config import Config, load_config  # noqa: E402


def analyze(experiment, config=None, out=None, client=None, **kwargs):
    """Run the whole pipeline on an experiment; see `lungtrack.pipeline.analyze`."""
    from .pipeline import analyze as _analyze

    return _analyze(experiment, config=config, out=out, client=client, **kwargs)


__all__ = ["Config", "load_config", "analyze", "__version__"]
