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

from gridplan.geo.grids import GRID_SIZE, assign_points, polygon_parts
from gridplan.optimize import cellmodel, certify, power, rebalance
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


def _polygons(geometry, graph, base: list, base_lab: np.ndarray, lab: np.ndarray, k: int) -> list:
    """Each group's base polygon minus the cells it lost plus the cells it gained, inside the unit."""
    moved = np.flatnonzero(lab != base_lab)
    cut = shapely.union_all(graph.polygons[moved], grid_size=GRID_SIZE) if len(moved) else None
    out = []
    for j in range(k):
        g = base[j] if j < len(base) else shapely.Polygon()
        if cut is not None:
            g = shapely.difference(g, cut, grid_size=GRID_SIZE)
        add = graph.polygons[moved[lab[moved] == j]]
        if len(add):
            g = shapely.union_all(np.r_[np.array([g], dtype=object), add], grid_size=GRID_SIZE)
        out.append(shapely.intersection(g, geometry, grid_size=GRID_SIZE))
    rest = shapely.difference(geometry, shapely.union_all(out, grid_size=GRID_SIZE), grid_size=GRID_SIZE)
    if shapely.area(rest) > 0:   # land the old grids left uncovered, inside cells that did not move
        hit = shapely.STRtree(graph.polygons).query(rest, predicate="intersects")
        for j in np.unique(lab[hit]):
            add = shapely.intersection(shapely.union_all(graph.polygons[hit[lab[hit] == j]], grid_size=GRID_SIZE),
                                       rest, grid_size=GRID_SIZE)
            out[j] = shapely.union(out[j], add, grid_size=GRID_SIZE)
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
    if k > mp.m:
        return None
    nbrs = graph.neighbours()
    rep = shapely.get_coordinates(shapely.point_on_surface(graph.polygons))
    rep[graph.point_cell] = mp.xy
    inside = shapely.contains_xy(shapely.union_all(polys), rep[:, 0], rep[:, 1])
    lab = assign_points(polys, rep)
    base_lab = np.where(inside, lab, -1)
    h = graph.households.astype(np.int64)
    lab, seqs_now, merges = _merge_down(lab, h, nbrs, list(seqs), k)
    base = _bases(polys, seqs, seqs_now, merges)
    base_lab = np.where(base_lab >= 0, lab, -1)      # merged grids: their cells belong to the merged base
    lo, hi = certify.band(total, k, tol)
    lab, seqs_now = _split_up(lab, h, graph.centroid, nbrs, seqs_now, k, next_seq)
    lab = rebalance.connect(lab, h, nbrs, k)
    lab = rebalance.rebalance(lab, h, graph.centroid, nbrs, k, lo, hi)
    out = _polygons(geometry, graph, base, base_lab, lab, k)
    out = power.repair_fragments(out, mp.xy, mp.households)
    if out is None or any(p.geom_type != "Polygon" or p.is_empty for p in out):
        return None
    return out, assign_points(out, xy), seqs_now, [g for g, _ in merges]


def _bases(polys: list, seqs: list[int], seqs_now: list[int], merges: list) -> list:
    """Return the base polygon of each remaining group: its old grid with the old grids merged into it."""
    by_seq = dict(zip(seqs, polys))
    for gone, keep in merges:
        by_seq[keep] = shapely.union(by_seq[keep], by_seq.pop(gone), grid_size=GRID_SIZE)
    return [by_seq[s] for s in seqs_now]


__all__ = ["repair_unit", "moved_households", "old_seq_of_points"]
