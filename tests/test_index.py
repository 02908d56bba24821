"""geo.index.GridIndex: exact against a brute-force scan, in every coordinate system."""
from __future__ import annotations


import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings, strategies as st
from shapely.geometry import box

from gridplan.geo.coords import from_wgs84
from gridplan.geo.index import GridIndex


def voronoi_grids(n: int, seed: int, extent=(110.0, 30.0, 110.2, 30.15), holes: bool = False) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = extent
    pts = rng.uniform([x0, y0], [x1, y1], (n, 2))
    polys = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box(*extent)))
    polys = shapely.intersection(polys, box(*extent))
    polys = polys[~shapely.is_empty(polys)]
    if holes:  # punch a hole into every third grid: points in a hole belong to no grid
        for i in range(0, len(polys), 3):
            c = shapely.centroid(polys[i])
            polys[i] = polys[i].difference(c.buffer(shapely.minimum_bounding_radius(polys[i]) * 0.2))
    codes = [f"4200000000{i:05d}" for i in range(len(polys))]
    return gpd.GeoDataFrame({"grid_code": codes, "village_code": [c[:12] for c in codes],
                             "township_code": "420000000", "county_code": "420000",
                             "workers": rng.integers(1, 3, len(polys))}, geometry=polys, crs=4326)


