"""``siting_capcuts.cut_capacitated``'s per-round progress: every round's served weight is a max flow
(feasible), every round's bound is a bound of the capacitated model (checked against the direct model
``siting_capacity.capacitated``), the kept figures are the best of each, and a round limit that stops
the loop early yields FEASIBLE with that bound and gap, never OPTIMAL."""
import numpy as np
import pytest
from scipy import sparse
from scipy.spatial.distance import cdist

from gridplan.optimize import siting_capacity as sc, siting_capcuts as cc

REL = 1e-9


def instance(seed):
    rng = np.random.default_rng(seed)
    d = cdist(rng.random((60, 2)), rng.random((12, 2)))
    pairs = sparse.csr_matrix(np.where(d <= 0.35, d + 1, 0))
    return pairs, rng.integers(1, 6, 60).astype(float), rng.integers(5, 20, 12).astype(float)


@pytest.mark.parametrize("seed", range(6))
def test_mclp_rounds_are_feasible_flows_and_valid_bounds(seed):
    pairs, w, cap = instance(seed)
    best = sc.capacitated(pairs, w, cap, kind="mclp", p=4)
    assert best.status == "OPTIMAL"
    trace = []
    r = cc.cut_capacitated(pairs, w, cap, kind="mclp", p=4, progress=trace.append)
    assert [t.round for t in trace] == list(range(1, len(trace) + 1))
    for t in trace:
        assert t.served <= best.objective * (1 + REL)              # a flow: never above the optimum
        assert t.bound >= best.objective * (1 - REL)               # a relaxation's bound: never below it
        assert t.best_served >= t.served and t.best_bound <= t.bound * (1 + REL)
        assert t.gap == pytest.approx((t.best_bound - t.best_served) / t.best_bound, abs=1e-12)
    assert all(a.best_served <= b.best_served and a.best_bound >= b.best_bound for a, b in zip(trace, trace[1:]))
    assert all(a.seconds <= b.seconds for a, b in zip(trace, trace[1:]))
    assert r.status == "OPTIMAL" and r.objective == pytest.approx(best.objective, rel=REL)
    assert trace[-1].gap == pytest.approx(0, abs=1e-9)
    assert r.objective == pytest.approx(max(t.served for t in trace), rel=REL)


@pytest.mark.parametrize("seed", [2, 4])
def test_a_round_limit_reports_feasible_with_the_bound_met(seed):
    pairs, w, cap = instance(seed)
    best = sc.capacitated(pairs, w, cap, kind="mclp", p=4)
    trace = []
    r = cc.cut_capacitated(pairs, w, cap, kind="mclp", p=4, max_rounds=1, progress=trace.append)
    assert len(trace) == 1 and trace[0].gap > 0                  # these seeds need a second round
    assert r.status == "FEASIBLE" and r.gap > 0
    assert r.objective == pytest.approx(trace[0].served, rel=REL) and r.objective <= best.objective * (1 + REL)
    assert r.bound == pytest.approx(trace[0].bound, rel=REL) and r.bound >= best.objective * (1 - REL)
    assert (r.load <= cap * (1 + 1e-9)).all() and r.assigned_weight == pytest.approx(r.objective, rel=REL)


@pytest.mark.parametrize("seed", range(4))
def test_lscp_bounds_never_exceed_the_optimum(seed):
    pairs, w, cap = instance(seed)
    cap = cap * 2
    try:
        best = sc.capacitated(pairs, w, cap, kind="lscp")
    except sc.CapacityInfeasible:
        pytest.skip("no cover at this capacity")
    trace = []
    r = cc.cut_capacitated(pairs, w, cap, kind="lscp", progress=trace.append)
    assert trace and all(t.bound <= best.objective + 1e-6 for t in trace)
    assert all(np.isnan(t.gap) and np.isnan(t.best_served) for t in trace)
    assert all(a.best_bound <= b.best_bound for a, b in zip(trace, trace[1:]))
    assert r.status == "OPTIMAL" and r.objective == best.objective
