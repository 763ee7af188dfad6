"""External label images (Cellpose, StarDist, QuPath, ilastik) used instead of lungtrack's segmentation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from lungtrack.config import Config
from lungtrack.experiment import load_experiment
from lungtrack.io import LungtrackInputError, write_image, write_labels
from lungtrack.pipeline import process_sample
from lungtrack.segment import segment_image
from lungtrack.segment.external import external_label_paths, read_external_labels
from lungtrack.synthetic import simulate_section

CHANNELS = {"nuclei": "DAPI", "msc": "GFP", "macrophage": "CD68"}


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    """One simulated section on disk with its truth labels as 'external' label images."""
    d = tmp_path_factory.mktemp("ext")
    s = simulate_section(shape=(192, 192), n_msc=7, n_macrophage=9, seed=21)
    (d / "images").mkdir()
    (d / "labels").mkdir()
    write_image(d / "images" / "s1.ome.tif", s.image, axes="CYX", spacing_um=s.spacing_um,
                channel_names=s.channel_names)
    # Cellpose-like: label values with gaps, uint16, no pixel size in the file.
    msc = s.labels["msc"].astype(np.uint16) * 3
    tifffile.imwrite(d / "labels" / "s1_cellpose_msc.tif", msc)
    write_labels(d / "labels" / "s1_macrophage.tif", s.labels["macrophage"], s.spacing_um)
    return d, s


def _manifest(d, **cols):
    row = {"path": "images/s1.ome.tif", "sample_id": "s1", "animal": "m1", "group": "BM", "time_h": 2,
           "section": 1, **cols}
    pd.DataFrame([row]).to_csv(d / "manifest.csv", index=False)
    return load_experiment(d / "manifest.csv")


def test_manifest_label_columns_replace_segmentation(section):
    d, s = section
    exp = _manifest(d, msc_labels="labels/s1_cellpose_msc.tif", macrophage_labels=str(d / "labels/s1_macrophage.tif"))
    sample = exp.samples[0]
    assert sample.labels == {"msc": str(d / "labels/s1_cellpose_msc.tif"),
                             "macrophage": str(d / "labels/s1_macrophage.tif")}
    assert "msc_labels" not in sample.metadata  # a path is not sample metadata
    out = process_sample(sample, Config.from_dict({"channels": CHANNELS}))
    obj = out["objects"]
    for role, truth in (("msc", s.labels["msc"]), ("macrophage", s.labels["macrophage"])):
        rows = obj[obj.role == role]
        assert len(rows) == truth.max()  # every external object, renumbered 1..n in order
        areas = np.bincount(truth.ravel().astype(np.int64))[1:]
        assert np.allclose(rows.sort_values("label")["area_um2"].to_numpy(), areas * 1.0)
    assert out["sample"]["n_msc"] == s.n_msc
    assert out["sample"]["n_macrophage"] == int(s.labels["macrophage"].max())


def test_config_pattern_and_manifest_precedence(section):
    d, s = section
    exp = _manifest(d, msc_labels="labels/s1_cellpose_msc.tif")
    cfg = Config.from_dict({"channels": CHANNELS, "segment": {
        "msc": {"labels_pattern": "../labels/{sample_id}_nope.tif"},
        "macrophage": {"labels_pattern": "../labels/{sample_id}_macrophage.tif"}}})
    paths = external_label_paths(exp.samples[0], cfg)
    assert paths["msc"].endswith("s1_cellpose_msc.tif")  # the manifest column wins
    assert paths["macrophage"].endswith("images/../labels/s1_macrophage.tif")
    out = process_sample(exp.samples[0], cfg)
    assert out["sample"]["n_macrophage"] == int(s.labels["macrophage"].max())
    bad = Config.from_dict({"segment": {"nuclei": {"labels_pattern": "{animal}.tif"}}})
    with pytest.raises(LungtrackInputError, match="sample_id"):
        external_label_paths(exp.samples[0], bad)


def test_shape_mismatch_is_a_clear_error(section, tmp_path):
    d, s = section
    tifffile.imwrite(tmp_path / "cropped.tif", s.labels["msc"][:-1].astype(np.uint16))
    with pytest.raises(LungtrackInputError, match=r"cropped\.tif.*shape \(191, 192\).*\(192, 192\)"):
        read_external_labels(tmp_path / "cropped.tif", shape=(192, 192), spacing_um=(1.0, 1.0, 1.0), role="msc")
    exp = _manifest(d, nuclei_labels=str(tmp_path / "cropped.tif"))
    with pytest.raises(LungtrackInputError, match="cropped.tif"):
        process_sample(exp.samples[0], Config.from_dict({"channels": CHANNELS}))


def test_spacing_mismatch_is_a_clear_error(tmp_path):
    lab = np.zeros((32, 32), np.uint32); lab[4:9, 4:9] = 1
    write_labels(tmp_path / "half.tif", lab, (1.0, 0.5, 0.5))
    with pytest.raises(LungtrackInputError, match=r"pixel size \(0\.5, 0\.5\).*\(1\.0, 1\.0\)"):
        read_external_labels(tmp_path / "half.tif", shape=(32, 32), spacing_um=(1.0, 1.0, 1.0), role="nuclei")
    # the same file is fine for an image of that pixel size
    assert read_external_labels(tmp_path / "half.tif", shape=(32, 32), spacing_um=(1.0, 0.5, 0.5),
                                role="nuclei").max() == 1


def test_bad_label_content_and_missing_file(tmp_path):
    prob = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    tifffile.imwrite(tmp_path / "prob.tif", prob)
    with pytest.raises(LungtrackInputError, match="probability map"):
        read_external_labels(tmp_path / "prob.tif", shape=(16, 16), spacing_um=(1, 1), role="msc")
    with pytest.raises(LungtrackInputError, match=r"not found.*msc_labels"):
        read_external_labels(tmp_path / "missing.tif", shape=(16, 16), spacing_um=(1, 1), role="msc")
    np.save(tmp_path / "lab.npy", np.array([[0, 7], [7, 2]]))
    out = read_external_labels(tmp_path / "lab.npy", shape=(2, 2), spacing_um=(1, 1), role="msc")
    assert out.tolist() == [[0, 2], [2, 1]]  # renumbered in order of the original values
    tissue = read_external_labels(tmp_path / "lab.npy", shape=(2, 2), spacing_um=(1, 1), role="tissue")
    assert tissue.tolist() == [[False, True], [True, True]]


def test_segment_image_takes_labels_and_checks_their_shape():
    s = simulate_section(shape=(128, 128), n_msc=3, n_macrophage=4, seed=1)
    given = {"nuclei": s.labels["nuclei"].astype(np.int32), "tissue": s.labels["tissue"] > 0}
    seg = segment_image(s.image, {"channels": CHANNELS}, spacing_um=s.spacing_um, channel_names=s.channel_names,
                        labels=given)
    assert np.array_equal(seg["nuclei"], given["nuclei"])
    assert np.array_equal(seg["tissue"], given["tissue"])
    with pytest.raises(LungtrackInputError, match=r"external msc labels have shape \(64, 64\)"):
        segment_image(s.image, {"channels": CHANNELS}, spacing_um=s.spacing_um, channel_names=s.channel_names,
                      labels={"msc": np.zeros((64, 64), np.int32)})


def test_zstack_labels_with_anisotropic_spacing(tmp_path):
    lab = np.zeros((6, 20, 20), np.uint32)
    lab[1:4, 2:8, 2:8] = 4
    lab[2:5, 10:15, 10:15] = 2
    write_labels(tmp_path / "z.tif", lab, (2.0, 0.5, 0.5))
    out = read_external_labels(tmp_path / "z.tif", shape=(6, 20, 20), spacing_um=(2.0, 0.5, 0.5), role="nuclei")
    assert out.shape == (6, 20, 20) and out[2, 3, 3] == 2 and out[3, 12, 12] == 1
    with pytest.raises(LungtrackInputError, match=r"pixel size \(2\.0, 0\.5, 0\.5\).*\(1\.0, 0\.5, 0\.5\)"):
        read_external_labels(tmp_path / "z.tif", shape=(6, 20, 20), spacing_um=(1.0, 0.5, 0.5), role="nuclei")
