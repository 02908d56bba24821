"""spopt's own locate test answers for the capacitated p-median, CLSCP, p-center, LSCP-B and
p-dispersion reproduced with gridplan's spopt-style classes (optimize.siting_api): the same objective
to 1e-9 relative (against spopt's stored answers, or against enumeration where spopt's test only checks
the status), the same sites where its test names them; and the capacitated models checked against
enumeration + LP on small random instances."""
import itertools

import numpy as np
import pytest
from scipy import sparse
from scipy.optimize import linprog
from scipy.spatial.distance import cdist

from gridplan.optimize import siting_capacity as sc, siting_center as ce
from gridplan.optimize.siting_api import LSCP, LSCPB, PCenter, PDispersion, PMedian

pytest.importorskip("spopt")
pytest.importorskip("spaghetti")
from tests.helpers import spopt_instances as si  # noqa: E402

REL = 1e-9


@pytest.fixture(scope="module")
def lattice100():
    return si.network_instance(100, 5)


@pytest.fixture(scope="module")
def sf():
    return si.san_francisco()


def xy(gdf):
    return np.column_stack([gdf.geometry.x, gdf.geometry.y])


# ------------------------------------------------------------------ capacitated p-median (test_c_p_median)
def test_c_p_median_synthetic():
    _, _, cost = si.network_instance(2, 3)
    r = PMedian.from_cost_matrix(cost, np.array([4, 10]), 2, facility_capacities=np.array([5, 7, 10])).solve()
    assert r.cli2fac == [[1], [2]] and r.fac2cli == [[], [0], [1]]
    r = PMedian.from_cost_matrix(cost, np.array([4, 10]), 2, facility_capacities=np.array([5, 7, 10]),
                                 predefined_facilities_arr=np.array([2]), fulfill_predefined_fac=True).solve()
    assert r.cli2fac == [[1], [2]] and r.fac2cli == [[], [0], [1]]
    with pytest.raises(sc.CapacityInfeasible):
        PMedian.from_cost_matrix(cost, np.array([4, 10]), 2, facility_capacities=np.array([5, 7, 10]),
                                 predefined_facilities_arr=np.array([0]), fulfill_predefined_fac=True).solve()


def test_c_p_median_schools_mean_time():
    cost, cap, priority1 = si.schools()
    r = PMedian.from_cost_matrix(cost, np.ones(len(cost)), 10, predefined_facilities_arr=priority1,
                                 facility_capacities=cap, fulfill_predefined_fac=True).solve()
    assert r.problem.status == 1 and r.problem.status_word == "OPTIMAL" and r.problem.gap == 0
    assert r.mean_dist == pytest.approx(87.2, rel=REL)
    load = np.asarray(r.assignment.sum(axis=0)).ravel()
    assert (load <= cap + 1e-9).all() and np.allclose(load[priority1], cap[priority1])
    assert len(r.open) == 10 and set(priority1) <= set(r.open)


def test_c_p_median_schools_errors():
    cost, cap, priority1 = si.schools()
    with pytest.raises(ValueError, match="highest possible capacity"):
        PMedian.from_cost_matrix(cost, np.full(len(cost), 5.0), 10, predefined_facilities_arr=priority1,
                                 facility_capacities=cap, fulfill_predefined_fac=True)
    with pytest.raises(ValueError, match="capacity of the facility is missing"):
        PMedian.from_cost_matrix(cost, np.ones(len(cost)), 10, predefined_facilities_arr=priority1,
                                 fulfill_predefined_fac=True)


# ------------------------------------------------------------------ CLSCP (test_clscp-so)
@pytest.mark.parametrize("radius, capacity, cli2fac, fac2cli", [
    (8, [5, 15], [[1], [1], [1], [1], [1]], [[], [0, 1, 2, 3, 4]]),
    (8, [15, 5], [[1], [1], [0, 1], [0, 1], [0, 1]], [[2, 3, 4], [0, 1, 2, 3, 4]]),
    (7, [8, 8], [[1], [1], [0, 1], [0], [1]], [[2, 3], [0, 1, 2, 4]]),
])
def test_clscp_synthetic(radius, capacity, cli2fac, fac2cli):
    _, _, cost = si.network_instance(5, 2)
    r = LSCP.from_cost_matrix(cost, radius, facility_capacity_arr=np.array(capacity),
                              demand_quantity_arr=np.arange(1, 6)).solve()
    assert r.cli2fac == cli2fac and r.fac2cli == fac2cli and r.problem.status == 1
    load = np.asarray(r.assignment.sum(axis=0)).ravel()
    assert (load <= np.array(capacity) + 1e-9).all() and load.sum() == pytest.approx(15, rel=REL)


