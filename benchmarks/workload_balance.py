"""Workload balance against household-only balance on the same county, side by side.

    python benchmarks/make_workload.py --out benchmarks/out/workload     # once (~30k households)
    python benchmarks/workload_balance.py [--data benchmarks/out/workload] [--jobs 2]

The county (``make_workload.py``): a fifth of the households, clustered in each unit's "old
quarter", carry three times the workload (``households + 2*elderly_alone``). It is planned three times,
in process, without siting: ``--balance-by households`` (the default), ``--balance-by workload``,
and workload with ``--also-balance households:0.15``, all with the same ``--workload`` so that every
grid's workload is summed. For each plan the
workload and the households of every grid are recounted here from the households layer (not taken
from the plan), against the mean of the grid's unit, over the units with more than one grid.

Target (issue 13): with workload balance, workload within ±10% for >= 99% of the grids where
certifiable (grids of units whose ±10% is proven unreachable — balance "certified" — are left out
of that share and counted apart; uncertified misses stay in).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOL = 0.10


def spread(p, data: pd.DataFrame, expression: str) -> dict:
    """Recount each grid's workload and households from the households layer; their spread per unit."""
    from gridplan.optimize.workload_expr import evaluate, parse_workload
    e = parse_workload(expression)
    w, _ = evaluate(e, {c: data[c].to_numpy(float) for c in e.columns}, len(data))
    codes = data["id"].astype(str).map(p.households.set_index(p.households.columns[0])["grid_code"])
    g = pd.DataFrame({"grid": codes, "w": w, "h": data["households"].to_numpy(float)}).dropna(subset=["grid"])
    per = g.groupby("grid")[["w", "h"]].sum()
    grids = p.grids.set_index("grid_code")[["village_code"]].join(per)
    multi = grids.groupby("village_code")["w"].transform("size") > 1
    grids = grids[multi]
    out = {"grids_in_units_with_2_or_more": int(len(grids))}
    for col, name in (("w", "workload"), ("h", "households")):
        mean = grids.groupby("village_code")[col].transform("mean")
        dev = (grids[col] - mean).abs() / mean
        out[name] = {"within_10pct_share": round(float((dev <= TOL + 1e-9).mean()), 4),
                     "max_abs_dev": round(float(dev.max()), 4), "p95_abs_dev": round(float(dev.quantile(0.95)), 4),
                     "mean_abs_dev": round(float(dev.mean()), 4)}
    return out, grids


def certifiable_share(p, grids: pd.DataFrame) -> dict:
    """Return the workload-within share over grids outside certified-unreachable units, and the counts apart."""
    status = {}
    for prob in p.summary.get("problems", []):
        if prob.get("kind") in ("tolerance_unreachable", "model_miss"):
            status[str(prob.get("row", "")).removeprefix("unit ")] = prob["kind"]
    mean = grids.groupby("village_code")["w"].transform("mean")
    dev = (grids["w"] - mean).abs() / mean
    cert = grids["village_code"].map(status).eq("tolerance_unreachable").to_numpy()
    miss = grids["village_code"].map(status).eq("model_miss").to_numpy()
    keep = ~cert
    return {"workload_within_10pct_share_where_certifiable": round(float((dev[keep] <= TOL + 1e-9).mean()), 4),
            "grids_in_certified_unreachable_units": int(cert.sum()),
            "grids_in_uncertified_miss_units": int(miss.sum())}


def main(argv=None) -> int:
    """Plan the county both ways and record the figures side by side."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "out" / "workload")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--expression", default="households + 2*elderly_alone")
    ap.add_argument("--also", default="households:0.15", help="the third run's --also-balance")
    a = ap.parse_args(argv)
    from benchmarks.record import record
    from gridplan import plan
    data = pd.read_csv(a.data / "households.csv", dtype={"id": str})
    figures: dict = {"households": int(data["households"].sum()), "rows": int(len(data)),
                     "heavy_share": round(float(data["elderly_alone"].sum() / data["households"].sum()), 4),
                     "workload": a.expression, "tolerance": TOL, "jobs": a.jobs}
    runs = {"balance_by_households": {"balance_by": "households"},
            "balance_by_workload": {"balance_by": "workload"},
            "balance_by_workload_also_households": {"balance_by": "workload", "also_balance": a.also}}
    for name, extra in runs.items():
        t0 = time.perf_counter()
        p = plan(a.data / "boundaries.gpkg", a.data / "households.csv", jobs=a.jobs, coverage_target=0,
                 tolerance=TOL, workload=a.expression, **extra)
        secs = time.perf_counter() - t0
        res, grids = spread(p, data, a.expression)
        res.update(certifiable_share(p, grids), seconds=round(secs, 1), grids=int(len(p.grids)),
                   units_by_balance=p.summary["partition"]["units_by_balance"], options=extra)
        figures[name] = res
    got = figures["balance_by_workload"]["workload_within_10pct_share_where_certifiable"]
    figures["targets"] = {"workload_within_10pct_where_certifiable>=0.99": bool(got >= 0.99)}
    record("workload_balance", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
