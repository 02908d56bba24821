"""Straighten a balanced partition of a cell graph: boundary moves that shorten the cut, band kept.

The spanning-tree bisection (``optimize.treecut``) reaches the band where tower blocks defeat the
compact models, but its grids are straggly. This descent moves one boundary cell at a time to
the neighbouring grid it shares most edge with, when that shortens the total length of edges
between grids (the grids' shared perimeter, which Polsby-Popper compactness punishes), keeps both
grids within the band and keeps the giving grid connected (the receiving grid is adjacent, so it
stays connected). Ties go to the move that lowers the moment of inertia most, then to the lowest
cell index. Deterministic; it ends when no move shortens the cut or after ``MAX_PASSES`` passes.
"""
from __future__ import annotations

import numpy as np

from gridplan.optimize.rebalance import _pieces

MAX_PASSES = 200
MIN_GAIN = 1e-6        # m: a move must shorten the cut by more than this


def _shared(lab: np.ndarray, e: np.ndarray, length: np.ndarray, n: int, k: int) -> np.ndarray:
    """Return (n, k): edge length each cell shares with each grid."""
    out = np.zeros((n, k))
    np.add.at(out, (e[:, 0], lab[e[:, 1]]), length)
    np.add.at(out, (e[:, 1], lab[e[:, 0]]), length)
    return out


def compact(labels: np.ndarray, graph, k: int, lo: float, hi: float, max_passes: int = MAX_PASSES) -> np.ndarray:
    """Return new cell labels with a shorter cut between grids, every grid still in ``lo..hi`` and connected.

    Parameters
    ----------
    labels : (n,) int array
        Grid of each cell (0..k-1), every grid connected and within the band.
    graph : CellGraph
        The cells (``edges``, ``edge_length``, ``households``, ``area``, ``centroid``).
    k : int
        Grids.
    lo, hi : float
        The band in households.
    max_passes : int
        Iteration cap (passes over all boundary cells).
    """
    lab = np.asarray(labels, dtype=np.int64).copy()
    n = graph.n
    e = np.asarray(graph.edges, dtype=np.int64).reshape(-1, 2)
    if n == 0 or not len(e):
        return lab
    length = np.asarray(graph.edge_length, dtype=float)
    h = graph.households.astype(np.int64)
    w = graph.area / max(float(graph.area.sum()), 1e-12) + h / max(float(h.sum()), 1.0)
    nbrs = graph.neighbours()
    gh = np.bincount(lab, weights=h, minlength=k).astype(np.int64)
    for _ in range(max_passes):
        shared = _shared(lab, e, length, n, k)
        own = shared[np.arange(n), lab]
        shared[np.arange(n), lab] = -np.inf
        to = np.argmax(shared, axis=1)
        gain = shared[np.arange(n), to] - own
        cand = np.flatnonzero(gain > MIN_GAIN)
        if not len(cand):
            break
        sw = np.bincount(lab, weights=w, minlength=k)
        cen = np.column_stack([np.bincount(lab, weights=w * graph.centroid[:, 0], minlength=k),
                               np.bincount(lab, weights=w * graph.centroid[:, 1], minlength=k)]) / sw[:, None]
        d_in = w[cand] * (((graph.centroid[cand] - cen[to[cand]]) ** 2).sum(1)
                          - ((graph.centroid[cand] - cen[lab[cand]]) ** 2).sum(1))
        moved = False
        touched: set[int] = set()
        for t in np.lexsort((cand, d_in, -gain[cand])):
            i = int(cand[t])
            a, b = int(lab[i]), int(to[i])
            if a in touched or b in touched:        # gains were counted before these grids changed
                continue
            if gh[a] - h[i] < lo or gh[b] + h[i] > hi:
                continue
            rest = np.flatnonzero(lab == a)
            rest = rest[rest != i]
            if not len(rest) or _pieces(rest, nbrs, n).max() > 0:
                continue
            lab[i] = b
            gh[a] -= h[i]
            gh[b] += h[i]
            touched.update((a, b))
            moved = True
        if not moved:
            break
    return lab
