"""Adopting a grid layer: repair last version's grids with the fewest households moved.

A household *moves* when the code of its grid changes. ``repair_unit`` starts from the old grids
(clipped to this year's unit) and changes only what the rules need:

1. the grid count becomes ``choose_k(H, target)``: while there are too many grids the lightest
   merges into the lightest neighbour (the code of the one holding more households stays, the
   other is retired); while too few, the heaviest gives a contiguous share of about one mean
   (cut along its longer axis) to a new grid with the unit's next never-used number;
2. boundary cells move between neighbouring grids until every grid is within the band
   (``optimize.rebalance``: each move must lower the excess over the band, the giving grid stays
   connected), so only households near the edges that must shift do;
3. each grid is its old polygon minus the cells it gave plus the cells it received (land the old
   layer left uncovered counts as received): untouched grids keep their geometry exactly.

``moved_households`` counts the objective. ``baseline.replan_unit`` runs this repair and the
re-split of the released land and keeps the answer within the tolerance with fewer moves.
"""
from __future__ import annotations

import numpy as np
import shapely

from gridplan.geo.cells import build_cells
from gridplan.geo.grids import GRID_SIZE, assign_points, dissolve_cells, polygon_parts
from gridplan.optimize import cellmodel, certify, power, rebalance
from gridplan.optimize.fewest import SMALL_GRIDS, SMALL_POINTS, fewest_moves
from gridplan.optimize.partition import choose_k


def moved_households(labels: np.ndarray, households: np.ndarray, new_seq: list[int], old_seq_of_point: np.ndarray
                     ) -> int:
    """Return the households whose grid number differs from the old grid they lay in (new land not counted).

    Parameters
    ----------
    labels : (n,) grid index of each household row
    households : (n,) households of each row
    new_seq : sequence number of each grid index
    old_seq_of_point : (n,) old sequence number of each row's grid, -1 where no old grid held it
    """
    new = np.asarray(new_seq, dtype=np.int64)[labels] if len(labels) else np.zeros(0, np.int64)
    had = old_seq_of_point >= 0
    return int(households[had & (new != old_seq_of_point)].sum())


def old_seq_of_points(polys: list, seqs: list[int], xy: np.ndarray) -> np.ndarray:
    """Return the old sequence number of the grid holding each point (-1: none)."""
    out = np.full(len(xy), -1, dtype=np.int64)
    if not len(xy) or not polys:
        return out
    g = np.asarray(polys, dtype=object)
    pi, gi = shapely.STRtree(g).query(shapely.points(xy), predicate="intersects")
    first = np.unique(pi, return_index=True)[1]
    out[pi[first]] = np.asarray(seqs, dtype=np.int64)[gi[first]]
    return out


def _merge_down(lab: np.ndarray, h: np.ndarray, nbrs: list, seqs: list[int], k: int) -> tuple[np.ndarray, list, list]:
    """Merge the lightest group into its lightest neighbour until ``k`` groups remain.

    Returns (labels, seqs, [(retired seq, the seq that took its grid)]).
    """
    retired = []
    while len(seqs) > k:
        load = np.bincount(lab, weights=h, minlength=len(seqs))
        a = int(np.argmin(load))
        around = np.unique(np.concatenate([lab[nbrs[c]] for c in np.flatnonzero(lab == a)] or [np.zeros(0, int)]))
        around = around[around != a]
        b = int(around[np.argmin(load[around])]) if len(around) else int(np.argsort(load)[1])
        keep, gone = (a, b) if load[a] > load[b] else (b, a)
        retired.append((seqs[gone], seqs[keep]))
        lab = np.where(lab == gone, keep, lab)
        lab = np.where(lab > gone, lab - 1, lab)
        seqs = seqs[:gone] + seqs[gone + 1:]
    return lab, seqs, retired


def _split_up(lab: np.ndarray, h: np.ndarray, centroid: np.ndarray, nbrs: list, seqs: list[int], k: int,
              next_seq: int) -> tuple[np.ndarray, list]:
    """Open new groups until there are ``k``: each takes the heaviest group's excess over the new mean.

    The cells taken are those of the heaviest group nearest its heaviest neighbour, so the new
    group borders both and the rebalancing can fill it from either side with few moves.
    """
    total = float(h.sum())
    while len(seqs) < k:
        load = np.bincount(lab, weights=h, minlength=len(seqs))
        a = int(np.argmax(load))
        mine = np.flatnonzero(lab == a)
        around = np.unique(np.concatenate([lab[nbrs[c]] for c in mine] or [np.zeros(0, int)]))
        around = around[around != a]
        here = np.average(centroid[mine], axis=0, weights=h[mine] + 1e-6)
        if len(around):
            b = int(around[np.argmax(load[around])])
            there = np.average(centroid[lab == b], axis=0, weights=h[lab == b] + 1e-6)
            score = (centroid[mine] - here) @ (there - here)
        else:   # no neighbour: cut along the longer axis
            span = np.ptp(centroid[mine], axis=0)
            score = centroid[mine, int(np.argmax(span))]
        order = mine[np.argsort(-score, kind="stable")]
        want = max(float(load[a]) - total / k, min(total / k, float(load[a])) / 2)
        cut = int(np.searchsorted(np.cumsum(h[order]), want, side="left")) + 1
        lab = lab.copy()
        lab[order[:min(cut, len(order) - 1)]] = len(seqs)
        seqs = seqs + [next_seq]
        next_seq += 1
    return lab, seqs


