"""geo.io readers, coordinate systems, CRS handling and the Dataset they build."""
from __future__ import annotations

import zipfile

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import CRS

from tests.helpers.io import (X0, Y0, STEP, assert_households_at, grid_units, households_csv, inside_points,
                                 kinds, metric_xy, of_kind, one, points_frame)
from gridplan.geo.coords import from_wgs84, geometries_from_wgs84
from gridplan.geo.crs import choose_metric_crs
from gridplan.geo.io import load_dataset, read_table, validate
from gridplan.geo.model import FACILITY_COLUMNS, HOUSEHOLD_COLUMNS, ROSTER_COLUMNS, UNIT_COLUMNS
from gridplan.geo.problems import DataError


@pytest.fixture
def units_geojson(tmp_path):
    p = tmp_path / "boundaries.geojson"
    grid_units().to_file(p)
    return p


# ----------------------------------------------------------------------------- readers
def test_geojson_boundaries_and_csv_households(tmp_path, units_geojson):
    lon, lat, unit = inside_points(50)
    h = households_csv(tmp_path / "hh.csv", lon, lat, ids=[f"{i:05d}" for i in range(50)])
    ds = load_dataset(units_geojson, h)
    assert ds.crs == CRS.from_epsg(4546) == choose_metric_crs((X0, Y0, X0 + 0.02, Y0 + 0.02))
    assert list(ds.units.columns[:-1]) == UNIT_COLUMNS and ds.units.crs == ds.crs
    assert list(ds.households.columns[:-1]) == HOUSEHOLD_COLUMNS and ds.households.crs == ds.crs
    assert ds.units["unit_code"].tolist() == grid_units()["village_code"].tolist()
    assert ds.households["hh_id"].tolist()[:3] == ["00000", "00001", "00002"]  # leading zeros survive
    assert ds.households["src_row"].tolist() == list(range(1, 51))
    assert_households_at(ds, lon, lat, unit)
    assert ds.problems == [] and ds.id_field == "id"
    assert ds.sources == {"boundaries": "boundaries.geojson", "households": "hh.csv"}
    # unit area is preserved by the projection (a 0.01° box at 19.5°N is ~1.05 km x 1.11 km)
    assert ds.units.area.iloc[0] == pytest.approx(1049.6 * 1106.6, rel=0.01)


def test_derived_township_and_county_codes(tmp_path, units_geojson):
    lon, lat, _ = inside_points(5)
    ds = load_dataset(units_geojson, households_csv(tmp_path / "h.csv", lon, lat))
    assert ds.units["county_code"].tolist() == ["460106"] * 4
    assert ds.units["township_code"].tolist() == ["460106100"] * 4
    assert ds.units["village_name"].tolist()[0] == "村200"
    assert ds.units["kind"].isna().all() and ds.units["target_households"].isna().all()


def test_given_township_code_wins_and_kind_target_parsed(tmp_path):
    u = grid_units()
    u["township_code"] = ["111111111", None, "222222222", "222222222"]
    u["kind"] = ["urban", "RURAL", "城镇", None]
    u["target_households"] = [250, None, 400, 300]
    lon, lat, _ = inside_points(5)
    ds = load_dataset(u, points_frame(lon, lat))
    assert ds.units["township_code"].tolist() == ["111111111", "460106100", "222222222", "222222222"]
    assert ds.units["kind"].tolist() == ["urban", "rural", "urban", None]
    np.testing.assert_array_equal(ds.units["target_households"].to_numpy(), [250, np.nan, 400, 300])


def test_gpkg_numeric_codes_come_back_as_exact_strings(tmp_path):
    u = grid_units()
    u["village_code"] = u["village_code"].astype(np.int64)
    u.to_file(tmp_path / "b.gpkg")
    lon, lat, unit = inside_points(20, seed=1)
    points_frame(lon, lat, id=np.arange(100, 120)).to_file(tmp_path / "h.gpkg")
    ds = load_dataset(tmp_path / "b.gpkg", tmp_path / "h.gpkg")
    assert ds.units["unit_code"].tolist() == grid_units()["village_code"].tolist()
    assert ds.households["hh_id"].tolist() == [str(i) for i in range(100, 120)]
    assert_households_at(ds, lon, lat, unit)


