"""The fewest households that must change grid code for a unit to meet the band, geometry ignored (CP-SAT).

Points keep their old grid or move; ``k`` groups each hold between ``lo`` and ``hi`` households;
a group is an old grid's code (at most once) or a new code. Ignoring geometry and contiguity makes
this a lower bound for any partition of the unit: a repair within 1.2× of it is near the best.
"""
from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

from gridplan.optimize.certify import band


def fewest_moved(old: np.ndarray, w: np.ndarray, k_old: int, k: int, tol: float) -> int:
    """Return the minimum households whose group differs from ``old`` (-1: no old grid, never counted)."""
    lo, hi = band(int(w.sum()), k, tol)
    groups = max(k, k_old)                 # old codes 0..k_old-1, new codes after them
    m = cp_model.CpModel()
    x = [[m.NewBoolVar("") for _ in range(groups)] for _ in range(len(w))]
    used = [m.NewBoolVar("") for _ in range(groups)]
    for row in x:
        m.AddExactlyOne(row)
    m.Add(sum(used) == k)
    for g in range(groups):
        load = sum(int(w[p]) * x[p][g] for p in range(len(w)))
        m.Add(load >= lo).OnlyEnforceIf(used[g])
        m.Add(load <= hi).OnlyEnforceIf(used[g])
        m.Add(load == 0).OnlyEnforceIf(used[g].Not())
    m.Minimize(sum(int(w[p]) * (1 - x[p][int(old[p])]) for p in range(len(w)) if old[p] >= 0))
    s = cp_model.CpSolver()
    s.parameters.num_workers = 1
    s.parameters.random_seed = 0
    s.parameters.max_deterministic_time = 30.0
    assert s.Solve(m) == cp_model.OPTIMAL
    return int(round(s.ObjectiveValue()))
