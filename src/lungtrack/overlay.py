"""Images for papers and QC: channel composites, segmentation outlines, scale bars in um.

Every function takes arrays and physical spacing (never a file) and returns arrays or a
matplotlib Figure, so the report, the ``lungtrack figures`` command and scripts share
them.

Examples
--------
>>> import numpy as np
>>> img = np.zeros((2, 40, 60)); img[0, 10:20, 10:20] = 1; img[1, 20:30, 30:50] = 1
>>> rgb = composite(img, colors=("#00FF00", "#FF00FF"))
>>> rgb.shape, rgb[15, 15].round(2).tolist(), rgb[25, 40].round(2).tolist()
((40, 60, 3), [0.0, 1.0, 0.0], [1.0, 0.0, 1.0])
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

__all__ = ["composite", "outlines", "nice_length_um", "add_scale_bar", "image_panel", "representative_sample",
           "choose_inset", "ROLE_COLORS", "CHANNEL_COLORS", "INSET_BOX"]

#: Outline colours per role: colour-blind-safe (Okabe-Ito) and distinct from the channel colours.
ROLE_COLORS = {"msc": "#F0E442", "macrophage": "#56B4E9", "nuclei": "#FFFFFF", "tissue": "#999999"}
#: Default display colours for common stains (additive composite, as in Fiji).
CHANNEL_COLORS = {"dapi": "#0072B2", "hoechst": "#0072B2", "gfp": "#00C000", "egfp": "#00C000",
                  "cd68": "#FF00FF", "f4/80": "#FF00FF", "tdtomato": "#FF4040", "dii": "#FF4040"}
_FALLBACK = ("#00C000", "#FF00FF", "#0072B2", "#FFFFFF")


def _colors_for(names, n):
    out = []
    for i in range(n):
        name = str(names[i]).lower() if names is not None and i < len(names) else ""
        out.append(CHANNEL_COLORS.get(name, _FALLBACK[i % len(_FALLBACK)]))
    return out


def composite(channels, colors=None, *, limits=None, percentiles=(0.5, 99.8), channel_names=None) -> np.ndarray:
    """Additive colour composite of channels ``(C, Y, X)`` -> RGB ``(Y, X, 3)`` in [0, 1].

    Each channel is scaled linearly between its display limits (default: the given
    percentiles of its own pixels) and tinted with its colour; tints add up and clip
    at 1, as Fiji's composite mode does. ``limits`` is one ``(low, high)`` per channel.
    """
    ch = np.asarray(channels, dtype=np.float64)
    if ch.ndim == 2:
        ch = ch[None]
    if ch.ndim != 3:
        raise ValueError(f"channels must be (C, Y, X) or (Y, X), got shape {ch.shape}")
    colors = list(colors) if colors is not None else _colors_for(channel_names, ch.shape[0])
    if len(colors) < ch.shape[0]:
        raise ValueError(f"{ch.shape[0]} channels but {len(colors)} colours")
    rgb = np.zeros(ch.shape[1:] + (3,))
    for i, c in enumerate(ch):
        lo, hi = limits[i] if limits is not None else np.percentile(c, percentiles)
        scaled = np.clip((c - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(c)
        rgb += scaled[..., None] * np.asarray(to_rgb(colors[i]))
    return np.clip(rgb, 0, 1)


def outlines(labels) -> np.ndarray:
    """Boolean mask of object borders (inner boundaries) of a label image ``(Y, X)``."""
    from skimage.segmentation import find_boundaries

    lab = np.asarray(labels)
    return find_boundaries(lab, mode="inner") & (lab > 0)


def nice_length_um(width_um: float, fraction: float = 0.2) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k um) close to ``fraction`` of the width.

    >>> nice_length_um(384), nice_length_um(1000), nice_length_um(35)
    (100.0, 200.0, 5.0)
    """
    target = max(width_um * fraction, 1e-9)
    k = math.floor(math.log10(target))
    best = min((m * 10.0 ** k for m in (1, 2, 5, 10)), key=lambda v: abs(math.log(v / target)))
    return float(best)