def test_float_codes_from_memory_keep_all_twelve_digits():
    u = grid_units()
    u["village_code"] = u["village_code"].astype(float)
    lon, lat, unit = inside_points(8)
    ds = load_dataset(u, points_frame(lon, lat))
    assert ds.units["unit_code"].tolist() == grid_units()["village_code"].tolist()


@pytest.mark.parametrize("zipped", [False, True])
def test_shapefile_and_zipped_shapefile(tmp_path, zipped):
    u = grid_units()
    u["village_code"] = u["village_code"].astype(np.int64)
    u["target_households"] = 200.0
    with pytest.warns((UserWarning, RuntimeWarning)):  # the Shapefile driver truncates long column names
        u.to_file(tmp_path / "b.shp")
    src = tmp_path / "b.shp"
    if zipped:
        src = tmp_path / "b.zip"
        with zipfile.ZipFile(src, "w") as z:
            for ext in ("shp", "shx", "dbf", "prj", "cpg"):
                if (tmp_path / f"b.{ext}").exists():
                    z.write(tmp_path / f"b.{ext}", f"b.{ext}")
    lon, lat, unit = inside_points(10)
    ds = load_dataset(src, households_csv(tmp_path / "h.csv", lon, lat))
    # 'village_code' was truncated to 'village_co' and 'target_households' to 'target_hou'
    assert ds.units["unit_code"].tolist() == grid_units()["village_code"].tolist()
    assert ds.units["target_households"].tolist() == [200.0] * 4
    assert_households_at(ds, lon, lat, unit)
    assert ds.sources["boundaries"] == src.name



def test_geoparquet_and_flatgeobuf(tmp_path):
    grid_units().to_parquet(tmp_path / "b.parquet")
    lon, lat, unit = inside_points(12, seed=2)
    points_frame(lon, lat, id=[f"h{i}" for i in range(12)]).to_file(tmp_path / "h.fgb", driver="FlatGeobuf",
                                                                   SPATIAL_INDEX="NO")
    ds = load_dataset(tmp_path / "b.parquet", tmp_path / "h.fgb")
    assert ds.households["hh_id"].tolist() == [f"h{i}" for i in range(12)]
    assert_households_at(ds, lon, lat, unit)
    # with a spatial index FlatGeobuf stores features in index order: ids still follow their points
    points_frame(lon, lat, id=[f"h{i}" for i in range(12)]).to_file(tmp_path / "hi.fgb", driver="FlatGeobuf")
    hh = load_dataset(tmp_path / "b.parquet", tmp_path / "hi.fgb").households
    order = hh["hh_id"].str.slice(1).astype(int).to_numpy()
    np.testing.assert_allclose(hh["lon"], lon[order], atol=1e-9)
    # a plain (non-geo) parquet table with lon/lat columns is read as a table
    pd.DataFrame({"lon": lon, "lat": lat}).to_parquet(tmp_path / "h.parquet")
    ds = load_dataset(tmp_path / "b.parquet", tmp_path / "h.parquet")
    assert_households_at(ds, lon, lat, unit)


@pytest.mark.parametrize("names,kwargs", [
    (("x", "y"), {}),
    (("lng", "lat"), {}),
    (("Longitude", "Latitude"), {}),
    (("经度", "纬度"), {}),
    (("E", "N"), {"lon_field": "E", "lat_field": "N"}),
])
def test_csv_coordinate_column_names(tmp_path, units_geojson, names, kwargs):
    lon, lat, unit = inside_points(15, seed=3)
    h = households_csv(tmp_path / "h.csv", lon, lat, names=names)
    ds = load_dataset(units_geojson, h, **kwargs)
    assert_households_at(ds, lon, lat, unit)
    assert ds.households["hh_id"].tolist() == [str(i) for i in range(1, 16)]  # 1-based row numbers


