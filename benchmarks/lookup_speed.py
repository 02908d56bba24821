"""In-process point -> grid lookup speed on a synthetic 20,000-grid plan.

Compares, in the same run, geo.index.GridIndex (raster pre-filter + exact prepared tests) with
baselines: geopandas.sjoin (points within grids), a bulk shapely STRtree query and a per-point
STRtree loop. Target: >= 1,000,000 point lookups per second (grid + station answer) on 2 cores.

Fair timing: every method is timed the same way in the same run (``benchmarks/timing.measure``):
one untimed warm-up, then best and median of ``--repeat`` runs, on the same points (the per-point
Python loop on a ``--loop-points`` subsample). Warm means each method's spatial index exists
(GridIndex built, ``grids.sindex`` built by the warm-up sjoin, STRtree built); the cold figures
time index build + one query for GridIndex and for sjoin on a fresh copy of the grids.
Ratios are to sjoin, warm vs warm and cold vs cold. Results: benchmarks/results/lookup_speed-*.json.

With ``--road-nodes N`` (default 500,000; 0 skips it), a road-network plan's answer too: a synthetic
table of N road nodes (geo.travel.NodeMinutes) joined by the same ellipsoid chord as the plan.

    python benchmarks/lookup_speed.py [--grids 20000] [--points 1000000] [--repeat 3] [--road-nodes 500000]
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


def cold(grids, stations, sub, q, pts):
    """Index build + first query, both sides: (index, build s, GridIndex build + query s, sjoin s on a
    fresh copy of the grids whose spatial index is not built yet)."""
    import geopandas as gpd

    from gridplan.geo.index import GridIndex

    t0 = time.perf_counter()
    idx = GridIndex(grids, stations, minutes=20, mode="walk")
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    idx.grid_of(q[:, 0], q[:, 1])
    cold_gi = build + time.perf_counter() - t0
    fresh = gpd.GeoDataFrame(sub.copy(), geometry="geometry", crs=4326)
    t0 = time.perf_counter()
    gpd.sjoin(pts, fresh, how="left", predicate="within")
    return idx, build, cold_gi, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grids", type=int, default=20000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--loop-points", type=int, default=20_000, help="points for the per-point Python loop")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per method (after one warm-up)")
    ap.add_argument("--road-nodes", type=int, default=500_000, help="0: skip the road-network row")
    a = ap.parse_args()
    import geopandas as gpd
    import shapely

    from benchmarks.record import record
    from benchmarks.timing import measure

    grids, stations, ext = synthetic_plan(a.grids)
    rng = np.random.default_rng(1)
    q = rng.uniform(ext[:2], ext[2:], (a.points, 2))
    n, nl, rep = a.points, min(a.loop_points, a.points), a.repeat
    sub = grids[["grid_code", "geometry"]]
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(q[:, 0], q[:, 1]), crs=4326)

    idx, build, cold_gi, cold_sj = cold(grids, stations, sub, q, pts)

    tree = shapely.STRtree(grids.geometry.values)
    qp = shapely.points(q)

    def loop():
        out = np.full(nl, -1)
        for i in range(nl):
            c = tree.query(shapely.Point(q[i]), predicate="intersects")
            out[i] = c.min() if len(c) else -1
        return out

    # warm: same warm-up (1) and same number of timed runs for everyone
    m = {"GridIndex.grid_of (grid only)": (measure(lambda: idx.grid_of(q[:, 0], q[:, 1]), rep), n),
         "GridIndex.lookup (grid + codes + nearest station)": (measure(lambda: idx.lookup(q[:, 0], q[:, 1]), rep), n),
         "baseline geopandas.sjoin within (grid only)":
             (measure(lambda: gpd.sjoin(pts, sub, how="left", predicate="within"), rep), n),
         "baseline bulk STRtree.query intersects (grid only)":
             (measure(lambda: tree.query(qp, predicate="intersects"), rep), n),
         "baseline per-point STRtree loop (grid only)": (measure(loop, rep), nl)}
    if a.road_nodes:
        from gridplan.geo import travel
        from gridplan.geo.index import GridIndex
        nodes = rng.uniform(ext[:2], ext[2:], (a.road_nodes, 2))
        table = travel.NodeMinutes(join=travel.NodeJoin(nodes), minutes=rng.uniform(0, 40, a.road_nodes),
                                   site=rng.integers(0, len(stations), a.road_nodes),
                                   speed_m_per_min=travel.metres_per_minute(4.0))
        ridx = GridIndex(grids, stations, minutes=20, mode="walk", road={"c": (table, list(stations.station_id))})
        m["GridIndex.lookup, road plan (grid + road-table station)"] = (
            measure(lambda: ridx.lookup(q[:, 0], q[:, 1]), rep), n)
    g = m["GridIndex.grid_of (grid only)"][0].result
    # correctness: against the per-point loop, and against sjoin (points on shared edges may differ)
    assert np.array_equal(g[:nl], m["baseline per-point STRtree loop (grid only)"][0].result), \
        "GridIndex disagrees with the STRtree loop"
    sj = m["baseline geopandas.sjoin within (grid only)"][0].result
    sj = sj[~sj.index.duplicated(keep="first")]
    sj_idx = sj["index_right"].to_numpy(dtype=float)
    agree = float(np.mean(np.where(np.isnan(sj_idx), -1, sj_idx) == g))
    base = n / m["baseline geopandas.sjoin within (grid only)"][0].best
    rows = []
    print(f"# {len(grids)} grids, {len(stations)} stations, {n:,} random points; index build {build:.2f} s; "
          f"warm-up 1 + best of {rep} for every method")
    print(f"{'method':52s} {'points/s (best)':>16s} {'points/s (median)':>18s} {'x sjoin':>8s}")
    for name, (t, npts) in m.items():
        rate, med = npts / t.best, npts / t.median
        rows.append({"method": name, "points": npts, "points_per_s_best": round(rate),
                     "points_per_s_median": round(med), "x_sjoin_warm": round(rate / base, 2), **t.as_dict()})
        print(f"{name:52s} {rate:16,.0f} {med:18,.0f} {rate / base:8.2f}")
    print(f"cold (index build + one query of {n:,} points): GridIndex {cold_gi:.2f} s, sjoin {cold_sj:.2f} s "
          f"(x sjoin {cold_sj / cold_gi:.2f})")
    one = q[:20000]
    t1 = measure(lambda: [idx.lookup_one(x, y) for x, y in one], rep)
    print(f"{'GridIndex.lookup_one (scalar, full answer)':52s} {len(one) / t1.best:16,.0f}")
    nd = min(100_000, n)
    t2 = measure(lambda: idx.lookup_dicts(q[:nd, 0], q[:nd, 1]), rep)
    print(f"GridIndex.lookup_dicts {nd:,} points: best {t2.best:.3f} s")
    record("lookup_speed", {
        "grids": len(grids), "stations": len(stations), "points": n, "repeat": rep, "warmup": 1,
        "index_build_s": round(build, 3), "warm": rows, "agreement_with_sjoin": round(agree, 6),
        "cold": {"gridindex_build_plus_query_s": round(cold_gi, 3), "sjoin_fresh_s": round(cold_sj, 3),
                 "x_sjoin_cold": round(cold_sj / cold_gi, 2)},
        "lookup_one_per_s_best": round(len(one) / t1.best), "lookup_dicts": {"points": nd, **t2.as_dict()},
    }, notes="target: >= 1,000,000 GridIndex.lookup points/s on 2 cores")


if __name__ == "__main__":
    main()