def add_scale_bar(ax, pixel_size_um: float, length_um: float | None = None, *, color="white", loc="lower right",
                  pad_px: float | None = None, fontsize=8):
    """Draw a scale bar of ``length_um`` on an image axes whose data units are pixels.

    Returns the bar (a Rectangle with gid ``"scale_bar"``); its width in data
    coordinates is ``length_um / pixel_size_um`` pixels.
    """
    from matplotlib.patches import Rectangle

    if not pixel_size_um > 0:
        raise ValueError(f"pixel_size_um must be > 0, got {pixel_size_um}")
    x0, x1 = sorted(ax.get_xlim())
    y_lo, y_hi = sorted(ax.get_ylim())
    width_px = x1 - x0
    if length_um is None:
        length_um = nice_length_um(width_px * pixel_size_um)
    bar_px = length_um / pixel_size_um
    pad = pad_px if pad_px is not None else 0.04 * width_px
    height = max(0.012 * (y_hi - y_lo), 1.0)
    bx = x1 - pad - bar_px if "right" in loc else x0 + pad
    # Image axes have y pointing down (origin upper): "lower" is the large-y side.
    by = y_hi - pad - height if "lower" in loc else y_lo + pad
    bar = Rectangle((bx, by), bar_px, height, facecolor=color, edgecolor="none", gid="scale_bar")
    ax.add_patch(bar)
    from matplotlib import patheffects

    label = f"{length_um:g} µm"
    # A thin dark halo keeps the label readable where it crosses bright cells.
    halo = [patheffects.withStroke(linewidth=1.5, foreground="black" if color == "white" else "white")]
    ax.text(bx + bar_px / 2, by - 0.6 * height, label, color=color, ha="center", va="bottom", fontsize=fontsize,
            gid="scale_bar_label", path_effects=halo)
    return bar


def image_panel(image, pixel_size_um: float, *, channel_names=None, colors=None, labels=None, crop=None,
                inset=None, scale_bar_um=None, title=None, ax=None, width_in: float = 3.5) -> Figure:
    """A composite image with segmentation outlines, a scale bar in um and an optional zoomed inset.

    Parameters
    ----------
    image : array_like
        ``(C, Y, X)`` or ``(C, Z, Y, X)`` (z-stacks are shown as maximum projections).
    pixel_size_um : float
        Pixel size in the image plane.
    labels : dict of str to array_like, optional
        Role -> label image ``(Y, X)`` (or ``(Z, Y, X)``, projected); outlines are drawn
        in `ROLE_COLORS`.
    crop : (y0, y1, x0, x1), optional
        Show this region only (pixels).
    inset : (y0, y1, x0, x1), optional
        A region (pixels, in the full image) shown magnified in a corner, framed on
        the main image.
    scale_bar_um : float, optional
        Bar length; default a round number near a fifth of the width.

    Returns
    -------
    matplotlib.figure.Figure
        Artists carry gids: ``"composite"`` (the image), ``"outline_<role>"``,
        ``"scale_bar"``, ``"inset"``.

    Examples
    --------
    >>> img = np.random.default_rng(0).random((2, 50, 80))
    >>> lab = np.zeros((50, 80), int); lab[10:20, 10:30] = 1
    >>> fig = image_panel(img, 0.5, labels={"msc": lab}, scale_bar_um=10)
    >>> bar = [p for p in fig.axes[0].patches if p.get_gid() == "scale_bar"][0]
    >>> bar.get_width()  # 10 um at 0.5 um per pixel
    20.0
    """
    img = np.asarray(image)
    if img.ndim == 4:
        img = img.max(axis=1)
    if img.ndim == 2:
        img = img[None]
    full = composite(img, colors, channel_names=channel_names)
    y0, y1, x0, x1 = crop if crop is not None else (0, img.shape[1], 0, img.shape[2])
    view = full[y0:y1, x0:x1].copy()
    outline_sets = {}
    for role, lab in (labels or {}).items():
        lab = np.asarray(lab)
        if lab.ndim == 3:
            lab = lab.max(axis=0)
        outline_sets[role] = outlines(lab[y0:y1, x0:x1])
        view[outline_sets[role]] = to_rgb(ROLE_COLORS.get(role, "#FFFFFF"))
    if ax is None:
        h, w = view.shape[:2]
        fig = Figure(figsize=(width_in, width_in * h / w + (0.25 if title else 0)))
        ax = fig.add_axes([0, 0, 1, 1 if not title else 1 - 0.25 / (width_in * h / w + 0.25)])
    else:
        fig = ax.figure
    ax.imshow(view, interpolation="nearest", gid="composite")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    # Invisible line artists so tests (and readers of the SVG) find one per role.
    for role in outline_sets:
        ax.plot([], [], color=ROLE_COLORS.get(role, "#FFFFFF"), gid=f"outline_{role}", label=role)
    if inset is not None:
        iy0, iy1, ix0, ix1 = inset
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((ix0 - x0 - 0.5, iy0 - y0 - 0.5), ix1 - ix0, iy1 - iy0, fill=False,
                               edgecolor="white", linewidth=0.8, gid="inset_frame"))
        iax = ax.inset_axes(list(INSET_BOX))
        iax.imshow(full[iy0:iy1, ix0:ix1] if not outline_sets else _with_outlines(full, labels, inset),
                   interpolation="nearest", gid="inset")
        iax.set_xticks([])
        iax.set_yticks([])
        for s in iax.spines.values():
            s.set_edgecolor("white")
        # The zoom has its own bar: its magnification differs from the main image's.
        add_scale_bar(iax, pixel_size_um, fontsize=6, pad_px=0.06 * (ix1 - ix0))
    add_scale_bar(ax, pixel_size_um, scale_bar_um)
    return fig


