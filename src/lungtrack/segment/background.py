"""Background correction choices applied before any threshold is set.

Lung tissue autofluoresces strongly (elastin, red cells). Two corrections, in this
order, both optional and chosen in the config:

1. Subtraction of an autofluorescence channel (``channels.autofluorescence``),
   scaled to the role's channel (`subtract_autofluorescence`).
2. Removal of the smooth background at a physical radius (`correct_background`):
   ``opening`` (lungtrack's fast rolling-ball approximation,
   `lungtrack.segment.classic.subtract_background`), ``tophat`` (white top-hat with an
   ellipse/ellipsoid of that radius in um), ``rolling_ball`` (scikit-image's rolling
   ball, slow for large radii) or ``none``.

Examples
--------
>>> img = np.full((40, 40), 100.0); img[10:16, 10:16] += 500
>>> out = correct_background(img, (1.0, 1.0), method="tophat", radius_um=8)
>>> float(out[0, 0]), float(out[12, 12])
(0.0, 500.0)
"""
from __future__ import annotations

import numpy as np
from skimage import morphology, restoration

from .classic import subtract_background

__all__ = ["correct_background", "subtract_autofluorescence", "autofluorescence_scale", "BACKGROUND_METHODS"]

BACKGROUND_METHODS = ("opening", "tophat", "rolling_ball", "none")


def _ellipsoid_footprint(radius_um: float, spacing_um) -> np.ndarray:
    """Boolean ellipse (2D) / ellipsoid (3D) of ``radius_um`` on a grid of voxel size ``spacing_um``."""
    r_px = [max(0, int(np.floor(radius_um / s))) for s in spacing_um]
    grids = np.meshgrid(*[np.arange(-r, r + 1) * s for r, s in zip(r_px, spacing_um)], indexing="ij")
    return sum(g ** 2 for g in grids) <= radius_um ** 2


def _tophat(img: np.ndarray, spacing_um, radius_um: float) -> np.ndarray:
    r_px = [radius_um / s for s in spacing_um]
    if np.allclose(r_px, r_px[0]) and r_px[0] >= 1:
        # Isotropic: scikit-image's decomposed disk/ball is ~10x faster than the full footprint.
        r = int(round(r_px[0]))
        fp = morphology.disk(r, decomposition="sequence") if img.ndim == 2 else morphology.ball(
            r, decomposition="sequence")
    else:
        fp = _ellipsoid_footprint(radius_um, spacing_um)
    return morphology.white_tophat(img, fp)


def correct_background(channel: np.ndarray, spacing_um, *, method: str = "opening",
                       radius_um: float = 40.0) -> np.ndarray:
    """Remove the background broader than ``radius_um`` with the chosen ``method``.

    Parameters
    ----------
    channel : ndarray
        (Y, X) or (Z, Y, X) intensities.
    spacing_um : sequence of float
        Voxel size per axis of ``channel`` in um.
    method : {"opening", "tophat", "rolling_ball", "none"}
        ``opening``: `lungtrack.segment.classic.subtract_background` (grey opening on a
        shrunken image, interpolated back; smooth and fast at any radius). ``tophat``:
        image minus its grey opening by an ellipse/ellipsoid of ``radius_um`` (exact, keeps
        sharp edges of objects smaller than the element). ``rolling_ball``:
        `skimage.restoration.rolling_ball` with a ball of ``radius_um`` (in-plane pixels;
        slow, O(pixels x radius^2)). ``none``: only converts to float32.
    radius_um : float
        Larger than the biggest object to keep, in um.

    Returns
    -------
    ndarray of float32, >= 0 (except for ``none``, which returns the input as float32).

    Examples
    --------
    >>> img = np.full((30, 30), 10.0); img[5:9, 5:9] = 50
    >>> [round(float(correct_background(img, (1, 1), method=m, radius_um=6)[6, 6])) for m in ("tophat", "none")]
    [40, 50]
    """
    if method not in BACKGROUND_METHODS:
        raise ValueError(f"background method {method!r} is not one of {BACKGROUND_METHODS}")
    spacing_um = tuple(float(s) for s in spacing_um)
    img = np.asarray(channel, dtype=np.float32)
    if img.ndim != len(spacing_um):
        raise ValueError(f"spacing_um {spacing_um} does not match an image of {img.ndim} dimensions")
    if method == "none":
        return img
    if method == "opening":
        return subtract_background(img, spacing_um, radius_um)
    if method == "tophat":
        return np.clip(_tophat(img, spacing_um, radius_um), 0, None).astype(np.float32)
    # rolling_ball: scikit-image's ball is in pixels; an ellipsoid kernel carries anisotropy.
    r_px = [max(1.0, radius_um / s) for s in spacing_um]
    if np.allclose(r_px, r_px[0]):
        bg = restoration.rolling_ball(img, radius=r_px[0])
    else:
        kernel = restoration.ellipsoid_kernel([2 * int(r) + 1 for r in r_px], float(min(r_px)))
        bg = restoration.rolling_ball(img, kernel=kernel)
    return np.clip(img - bg, 0, None).astype(np.float32)


def autofluorescence_scale(channel: np.ndarray, autofluorescence: np.ndarray) -> float:
    """How much of the autofluorescence channel leaks into ``channel``: a robust ratio.

    Both channels lose their camera offset (1st percentile); the scale is the median of
    channel / autofluorescence over the voxels where autofluorescence is above its median,
    i.e. over tissue, where most voxels carry autofluorescence only, so a minority of
    labelled cells does not bias it.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> af = rng.uniform(100, 1000, (50, 50)); ch = 0.4 * af; ch[:5, :5] += 3000
    >>> round(autofluorescence_scale(ch, af), 3)
    0.4
    """
    ch = np.asarray(channel, np.float64)
    af = np.asarray(autofluorescence, np.float64)
    ch = ch - np.percentile(ch, 1, method="lower")
    af = af - np.percentile(af, 1, method="lower")
    sel = af > max(np.median(af), 0)
    if not sel.any():
        return 0.0
    return float(max(np.median(ch[sel] / af[sel]), 0.0))


def subtract_autofluorescence(channel: np.ndarray, autofluorescence: np.ndarray, scale="auto") -> np.ndarray:
    """``channel - scale * autofluorescence`` (offsets removed), clipped at 0, as float32.

    Parameters
    ----------
    channel, autofluorescence : ndarray
        Same shape.
    scale : float or "auto"
        Leak of the autofluorescence channel into ``channel``; "auto" estimates it with
        `autofluorescence_scale`.

    Examples
    --------
    >>> af = np.array([[100., 300.], [500., 100.]]); ch = 2 * af; ch[0, 0] += 1000
    >>> subtract_autofluorescence(ch, af, scale=2.0).tolist()
    [[1000.0, 0.0], [0.0, 0.0]]
    """
    ch = np.asarray(channel, np.float32)
    af = np.asarray(autofluorescence, np.float32)
    if ch.shape != af.shape:
        raise ValueError(f"autofluorescence channel shape {af.shape} differs from the channel's {ch.shape}")
    s = autofluorescence_scale(ch, af) if scale == "auto" else float(scale)
    ch0 = ch - np.float32(np.percentile(ch, 1, method="lower"))
    af0 = af - np.float32(np.percentile(af, 1, method="lower"))
    return np.clip(ch0 - np.float32(s) * af0, 0, None).astype(np.float32)
