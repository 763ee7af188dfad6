"""lungtrack.io against files written by tifffile with known metadata."""
from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import tifffile

from lungtrack.io import (
    ImageReadError,
    LungtrackInputError,
    MissingPixelSizeError,
    check_tiff,
    read_image,
    sha256,
    write_image,
    write_labels,
)


def test_ome_roundtrip_2d_spacing_names_lazy(tmp_path):
    data = np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30)
    p = tmp_path / "a.ome.tif"
    write_image(p, data, axes="CYX", spacing_um=(1.0, 0.325, 0.325), channel_names=["DAPI", "GFP", "CD68"])
    img = read_image(p)
    assert isinstance(img.data, da.Array)
    assert img.data.shape == (1, 3, 1, 20, 30)
    assert img.spacing_um == pytest.approx((1.0, 0.325, 0.325))
    assert img.channel_names == ["DAPI", "GFP", "CD68"]
    np.testing.assert_array_equal(img.data[0, :, 0].compute(), data)
    assert img.channel_index("gfp") == 1 and img.channel_index(2) == 2 and img.channel_index("2") == 2


def test_ome_zstack_anisotropic(tmp_path):
    data = np.random.default_rng(0).integers(0, 4000, (2, 5, 16, 18), dtype=np.uint16)  # CZYX
    p = tmp_path / "z.ome.tif"
    write_image(p, data, axes="CZYX", spacing_um=(2.5, 0.5, 0.5), channel_names=["GFP", "F4/80"])
    img = read_image(p)
    assert img.data.shape == (1, 2, 5, 16, 18) and img.is_3d
    assert img.spacing_um == pytest.approx((2.5, 0.5, 0.5))
    np.testing.assert_array_equal(img.data[0].compute(), data)


def test_imagej_hyperstack_labels_and_axes(tmp_path):
    data = np.random.default_rng(1).integers(0, 255, (4, 2, 12, 14), dtype=np.uint8)  # ZCYX
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, data, imagej=True, resolution=(1 / 0.2, 1 / 0.2),
                     metadata={"axes": "ZCYX", "spacing": 1.5, "unit": "um", "Labels": ["Hoechst", "tdTomato"] * 4})
    img = read_image(p)
    assert img.data.shape == (1, 2, 4, 12, 14)
    assert img.spacing_um == pytest.approx((1.5, 0.2, 0.2))
    assert img.channel_names == ["Hoechst", "tdTomato"]
    np.testing.assert_array_equal(img.data[0].compute(), data.transpose(1, 0, 2, 3))


def test_imagej_nanometre_unit(tmp_path):
    p = tmp_path / "nm.tif"
    tifffile.imwrite(p, np.zeros((8, 8), np.uint16), imagej=True, resolution=(1 / 650.0, 1 / 650.0),
                     metadata={"unit": "nm"})
    assert read_image(p).spacing_um[1:] == pytest.approx((0.65, 0.65))


def test_plain_tiff_centimetre_resolution(tmp_path):
    p = tmp_path / "cm.tif"
    # 20000 pixels per cm = 0.5 um per pixel
    tifffile.imwrite(p, np.zeros((2, 8, 8), np.uint16), resolution=(20000, 20000), resolutionunit="CENTIMETER",
                     metadata=None)
    img = read_image(p, axes="CYX")
    assert img.spacing_um[1:] == pytest.approx((0.5, 0.5))
    assert img.data.shape == (1, 2, 1, 8, 8)


def test_missing_pixel_size_is_an_error_naming_the_file(tmp_path):
    p = tmp_path / "nopx.tif"
    tifffile.imwrite(p, np.zeros((8, 8), np.uint16), metadata=None)
    with pytest.raises(MissingPixelSizeError, match="nopx.tif.*pixel_size_um"):
        read_image(p)
    assert read_image(p, pixel_size_um=0.4).spacing_um[1:] == (0.4, 0.4)
    assert read_image(p, require_spacing=False).spacing_um == (1.0, 1.0, 1.0)


