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


def tree_partition(n: int, edges: np.ndarray, weights: np.ndarray, k: int, tolerance: float, seed: int = 0,
                   attempts: int = ATTEMPTS, split_slack: float | None = None) -> np.ndarray | None:
    """Split n graph nodes into k connected parts of balanced weight by cutting seeded spanning trees.

    Returns labels 0..k-1 of the nodes (every part connected, every part's weight within
    ±tolerance of the mean), or None when no such split was found within ``attempts`` trees per
    split.

    ``split_slack``: the relative error each split may make (default tolerance / levels, so that
    errors cannot compound beyond the tolerance; larger values find splits where indivisible
    nodes leave no room, and the final check still enforces the tolerance).
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    weights = np.asarray(weights, dtype=float)
    if k < 1 or n < k:
        return None
    labels = np.full(n, -1, dtype=np.int64)
    if k == 1:
        labels[:] = 0
        return labels
    rng = np.random.default_rng(seed)
    mean = weights.sum() / k
    levels = max(1, math.ceil(math.log2(k)))
    eps = tolerance / levels if split_slack is None else split_slack   # per-split slack
    stack = [(np.arange(n), k)]
    next_label = 0
    while stack:
        nodes, kk = stack.pop()
        if kk == 1:
            labels[nodes] = next_label
            next_label += 1
            continue
        cut = _split(nodes, kk, edges, weights, eps, rng, attempts)
        if cut is None:
            return None
        (a, ka), (b, kb) = cut
        stack.append((b, kb))
        stack.append((a, ka))
    gw = np.bincount(labels, weights=weights, minlength=k)
    if np.max(np.abs(gw - mean)) > tolerance * mean + 1e-9:
        return None
    return labels


def _split(nodes: np.ndarray, k: int, edges: np.ndarray, weights: np.ndarray, eps: float,
           rng: np.random.Generator, attempts: int):
    m = len(nodes)
    local = np.full(int(edges.max()) + 1 if len(edges) else 0, -1, dtype=np.int64)
    local[nodes] = np.arange(m)
    e = local[edges]
    e = e[(e >= 0).all(axis=1)]
    if not len(e) and m > 1:
        return None
    w = weights[nodes]
    total = w.sum()
    k1 = k // 2
    sub_mean = total / k
    best = None
    for _ in range(attempts):
        r = rng.random(len(e)) + 1e-9
        g = coo_matrix((r, (e[:, 0], e[:, 1])), shape=(m, m))
        tree = minimum_spanning_tree(g)
        tree = tree + tree.T
        order, pred = breadth_first_order(tree, 0, directed=False, return_predecessors=True)
        if len(order) < m:
            return None                        # the part is not connected: nothing to cut
        sw = w.copy()
        for v in order[:0:-1]:                 # children before parents
            sw[pred[v]] += sw[v]
        child = order[1:]
        for kc in {k1, k - k1}:                # the child's side may take either share
            dev = np.abs(sw[child] - kc * sub_mean) / sub_mean
            i = int(np.argmin(dev))
            if dev[i] <= eps * kc and (best is None or dev[i] < best[0]):
                best = (float(dev[i]), int(child[i]), kc, pred.copy(), order.copy())
        if best is not None:
            break
    if best is None:
        return None
    _, c, kc, pred, order = best
    inside = np.zeros(m, dtype=bool)
    inside[c] = True
    for v in order:                            # parents before children: the subtree of c
        if v != c and pred[v] >= 0 and inside[pred[v]]:
            inside[v] = True
    return (nodes[inside], kc), (nodes[~inside], k - kc)


def tree_grids(graph, k: int, tolerance: float, seed: int = 0, attempts: int = ATTEMPTS) -> list | None:
    """Return the grid polygons (not in code order) of a tree bisection of a ``geo.cells.CellGraph``.

    None when no balanced split was found or a grid is not one Polygon.
    """
    from gridplan.geo.grids import dissolve_cells
    levels = max(1, math.ceil(math.log2(k)))
    lab = None
    for slack in dict.fromkeys((tolerance / levels, tolerance / 2, tolerance)):   # strict first
        lab = tree_partition(graph.n, graph.edges, graph.households, k, tolerance, seed=seed,
                             attempts=attempts if slack == tolerance / levels else attempts // 3,
                             split_slack=slack)
        if lab is not None:
            break
    if lab is None:
        return None
    polys = dissolve_cells(graph.polygons, lab, k)
    if any(p.geom_type != "Polygon" or p.is_empty for p in polys):
        return None
    return polys