def brute(grids: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Lowest row whose polygon covers the point, -1 for none — one full scan per point."""
    geoms = np.asarray(grids.geometry.values, dtype=object)
    out = np.full(len(x), -1)
    for i in range(len(x)):
        hit = np.flatnonzero(shapely.intersects_xy(geoms, x[i], y[i]))
        out[i] = hit[0] if len(hit) else -1
    return out


@settings(max_examples=15)
@given(n=st.integers(1, 120), seed=st.integers(0, 10_000), cells=st.sampled_from([1.0, 8.0, 64.0]),
       holes=st.booleans())
def test_grid_of_matches_brute_force(n, seed, cells, holes):
    grids = voronoi_grids(n, seed, holes=holes)
    idx = GridIndex(grids, cells_per_grid=cells)
    rng = np.random.default_rng(seed + 1)
    x = rng.uniform(109.95, 110.25, 400)  # some points outside the extent
    y = rng.uniform(29.95, 30.2, 400)
    # points exactly on vertices and edges are the hard cases
    v = shapely.get_coordinates(grids.geometry.values)[:50]
    x, y = np.concatenate([x, v[:, 0]]), np.concatenate([y, v[:, 1]])
    expect = brute(grids, x, y)
    got = idx.grid_of(x, y)
    assert np.array_equal(got, expect)
    assert [idx.grid_of_one(a, b) for a, b in zip(x, y)] == expect.tolist()


def test_multipolygon_and_nan_points():
    grids = gpd.GeoDataFrame({"grid_code": ["A", "B"]}, geometry=[
        shapely.MultiPolygon([box(0, 0, 1, 1), box(2, 0, 3, 1)]), box(1, 0, 2, 1)], crs=4326)
    idx = GridIndex(grids)
    x = np.array([0.5, 2.5, 1.5, 5.0, np.nan, 0.5])
    y = np.array([0.5, 0.5, 0.5, 0.5, 0.5, np.inf])
    assert idx.grid_of(x, y).tolist() == [0, 0, 1, -1, -1, -1]
    assert idx.lookup_one(float("nan"), 0.5) is None


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_offset_coordinates_find_the_same_grid(system):
    grids = voronoi_grids(60, 7)
    idx = GridIndex(grids)
    rng = np.random.default_rng(3)
    x, y = rng.uniform(110.0, 110.2, 300), rng.uniform(30.0, 30.15, 300)
    ox, oy = from_wgs84(x, y, system)
    assert np.abs(ox - x).max() > 1e-3  # the offset is real (hundreds of metres)
    res = idx.lookup(ox, oy, coords=system)
    assert np.array_equal(res["grid"], brute(grids, x, y))
    one = idx.lookup_one(float(ox[0]), float(oy[0]), coords=system)
    assert one is not None and one["grid_code"] == grids.grid_code.iloc[brute(grids, x[:1], y[:1])[0]]


def test_nearest_station_minutes_and_coverage():
    grids = voronoi_grids(30, 1)
    rng = np.random.default_rng(5)
    sxy = rng.uniform([110.0, 30.0], [110.2, 30.15], (12, 2))
    stations = gpd.GeoDataFrame({"station_id": [f"S{i}" for i in range(12)], "name": [f"hall {i}" for i in range(12)]},
                                geometry=shapely.points(sxy), crs=4326)
    workers = gpd.GeoDataFrame({"worker_id": ["w2", "w1"], "grid_code": [grids.grid_code[0]] * 2},
                               geometry=shapely.points([[110, 30]] * 2), crs=4326)
    idx = GridIndex(grids, stations, workers, speed_kmh=12.0, minutes=10.0, mode="bike")
    x, y = rng.uniform(110.0, 110.2, 200), rng.uniform(30.0, 30.15, 200)
    res = idx.lookup(x, y)
    # brute force: the ellipsoidal geodesic (pyproj.Geod) to every station; the index's chord on the
    # ellipsoid is within (d/R)^2/24 of it (< 1e-6 here), and picks the same station
    from pyproj import Geod
    X, S = np.broadcast_arrays(x[:, None], sxy[None, :, 0])
    Y, T = np.broadcast_arrays(y[:, None], sxy[None, :, 1])
    _, _, metres = Geod(ellps="WGS84").inv(X.ravel(), Y.ravel(), S.ravel(), T.ravel())
    metres = metres.reshape(X.shape)
    assert np.array_equal(res["station"], metres.argmin(axis=1))
    np.testing.assert_allclose(res["minutes"], metres.min(axis=1) / (12000 / 60), rtol=1e-6)
    assert np.array_equal(res["covered"], res["minutes"] <= 10.0 + 1e-6)
    ans = idx.lookup_dicts(x[:20], y[:20])
    for k, a in enumerate(ans):
        assert a["station_id"] == f"S{res['station'][k]}" and a["station_name"] == f"hall {res['station'][k]}"
        assert a["minutes"] == np.round(res["minutes"][k], 3)
        assert a["grid_code"] == res["grid_code"][k]
    first = idx.lookup_one(*shapely.get_coordinates(grids.geometry[0].representative_point())[0])
    assert first["worker_ids"] == ["w1", "w2"] and first["workers"] == int(grids.workers[0])


def test_default_speed_from_mode_when_summary_has_none():
    grids = voronoi_grids(5, 2)
    st_ = gpd.GeoDataFrame({"station_id": ["S"]}, geometry=shapely.points([[110.1, 30.07]]), crs=4326)
    idx = GridIndex.from_frames(grids, st_, summary={"coverage": {"minutes": 20, "mode": "drive"}})
    assert idx.speed_kmh == 30.0 and idx.minutes_limit == 20


def test_from_plan_dir_reads_the_written_plan(tmp_path):
    from tests.helpers.api import write_tiny_plan
    out = write_tiny_plan(tmp_path / "plan")
    idx = GridIndex.from_plan_dir(out)
    a = idx.lookup_one(120.001, 30.019)
    assert a["grid_code"] == "330110001001001" and a["worker_ids"] == ["W1"] and a["station_id"] == "S1"
    assert idx.lookup_one(121.0, 30.0) is None
    with pytest.raises(FileNotFoundError):
        GridIndex.from_plan_dir(tmp_path / "nothing")


# ------------------------------------------------------------------ lookup = the plan's own travel model
@pytest.fixture(scope="module")
def road_area():
    """Four units over pyrosm's bundled OSM extract (two counties), 500 household points."""
    pyrosm = pytest.importorskip("pyrosm")
    from pyrosm import OSM
    pbf = pyrosm.get_data("test_pbf")
    x0, y0, x1, y1 = OSM(pbf).get_network(network_type="walking").total_bounds
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    units = gpd.GeoDataFrame(
        {"village_code": ["110101001001", "110101001002", "110102001001", "110102001002"],
         "township_code": ["110101001", "110101001", "110102001", "110102001"],
         "county_code": ["110101", "110101", "110102", "110102"]},
        geometry=[box(x0, y0, mx, my), box(x0, my, mx, y1), box(mx, y0, x1, my), box(mx, my, x1, y1)], crs=4326)
    rng = np.random.default_rng(4)
    pts = rng.uniform([x0, y0], [x1, y1], (500, 2))
    hh = gpd.GeoDataFrame({"id": [f"h{i}" for i in range(500)], "households": rng.integers(1, 4, 500)},
                          geometry=shapely.points(pts), crs=4326)
    return units, hh, pbf


@pytest.mark.parametrize("network", [True, False], ids=["roads", "straight"])
@pytest.mark.parametrize("counties", [1, 2])
def test_lookup_answers_every_household_as_the_households_layer(road_area, tmp_path, network, counties):
    """For every household point, lookup's grid, station, minutes and covered are the households
    layer's (and its covered households sum to the summary's), through every lookup path."""
    import orjson
    import pyogrio
    from gridplan.optimize import plan
    units, hh, pbf = road_area
    if counties == 1:
        units = units.assign(county_code="110101")
    p = plan(units, hh, network=pbf if network else None, minutes=5, coverage_target=0.5, target_households=60)
    out = p.to_dir(tmp_path / "plan", report=False)
    assert (out / "network_minutes.parquet").exists() == network
    idx = GridIndex.from_plan_dir(out)
    assert idx.travel == ("network" if network else "straight_line")
    layer = pyogrio.read_dataframe(out / "plan.gpkg", layer="households")
    summary = p.summary["coverage"]
    assert summary["travel"] == ("network" if network else "straight_line")
    x, y = layer.geometry.x.to_numpy(), layer.geometry.y.to_numpy()
    res = idx.lookup(x, y)
    assert list(res["grid_code"]) == layer["grid_code"].tolist()
    want_sid = [None if v is None or v != v else v for v in layer["station_id"].astype(object)]
    got_sid = [None if s < 0 else idx.station_ids[s] for s in res["station"]]
    assert got_sid == want_sid
    unreachable = np.array([s is None for s in want_sid])
    assert (network and counties == 2) <= unreachable.any() and not unreachable.all()
    want_min = layer["minutes"].to_numpy(float)
    assert np.array_equal(np.round(res["minutes"], 3), want_min, equal_nan=True)
    # covered: the plan's households_covered, recounted from lookup's answers
    w = layer["households"].to_numpy(float)
    assert float(w[res["covered"]].sum()) == summary["households_covered"]
    assert 0 < res["covered"].mean() < 1
    # the dict, JSON and single-point paths answer the same
    dicts = idx.lookup_dicts(x, y)
    assert orjson.loads(idx.lookup_json(x, y)) == dicts
    for k, a in enumerate(dicts):
        assert a["station_id"] == want_sid[k] and a["grid_code"] == layer["grid_code"][k]
        assert (a["minutes"] is None) if unreachable[k] else (a["minutes"] == want_min[k])
        assert a["covered"] == bool(res["covered"][k])
    for k in range(0, len(x), 25):
        assert idx.lookup_one(x[k], y[k]) == dicts[k]


def test_a_network_plan_without_its_road_table_is_refused(road_area, tmp_path):
    from gridplan.optimize import plan
    units, hh, pbf = road_area
    out = plan(units, hh.iloc[:100], network=pbf, minutes=5, target_households=60).to_dir(tmp_path / "p", report=False)
    (out / "network_minutes.parquet").unlink()
    with pytest.raises(ValueError, match="network_minutes.parquet"):
        GridIndex.from_plan_dir(out)
