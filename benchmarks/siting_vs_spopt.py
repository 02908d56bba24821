"""Siting: gridplan's OR-Tools models vs spopt (PuLP + CBC) on one generated instance, in one run.

Instance: demand points clustered around towns (integer weights), candidates drawn from the demand
points, a 20-minute walk radius (1,333 m). Both solve the same MCLP (P new sites) and LSCP (cover
everything coverable — demand no candidate reaches is dropped first, as spopt cannot solve otherwise).
gridplan: sparse coverage (cKDTree) -> preprocessing (identical rows merged) -> HiGHS MIP (scipy.optimize.milp,
relative and absolute gap 0, node limit). spopt: MCLP.from_cost_matrix / LSCP.from_cost_matrix on the dense
distance matrix, PuLP + CBC with gapRel=0 (so both prove optimality).
Then a large MCLP for gridplan alone (default 200,000 x 5,000).

    python benchmarks/siting_vs_spopt.py [--demand 20000 --candidates 1000 --p 50]
                                         [--big-demand 200000 --big-candidates 5000] [--skip-spopt]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.record import record  # noqa: E402
from gridplan.geo import travel  # noqa: E402
from gridplan.optimize import siting_models as sm  # noqa: E402

SPEED = 4000.0 / 60.0
MINUTES = 20.0


def instance(n, m, seed=0, side=40_000.0, towns=60):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, side, (towns, 2))
    spread = rng.uniform(300, 2500, towns)
    lab = rng.integers(0, towns, n)
    xy = centers[lab] + rng.normal(size=(n, 2)) * spread[lab, None]
    w = rng.integers(1, 6, n)
    cand = xy[rng.choice(n, m, replace=False)] + rng.normal(0, 50, (m, 2))
    return xy, w, cand


def run_gridplan(xy, w, cand, p):
    t = time.perf_counter()
    cov = travel.straight_coverage(xy, cand, SPEED, MINUTES)
    t_cov = time.perf_counter() - t
    out = {}
    t = time.perf_counter()
    r = sm.max_cover(cov, w, p)
    out["mclp"] = dict(time=t_cov + time.perf_counter() - t, obj=r.covered_weight, bound=r.bound, status=r.status)
    keep = np.diff(cov.indptr) > 0
    t = time.perf_counter()
    r2 = sm.min_cover(cov[keep], w[keep])
    out["lscp"] = dict(time=t_cov + time.perf_counter() - t, obj=len(r2.open), bound=r2.bound, status=r2.status)
    return out, keep


def run_spopt(xy, w, cand, p, keep, time_limit=600):
    import pulp
    from spopt.locate import LSCP, MCLP
    out = {}
    radius = MINUTES * SPEED
    t = time.perf_counter()
    d = np.hypot(xy[:, None, 0] - cand[None, :, 0], xy[:, None, 1] - cand[None, :, 1])
    mclp = MCLP.from_cost_matrix(d, w, radius, p_facilities=p)
    mclp = mclp.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=0), results=False)
    y = np.array([v.value() > 0.5 for v in mclp.fac_vars])
    obj = float(w[(d[:, y] <= radius).any(axis=1)].sum())
    out["mclp"] = dict(time=time.perf_counter() - t, obj=obj, status=pulp.LpStatus[mclp.problem.status])
    t = time.perf_counter()
    dk = np.hypot(xy[keep, None, 0] - cand[None, :, 0], xy[keep, None, 1] - cand[None, :, 1])
    lscp = LSCP.from_cost_matrix(dk, radius)
    lscp = lscp.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=0), results=False)
    y = np.array([v.value() > 0.5 for v in lscp.fac_vars])
    out["lscp"] = dict(time=time.perf_counter() - t, obj=int(y.sum()), status=pulp.LpStatus[lscp.problem.status])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--demand", type=int, default=20_000)
    ap.add_argument("--candidates", type=int, default=1_000)
    ap.add_argument("--p", type=int, default=50)
    ap.add_argument("--big-demand", type=int, default=200_000)
    ap.add_argument("--big-candidates", type=int, default=5_000)
    ap.add_argument("--big-p", type=int, default=150)
    ap.add_argument("--skip-spopt", action="store_true")
    a = ap.parse_args(argv)
    print(f"# siting vs spopt — {time.strftime('%Y-%m-%d')} — {platform.machine()} {platform.processor() or ''}"
          f" python {platform.python_version()}")
    xy, w, cand = instance(a.demand, a.candidates)
    g, keep = run_gridplan(xy, w, cand, a.p)
    s = None if a.skip_spopt else run_spopt(xy, w, cand, a.p, keep)
    print(f"\n{a.demand:,} demand x {a.candidates:,} candidates, walk {MINUTES:g} min ({MINUTES * SPEED:.0f} m), "
          f"MCLP P={a.p}\n")
    print("| model | gridplan s | gridplan objective (bound, status) | spopt s | spopt objective (status) | speed-up |")
    print("|---|---:|---|---:|---|---:|")
    for k, label in (("mclp", "MCLP covered weight"), ("lscp", "LSCP sites")):
        gg = g[k]
        row = f"| {label} | {gg['time']:.2f} | {gg['obj']:,.0f} ({gg['bound']:,.0f}, {gg['status']}) |"
        if s:
            ss = s[k]
            row += f" {ss['time']:.2f} | {ss['obj']:,.0f} ({ss['status']}) | {ss['time'] / gg['time']:.1f}x |"
        else:
            row += " - | - | - |"
        print(row)
    big = None
    if a.big_demand:
        xy, w, cand = instance(a.big_demand, a.big_candidates, seed=1, side=120_000.0, towns=400)
        t = time.perf_counter()
        cov = travel.straight_coverage(xy, cand, SPEED, MINUTES)
        t_cov = time.perf_counter() - t
        r = sm.max_cover(cov, w, a.big_p)
        tot = time.perf_counter() - t
        red = sm.reduce(cov, w)
        print(f"\nlarge MCLP: {a.big_demand:,} demand x {a.big_candidates:,} candidates, P={a.big_p}: "
              f"{tot:.1f} s (coverage {t_cov:.1f} s, {cov.nnz:,} pairs, {red.cov.shape[0]:,} merged rows); "
              f"covered {r.covered_weight:,.0f} of {r.total_weight:,.0f}, bound {r.bound:,.0f}, "
              f"gap {r.gap:.2%}, {r.status}")
        big = {"demand": a.big_demand, "candidates": a.big_candidates, "p": a.big_p, "seconds": tot,
               "coverage_s": t_cov, "pairs": cov.nnz, "merged_rows": red.cov.shape[0], "covered": r.covered_weight,
               "total": r.total_weight, "bound": r.bound, "gap": r.gap, "status": r.status}
    record("siting_vs_spopt", {"demand": a.demand, "candidates": a.candidates, "p": a.p, "minutes": MINUTES,
                               "gridplan": g, "spopt": s, "large_mclp": big},
           notes="each model timed once, cold, in the same run; times include coverage / distance matrix")


if __name__ == "__main__":
    main()
