"""Consensus groups of a cell graph: the cells that most legacy layers put in one grid, k of them.

Each cell carries one legacy grid label per layer (-1: the layer has no grid there). An edge of
the cell graph *agrees* in ``m`` layers when both cells hold the same label in ``m`` layers (two
cells outside every grid of a layer agree in it too: neither side has a line there); that ``m`` is
the edge's agreement, the cost of cutting it.

1. ``consensus_groups``: union the cells across edges agreed by a strict majority of the layers,
   strongest edges first (then longest shared edge), never letting a group outgrow ``cap``
   households. Households that shared a legacy grid in most layers end in one group.
2. ``to_k``: exactly k groups. While there are too many, the lightest group joins the neighbouring
   group it agrees with most (ties: the lighter neighbour); while there are too few, the heaviest
   group is bisected by a balanced spanning-tree cut (``optimize.treecut``). Groups stay connected
   whenever they were.

Deterministic: every choice is an ordered tie-break, no randomness but treecut's fixed seed.
"""
from __future__ import annotations

import numpy as np

from gridplan.optimize import treecut


def edge_agreement(edges: np.ndarray, cell_labels: np.ndarray) -> np.ndarray:
    """Return, per edge, the number of layers in which both cells hold the same legacy grid (or both none).

    Parameters
    ----------
    edges : (e, 2) int
        Cell pairs.
    cell_labels : (c, L) int
        Legacy grid of each cell per layer, -1 where the layer has none.
    """
    if not len(edges):
        return np.zeros(0, dtype=np.int64)
    a, b = cell_labels[edges[:, 0]], cell_labels[edges[:, 1]]
    return (a == b).sum(axis=1).astype(np.int64)


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def consensus_groups(edges: np.ndarray, lengths: np.ndarray, agree: np.ndarray, households: np.ndarray,
                     n_layers: int, cap: float) -> np.ndarray:
    """Return a group id (0.., in order of first cell) per cell: cells joined by majority-agreed edges.

    Parameters
    ----------
    edges, lengths : cell graph edges and their shared boundary lengths
    agree : per-edge agreement (``edge_agreement``)
    households : (c,) households per cell
    n_layers : number of legacy layers
    cap : a group never grows beyond this many households
    """
    c = len(households)
    parent = np.arange(c)
    size = households.astype(np.int64).copy()
    ok = np.flatnonzero(2 * agree > n_layers)
    for e in ok[np.lexsort((-lengths[ok], -agree[ok]))]:
        ra, rb = _find(parent, int(edges[e, 0])), _find(parent, int(edges[e, 1]))
        if ra == rb or size[ra] + size[rb] > cap:
            continue
        ra, rb = min(ra, rb), max(ra, rb)
        parent[rb] = ra
        size[ra] += size[rb]
    roots = np.array([_find(parent, i) for i in range(c)], dtype=np.int64)
    _, first, inv = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inv]


def _merge_once(groups: np.ndarray, edges: np.ndarray, weight: np.ndarray, gh: np.ndarray) -> bool:
    """Join the lightest group that has a neighbour to the neighbour it agrees with most."""
    a, b = groups[edges[:, 0]], groups[edges[:, 1]]
    cut = a != b
    if not cut.any():
        return False
    a, b, w = np.r_[a[cut], b[cut]], np.r_[b[cut], a[cut]], np.r_[weight[cut], weight[cut]]
    has = np.unique(a)
    s = has[np.lexsort((has, gh[has]))][0]          # lightest group with a neighbour
    mine = a == s
    nb, nw = b[mine], w[mine]
    tot = np.bincount(nb, weights=nw, minlength=len(gh))
    cand = np.unique(nb)
    t = cand[np.lexsort((cand, gh[cand], -tot[cand]))][0]
    groups[groups == s] = t
    return True


def _split_once(groups: np.ndarray, edges: np.ndarray, households: np.ndarray, centroid: np.ndarray,
                g: int, new: int, seed: int) -> None:
    """Bisect group ``g`` (the new half gets id ``new``): a balanced spanning-tree cut, else a median line."""
    nodes = np.flatnonzero(groups == g)
    pos = np.full(len(groups), -1, dtype=np.int64)
    pos[nodes] = np.arange(len(nodes))
    inside = (pos[edges[:, 0]] >= 0) & (pos[edges[:, 1]] >= 0)
    sub = pos[edges[inside]]
    lab = None
    if len(nodes) >= 2:
        lab = treecut.tree_partition(len(nodes), sub, households[nodes].astype(float), 2, 0.5, seed=seed,
                                     attempts=50, split_slack=0.5)
    if lab is None:  # no tree cut (one heavy cell, say): split at the weighted median of the longer axis
        xy = centroid[nodes]
        axis = int(np.argmax(xy.max(axis=0) - xy.min(axis=0))) if len(nodes) else 0
        order = np.argsort(xy[:, axis], kind="stable")
        cum = np.cumsum(households[nodes][order] + 1e-6)
        lab = np.zeros(len(nodes), dtype=np.int64)
        lab[order[cum > cum[-1] / 2]] = 1
        if not lab.any() and len(nodes) > 1:
            lab[order[-1]] = 1
    groups[nodes[lab == 1]] = new


def to_k(groups: np.ndarray, edges: np.ndarray, weight: np.ndarray, households: np.ndarray,
         centroid: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Return labels 0..k-1 per cell: the consensus groups merged or bisected until there are k.

    Parameters
    ----------
    groups : (c,) consensus group per cell
    edges : (e, 2) cell graph edges
    weight : (e,) cost of cutting each edge (agreement, plus a small share of its length)
    households : (c,) households per cell
    centroid : (c, 2) cell centroids
    k : groups wanted
    seed : treecut's seed
    """
    groups = np.unique(groups, return_inverse=True)[1].astype(np.int64)
    h = households.astype(np.int64)
    while len(np.unique(groups)) > k:
        gh = np.bincount(groups, weights=h, minlength=int(groups.max()) + 1)
        if not _merge_once(groups, edges, weight, gh):
            break                      # separate parts without neighbours: as close as the graph allows
        groups = np.unique(groups, return_inverse=True)[1].astype(np.int64)
    while len(np.unique(groups)) < k:
        gh = np.bincount(groups, weights=h)
        g = int(np.lexsort((np.arange(len(gh)), -gh))[0])
        if (groups == g).sum() < 2:
            break
        _split_once(groups, edges, h, centroid, g, int(groups.max()) + 1, seed)
        groups = np.unique(groups, return_inverse=True)[1].astype(np.int64)
    return groups
