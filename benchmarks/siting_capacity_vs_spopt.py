"""Capacitated LSCP and p-center: gridplan vs spopt (PuLP + CBC), and a large capacitated MCLP, in one run.

Instances as in ``siting_vs_spopt.py`` (demand clustered around towns, integer weights, candidates
drawn from the demand, a 20-minute walk); demand no candidate reaches is dropped first (spopt's
CLSCP cannot solve otherwise). Every station holds ``--capacity`` households.

* CLSCP (split assignment): gridplan ``siting_capcuts.cut_capacitated`` on the sparse pairs within
  reach; spopt ``LSCP.from_cost_matrix(..., facility_capacity_arr, demand_quantity_arr)`` on the
  dense distance matrix, CBC with gapRel=0.
* p-center (``--p-center`` sites): gridplan ``siting_center.p_center`` (binary search over the
  distinct distances, covering MIPs); spopt ``PCenter.from_cost_matrix``, CBC with gapRel=0.

spopt runs in its own process with a wall-clock cap (``--spopt-cap`` seconds) and an address-space
cap (``--spopt-mem-gb``); a run that hits either is reported as such. A small instance
(``--verify-demand`` x ``--verify-candidates``) is solved by both to compare the optima; the large one
(default 20,000 x 1,000) measures the speed-up; ``--demand 0 --verify-demand 0`` skips both. Then a capacitated MCLP for gridplan alone (default
200,000 x 5,000, split assignment): the per-round trace, the gap reached in ``--big-budget`` seconds
(coverage computation included) and the gap its deterministic limits reach, and the time taken.

    python benchmarks/siting_capacity_vs_spopt.py [--demand 20000 --candidates 1000 --capacity 300 --p-center 300]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.record import record  # noqa: E402
from benchmarks.siting_vs_spopt import MINUTES, SPEED, instance  # noqa: E402
from gridplan.geo import travel  # noqa: E402
from gridplan.optimize import (
    siting_capcuts as cc,  # noqa: E402
    siting_center as ce,  # noqa: E402
)


def reachable(n, m, seed=0, **kw):
    """The instance with only the demand some candidate reaches, and its coverage pairs."""
    xy, w, cand = instance(n, m, seed=seed, **kw)
    cov = travel.straight_coverage(xy, cand, SPEED, MINUTES)
    keep = np.diff(cov.indptr) > 0
    return xy[keep], w[keep].astype(float), cand, cov[keep]


def run_gridplan(xy, w, cand, cov, capacity, p):
    out = {}
    t = time.perf_counter()
    r = cc.cut_capacitated(cov, w, np.full(len(cand), float(capacity)))
    out["clscp"] = dict(time=time.perf_counter() - t, obj=r.objective, bound=r.bound, status=r.status,
                        notes=r.notes, max_load=float(r.load.max()))
    t = time.perf_counter()
    d = np.hypot(xy[:, None, 0] - cand[None, :, 0], xy[:, None, 1] - cand[None, :, 1])
    r = ce.p_center(d, p)
    out["pcenter"] = dict(time=time.perf_counter() - t, obj=r.objective, bound=r.bound, status=r.status,
                          steps=r.steps)
    return out


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20      # kB on Linux


def _spopt_child(q, xy, w, cand, capacity, p, which, mem_gb):
    os.setsid()                     # its own process group: a cap hit kills the CBC it started too
    resource.setrlimit(resource.RLIMIT_AS, (int(mem_gb * 2**30), int(mem_gb * 2**30)))
    t = time.perf_counter()
    try:
        import pulp
        from spopt.locate import LSCP, PCenter
        d = np.hypot(xy[:, None, 0] - cand[None, :, 0], xy[:, None, 1] - cand[None, :, 1])
        if which == "clscp":
            m = LSCP.from_cost_matrix(d, MINUTES * SPEED, facility_capacity_arr=np.full(len(cand), capacity),
                                      demand_quantity_arr=w)
        else:
            m = PCenter.from_cost_matrix(d, p_facilities=p)
        m = m.solve(pulp.PULP_CBC_CMD(msg=False, gapRel=0), results=False)
        obj = m.problem.objective.value()
        q.put(dict(time=time.perf_counter() - t, obj=float(obj), status=pulp.LpStatus[m.problem.status],
                   peak_rss_gb=_peak_gb()))
    except MemoryError:
        q.put(dict(time=None, obj=None, status=f"MemoryError (address space capped at {mem_gb:g} GB)",
                   stopped_after_s=time.perf_counter() - t, peak_rss_gb=_peak_gb()))
    except Exception as e:  # report whatever stopped it
        q.put(dict(time=None, obj=None, status=f"{type(e).__name__}: {str(e)[:200]}",
                   stopped_after_s=time.perf_counter() - t, peak_rss_gb=_peak_gb()))


def run_spopt(xy, w, cand, capacity, p, which, cap_s, mem_gb):
    q = mp.get_context("fork").Queue()
    proc = mp.get_context("fork").Process(target=_spopt_child, args=(q, xy, w, cand, capacity, p, which, mem_gb))
    t = time.perf_counter()
    proc.start()
    proc.join(cap_s)
    if proc.is_alive():
        os.killpg(proc.pid, signal.SIGKILL)     # spopt's process and the CBC solver it runs
        proc.join()
        return dict(time=None, obj=None, status=f"cap hit: not finished in {cap_s:g} s", wall=time.perf_counter() - t)
    return q.get() if not q.empty() else dict(time=None, obj=None, status=f"exit code {proc.exitcode}")


def table(title, g, s):
    print(f"\n{title}\n")
    print("| model | gridplan s | gridplan objective (bound, status) | spopt s | spopt objective (status) | speed-up |")
    print("|---|---:|---|---:|---|---:|")
    for k, label in (("clscp", "capacitated LSCP stations"), ("pcenter", "p-center worst metres")):
        gg, ss = g[k], (s or {}).get(k)
        row = f"| {label} | {gg['time']:.2f} | {gg['obj']:,.2f} ({gg['bound']:,.2f}, {gg['status']}) |"
        if ss and ss.get("time"):
            row += f" {ss['time']:.2f} | {ss['obj']:,.2f} ({ss['status']}) | {ss['time'] / gg['time']:.1f}x |"
        elif ss and ss.get("wall"):
            row += f" - | {ss['status']} | > {ss['wall'] / gg['time']:.0f}x |"
        elif ss:
            row += f" - | {ss['status']} | - |"
        else:
            row += " - | - | - |"
        print(row)


def big_mclp(n, m, p, capacity, rounds, budget_s=120.0):
    """The large capacitated MCLP: the per-round trace, the gap reached by ``budget_s`` and the final gap.

    Times count from before the coverage computation (so "the gap in 2 minutes" includes it). The
    gap of a round is ``(lowest master bound so far - best max-flow served so far) / that bound``;
    the solver's limits are deterministic (rounds, nodes), the budget only reads the trace.
    """
    xy, w, cand = instance(n, m, seed=1, side=120_000.0, towns=400)
    t = time.perf_counter()
    cov = travel.straight_coverage(xy, cand, SPEED, MINUTES)
    t_cov = time.perf_counter() - t
    trace = []

    def progress(rd):
        row = dict(round=rd.round, seconds=t_cov + rd.seconds, served=rd.served, bound=rd.bound,
                   best_served=rd.best_served, best_bound=rd.best_bound, gap=rd.gap, cuts=rd.cuts, nodes=rd.nodes,
                   master_status=rd.master_status)
        trace.append(row)
        print(f"  round {rd.round}: {row['seconds']:.1f} s, served {rd.served:,.0f} (best {rd.best_served:,.0f}), "
              f"bound {rd.bound:,.0f} (best {rd.best_bound:,.0f}), gap {rd.gap:.3%}, {rd.cuts} cut rows, "
              f"master {rd.master_status}", flush=True)

    r = cc.cut_capacitated(cov, w.astype(float), np.full(m, float(capacity)), kind="mclp", p=p, max_rounds=rounds,
                           progress=progress)
    tot = time.perf_counter() - t
    within = [row for row in trace if row["seconds"] <= budget_s]
    at_budget = min((row["gap"] for row in within), default=None)
    print(f"\nlarge capacitated MCLP (split): {n:,} x {m:,}, P={p}, capacity {capacity:g}: {tot:.1f} s "
          f"(coverage {t_cov:.1f} s, {cov.nnz:,} pairs); assigned {r.objective:,.0f} of {r.total_weight:,.0f}, "
          f"bound {r.bound:,.0f}, gap {r.gap:.3%}, {r.status}, {r.notes}")
    print("  gap reached in {:g} s (coverage included): {}".format(
        budget_s, "no round finished" if at_budget is None else f"{at_budget:.3%} after {len(within)} round(s)"))
    return {"demand": n, "candidates": m, "p": p, "capacity": capacity, "seconds": tot, "coverage_s": t_cov,
            "pairs": cov.nnz, "assigned": r.objective, "bound": r.bound, "gap": r.gap, "status": r.status,
            "rounds_limit": rounds, "rounds": len(trace), "notes": r.notes, "trace": trace,
            "budget_s": budget_s, "gap_at_budget": at_budget, "rounds_at_budget": len(within),
            "final_gap": trace[-1]["gap"] if trace else None,
            "gap_definition": "(lowest master bound - best flow served) / lowest master bound; seconds from before "
                              "the coverage computation"}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--demand", type=int, default=20_000)
    ap.add_argument("--candidates", type=int, default=1_000)
    ap.add_argument("--capacity", type=float, default=300)
    ap.add_argument("--p-center", type=int, default=300)
    ap.add_argument("--verify-demand", type=int, default=1_000)
    ap.add_argument("--verify-candidates", type=int, default=60)
    ap.add_argument("--spopt-cap", type=float, default=600)
    ap.add_argument("--spopt-mem-gb", type=float, default=6)
    ap.add_argument("--big-demand", type=int, default=200_000)
    ap.add_argument("--big-candidates", type=int, default=5_000)
    ap.add_argument("--big-p", type=int, default=300)
    ap.add_argument("--big-capacity", type=float, default=2_000)
    ap.add_argument("--big-rounds", type=int, default=8)
    ap.add_argument("--big-budget", type=float, default=120.0, help="seconds at which the large MCLP's gap is read")
    ap.add_argument("--skip-spopt", action="store_true")
    a = ap.parse_args(argv)
    figures = {"minutes": MINUTES, "capacity": a.capacity, "spopt_cap_s": a.spopt_cap, "spopt_mem_gb": a.spopt_mem_gb}
    for key, n, m in (("verify", a.verify_demand, a.verify_candidates), ("large", a.demand, a.candidates)):
        if not n:
            continue
        xy, w, cand, cov = reachable(n, m)
        p = max(2, int(round(a.p_center * m / a.candidates)))
        g = run_gridplan(xy, w, cand, cov, a.capacity, p)
        s = None if a.skip_spopt else {k: run_spopt(xy, w, cand, a.capacity, p, k, a.spopt_cap, a.spopt_mem_gb)
                                       for k in ("clscp", "pcenter")}
        table(f"{len(w):,} demand x {m:,} candidates, capacity {a.capacity:g}, p-center p={p}", g, s)
        figures[key] = {"demand": len(w), "candidates": m, "p_center": p, "gridplan": g, "spopt": s}
    if a.big_demand:
        figures["large_mclp"] = big_mclp(a.big_demand, a.big_candidates, a.big_p, a.big_capacity, a.big_rounds,
                                         a.big_budget)
    record("siting_capacity_vs_spopt", figures,
           notes="each model timed once, cold, in the same run; spopt in its own process with the caps given")


if __name__ == "__main__":
    main()
