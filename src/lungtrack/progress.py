"""Terminal progress for long work, quiet when not attached to a terminal or when disabled."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress_iter(items: Iterable[T], *, desc: str = "", total: int | None = None, stream=None) -> Iterator[T]:
    """Yield items while drawing a one-line bar on stderr (like dask's ProgressBar).

    Written by hand (a dozen lines) rather than adding tqdm as a core dependency.
    """
    stream = stream or sys.stderr
    items = list(items) if total is None else items
    total = len(items) if total is None else total
    t0 = time.perf_counter()
    for i, item in enumerate(items, 1):
        yield item
        frac = i / max(total, 1)
        bar = "#" * int(30 * frac)
        stream.write(f"\r{desc} [{bar:<30}] {i}/{total} | {time.perf_counter() - t0:5.1f}s")
        stream.flush()
    stream.write("\n")