@pytest.mark.parametrize("sep,encoding,suffix", [("\t", "utf-8", ".tsv"), (";", "utf-8-sig", ".csv"),
                                                 (",", "gbk", ".csv")])
def test_csv_dialects_and_encodings(tmp_path, units_geojson, sep, encoding, suffix):
    lon, lat, unit = inside_points(9, seed=4)
    h = households_csv(tmp_path / f"h{suffix}", lon, lat, ids=[f"户{i}" for i in range(9)], sep=sep,
                       encoding=encoding, names=("经度", "纬度"))
    ds = load_dataset(units_geojson, h)
    assert ds.households["hh_id"].tolist()[:2] == ["户0", "户1"]
    assert_households_at(ds, lon, lat, unit)


def test_in_memory_frames(units_geojson):
    lon, lat, unit = inside_points(7, seed=5)
    ds = load_dataset(grid_units(), pd.DataFrame({"lon": lon, "lat": lat, "households": 3, "population": 7.5}))
    assert_households_at(ds, lon, lat, unit)
    assert ds.sources == {"boundaries": "boundaries", "households": "households"}
    assert ds.households["households"].tolist() == [3] * 7
    assert ds.households["population"].tolist() == [7.5] * 7
    assert ds.id_field is None


def test_wkt_and_shapely_geometry_columns(tmp_path):
    lon, lat, unit = inside_points(6, seed=11)
    pd.DataFrame({"id": range(6), "geometry": shapely.to_wkt(shapely.points(lon, lat))}).to_csv(
        tmp_path / "h.csv", index=False)
    u = grid_units()
    plain = pd.DataFrame({"village_code": u["village_code"], "geometry": list(u.geometry)})  # not a GeoDataFrame
    ds = load_dataset(plain, tmp_path / "h.csv")
    assert ds.problems == []
    assert ds.households["unit_idx"].tolist() == unit.tolist()
    np.testing.assert_allclose(ds.households["lon"], lon)


def test_defaults_population_nan_weight_zero(tmp_path, units_geojson):
    lon, lat, _ = inside_points(4)
    ds = load_dataset(units_geojson, households_csv(tmp_path / "h.csv", lon, lat))
    hh = ds.households
    assert hh["households"].tolist() == [1, 1, 1, 1]
    assert hh["population"].isna().all()
    assert hh["weight"].tolist() == [0.0] * 4


def test_id_field_option(tmp_path, units_geojson):
    lon, lat, _ = inside_points(4)
    h = households_csv(tmp_path / "h.csv", lon, lat, ids=["a", "b", "c", "d"], hh_code=["007", "008", "009", "010"])
    ds = load_dataset(units_geojson, h, id_field="hh_code")
    assert ds.households["hh_id"].tolist() == ["007", "008", "009", "010"]
    assert ds.id_field == "hh_code"


def test_multilayer_gpkg_picks_the_polygon_layer(tmp_path):
    p = tmp_path / "both.gpkg"
    lon, lat, unit = inside_points(6)
    points_frame(lon, lat).to_file(p, layer="pts")
    grid_units().to_file(p, layer="villages")
    ds = load_dataset(p, p)
    assert len(ds.units) == 4 and len(ds.households) == 6
    chosen = of_kind(ds.problems, "layer_chosen")
    assert {c.source for c in chosen} == {"both.gpkg"} and not any(c.fatal for c in chosen)
    assert "'villages'" in chosen[0].message and "'pts'" in chosen[1].message


