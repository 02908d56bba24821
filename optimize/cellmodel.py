"""The CP-SAT cell model: balanced, contiguous grids as unions of Voronoi cells.

Per unit (``cell_partition``):

1. ``geo.cells.build_cells``: merged household points → Voronoi cells clipped to the unit (plus a
   lattice of empty seeds cutting empty land) → adjacency graph (shared edges of positive length,
   never across a barrier line). Units with many cells are coarsened into compact *atoms*
   (``geo.cells.coarsen``) so that the model stays small.
2. The k grids are apportioned over the graph's connected components (unit parts, areas cut off
   by barriers); a component too small for a grid of its own is attached to a neighbouring grid
   afterwards (reported in ``notes``).
3. Balanced seeds (recursive coordinate bisection) snapped to nodes; then a few Lloyd-like rounds,
   each solving with CP-SAT the capacitated p-median assignment
     lexicographic min (D, Σ c_ij x_ij),    c_ij = (½ h_i/H + ½ a_i/A) · |p_i − p_cj|² / (A/k)
     s.t. Σ_j x_ij = 1;  x_cj,j = 1;  lo − D ≤ Σ_i h_i x_ij ≤ hi + D  (lo, hi = mean·(1 ∓ BAND·tol))
          x_ij ≤ Σ_{l ∈ N(i), d_j(l) < d_j(i)} x_lj          (Zoltners–Sinha contiguity)
   with x restricted to each node's few nearest centers along the graph. D = 0 is the hard balance
   when it is feasible; when indivisible points make it infeasible, D (the excess deviation of the
   worst grid) is minimized first. The previous round's solution is the CP-SAT hint (warm start);
   centers move to the node nearest their grid's weighted centroid; the best round (deviation,
   then moment of inertia) is kept.
   One round is ``optimize.cellround.cpsat_round``.
4. Fallback (CP-SAT found nothing within its deterministic limit): the shortest-path Voronoi
   assignment of the centers, connected by construction.
5. Grid polygons = union of their cells (``geo.grids.dissolve_cells``), so the grids tile the unit
   exactly; shared edges are then straightened (``geo.grids.smooth_grids``) where that keeps the
   balance.

Determinism: one CP-SAT worker, fixed seed, and a *deterministic* time limit
(``max_deterministic_time``), so the same input gives the same grids on a loaded or idle machine.
A wall-clock cap of many times the budget exists only as a safety net against a hung solver.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from gridplan.geo.cells import MIN_SHARED, CellGraph, MergedPoints, build_cells, coarsen
from gridplan.geo.grids import assign_points, dissolve_cells, smooth_grids
from gridplan.optimize.cellround import DTIME_PER_SECOND, cpsat_round

FILL_CELLS_PER_GRID = 25  # empty lattice seeds per grid cut empty land into cells (0: off)
MAX_NODES = 700           # above this many cells a unit is coarsened into atoms
ROUNDS = 4                # Lloyd-like center updates
STOP_WHEN_WORSE = True    # stop the rounds at the first one that improves neither balance nor inertia
SMOOTH = (3.0, 2.0, 1.0, 0.5, 0.25, 0.12)  # edge simplification tolerances tried, in typical cell spacings (): off
BAND = 0.8                # the model's hard band is BAND·tolerance; the rest is slack for smoothing
AREA_WEIGHT = 0.5         # share of area (vs households) in the moment-of-inertia weights


@dataclass(frozen=True)
class CellResult:
    """The cell model's grids for one unit.

    polygons: k grids (metric CRS, not yet in code order) tiling the unit; status: "optimal" |
    "feasible" | "heuristic"; k: grids (raised when separate parts each need one); notes: what
    the model did that a planner should know; mp, graph: the merged points and the cell graph
    (``optimize.treecut`` works on the same graph).
    """

    polygons: list
    status: str
    k: int
    notes: tuple[str, ...]
    mp: MergedPoints
    graph: CellGraph
    labels: np.ndarray


def build_graph(geometry, xy: np.ndarray, households: np.ndarray, k: int, barriers=None):
    """Build the merged points and cell graph of a unit, with empty lattice seeds sized for ``k`` grids."""
    fill = None
    if FILL_CELLS_PER_GRID:
        fill = math.sqrt(float(shapely.area(geometry)) / (FILL_CELLS_PER_GRID * k))
    return build_cells(geometry, xy, households, barriers=barriers, fill_spacing=fill)


def cell_partition(mp: MergedPoints, graph: CellGraph, k: int, options) -> CellResult:
    """Split one unit into ``k`` grids with the CP-SAT cell model (see the module docstring).

    Parameters
    ----------
    mp, graph : MergedPoints, CellGraph
        The unit's merged points and cell graph (``build_graph``); k must not exceed mp.m.
    k : int
        Grids wanted (>= 2).
    options : PlanOptions
        ``tolerance``, ``time_limit_per_unit`` (the deterministic budget) and ``seed``.
    """
    cell_lab, status, k, notes = _partition_graph(graph, k, options)
    polys, more = grid_polygons(mp, graph, cell_lab, k, float(options.tolerance))
    return CellResult(polys, status, int(k), tuple(notes + more), mp, graph, cell_lab)


def grid_polygons(mp: MergedPoints, graph: CellGraph, cell_lab: np.ndarray, k: int, tol: float):
    """Return the k grid polygons of a label per cell, and notes.

    Each grid is the union of its cells; shared edges are straightened where that keeps the
    balance.
    """
    polys = dissolve_cells(graph.polygons, cell_lab, k)
    notes = []
    if SMOOTH:
        polys, _, used = _smooth(polys, mp, cell_lab[graph.point_cell], graph, k, tol)
        if used:
            notes.append(f"grid edges straightened (coverage simplification, {used:.1f} m)")
    return polys, notes


def _smooth(polys, mp, point_lab, graph, k, tol):
    """Straighten the grids' shared edges, keeping the balance.

    Simplification tolerances are tried from coarse to fine; the first whose grids stay within
    the tolerance (or no worse than before) once points that changed sides are re-assigned wins.
    """
    h = mp.households
    total = float(h.sum())
    mean = total / k
    before = np.bincount(point_lab, weights=h, minlength=k)
    worst_before = float(np.max(np.abs(before - mean)))
    limit = max(tol * mean, worst_before)
    spacing = math.sqrt(float(graph.area.sum()) / max(graph.n, 1))
    for f in SMOOTH:
        out = smooth_grids(polys, f * spacing)
        if out is None:
            continue
        lab = assign_points(out, mp.xy)
        gh = np.bincount(lab, weights=h, minlength=k)
        if (gh > 0).all() and float(np.max(np.abs(gh - mean))) <= limit + 1e-9:
            return out, lab, f * spacing
    return polys, point_lab, 0.0


# ----------------------------------------------------------------------------------------------
# the graph problem


def _apportion(comp_h: np.ndarray, k: int, mean: float) -> tuple[np.ndarray, list[str]]:
    """Grids per component: components with at least half a grid's households get >= 1 grid."""
    notes = []
    big = comp_h >= 0.5 * mean
    if not big.any():
        big[int(np.argmax(comp_h))] = True
    nb = int(big.sum())
    kc = np.zeros(len(comp_h), dtype=np.int64)
    if nb > k:
        notes.append(f"{nb} separate parts each need a grid: k raised from {k} to {nb}")
        kc[big] = 1
        return kc, notes
    hb = comp_h[big].astype(float)
    q = k * hb / hb.sum()
    base = np.maximum(1, np.floor(q)).astype(np.int64)
    while base.sum() > k:
        cand = np.flatnonzero(base > 1)
        i = cand[np.argmin((q - base)[cand])]
        base[i] -= 1
    while base.sum() < k:
        i = int(np.argmax(q - base))
        base[i] += 1
    kc[big] = base
    return kc, notes


