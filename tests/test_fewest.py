"""The exact fewest-moves model (``optimize.fewest``) on small cell graphs."""
from __future__ import annotations

import numpy as np

from gridplan.optimize.fewest import fewest_moves

# found by the random adopt property run: 8 cells, 130 households in tens, 3 grids of 39-47 (no 3 loads can
# be 40 and sum to 130), hinted with a 2-group labelling; OR-Tools' interleaved search aborted the process
OLD = np.array([0, 0, 0, 0, 0, 0, 1, 1])
H = np.array([10, 30, 20, 10, 10, 10, 20, 20])
NBRS = [[1, 2], [0, 2, 5], [0, 1, 3, 4, 5], [2, 4], [2, 3, 5], [1, 2, 4, 6], [5, 7], [6]]


def test_an_impossible_band_with_a_broken_hint_is_no_answer_not_a_crash():
    assert fewest_moves(OLD, H, NBRS, 3, 3, 39, 47, hint=np.array([0, 0, 0, 0, 1, 1, 1, 1])) is None


def test_a_feasible_band_is_solved_to_the_proven_fewest():
    # 2 grids of 60-70: the old grid 0 holds 90, so at least 20 households move; the path 6-7 stays together
    res = fewest_moves(OLD, H, NBRS, 2, 2, 60, 70, hint=np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    assert res is not None and res.optimal
    loads = np.bincount(res.labels, weights=H)
    assert all(60 <= v <= 70 for v in loads)
    assert res.moved == int(H[res.labels != OLD].sum()) == 20
