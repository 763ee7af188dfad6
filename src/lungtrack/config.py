"""One typed config tree for every parameter, with a YAML round trip.

Every field carries a description: it documents the parameter, and the CLI and
the napari widgets show it as help text and tooltips. Unknown keys are errors,
so a typo in a YAML file never silently falls back to a default.

Examples
--------
>>> cfg = Config()
>>> cfg.segment.msc.min_diameter_um
10.0
>>> Config.from_yaml(cfg.to_yaml()) == cfg
True
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field

ChannelRef = Union[int, str]


class ConfigError(ValueError):
    """A config file that cannot be read (not YAML, not a mapping)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ChannelsConfig(_Strict):
    """Which image channel holds which biological signal (by name or 0-based index)."""

    nuclei: ChannelRef | None = Field(0, description="Nuclear stain channel (DAPI/Hoechst), name or index; null if absent.")
    msc: ChannelRef = Field(1, description="MSC label channel (GFP, tdTomato, DiI, CellTracker), name or index.")
    macrophage: ChannelRef = Field(2, description="Macrophage marker channel (CD68, F4/80), name or index.")
    tissue: ChannelRef | None = Field(
        None,
        description="Channel for the tissue mask; null uses the mean of all channels (autofluorescence of septa).",
    )
    autofluorescence: ChannelRef | None = Field(
        None,
        description="A channel with tissue autofluorescence only (no label), name or index; when set, it is scaled "
        "(segment.<role>.autofluorescence_scale) and subtracted from each cell role's channel before thresholds.",
    )


class RoleSegmentation(_Strict):
    """Parameters for one cell role, in physical units."""

    smoothing_sigma_um: float = Field(1.0, ge=0, description="Gaussian smoothing before thresholding, in um.")
    background_radius_um: float = Field(
        40.0, gt=0, description="Scale of the background (illumination, autofluorescence) removed before thresholding, in um; larger than the biggest cell."
    )
    threshold: Literal["otsu", "multiotsu", "li", "triangle", "yen"] | float = Field(
        "otsu",
        description="Threshold method on the background-corrected voxels inside the tissue mask, or a fixed value in those intensity units.",
    )
    min_signal_ratio: float = Field(
        3.0, ge=0,
        description="Label must be at least this many times brighter than tissue autofluorescence (after background removal); 0 disables this floor.",
    )
    min_diameter_um: float = Field(10.0, ge=0, description="Objects with a smaller equivalent diameter are dropped (debris, puncta).")
    max_diameter_um: float = Field(60.0, gt=0, description="Objects with a larger equivalent diameter are dropped.")
    split_touching: bool = Field(True, description="Split touching cells with a distance-transform seeded watershed.")
    split_min_distance_um: float = Field(
        8.0, gt=0, description="Minimum distance between two cell centres for the watershed split, in um (about half the smallest cell diameter)."
    )
    background: Literal["opening", "tophat", "rolling_ball", "none"] = Field(
        "opening",
        description="Background removal at background_radius_um before thresholding: 'opening' (fast rolling-ball "
        "approximation on a shrunken image), 'tophat' (white top-hat, exact ellipse/ellipsoid), 'rolling_ball' "
        "(scikit-image, slow for large radii) or 'none'.",
    )
    autofluorescence_scale: float | Literal["auto"] = Field(
        "auto",
        description="Leak of the channels.autofluorescence channel into this role's channel, subtracted as "
        "channel - scale x autofluorescence; 'auto' = median ratio over tissue voxels. Unused without that channel.",
    )
    labels_pattern: str | None = Field(
        None,
        description="Use label images made elsewhere (Cellpose, StarDist, QuPath, ilastik) instead of lungtrack's "
        "segmentation: a path with {sample_id}, absolute or relative to the image's folder, e.g. "
        "'../labels/{sample_id}_msc.tif'. "
        "A manifest column <role>_labels overrides it per image.",
    )