def _partition_graph(graph: CellGraph, k: int, options) -> tuple[np.ndarray, str, int, list[str]]:
    notes: list[str] = []
    hh = graph.households
    total = int(hh.sum())
    comp_h = np.bincount(graph.component, weights=hh, minlength=graph.n_components)
    kc, more = _apportion(comp_h, k, total / k)
    notes.extend(more)
    k = int(kc.sum())
    mean = total / k
    active = kc[graph.component] > 0
    sub_idx = np.flatnonzero(active)
    sub = _subgraph(graph, sub_idx)
    tol = float(options.tolerance)
    atom, model_g = coarsen(sub, max_households=max(1.0, 0.25 * tol * mean), max_nodes=MAX_NODES)
    if model_g.n < sub.n:
        notes.append(f"{sub.n} cells coarsened into {model_g.n} atoms")
    lab_nodes, status, more = _solve(model_g, kc, mean, tol, options)
    notes.extend(more)
    cell_lab = np.full(graph.n, -1, dtype=np.int64)
    cell_lab[sub_idx] = lab_nodes[atom]
    if (~active).any():
        notes.extend(_attach_leftovers(graph, cell_lab))
    return cell_lab, status, k, notes


def _subgraph(graph: CellGraph, idx: np.ndarray) -> CellGraph:
    if len(idx) == graph.n:
        return graph
    pos = np.full(graph.n, -1, dtype=np.int64)
    pos[idx] = np.arange(len(idx))
    e = pos[graph.edges] if len(graph.edges) else np.zeros((0, 2), np.int64)
    keep = (e >= 0).all(axis=1) if len(e) else np.zeros(0, bool)
    comp = graph.component[idx]
    _, comp = np.unique(comp, return_inverse=True)
    return CellGraph(graph.polygons[idx] if graph.polygons is not None else None, graph.households[idx],
                     graph.area[idx], graph.centroid[idx], pos[graph.point_cell], e[keep],
                     graph.edge_length[keep], comp.reshape(-1).astype(np.int64))