def test_read_table_returns_the_frame_as_read(tmp_path):
    h = households_csv(tmp_path / "h.csv", [110.001], [19.501], ids=["0042"], households=[2])
    frame, problems = read_table(h, role="households")
    assert problems == []
    assert list(frame.columns) == ["id", "lon", "lat", "households"]
    assert frame["id"].iloc[0] == "0042" and frame["lon"].iloc[0] == 110.001
    assert frame.attrs["source"] == "h.csv" and frame.attrs["tabular"] is True
    frame, problems = read_table(tmp_path / "nope.geojson", role="boundaries")
    assert frame is None and problems[0].fatal and "not found" in problems[0].message
    frame, problems = read_table(h, role="points")  # any role word works (the CLI's lookup uses "points")
    assert problems == [] and len(frame) == 1


# ----------------------------------------------------------------------------- coordinate systems
@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_offset_coordinates_land_at_the_right_wgs84_place(tmp_path, system):
    lon, lat, unit = inside_points(30, seed=6)
    olon, olat = from_wgs84(lon, lat, system)
    assert np.abs(olon - lon).max() > 1e-3  # the offset is hundreds of metres: it matters
    u = grid_units()
    u = u.set_geometry(gpd.GeoSeries(geometries_from_wgs84(u.geometry.array, system), crs=4326))
    u.to_file(tmp_path / "b.geojson")
    h = households_csv(tmp_path / "h.csv", olon, olat)
    ds = load_dataset(tmp_path / "b.geojson", h, coords=system)
    assert_households_at(ds, lon, lat, unit, tol_deg=1e-8)
    # polygons are shifted back too: unit 0's corner is at the WGS 84 corner
    mx, my = metric_xy([X0], [Y0], ds.crs)
    corners = np.asarray(ds.units.geometry.iloc[0].exterior.coords)
    assert np.hypot(corners[:, 0] - mx[0], corners[:, 1] - my[0]).min() < 0.01
    # read as wgs84 they land hundreds of metres off
    ds2 = load_dataset(tmp_path / "b.geojson", h, coords="wgs84")
    assert np.abs(ds2.households["lon"].to_numpy() - lon).max() > 1e-3


def test_cgcs2000_geographic_file(tmp_path):
    u = grid_units().set_crs(4490, allow_override=True)
    u.to_file(tmp_path / "b.gpkg")
    lon, lat, unit = inside_points(10)
    points_frame(lon, lat, crs=4490).to_file(tmp_path / "h.gpkg")
    ds = load_dataset(tmp_path / "b.gpkg", tmp_path / "h.gpkg", coords="cgcs2000")
    assert_households_at(ds, lon, lat, unit, tol_deg=1e-6)


@pytest.mark.parametrize("epsg", [4546, 32649])
def test_projected_files_are_transformed_and_their_crs_wins(tmp_path, epsg):
    lon, lat, unit = inside_points(25, seed=7)
    grid_units().to_crs(epsg).to_file(tmp_path / "b.gpkg")
    px, py = metric_xy(lon, lat, CRS.from_epsg(epsg))
    points_frame(px, py, crs=epsg, id=np.arange(25)).to_file(tmp_path / "h.gpkg")
    # coords=gcj02 applies to geographic lon/lat only: a projected file's CRS wins
    ds = load_dataset(tmp_path / "b.gpkg", tmp_path / "h.gpkg", coords="gcj02")
    assert ds.crs == CRS.from_epsg(4546)
    assert_households_at(ds, lon, lat, unit, tol_deg=1e-8)


def test_projected_csv_with_crs_override(tmp_path, units_geojson):
    lon, lat, unit = inside_points(10, seed=8)
    px, py = metric_xy(lon, lat, CRS.from_epsg(4546))
    h = households_csv(tmp_path / "h.csv", px, py, names=("x", "y"))
    with pytest.raises(DataError) as err:
        load_dataset(units_geojson, h)
    assert one(err.value.problems, "no_crs_projected").fatal
    ds = load_dataset(units_geojson, h, crs="EPSG:4546")
    assert_households_at(ds, lon, lat, unit, tol_deg=1e-8)


