"""The fewest households that must change grid code for a unit to meet the band, geometry ignored (CP-SAT).

Points keep their old grid or move; ``k`` groups each hold between ``lo`` and ``hi`` households;
a group is an old grid's code (at most once) or a new code. Ignoring geometry and contiguity makes
this a lower bound for any partition of the unit. ``fewest_moved_contiguous`` adds contiguity over the
points' Voronoi cells (lazy separator rows): the fewest for grids drawn as unions of households' cells.
"""
from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

from gridplan.optimize.certify import band


def _model(old: np.ndarray, w: np.ndarray, k_old: int, k: int, tol: float):
    """The geometry-free model: (model, x[point][group])."""
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
    return m, x


def _solve(m: cp_model.CpModel) -> cp_model.CpSolver | None:
    """Solve to optimality; None when proven infeasible."""
    s = cp_model.CpSolver()
    s.parameters.num_workers = 1
    s.parameters.random_seed = 0
    s.parameters.max_deterministic_time = 30.0
    st = s.Solve(m)
    if st == cp_model.INFEASIBLE:
        return None
    assert st == cp_model.OPTIMAL, s.StatusName(st)
    return s


def fewest_moved(old: np.ndarray, w: np.ndarray, k_old: int, k: int, tol: float) -> int:
    """Return the minimum households whose group differs from ``old`` (-1: no old grid, never counted)."""
    m, _ = _model(old, w, k_old, k, tol)
    s = _solve(m)
    assert s is not None, "no assignment meets the band"
    return int(round(s.ObjectiveValue()))

def voronoi_graph(unit, xy: np.ndarray) -> list[set[int]]:
    """Return the adjacency (shared edges) of the points' Voronoi cells clipped to ``unit``.

    Node ``i < len(xy)`` is the piece of point ``i``'s cell that holds it; a cell that a concave
    unit cuts in pieces adds its other pieces as further nodes (no households), so a grid that
    holds a cell's far piece must reach it through its own neighbours.
    """
    import shapely
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=unit, ordered=True))
    cells = shapely.intersection(cells, unit)
    pts = shapely.points(xy)
    nodes, extra = [], []
    for c, p in zip(cells, pts):
        parts = [q for q in shapely.get_parts(c) if q.geom_type == "Polygon" and q.area > 0]
        main = min(parts, key=lambda q: (not q.covers(p), q.distance(p)))
        nodes.append(main)
        extra += [q for q in parts if q is not main]
    nodes = np.asarray(nodes + extra, dtype=object)
    nbrs: list[set[int]] = [set() for _ in range(len(nodes))]
    a, b = shapely.STRtree(nodes).query(nodes, predicate="intersects")
    for i, j in zip(a, b):
        if i < j and shapely.length(shapely.intersection(nodes[i], nodes[j])) > 1e-6:
            nbrs[i].add(int(j))
            nbrs[j].add(int(i))
    return nbrs


def contiguous_fewest(unit, xy: np.ndarray, w: np.ndarray, old: np.ndarray, k_old: int, k: int,
                      tol: float) -> int | None:
    """``fewest_moved_contiguous`` on the Voronoi cells of ``xy`` in ``unit`` (far pieces hold nobody)."""
    nbrs = voronoi_graph(unit, xy)
    pad = len(nbrs) - len(w)
    return fewest_moved_contiguous(np.r_[old, np.full(pad, -1)], np.r_[w, np.zeros(pad, w.dtype)], nbrs,
                                   k_old, k, tol)


def _components(members: list[int], nbrs: list[set[int]]) -> list[list[int]]:
    left, out = set(members), []
    while left:
        stack = [left.pop()]
        comp = list(stack)
        while stack:
            for b in nbrs[stack.pop()]:
                if b in left:
                    left.remove(b)
                    stack.append(b)
                    comp.append(b)
        out.append(comp)
    return sorted(out, key=len, reverse=True)


def fewest_moved_contiguous(old: np.ndarray, w: np.ndarray, nbrs: list[set[int]], k_old: int, k: int,
                            tol: float, rounds: int = 500) -> int | None:
    """Return the minimum households moved when every group must be connected in ``nbrs`` (CP-SAT).

    The model of ``fewest_moved`` plus lazy separator rows: whenever a group of the optimum falls
    in pieces, for a cell ``a`` of a piece ``C`` and a cell ``b`` of another piece of the group,
    ``x[a] + x[b] <= 1 + sum(x[s] for s next to C)`` (a connected group that holds both must hold a
    cell around ``C``), and solve again. The first connected optimum is the contiguous optimum;
    None when no connected labelling meets the band on this graph.
    """
    groups = max(k, k_old)
    m, x = _model(old, w, k_old, k, tol)
    for _ in range(rounds):
        s = _solve(m)
        if s is None:
            return None
        lab = [max(range(groups), key=lambda g: s.Value(x[p][g])) for p in range(len(w))]
        cut = False
        for g in range(groups):
            parts = _components([p for p in range(len(w)) if lab[p] == g], nbrs)
            for i, c in enumerate(parts if len(parts) > 1 else []):
                ring = {b for a in c for b in nbrs[a]} - set(c)
                others = [b for j, d in enumerate(parts) if j != i for b in d]
                for a in c:
                    for b in others:
                        m.Add(x[a][g] + x[b][g] <= 1 + sum(x[r][g] for r in ring))
                cut = True
        if not cut:
            return int(round(s.ObjectiveValue()))
    raise AssertionError("no connected optimum within the rounds")
