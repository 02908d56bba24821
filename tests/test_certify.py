"""optimize.certify: the geometry-free band certificate, checked against brute force and the checker."""
from __future__ import annotations

import importlib.util
import itertools
import math

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from gridplan.optimize.certify import band, certify, greedy, min_band, splittable
from tests.conftest import CHECK_PLAN


def brute(sizes, k, tol):
    """(reachable, smallest max |load - mean| / mean) by trying every assignment."""
    sizes = np.asarray(sizes, int)
    total = int(sizes.sum())
    lo, hi = math.ceil(total / k * (1 - tol) - 1e-9), math.floor(total / k * (1 + tol) + 1e-9)
    ok, best = False, math.inf
    for a in itertools.product(range(k), repeat=len(sizes)):
        loads = np.bincount(np.array(a, int), weights=sizes, minlength=k)
        ok |= bool(loads.min() >= lo and loads.max() <= hi)
        best = min(best, float(np.max(np.abs(k * loads - total))) / total)
    return ok, best


@settings(max_examples=60)
@given(sizes=st.lists(st.integers(1, 60), min_size=2, max_size=7), k=st.integers(2, 3),
       tol=st.sampled_from([0.05, 0.1, 0.2]))
@example(sizes=[400] + [1] * 5, k=2, tol=0.1)
@example(sizes=[10, 10, 10], k=2, tol=0.1)
def test_certificate_agrees_with_brute_force(sizes, k, tol):
    c = certify(sizes, k, tol)
    ok, best = brute(sizes, k, tol)
    assert c.reachable is ok
    if ok:
        assert c.best_band is None
    else:
        assert c.best_band == pytest.approx(best, abs=1e-12)
        assert c.best_band > tol                       # unreachable means the best band is wider
    if c.witness is not None:                          # a reachable answer comes with a split
        loads = np.bincount(c.witness, weights=sizes, minlength=k)
        assert loads.min() >= c.lo and loads.max() <= c.hi


def test_tower_against_houses():
    """One tower of 400 and 200 single houses in 2 grids: ±10% is impossible, ±1/3 the best."""
    c = certify([400] + [1] * 200, 2, 0.10)
    assert c.reachable is False and c.best_band == pytest.approx(1 / 3)
    assert (c.lo, c.hi) == band(600, 2, 0.10) == (270, 330)


def test_tower_entrances_make_it_reachable():
    """The same households as entrances of 100 (rows of the households file) can be split."""
    c = certify([100] * 4 + [1] * 200, 2, 0.10)
    assert c.reachable is True


def test_many_distinct_sizes_are_decided_quickly_and_deterministically():
    """k = 20 and towers of every size up to 260: the count model decides it (no undecided)."""
    r = np.random.default_rng(3)
    sizes = np.r_[r.integers(80, 261, 40), r.integers(1, 4, 900)]
    a = certify(sizes, 20, 0.05)
    b = certify(sizes[::-1], 20, 0.05)
    assert a.reachable is not None and a.reachable == b.reachable
    assert a.best_band == b.best_band


def test_greedy_puts_every_point_somewhere():
    g = greedy(np.array([5, 3, 3, 2]), 2)
    assert sorted(np.bincount(g, weights=[5, 3, 3, 2], minlength=2).tolist()) == [6, 7]


def test_min_band_of_equal_points():
    assert min_band(np.array([7, 7, 7, 7]), 4)[0] == 0.0
    assert min_band(np.array([7, 7, 7]), 2)[0] == pytest.approx(1 / 3)   # 14 vs 7, mean 10.5


def _checker():
    # beside the repository, or beside the folder of worktrees holding it
    path = next((p for p in (CHECK_PLAN, CHECK_PLAN.parents[3] / "shared" / "tools" / "check_plan.py")
                 if p.exists()), None)
    if path is None:
        pytest.skip("the shared checker is not on this machine")
    spec = importlib.util.spec_from_file_location("check_plan", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 20), tol=st.sampled_from([0.05, 0.1]))
# found by the 30-minute random run: the checker left it undecided within its limit; ours has a witness
@example(seed=6867, k=20, tol=0.1)
# found by the longer random run: ours undecided within its limit where the checker decided "reachable"
@example(seed=1272, k=17, tol=0.05)
def test_same_verdict_as_the_checker(seed, k, tol):
    """The plan's "certified" is exactly what check_plan.py --certify would find unreachable.

    Where the checker stays undecided within its own limit (None), our verdict must carry its
    proof: a witness split within the band, or a proven best band beyond the tolerance. Where we
    stay undecided (None) the unit is reported a model miss, the conservative word.
    """
    chk = _checker()
    r = np.random.default_rng(seed)
    towers = r.integers(60, 261, int(r.integers(0, 2 * k)))
    sizes = np.r_[towers, r.integers(1, 4, int(r.integers(0, 120 * k)))]
    if sizes.sum() == 0:
        sizes = np.array([1])
    ours, theirs = certify(sizes, k, tol), chk.tolerance_reachable(sizes, k, tol)
    if theirs is not None and ours.reachable is not None:
        assert ours.reachable is theirs
    elif theirs is not None:        # undecided here: the unit stays a "miss", never a false "unreachable"
        assert ours.best_band is None
    elif ours.reachable is True:
        loads = np.bincount(ours.witness, weights=sizes[sizes > 0], minlength=k)
        assert loads.min() >= ours.lo and loads.max() <= ours.hi
    elif ours.reachable is False:
        assert ours.best_band is not None or ours.band_bound > tol


@settings(max_examples=60)
@given(sizes=st.lists(st.integers(1, 60), min_size=1, max_size=7), k=st.integers(1, 3),
       lo=st.integers(0, 90), width=st.integers(0, 40))
@example(sizes=[280, 30, 5], k=2, lo=27, width=6)
def test_splittable_agrees_with_brute_force(sizes, k, lo, width):
    hi = lo + width
    want = any(np.bincount(np.array(a, int), weights=sizes, minlength=k).min() >= lo
               and np.bincount(np.array(a, int), weights=sizes, minlength=k).max() <= hi
               for a in itertools.product(range(k), repeat=len(sizes)))
    assert splittable(sizes, k, lo, hi) is want