#: Where `image_panel` draws the zoomed inset, in axes fractions (x0, y0, width, height): upper left.
INSET_BOX = (0.02, 0.58, 0.4, 0.4)


def choose_inset(labels: dict, shape, *, side_px: int | None = None):
    """A square region around one MSC for `image_panel`'s zoomed inset, or None without MSCs.

    The MSC chosen is, among those whose square stays clear of the inset's own
    corner (upper left) and of the scale bar (lower right), the one nearest the
    image centre, preferring MSCs with a macrophage inside the square (the
    interaction the figure is about). Deterministic: the same labels give the
    same region.

    Parameters
    ----------
    labels : dict
        Role -> label image ``(Y, X)`` (or ``(Z, Y, X)``, projected); uses ``"msc"``
        and ``"macrophage"``.
    shape : (int, int)
        Image height and width in pixels.
    side_px : int, optional
        Side of the square; default a fifth of the smaller image side.

    Returns
    -------
    (y0, y1, x0, x1) or None

    Examples
    --------
    >>> msc = np.zeros((100, 100), int); msc[60:66, 60:66] = 1; msc[5:9, 5:9] = 2
    >>> choose_inset({"msc": msc}, (100, 100))  # MSC 2 is in the inset's corner
    (52, 72, 52, 72)
    """
    from scipy import ndimage

    h, w = int(shape[0]), int(shape[1])
    side = int(side_px or max(8, min(h, w) // 5))
    msc = labels.get("msc")
    if msc is None:
        return None
    msc = np.asarray(msc)
    msc = msc.max(axis=0) if msc.ndim == 3 else msc
    ids = np.unique(msc[msc > 0])
    if ids.size == 0:
        return None
    centres = np.asarray(ndimage.center_of_mass(msc > 0, msc, ids)).reshape(-1, 2)
    mac = labels.get("macrophage")
    mac = None if mac is None else (np.asarray(mac).max(axis=0) if np.asarray(mac).ndim == 3 else np.asarray(mac))
    ix0, iy0, iw, ih = INSET_BOX  # axes fractions, y up: the inset covers image rows [0, (1 - iy0) h]
    best = None
    for cy, cx in centres:
        y0 = int(np.clip(round(cy - side / 2), 0, max(h - side, 0)))
        x0 = int(np.clip(round(cx - side / 2), 0, max(w - side, 0)))
        y1, x1 = y0 + side, x0 + side
        under_inset = x0 < (ix0 + iw) * w + 0.02 * w and y0 < (1 - iy0) * h + 0.02 * h
        under_bar = x1 > 0.55 * w and y1 > 0.85 * h
        if under_inset or under_bar:
            continue
        has_mac = mac is not None and bool((mac[y0:y1, x0:x1] > 0).any())
        score = (not has_mac, float(np.hypot(cy - h / 2, cx - w / 2)))
        if best is None or score < best[0]:
            best = (score, (y0, y1, x0, x1))
    return None if best is None else best[1]


def _with_outlines(full, labels, region):
    y0, y1, x0, x1 = region
    view = full[y0:y1, x0:x1].copy()
    for role, lab in labels.items():
        lab = np.asarray(lab)
        if lab.ndim == 3:
            lab = lab.max(axis=0)
        view[outlines(lab[y0:y1, x0:x1])] = to_rgb(ROLE_COLORS.get(role, "#FFFFFF"))
    return view


def representative_sample(samples: pd.DataFrame, group, time_h=None, value: str = "msc_per_mm2") -> str:
    """The sample whose ``value`` is closest to its group's (and time point's) median.

    Ties go to the first in table order, so the choice is reproducible.

    >>> s = pd.DataFrame({"sample_id": list("abcd"), "group": ["G"] * 4, "time_h": [2.0] * 4,
    ...                   "msc_per_mm2": [10.0, 40.0, 22.0, 90.0]})
    >>> representative_sample(s, "G")  # median 31: b (40) is 9 away, c (22) 9 away -> first
    'b'
    """
    sel = samples[samples["group"] == group]
    if time_h is not None:
        sel = sel[sel["time_h"] == time_h]
    sel = sel[sel[value].notna()]
    if sel.empty:
        raise ValueError(f"no sample with a {value} value for group {group!r}" +
                         (f" at {time_h} h" if time_h is not None else ""))
    dist = (sel[value] - sel[value].median()).abs()
    return str(sel.loc[dist.idxmin(), "sample_id"])
