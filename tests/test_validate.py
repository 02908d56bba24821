"""Every validation case: each broken input yields the right Problem kind, row/feature and fatality."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from tests.helpers.io import X0, Y0, STEP, grid_units, households_csv, inside_points, kinds, of_kind, one
from gridplan.geo.io import load_dataset, validate
from gridplan.geo.problems import DataError
from gridplan.geo.validate import Rows, check_counts, polygonal_part, repair_polygons, resolve_overlaps


@pytest.fixture
def units_path(tmp_path):
    p = tmp_path / "b.geojson"
    grid_units().to_file(p)
    return p


def hh(tmp_path, lon, lat, name="h.csv", **kw):
    return households_csv(tmp_path / name, lon, lat, **kw)


# ----------------------------------------------------------------------------- coordinates
def test_missing_and_non_numeric_coordinates_are_dropped(tmp_path, units_path):
    lon = ["110.001", "", "abc", "110.004", "110.005"]
    lat = ["19.501", "19.502", "19.503", "NaN", "19.505"]
    ds = load_dataset(units_path, hh(tmp_path, lon, lat), strict=False)
    p = one(ds.problems, "missing_coordinates")
    assert not p.fatal and p.count == 3 and p.source == "h.csv"
    assert p.row == "rows 2, 3, 4" and "(1 non-numeric)" in p.message and "dropped" in p.message
    assert ds.households["src_row"].tolist() == [1, 5]
    assert ds.households["hh_id"].tolist() == ["1", "5"]
    assert not ds.fatal


def test_no_valid_coordinates_left_is_fatal(tmp_path, units_path):
    with pytest.raises(DataError) as err:
        load_dataset(units_path, hh(tmp_path, [np.nan, np.nan], [1.0, np.nan]))
    assert one(err.value.problems, "no_valid_rows").fatal
    assert not one(err.value.problems, "missing_coordinates").fatal


def test_latitude_beyond_90_is_swapped_and_says_it_lands_inside(tmp_path, units_path):
    lon, lat, unit = inside_points(6, seed=1)
    slon, slat = lon.copy(), lat.copy()
    slon[[1, 4]], slat[[1, 4]] = lat[[1, 4]], lon[[1, 4]]
    ds = load_dataset(units_path, hh(tmp_path, slon, slat))
    p = one(ds.problems, "swapped_lonlat")
    assert not p.fatal and p.row == "rows 2, 5" and p.count == 2
    assert "swapping puts all of them inside the boundaries" in p.message
    np.testing.assert_allclose(ds.households["lon"], lon)
    assert ds.households["unit_idx"].tolist() == unit.tolist()


def test_swap_detected_because_only_the_swapped_point_is_inside(tmp_path):
    # Ürümqi: lon 87.6, lat 43.8 — both within ±90, so only the boundaries can tell
    u = grid_units(x0=87.6, y0=43.8, prefix="650102001")
    u.to_file(tmp_path / "b.gpkg")
    lon, lat, unit = inside_points(5, seed=2, x0=87.6, y0=43.8)
    slon, slat = lon.copy(), lat.copy()
    slon[2], slat[2] = lat[2], lon[2]
    ds = load_dataset(tmp_path / "b.gpkg", hh(tmp_path, slon, slat))
    p = one(ds.problems, "swapped_lonlat")
    assert p.row == "row 3" and "swapping puts it inside the boundaries" in p.message
    assert ds.households["unit_idx"].tolist() == unit.tolist()
    assert of_kind(ds.problems, "outside_units") == []


def test_coordinates_beyond_range_are_dropped(tmp_path, units_path):
    ds = load_dataset(units_path, hh(tmp_path, [110.001, 200.0, 110.002], [19.501, 95.0, 19.502]), strict=False)
    p = one(ds.problems, "invalid_coordinates")
    assert p.row == "row 2" and not p.fatal
    assert ds.households["src_row"].tolist() == [1, 3]


def test_points_outside_every_unit_are_kept_with_a_warning(tmp_path, units_path):
    lon, lat, unit = inside_points(5, seed=3)
    lon[[0, 3]] = 111.5
    ds = load_dataset(units_path, hh(tmp_path, lon, lat))
    p = one(ds.problems, "outside_units")
    assert not p.fatal and p.count == 2 and p.row == "rows 1, 4" and "2 rows lie outside every unit" in p.message
    assert ds.households["unit_idx"].tolist() == [-1, unit[1], unit[2], -1, unit[4]]
    assert "check --coords" not in p.message  # only when most households are outside


def test_most_points_outside_hints_at_coords(tmp_path, units_path):
    lon, lat, _ = inside_points(5, seed=3)
    p = one(validate(units_path, hh(tmp_path, lon + 0.5, lat)), "outside_units")
    assert p.count == 5 and "check --coords" in p.message


def test_metres_without_crs_are_fatal_with_the_contract_message(tmp_path, units_path):
    h = hh(tmp_path, [395000.0, 396000.0], [2157000.0, 2158000.0], names=("x", "y"))
    problems = validate(units_path, h)
    p = one(problems, "no_crs_projected")
    assert p.fatal and p.source == "h.csv" and p.row is None
    assert "coordinates look projected (metres) but the file has no CRS; add a .prj / give --crs" in p.message
    # same for boundaries without a CRS
    b = grid_units().to_crs(4546).set_crs(None, allow_override=True)
    found = of_kind(validate(b, h), "no_crs_projected")
    assert {q.source for q in found} == {"boundaries", "h.csv"} and all(q.fatal for q in found)
    # with --crs both are read right
    ds = load_dataset(b, h, crs="EPSG:4546")
    assert len(ds.units) == 4 and ds.households["lon"].iloc[0] == pytest.approx(110.0, abs=0.06)


def test_metres_in_a_file_that_claims_lonlat_are_fatal(tmp_path, units_path):
    wrong = grid_units().to_crs(4546).set_crs(4326, allow_override=True)
    wrong.to_file(tmp_path / "w.gpkg")
    p = one(validate(tmp_path / "w.gpkg", hh(tmp_path, [110.001], [19.501])), "crs_mismatch")
    assert p.fatal and p.source == "w.gpkg" and "WGS 84" in p.message and "metres" in p.message


# ----------------------------------------------------------------------------- ids and counts
def test_duplicate_household_ids_are_fatal_and_named(tmp_path, units_path):
    lon, lat, _ = inside_points(6)
    h = hh(tmp_path, lon, lat, ids=["a", "b", "a", "c", "b", "a"])
    problems = validate(units_path, h)
    p = one(problems, "duplicate_id")
    assert p.fatal and p.count == 5 and p.row == "rows 1, 2, 3, 5, 6"
    assert "a (rows 1, 3, 6)" in p.message and "b (rows 2, 5)" in p.message
    with pytest.raises(DataError):
        load_dataset(units_path, h)


def test_duplicate_ids_in_a_vector_file_name_features(tmp_path, units_path):
    lon, lat, _ = inside_points(3)
    gpd.GeoDataFrame({"id": [7, 8, 7]}, geometry=gpd.points_from_xy(lon, lat), crs=4326).to_file(tmp_path / "h.gpkg")
    p = one(validate(units_path, tmp_path / "h.gpkg"), "duplicate_id")
    assert p.row == "features 0 (id=7), 2 (id=7)" and p.source == "h.gpkg"


def test_empty_household_id_is_fatal(tmp_path, units_path):
    lon, lat, _ = inside_points(3)
    p = one(validate(units_path, hh(tmp_path, lon, lat, ids=["a", "", "c"])), "missing_id")
    assert p.fatal and p.row == "row 2"


def test_missing_id_field_column_is_fatal(tmp_path, units_path):
    lon, lat, _ = inside_points(3)
    p = one(validate(units_path, hh(tmp_path, lon, lat), id_field="hh_no"), "missing_column")
    assert p.fatal and "'hh_no'" in p.message and "lon, lat" in p.message


def test_duplicate_unit_codes_are_fatal(tmp_path):
    u = grid_units()
    u.loc[3, "village_code"] = u.loc[1, "village_code"]
    u.to_file(tmp_path / "b.geojson")
    lon, lat, _ = inside_points(3)
    p = one(validate(tmp_path / "b.geojson", hh(tmp_path, lon, lat)), "duplicate_code")
    assert p.fatal and p.row == "features 1 (id=460106100201), 3 (id=460106100201)"
    assert "460106100201" in p.message


def test_missing_unit_code_value_is_fatal(tmp_path):
    u = grid_units()
    u.loc[2, "village_code"] = None
    lon, lat, _ = inside_points(3)
    p = one(validate(u, pd.DataFrame({"lon": lon, "lat": lat})), "missing_code")
    assert p.fatal and p.row == "feature 2"


@pytest.mark.parametrize("value,kind,fatal", [
    ("-2", "bad_households", True),
    ("many", "bad_households", True),
    ("2.5", "bad_households", True),
    ("0", "zero_households", False),
    ("", "missing_households", False),
])
def test_household_counts(tmp_path, units_path, value, kind, fatal):
    lon, lat, _ = inside_points(4)
    counts = ["3", value, "1", "2"]
    ds = load_dataset(units_path, hh(tmp_path, lon, lat, households=counts), strict=False)
    p = one(ds.problems, kind)
    assert p.fatal is fatal and p.row == "row 2" and p.count == 1
    if kind == "zero_households":
        assert "dropped" in p.message and ds.households["src_row"].tolist() == [1, 3, 4]
    if kind == "missing_households":
        assert "taken as 1" in p.message and ds.households["households"].tolist() == [3, 1, 1, 2]


def test_check_counts_on_arrays():
    rows = Rows.simple("x.csv", 5)
    counts, keep, problems = check_counts(pd.Series([1, 0, -1, 4, 2.0]), rows, np.ones(5, bool), "households")
    assert keep.tolist() == [True, False, False, True, True]
    assert counts[[0, 3, 4]].tolist() == [1, 4, 2]
    assert {p.kind: p.fatal for p in problems} == {"zero_households": False, "bad_households": True}


def test_bad_population_and_weight_are_warnings(tmp_path, units_path):
    lon, lat, _ = inside_points(3)
    ds = load_dataset(units_path, hh(tmp_path, lon, lat, population=["3", "-1", "x"], weight=["1", "", "-2"]))
    assert one(ds.problems, "bad_population").row == "rows 2, 3"
    assert one(ds.problems, "bad_weight").row == "row 3"
    np.testing.assert_array_equal(ds.households["population"], [3, np.nan, np.nan])
    assert ds.households["weight"].tolist() == [1.0, 0.0, 0.0]
    assert not ds.fatal


# ----------------------------------------------------------------------------- polygons
def test_bow_tie_polygon_is_repaired_with_the_reason(tmp_path):
    u = grid_units()
    x, y = X0 + STEP, Y0 + STEP  # unit 3's lower-left corner
    u.loc[3, "geometry"] = shapely.Polygon([(x, y), (x + STEP, y + STEP), (x + STEP, y), (x, y + STEP), (x, y)])
    u.to_file(tmp_path / "b.geojson")
    lon, lat, _ = inside_points(3)
    ds = load_dataset(tmp_path / "b.geojson", hh(tmp_path, lon, lat))
    p = one(ds.problems, "invalid_polygon")
    assert not p.fatal and p.row == "feature 3 (id=460106100203)"
    assert "Self-intersection" in p.message and "make_valid" in p.message
    g = ds.units.geometry.iloc[3]
    assert g.is_valid and g.geom_type in ("Polygon", "MultiPolygon")
    assert g.area == pytest.approx(ds.units.geometry.iloc[0].area / 2, rel=0.01)  # two triangles, half the box


def test_polygon_without_area_is_fatal():
    rows = Rows.simple("b.geojson", 2, tabular=False, ids=np.array(["A", "B"], dtype=object))
    line_like = shapely.Polygon([(0, 0), (1, 1), (2, 2), (0, 0)])
    geoms, ok, problems = repair_polygons(np.array([shapely.box(0, 0, 1, 1), line_like], dtype=object), rows)
    assert ok.tolist() == [True, False]
    assert one(problems, "empty_polygon").row == "feature 1 (id=B)"
    assert one(problems, "empty_polygon").fatal


def test_polygonal_part_keeps_only_polygons():
    coll = shapely.GeometryCollection([shapely.box(0, 0, 1, 1), shapely.LineString([(0, 0), (5, 5)]),
                                       shapely.MultiPolygon([shapely.box(2, 2, 3, 3)])])
    out = polygonal_part(np.array([coll, shapely.LineString([(0, 0), (1, 0)]), shapely.box(0, 0, 2, 2), None],
                                  dtype=object))
    assert out[0].geom_type == "MultiPolygon" and out[0].area == 2
    assert out[1] is None and out[2].area == 4 and out[3] is None


def test_small_overlap_goes_to_the_lower_code(tmp_path):
    u = grid_units(nx=2, ny=1)
    x1 = X0 + STEP
    # the east unit (higher code) reaches 0.0002° (~21 m) into the west unit: ~2% of it
    u.loc[1, "geometry"] = shapely.box(x1 - 0.0002, Y0, x1 + STEP, Y0 + STEP)
    u.to_file(tmp_path / "b.geojson")
    ds = load_dataset(tmp_path / "b.geojson", hh(tmp_path, [X0 + 0.005], [Y0 + 0.005]))
    p = one(ds.problems, "overlapping_units")
    assert not p.fatal and p.count == 1 and p.row == "features 0 (id=460106100200), 1 (id=460106100201)"
    area = 0.0002 / STEP * ds.units.geometry.iloc[0].area
    assert f"{area:,.0f}"[:3] in p.message and "m²" in p.message
    west, east = ds.units.geometry.iloc[0], ds.units.geometry.iloc[1]
    assert west.intersection(east).area < 1e-6
    assert east.area == pytest.approx(west.area, rel=1e-3)  # the overlap was cut from the higher code


def test_large_overlap_is_fatal(tmp_path):
    u = grid_units(nx=2, ny=1)
    u.loc[1, "geometry"] = shapely.box(X0 + STEP * 0.5, Y0, X0 + 2 * STEP, Y0 + STEP)  # half the west unit
    p = one(validate(u, pd.DataFrame({"lon": [X0 + 0.001], "lat": [Y0 + 0.001]})), "overlap_too_large")
    assert p.fatal and "50.0% of the smaller" in p.message


def test_duplicated_unit_polygon_is_a_large_overlap():
    rows = Rows.simple("b", 2, tabular=False)
    g = np.array([shapely.box(0, 0, 10, 10), shapely.box(0, 0, 10, 10)], dtype=object)
    _, problems = resolve_overlaps(g, ["a", "b"], rows)
    assert one(problems, "overlap_too_large").fatal


# ----------------------------------------------------------------------------- files and geometry types
@pytest.mark.parametrize("content,name", [(b"", "h.csv"), (b"lon,lat\n", "h.csv"),
                                          (b'{"type":"FeatureCollection","features":[]}', "h.geojson"),
                                          (b"", "h.geojson")])
def test_empty_households_file_is_fatal(tmp_path, units_path, content, name):
    (tmp_path / name).write_bytes(content)
    p = one(validate(units_path, tmp_path / name), "empty")
    assert p.fatal and p.source == name


def test_empty_boundaries_file_is_fatal(tmp_path):
    grid_units().iloc[:0].to_file(tmp_path / "b.gpkg")
    lon, lat, _ = inside_points(2)
    p = one(validate(tmp_path / "b.gpkg", hh(tmp_path, lon, lat)), "empty")
    assert p.fatal and p.source == "b.gpkg"


def test_boundaries_without_any_usable_polygon_are_fatal():
    u = gpd.GeoDataFrame({"village_code": ["1", "2"]}, geometry=[shapely.Polygon(), None], crs=4326)
    problems = validate(u, pd.DataFrame({"lon": [110.0], "lat": [19.5]}))
    assert one(problems, "missing_geometry").row == "features 0 (id=1), 1 (id=2)"
    assert one(problems, "no_valid_rows").fatal


def test_points_as_boundaries_are_fatal(tmp_path):
    u = grid_units()
    u["geometry"] = shapely.centroid(u.geometry.array)
    u.to_file(tmp_path / "b.geojson")
    lon, lat, _ = inside_points(2)
    p = one(validate(tmp_path / "b.geojson", hh(tmp_path, lon, lat)), "wrong_geometry")
    assert p.fatal and "Point" in p.message and "must be polygons" in p.message and p.count == 4


def test_one_line_among_boundaries_is_fatal_and_named(tmp_path):
    u = grid_units()
    u.loc[2, "geometry"] = shapely.LineString([(X0, Y0), (X0 + 0.01, Y0 + 0.01)])
    lon, lat, _ = inside_points(2)
    p = one(validate(u, pd.DataFrame({"lon": lon, "lat": lat})), "wrong_geometry")
    assert p.row == "feature 2 (id=460106100202)" and "LineString" in p.message


def test_polygons_as_households_are_fatal(tmp_path, units_path):
    grid_units().to_file(tmp_path / "h.geojson")
    p = one(validate(units_path, tmp_path / "h.geojson"), "wrong_geometry")
    assert p.fatal and p.source == "h.geojson" and "households must be points" in p.message and p.count == 4


def test_csv_as_boundaries_is_fatal(tmp_path):
    pd.DataFrame({"village_code": ["1"], "lon": [110], "lat": [19]}).to_csv(tmp_path / "b.csv", index=False)
    p = one(validate(tmp_path / "b.csv", hh(tmp_path, [110.0], [19.0])), "wrong_geometry")
    assert p.fatal and "must be polygons" in p.message


def test_boundaries_from_a_wkt_csv_are_read(tmp_path):
    u = grid_units()
    pd.DataFrame({"village_code": u["village_code"], "wkt": u.geometry.to_wkt()}).to_csv(tmp_path / "b.csv",
                                                                                       index=False)
    lon, lat, unit = inside_points(4)
    ds = load_dataset(tmp_path / "b.csv", hh(tmp_path, lon, lat))
    assert ds.households["unit_idx"].tolist() == unit.tolist()


def test_missing_code_column_lists_the_columns(tmp_path):
    u = grid_units().rename(columns={"village_code": "CUN_DM"})
    u.to_file(tmp_path / "b.geojson")
    lon, lat, _ = inside_points(2)
    p = one(validate(tmp_path / "b.geojson", hh(tmp_path, lon, lat)), "missing_column")
    assert p.fatal and "'village_code'" in p.message and "CUN_DM, village_name" in p.message
    ds = load_dataset(tmp_path / "b.geojson", hh(tmp_path, lon, lat), code_field="cun_dm")
    assert ds.units["unit_code"].iloc[0] == "460106100200" and ds.code_field == "cun_dm"


def test_missing_lonlat_columns_are_fatal(tmp_path, units_path):
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(tmp_path / "h.csv", index=False)
    p = one(validate(units_path, tmp_path / "h.csv"), "missing_column")
    assert p.fatal and "available columns: a, b" in p.message


@pytest.mark.parametrize("name,content", [("h.geojson", b"{not json"), ("h.xyz", b"\x00\x01garbage"),
                                          ("h.gpkg", b"SQLite format 3\x00broken")])
def test_unreadable_files_are_fatal_with_the_readers_message(tmp_path, units_path, name, content):
    (tmp_path / name).write_bytes(content)
    p = one(validate(units_path, tmp_path / name), "unreadable")
    assert p.fatal and p.source == name and p.message.startswith(f"cannot read {name}: ")
    assert "Traceback" not in p.message


def test_missing_file_is_fatal(tmp_path, units_path):
    p = one(validate(units_path, tmp_path / "nope.csv"), "unreadable")
    assert p.fatal and "file not found" in p.message


def test_malformed_csv_rows_are_skipped_and_later_rows_keep_their_numbers(tmp_path, units_path):
    (tmp_path / "h.csv").write_text("id,lon,lat\na,110.001,19.501\nb,110.002\nc,110.003,19.503,extra\n"
                                    "d,110.004,19.504\n")
    ds = load_dataset(units_path, tmp_path / "h.csv")
    p = one(ds.problems, "malformed_rows")
    assert not p.fatal and p.row == "rows 2, 3"
    assert ds.households["hh_id"].tolist() == ["a", "d"]
    assert ds.households["src_row"].tolist() == [1, 4]


def test_bad_kind_and_target_are_warnings(tmp_path):
    u = grid_units()
    u["kind"] = ["urban", "town", None, "rural"]
    u["target_households"] = [300, -5, "lots", None]
    lon, lat, _ = inside_points(2)
    ds = load_dataset(u, pd.DataFrame({"lon": lon, "lat": lat}))
    assert one(ds.problems, "bad_kind").row == "feature 1 (id=460106100201)"
    assert one(ds.problems, "bad_target").row == "features 1 (id=460106100201), 2 (id=460106100202)"
    assert ds.units["kind"].tolist() == ["urban", None, None, "rural"]


def test_facility_and_roster_value_warnings(tmp_path, units_path):
    lon, lat, _ = inside_points(3)
    pd.DataFrame({"id": ["s1", "s2", "s3"], "existing": ["yes", "maybe", "否"], "lon": lon, "lat": lat}).to_csv(
        tmp_path / "f.csv", index=False)
    pd.DataFrame({"worker_id": ["w1", "w1"], "role": ["full", "boss"], "lon": lon[:2], "lat": lat[:2]}).to_csv(
        tmp_path / "r.csv", index=False)
    problems = validate(units_path, hh(tmp_path, lon, lat), tmp_path / "f.csv", tmp_path / "r.csv")
    p = one(problems, "bad_existing")
    assert p.source == "f.csv" and p.row == "row 2" and not p.fatal
    p = one(problems, "bad_role")
    assert p.source == "r.csv" and p.row == "row 2" and not p.fatal
    d = one(problems, "duplicate_id")
    assert d.source == "r.csv" and d.fatal


# ----------------------------------------------------------------------------- aggregation and reporting
def test_many_bad_rows_make_one_problem_per_kind(tmp_path, units_path):
    n = 20_000
    lon, lat, _ = inside_points(n, seed=9)
    lon = lon.astype(object)
    lon[::4] = ""  # 5,000 missing
    lat[1::4] = 200.0  # 5,000 beyond range (lon fits no swap: |lon| > 90)
    ds = load_dataset(units_path, hh(tmp_path, lon, lat))
    assert len(ds.problems) == 2
    p = one(ds.problems, "missing_coordinates")
    assert p.count == 5000
    assert p.row == "rows 1, 5, 9, 13, 17, 21, 25, 29, 33, 37 (+4990 more)"
    assert p.message.count(",") < 30 and len(p.message) < 300
    assert one(ds.problems, "invalid_coordinates").count == 5000
    assert len(ds.households) == 10_000


def test_problems_serialise_and_read_well(tmp_path, units_path):
    lon, lat, _ = inside_points(3)
    lon[1] = np.nan
    problems = validate(units_path, hh(tmp_path, lon, lat))
    d = json.loads(json.dumps([p.as_dict() for p in problems]))
    assert d[0]["source"] == "h.csv" and d[0]["row"] == "row 2" and d[0]["kind"] == "missing_coordinates"
    assert str(problems[0]).startswith("warning: h.csv, row 2: ")


def test_validate_collects_problems_from_every_file_without_raising(tmp_path):
    u = grid_units()
    u.loc[1, "village_code"] = None
    u.to_file(tmp_path / "b.geojson")
    (tmp_path / "f.csv").write_bytes(b"")
    problems = validate(tmp_path / "b.geojson", hh(tmp_path, [np.nan, 110.001], [19.5, 19.501], ids=["x", "x"]),
                        tmp_path / "f.csv")
    assert {"missing_code", "duplicate_id", "missing_coordinates", "empty"} <= kinds(problems)
    assert {p.source for p in problems} == {"b.geojson", "h.csv", "f.csv"}
