"""optimize.treecut: every part connected, every part balanced, the same answer for the same seed."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridplan.optimize.treecut import tree_partition
from tests.helpers.graphs import lattice_edges


def lattice(rows: int, cols: int, holes: np.ndarray) -> tuple[int, np.ndarray]:
    """A rows × cols grid graph with some nodes cut away (a ragged outline), renumbered."""
    keep = np.ones(rows * cols, bool)
    keep[holes] = False
    ids = np.full(rows * cols, -1)
    ids[keep] = np.arange(keep.sum())
    e = lattice_edges(rows, cols)
    e = ids[np.array(e)]
    return int(keep.sum()), e[(e >= 0).all(axis=1)]


def parts_connected(n, edges, labels) -> bool:
    for j in np.unique(labels):
        nodes = np.flatnonzero(labels == j)
        loc = np.full(n, -1)
        loc[nodes] = np.arange(len(nodes))
        e = loc[edges]
        e = e[(e >= 0).all(axis=1)]
        g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(nodes), len(nodes)))
        if connected_components(g, directed=False)[0] != 1:
            return False
    return True


@settings(max_examples=40)
@given(rows=st.integers(8, 30), cols=st.integers(8, 30), k=st.integers(2, 9), seed=st.integers(0, 10_000))
def test_parts_are_connected_and_balanced(rows, cols, k, seed):
    rng = np.random.default_rng(seed)
    holes = rng.choice(rows * cols, size=(rows * cols) // 10, replace=False)
    n, edges = lattice(rows, cols, holes)
    if connected_components(coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)),
                            directed=False)[0] != 1:
        return                                   # the holes cut the graph: not this function's case
    w = rng.integers(1, 4, n).astype(float)
    lab = tree_partition(n, edges, w, k, 0.10, seed=seed)
    if lab is None:                              # allowed (it says so); it must not be wrong
        return
    assert sorted(np.unique(lab)) == list(range(k))
    gw = np.bincount(lab, weights=w, minlength=k)
    assert np.max(np.abs(gw - w.sum() / k)) <= 0.10 * w.sum() / k + 1e-9
    assert parts_connected(n, edges, lab)
    again = tree_partition(n, edges, w, k, 0.10, seed=seed)
    assert (again == lab).all()


def test_finds_a_split_on_a_long_path_and_refuses_the_impossible():
    n = 60
    edges = np.c_[np.arange(n - 1), np.arange(1, n)]
    lab = tree_partition(n, edges, np.ones(n), 3, 0.05)
    assert lab is not None and (np.bincount(lab) == 20).all() and parts_connected(n, edges, lab)
    # one node carries almost everything: no ±10% split into two exists
    w = np.ones(n)
    w[0] = 500
    assert tree_partition(n, edges, w, 2, 0.10) is None
