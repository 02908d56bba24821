"""partition_unit over every unit of a sample county, scored the way check_plan.py scores a plan.

    python benchmarks/partition_sample.py [data/sample] [--jobs 2] [--tolerance 0.10]

Prints per-run figures: grids, balanced share (within ±tol of the unit mean, or within half the
unit's largest point), max deviation, Polsby-Popper mean / p10, geometry checks, seconds.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.record import record  # noqa: E402

METRIC = "EPSG:4546"


def load(folder):
    import geopandas as gpd
    import pandas as pd
    units = gpd.read_file(os.path.join(folder, "boundaries.geojson")).to_crs(METRIC)
    hh = pd.read_csv(os.path.join(folder, "households.csv"))
    pts = gpd.GeoDataFrame(hh, geometry=gpd.points_from_xy(hh.lon, hh.lat), crs=4326).to_crs(METRIC)
    j = gpd.sjoin(pts, units[["geometry"]], predicate="within", how="left")
    j = j[~j.index.duplicated(keep="first")]
    pts["unit"] = j["index_right"].to_numpy()
    return units, pts


def _one(args):
    from gridplan.optimize.options import PlanOptions
    from gridplan.optimize.partition import partition_unit
    geom, xy, h, target, opts = args
    return partition_unit(geom, xy, h, target, PlanOptions(**opts))


def unit_tasks(units, pts, opts):
    tasks = []
    for i, row in units.iterrows():
        sub = pts[pts.unit == i]
        xy = np.column_stack([sub.geometry.x, sub.geometry.y])
        t = row.get("target_households")
        target = float(t) if t is not None and t == t and t > 0 else float(opts.get("target_households", 300.0))
        tasks.append((row.geometry, xy, sub.households.to_numpy(int), target, opts))
    return tasks


def score(units, tasks, results, tol):
    import shapely
    from gridplan.geo.grids import polsby_popper
    within, devs, pps, types, gap, over, outside, notes = [], [], [], {}, 0.0, 0.0, 0.0, 0
    for (geom, xy, h, _, _), r in zip(tasks, results):
        gh = np.bincount(r.labels, weights=h, minlength=r.k) if len(h) else np.zeros(r.k)
        mean = gh.sum() / r.k
        slack = max(tol * mean, 0.5 * (h.max() if len(h) else 0))
        d = np.abs(gh - mean)
        within.extend((d <= slack + 1e-9).tolist())
        devs.extend((d / mean if mean > 0 else d * 0).tolist())
        pps.extend(polsby_popper(r.polygons).tolist())
        for p in r.polygons:
            types[p.geom_type] = types.get(p.geom_type, 0) + 1
        u = shapely.union_all(r.polygons)
        gap += geom.difference(u).area
        outside += u.difference(geom).area
        over += sum(p.area for p in r.polygons) - u.area
        # households reported per grid == points inside each polygon
        if len(xy):
            from gridplan.geo.grids import assign_points
            lab = assign_points(r.polygons, xy)
            assert (lab == r.labels).all(), "labels disagree with polygons"
        notes += bool(r.notes)
    area = float(units.geometry.area.sum())
    pps = np.array(pps)
    return dict(units=len(results), grids=int(sum(r.k for r in results)),
                balanced_share=round(float(np.mean(within)), 4), max_abs_dev=round(float(np.max(devs)), 4),
                p95_abs_dev=round(float(np.quantile(devs, 0.95)), 4),
                pp_mean=round(float(pps.mean()), 4), pp_p10=round(float(np.quantile(pps, 0.10)), 4),
                geom_types=types, gap_share=float(gap / area), overlap_share=float(over / area),
                outside_share=float(outside / area),
                statuses={s: sum(r.status == s for r in results) for s in sorted({r.status for r in results})},
                slowest_unit_s=round(max(r.seconds for r in results), 2), units_with_notes=notes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", default="data/sample")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--target", type=float, default=300.0)
    a = ap.parse_args()
    units, pts = load(a.folder)
    opts = dict(tolerance=a.tolerance, target_households=a.target)
    tasks = unit_tasks(units, pts, opts)
    order = np.argsort([-len(t[1]) for t in tasks], kind="stable")   # biggest first: better packing
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.jobs) as ex:
        res = list(ex.map(_one, [tasks[i] for i in order]))
    secs = time.perf_counter() - t0
    results = [None] * len(tasks)
    for i, r in zip(order, res):
        results[i] = r
    s = score(units, tasks, results, a.tolerance)
    s["seconds"] = round(secs, 2)
    s["households"] = int(pts.households[pts.unit.notna()].sum())
    for k, v in s.items():
        print(f"{k:>18}: {v}")
    record("partition_sample", {"folder": a.folder, "jobs": a.jobs, "tolerance": a.tolerance, "target": a.target, **s})


if __name__ == "__main__":
    main()
