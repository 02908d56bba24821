"""In-process point -> grid lookup speed on a synthetic 20,000-grid plan.

Compares, in the same run, geo.index.GridIndex (raster pre-filter + exact prepared tests) with two
baselines: geopandas.sjoin (points within grids) and a per-point shapely STRtree loop. Target:
>= 1,000,000 point lookups per second (grid + station answer) on 2 cores. Straight-line stations
(ellipsoid chords, geo.travel.StationFinder) and, with ``--road-nodes N``, a road-network plan's
answer: a synthetic table of N road nodes (geo.travel.NodeMinutes) joined by the same chord.

    python benchmarks/lookup_speed.py [--grids 20000] [--points 1000000] [--road-nodes 500000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def synthetic_plan(n: int, seed: int = 0):
    import geopandas as gpd
    import shapely
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    ext = (110.0, 30.0, 111.0, 31.0)  # about 96 x 111 km: a county
    pts = rng.uniform(ext[:2], ext[2:], (n, 2))
    polys = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box(*ext)))
    polys = shapely.segmentize(shapely.intersection(polys, box(*ext)), 0.0015)  # ~20+ vertices each
    grids = gpd.GeoDataFrame({"grid_code": [f"{i:015d}" for i in range(len(polys))], "village_code": "v",
                              "township_code": "t", "county_code": "c", "workers": 1}, geometry=polys, crs=4326)
    sxy = rng.uniform(ext[:2], ext[2:], (n // 60, 2))
    stations = gpd.GeoDataFrame({"station_id": [f"S{i}" for i in range(len(sxy))], "name": "hall"},
                                geometry=gpd.points_from_xy(sxy[:, 0], sxy[:, 1]), crs=4326)
    return grids, stations, ext


def best(fn, repeat=3):
    out, t = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        t.append(time.perf_counter() - t0)
    return min(t), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grids", type=int, default=20000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--baseline-points", type=int, default=100_000)
    ap.add_argument("--road-nodes", type=int, default=500_000, help="0: skip the road-network rows")
    a = ap.parse_args()
    import geopandas as gpd
    import shapely

    from geo.index import GridIndex

    grids, stations, ext = synthetic_plan(a.grids)
    rng = np.random.default_rng(1)
    q = rng.uniform(ext[:2], ext[2:], (a.points, 2))
    t0 = time.perf_counter()
    idx = GridIndex(grids, stations, minutes=20, mode="walk")
    build = time.perf_counter() - t0
    print(f"# {len(grids)} grids, {len(stations)} stations, {a.points:,} random points; index build {build:.2f} s")
    print(f"# {idx!r}")
    rows = []
    t, g = best(lambda: idx.grid_of(q[:, 0], q[:, 1]))
    rows.append(("GridIndex.grid_of (grid only)", a.points / t))
    t, res = best(lambda: idx.lookup(q[:, 0], q[:, 1]))
    rows.append(("GridIndex.lookup (grid + codes + nearest station)", a.points / t))
    if a.road_nodes:
        from geo import travel
        nodes = rng.uniform(ext[:2], ext[2:], (a.road_nodes, 2))
        table = travel.NodeMinutes(join=travel.NodeJoin(nodes), minutes=rng.uniform(0, 40, a.road_nodes),
                                   site=rng.integers(0, len(stations), a.road_nodes),
                                   speed_m_per_min=travel.metres_per_minute(4.0))
        t0 = time.perf_counter()
        ridx = GridIndex(grids, stations, minutes=20, mode="walk",
                         road={"c": (table, list(stations.station_id))})
        print(f"# road-network index: {a.road_nodes:,} road nodes, build {time.perf_counter() - t0:.2f} s")
        t, _ = best(lambda: ridx.lookup(q[:, 0], q[:, 1]))
        rows.append(("GridIndex.lookup, road plan (grid + road-table station)", a.points / t))
    nb = a.baseline_points
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(q[:nb, 0], q[:nb, 1]), crs=4326)
    t, sj = best(lambda: gpd.sjoin(pts, grids[["grid_code", "geometry"]], how="left", predicate="within"), 1)
    rows.append(("baseline geopandas.sjoin (grid only)", nb / t))
    tree = shapely.STRtree(grids.geometry.values)
    geoms = np.asarray(grids.geometry.values)
    nl = min(nb, 20000)

    def loop():
        out = np.full(nl, -1)
        for i in range(nl):
            c = tree.query(shapely.Point(q[i]), predicate="intersects")
            out[i] = c.min() if len(c) else -1
        return out
    t, lp = best(loop, 1)
    rows.append(("baseline per-point STRtree loop (grid only)", nl / t))
    t, bulk = best(lambda: tree.query(shapely.points(q[:nb]), predicate="intersects"), 1)
    rows.append(("baseline bulk STRtree.query (grid only)", nb / t))
    # correctness against the per-point loop
    assert np.array_equal(g[:nl], lp), "GridIndex disagrees with the STRtree loop"
    base = next(rate for name, rate in rows if name.startswith("baseline geopandas.sjoin"))
    print(f"{'method':52s} {'points/s':>14s} {'x sjoin':>8s}")
    for name, rate in rows:
        print(f"{name:52s} {rate:14,.0f} {rate / base:8.1f}")
    one = q[:20000]
    t0 = time.perf_counter()
    for x, y in one:
        idx.lookup_one(x, y)
    print(f"{'GridIndex.lookup_one (scalar, full answer)':52s} {len(one) / (time.perf_counter() - t0):14,.0f}")
    t0 = time.perf_counter()
    idx.lookup_dicts(q[:100000, 0], q[:100000, 1])
    print(f"{'GridIndex.lookup_dicts 100,000 points (s)':52s} {time.perf_counter() - t0:14.3f}")


if __name__ == "__main__":
    main()