# One class per role, so that a partial YAML section (e.g. only ``msc.min_diameter_um``)
# keeps that role's own defaults for every other field.
class MscSegmentation(RoleSegmentation):
    """MSCs: 15-30 um, bright cytoplasmic label."""

    smoothing_sigma_um: float = Field(1.5, ge=0, description="Gaussian smoothing before thresholding, in um.")
    max_diameter_um: float = Field(45.0, gt=0, description="Objects with a larger equivalent diameter are dropped.")
    seeds: Literal["distance", "nuclei"] = Field(
        "distance",
        description="Seeds of the watershed split: 'distance' (distance-transform maxima) or 'nuclei' (one cell per "
        "segmented nucleus inside the MSC mask; components without a nucleus stay one cell).",
    )
    fragment_distance_um: float = Field(
        12.0, ge=0,
        description="MSC-label puncta outside intact MSCs and macrophages and closer than this to each other (surface "
        "to surface, in um) are one fragmented dying MSC (intact = False, n_fragments = its puncta).",
    )
    fragment_min_diameter_um: float = Field(
        1.0, ge=0, description="Puncta with a smaller equivalent diameter are noise, not fragments, in um."
    )
    fragment_threshold_ratio: float = Field(
        0.7, gt=0, le=1,
        description="Puncta are detected at this fraction of the MSC threshold: being smaller than the blur, they "
        "look dimmer than whole cells of the same label density.",
    )
    fragment_min_count: int = Field(
        3, ge=1, description="A group needs at least this many puncta to be a fragmented MSC (a lone punctum or "
        "two are not evidence of a dying cell)."
    )


class MacrophageSegmentation(RoleSegmentation):
    """Macrophages: 10-15 um, granular marker (smoothed more so that one cell is one blob)."""

    smoothing_sigma_um: float = Field(2.0, ge=0, description="Gaussian smoothing before thresholding, in um.")
    min_signal_ratio: float = Field(
        2.5, ge=0,
        description="Label must be at least this many times brighter than tissue autofluorescence (after background removal); 0 disables this floor.",
    )
    min_diameter_um: float = Field(6.0, ge=0, description="Objects with a smaller equivalent diameter are dropped (debris, puncta).")
    max_diameter_um: float = Field(25.0, gt=0, description="Objects with a larger equivalent diameter are dropped.")
    split_min_distance_um: float = Field(
        5.0, gt=0, description="Minimum distance between two cell centres for the watershed split, in um (about half the smallest cell diameter)."
    )
    seeds: Literal["distance", "nuclei"] = Field(
        "distance",
        description="Seeds of the watershed split: 'distance' (distance-transform maxima) or 'nuclei' (one cell per "
        "segmented nucleus inside the macrophage mask; components without a nucleus stay one cell).",
    )


class NucleiSegmentation(RoleSegmentation):
    """Nuclei: 5-12 um, DAPI/Hoechst."""

    background_radius_um: float = Field(
        20.0, gt=0, description="Scale of the background (illumination, autofluorescence) removed before thresholding, in um; larger than the biggest cell."
    )
    min_diameter_um: float = Field(3.0, ge=0, description="Objects with a smaller equivalent diameter are dropped (debris, puncta).")
    max_diameter_um: float = Field(15.0, gt=0, description="Objects with a larger equivalent diameter are dropped.")
    split_min_distance_um: float = Field(
        3.0, gt=0, description="Minimum distance between two cell centres for the watershed split, in um (about half the smallest cell diameter)."
    )
    method: Literal["classic", "hmaxima"] = Field(
        "classic",
        description="'classic': the MSC/macrophage path (peak seeds split_min_distance_um apart); 'hmaxima': "
        "watershed seeded by h-maxima of the smoothed distance transform (seed_h_um), better on dense nuclei.",
    )
    seed_h_um: float = Field(
        0.5, gt=0, description="'hmaxima' method: a distance-transform maximum must rise this much (um) above the "
        "saddle to its neighbour to seed its own nucleus.",
    )
    seed_smoothing_um: float = Field(
        0.5, ge=0, description="'hmaxima' method: Gaussian smoothing of the distance transform before seeding, in um."
    )