def test_unknown_coords_or_crs_is_a_usage_error(tmp_path, units_geojson):
    with pytest.raises(ValueError):
        load_dataset(units_geojson, units_geojson, coords="mars")
    with pytest.raises(ValueError):
        load_dataset(units_geojson, units_geojson, crs="EPSG:999999")


# ----------------------------------------------------------------------------- facilities, roster, network
def test_facilities_and_roster(tmp_path, units_geojson):
    lon, lat, _ = inside_points(6, seed=9)
    hh = households_csv(tmp_path / "h.csv", lon, lat)
    fac = pd.DataFrame({"id": ["S1", "S2", "S3", "S4", "S5", "S6"], "name": list("abcdef"),
                        "existing": ["true", "0", "是", "no", "YES", ""], "lon": lon, "lat": lat})
    fac.to_csv(tmp_path / "f.csv", index=False)
    ros = pd.DataFrame({"worker_id": ["W01", "W02", "W03"], "name": ["张三", "李四", "王五"],
                        "role": ["full", "part", "兼职"], "lon": lon[:3], "lat": lat[:3]})
    ros.to_csv(tmp_path / "r.csv", index=False)
    ds = load_dataset(units_geojson, hh, tmp_path / "f.csv", tmp_path / "r.csv")
    assert list(ds.facilities.columns[:-1]) == FACILITY_COLUMNS
    assert ds.facilities["existing"].tolist() == [True, False, True, False, True, False]
    assert ds.facilities["facility_id"].tolist() == ["S1", "S2", "S3", "S4", "S5", "S6"]
    assert list(ds.roster.columns[:-1]) == ROSTER_COLUMNS
    assert ds.roster["role"].tolist() == ["full", "part", "part"]
    assert ds.roster["worker_id"].tolist() == ["W01", "W02", "W03"]
    mx, my = metric_xy(lon[:3], lat[:3], ds.crs)
    np.testing.assert_allclose(ds.roster.geometry.x, mx, atol=1e-3)
    assert ds.facilities.crs == ds.roster.crs == ds.crs
    assert ds.problems == []


def test_roster_without_home_locations_is_kept(tmp_path, units_geojson):
    lon, lat, _ = inside_points(3)
    pd.DataFrame({"worker_id": [1, 2], "name": ["a", "b"], "role": ["full", "part"]}).to_csv(tmp_path / "r.csv",
                                                                                                index=False)
    ds = load_dataset(units_geojson, households_csv(tmp_path / "h.csv", lon, lat), roster=tmp_path / "r.csv")
    assert ds.roster["worker_id"].tolist() == ["1", "2"]
    assert ds.roster.geometry.isna().all()
    assert not one(ds.problems, "missing_location").fatal


def test_network_file_is_checked(tmp_path, units_geojson):
    lon, lat, _ = inside_points(3)
    h = households_csv(tmp_path / "h.csv", lon, lat)
    problems = validate(units_geojson, h, network=tmp_path / "roads.osm.pbf")
    p = one(problems, "unreadable")
    assert p.fatal and p.source == "roads.osm.pbf"
    # garbage named .osm.pbf is refused at once (not minutes later, when the job reads it)
    (tmp_path / "roads.osm.pbf").write_bytes(b"x" * 100)
    p = one(validate(units_geojson, h, network=tmp_path / "roads.osm.pbf"), "network_format")
    assert p.fatal and p.source == "roads.osm.pbf" and "not an OpenStreetMap PBF" in p.message
    # a real OSM PBF (its first blob header is "OSMHeader") passes, whatever its name
    import shutil

    import pyrosm

    shutil.copyfile(pyrosm.get_data("test_pbf"), tmp_path / "roads.bin")
    ds = load_dataset(units_geojson, h, network=tmp_path / "roads.bin")
    assert ds.network == str(tmp_path / "roads.bin") and not of_kind(ds.problems, "network_format")


