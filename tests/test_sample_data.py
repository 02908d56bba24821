"""The bundled sample county (data/sample, data/sample_small) and its generator data/make_sample.py."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
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
DATA = ROOT / "data"
FILES = ("boundaries.geojson", "townships.geojson", "households.csv", "facilities.csv", "roster.csv")
METRIC = 4545  # CGCS2000 / 3-degree GK CM 108E, the CRS geo.crs picks for Hainan

TOWNSHIP_NAMES = {
    "469025100": "牙叉镇", "469025101": "七坊镇", "469025102": "邦溪镇", "469025103": "打安镇",
    "469025200": "细水乡", "469025201": "元门乡", "469025202": "南开乡", "469025203": "阜龙乡",
    "469025204": "青松乡", "469025205": "金波乡", "469025206": "荣邦乡",
}


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_sample", DATA / "make_sample.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod          # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


ms = _load_generator()


def _read(sample: str):
    d = DATA / sample
    units = gpd.read_file(d / "boundaries.geojson")
    towns = gpd.read_file(d / "townships.geojson")
    hh = pd.read_csv(d / "households.csv", dtype={"id": str})
    fac = pd.read_csv(d / "facilities.csv", dtype={"id": str, "name": str})
    roster = pd.read_csv(d / "roster.csv", dtype={"worker_id": str, "name": str})
    return units, towns, hh, fac, roster


@pytest.fixture(scope="module")
def full():
    return _read("sample")


@pytest.fixture(scope="module")
def small():
    return _read("sample_small")


@pytest.fixture(scope="module")
def outline():
    return ms.load_outline()


# --------------------------------------------------------------------------- geometry
def test_outline_is_baisha_in_wgs84(outline):
    assert outline.geom_type == "Polygon" and outline.is_valid
    area_km2 = gpd.GeoSeries([outline], crs=4326).to_crs(METRIC).area.iloc[0] / 1e6
    assert 2050 < area_km2 < 2200          # Baisha: about 2,117 km2
    minx, miny, maxx, maxy = outline.bounds
    assert 108.9 < minx < maxx < 109.8 and 18.8 < miny < maxy < 19.6


@pytest.mark.parametrize("layer", ["units", "towns"])
def test_polygons_tile_the_county_outline(full, outline, layer):
    units, towns, *_ = full
    gdf = units if layer == "units" else towns
    assert set(gdf.geom_type) == {"Polygon"}
    assert gdf.is_valid.all()
    assert shapely.coverage_is_valid(gdf.geometry.values)           # no overlaps, edges match
    m = gdf.to_crs(METRIC)
    union = shapely.union_all(m.geometry.values)
    outline_m = gpd.GeoSeries([outline], crs=4326).to_crs(METRIC).iloc[0]
    assert m.area.sum() == pytest.approx(union.area, rel=1e-9)       # no overlap area
    # snap-rounding all lines together onto the 1e-6 degree grid moves the outline by < 0.1 m
    assert union.area == pytest.approx(outline_m.area, rel=1e-7)     # no gap, nothing outside
    assert union.symmetric_difference(outline_m).area < 1000.0       # m2, of 2.1e9 m2
    assert union.hausdorff_distance(outline_m) < 0.1                 # m
    assert union.geom_type == "Polygon" and len(union.interiors) == 0


def test_units_nest_in_their_townships(full):
    units, towns, *_ = full
    for code, grp in units.groupby("township_code"):
        t = towns.loc[towns.township_code == code, "geometry"].iloc[0]
        u = shapely.union_all(grp.geometry.values)
        assert u.symmetric_difference(t).area < 1e-12, code


def test_coordinates_are_rounded_and_valid_as_written():
    for sample in ("sample", "sample_small"):
        for name in ("boundaries.geojson", "townships.geojson"):
            fc = json.loads((DATA / sample / name).read_text(encoding="utf-8"))
            xy = np.array([c for f in fc["features"] for ring in f["geometry"]["coordinates"] for c in ring])
            assert np.array_equal(xy, np.round(xy, 6)), (sample, name)
            geoms = [shapely.geometry.shape(f["geometry"]) for f in fc["features"]]
            assert all(g.is_valid for g in geoms), (sample, name)
            ext = [shapely.geometry.shape(f["geometry"]).exterior for f in fc["features"]]
            assert all(e.is_ccw for e in ext)                         # RFC 7946 winding


@settings(max_examples=300)
@given(st.floats(0, 1), st.floats(0, 1))
def test_every_point_of_the_county_is_in_exactly_one_unit(full, outline, fx, fy):
    units = full[0]
    minx, miny, maxx, maxy = outline.bounds
    x, y = minx + fx * (maxx - minx), miny + fy * (maxy - miny)
    n = int(shapely.contains_xy(units.geometry.values, x, y).sum())
    on_edge = bool(shapely.intersects_xy(units.boundary.values, x, y).any())
    if not on_edge:
        assert n == int(shapely.contains_xy(outline, x, y))


# --------------------------------------------------------------------------- codes and attributes
def test_codes_have_the_statistical_form(full):
    units, towns, *_ = full
    assert list(units.columns[:-1]) == ["village_code", "village_name", "township_code", "township_name",
                                        "county_code", "kind"]
    assert units.village_code.is_unique and units.village_name.is_unique
    assert (units.county_code == "469025").all()
    assert dict(zip(towns.township_code, towns.township_name)) == TOWNSHIP_NAMES
    for r in units.itertuples():
        assert re.fullmatch(r"469025[12]\d\d\d{3}", r.village_code), r.village_code
        assert r.village_code[:9] == r.township_code
        assert TOWNSHIP_NAMES[r.township_code] == r.township_name
        seq = r.village_code[9:]
        if r.kind == "urban":
            assert re.fullmatch(r"0\d\d", seq) and seq != "000" and r.village_name.endswith("社区")
        else:
            assert r.kind == "rural" and re.fullmatch(r"2\d\d", seq) and r.village_name.endswith("村")
    # towns are 1xx, xiang (townships) 2xx
    for code, name in TOWNSHIP_NAMES.items():
        assert (code[6] == "1") == name.endswith("镇")
    # sequences are dense: 001.. and 200.. within each township
    for code, grp in units.groupby("township_code"):
        seqs = sorted(int(c[9:]) for c in grp.village_code)
        comm = [s for s in seqs if s < 100]
        vill = [s for s in seqs if s >= 200]
        assert comm == list(range(1, len(comm) + 1)) and vill == list(range(200, 200 + len(vill)))
    assert 80 <= len(units) <= 100
    assert 5 <= (units.kind == "urban").sum() <= 15
    assert (units[units.kind == "urban"].township_code.str[6] == "1").all()   # communities in towns


# --------------------------------------------------------------------------- households
def test_households_are_a_realistic_mix(full):
    units, _, hh, *_ = full
    assert list(hh.columns) == ["id", "lon", "lat", "households", "population", "weight"]
    assert hh.id.is_unique and hh.id.str.fullmatch(r"H\d{6}").all()
    assert 40_000 <= hh.households.sum() <= 50_000
    assert (hh.households >= 1).all() and hh.households.max() <= 300
    assert (hh.population >= hh.households).all()
    assert 2.0 <= hh.population.sum() / hh.households.sum() <= 4.0
    assert hh.weight.between(0, 3).all() and (hh.weight == 0).mean() > 0.8 and (hh.weight > 0).any()
    for col in ("lon", "lat"):
        assert np.array_equal(hh[col].to_numpy(), np.round(hh[col].to_numpy(), 6))
    pts = gpd.GeoDataFrame(hh, geometry=gpd.points_from_xy(hh.lon, hh.lat), crs=4326)
    j = gpd.sjoin(pts, units[["village_code", "kind", "township_code", "geometry"]], predicate="within",
                  how="left")
    assert not j.index.duplicated().any()
    assert j.village_code.notna().all()                       # every household inside a unit
    assert (j.households >= 100).sum() >= 20                 # high-rise blocks exist ...
    assert (j[j.households > 12].kind == "urban").all()       # ... and apartment blocks are urban
    assert (j[j.kind == "rural"].households <= 12).all()      # seat clusters up to 12, houses 1-3
    assert (j[j.kind == "rural"].households <= 3).mean() > 0.9
    seat = j[j.township_code == "469025100"].households.sum()
    assert seat / j.households.sum() > 0.3                    # the county seat is the big place
    per_unit = j.groupby("village_code").households.sum().reindex(units.village_code, fill_value=0)
    assert (per_unit > 0).all()
    assert (per_unit < 60).sum() >= 3                          # empty uplands


def test_facilities_and_roster(full):
    units, towns, hh, fac, roster = full
    assert list(fac.columns) == ["id", "name", "existing", "lon", "lat"]
    assert fac.id.is_unique and fac.existing.dtype == bool
    centres = fac[fac.name.str.endswith("党群服务中心")]
    assert sorted(centres.name.str[:3]) == sorted(TOWNSHIP_NAMES.values())
    assert centres.existing.all() and fac.existing.sum() > len(centres)
    for r in centres.itertuples():
        t = towns.loc[towns.township_name == r.name[:3], "geometry"].iloc[0]
        assert t.contains(shapely.Point(r.lon, r.lat))
    allu = shapely.union_all(units.geometry.values)
    assert shapely.contains_xy(allu, fac.lon.to_numpy(), fac.lat.to_numpy()).all()
    assert list(roster.columns) == ["worker_id", "name", "role", "lon", "lat"]
    assert roster.worker_id.is_unique and set(roster.role) == {"full", "part"}
    n_full = (roster.role == "full").sum()
    # a full-time worker for every grid the villages need at 300 households a grid (at least one
    # per village), with at most ~10% spare per township
    pts = gpd.GeoDataFrame(hh, geometry=gpd.points_from_xy(hh.lon, hh.lat), crs=4326)
    per_unit = gpd.sjoin(pts, units[["village_code", "geometry"]], predicate="within") \
        .groupby("village_code").households.sum().reindex(units.village_code, fill_value=0)
    grids_needed = int(np.maximum(1, np.floor(per_unit / 300 + 0.5)).sum())
    assert grids_needed <= n_full <= grids_needed * 1.1 + len(TOWNSHIP_NAMES)
    assert 0.15 <= (roster.role == "part").sum() / n_full <= 0.35
    assert shapely.contains_xy(allu, roster.lon.to_numpy(), roster.lat.to_numpy()).all()


def test_small_sample_is_one_township_of_the_full_one(full, small):
    units, towns, hh, fac, roster = small
    f_units, _, f_hh, f_fac, f_roster = full
    assert len(towns) == 1 and towns.township_code.iloc[0] == ms.SMALL_TOWNSHIP
    assert 6 <= len(units) <= 10 and set(units.kind) == {"urban", "rural"}
    assert (units.township_code == ms.SMALL_TOWNSHIP).all()
    assert 3000 <= hh.households.sum() <= 5000
    # the same rows as in the full sample
    mine = f_units[f_units.township_code == ms.SMALL_TOWNSHIP].reset_index(drop=True)
    assert units.drop(columns="geometry").equals(mine.drop(columns="geometry"))
    assert all(a.equals(b) for a, b in zip(units.geometry, mine.geometry))
    merged = hh.merge(f_hh, on="id", suffixes=("", "_f"))
    assert len(merged) == len(hh)
    assert (merged.lon == merged.lon_f).all() and (merged.households == merged.households_f).all()
    assert roster.worker_id.isin(f_roster.worker_id).all() and fac.id.isin(f_fac.id).all()
    # a full-time worker per grid its 6-10 villages need (at least one each), with ~10% spare
    assert len(units) <= (roster.role == "full").sum() <= 1.2 * (hh.households.sum() / 300 + len(units))
    t = towns.geometry.iloc[0]
    assert shapely.contains_xy(t, hh.lon.to_numpy(), hh.lat.to_numpy()).all()
    assert shapely.contains_xy(t, fac.lon.to_numpy(), fac.lat.to_numpy()).all()


def test_committed_data_is_small():
    total = sum(p.stat().st_size for s in ("sample", "sample_small") for p in (DATA / s).iterdir())
    assert total < 5_000_000
    for s in ("sample", "sample_small"):
        assert sorted(p.name for p in (DATA / s).iterdir()) == sorted(FILES)


# --------------------------------------------------------------------------- the generator
_FIELD = ms.Field(np.random.default_rng(7), [(900, 16000), (420, 6500), (60, 1000)],
                  (600_000, 2_090_000, 690_000, 2_160_000))


def test_displacement_field_was_tamed():
    assert 0 < _FIELD.scale <= 1.0
    assert sum(a * np.linalg.norm(k) for a, k in zip(_FIELD.amp, _FIELD.k)) > 1.0   # Lipschitz bound alone fails


@settings(max_examples=200)
@given(st.floats(600_000, 690_000), st.floats(2_090_000, 2_160_000))
def test_displacement_field_is_one_to_one_and_inverted(x, y):
    p = np.array([[x, y]])
    assert _FIELD.det(p)[0] > 0          # checked >= 0.3 on a grid; positive everywhere between
    assert np.allclose(_FIELD.inverse(_FIELD.forward(p)), p, atol=1e-4)


def test_regeneration_is_bit_for_bit(tmp_path):
    r = subprocess.run([sys.executable, str(DATA / "make_sample.py"), "--out", str(tmp_path), "--quiet"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    for s in ("sample", "sample_small"):
        for name in FILES:
            assert (tmp_path / s / name).read_bytes() == (DATA / s / name).read_bytes(), f"{s}/{name} differs"


def test_another_seed_keeps_the_invariants(tmp_path):
    stats = ms.generate(tmp_path, seed=11, verbose=False)
    units = gpd.read_file(tmp_path / "sample" / "boundaries.geojson")
    assert stats["units"] == len(units) and units.is_valid.all() and set(units.geom_type) == {"Polygon"}
    assert shapely.coverage_is_valid(units.geometry.values)
    assert 40_000 <= stats["households"] <= 50_000
    assert (tmp_path / "sample" / "households.csv").read_bytes() != (DATA / "sample" / "households.csv").read_bytes()