def _attach_leftovers(graph: CellGraph, cell_lab: np.ndarray) -> list[str]:
    """Give each component without grids the grid of a neighbour; return notes.

    The neighbour is the labelled cell sharing the longest edge (ignoring barriers), or else the
    nearest labelled cell (the grid becomes a MultiPolygon).
    """
    notes = []
    polys = graph.polygons
    for c in range(graph.n_components):
        members = np.flatnonzero(graph.component == c)
        if (cell_lab[members] >= 0).all():
            continue
        labelled = np.flatnonzero(cell_lab >= 0)
        tree = shapely.STRtree(polys[labelled])
        piece = shapely.union_all(polys[members])
        hit = labelled[tree.query(piece, predicate="intersects")]
        best, best_len = -1, MIN_SHARED
        for j in hit:
            ln = shapely.intersection(shapely.boundary(piece), shapely.boundary(polys[j])).length
            if ln > best_len:
                best, best_len = int(j), ln
        h = int(graph.households[members].sum())
        if best >= 0:
            cell_lab[members] = cell_lab[best]
            notes.append(f"a separate part with {h} households joined a neighbouring grid across a barrier")
        else:
            near = np.atleast_1d(tree.query_nearest(piece, all_matches=False))
            cell_lab[members] = cell_lab[labelled[int(near[-1])]]
            notes.append(f"an island with {h} households was attached to the nearest grid")
    return notes