class TissueSegmentation(_Strict):
    """Tissue mask: septa and vessel walls, air spaces excluded."""

    smoothing_sigma_um: float = Field(0.5, ge=0, description="Gaussian smoothing of the tissue channel, in um.")
    threshold: Literal["multiotsu", "otsu", "li", "triangle", "yen"] | float = Field("li", description="Threshold method or fixed value.")
    min_hole_area_um2: float = Field(50.0, ge=0, description="Holes smaller than this inside tissue are filled (they are not air spaces).")
    min_area_um2: float = Field(50.0, ge=0, description="Tissue fragments smaller than this are dropped.")


class SegmentConfig(_Strict):
    """Segmentation parameters per role."""

    msc: MscSegmentation = Field(default_factory=MscSegmentation)
    macrophage: MacrophageSegmentation = Field(default_factory=MacrophageSegmentation)
    nuclei: NucleiSegmentation = Field(default_factory=NucleiSegmentation)
    tissue: TissueSegmentation = Field(default_factory=TissueSegmentation)


class ColocConfig(_Strict):
    """Pixel colocalization of the MSC and macrophage channels."""

    scope: Literal["tissue", "image"] = Field("tissue", description="Pixels used: inside the tissue mask, or the whole image.")
    thresholds: Literal["costes"] = Field("costes", description="How Manders thresholds are chosen (Costes 2004).")
    manders_convention: Literal["jacop", "coloc2"] = Field(
        "jacop",
        description="'jacop' (and CellProfiler): denominators are thresholded; 'coloc2' (Fiji Coloc 2): denominators are the whole-scope sums.",
    )
    costes_randomisations: int = Field(0, ge=0, description="Costes significance test randomisations (0 = skip; p reported as NaN).")
    seed: int = Field(0, description="Seed for the randomisation test.")
    coefficients: list[Literal["pearson", "manders", "costes", "spearman", "kendall_tau", "li_icq", "overlap"]] = Field(
        ["pearson", "manders", "costes", "spearman", "li_icq", "overlap"],
        description="Coefficients written to coloc.csv (see docs/methods.md); kendall_tau is slow on large images.",
    )
    per_msc: bool = Field(True, description="Also write one coloc.csv row per MSC object (scope 'object').")


class SpatialConfig(_Strict):
    """MSC-macrophage spatial relations."""

    radii_um: list[float] = Field([25.0, 50.0], description="Radii for counting macrophages around each MSC, in um.")
    contact_tolerance_um: float = Field(
        2.0, ge=0,
        description="An MSC contacts a macrophage when their surfaces are this close or closer, in um (2 um: segmented outlines sit 1-2 um inside touching cells' true surfaces).",
    )
    engulfed_min_area_um2: float = Field(
        2.0, ge=0, description="A macrophage contains MSC label when this much MSC-positive area lies inside it, in um2."
    )
    near_um: float = Field(
        10.0, ge=0, description="MSC state 'near': the nearest macrophage surface is within this distance, in um."
    )
    engulfed_min_fraction: float = Field(
        0.5, ge=0, le=1,
        description="MSC state 'engulfed': at least this share of the MSC's label intensity lies inside macrophages.",
    )
    fragmented_min_pieces: int = Field(
        3, ge=2, description="MSC state 'fragmented': the MSC label is split into at least this many separate pieces."
    )
    fragmented_max_diameter_um: float = Field(
        8.0, ge=0,
        description="MSC state 'fragmented': an MSC-label object smaller than this equivalent diameter is a remnant, in um (intact MSCs are 15-30 um).",
    )
    density_radius_um: float = Field(
        50.0, gt=0,
        description="Tissue within this distance of an MSC surface is 'near MSCs' for the macrophage density near vs far, in um.",
    )
    null_simulations: int = Field(
        0, ge=0,
        description="Random placements of macrophages inside the tissue per image for the null-model p-values (0 = skip; 99 gives p down to 0.01).",
    )
    null_placement: Literal["shapes", "points"] = Field(
        "shapes",
        description="Null model moves whole macrophage shapes (surface distance and contact too) or only centroids (faster, centre distance and counts).",
    )
    seed: int = Field(0, description="Seed of the null model (results are reproducible).")