def _polygonal(g):
    """Return the polygonal part of ``g`` (slivers of lines and points dropped) as one geometry."""
    parts = polygon_parts(g) if not shapely.is_empty(g) else []
    return shapely.union_all(parts, grid_size=GRID_SIZE) if parts else shapely.Polygon()


def _polygons(geometry, graph, base: list, base_lab: np.ndarray, lab: np.ndarray, k: int) -> list:
    """Each group's base polygon minus the cells it lost plus the cells it gained, inside the unit.

    A moved cell carries only its part inside the grid it leaves (a cell may straddle an old
    edge: its other parts stay with their grids); land no base covers goes by the cells' labels.
    """
    moved = np.flatnonzero((lab != base_lab) & (base_lab >= 0))
    piece = {int(c): _polygonal(shapely.intersection(graph.polygons[c], base[base_lab[c]], grid_size=GRID_SIZE))
             for c in moved}
    out = []
    for j in range(k):
        g = base[j] if j < len(base) else shapely.Polygon()
        lost = [piece[int(c)] for c in moved if base_lab[c] == j]
        if lost:
            g = shapely.difference(g, shapely.union_all(lost, grid_size=GRID_SIZE), grid_size=GRID_SIZE)
        add = [piece[int(c)] for c in moved if lab[c] == j]
        if add:
            g = shapely.union_all([g, *add], grid_size=GRID_SIZE)
        out.append(_polygonal(shapely.intersection(g, geometry, grid_size=GRID_SIZE)))
    rest = shapely.difference(geometry, shapely.union_all(out, grid_size=GRID_SIZE), grid_size=GRID_SIZE)
    if shapely.area(rest) > 0:   # land the old grids left uncovered, inside cells that did not move
        hit = shapely.STRtree(graph.polygons).query(rest, predicate="intersects")
        for j in np.unique(lab[hit]):
            add = _polygonal(shapely.intersection(shapely.union_all(graph.polygons[hit[lab[hit] == j]],
                                                                    grid_size=GRID_SIZE), rest, grid_size=GRID_SIZE))
            out[j] = _polygonal(shapely.union(out[j], add, grid_size=GRID_SIZE))
    return out


