"""A small synthetic plan (WGS 84 layers + summary) for the report and browser tests.

Two units side by side near 116.0E 39.0N; unit 11…001 split 2×2, unit 11…002 into 3 strips.
Households are random points; every grid's figures are computed from them, so tests can check
the report against independent numbers.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import Point, box

U1, U2 = "110101001001", "110101001002"


def synthetic_layers(n_households: int = 400, seed: int = 0, unit_name: str = "东村") -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    units = gpd.GeoDataFrame({
        "village_code": [U1, U2], "village_name": [unit_name, "西村"],
        "township_code": ["110101001", "110101001"], "county_code": ["110101", "110101"],
    }, geometry=[box(116.00, 39.00, 116.02, 39.01), box(116.02, 39.00, 116.04, 39.01)], crs=4326)
    cells = [(U1, box(116.00, 39.005, 116.01, 39.01)), (U1, box(116.01, 39.005, 116.02, 39.01)),
             (U1, box(116.00, 39.00, 116.01, 39.005)), (U1, box(116.01, 39.00, 116.02, 39.005)),
             (U2, box(116.02, 39.00, 116.0267, 39.01)), (U2, box(116.0267, 39.00, 116.0333, 39.01)),
             (U2, box(116.0333, 39.00, 116.04, 39.01))]
    codes, seq = [], {}
    for u, _ in cells:
        seq[u] = seq.get(u, 0) + 1
        codes.append(f"{u}{seq[u]:03d}")
    grids = gpd.GeoDataFrame({"grid_code": codes, "village_code": [u for u, _ in cells]},
                             geometry=[g for _, g in cells], crs=4326)
    lon = rng.uniform(116.0001, 116.0399, n_households)
    lat = rng.uniform(39.0001, 39.0099, n_households)
    pts = gpd.GeoDataFrame({"id": [f"h{i}" for i in range(n_households)],
                            "households": rng.integers(1, 4, n_households)},
                           geometry=gpd.points_from_xy(lon, lat), crs=4326)
    hit = gpd.sjoin(pts, grids[["grid_code", "geometry"]], predicate="within", how="left")
    hit = hit[~hit.index.duplicated()]
    pts["grid_code"] = hit["grid_code"].to_numpy()
    per = pts.groupby("grid_code")["households"].sum()
    grids["township_code"] = "110101001"
    grids["county_code"] = "110101"
    grids["households"] = grids["grid_code"].map(per).fillna(0).astype(int)
    grids["population"] = grids["households"] * 2.62
    grids["workers"] = np.where(grids["households"] > 150, 2, 1)
    grids["area_km2"] = grids.to_crs(32650).area / 1e6
    g = grids.to_crs(32650).geometry
    grids["polsby_popper"] = 4 * np.pi * g.area / g.length ** 2
    mean = grids.groupby("village_code")["households"].transform("mean")
    grids["deviation"] = (grids["households"] - mean) / mean
    st_pts = [Point(116.008, 39.004), Point(116.03, 39.006)]
    stations = gpd.GeoDataFrame({"station_id": ["S1", "S2"], "name": ["站一", "站二"], "existing": [True, False],
                                 "village_code": [U1, U2], "households_covered": [0, 0]}, geometry=st_pts, crs=4326)
    sa_m = gpd.GeoSeries(st_pts, crs=4326).to_crs(32650).buffer(1333.0, 32).to_crs(4326)
    service = gpd.GeoDataFrame({"station_id": ["S1", "S2"], "minutes": [20.0, 20.0], "mode": ["walk", "walk"]},
                               geometry=sa_m.values, crs=4326)
    pm = np.asarray(pts.to_crs(32650).geometry.values)
    sm = np.asarray(gpd.GeoSeries(st_pts, crs=4326).to_crs(32650).values)
    d = np.stack([shapely.distance(pm, s) for s in sm])
    pts["station_id"] = np.array(["S1", "S2"])[d.argmin(axis=0)]
    pts["minutes"] = d.min(axis=0) / (4000 / 60)
    pts["village_code"] = np.where(lon < 116.02, U1, U2)
    covered = pts["minutes"] <= 20
    stations["households_covered"] = [int(pts.loc[covered & (pts.station_id == s), "households"].sum())
                                      for s in ("S1", "S2")]
    hh_u = pts.groupby("village_code")["households"].sum()
    cov_u = pts[covered].groupby("village_code")["households"].sum() / hh_u
    units["households"] = units["village_code"].map(hh_u).fillna(0).astype(int)
    units["grids"] = units["village_code"].map(grids.groupby("village_code").size()).astype(int)
    units["workers"] = units["village_code"].map(grids.groupby("village_code")["workers"].sum()).astype(int)
    units["coverage"] = units["village_code"].map(cov_u).fillna(0.0)
    workers = gpd.GeoDataFrame({"worker_id": ["w1", "w2"], "grid_code": codes[:2], "role": ["full", "part"]},
                               geometry=[Point(116.005, 39.007), Point(116.015, 39.007)], crs=4326)
    dev = np.abs(grids["deviation"].to_numpy())
    summary = {
        "households": int(pts["households"].sum()), "units": 2, "grids": len(grids),
        "workers": int(grids["workers"].sum()), "stations": 2,
        "coverage": {"minutes": 20, "mode": "walk",
                     "share": float(pts.loc[covered, "households"].sum() / pts["households"].sum())},
        "balance": {"max_abs_dev": float(dev.max()), "p95_abs_dev": float(np.quantile(dev, 0.95)),
                    "within_tolerance_share": float((dev <= 0.1).mean()), "tolerance": 0.1},
        "contiguous_share": 1.0, "gap_area_m2": 0.0, "overlap_area_m2": 0.0, "unassigned_households": 0,
        "problems": [{"source": "households.csv", "row": "row 7", "kind": "duplicate_point",
                      "message": "duplicate point <b>merged</b>", "fatal": False, "count": 3}],
        "runtime_s": {"load": 0.1, "partition": 1.2, "siting": 0.3, "total": 1.6},
    }
    layers = {"grids": grids, "stations": stations, "service_areas": service, "households": pts,
              "units": units, "workers": workers}
    return layers, summary


def many_grids_layers(n_side: int = 60, vertices: int = 256) -> dict:
    """A big plan: n_side² round-ish grids of ``vertices`` vertices each (for the size bound)."""
    xs = 116.0 + np.arange(n_side) * 0.01
    ys = 39.0 + np.arange(n_side) * 0.01
    centres = [Point(x, y) for y in ys for x in xs]
    polys = shapely.buffer(np.array(centres), 0.0049, quad_segs=vertices // 4)
    n = len(polys)
    grids = gpd.GeoDataFrame({"grid_code": [f"110101{i:09d}" for i in range(n)],
                              "village_code": [f"110101{i // 10:06d}" for i in range(n)],
                              "households": np.full(n, 300), "population": np.full(n, 786.0),
                              "workers": np.ones(n, int), "area_km2": np.full(n, 0.8),
                              "polsby_popper": np.full(n, 0.99)}, geometry=polys, crs=4326)
    return {"grids": grids}