class PersistenceConfig(_Strict):
    """Time course of MSC density, half-lives and group comparisons (animals are the units)."""

    bootstrap: int = Field(
        500,
        ge=0,
        description="0 = no confidence intervals or p-values for half-lives, their comparison and the fraction remaining. "
        "Any other value keeps the analytic intervals (t, Fieller, MOVER; docs/methods.md), which resample nothing: "
        "the number is then only the resample count of persistence_table(interval='bootstrap') in scripts.",
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence level of the intervals.")
    seed: int = Field(
        0, description="Seed of the optional percentile bootstrap (persistence_table(interval='bootstrap')); "
        "the analytic intervals of a run need none."
    )
    group_by: list[str] = Field(
        default_factory=lambda: ["group"],
        min_length=1,
        description="Manifest column(s) that define the groups compared (e.g. [group, dose]); several are joined into one label.",
    )
    correction: Literal["holm", "bh", "none"] = Field(
        "holm", description="Multiple-comparison correction of the per-time-point tests: holm (family-wise), bh (false discovery rate) or none."
    )


class RunConfig(_Strict):
    """How the batch run executes."""

    pixel_size_um: float | None = Field(
        None, gt=0, description="Pixel size in um used only for images without one in their metadata; a manifest column pixel_size_um overrides the metadata per image."
    )
    z_step_um: float | None = Field(None, gt=0, description="Z step in um used when a stack has none in its metadata.")
    axes: str | None = Field(
        None, description="Axis letters (e.g. CYX, ZCYX) of images whose metadata does not say; plain multi-page TIFFs are otherwise read as z-stacks."
    )
    filename_pattern: str = Field(
        r"(?P<group>[^_]+)_(?P<time_h>[0-9.]+)h_(?P<animal>[^_]+)_(?P<section>[^_.]+)(\.ome)?\.tiff?",
        description="Regular expression with named groups (group, time_h, animal, section) for folders without a manifest.csv.",
    )
    write_labels: bool = Field(True, description="Write label images to labels/<sample_id>_<role>.tif.")
    allow_paths_outside_experiment: bool = Field(
        False,
        description="Allow manifest paths (absolute or with ..) that lead outside the experiment folder.",
    )
    chunked_min_voxels: int = Field(
        64_000_000, ge=0,
        description="Images with at least this many voxels per channel are segmented chunk by chunk (bounded memory, "
        "labels equal to whole-image segmentation; colocalization and relations not computed); 0 = every image.",
    )
    chunk_size_px: int = Field(2048, ge=16, description="Chunk width and height in px for chunked segmentation.")
    chunk_overlap_um: float | None = Field(
        None, gt=0,
        description="Overlap between chunks for the watershed split, in um: at least the largest cluster of touching "
        "cells (default: 2 x the role's max_diameter_um); larger clusters are split on their own, more slowly.",
    )
    memory_limit_gb: float | None = Field(
        None, gt=0,
        description="Memory budget of chunked segmentation in GB: intermediates go to disk beside the results and "
        "chunks shrink to fit; null keeps intermediates in memory.",
    )


class RoleTracking(_Strict):
    """Linking parameters of one cell role (laptrack's LAP tracker), distances in um."""

    max_distance_um: float = Field(15.0, gt=0, description="Largest move between consecutive frames, in um.")
    gap_closing_max_distance_um: float | None = Field(
        15.0, gt=0, description="Largest move across a gap (object missed in some frames), in um; null disables gap closing.")
    gap_closing_max_frames: int = Field(2, ge=1, description="Longest gap bridged, in frames (2 = one missed frame).")
    splitting_max_distance_um: float | None = Field(
        None, gt=0, description="Largest distance for a track to split into two (a cell breaking up), in um; null = no splits.")
    merging_max_distance_um: float | None = Field(
        None, gt=0, description="Largest distance for two tracks to merge, in um; null = no merges.")
    alternative_cost_percentile_interpolation: Literal["lower", "higher", "linear", "nearest", "midpoint"] = Field(
        "lower", description="laptrack's percentile interpolation for the start/end (alternative) costs; TrackMate "
        "uses 'higher' when splitting and merging are both on.")


class MscTracking(RoleTracking):
    """MSCs lodge in capillaries and mostly stay."""

    max_distance_um: float = Field(8.0, gt=0, description="Largest move between consecutive frames, in um.")
    gap_closing_max_distance_um: float | None = Field(
        8.0, gt=0, description="Largest move across a gap (object missed in some frames), in um; null disables gap closing.")


class MacrophageTracking(RoleTracking):
    """Macrophages crawl several um per minute."""

    max_distance_um: float = Field(15.0, gt=0, description="Largest move between consecutive frames, in um.")
    gap_closing_max_distance_um: float | None = Field(
        20.0, gt=0, description="Largest move across a gap (object missed in some frames), in um; null disables gap closing.")


class TrackConfig(_Strict):
    """Time-lapse tracking of MSCs and macrophages, contacts and survival (lungtrack.track)."""

    frame_interval_min: float | None = Field(
        None, gt=0, description="Time between frames in minutes; used when the image metadata has none "
        "(OME TimeIncrement, ImageJ finterval), and overrides it when set.")
    msc: MscTracking = Field(default_factory=MscTracking)
    macrophage: MacrophageTracking = Field(default_factory=MacrophageTracking)
    contact_tolerance_um: float = Field(
        2.0, ge=0, description="An MSC and a macrophage are in contact in a frame when their surfaces are this close, in um.")
    engulfed_min_area_um2: float = Field(
        5.0, ge=0, description="A macrophage has engulfed MSC material when this much MSC-label area that is not an "
        "intact MSC lies inside it, in um2 (about one 2.5 um punctum; lower values count edge overlap at contacts).")
    engulfment_window_frames: int = Field(
        5, ge=0, description="Engulfment 'follows' a contact when it is seen within this many frames after the contact ends.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence level of Kaplan-Meier bands and median CIs.")


class Config(_Strict):
    """All of lungtrack's parameters."""

    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    coloc: ColocConfig = Field(default_factory=ColocConfig)
    spatial: SpatialConfig = Field(default_factory=SpatialConfig)
    persistence: PersistenceConfig = Field(default_factory=PersistenceConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    track: TrackConfig = Field(default_factory=TrackConfig)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Config":
        return cls.model_validate(data or {})

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> "Config":
        """Read a config from YAML text or a ``.yaml``/``.yml`` file path."""
        text = str(text_or_path)
        p = Path(text)
        if "\n" not in text and p.suffix in {".yaml", ".yml"}:
            if not p.exists():
                raise FileNotFoundError(f"config file {p} does not exist")
            text = p.read_text()
        where = str(p) if p.suffix in {".yaml", ".yml"} else "config text"
        try:
            # safe_load: a config never constructs Python objects (no !!python tags).
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: not valid YAML, or it uses tags lungtrack does not accept "
                             f"(configs hold plain values only): {exc}") from exc
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{where}: a config is a mapping of sections (channels:, segment:, ...), "
                             f"got a {type(data).__name__}")
        from pydantic import ValidationError

        try:
            return cls.from_dict(data)
        except ValidationError as exc:
            # pydantic's own text names neither the file nor the way out.
            fields = "\n".join(f"  {'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})"
                               for e in exc.errors())
            raise ConfigError(f"{where}: invalid config:\n{fields}\nCorrect these entries or remove them; "
                              "`lungtrack config --default` prints every valid key with its default.") from exc


def load_config(config: "Config | dict | str | Path | None") -> Config:
    """Accept a Config, a dict, YAML text or a YAML path, or None (defaults)."""
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return Config.from_dict(config)
    return Config.from_yaml(config)
