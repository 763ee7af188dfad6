"""coloc.csv and the object colocalization columns of samples.csv, recomputed independently
from the files the demo wrote (input OME-TIFFs and label images)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tifffile
from conftest import SAMPLE_EXPERIMENT

from lungtrack import coloc
from lungtrack.coloc_objects import object_coloc_summary
from lungtrack.io import read_image


@pytest.fixture(scope="module")
def tables(demo_run):
    out = demo_run["out"]
    return out, pd.read_csv(out / "coloc.csv"), pd.read_csv(out / "samples.csv")


def test_coloc_csv_rows_per_scope(tables):
    _, co, samples = tables
    assert list(co.columns[:5]) == ["sample_id", "scope", "roi", "z", "frame"]
    for col in ("pearson_r", "manders_m1", "manders_m2", "costes_threshold_a", "costes_threshold_b",
                "spearman", "li_icq", "overlap", "n_pixels", "area_um2", "convention"):
        assert col in co.columns
    counts = co.groupby(["sample_id", "scope"]).size().unstack(fill_value=0)
    assert (counts["image"] == 1).all() and (counts["tissue"] == 1).all()
    n_msc = samples.set_index("sample_id")["n_msc"]
    assert counts.get("object", pd.Series(0, index=counts.index)).reindex(n_msc.index, fill_value=0).tolist() \
        == n_msc.tolist()
    assert co.loc[co.scope == "object", "roi"].notna().all()


def test_coloc_values_equal_a_recomputation_from_the_written_files(tables):
    out, co, samples = tables
    for sid in ("BM_2h_m1_s1", "UC_24h_m2_s1"):
        img = tifffile.imread(SAMPLE_EXPERIMENT / "images" / f"{sid}.ome.tif")  # (C, Y, X): DAPI, GFP, CD68
        msc, mac = img[1], img[2]
        tissue = tifffile.imread(out / "labels" / f"{sid}_tissue.tif") > 0
        msc_lab = tifffile.imread(out / "labels" / f"{sid}_msc.tif")
        rows = co[co.sample_id == sid].set_index(["scope", "roi"], drop=False)
        t = rows[rows.scope == "tissue"].iloc[0]
        assert t["pearson_r"] == pytest.approx(coloc.pearson(msc, mac, tissue), abs=1e-12)
        assert t["spearman"] == pytest.approx(coloc.spearman(msc, mac, tissue), abs=1e-12)
        assert t["li_icq"] == pytest.approx(coloc.li_icq(msc, mac, tissue), abs=1e-12)
        assert int(t["n_pixels"]) == int(tissue.sum())
        sy, sx = read_image(SAMPLE_EXPERIMENT / "images" / f"{sid}.ome.tif").spacing_um[1:]
        assert t["area_um2"] == pytest.approx(tissue.sum() * sy * sx)
        s = samples.set_index("sample_id").loc[sid]
        assert s["pearson_r"] == t["pearson_r"]  # samples.csv takes the tissue row
        assert (s["costes_threshold_msc"], s["costes_threshold_macrophage"]) == \
            (t["costes_threshold_a"], t["costes_threshold_b"])
        i = rows[rows.scope == "image"].iloc[0]
        assert i["pearson_r"] == pytest.approx(coloc.pearson(msc, mac), abs=1e-12)
        for _, r in rows[rows.scope == "object"].head(3).iterrows():
            region = (msc_lab == int(r["roi"])) & tissue
            assert r["pearson_r"] == pytest.approx(coloc.pearson(msc, mac, region), abs=1e-12)
            assert int(r["n_pixels"]) == int(region.sum())


def test_object_colocalization_columns_against_truth_labels(tables):
    _, _, samples = tables
    truth = SAMPLE_EXPERIMENT / "truth"
    for _, s in samples.iterrows():
        t = object_coloc_summary(tifffile.imread(truth / f"{s.sample_id}_msc.tif"),
                                 tifffile.imread(truth / f"{s.sample_id}_macrophage.tif"), (1.0, 1.0))
        want = t["frac_msc_centroid_in_macrophage"]
        got = s["frac_msc_centroid_in_macrophage"]
        if s["n_msc"] == 0:  # no MSC found: the fraction is undefined, not 0
            assert math.isnan(got)
        else:
            assert got == pytest.approx(want, abs=0.1)
        frac = s["msc_intensity_fraction_in_macrophages"]
        assert math.isnan(frac) if s["n_msc"] == 0 else 0.0 <= frac < 0.05  # intact MSCs: signal outside macrophages
    assert np.isfinite(samples["msc_intensity_fraction_in_macrophages"]).sum() >= 20
