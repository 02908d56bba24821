"""How long each plan edit takes on a 50k-household county (issue 12 target: each edit but rebalance
< 1 s; rebalance within its unit's partition time + 1 s).

    python benchmarks/edit_speed.py                       # generates + plans the county into /tmp first
    python benchmarks/edit_speed.py --plan DIR            # an existing plan directory

The county is ``benchmarks/make_towers.py --households 50000`` (Sanya's outline, tower blocks),
planned with ``gridplan plan --coverage-target 0`` (no stations: edits do not touch them). Every
edit runs on the unit with the most grids, ``--repeat`` times from the same plan (median and max
reported; the first, warm-up call is not counted). Edits that would leave grids out of tolerance
are forced, so each call does the whole work (balance verdict and certificate included). The
reference for rebalance is ``partition_unit`` on the same unit and points, timed in alternation
with it; the target holds when the median pair's rebalance took at most 1 s more than its partition
(the max is reported too: on a shared machine one pair can catch a load spike).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _county(work: Path) -> Path:
    """Generate the 50k-household towers county and plan it; return the plan directory."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_towers.py"), "--out", str(work / "county"),
                    "--households", "50000"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-c", "from gridplan.api.cli import main; main()", "plan", "--boundaries",
                    str(work / "county" / "boundaries.gpkg"), "--households", str(work / "county" / "households.parquet"),
                    "--coverage-target", "0", "--jobs", "1", "--quiet", "--out", str(work / "plan")],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return work / "plan"


def _timed(fn, repeat: int) -> dict:
    fn()                                   # warm-up: imports, CRS transformers
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return {"median_s": round(float(np.median(runs)), 4), "max_s": round(float(max(runs)), 4)}


def _pair(plan, unit: str):
    """Two grids of ``unit`` sharing an edge, and the ids of the 5 households of the second nearest to it."""
    import shapely
    g = plan.grids[plan.grids.village_code == unit].set_index("grid_code")
    codes = list(g.index)
    for a in codes:
        for b in codes:
            shared = shapely.line_merge(shapely.intersection(g.geometry[a].boundary, g.geometry[b].boundary))
            if a != b and shapely.length(shared) > 0:
                hh = plan.households[plan.households.grid_code == b]
                mid = shapely.line_interpolate_point(shared, 0.5, normalized=True)
                d = shapely.distance(mid, hh.geometry.values)
                return a, b, hh.iloc[np.argsort(d)[:5], 0].astype(str).tolist()
    raise SystemExit(f"unit {unit}: no two grids share an edge")


def _partition_reference(plan, unit: str):
    """Return a callable running partition_unit on ``unit`` as the plan did (metric CRS, same points)."""
    from gridplan.geo.regrid import metric_reprojectors
    from gridplan.optimize.edit_split import partition_options
    from gridplan.optimize.edit_state import plan_target
    from gridplan.optimize.partition import partition_unit
    u = plan.units[plan.units.village_code == unit].geometry.iloc[0]
    hh = plan.households[plan.households.village_code == unit]
    fwd = metric_reprojectors(u.bounds)[0]
    geom, xy = fwd.geom(u), fwd.xy(np.column_stack([hh.geometry.x, hh.geometry.y]))
    h = hh["households"].to_numpy(np.int64)
    opts, target = partition_options(plan), plan_target(plan)
    return lambda: partition_unit(geom, xy, h, target, opts)


def _rebalance_vs_partition(plan, unit: str, repeat: int) -> dict:
    """Time rebalance and partition_unit on the same unit in alternation (so load drifts hit both alike)."""
    reb, ref = (lambda: plan.rebalance(unit, force=True)), _partition_reference(plan, unit)
    reb(), ref()
    a, b = [], []
    for _ in range(repeat):
        for fn, out in ((reb, a), (ref, b)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    over = np.array(a) - np.array(b)
    return {"rebalance": {"median_s": round(float(np.median(a)), 4), "max_s": round(float(max(a)), 4)},
            "partition_unit (reference)": {"median_s": round(float(np.median(b)), 4), "max_s": round(float(max(b)), 4)},
            "rebalance_overhead_s": {"median_s": round(float(np.median(over)), 4), "max_s": round(float(over.max()), 4)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", type=Path, default=None, help="a plan directory (default: generate the county)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    from benchmarks.record import begin, record
    from gridplan.optimize.result import read_plan
    with tempfile.TemporaryDirectory(prefix="edit-speed-") as tmp:
        plan_dir = args.plan or _county(Path(tmp))
        plan = read_plan(plan_dir)
    run = begin()
    unit = plan.grids.groupby("village_code").size().idxmax()
    a, b, ids = _pair(plan, unit)
    edits = {
        "lock": lambda: plan.lock([a]),
        "move": lambda: plan.move(ids, to=a, force=True),
        "merge": lambda: plan.merge_grids(a, b, force=True),
        "split": lambda: plan.split(a, k=2, force=True),
    }
    figures = {"households": int(plan.households["households"].sum()), "household_rows": len(plan.households),
               "grids": len(plan.grids), "unit": str(unit), "unit_grids": int((plan.grids.village_code == unit).sum()),
               "unit_households": int(plan.households.loc[plan.households.village_code == unit, "households"].sum()),
               "repeat": args.repeat}
    for name, fn in edits.items():
        figures[name] = _timed(fn, args.repeat)
    figures.update(_rebalance_vs_partition(plan, unit, args.repeat))
    slowest = max(figures[k]["max_s"] for k in ("lock", "move", "merge", "split"))
    figures["target_edits_under_1s"] = bool(slowest < 1.0)
    figures["target_rebalance_within_partition_plus_1s"] = bool(figures["rebalance_overhead_s"]["median_s"] <= 1.0)
    record("edit_speed", figures, run=run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
