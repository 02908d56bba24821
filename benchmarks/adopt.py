"""Adopt after growth on the sample county: how many households keep their grid code.

The scenario of issue 12: plan the bundled sample county, add 15% households (new points near
old ones) in a third of its villages, and re-plan against the first plan (``--baseline``). Prints
the keep share — of the households whose old grid still lies within the tolerance of its unit's
new mean, the share that keep their grid code (target ≥ 0.90) — with the households moved, the
grids kept / created / retired, the uncertified misses (target 0) and both runs' seconds.

    PYTHONPATH=. python benchmarks/adopt.py [--sample sample] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geopandas as gpd  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.record import begin, record  # noqa: E402
from gridplan.geo.samples import sample_paths  # noqa: E402
from gridplan.optimize import plan  # noqa: E402
from tests.helpers.adopt_scenario import grow, keep_share  # noqa: E402


def main() -> None:
    """Run the scenario and record its figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", default="sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=3.0)
    a = ap.parse_args()
    run = begin()
    p = sample_paths(a.sample)
    hh = pd.read_csv(p["households"], dtype={"id": str})
    b = gpd.read_file(p["boundaries"])
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        old = plan(p["boundaries"], p["households"], time_limit_per_unit=a.time_limit)
        old_dir = old.to_dir(Path(d) / "v1", report=False)
        t_old = time.perf_counter() - t
        grown, chosen = grow(hh, b, seed=a.seed)
        path = Path(d) / "grown.csv"
        grown.to_csv(path, index=False)
        t = time.perf_counter()
        new = plan(p["boundaries"], path, time_limit_per_unit=a.time_limit, baseline=str(old_dir))
        t_new = time.perf_counter() - t
    ks = keep_share(old.grids, new.grids, grown)
    units = new.summary["baseline"]["units"]
    figures = {"sample": a.sample, "seed": a.seed, "grown_units": len(chosen), "units": int(new.summary["units"]),
               "households_before": int(len(hh) if "households" not in hh else hh["households"].sum()),
               **ks, "keep_share_target": 0.90,
               "grids_before": int(len(old.grids)), "grids_after": int(len(new.grids)),
               "codes_created": sum(len(u["created"]) for u in units),
               "codes_retired": sum(len(u["retired"]) for u in units),
               "uncertified_miss_grids": new.summary["balance"].get("uncertified_miss_grids"),
               "certified_miss_grids": new.summary["balance"].get("certified_miss_grids"),
               "plan_s": round(t_old, 1), "adopt_s": round(t_new, 1)}
    record("adopt", figures, run)


if __name__ == "__main__":
    main()
