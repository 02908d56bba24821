"""Micro-grids on the tower-block county: how much longer the plan takes, and a recount of the layer.

    python benchmarks/make_towers.py --out benchmarks/out/towers     # once (~125k households)
    python benchmarks/micro_grids.py [--data benchmarks/out/towers] [--jobs 2] [--target 30]

Plans the county (``gridplan.plan``, in process, no siting) with ``micro_target``; the extra time is
the plan's own ``runtime_s["micro_grids"]`` stage (target: < 60 s). Then recounts from the layers,
trusting nothing the plan says: every household's micro-grid code starts with its grid code, the
micro-grid polygon named holds the household's point and no other micro-grid does, the micro-grids'
households add up to their grid's, micro-grids are single Polygons where their grid is one, and no
two rows less than 1 m apart in one grid (entrances of a block of flats) are in different micro-grids.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def recount(p) -> dict:
    """Check the micro-grids layer against the households and grids layers (metric CRS)."""
    metric = p.grids.estimate_utm_crs()
    mg, hh, grids = p.micro_grids.to_crs(metric), p.households.to_crs(metric), p.grids.to_crs(metric)
    inside = hh[hh["grid_code"].notna()]
    codes = inside["micro_grid_code"].astype(str).to_numpy()
    prefix_ok = np.array([c.startswith(g) for c, g in zip(codes, inside["grid_code"].astype(str))])
    polys = np.asarray(mg.geometry.values, dtype=object)
    tree = shapely.STRtree(polys)
    pi, gi = tree.query(np.asarray(inside.geometry.values, dtype=object), predicate="intersects")
    holders = np.bincount(pi, minlength=len(inside))
    named = mg["micro_grid_code"].to_numpy(object)[gi] == codes[pi]
    named_ok = np.zeros(len(inside), bool)
    named_ok[pi[named]] = True
    per_grid = mg.groupby("grid_code")["households"].sum().reindex(grids["grid_code"]).fillna(0).to_numpy()
    single_grid = shapely.get_type_id(np.asarray(grids.geometry.values, dtype=object)) == 3
    multi = set(grids["grid_code"][~single_grid])
    multi_micro = int(((shapely.get_type_id(polys) != 3) & ~mg["grid_code"].isin(multi).to_numpy()).sum())
    h = mg["households"].to_numpy(float)
    from scipy.spatial import cKDTree
    xy = np.column_stack([inside.geometry.x.to_numpy(), inside.geometry.y.to_numpy()])
    pairs = cKDTree(xy).query_pairs(r=1.0, output_type="ndarray")
    grid = inside["grid_code"].astype(str).to_numpy()
    same_grid = grid[pairs[:, 0]] == grid[pairs[:, 1]]
    split = same_grid & (codes[pairs[:, 0]] != codes[pairs[:, 1]])
    return {"row_pairs_within_1m_same_grid": int(same_grid.sum()),
            "of_them_in_different_micro_grids": int(split.sum()),"micro_grids": int(len(mg)), "grids": int(len(grids)),
            "households_rows": int(len(inside)),
            "rows_code_not_in_grid": int((~prefix_ok).sum()),
            "rows_not_in_exactly_one_micro_grid": int((holders != 1).sum()),
            "rows_not_in_named_micro_grid": int((~named_ok).sum()),
            "grids_whose_micro_households_differ": int((per_grid != grids["households"].to_numpy()).sum()),
            "multipolygon_micro_grids_in_single_grids": multi_micro,
            "households_per_micro_grid": {"p10": float(np.quantile(h, 0.1)), "median": float(np.median(h)),
                                          "p90": float(np.quantile(h, 0.9)), "max": float(h.max())}}


def main(argv=None) -> int:
    """Run the benchmark and record its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "out" / "towers")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--target", type=float, default=30.0)
    a = ap.parse_args(argv)
    from benchmarks.record import record
    from gridplan import plan
    t0 = time.perf_counter()
    p = plan(a.data / "boundaries.gpkg", a.data / "households.parquet", jobs=a.jobs, coverage_target=0,
             micro_target=a.target)
    wall = time.perf_counter() - t0
    rt = p.summary["runtime_s"]
    figures = {"households": p.summary["households"], "jobs": a.jobs, "micro_target": a.target,
               "plan_seconds_total": round(wall, 1), "micro_grids_seconds": rt.get("micro_grids"),
               "partition_seconds": rt.get("partition"), "levels": p.summary.get("levels")}
    figures.update(recount(p))
    ok = (figures["rows_code_not_in_grid"] == 0 and figures["of_them_in_different_micro_grids"] == 0 and figures["rows_not_in_exactly_one_micro_grid"] == 0
          and figures["rows_not_in_named_micro_grid"] == 0 and figures["grids_whose_micro_households_differ"] == 0)
    figures["targets"] = {"micro_grids_seconds<60": bool((rt.get("micro_grids") or 1e9) < 60),
                          "every_household_in_exactly_one_micro_grid_inside_its_grid": ok}
    record("micro_grids", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
