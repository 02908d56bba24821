"""optimize.rebalance: boundary moves reach the band, every grid stays connected, same answer twice."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridplan.optimize.rebalance import connect, rebalance
from tests.helpers.graphs import lattice_edges


def lattice(rows: int, cols: int):
    e = lattice_edges(rows, cols)
    n = rows * cols
    nb = [[] for _ in range(n)]
    for a, b in e:
        nb[a].append(b)
        nb[b].append(a)
    cen = np.array([(c, r) for r in range(rows) for c in range(cols)], float)
    return n, [np.array(sorted(x)) for x in nb], cen


def connected(lab, nbrs, j):
    m = np.flatnonzero(lab == j)
    pos = {int(v): i for i, v in enumerate(m)}
    rows, cols = [], []
    for i in m:
        for b in nbrs[i]:
            if int(b) in pos:
                rows.append(pos[int(i)])
                cols.append(pos[int(b)])
    g = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(m), len(m)))
    return connected_components(g, directed=False)[0] == 1


@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 6), cut=st.floats(0.1, 0.9))
def test_vertical_strips_are_rebalanced_and_stay_connected(seed, k, cut):
    """k vertical strips of a 12 × 24 lattice of 1–3 households, the first made far too wide:
    afterwards every strip is within ±10% (single-household moves make it reachable), connected."""
    rows, cols = 12, 24
    n, nbrs, cen = lattice(rows, cols)
    h = np.random.default_rng(seed).integers(1, 4, n)
    h[np.random.default_rng(seed + 1).integers(0, n, 20)] = 1
    x = cen[:, 0]
    first = int(cut * (cols - k)) + 1
    edges = np.r_[first, np.linspace(first, cols, k)[1:]]
    lab = np.clip(np.searchsorted(edges, x, side="right"), 0, k - 1)
    lo, hi = int(np.ceil(h.sum() / k * 0.9)), int(np.floor(h.sum() / k * 1.1))
    out = rebalance(lab, h, cen, nbrs, k, lo, hi)
    gh = np.bincount(out, weights=h, minlength=k)
    assert gh.min() >= lo and gh.max() <= hi, gh
    assert all(connected(out, nbrs, j) for j in range(k))
    assert (rebalance(lab, h, cen, nbrs, k, lo, hi) == out).all()          # deterministic


def test_connect_gives_a_stray_piece_to_its_neighbour():
    n, nbrs, cen = lattice(3, 3)
    lab = np.array([0, 0, 1, 0, 0, 1, 1, 1, 0])          # cell 8 (a corner) is cut off from grid 0
    out = connect(lab, np.ones(n, int), nbrs, 2)
    assert out[8] == 1 and all(connected(out, nbrs, j) for j in range(2))