def _bisect_seeds(g: CellGraph, kc: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Choose balanced seeds by recursive coordinate bisection of each component's households.

    Each step splits the longer side at the household quantile k1/k; each part's seed is the
    node nearest its centroid.
    """
    centers: list[int] = []
    hw = g.households + 1e-6 * w / max(w.max(), 1e-12)

    def rec(idx, kk):
        if kk == 1 or len(idx) <= 1:
            hj = g.households[idx]
            heavy = int(idx[int(np.argmax(hj))])
            if hj.sum() > 0 and hj.max() * 2 >= hj.sum() and heavy not in taken:
                taken.add(heavy)
                centers.append(heavy)
                return
            p, ww = g.centroid[idx], hw[idx]
            c = (p * ww[:, None]).sum(axis=0) / ww.sum()
            for i in idx[np.argsort(((p - c) ** 2).sum(axis=1), kind="stable")]:
                if int(i) not in taken:
                    taken.add(int(i))
                    centers.append(int(i))
                    return
            return
        p = g.centroid[idx]
        axis = int(np.argmax(p.max(axis=0) - p.min(axis=0)))
        o = idx[np.lexsort((p[:, 1 - axis], p[:, axis]))]
        k1 = kk // 2
        cum = np.cumsum(hw[o])
        cut = int(np.searchsorted(cum, cum[-1] * k1 / kk)) + 1
        cut = min(max(cut, 1), len(o) - 1)
        rec(o[:cut], k1)
        rec(o[cut:], kk - k1)

    taken: set[int] = set()
    for c in np.flatnonzero(kc > 0):
        rec(np.flatnonzero(g.component == c), int(kc[c]))
    return np.array(centers, dtype=np.int64)


def _solve(g: CellGraph, kc: np.ndarray, mean: float, tol: float, options) -> tuple[np.ndarray, str, list[str]]:
    n = g.n
    k = int(kc.sum())
    notes: list[str] = []
    hh = g.households.astype(np.int64)
    H = float(hh.sum())
    A = float(g.area.sum())
    w = (1 - AREA_WEIGHT) * hh / H + AREA_WEIGHT * g.area / A
    L2 = A / k
    lo = int(math.ceil((1 - BAND * tol) * mean - 1e-9))
    hi = int(math.floor((1 + BAND * tol) * mean + 1e-9))
    if lo > hi:
        lo = hi = int(round(mean))
    e = g.edges
    elen = np.sqrt(((g.centroid[e[:, 0]] - g.centroid[e[:, 1]]) ** 2).sum(axis=1)) + 1e-6 if len(e) else np.zeros(0)
    adj = csr_matrix((np.r_[elen, elen], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)) \
        if len(e) else csr_matrix((n, n))
    nbrs = g.neighbours()
    centers = _bisect_seeds(g, kc, w)
    dtime_total = DTIME_PER_SECOND * float(options.time_limit_per_unit)
    spent = 0.0
    best = None            # (excess deviation, inertia, labels, status)
    hint = None
    seen = set()
    for rnd in range(ROUNDS):
        key = tuple(sorted(centers.tolist()))
        if key in seen:          # the centers came back: converged
            break
        seen.add(key)
        D = dijkstra(adj, indices=centers)            # (k, n) graph distances
        vor = _sp_voronoi(D)
        budget = max(0.05, (dtime_total - spent) / (ROUNDS - rnd))
        res = cpsat_round(g, nbrs, centers, D, w, L2, hh, lo, hi, hint if hint is not None else vor,
                           budget, int(options.seed))
        if res is None:
            labels, status = vor, "heuristic"
            if rnd == 0:
                notes.append("CP-SAT found no assignment in its limit: shortest-path Voronoi fallback")
        else:
            labels, status, dt = res
            spent += dt
        gh = np.bincount(labels, weights=hh, minlength=k)
        excess = float(max(0.0, np.max(np.maximum(lo - gh, gh - hi))))
        inertia = _inertia(g, labels, k, w)
        if best is None or (excess, inertia) < (best[0], best[1]):
            best = (excess, inertia, labels, status)
        elif STOP_WHEN_WORSE:
            break                # a Lloyd round that did not improve: the centers have settled
        hint = labels
        centers = _recenter(g, labels, k, w)
    _, _, labels, status = best
    return labels, status, notes


def _sp_voronoi(D: np.ndarray) -> np.ndarray:
    """Each node to its nearest center along the graph (ties to the lower grid index)."""
    return np.argmin(D, axis=0).astype(np.int64)


def _inertia(g: CellGraph, labels: np.ndarray, k: int, w: np.ndarray) -> float:
    tot = 0.0
    for j in range(k):
        m = labels == j
        if not m.any():
            continue
        ww = w[m]
        c = (g.centroid[m] * ww[:, None]).sum(axis=0) / max(ww.sum(), 1e-12)
        tot += float((ww * ((g.centroid[m] - c) ** 2).sum(axis=1)).sum())
    return tot


def _recenter(g: CellGraph, labels: np.ndarray, k: int, w: np.ndarray) -> np.ndarray:
    out = np.zeros(k, dtype=np.int64)
    for j in range(k):
        idx = np.flatnonzero(labels == j)
        hj = g.households[idx]
        if hj.sum() > 0 and hj.max() * 2 >= hj.sum():     # an apartment block dominates: center on it
            out[j] = idx[int(np.argmax(hj))]
            continue
        ww = w[idx]
        c = (g.centroid[idx] * ww[:, None]).sum(axis=0) / max(ww.sum(), 1e-12)
        out[j] = idx[int(np.argmin(((g.centroid[idx] - c) ** 2).sum(axis=1)))]
    return out
