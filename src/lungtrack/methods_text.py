"""An auto-written methods paragraph for a results folder: what was done, with every value.

The text is built from ``run.json`` (config, versions), so it states what this run did,
not what the defaults are. Prose covers the main steps with their key values; every
parameter value follows in a compact list, so nothing needs to be looked up.

Examples
--------
>>> from lungtrack.config import Config
>>> run = {"config": Config().to_dict(), "versions": {"lungtrack": "0.1.0", "python": "3.11.7",
...        "scikit-image": "0.26.0", "scipy": "1.16.0", "numpy": "2.4.6"}}
>>> text = methods_paragraph(run)
>>> "lungtrack 0.1.0" in text and "Costes" in text and "segment.msc.min_diameter_um = 10" in text
True
"""
from __future__ import annotations

import re

__all__ = ["methods_paragraph", "flatten_config", "REFERENCES"]

REFERENCES = {
    "otsu": "Otsu N (1979). A threshold selection method from gray-level histograms. IEEE Trans Syst Man "
            "Cybern 9:62-66.",
    "li": "Li CH, Tam PKS (1998). An iterative algorithm for minimum cross entropy thresholding. Pattern "
          "Recognit Lett 19:771-776.",
    "watershed": "Beucher S, Meyer F (1993). The morphological approach to segmentation: the watershed "
                 "transformation. In: Mathematical Morphology in Image Processing, 433-481.",
    "skimage": "van der Walt S et al. (2014). scikit-image: image processing in Python. PeerJ 2:e453.",
    "manders": "Manders EMM, Verbeek FJ, Aten JA (1993). Measurement of co-localization of objects in "
               "dual-colour confocal images. J Microsc 169:375-382.",
    "costes": "Costes SV et al. (2004). Automatic and quantitative measurement of protein-protein "
              "colocalization in live cells. Biophys J 86:3993-4003.",
    "li_icq": "Li Q et al. (2004). A syntaxin 1, Galpha(o), and N-type calcium channel complex at a presynaptic "
              "nerve terminal: analysis by quantitative immunocolocalization. J Neurosci 24:4070-4081.",
    "dunn": "Dunn KW, Kamocka MM, McDonald JH (2011). A practical guide to evaluating colocalization in "
            "biological microscopy. Am J Physiol Cell Physiol 300:C723-C742.",
    "ripley": "Ripley BD (1977). Modelling spatial patterns. J R Stat Soc B 39:172-212.",
    "bootstrap": "Efron B, Tibshirani RJ (1993). An Introduction to the Bootstrap. Chapman & Hall.",
    "superplot": "Lord SJ et al. (2020). SuperPlots: communicating reproducibility and variability in cell "
                 "biology. J Cell Biol 219:e202001064.",
    "laptrack": "Fukai YT, Kawaguchi K (2023). LapTrack: linear assignment particle tracking with tunable "
                "metrics. Bioinformatics 39:btac799.",
    "kaplan_meier": "Kaplan EL, Meier P (1958). Nonparametric estimation from incomplete observations. J Am "
                    "Stat Assoc 53:457-481.",
    "mann_whitney": "Mann HB, Whitney DR (1947). On a test of whether one of two random variables is "
                    "stochastically larger than the other. Ann Math Stat 18:50-60.",
    "kruskal_wallis": "Kruskal WH, Wallis WA (1952). Use of ranks in one-criterion variance analysis. J Am Stat "
                      "Assoc 47:583-621.",
    "holm": "Holm S (1979). A simple sequentially rejective multiple test procedure. Scand J Stat 6:65-70.",
    "bh": "Benjamini Y, Hochberg Y (1995). Controlling the false discovery rate: a practical and powerful approach "
          "to multiple testing. J R Stat Soc B 57:289-300.",
    "fieller": "Fieller EC (1954). Some problems in interval estimation. J R Stat Soc B 16:175-185.",
    "quasi": "McCullagh P, Nelder JA (1989). Generalized Linear Models, 2nd ed. Chapman & Hall.",
    "aicc": "Burnham KP, Anderson DR (2002). Model Selection and Multimodel Inference, 2nd ed. Springer.",
    "mover": "Zou GY, Donner A (2008). Construction of confidence limits about effect measures: a general "
             "approach. Stat Med 27:1693-1702.",
    "besag_diggle": "Besag J, Diggle PJ (1977). Simple Monte Carlo tests for spatial pattern. Appl Stat "
                    "26:327-333.",
    "baddeley": "Baddeley A, Rubak E, Turner R (2015). Spatial Point Patterns: Methodology and Applications "
                "with R. CRC Press.",
    "triangle": "Zack GW, Rogers WE, Latt SA (1977). Automatic measurement of sister chromatid exchange "
                "frequency. J Histochem Cytochem 25:741-753.",
    "yen": "Yen JC, Chang FJ, Chang S (1995). A new criterion for automatic multilevel thresholding. IEEE Trans "
           "Image Process 4:370-378.",
    "multiotsu": "Liao PS, Chen TS, Chung PC (2001). A fast algorithm for multilevel thresholding. J Inf Sci Eng "
                 "17:713-727.",
}


