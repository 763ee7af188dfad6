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


def methods_paragraph(run: dict, *, references: bool = True) -> str:
    """The methods text (plain text, paragraphs separated by blank lines) for one run.

    Parameters
    ----------
    run : dict
        The content of ``run.json`` (needs ``config``; ``versions`` and
        ``n_samples`` are used when present).
    references : bool
        Append the numbered references cited in the text.
    """
    cfg = run.get("config", {})
    ver = run.get("versions", {})
    lib = ", ".join(f"{k} {v}" for k, v in ver.items() if k not in ("lungtrack", "python", "platform") and v)
    m = lambda p: _g(cfg, p)  # noqa: E731
    thr = {r: m(f"segment.{r}.threshold") for r in ("msc", "macrophage", "nuclei")}
    p = []
    p.append(
        f"Images were analysed with lungtrack {ver.get('lungtrack', '?')} (Python {ver.get('python', '?')}; {lib}). "
        f"Each image was processed independently; channels were assigned as nuclei = {_v(m('channels.nuclei'))}, "
        f"MSC label = {_v(m('channels.msc'))} and macrophage marker = {_v(m('channels.macrophage'))}. "
        "All lengths are in micrometres from the image metadata.")
    p.append(
        "The tissue mask (alveolar septa, vessel walls and cells; air spaces excluded) was obtained from the "
        f"autofluorescence of all channels, smoothed with a Gaussian of {_v(m('segment.tissue.smoothing_sigma_um'))} "
        f"µm and thresholded with the {_v(m('segment.tissue.threshold'))} method [2]. "
        f"For each cell type, a smooth background was removed by a grey-scale opening of radius "
        f"{_v(m('segment.msc.background_radius_um'))} µm (MSCs) and {_v(m('segment.macrophage.background_radius_um'))} µm "
        f"(macrophages); the signal was smoothed (Gaussian sigma {_v(m('segment.msc.smoothing_sigma_um'))} and "
        f"{_v(m('segment.macrophage.smoothing_sigma_um'))} µm) and thresholded with the {_v(thr['msc'])} / "
        f"{_v(thr['macrophage'])} method [1] computed within the tissue, with a floor of "
        f"{_v(m('segment.msc.min_signal_ratio'))} (MSC) and {_v(m('segment.macrophage.min_signal_ratio'))} "
        "(macrophage) times the tissue autofluorescence level. Touching cells were separated by a seeded "
        "watershed on the distance transform [3]; objects with an equivalent diameter outside "
        f"{_v(m('segment.msc.min_diameter_um'))}-{_v(m('segment.msc.max_diameter_um'))} µm (MSCs) or "
        f"{_v(m('segment.macrophage.min_diameter_um'))}-{_v(m('segment.macrophage.max_diameter_um'))} µm "
        "(macrophages) were discarded, so MSC-label fragments and puncta inside macrophages were not counted "
        "as MSCs. Implementations from scikit-image and SciPy [4].")
    p.append(
        "Densities are counts per mm² of tissue. For each MSC, the distance to the nearest macrophage was "
        "measured centre to centre and surface to surface (exact Euclidean distance transform with the voxel "
        f"size); MSCs within {_v(m('spatial.contact_tolerance_um'))} µm of a macrophage were scored as in contact, "
        f"and macrophages were counted within {_v(m('spatial.radii_um'))} µm. Macrophages holding at least "
        f"{_v(m('spatial.engulfed_min_area_um2'))} µm² of MSC label were scored as containing MSC material "
        "(efferocytosis index).")
    p.append(
        "Colocalization of the MSC and macrophage channels was computed within the "
        f"{_v(m('coloc.scope'))} ({_v(m('coloc.coefficients'))}): Pearson's r, Manders' M1 and M2 [5] at "
        f"automatic Costes thresholds [6] ({_v(m('coloc.manders_convention'))} convention; exact scan along the "
        "orthogonal regression line until the Pearson correlation of the pixels below either threshold is "
        "≤ 0), and Li's intensity correlation quotient [7], following the recommendations of Dunn et al. [8]"
        + (f"; significance by the Costes randomisation test with {m('coloc.costes_randomisations')} "
           "randomisations." if m("coloc.costes_randomisations") else "."))
    p.append(
        "Animals were the experimental unit: sections were pooled per animal (sum of MSCs over sum of tissue "
        "area) before averaging per group and time point (mean ± SEM). MSC persistence was fitted with a "
        "one-phase exponential decay (half-life = ln 2 / k) by weighted least squares on animal densities "
        "(variance model: Poisson counting noise plus an animal effect, quasi-likelihood), with a log-linear "
        "and, with at least five time points, a two-phase model compared by AICc; "
        f"{round(100 * (m('persistence.confidence') or 0.95))}% confidence intervals of the half-life are "
        "t-intervals over animals, and of the fraction remaining from Fieller's formula. Half-lives of groups "
        f"were compared by bootstrapping animals ({m('persistence.bootstrap')} resamples, seed "
        f"{m('persistence.seed')}) [9]; time points by Mann-Whitney or Kruskal-Wallis tests with "
        f"{m('persistence.correction') or 'Holm'} correction for multiple comparisons.")
    if m("track") is not None and run.get("tracks"):
        p.append("Time-lapse objects were linked with LapTrack [10]; MSC survival was estimated by Kaplan-Meier "
                 "[11] with right-censoring at the end of the movie.")
    params = "; ".join(f"{k} = {_v(v)}" for k, v in flatten_config(cfg) if not k.startswith("run.filename"))
    p.append("Parameters (lungtrack config): " + params + ".")
    if references:
        keys = ["otsu", "li", "watershed", "skimage", "manders", "costes", "li_icq", "dunn", "bootstrap"]
        if m("track") is not None and run.get("tracks"):
            keys += ["laptrack", "kaplan_meier"]
        p.append("References: " + " ".join(f"[{i}] {REFERENCES[k]}" for i, k in enumerate(keys, 1)))
    return "\n\n".join(p)
