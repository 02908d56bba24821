"""Whether a unit's household points could meet the balance band at all, geometry ignored.

A plan may only call a unit's tolerance *unreachable* with a proof. The proof here forgets the map:
the unit's household rows (each row of the households input is one point with its count; rows are
the finest points there are, so a proof for them holds for any grouping of them, merged locations
included) are to be split into k groups, each holding between

    lo = ceil(mean · (1 − tol) − 1e-9)   and   hi = floor(mean · (1 + tol) + 1e-9),   mean = H / k

households. If no such split exists, no partition of the unit into k grids can meet the tolerance.
This is exactly the question ``check_plan.py --certify`` asks (the same rows, the same k — the
unit's grid count —, the same rounding of the band).

The model counts points per distinct size (n_vj: how many points of size v go to group j), so a
unit with thousands of one-household points and a few tower entrances has a handful of distinct
sizes and CP-SAT decides it in milliseconds; a greedy split (largest first into the lightest group)
settles most reachable units before any model is built. When the band is unreachable, a second
model finds the smallest achievable band: min E subject to |k · load_j − H| ≤ E for every group,
so the best possible max deviation |load − mean| / mean is E / H.

Deterministic: one CP-SAT worker, a fixed seed, a deterministic time limit; "undecided" when the
limit is reached (the caller then claims nothing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

DTIME = 2.0          # CP-SAT deterministic time units per model (feasibility, then the band)


@dataclass(frozen=True)
class Certificate:
    """What is known about a unit's band.

    reachable: True (a split within the band exists: ``witness`` holds one group per point),
    False (proven impossible), None (undecided within the limit). best_band: when unreachable, the
    smallest achievable max |load − mean| / mean if proven optimal (else None; ``band_bound`` is
    then a proven lower bound). lo, hi: the band in households.
    """

    reachable: bool | None
    lo: int
    hi: int
    best_band: float | None = None
    band_bound: float | None = None
    witness: np.ndarray | None = None


def band(total: int, k: int, tolerance: float) -> tuple[int, int]:
    """Return (lo, hi): the households a group may hold, rounded inwards as the checker does."""
    mean = total / k
    return math.ceil(mean * (1 - tolerance) - 1e-9), math.floor(mean * (1 + tolerance) + 1e-9)


def certify(sizes, k: int, tolerance: float, dtime: float = DTIME, seed: int = 0) -> Certificate:
    """Decide whether points of these ``sizes`` can be split into ``k`` groups within ``tolerance``.

    Parameters
    ----------
    sizes : array of int
        Households of each point (input row) of the unit.
    k : int
        Number of groups (grids).
    tolerance : float
        Allowed |load − mean| / mean.
    dtime : float
        CP-SAT deterministic time limit per model.
    seed : int
        CP-SAT random seed.

    Returns
    -------
    Certificate
    """
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
    sizes = sizes[sizes > 0]
    total = int(sizes.sum())
    if k <= 1 or total == 0:
        return Certificate(True, total, total, witness=np.zeros(len(sizes), np.int64))
    lo, hi = band(total, k, tolerance)
    if lo <= hi and int(sizes.max()) <= hi:
        g = greedy(sizes, k)
        loads = np.bincount(g, weights=sizes, minlength=k)
        if loads.min() >= lo and loads.max() <= hi:
            return Certificate(True, lo, hi, witness=g)
        verdict = _feasible(sizes, k, lo, hi, dtime, seed)
    else:
        verdict = False
    if verdict is not False:
        return Certificate(verdict, lo, hi)
    best, bound = min_band(sizes, k, dtime, seed)
    return Certificate(False, lo, hi, best_band=best, band_bound=bound)


def splittable(sizes, k: int, lo: int, hi: int, dtime: float = DTIME, seed: int = 0) -> bool | None:
    """Tell whether points of these ``sizes`` split into ``k`` groups of ``lo..hi`` each (None: undecided).

    The cheap necessary conditions first, then the largest-first greedy split, then CP-SAT on
    counts per distinct size within ``dtime``.
    """
    sizes = np.rint(np.asarray(sizes, dtype=float)).astype(np.int64).reshape(-1)
    sizes = sizes[sizes > 0]
    total = int(sizes.sum())
    if k < 1 or lo > hi or total < k * lo or total > k * hi or (len(sizes) and int(sizes.max()) > hi):
        return False
    if k == 1 or total == 0:
        return True
    if len(sizes) < k and lo > 0:
        return False
    g = greedy(sizes, k)
    loads = np.bincount(g, weights=sizes, minlength=k)
    if loads.min() >= lo and loads.max() <= hi:
        return True
    return _feasible(sizes, k, lo, hi, dtime, seed)


def greedy(sizes: np.ndarray, k: int) -> np.ndarray:
    """Assign the largest point first to the lightest group (ties: lowest); return each point's group."""
    order = np.argsort(-sizes, kind="stable")
    loads = np.zeros(k, dtype=np.int64)
    out = np.zeros(len(sizes), dtype=np.int64)
    for i in order:
        j = int(np.argmin(loads))
        out[i] = j
        loads[j] += sizes[i]
    return out


def _count_model(sizes: np.ndarray, k: int, lo: int, hi: int):
    """CP-SAT model on counts per distinct size; loads sorted (the groups are interchangeable)."""
    vals, counts = np.unique(sizes, return_counts=True)
    m = cp_model.CpModel()
    n = [[m.NewIntVar(0, int(c), "") for _ in range(k)] for c in counts]
    for i, c in enumerate(counts):
        m.Add(sum(n[i]) == int(c))
    loads = []
    for j in range(k):
        load = m.NewIntVar(lo, hi, "")
        m.Add(load == sum(int(v) * n[i][j] for i, v in enumerate(vals)))
        loads.append(load)
    for j in range(k - 1):
        m.Add(loads[j] <= loads[j + 1])
    return m, loads


def _solver(dtime: float, seed: int) -> cp_model.CpSolver:
    s = cp_model.CpSolver()
    s.parameters.num_workers = 1
    s.parameters.random_seed = int(seed)
    s.parameters.max_deterministic_time = float(dtime)
    return s


def _feasible(sizes: np.ndarray, k: int, lo: int, hi: int, dtime: float, seed: int) -> bool | None:
    m, _ = _count_model(sizes, k, lo, hi)
    st = _solver(dtime, seed).Solve(m)
    if st in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return True
    if st == cp_model.INFEASIBLE:
        return False
    return None


def min_band(sizes, k: int, dtime: float = DTIME, seed: int = 0) -> tuple[float | None, float]:
    """Return the smallest achievable max |load − mean| / mean and a proven lower bound.

    The first is None when not proven optimal within ``dtime``.

    min E s.t. |k · load_j − H| ≤ E for every group j (integers, so E / H is exact).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    m, loads = _count_model(sizes, k, 0, total)
    e = m.NewIntVar(0, k * total, "E")
    for load in loads:
        m.Add(k * load - total <= e)
        m.Add(total - k * load <= e)
    # the greedy split is a first solution
    g = greedy(sizes, k)
    gl = np.sort(np.bincount(g, weights=sizes, minlength=k).astype(np.int64))
    m.AddHint(e, int(np.max(np.abs(k * gl - total))))
    m.Minimize(e)
    s = _solver(dtime, seed)
    st = s.Solve(m)
    if st == cp_model.OPTIMAL:
        v = float(s.Value(e)) / total
        return v, v
    bound = float(s.BestObjectiveBound()) / total
    return None, max(bound, 0.0)