def repair_unit(geometry, xy: np.ndarray, households: np.ndarray, target: float, tol: float, polys: list,
                seqs: list[int], next_seq: int):
    """Repair the old grids of one unit with few households moved (see the module docstring).

    Parameters
    ----------
    geometry : the unit (metric CRS)
    xy, households : the unit's household rows
    target : households per grid wanted
    tol : the tolerance
    polys, seqs : the old grids clipped to the unit, and their sequence numbers
    next_seq : the unit's next never-used sequence number

    Returns
    -------
    (polygons, labels, seqs, retired seqs) or None
        None when the repair gives no valid single-Polygon grids.
    """
    h_rows = np.asarray(households, dtype=np.int64)
    total = int(h_rows.sum())
    k = choose_k(total, target)
    polys = [shapely.union_all(polygon_parts(p)) if not shapely.is_empty(p) else p for p in polys]
    keep = [i for i, p in enumerate(polys) if not shapely.is_empty(p) and shapely.area(p) > 0]
    if not keep or total == 0:
        return None
    polys, seqs = [polys[i] for i in keep], [int(seqs[i]) for i in keep]
    mp, graph = cellmodel.build_graph(geometry, xy, h_rows, k)
    if mp.m <= SMALL_POINTS and k <= SMALL_GRIDS:   # a small unit: its households' own cells (exact fewest)
        mp, graph = build_cells(geometry, xy, h_rows)
    if k > mp.m:
        return None
    nbrs = graph.neighbours()
    rep = shapely.get_coordinates(shapely.point_on_surface(graph.polygons))
    rep[graph.point_cell] = mp.xy
    inside = shapely.contains_xy(shapely.union_all(polys), rep[:, 0], rep[:, 1])
    lab = assign_points(polys, rep)
    base_lab = np.where(inside, lab, -1)
    old_lab = base_lab.copy()
    h = graph.households.astype(np.int64)
    lab, seqs_now, merges = _merge_down(lab, h, nbrs, list(seqs), k)
    base = _bases(polys, seqs, seqs_now, merges)
    base_lab = np.where(base_lab >= 0, lab, -1)      # merged grids: their cells belong to the merged base
    lo, hi = certify.band(total, k, tol)
    lab, seqs_now = _split_up(lab, h, graph.centroid, nbrs, seqs_now, k, next_seq)
    lab = rebalance.connect(lab, h, nbrs, k)
    lab = rebalance.rebalance(lab, h, graph.centroid, nbrs, k, lo, hi)
    exact = _exact(old_lab, h, nbrs, seqs, seqs_now, lab, k, lo, hi, next_seq)
    if exact is not None:     # the proven (or best found) fewest moves on the cell graph
        lab, seqs_now, base, base_lab, retired = exact[0], exact[1], exact[2](polys), exact[3], exact[4]
    else:
        retired = [g for g, _ in merges]
    was = old_seq_of_points(polys, seqs, xy)
    best = None
    for make in (_patched_polygons, _dissolved_polygons, _cell_polygons):   # old edges where they hold, else cells'
        out = make(geometry, mp, graph, base, base_lab, lab, k, tol)
        if out is None or any(p.geom_type != "Polygon" or p.is_empty for p in out):
            continue
        labels = assign_points(out, xy)
        loads = np.bincount(labels, weights=h_rows, minlength=k)
        rank = (not ((loads >= lo) & (loads <= hi)).all(), moved_households(labels, h_rows, seqs_now, was))
        if best is None or rank < best[0]:
            best = (rank, out, labels)
    if best is None:
        return None
    return best[1], best[2], seqs_now, retired


def _patched_polygons(geometry, mp, graph, base, base_lab, lab, k, tol):
    """Return the old polygons with the moved cells' parts moved (``_polygons``), fragments repaired."""
    return power.repair_fragments(_polygons(geometry, graph, base, base_lab, lab, k), mp.xy, mp.households)


def _dissolved_polygons(geometry, mp, graph, base, base_lab, lab, k, tol):
    """Return each group as the union of its cells (consistent with the labels; old edges become cell edges)."""
    if not np.any(lab != base_lab):
        return None
    return cellmodel.grid_polygons(mp, graph, lab, k, tol)[0]


def _cell_polygons(geometry, mp, graph, base, base_lab, lab, k, tol):
    """Return each group as the plain union of its cells (no edge straightening: no point changes side)."""
    if not np.any(lab != base_lab):
        return None
    return dissolve_cells(graph.polygons, lab, k)


def _exact(old_lab, h, nbrs, seqs, seqs_now, lab, k, lo, hi, next_seq):
    """Return the fewest-moves labelling (``optimize.fewest``) in the repair's terms, or None.

    (labels, seqs, base polygons from the old ones, base labels, retired seqs).
    """
    k_old = len(seqs)
    new_rank = {s: k_old + i for i, s in enumerate(s for s in seqs_now if s not in seqs)}
    to_group = np.array([seqs.index(s) if s in seqs else new_rank[s] for s in seqs_now], dtype=np.int64)
    res = fewest_moves(old_lab, h, nbrs, k_old, k, lo, hi, hint=to_group[lab])
    if res is None:
        return None
    pos = {g: i for i, g in enumerate(res.used)}
    final = np.array([pos[int(g)] for g in res.labels], dtype=np.int64)
    seqs_out = [seqs[g] if g < k_old else next_seq + (g - k_old) for g in res.used]
    base_lab = np.array([pos.get(int(g), -1) if g >= 0 else -1 for g in old_lab], dtype=np.int64)
    retired = [seqs[g] for g in range(k_old) if g not in pos]

    def base(polys):
        return [polys[g] if g < k_old else shapely.Polygon() for g in res.used]
    return final, seqs_out, base, base_lab, retired


def _bases(polys: list, seqs: list[int], seqs_now: list[int], merges: list) -> list:
    """Return the base polygon of each remaining group: its old grid with the old grids merged into it."""
    by_seq = dict(zip(seqs, polys))
    for gone, keep in merges:
        by_seq[keep] = shapely.union(by_seq[keep], by_seq.pop(gone), grid_size=GRID_SIZE)
    return [by_seq[s] for s in seqs_now]


__all__ = ["repair_unit", "moved_households", "old_seq_of_points"]
