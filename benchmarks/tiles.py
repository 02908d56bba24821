"""Vector-tile speed (geo.tiles) on a synthetic province-sized plan: 8,747 grids, 2,400 units, stations
and their service areas over a Hainan-sized extent (~260 x 220 km), boundaries ~33 m between vertices
with a smooth wiggle (so simplification has real work, and shared edges stay shared).

Measures, in one process:
  * building the plan's TileSource (mercator projection + STRtrees) — once per plan on a server;
  * the per-zoom simplification warm-up (once per zoom per plan; reported apart);
  * every tile covering the plan at z10 (and samples at z8, z12, z14) rendered uncached ``--repeat``
    times: p50 / p95 / max milliseconds and bytes. Target: z10 p95 < 50 ms.
Results: benchmarks/results/tiles-*.json (``benchmarks/record.py``).

    python benchmarks/tiles.py [--grids 8747] [--repeat 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.record import record  # noqa: E402

EXTENT = (108.6, 18.15, 111.05, 20.15)


def wiggle(c: np.ndarray) -> np.ndarray:
    """A deterministic function of position, so a vertex shared by two polygons moves the same way."""
    return c + 0.00012 * np.column_stack([np.sin(c[:, 1] * 3000.0), np.cos(c[:, 0] * 3000.0)])


def cells(n: int, seed: int, step: float = 0.0003):
    import shapely
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    pts = rng.uniform(EXTENT[:2], EXTENT[2:], (n, 2))
    polys = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box(*EXTENT)))
    polys = shapely.intersection(polys, box(*EXTENT))
    return shapely.transform(shapely.segmentize(polys, step), wiggle)


def province_layers(n_grids: int):
    import geopandas as gpd
    import shapely

    grids = cells(n_grids, 0)
    units = cells(max(1, n_grids * 10 // 36), 1)
    rng = np.random.default_rng(2)
    st = shapely.points(rng.uniform(EXTENT[:2], EXTENT[2:], (max(1, n_grids // 45), 2)))
    g = gpd.GeoDataFrame({"grid_code": [f"46{i:013d}" for i in range(len(grids))], "village_code": "460000",
                          "households": rng.integers(200, 400, len(grids)), "workers": 1,
                          "deviation": rng.normal(0, 0.08, len(grids))}, geometry=grids, crs=4326)
    u = gpd.GeoDataFrame({"village_code": [f"46{i:010d}" for i in range(len(units))]}, geometry=units, crs=4326)
    s = gpd.GeoDataFrame({"station_id": [f"S{i}" for i in range(len(st))], "existing": False}, geometry=st, crs=4326)
    sa = gpd.GeoDataFrame({"station_id": s.station_id}, geometry=shapely.buffer(st, 0.02, quad_segs=16), crs=4326)
    return {"grids": g, "units": u, "stations": s, "service_areas": sa}


def zoom_figures(src, z: int, repeat: int, limit: int | None = None) -> dict:
    from gridplan.geo.tiles import render_tile, tiles_covering

    tiles = list(tiles_covering(src.bounds, z, z))
    if limit and len(tiles) > limit:
        tiles = [tiles[i] for i in np.linspace(0, len(tiles) - 1, limit).astype(int)]
    t0 = time.perf_counter()
    render_tile(src, *tiles[len(tiles) // 2])            # the zoom's simplification, once per plan
    warm = time.perf_counter() - t0
    ms, sizes = [], []
    for _ in range(repeat):
        for t in tiles:
            t0 = time.perf_counter()
            data = render_tile(src, *t)
            ms.append((time.perf_counter() - t0) * 1e3)
            sizes.append(len(data))
    a = np.array(ms)
    return {"tiles": len(tiles), "renders": len(ms), "zoom_warmup_s": round(warm, 3),
            "p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "max_ms": round(float(a.max()), 2), "mean_kb": round(float(np.mean(sizes)) / 1024, 1),
            "max_kb": round(float(np.max(sizes)) / 1024, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grids", type=int, default=8747)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import shapely

    from gridplan.geo.tiles import tile_source

    t0 = time.perf_counter()
    layers = province_layers(a.grids)
    make_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    src = tile_source(layers)
    build_s = time.perf_counter() - t0
    figures = {"grids": len(layers["grids"]), "units": len(layers["units"]), "stations": len(layers["stations"]),
               "grid_vertices_mean": round(float(shapely.get_num_coordinates(layers["grids"].geometry.values).mean()), 1),
               "make_layers_s": round(make_s, 2), "source_build_s": round(build_s, 3), "repeat": a.repeat,
               "zooms": {}}
    for z, limit in ((10, None), (8, None), (12, 60), (14, 60)):
        figures["zooms"][f"z{z}"] = zoom_figures(src, z, a.repeat, limit)
    figures["target"] = "z10 p95 < 50 ms (uncached tile, source built)"
    figures["met"] = figures["zooms"]["z10"]["p95_ms"] < 50
    record("tiles", figures)


if __name__ == "__main__":
    main()
