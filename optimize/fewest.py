"""The fewest households moved, exactly, on a unit's cell graph (CP-SAT, contiguity by flows).

Cells keep their old grid or move to another; ``k`` groups are used, each an old grid (its code
survives) or a new one, each within the band [lo, hi]; the objective is the households whose
group differs from their old grid (cells of land no old grid covered count nothing), then — far
behind — the cells moved, so land without households stays where it was.

Contiguity is a single-commodity flow from one root cell per group (``_connected``).
Deterministic: a fixed seed and a deterministic time limit; one worker, or on small graphs
(``SMALL_POINTS`` cells, ``SMALL_GRIDS`` grids) several strategies interleaved in deterministic batches (``interleave_search``).
The answer is *proven* fewest on the cell graph only when solved to optimality (``optimal``); otherwise it is the best
found within the limit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

MAX_CELLS = 200      # larger graphs are left to the boundary-move heuristic
DTIME = 2.0          # deterministic time of the model
SMALL_POINTS = 40    # a unit of at most this many points and ...
SMALL_GRIDS = 4      # ... this many grids (3 old ones and one grown) is re-planned on its households' own cells ...
SMALL_DTIME = 20.0   # ... with this deterministic time, its search interleaved over several strategies
SMALL_WORKERS = 8
CELL_WEIGHT = 1      # objective: households moved x (cells + 1), plus cells moved


@dataclass(frozen=True)
class FewestMoves:
    """A contiguous labelling of the cells with few households moved.

    labels: group of each cell (0..groups-1; old grid j is group j, new groups follow);
    used: the groups used, in order; moved: households moved; optimal: proven fewest.
    """

    labels: np.ndarray
    used: list[int]
    moved: int
    optimal: bool


def fewest_moves(old: np.ndarray, h: np.ndarray, nbrs: list, k_old: int, k: int, lo: int, hi: int,
                 hint: np.ndarray | None = None, seed: int = 0) -> FewestMoves | None:
    """Label the cells with the fewest households moved (see the module docstring); None if not found.

    Parameters
    ----------
    old : (c,) old grid of each cell (-1: land no old grid covered)
    h : (c,) households of each cell
    nbrs : adjacency lists of the cells
    k_old, k : old grids, grids wanted
    lo, hi : the band in households
    hint : (c,) a labelling to start from (e.g. the heuristic's)
    seed : CP-SAT random seed
    """
    n = len(h)
    if n > MAX_CELLS or k < 1:
        return None
    groups = max(k, k_old)
    m = cp_model.CpModel()
    x = [[m.NewBoolVar("") for _ in range(groups)] for _ in range(n)]
    used = [m.NewBoolVar("") for _ in range(groups)]
    for row in x:
        m.AddExactlyOne(row)
    m.Add(sum(used) == k)
    for g in range(groups):
        load = sum(int(h[c]) * x[c][g] for c in range(n) if h[c] > 0)
        m.Add(load >= lo).OnlyEnforceIf(used[g])
        m.Add(load <= hi).OnlyEnforceIf(used[g])
        for c in range(n):
            m.AddImplication(x[c][g], used[g])
    for g in range(k_old, groups - 1):      # new groups are interchangeable: use them in order
        m.AddImplication(used[g + 1], used[g])
    stay = [x[c][int(old[c])] for c in range(n) if old[c] >= 0]
    w = [int(h[c]) for c in range(n) if old[c] >= 0]
    m.Minimize(sum((wi * (n + 1) + CELL_WEIGHT) * (1 - s) for wi, s in zip(w, stay)))
    roots, flows = _connected(m, x, used, nbrs)
    small = n <= SMALL_POINTS and k <= SMALL_GRIDS
    # OR-Tools 9.15 aborts the process (CHECK heuristics.fixed_search) on an interleaved search given a
    # hint that is no solution: small graphs are hinted only with a labelling that meets every rule
    if hint is not None and (not small or _feasible(np.asarray(hint), h, nbrs, k, lo, hi)):
        _hint(m, x, used, roots, flows, np.asarray(hint), nbrs)
    solver = cp_model.CpSolver()
    solver.parameters.random_seed = int(seed)
    if small:                      # interleaved workers: several strategies, deterministic
        solver.parameters.num_workers = SMALL_WORKERS
        solver.parameters.interleave_search = True
        solver.parameters.max_deterministic_time = SMALL_DTIME
    else:
        solver.parameters.num_workers = 1
        solver.parameters.max_deterministic_time = DTIME
    st = solver.Solve(m)
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    lab = np.array([int(np.argmax([solver.Value(v) for v in row])) for row in x], dtype=np.int64)
    moved = int(sum(h[c] for c in range(n) if old[c] >= 0 and lab[c] != old[c]))
    return FewestMoves(lab, [int(g) for g in np.unique(lab)], moved, st == cp_model.OPTIMAL)


def _connected(m: cp_model.CpModel, x: list, used: list, nbrs: list) -> tuple[list, list]:
    """Make every group one connected piece: a single-commodity flow from one root cell per group.

    Every cell of a group other than its root takes in at least one unit more than it sends on,
    along arcs between cells of that group only, so each is reached from the root inside the group.
    """
    n, groups = len(x), len(used)
    arcs = [(a, int(b)) for a in range(n) for b in nbrs[a]]
    roots, flows = [], []
    for g in range(groups):
        root = [m.NewBoolVar("") for _ in range(n)]
        m.Add(sum(root) == used[g])
        for c in range(n):
            m.AddImplication(root[c], x[c][g])
        f = {}
        for a, b in arcs:
            v = m.NewIntVar(0, n, "")
            m.Add(v == 0).OnlyEnforceIf(x[a][g].Not())
            m.Add(v == 0).OnlyEnforceIf(x[b][g].Not())
            f[a, b] = v
        inflow: list[list] = [[] for _ in range(n)]
        outflow: list[list] = [[] for _ in range(n)]
        for (a, b), v in f.items():
            outflow[a].append(v)
            inflow[b].append(v)
        for c in range(n):
            m.Add(sum(inflow[c]) - sum(outflow[c]) >= x[c][g] - n * root[c])
        roots.append(root)
        flows.append(f)
    return roots, flows


def _tree(lab: np.ndarray, g: int, start: int, nbrs: list) -> tuple[list[int], dict[int, int]]:
    """Breadth-first order and parents of the cells of group ``g`` reached from ``start`` inside it."""
    parent, order = {start: -1}, [start]
    for a in order:
        for b in nbrs[a]:
            b = int(b)
            if lab[b] == g and b not in parent:
                parent[b] = a
                order.append(b)
    return order, parent


def _feasible(lab: np.ndarray, h: np.ndarray, nbrs: list, k: int, lo: int, hi: int) -> bool:
    """Return whether a labelling uses ``k`` groups, each within [lo, hi] and connected."""
    groups = np.unique(lab)
    if len(groups) != k or lab.min() < 0:
        return False
    for g in groups:
        cells = np.flatnonzero(lab == g)
        if not lo <= int(h[cells].sum()) <= hi or len(_tree(lab, int(g), int(cells[0]), nbrs)[0]) != len(cells):
            return False
    return True


def _hint(m: cp_model.CpModel, x: list, used: list, roots: list, flows: list, hint: np.ndarray, nbrs: list) -> None:
    """Hint a whole solution from a labelling: its cells, and for each connected group a BFS tree's flows.

    A complete hint lets the solver start from the heuristic's answer at once (a group of the hint
    that is not connected gets its cells hinted only).
    """
    n = len(x)
    for g in range(len(used)):
        cells = np.flatnonzero(hint == g)
        m.AddHint(used[g], len(cells) > 0)
        for c in range(n):
            m.AddHint(x[c][g], bool(hint[c] == g))
        if not len(cells):
            for c in range(n):
                m.AddHint(roots[g][c], False)
            for v in flows[g].values():
                m.AddHint(v, 0)
            continue
        order, parent = _tree(hint, g, int(cells[0]), nbrs)
        if len(order) < len(cells):
            continue                       # not connected: leave the flows to the solver
        size = {c: 1 for c in order}
        for c in reversed(order[1:]):
            size[parent[c]] += size[c]
        for c in range(n):
            m.AddHint(roots[g][c], c == order[0])
        for (a, b), v in flows[g].items():
            m.AddHint(v, size[b] if parent.get(b) == a else 0)