def flatten_config(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    """``[("segment.msc.min_diameter_um", 10.0), ...]`` in the config's own order.

    >>> flatten_config({"a": {"b": 1, "c": [2, 3]}, "d": None})
    [('a.b', 1), ('a.c', [2, 3]), ('d', None)]
    """
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += flatten_config(v, key + ".")
        else:
            out.append((key, v))
    return out


def _g(cfg: dict, path: str, default=None):
    cur = cfg
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _v(x) -> str:
    if isinstance(x, float):
        return f"{x:g}"
    if isinstance(x, list):
        return ", ".join(_v(i) for i in x)
    return str(x)


_THRESHOLDS = {"otsu": "Otsu's method", "li": "Li's minimum cross-entropy method", "triangle": "the triangle method",
               "yen": "Yen's method", "multiotsu": "the multi-level Otsu method"}
_CORRECTIONS = {"holm": ("Holm", "holm"), "bh": ("Benjamini-Hochberg", "bh"), "none": (None, None)}


class _Citations:
    """Numbers references in the order the final text first cites them, so the list always matches the text.

    ``cite(key, ...)`` leaves a marker; `number` replaces the markers, in reading
    order, by ``[1]``, ``[2, 3]``... (the text is assembled in any order first).
    """

    _MARK = re.compile("\x00([^\x00]+)\x00")

    def __init__(self):
        self.keys: list[str] = []

    def __call__(self, *keys) -> str:
        return "\x00" + ",".join(keys) + "\x00"

    def number(self, text: str) -> str:
        def repl(match):
            nums = []
            for k in match.group(1).split(","):
                if k not in self.keys:
                    self.keys.append(k)
                nums.append(self.keys.index(k) + 1)
            return "[" + ", ".join(map(str, nums)) + "]"

        return self._MARK.sub(repl, text)


def _per_role(texts: dict) -> str:
    """``"X (MSCs) and Y (macrophages)"``, or ``"X for both"`` when the values agree."""
    vals = list(texts.values())
    if len(set(vals)) == 1:
        return f"{vals[0]} for both"
    return " and ".join(f"{t} ({n})" for n, t in texts.items())


def _threshold(method, cite) -> str:
    if isinstance(method, (int, float)) and not isinstance(method, bool):
        return f"a fixed threshold of {method:g}"
    name = _THRESHOLDS.get(str(method))
    return f"{name} {cite(str(method))}" if name else f"the {method} method"


def _background(kind, radius) -> str:
    r = _v(radius)
    return {"opening": f"a grey-scale opening (fast rolling-ball approximation) of radius {r} µm",
            "tophat": f"a white top-hat of radius {r} µm",
            "rolling_ball": f"a rolling ball of radius {r} µm",
            "none": "no background subtraction"}.get(str(kind), f"{kind} background removal at {r} µm")


def _channel(ref, names) -> str:
    """``"GFP (channel 1)"`` from a config reference (index or name) and the images' channel names."""
    if ref is None:
        return "none"
    if names:
        lower = [str(n).lower() for n in names]
        if isinstance(ref, int) and not isinstance(ref, bool) and 0 <= ref < len(names):
            return f"{names[ref]} (channel {ref})"
        if str(ref).lower() in lower:
            return f"{ref} (channel {lower.index(str(ref).lower())})"
    return _v(ref)


def _pixel_sizes(inputs) -> str:
    """The pixel sizes the analysis used (metadata, manifest or config), e.g. ``"0.65 µm"``."""
    xy = sorted({round(float(r["spacing_um"][-1]), 6) for r in inputs if r.get("spacing_um")})
    return ", ".join(f"{v:g}" for v in xy) + " µm" if xy else "taken from the image metadata"


def methods_paragraph(run: dict, *, references: bool = True, figures: bool = True) -> str:
    """The methods text (plain text, paragraphs separated by blank lines) for one run.

    Every value is read from the run's config (not the defaults), every method
    is cited, and the reference list is numbered in order of first citation.

    Parameters
    ----------
    run : dict
        The content of ``run.json`` (needs ``config``; ``versions``, ``inputs``
        and ``n_analysed`` are used when present).
    references : bool
        Append the numbered references cited in the text.
    figures : bool
        Describe the statistics drawn in the figures (superplots, distance
        envelopes, cross-L function), as `lungtrack figures` draws them.
    """
    cfg = run.get("config", {})
    ver = run.get("versions", {})
    inputs = run.get("inputs", []) or []
    names = next((r.get("channel_names") for r in inputs if r.get("channel_names")), None)
    lib = ", ".join(f"{k} {v}" for k, v in ver.items() if k not in ("lungtrack", "python", "platform") and v)
    m = lambda p: _g(cfg, p)  # noqa: E731
    cite = _Citations()
    n_img = run.get("n_analysed", len(inputs) or None)
    p = []
    p.append(
        f"Images{f' ({n_img})' if n_img else ''} were analysed with lungtrack {ver.get('lungtrack', '?')} (Python "
        f"{ver.get('python', '?')}; {lib}). Each image was processed independently; channels were assigned as "
        f"nuclei = {_channel(m('channels.nuclei'), names)}, MSC label = {_channel(m('channels.msc'), names)} and "
        f"macrophage marker = {_channel(m('channels.macrophage'), names)}. All lengths are in micrometres; pixel "
        f"size {_pixel_sizes(inputs)} (image metadata, or the manifest or config where given).")
    tissue = (f"The tissue mask (alveolar septa, vessel walls and cells; air spaces excluded) was obtained from the "
              f"autofluorescence of all channels, smoothed with a Gaussian of "
              f"{_v(m('segment.tissue.smoothing_sigma_um'))} µm and thresholded with "
              f"{_threshold(m('segment.tissue.threshold'), cite)}. ")
    roles = (("msc", "MSCs"), ("macrophage", "macrophages"))
    bg = _per_role({n: _background(m(f"segment.{r}.background"), m(f"segment.{r}.background_radius_um"))
                    for r, n in roles})
    thr = _per_role({n: _threshold(m(f"segment.{r}.threshold"), cite) for r, n in roles})
    split = [n for r, n in roles if m(f"segment.{r}.split_touching")]
    seeds = {r: m(f"segment.{r}.seeds") for r, _ in roles}
    split_text = (f"Touching {' and '.join(split)} were separated by a watershed [ws] seeded by "
                  + ("nuclei or " if "nuclei" in seeds.values() else "")
                  + "maxima of the distance transform at least "
                  + " and ".join(f"{_v(m(f'segment.{r}.split_min_distance_um'))} µm ({n})" for r, n in roles
                                 if m(f"segment.{r}.split_touching")) + " apart; ") if split else ""
    split_text = split_text.replace("[ws]", cite("watershed")) if split else ""
    p.append(
        tissue
        + f"For each cell type, the background was removed by {bg}; the signal was smoothed (Gaussian sigma "
        f"{_v(m('segment.msc.smoothing_sigma_um'))} and {_v(m('segment.macrophage.smoothing_sigma_um'))} µm) "
        f"and thresholded within the tissue with {thr}, with a floor of {_v(m('segment.msc.min_signal_ratio'))} "
        f"(MSC) and {_v(m('segment.macrophage.min_signal_ratio'))} (macrophage) times the tissue "
        "autofluorescence level. " + split_text
        + ("objects" if split else "Objects") + " with an equivalent diameter outside "
        f"{_v(m('segment.msc.min_diameter_um'))}-{_v(m('segment.msc.max_diameter_um'))} µm (MSCs) or "
        f"{_v(m('segment.macrophage.min_diameter_um'))}-{_v(m('segment.macrophage.max_diameter_um'))} µm "
        "(macrophages) were discarded, so MSC-label fragments and puncta inside macrophages were not counted "
        f"as MSCs. Implementations from scikit-image and SciPy {cite('skimage')}.")
    spatial = (
        "Densities are counts per mm² of tissue. For each MSC, the distance to the nearest macrophage was "
        "measured centre to centre and surface to surface (exact Euclidean distance transform with the voxel "
        f"size); MSCs within {_v(m('spatial.contact_tolerance_um'))} µm of a macrophage were scored as in contact, "
        f"and macrophages were counted within {_v(m('spatial.radii_um'))} µm. Macrophages holding at least "
        f"{_v(m('spatial.engulfed_min_area_um2'))} µm² of MSC label were scored as containing MSC material "
        "(efferocytosis index).")
    n_null = int(m("spatial.null_simulations") or 0)
    if n_null:
        spatial += (f" Per image, the MSC-macrophage relations were compared with {n_null} random placements of the "
                    f"macrophages ({'whole shapes' if m('spatial.null_placement') == 'shapes' else 'centroids'}) "
                    f"inside the tissue mask (seed {m('spatial.seed')}), with Monte Carlo p-values "
                    f"{cite('besag_diggle')}.")
    p.append(spatial)
    p.append(
        "Colocalization of the MSC and macrophage channels was computed within the "
        f"{_v(m('coloc.scope'))} ({_v(m('coloc.coefficients'))}): Pearson's r, Manders' M1 and M2 {cite('manders')} "
        f"at automatic Costes thresholds {cite('costes')} ({_v(m('coloc.manders_convention'))} convention; exact "
        "scan along the orthogonal regression line until the Pearson correlation of the pixels below either "
        f"threshold is ≤ 0), and Li's intensity correlation quotient {cite('li_icq')}, following the "
        f"recommendations of Dunn et al. {cite('dunn')}"
        + (f"; significance by the Costes randomisation test with {m('coloc.costes_randomisations')} "
           "randomisations." if m("coloc.costes_randomisations") else "."))
    conf = round(100 * (m("persistence.confidence") or 0.95))
    corr_name, corr_key = _CORRECTIONS.get(m("persistence.correction") or "holm", ("Holm", "holm"))
    corr = f"{corr_name} correction {cite(corr_key)} over the time points" if corr_name else "no correction"
    intervals = (
        f"{conf}% confidence intervals of the half-life are t-intervals over animals (df = animals − 2), and of "
        f"the fraction remaining from Fieller's formula {cite('fieller')}. Half-lives of two groups were "
        "compared by combining their intervals by the method of variance estimates recovery (MOVER) "
        f"{cite('mover')}, with the matching p-value"
        if m("persistence.bootstrap") != 0 else
        "No confidence intervals or half-life comparisons were computed (persistence.bootstrap = 0)")
    p.append(
        "Animals were the experimental unit: sections were pooled per animal (sum of MSCs over sum of tissue "
        "area) before averaging per group and time point (mean ± SEM); the fraction remaining is relative to "
        "the group's earliest time point. MSC persistence was fitted with a one-phase exponential decay "
        "N(t) = N0 exp(−kt) (half-life = ln 2 / k) by weighted least squares on animal densities with a "
        f"quasi-likelihood variance model (Poisson counting noise plus an animal effect) {cite('quasi')}; a "
        "log-linear fit and, with at least five time points, a two-phase model were also fitted, one- and "
        f"two-phase models being compared by AICc {cite('aicc')}. {intervals}. Groups were compared at each time "
        f"point by two-sided Mann-Whitney U {cite('mann_whitney')} (two groups) or Kruskal-Wallis "
        f"{cite('kruskal_wallis')} (more groups) tests on animal values, with {corr}.")
    if figures:
        n_sim = n_null or 99  # as the figures draw them (lungtrack.pipeline)
        p.append(
            f"Figures show images, animals and animal means as superplots {cite('superplot')}. The distribution of "
            f"MSC-to-nearest-macrophage distances was compared with a pointwise 95% envelope of {n_sim} random "
            "placements of the macrophage centroids in the tissue mask; the cross-type L function (Ripley's K "
            f"with translation edge correction, Besag's L) {cite('ripley', 'baddeley')} of each group's "
            f"representative image was compared with a 95% envelope of {n_sim} such placements and a global "
            f"maximum-deviation Monte Carlo test {cite('besag_diggle')}.")
    if m("track") is not None and run.get("tracks"):
        p.append(f"Time-lapse objects were linked with LapTrack {cite('laptrack')}; MSC survival was estimated by "
                 f"Kaplan-Meier {cite('kaplan_meier')} with right-censoring at the end of the movie.")
    params = "; ".join(f"{k} = {_v(v)}" for k, v in flatten_config(cfg) if not k.startswith("run.filename"))
    p.append("Parameters (lungtrack config): " + params + ".")
    text = cite.number("\n\n".join(p))
    if references:
        text += "\n\nReferences: " + " ".join(f"[{i}] {REFERENCES[k]}" for i, k in enumerate(cite.keys, 1))
    return text