def test_clscp_errors():
    _, _, cost = si.network_instance(5, 2)
    with pytest.raises(ValueError, match="Demand greater than capacity"):
        LSCP.from_cost_matrix(cost, 8, facility_capacity_arr=np.array([8, 8]), demand_quantity_arr=np.arange(5, 10))
    with pytest.raises(ValueError, match="infeasible"):
        LSCP.from_cost_matrix(cost, 1, facility_capacity_arr=np.array([5, 15]),
                              demand_quantity_arr=np.arange(1, 6)).solve()


# ------------------------------------------------------------------ p-center (test_p_center)
def worst_of(cost, fac2cli):
    return max(cost[i, j] for j, clients in enumerate(fac2cli) for i in clients)


def enum_center(cost, p, forced=()):
    best = min((cost[:, list(s)].min(axis=1).max(), s) for s in itertools.combinations(range(cost.shape[1]), p)
               if set(forced) <= set(s))
    return best


def test_p_center_lattice(lattice100):
    cli, fac, cost = lattice100
    r = PCenter.from_cost_matrix(cost, p_facilities=4).solve()
    assert r.problem.objective.value() == pytest.approx(worst_of(cost, si.load("pcenter_fac2cli.pkl")), rel=REL)
    assert worst_of(cost, r.fac2cli) == r.problem.objective.value() and r.problem.status == 1
    euclid = cdist(xy(cli), xy(fac))
    g = PCenter.from_geodataframe(cli, fac, "geometry", "geometry", p_facilities=4).solve()
    assert g.problem.objective.value() == pytest.approx(
        worst_of(euclid, si.load("pcenter_geodataframe_fac2cli.pkl")), rel=REL)


def test_p_center_lattice_predefined(lattice100):
    cli, fac, _ = lattice100
    fac = fac.copy()
    fac["predefined_loc"] = np.array([0, 0, 0, 1, 1])
    r = PCenter.from_geodataframe(cli, fac, "geometry", "geometry", 3, predefined_facility_col="predefined_loc").solve()
    assert r.problem.objective.value() == pytest.approx(6.2520432, abs=5e-8)     # spopt's answer, to its digits
    assert r.problem.objective.value() == pytest.approx(enum_center(cdist(xy(cli), xy(fac)), 3, (3, 4))[0], rel=REL)
    assert list(r.open) == [2, 3, 4]


def test_p_center_san_francisco(sf):
    cost, pop = sf
    r = PCenter.from_cost_matrix(cost, 4).solve()
    assert r.problem.status_word == "OPTIMAL"
    assert r.problem.objective.value() == pytest.approx(enum_center(cost, 4)[0], rel=REL)
    with pytest.raises(ValueError):
        PCenter.from_cost_matrix(cost, 0).solve()


def test_weighted_p_center_matches_enumeration(sf):
    cost, pop = sf
    r = PCenter.from_cost_matrix(cost, 3, weights=pop).solve()
    assert r.problem.objective.value() == pytest.approx(enum_center(cost * pop[:, None], 3)[0], rel=REL)


# ------------------------------------------------------------------ LSCP-B (test_lscpb)
def test_lscpb_san_francisco_backup_percentage(sf):
    cost, _ = sf
    r = LSCPB.from_cost_matrix(cost, 5000.0).solve()
    assert r.backup_perc == pytest.approx(81.46341463414633, rel=REL) and r.problem.status == 1
    within = cost <= 5000.0
    counts = within[:, r.open].sum(axis=1)
    assert (counts >= 1).all() and r.double_perc == pytest.approx((counts >= 2).mean() * 100, rel=REL)
    lscp = LSCP.from_cost_matrix(cost, 5000.0).solve()
    assert len(r.open) == len(lscp.open)


