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


# One class per role, so that a partial YAML section (e.g. only ``msc.min_diameter_um``)
# keeps that role's own defaults for every other field.
class MscSegmentation(RoleSegmentation):
    """MSCs: 15-30 um, bright cytoplasmic label."""

    smoothing_sigma_um: float = Field(1.5, ge=0, description="Gaussian smoothing before thresholding, in um.")
    max_diameter_um: float = Field(45.0, gt=0, description="Objects with a larger equivalent diameter are dropped.")


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
        1.0, ge=0, description="An MSC contacts a macrophage when their surfaces are this close or closer, in um."
    )
    engulfed_min_area_um2: float = Field(
        2.0, ge=0, description="A macrophage contains MSC label when this much MSC-positive area lies inside it, in um2."
    )


class PersistenceConfig(_Strict):
    """Time course of MSC density."""

    bootstrap: int = Field(500, ge=0, description="Bootstrap resamples of animals for confidence intervals (0 = no CI).")
    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence level of the intervals.")
    seed: int = Field(0, description="Seed for bootstrapping (results are reproducible).")


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


class Config(_Strict):
    """All of lungtrack's parameters."""

    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    coloc: ColocConfig = Field(default_factory=ColocConfig)
    spatial: SpatialConfig = Field(default_factory=SpatialConfig)
    persistence: PersistenceConfig = Field(default_factory=PersistenceConfig)
    run: RunConfig = Field(default_factory=RunConfig)

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
        return cls.from_dict(yaml.safe_load(text))


def load_config(config: "Config | dict | str | Path | None") -> Config:
    """Accept a Config, a dict, YAML text or a YAML path, or None (defaults)."""
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return Config.from_dict(config)
    return Config.from_yaml(config)
