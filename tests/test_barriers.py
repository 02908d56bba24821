"""Barrier lines (--barriers): read like any input, and no grid straddles them."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridplan.geo.coords import wgs84_to_gcj02
from gridplan.geo.crs import choose_metric_crs
from gridplan.geo.io import load_lines

METRIC = "EPSG:4546"
ORIGIN = (560_000.0, 2_130_000.0)        # near Baisha, Hainan, in EPSG:4546


def to_wgs(geoms):
    return gpd.GeoSeries(geoms, crs=METRIC).to_crs(4326)


def test_lines_honour_coords_polygons_and_bad_features(tmp_path):
    line = shapely.LineString([(ORIGIN[0] + 100, ORIGIN[1]), (ORIGIN[0] + 100, ORIGIN[1] + 1000)])
    lake = shapely.box(ORIGIN[0] + 300, ORIGIN[1], ORIGIN[0] + 400, ORIGIN[1] + 100)
    wgs = to_wgs([line, lake, shapely.Point(ORIGIN)])
    # the same features as a web map would give them: GCJ-02 lon/lat, no CRS in the file
    gcj = wgs.apply(lambda g: shapely.transform(g, lambda c: np.column_stack(wgs84_to_gcj02(c[:, 0], c[:, 1]))))
    path = tmp_path / "rivers.geojson"
    gpd.GeoDataFrame({"name": ["river", "lake", "well"]}, geometry=gcj, crs=4326).to_file(path)
    metric = choose_metric_crs(wgs.total_bounds)
    lines, problems = load_lines(path, metric, coords="gcj02")
    kinds = {p.kind: p for p in problems}
    assert not any(p.fatal for p in problems)
    assert "wrong_geometry_type" in kinds and "feature 2" in kinds["wrong_geometry_type"].row
    assert "polygon_barrier" in kinds
    assert len(lines) == 2 and {g.geom_type for g in lines} <= {"LineString", "LinearRing", "MultiLineString"}
    expect = gpd.GeoSeries([line, lake.boundary], crs=METRIC).to_crs(metric)
    for got, want in zip(lines, expect):
        assert shapely.hausdorff_distance(got, want) < 0.05      # offsets removed to centimetres


def test_metres_without_crs_are_fatal(tmp_path):
    path = tmp_path / "lines.csv"
    pd.DataFrame({"wkt": ["LINESTRING (560000 2130000, 561000 2131000)"]}).to_csv(path, index=False)
    lines, problems = load_lines(path, METRIC)
    assert len(lines) == 0 and any(p.fatal and p.kind == "no_crs_projected" for p in problems)


@pytest.fixture(scope="module")
def river_village(tmp_path_factory):
    """One 2 km × 1 km village, 1,200 single houses, a winding river crossing it mid-way."""
    d = tmp_path_factory.mktemp("river")
    x0, y0 = ORIGIN
    unit = shapely.box(x0, y0, x0 + 2000, y0 + 1000)
    rng = np.random.default_rng(5)
    xy = np.column_stack([rng.uniform(x0 + 5, x0 + 1995, 1200), rng.uniform(y0 + 5, y0 + 995, 1200)])
    river = shapely.LineString([(x0 + 990, y0 - 50), (x0 + 1030, y0 + 500), (x0 + 990, y0 + 1050)])
    bpath, hpath, rpath = d / "units.geojson", d / "hh.csv", d / "river.geojson"
    gpd.GeoDataFrame({"village_code": ["469025101299"]}, geometry=to_wgs([unit]).values, crs=4326).to_file(bpath)
    pts = to_wgs(shapely.points(xy))
    pd.DataFrame({"id": [f"H{i}" for i in range(len(xy))], "lon": pts.x, "lat": pts.y}).to_csv(hpath, index=False)
    gpd.GeoDataFrame({"name": ["river"]}, geometry=to_wgs([river]).values, crs=4326).to_file(rpath)
    return bpath, hpath, rpath, unit, river


def test_no_grid_straddles_the_river(river_village):
    from gridplan.optimize import plan
    bpath, hpath, rpath, unit, river = river_village
    p = plan(bpath, hpath, barriers=rpath, coverage_target=None, time_limit_per_unit=5.0)
    grids = p.grids.to_crs(METRIC)
    assert len(grids) == 4 and (grids.geom_type == "Polygon").all()
    # the river cuts the unit in two; every grid lies on one side of it (to the cells' snapping)
    halves = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.union_all([unit.boundary, river]))))
    assert len(halves) == 2
    west = min(halves, key=lambda h: h.centroid.x)
    for g in grids.geometry:
        share = g.intersection(west).area / g.area
        assert share < 0.01 or share > 0.99, share
    # two grids on each bank, each within the tolerance (the banks hold ~600 households each)
    assert p.summary["balance"]["within_tolerance_share"] == 1.0


def test_http_job_validates_an_unusable_barriers_file(tmp_path, river_village):
    """An upload whose barriers are metres with no CRS is a 422 naming the file, before any job runs."""
    from fastapi.testclient import TestClient

    from gridplan.api.app import create_app
    from gridplan.api.auth import create_key
    from gridplan.api.settings import Settings
    bpath, hpath, _, _, _ = river_village
    data = tmp_path / "srv"
    key = create_key("planner", data_dir=str(data))
    bad = tmp_path / "rivers.csv"
    pd.DataFrame({"wkt": ["LINESTRING (560000 2130000, 561000 2131000)"]}).to_csv(bad, index=False)
    with TestClient(create_app(Settings(data_dir=str(data)))) as client:
        files = {"boundaries": open(bpath, "rb"), "households": open(hpath, "rb"),
                 "barriers": ("rivers.csv", open(bad, "rb"), "text/csv")}
        r = client.post("/v1/jobs", files=files, headers={"X-API-Key": key})
    assert r.status_code == 422, r.text
    body = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert any(e["source"] == "rivers.csv" for e in body["errors"]), body
