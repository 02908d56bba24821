"""Routing cases into grids end to end, in-process: CSV in, routed cases and workload files out.

A plan of the bundled sample county (made once, untimed, unless ``--plan DIR`` is given) and
``--cases`` seeded cases (``benchmarks/make_cases.py``, written to a CSV, untimed). Timed the same
way every run (``benchmarks/timing.measure``: one warm-up, best and median of ``--repeat``): read
the plan (``GridIndex`` as the server builds it, grids, workers, households), read the CSV under the
hostile-upload limits (``geo.io`` reader, pyarrow), route by the lookup index, count the workload
over a period, write the routed cases, workload.csv, case_workload.gpkg, household_cases.csv and the
HTML report. Stage seconds of the last run are reported too, and the agreement of the routed
answers with ``GridIndex.lookup_dicts`` (what ``/v1/lookup`` answers) on ``--check`` cases.

Target (issue 13): 1,000,000 cases in < 5 s end to end, answers equal to /v1/lookup.

    python benchmarks/route_cases.py [--cases 1000000] [--repeat 3] [--plan DIR] [--out-format csv|parquet]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.make_cases import make_cases  # noqa: E402
from benchmarks.record import record  # noqa: E402
from benchmarks.timing import measure  # noqa: E402

PERIOD = ("2026-03-01", "2026-05-31")


def end_to_end(plan_dir: Path, cases: Path, out: Path, stages: dict):
    """Load the plan, route the cases, write every output; stage seconds into ``stages``."""
    from gridplan.optimize.caseroute import load_plan, route_plan_cases, write_route
    t0 = time.perf_counter()
    plan = load_plan(plan_dir)
    t1 = time.perf_counter()
    res = route_plan_cases(plan, cases, period=PERIOD)
    t2 = time.perf_counter()
    write_route(res, out)
    t3 = time.perf_counter()
    stages.update(load_plan_s=round(t1 - t0, 3), read_route_count_s=round(t2 - t1, 3), write_s=round(t3 - t2, 3))
    return plan, res


def agreement(plan, res, n: int) -> float:
    """Share of ``n`` routed cases whose answer equals GridIndex.lookup_dicts at their point."""
    rows = res.routed.head(n)
    answers = plan.index.lookup_dicts(rows["lon"].to_numpy(float), rows["lat"].to_numpy(float))
    same = 0
    for rec, a in zip(rows.astype(object).where(rows.notna(), None).to_dict("records"), answers):
        if a is None:
            same += rec["grid_code"] is None
        else:
            same += all(rec[f] == a[f] for f in ("grid_code", "village_code", "station_id", "minutes", "covered")) \
                and (rec["worker_ids"] or "") == ";".join(a["worker_ids"])
    return same / max(len(rows), 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--plan", type=Path, default=None)
    ap.add_argument("--check", type=int, default=20_000)
    ap.add_argument("--out-format", choices=("csv", "parquet"), default="csv",
                    help="the routed cases file (the other outputs are always written)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        plan_dir = args.plan
        if plan_dir is None:
            from gridplan import plan
            from gridplan.geo.samples import sample_paths
            p = sample_paths("sample")
            plan_dir = plan(p["boundaries"], p["households"], p.get("facilities"), p.get("roster"),
                            time_limit_per_unit=3.0).to_dir(d / "plan", report=False)
        import pyogrio
        grids = pyogrio.read_dataframe(plan_dir / "plan.gpkg", layer="grids")
        cases = make_cases(grids, args.cases, seed=0)
        csv = d / "cases.csv"
        cases.to_csv(csv, index=False)
        stages: dict = {}
        out = d / "out" / f"routed.{args.out_format}"
        t = measure(lambda: end_to_end(plan_dir, csv, out, stages), args.repeat)
        plan_layers, res = t.result
        agree = agreement(plan_layers, res, args.check)
        size_mb = csv.stat().st_size / 2**20
    print(f"{args.cases:,} cases ({size_mb:.0f} MB CSV): best {t.best:.2f} s, median {t.median:.2f} s; "
          f"stages {stages}; agreement with lookup {agree:.4%}")
    record("route_cases", {"cases": args.cases, "csv_mb": round(size_mb, 1), "grids": len(grids),
                           "routed_file_format": args.out_format,
                           "routed": int(res.meta["routed"]), "in_period": int(res.meta["in_period"]),
                           "end_to_end": t.as_dict(), "cases_per_s_best": round(args.cases / t.best),
                           "stages_last_run": stages, "lookup_agreement": {"cases": min(args.check, args.cases),
                                                                           "share_equal": round(agree, 6)},
                           "target_met": bool(t.best < 5.0 and np.isclose(agree, 1.0))},
           notes="target: 1,000,000 cases < 5 s end to end from a CSV in-process, answers equal to /v1/lookup")


if __name__ == "__main__":
    main()