def test_lscpb_lattice_objective(lattice100):
    _, _, cost = lattice100
    r = LSCPB.from_cost_matrix(cost, 8).solve()
    known = si.load("lscpb_fac2cli.pkl")
    open_known = [j for j, c in enumerate(known) if c]
    within = cost <= 8
    spopt_double = (within[:, open_known].sum(axis=1) >= 2).sum()
    assert len(r.open) == len(open_known)
    assert r.double_perc == pytest.approx(spopt_double, rel=REL)
    if r.fac2cli != known:       # another optimum; it must be as good
        assert (within[:, r.open].sum(axis=1) >= 2).sum() == spopt_double


# ------------------------------------------------------------------ p-dispersion (test_p_dispersion)
def enum_dispersion(d, p, forced=()):
    m = d.shape[1]
    return max(min(d[a, b] for a, b in itertools.combinations(s, 2))
               for s in itertools.combinations(range(m), p) if set(forced) <= set(s))


def test_p_dispersion_lattice_predefined():
    _, fac, _ = si.network_instance(None, 5)
    fac = fac.copy()
    fac["predefined_loc"] = np.array([0, 0, 0, 1, 1])
    r = PDispersion.from_geodataframe(fac, "geometry", 3, predefined_facility_col="predefined_loc").solve()
    assert r.problem.objective.value() == pytest.approx(4.213464, abs=5e-7)      # spopt's answer, to its digits
    d = cdist(xy(fac), xy(fac))
    assert r.problem.objective.value() == pytest.approx(enum_dispersion(d, 3, (3, 4)), rel=REL)
    assert r.problem.status == 1 and {3, 4} <= set(r.open) and len(r.open) == 3
    spopt_set = [1, 3, 4]                    # spopt's sites: the same objective (the optimum is not unique)
    assert min(d[a, b] for a, b in itertools.combinations(spopt_set, 2)) == pytest.approx(
        r.problem.objective.value(), rel=REL)


def test_p_dispersion_san_francisco(sf):
    cost, _ = sf
    r = PDispersion.from_cost_matrix(cost, 4).solve()
    assert list(r.open) == [0, 1, 14, 15] and r.problem.status == 1
    assert r.problem.objective.value() == pytest.approx(enum_dispersion(np.triu(cost[:16, :16], 1) +
                                                                        np.triu(cost[:16, :16], 1).T, 4), rel=REL)
    with pytest.raises(ValueError):
        PDispersion.from_cost_matrix(cost, 17).solve()


# ------------------------------------------------------------------ capacitated models vs enumeration + LP
def lp_assign(within, w, cap, open_, full):
    """Most weight assignable with ``open_`` (and whether all of it is): an LP over the pairs."""
    pairs = [(i, j) for i in range(len(w)) for j in open_ if within[i, j]]
    if not pairs:
        return 0.0
    n = len(pairs)
    A_ub, b_ub = [], []
    for i in range(len(w)):
        A_ub.append([1.0 if p[0] == i else 0.0 for p in pairs]), b_ub.append(1.0)
    for j in open_:
        A_ub.append([w[p[0]] if p[1] == j else 0.0 for p in pairs]), b_ub.append(cap[j])
    res = linprog(-np.array([w[p[0]] for p in pairs]), A_ub=np.array(A_ub), b_ub=b_ub, bounds=[(0, 1)] * n,
                  method="highs")
    return -res.fun


@pytest.mark.parametrize("seed", range(4))
def test_capacitated_lscp_and_mclp_match_enumeration(seed):
    rng = np.random.default_rng(seed)
    n, m = 14, 6
    d = cdist(rng.random((n, 2)), rng.random((m, 2)))
    within = d <= 0.45
    w = rng.integers(1, 6, n).astype(float)
    cap = rng.integers(6, 20, m).astype(float)
    pairs = sparse.csr_matrix(np.where(within, d + 1, 0))
    reach = w[within.any(axis=1)].sum()
    best = None
    for k in range(1, m + 1):
        if any(lp_assign(within, w, cap, s, True) >= reach - 1e-9 for s in itertools.combinations(range(m), k)):
            best = k
            break
    if best is None:
        with pytest.raises(sc.CapacityInfeasible):
            sc.capacitated(pairs, w, cap, kind="lscp")
    else:
        r = sc.capacitated(pairs, w, cap, kind="lscp")
        assert r.objective == best and r.status == "OPTIMAL" and r.assigned_weight == pytest.approx(reach, rel=REL)
        assert (r.load <= cap * (1 + 1e-9)).all()
    for p in (1, 2, 3):
        top = max(lp_assign(within, w, cap, s, False) for s in itertools.combinations(range(m), p))
        r = sc.capacitated(pairs, w, cap, kind="mclp", p=p)
        assert r.objective == pytest.approx(top, rel=1e-7) and r.status == "OPTIMAL" and len(r.open) <= p
        assert (r.load <= cap * (1 + 1e-9)).all()


