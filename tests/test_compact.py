"""optimize.compact: boundary moves shorten the cut between grids, never leave the band or split a grid."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from gridplan.geo.cells import CellGraph
from gridplan.optimize.compact import compact
from gridplan.optimize.treecut import tree_partition
from tests.helpers.graphs import lattice_edges
from tests.test_treecut import parts_connected


def lattice_graph(rows: int, cols: int, h: np.ndarray) -> CellGraph:
    e = np.array(lattice_edges(rows, cols), dtype=np.int64)
    n = rows * cols
    xy = np.column_stack([np.arange(n) % cols, np.arange(n) // cols]).astype(float)
    return CellGraph(None, h.astype(np.int64), np.ones(n), xy, np.arange(n), e, np.ones(len(e)),
                     np.zeros(n, dtype=np.int64))


def cut_length(g: CellGraph, lab: np.ndarray) -> float:
    return float(g.edge_length[lab[g.edges[:, 0]] != lab[g.edges[:, 1]]].sum())


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(6, 16), cols=st.integers(6, 16), k=st.integers(2, 6), seed=st.integers(0, 1000))
def test_compaction_keeps_band_and_connectivity_and_shortens_the_cut(rows, cols, k, seed):
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 4, rows * cols)
    h[rng.integers(0, rows * cols)] += 25                   # a tower
    g = lattice_graph(rows, cols, h)
    lab = tree_partition(g.n, g.edges, h.astype(float), k, 0.10, seed=seed)
    if lab is None:
        return
    mean = h.sum() / k
    lo, hi = mean * 0.9, mean * 1.1
    out = compact(lab, g, k, lo, hi)
    gh = np.bincount(out, weights=h, minlength=k)
    assert gh.min() >= lo - 1e-9 and gh.max() <= hi + 1e-9
    assert parts_connected(g.n, g.edges, out) and sorted(np.unique(out)) == list(range(k))
    assert cut_length(g, out) <= cut_length(g, lab)
    assert (compact(lab, g, k, lo, hi) == out).all()         # deterministic


def test_compaction_straightens_a_zigzag_split():
    rows, cols = 8, 8
    h = np.ones(rows * cols, dtype=np.int64)
    g = lattice_graph(rows, cols, h)
    lab = (np.arange(g.n) % cols >= 4).astype(np.int64)     # left | right halves ...
    lab[[3, 19, 35, 51]] = 1                                 # ... with teeth swapped across the line
    lab[[12, 28, 44, 60]] = 0
    out = compact(lab, g, 2, 28, 36)
    assert cut_length(g, out) < cut_length(g, lab)
    assert cut_length(g, out) == rows                        # the straight line
