"""Shared fixtures: real files on disk, real Dask schedulers, the shipped sample experiment."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_EXPERIMENT = ROOT / "sample_data" / "experiment"


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout (or $LUNGTRACK_SHARED_DATA)."""
    env = os.environ.get("LUNGTRACK_SHARED_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"real reference images not found at {d} (set LUNGTRACK_SHARED_DATA)")
    return d


@pytest.fixture(scope="session")
def small_experiment(tmp_path_factory) -> Path:
    """A small simulated experiment (2 groups x 3 times x 3 animals, 192 px) on disk."""
    from lungtrack.synthetic import simulate_experiment

    out = tmp_path_factory.mktemp("small_experiment")
    simulate_experiment(out, time_h=(2.0, 12.0, 24.0), shape=(192, 192), seed=7)
    return out


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`lungtrack demo` run once, in-process, on the shipped sample experiment."""
    import contextlib
    import io

    from lungtrack.cli import main

    out = tmp_path_factory.mktemp("demo") / "results"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["demo", "--out", str(out)])
    return {"code": code, "out": out, "stdout": buf.getvalue()}