def test_single_source_serves_each_household_from_one_station():
    rng = np.random.default_rng(3)
    d = cdist(rng.random((30, 2)), rng.random((8, 2)))
    pairs = sparse.csr_matrix(np.where(d <= 0.5, d + 1, 0))
    w = rng.integers(1, 4, 30).astype(float)
    r = sc.capacitated(pairs, w, np.full(8, 12.0), kind="mclp", p=3, single_source=True)
    split = sc.capacitated(pairs, w, np.full(8, 12.0), kind="mclp", p=3)
    assert (np.diff(r.flow.tocsr().indptr) <= 1).all()
    assert r.objective <= split.objective + 1e-9 and (r.load <= 12 + 1e-9).all()


def test_closures_lscp_closes_what_is_not_needed():
    d = cdist(np.array([[0, 0], [0.1, 0], [5, 5]]), np.array([[0, 0], [0.05, 0], [5, 5], [5.1, 5]]))
    pairs = sparse.csr_matrix(np.where(d <= 1, d + 1, 0))
    w = np.array([1.0, 1.0, 1.0])
    cap = np.full(4, 10.0)
    sites = sc.Sites.of(4, closable=[0, 1, 2, 3], close_cost=0.5)
    r = sc.capacitated(pairs, w, cap, kind="lscp", sites=sites)
    assert len(r.open) == 2 and len(r.closed) == 2 and r.status == "OPTIMAL" and r.objective == 3.0
    r = sc.capacitated(pairs, w, cap, kind="lscp", sites=sc.Sites.of(4, closable=[0, 1, 2, 3], close_cost=1.5))
    assert len(r.closed) == 0                # a closure costing a station never pays
    r = sc.capacitated(pairs, w, cap, kind="lscp", sites=sc.Sites.of(4, closable=[0, 1, 2, 3], close_cost=0.5,
                                                                      max_close=1))
    assert len(r.closed) == 1


def test_p_center_sparse_pairs_and_bound():
    rng = np.random.default_rng(0)
    d = cdist(rng.random((60, 2)), rng.random((12, 2)))
    r = ce.p_center(d, 3)
    assert r.objective == pytest.approx(enum_center(d, 3)[0], rel=REL) and r.gap == 0


@pytest.mark.parametrize("seed", range(5))
def test_cut_set_decomposition_matches_the_direct_model(seed):
    from gridplan.optimize import siting_capcuts as cc
    rng = np.random.default_rng(seed)
    d = cdist(rng.random((40, 2)), rng.random((10, 2)))
    pairs = sparse.csr_matrix(np.where(d <= 0.4, d + 1, 0))
    w = rng.integers(1, 6, 40).astype(float)
    cap = rng.integers(8, 30, 10).astype(float)
    for kind, kw in [("lscp", {}), ("lscp", {"target_weight": 0.8 * w.sum()}), ("mclp", {"p": 3})]:
        try:
            direct = sc.capacitated(pairs, w, cap, kind=kind, **kw)
        except sc.CapacityInfeasible:
            with pytest.raises(sc.CapacityInfeasible):
                cc.cut_capacitated(pairs, w, cap, kind=kind, **kw)
            continue
        cut = cc.cut_capacitated(pairs, w, cap, kind=kind, **kw)
        assert cut.status == direct.status == "OPTIMAL"
        assert cut.objective == pytest.approx(direct.objective, rel=REL)
        assert (cut.load <= cap * (1 + 1e-9)).all()
        assert cut.assigned_weight >= kw.get("target_weight", 0) - 1e-9
        if kind == "lscp" and not kw:
            reach = w[np.diff(pairs.indptr) > 0].sum()
            assert cut.assigned_weight == pytest.approx(reach, rel=REL)
