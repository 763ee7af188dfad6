"""Screenshot a report.html in headless Chromium, for looking at it (not part of the test suite).

Usage::

    python scripts/report_screenshot.py RESULTS/report.html OUT.png [--width 1400] [--height 16000]

Chromium (``apt-get install -y chromium``) renders the page offline in a window of the
given size; blank rows below the page are cut off and the page is also written in tiles
of 1000 px (``OUT_0.png``, ``OUT_1.png``...), which image viewers show at full size.
Chromium is deliberately not a requirement of lungtrack or its tests.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(html: Path, out: Path, width: int = 1400, height: int = 16000, tile: int = 1000) -> list[Path]:
    """Render `html` to `out` (PNG) and tiles beside it; returns the tile paths."""
    import numpy as np
    from PIL import Image

    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        raise SystemExit("chromium not found: install it (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--screenshot={out}", f"--window-size={width},{height}",
               Path(html).resolve().as_uri()]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    img = Image.open(out).convert("RGB")
    a = np.asarray(img)
    rows = np.flatnonzero((a < 250).any(axis=(1, 2)))
    bottom = int(rows.max()) + 20 if rows.size else a.shape[0]
    img = img.crop((0, 0, a.shape[1], min(bottom, a.shape[0])))
    img.save(out)
    tiles = []
    for i, y in enumerate(range(0, img.height, tile)):
        p = out.with_name(f"{out.stem}_{i}.png")
        img.crop((0, y, img.width, min(y + tile, img.height))).save(p)
        tiles.append(p)
    return tiles


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=16000)
    args = ap.parse_args(argv)
    tiles = screenshot(args.html, args.out, args.width, args.height)
    print(f"{args.out} ({len(tiles)} tiles of 1000 px: {tiles[0].name} ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