def test_corrupt_and_truncated_tiffs(tmp_path):
    bad = tmp_path / "garbage.tif"
    bad.write_bytes(b"this is not a tiff" * 50)
    with pytest.raises(ImageReadError, match="garbage.tif"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="garbage.tif"):
        check_tiff(bad)
    good = tmp_path / "good.ome.tif"
    write_image(good, np.random.default_rng(0).integers(0, 60000, (2, 64, 64), dtype=np.uint16), axes="CYX",
                spacing_um=(1, 1, 1), compression=None)
    check_tiff(good)
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="cut.ome.tif.*truncated"):
        check_tiff(cut)
    with pytest.raises(ImageReadError, match="missing.tif.*not found"):
        read_image(tmp_path / "missing.tif")


def test_channel_errors_name_the_channels(tmp_path):
    p = tmp_path / "c.ome.tif"
    write_image(p, np.zeros((2, 4, 4), np.uint16), axes="CYX", spacing_um=(1, 1, 1), channel_names=["A", "B"])
    img = read_image(p)
    with pytest.raises(LungtrackInputError, match=r"no channel named 'CD68'.*\['A', 'B'\]"):
        img.channel_index("CD68")
    with pytest.raises(LungtrackInputError, match="out of range"):
        img.channel_index(5)


def test_write_labels_uint32_with_spacing(tmp_path):
    lab = np.zeros((3, 10, 12), np.int64)
    lab[1, 2:5, 3:7] = 70000  # beyond uint16
    p = tmp_path / "labels.tif"
    write_labels(p, lab, (2.0, 0.3, 0.3))
    back = read_image(p)
    assert back.data.dtype == np.uint32
    assert back.spacing_um == pytest.approx((2.0, 0.3, 0.3))
    np.testing.assert_array_equal(back.data[0, 0].compute(), lab)


def test_sha256_known_value(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"abc")
    assert sha256(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_real_confocal_stack_spacing(shared_data):
    """colocsample1b is an ImageJ stack: 0.3282 um pixels, 0.646 um z step (data README)."""
    img = read_image(shared_data / "coloc_fiji" / "colocsample1b-green.tif")
    assert img.data.shape == (1, 1, 33, 152, 172)
    assert img.spacing_um == pytest.approx((0.646, 0.3282, 0.3282), abs=5e-4)


def test_micrometre_resolution_unit_and_defaults_never_override_metadata(tmp_path):
    p = tmp_path / "um.tif"
    tifffile.imwrite(p, np.zeros((8, 8), np.uint16), resolution=(1 / 0.65, 1 / 0.65), resolutionunit="MICROMETER",
                     metadata=None)
    assert read_image(p).spacing_um[1:] == pytest.approx((0.65, 0.65))
    # A default fills only a gap; an explicit pixel_size_um overrides.
    assert read_image(p, default_pixel_size_um=2.0).spacing_um[1:] == pytest.approx((0.65, 0.65))
    assert read_image(p, pixel_size_um=2.0).spacing_um[1:] == (2.0, 2.0)
    q = tmp_path / "none.tif"
    tifffile.imwrite(q, np.zeros((8, 8), np.uint16), metadata=None)
    assert read_image(q, default_pixel_size_um=2.0).spacing_um[1:] == (2.0, 2.0)


def test_plain_multipage_tiff_error_mentions_axes(tmp_path):
    p = tmp_path / "pages.tif"
    tifffile.imwrite(p, np.zeros((3, 8, 8), np.uint16), resolution=(1, 1), resolutionunit="MICROMETER",
                     metadata=None, photometric="minisblack")
    with pytest.raises(MissingPixelSizeError, match="run.axes"):
        read_image(p)
    assert read_image(p, axes="CYX").data.shape == (1, 3, 1, 8, 8)


def test_pyramidal_ome_tiff_reads_its_full_resolution(tmp_path):
    """A pyramidal OME-TIFF (SubIFDs, as QuPath and bfconvert write): level 0, with its spacing and names."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, (2, 256, 320), dtype=np.uint16)
    p = tmp_path / "pyramid.ome.tif"
    meta = {"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "Channel": {"Name": ["GFP", "CD68"]}}
    with tifffile.TiffWriter(p, ome=True) as tif:
        tif.write(data, subifds=2, tile=(64, 64), metadata=meta)
        for f in (2, 4):
            tif.write(data[:, ::f, ::f], subfiletype=1, tile=(64, 64))
    img = read_image(p)
    assert img.data.shape == (1, 2, 1, 256, 320)
    assert img.spacing_um[1:] == pytest.approx((0.5, 0.5)) and img.channel_names == ["GFP", "CD68"]
    np.testing.assert_array_equal(img.data[0, :, 0].compute(), data)