# ----------------------------------------------------------------------------- strictness
def test_strict_raises_with_every_problem_and_lenient_returns_them(tmp_path):
    b = tmp_path / "b.geojson"
    u = grid_units()
    u.loc[1, "village_code"] = u.loc[0, "village_code"]
    u.to_file(b)
    h = households_csv(tmp_path / "h.csv", [110.001, 110.002, np.nan], [19.501, 19.502, 19.5], ids=["a", "a", "c"])
    with pytest.raises(DataError) as err:
        load_dataset(b, h)
    assert {"duplicate_code", "duplicate_id", "missing_coordinates"} <= kinds(err.value.problems)
    assert "b.geojson" in str(err.value) and "h.csv" in str(err.value)
    ds = load_dataset(b, h, strict=False)
    assert {p.kind for p in ds.fatal} == {"duplicate_code", "duplicate_id"}
    assert validate(b, h) == ds.problems


# ----------------------------------------------------------------------------- property: unit_idx
@st.composite
def rectangles_and_points(draw):
    nx = draw(st.integers(1, 4))
    ny = draw(st.integers(1, 4))
    xs = np.cumsum([0.0] + draw(st.lists(st.floats(0.001, 0.05), min_size=nx, max_size=nx)))
    ys = np.cumsum([0.0] + draw(st.lists(st.floats(0.001, 0.05), min_size=ny, max_size=ny)))
    cells = [(i, j) for i in range(nx) for j in range(ny)]
    picks = draw(st.lists(st.tuples(st.integers(0, len(cells) - 1), st.floats(0.02, 0.98), st.floats(0.02, 0.98)),
                          min_size=1, max_size=40))
    return xs, ys, cells, picks


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rectangles_and_points(), st.sampled_from([(110.0, 19.5), (87.5, 43.8), (-73.9, 40.7)]))
def test_points_inside_random_rectangles_get_their_unit(data, origin):
    xs, ys, cells, picks = data
    x0, y0 = origin
    boxes = [shapely.box(x0 + xs[i], y0 + ys[j], x0 + xs[i + 1], y0 + ys[j + 1]) for i, j in cells]
    codes = [f"{900 - k:03d}" for k in range(len(cells))]  # codes descend: row order != code order
    units = gpd.GeoDataFrame({"village_code": codes}, geometry=boxes, crs=4326)
    k = np.array([p[0] for p in picks])
    ci = np.array([cells[c][0] for c in k])
    cj = np.array([cells[c][1] for c in k])
    lon = x0 + xs[ci] + np.array([p[1] for p in picks]) * (xs[ci + 1] - xs[ci])
    lat = y0 + ys[cj] + np.array([p[2] for p in picks]) * (ys[cj + 1] - ys[cj])
    ds = load_dataset(units, pd.DataFrame({"lon": lon, "lat": lat}))
    assert ds.households["unit_idx"].tolist() == k.tolist()
    assert of_kind(ds.problems, "outside_units") == []


def test_point_on_a_shared_border_goes_to_the_lowest_code():
    u = grid_units(nx=2, ny=1)
    u["village_code"] = ["460106100999", "460106100001"]  # the east unit has the lower code
    # a shared corner stays exactly on both units through the projection
    ds = load_dataset(u, pd.DataFrame({"lon": [X0 + STEP], "lat": [Y0 + STEP]}))
    on_border = ds.households["unit_idx"].iloc[0]
    assert ds.units["unit_code"].iloc[on_border] == "460106100001"


def test_locate_breaks_border_ties_by_code_then_row():
    from gridplan.geo.validate import locate

    boxes = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(0, 1, 2, 2)]
    pts = shapely.points([1, 0.5, 1.5, 1, 5], [0.5, 0.5, 1, 1, 5])
    assert locate(pts, boxes, ["c", "b", "a"]).tolist() == [1, 0, 2, 2, -1]
    assert locate(pts, boxes).tolist() == [0, 0, 1, 0, -1]
