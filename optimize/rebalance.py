"""Rebalance a nearly balanced partition of a cell graph by moving boundary cells (local search).

The power diagram gives the most compact grids, but where tower blocks are points of tens or
hundreds of households its grids can end 10–20% off the mean. Starting from its grids (mapped
onto the Voronoi cell graph of ``geo.cells``), a deterministic descent moves one boundary cell at a
time to a neighbouring grid:

- a move must lower the potential (excess over the band, Σ (h_j − mean)²) lexicographically, so
  the descent ends; among those moves the ones lowering the excess come first, and among them the
  one costing least compactness (|p_c − centroid_to|² − |p_c − centroid_from|²) wins — taking the
  largest excess cut first grows tentacles that later block the way (a property test found one);
- the grid giving the cell must stay connected (its cells minus the moved one: one component),
  the receiving grid is adjacent, so every grid stays connected;
- it stops as soon as every grid is within the band, or after ``max_moves`` moves (an
  iteration count, not a clock).

``connect`` first gives every grid one connected piece (smaller pieces join the neighbouring grid
they share most edges with), since a labelling mapped from other polygons may leave slivers.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

MAX_MOVES = 2000


def _pieces(members: np.ndarray, nbrs: list[np.ndarray], n: int) -> np.ndarray:
    """Connected-component id (0..) of each of ``members`` inside the subgraph they induce."""
    pos = np.full(n, -1, dtype=np.int64)
    pos[members] = np.arange(len(members))
    rows, cols = [], []
    for a, i in enumerate(members):
        for b in pos[nbrs[i]]:
            if b >= 0:
                rows.append(a)
                cols.append(int(b))
    m = len(members)
    g = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(m, m))
    return connected_components(g, directed=False)[1]


def connect(labels: np.ndarray, households: np.ndarray, nbrs: list[np.ndarray], k: int) -> np.ndarray:
    """Make every grid one connected piece.

    Each grid's heaviest piece stays; the others join the neighbouring grid they share most
    edges with (repeated until nothing moves, at most k + 1 rounds).
    """
    lab = labels.copy()
    n = len(lab)
    for _ in range(k + 1):
        moved = False
        for j in range(k):
            members = np.flatnonzero(lab == j)
            if len(members) < 2:
                continue
            comp = _pieces(members, nbrs, n)
            if comp.max() == 0:
                continue
            weight = np.bincount(comp, weights=households[members] + 1e-6)
            keep = int(np.argmax(weight))
            for c in range(int(comp.max()) + 1):
                if c == keep:
                    continue
                piece = members[comp == c]
                around = np.concatenate([lab[nbrs[i]] for i in piece])
                around = around[around != j]
                if len(around):
                    lab[piece] = int(np.bincount(around).argmax())
                    moved = True
        if not moved:
            break
    return lab


def rebalance(labels: np.ndarray, households: np.ndarray, centroid: np.ndarray, nbrs: list[np.ndarray],
              k: int, lo: int, hi: int, max_moves: int = MAX_MOVES) -> np.ndarray:
    """Lower the band's excess and then the spread of the grids by boundary moves.

    Returns the new grid of each cell.

    Parameters
    ----------
    labels : (n,) grid of each cell, every grid connected
    households : (n,) households of each cell
    centroid : (n, 2) cell centroids
    nbrs : adjacency lists
    k : grids
    lo, hi : the band in households
    max_moves : iteration cap
    """
    lab = labels.astype(np.int64).copy()
    h = households.astype(np.int64)
    n = len(lab)
    gh = np.bincount(lab, weights=h, minlength=k).astype(np.int64)
    mean = gh.sum() / k
    src = np.repeat(np.arange(n), [len(x) for x in nbrs])
    dst = np.concatenate(nbrs) if n else np.zeros(0, np.int64)
    for _ in range(max_moves):
        if not _excess(gh, lo, hi).any():
            break                     # within the band: stop before shapes pay for more
        cen = _centroids(lab, h, centroid, k)
        a, b = lab[src], lab[dst]
        cut = (a != b) & (h[src] > 0)
        if not cut.any():
            break
        c, fr, to = src[cut], a[cut], b[cut]
        hc = h[c]
        ex_before = _excess(gh[fr], lo, hi) + _excess(gh[to], lo, hi)
        ex_after = _excess(gh[fr] - hc, lo, hi) + _excess(gh[to] + hc, lo, hi)
        d_ex = ex_after - ex_before
        d_sq = (gh[fr] - hc - mean) ** 2 + (gh[to] + hc - mean) ** 2 - (gh[fr] - mean) ** 2 - (gh[to] - mean) ** 2
        ok = (d_ex < 0) | ((d_ex == 0) & (d_sq < -1e-9))
        if not ok.any():
            break
        cost = ((centroid[c] - cen[to]) ** 2).sum(1) - ((centroid[c] - cen[fr]) ** 2).sum(1)
        idx = np.flatnonzero(ok)
        order = idx[np.lexsort((c[idx], cost[idx], d_ex[idx] >= 0))]
        done = False
        tried = set()
        for t in order:
            ci, f = int(c[t]), int(fr[t])
            if ci in tried:
                continue
            tried.add(ci)
            members = np.flatnonzero(lab == f)
            rest = members[members != ci]
            if len(rest) and _pieces(rest, nbrs, n).max() > 0:
                continue              # the giving grid would fall apart
            lab[ci] = int(to[t])
            gh[f] -= h[ci]
            gh[int(to[t])] += h[ci]
            done = True
            break
        if not done:
            break
    return lab


def _excess(g, lo: int, hi: int):
    return np.maximum(g - hi, 0) + np.maximum(lo - g, 0)


def _centroids(lab: np.ndarray, h: np.ndarray, centroid: np.ndarray, k: int) -> np.ndarray:
    w = h.astype(float) + 1e-3
    s = np.bincount(lab, weights=w, minlength=k)
    return np.column_stack([np.bincount(lab, weights=w * centroid[:, 0], minlength=k),
                            np.bincount(lab, weights=w * centroid[:, 1], minlength=k)]) / np.maximum(s, 1e-12)[:, None]
