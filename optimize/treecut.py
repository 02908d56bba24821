"""Recursive spanning-tree bisection: balance where the compact models cannot reach it.

The idea of GerryChain's ``recursive_tree_part``, deterministic for a seed: draw a spanning tree
of the cell graph (a minimum spanning tree under seeded random edge weights), and cut the tree
edge whose two sides come closest to holding k1 and k − k1 grids' worth of households; each side
is a subtree, hence connected in the cell graph. Recurse until every part is one grid. Shapes are
straggly — this is the last resort for units (deep interleaved spikes, odd outlines) where the
power cells and the CP-SAT cell model both miss the tolerance.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

ATTEMPTS = 300      # spanning trees tried per split before giving up on that split
RESTARTS = 12       # whole recursions tried (new trees each time) when a deeper split finds no cut
LOOKAHEAD = 4       # cuts per tree whose sides are checked for a split into their grids (geometry aside)
CHECK_DTIME = 0.05  # CP-SAT deterministic time of one such check (undecided counts as possible)


def tree_partition(n: int, edges: np.ndarray, weights: np.ndarray, k: int, tolerance: float, seed: int = 0,
                   attempts: int = ATTEMPTS, split_slack: float | None = None) -> np.ndarray | None:
    """Split n graph nodes into k connected parts of balanced weight by cutting seeded spanning trees.

    Returns labels 0..k-1 of the nodes (every part connected, every part's weight within
    ±tolerance of the mean), or None when no such split was found.

    Every cut must leave each side a weight its grids can hold — between ``kc·lo`` and ``kc·hi``
    for ``kc`` grids, (lo, hi) the final band — and, for the first ``LOOKAHEAD`` such cuts of a
    tree, each side's node weights must be splittable into its grids within the band (a
    geometry-free check, ``optimize.certify.splittable``): indivisible heavy nodes (tower blocks)
    then do not lead the recursion into a part that cannot be split. A split that finds no cut in
    ``attempts`` trees restarts the whole recursion with new trees, up to ``RESTARTS`` times.
    Nodes' weights should be integers for the check to be exact (households are).

    ``split_slack``: when given, each cut's side must also lie within ``split_slack · kc`` of
    ``kc`` grids' share of its part (the classic recursive bisection; None: the band alone).
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    weights = np.asarray(weights, dtype=float)
    if k < 1 or n < k:
        return None
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    mean = weights.sum() / k
    lo, hi = mean * (1 - tolerance) - 1e-9, mean * (1 + tolerance) + 1e-9
    for _ in range(RESTARTS):
        labels = _recurse(n, edges, weights, k, lo, hi, split_slack, rng, attempts)
        if labels is not None:
            gw = np.bincount(labels, weights=weights, minlength=k)
            if np.max(np.abs(gw - mean)) <= tolerance * mean + 1e-9:
                return labels
    return None


def _recurse(n, edges, weights, k, lo, hi, slack, rng, attempts) -> np.ndarray | None:
    labels = np.full(n, -1, dtype=np.int64)
    stack = [(np.arange(n), k)]
    next_label = 0
    while stack:
        nodes, kk = stack.pop()
        if kk == 1:
            labels[nodes] = next_label
            next_label += 1
            continue
        cut = _split(nodes, kk, edges, weights, (lo, hi), slack, rng, attempts)
        if cut is None:
            return None
        (a, ka), (b, kb) = cut
        stack.append((b, kb))
        stack.append((a, ka))
    return labels


def _local_edges(nodes: np.ndarray, edges: np.ndarray) -> np.ndarray:
    local = np.full(int(edges.max()) + 1 if len(edges) else 0, -1, dtype=np.int64)
    local[nodes] = np.arange(len(nodes))
    e = local[edges]
    return e[(e >= 0).all(axis=1)]


def _subtree_weights(e: np.ndarray, w: np.ndarray, rng: np.random.Generator):
    """Draw a seeded random spanning tree; return (subtree weights, predecessors, BFS order) or None."""
    m = len(w)
    r = rng.random(len(e)) + 1e-9
    tree = minimum_spanning_tree(coo_matrix((r, (e[:, 0], e[:, 1])), shape=(m, m)))
    tree = tree + tree.T
    order, pred = breadth_first_order(tree, 0, directed=False, return_predecessors=True)
    if len(order) < m:
        return None                        # the part is not connected: nothing to cut
    sw = w.copy()
    for v in order[:0:-1]:                 # children before parents
        sw[pred[v]] += sw[v]
    return sw, pred, order


def _candidates(sw, child, total, k, band, slack):
    """Return the tree's admissible cuts as (score, child node, grids on the child's side), best first."""
    lo, hi = band
    sub_mean = total / k
    out = []
    for kc in range(1, k):
        s = sw[child]
        ok = (s >= kc * lo) & (s <= kc * hi) & (total - s >= (k - kc) * lo) & (total - s <= (k - kc) * hi)
        if slack is not None:
            ok &= np.abs(s - kc * sub_mean) <= slack * kc * sub_mean
        # halves first (compact parts), then the cut nearest its share
        pen = 0.0 if kc in (k // 2, k - k // 2) else 1.0 + abs(kc - k / 2) / k
        for i in np.flatnonzero(ok):
            out.append((pen + abs(float(s[i]) - kc * sub_mean) / sub_mean, int(child[i]), kc))
    out.sort()
    return out


def _side(pred: np.ndarray, order: np.ndarray, c: int) -> np.ndarray:
    inside = np.zeros(len(order), dtype=bool)
    inside[c] = True
    for v in order:                            # parents before children: the subtree of c
        if v != c and pred[v] >= 0 and inside[pred[v]]:
            inside[v] = True
    return inside


def _split(nodes: np.ndarray, k: int, edges: np.ndarray, weights: np.ndarray, band, slack,
           rng: np.random.Generator, attempts: int):
    from gridplan.optimize.certify import splittable
    e = _local_edges(nodes, edges)
    if not len(e) and len(nodes) > 1:
        return None
    w = weights[nodes]
    total = float(w.sum())
    lo, hi = band
    for _ in range(attempts):
        drawn = _subtree_weights(e, w, rng)
        if drawn is None:
            return None
        sw, pred, order = drawn
        for _, c, kc in _candidates(sw, order[1:], total, k, band, slack)[:LOOKAHEAD]:
            inside = _side(pred, order, c)
            if all(splittable(w[part], kk, math.ceil(lo), math.floor(hi), dtime=CHECK_DTIME) is not False
                   for part, kk in ((inside, kc), (~inside, k - kc)) if kk > 1):
                return (nodes[inside], kc), (nodes[~inside], k - kc)
    return None


def tree_labels(graph, k: int, tolerance: float, seed: int = 0, attempts: int = ATTEMPTS) -> np.ndarray | None:
    """Return the grid of each cell of a ``geo.cells.CellGraph`` from a tree bisection (None: no split found)."""
    return tree_partition(graph.n, graph.edges, graph.households, k, tolerance, seed=seed,
                          attempts=max(1, attempts // 5))


def tree_grids(graph, k: int, tolerance: float, seed: int = 0, attempts: int = ATTEMPTS) -> list | None:
    """Return the grid polygons (not in code order) of a tree bisection of a ``geo.cells.CellGraph``.

    None when no balanced split was found or a grid is not one Polygon.
    """
    from gridplan.geo.grids import dissolve_cells
    lab = tree_labels(graph, k, tolerance, seed, attempts)
    if lab is None:
        return None
    polys = dissolve_cells(graph.polygons, lab, k)
    if any(p.geom_type != "Polygon" or p.is_empty for p in polys):
        return None
    return polys
