"""spopt's own locate test cases (tests/test_locate: LSCP, MCLP, p-median on its lattice and San
Francisco instances, predefined sites included) reproduced with gridplan's models: the same objective
to 1e-9 relative and the same sites where the optimum is unique (checked by enumeration), also with the
weights rescaled x1e-8 ... x1e3; float weights solved exactly; the same stations on an idle and a
saturated machine."""
import itertools
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from gridplan.optimize import siting_models as sm

spopt = pytest.importorskip("spopt")
DATA = Path(spopt.__file__).parent / "tests" / "test_locate" / "data"
SCALES = (1e-8, 1e-3, 1.0, 1e3)


def pkl(name):
    with open(DATA / name, "rb") as f:
        return pickle.load(f)


# ------------------------------------------------------------------ instances, built as spopt's conftest does
@pytest.fixture(scope="module")
def lattice():
    """spopt's ``network_instance(100, 5)``: a 10x10 lattice network (spaghetti), 100 clients and 5
    facilities simulated with seeds 5 and 6 and snapped; network and euclidean cost matrices; then the
    weights ``numpy.random.randint(1, 12, 100)`` drawn right after, as its MCLP/p-median tests do."""
    pytest.importorskip("spaghetti")
    from scipy.spatial.distance import cdist

    from tests.helpers.spopt_instances import network_instance
    cli, fac, net = network_instance(100, 5)
    w = np.random.randint(1, 12, 100)
    xy = lambda g: np.column_stack([g.geometry.x, g.geometry.y])  # noqa: E731
    return {"net": np.asarray(net, float), "euclid": cdist(xy(cli), xy(fac)), "w": w.astype(float)}


@pytest.fixture(scope="module")
def sf():
    nd = pd.read_csv(DATA / "SF_network_distance_candidateStore_16_censusTract_205_new.csv")
    piv = nd.pivot_table(values="distance", index="DestinationName", columns="name")
    dem = pd.read_csv(DATA / "SF_demand_205_centroid_uniform_weight.csv").sort_values("NAME").reset_index()
    assert (dem.NAME.to_numpy() == piv.index.to_numpy()).all()
    return piv.to_numpy(), dem.POP2000.to_numpy().astype(float)


# ------------------------------------------------------------------ enumeration (the reference)
def subsets(m, k, forced=()):
    free = [j for j in range(m) if j not in set(forced)]
    for c in itertools.combinations(free, k - len(forced)):
        yield tuple(sorted((*forced, *c)))


def best_cover(cov, w, k, forced=()):
    """All size-k site sets (forced included) with the largest covered weight."""
    vals = {s: w[cov[:, list(s)].any(axis=1)].sum() for s in subsets(cov.shape[1], k, forced)}
    top = max(vals.values())
    return top, [s for s, v in vals.items() if v >= top * (1 - 1e-12)]


def fewest_full_cover(cov, forced=()):
    for k in range(len(forced), cov.shape[1] + 1):
        ok = [s for s in subsets(cov.shape[1], k, forced) if cov[:, list(s)].any(axis=1).all()]
        if ok:
            return k, ok
    return None, []


def best_median(cost, w, p, forced=()):
    vals = {s: (w * cost[:, list(s)].min(axis=1)).sum() for s in subsets(cost.shape[1], p, forced)}
    top = min(vals.values())
    return top, [s for s, v in vals.items() if v <= top * (1 + 1e-12)]


def same_sites(ours, opt, spopt_fac2cli=None):
    """Ours is an optimum; the only one when the optimum is unique; spopt's answer is one too."""
    assert tuple(int(j) for j in ours) in opt
    if spopt_fac2cli is not None:
        assert tuple(j for j, c in enumerate(spopt_fac2cli) if c) in opt
    return len(opt) == 1


def fac2cli(cov, open_):
    return [list(np.flatnonzero(cov[:, j])) if j in set(open_) else [] for j in range(cov.shape[1])]


# ------------------------------------------------------------------ lattice (TestSyntheticLocate)
@pytest.mark.parametrize("scale", SCALES)
def test_lattice_lscp_radius_8_as_spopt(lattice, scale):
    cov = lattice["net"] <= 8
    k, opt = fewest_full_cover(cov)
    r = sm.min_cover(sparse.csr_matrix(cov), lattice["w"] * scale)
    assert r.status == "OPTIMAL" and r.gap == 0 and r.objective == r.bound == k
    if same_sites(r.open, opt, pkl("lscp_fac2cli.pkl")):
        assert fac2cli(cov, r.open) == pkl("lscp_fac2cli.pkl")


@pytest.mark.parametrize("scale", SCALES)
def test_lattice_lscp_predefined_site_as_spopt(lattice, scale):
    cov = lattice["euclid"] <= 8
    k, opt = fewest_full_cover(cov, forced=(4,))
    r = sm.min_cover(sparse.csr_matrix(cov), np.ones(100) * scale, forced=[4])
    assert r.status in ("OPTIMAL", "TRIVIAL") and len(r.open) == k
    if same_sites(r.open, opt, pkl("lscp_preselected_loc_geodataframe_fac2cli.pkl")):
        assert fac2cli(cov, r.open) == pkl("lscp_preselected_loc_geodataframe_fac2cli.pkl")


@pytest.mark.parametrize("scale", SCALES)
def test_lattice_mclp_radius_7_four_sites_as_spopt(lattice, scale):
    cov, w = lattice["net"] <= 7, lattice["w"]
    top, opt = best_cover(cov, w, 4)
    r = sm.max_cover(sparse.csr_matrix(cov), w * scale, 4)
    assert r.status == "OPTIMAL" and r.gap == 0
    assert r.covered_weight == pytest.approx(top * scale, rel=1e-9)
    assert r.bound == pytest.approx(top * scale, rel=1e-9)
    hit = cov[:, r.open].any(axis=1)
    assert (~hit).sum() == 1 and hit.mean() * 100 == 99.0        # spopt: n_cli_uncov 1, perc_cov 99
    if same_sites(r.open, opt, pkl("mclp_fac2cli.pkl")):
        assert fac2cli(cov, r.open) == pkl("mclp_fac2cli.pkl")


@pytest.mark.parametrize("scale", SCALES)
def test_lattice_mclp_predefined_sites_as_spopt(lattice, scale):
    cov, w = lattice["euclid"] <= 7, lattice["w"]
    forced = (0, 1, 3)                                          # predefined_loc [1, 1, 0, 1, 0], p = 4
    top, opt = best_cover(cov, w, 4, forced)
    r = sm.max_cover(sparse.csr_matrix(cov), w * scale, 4 - len(forced), forced=forced)
    assert r.covered_weight == pytest.approx(top * scale, rel=1e-9)
    # the predefined sites already cover every client here: spopt must open a 4th (sum y = p), any
    # one is optimal; ours opens none ("at most p new") at the same objective
    assert set(forced) <= set(r.open) and len(r.open) <= 4 and r.status == "TRIVIAL"
    assert cov[:, list(forced)].any(axis=1).all() and len(opt) == 2
    spopt_sites = tuple(j for j, c in enumerate(pkl("mclp_preselected_loc_geodataframe_fac2cli.pkl")) if c)
    assert spopt_sites in opt


@pytest.mark.parametrize("scale", SCALES)
def test_lattice_p_median_four_sites_as_spopt(lattice, scale):
    cost, w = lattice["net"], lattice["w"]
    top, opt = best_median(cost, w, 4)
    open_, assign, mean, status = sm.p_median(cost, w * scale, 4)
    assert status == "OPTIMAL" and mean == pytest.approx(top / w.sum(), rel=1e-9)
    assert same_sites(open_, opt, pkl("pmedian_fac2cli.pkl"))
    ours = [list(np.flatnonzero(assign == j)) for j in range(cost.shape[1])]
    assert ours == pkl("pmedian_fac2cli.pkl")


@pytest.mark.parametrize("scale", SCALES)
def test_lattice_p_median_predefined_sites_as_spopt(lattice, scale):
    cost, w = lattice["euclid"], lattice["w"]
    open_, assign, mean, status = sm.p_median(cost, w * scale, 3, forced=[3, 4])
    assert status == "OPTIMAL" and list(open_) == [1, 3, 4]            # spopt: y_1_, y_3_, y_4_
    assert mean == pytest.approx(3.0299503664451164, rel=1e-9)
    assert (w * cost[np.arange(100), assign]).sum() == pytest.approx(1872.5093264630818, rel=1e-9)
    assert [tuple(s) for s in best_median(cost, w, 3, (3, 4))[1]] == [(1, 3, 4)]


# ------------------------------------------------------------------ San Francisco (TestRealWorldLocate)
@pytest.mark.parametrize("scale", SCALES)
def test_sf_mclp_as_spopt(sf, scale):
    cost, w = sf
    cov = cost <= 5000.0
    top, opt = best_cover(cov, w, 4)
    r = sm.max_cover(sparse.csr_matrix(cov), w * scale, 4)
    assert r.status == "OPTIMAL" and r.gap == 0
    assert r.covered_weight == pytest.approx(top * scale, rel=1e-9) and r.bound == pytest.approx(top * scale, rel=1e-9)
    assert same_sites(r.open, opt)
    hit = cov[:, r.open].any(axis=1)
    assert (~hit).sum() == 21 and hit.mean() * 100 == pytest.approx(89.75609756097561)


@pytest.mark.parametrize("scale", SCALES)
def test_sf_lscp_as_spopt(sf, scale):
    cost, w = sf
    cov = cost <= 5000.0
    k, opt = fewest_full_cover(cov)
    r = sm.min_cover(sparse.csr_matrix(cov), w * scale)
    assert r.status == "OPTIMAL" and r.objective == r.bound == k and tuple(r.open) in opt
    assert r.covered_weight == pytest.approx(w.sum() * scale, rel=1e-12)
    with pytest.raises(sm.Infeasible):
        sm.min_cover(sparse.csr_matrix(cost <= 20.0), w * scale)


@pytest.mark.parametrize("scale", SCALES)
def test_sf_p_median_as_spopt(sf, scale):
    cost, w = sf
    top, opt = best_median(cost, w, 4)
    open_, _, mean, status = sm.p_median(cost, w * scale, 4)
    assert status == "OPTIMAL" and mean == pytest.approx(2982.1268579890657, rel=1e-9)
    assert same_sites(open_, opt)
    with pytest.raises(sm.Infeasible):
        sm.p_median(cost, w * scale, 0)


# ------------------------------------------------------------------ float weights, exactly
def float_instance(seed, n=60, m=10, density=0.25):
    rng = np.random.default_rng(seed)
    cov = rng.random((n, m)) < density
    w = rng.lognormal(0.0, 2.0, n)              # population shares spanning orders of magnitude
    return cov, w / w.sum()


@pytest.mark.parametrize("seed", range(6))
def test_float_weights_max_cover_is_the_enumerated_optimum_at_every_scale(seed):
    cov, w = float_instance(seed)
    top, opt = best_cover(cov, w, 3)
    for scale in SCALES:
        r = sm.max_cover(sparse.csr_matrix(cov), w * scale, 3)
        assert r.status == "OPTIMAL" and r.gap == 0
        assert r.covered_weight == pytest.approx(top * scale, rel=1e-9)
        assert r.bound == pytest.approx(r.covered_weight, rel=1e-9)
        same_sites(r.open, opt)


@pytest.mark.parametrize("seed", range(6))
def test_float_weights_min_cover_reaches_the_target_with_the_fewest_sites_at_every_scale(seed):
    cov, w = float_instance(seed)
    coverable = w[cov.any(axis=1)].sum()
    target = 0.8 * coverable
    sizes = [len(s) for k in range(11) for s in itertools.combinations(range(10), k)
             if w[cov[:, list(s)].any(axis=1)].sum() >= target]
    for scale in SCALES:
        r = sm.min_cover(sparse.csr_matrix(cov), w * scale, target_weight=target * scale)
        assert r.status == "OPTIMAL" and r.objective == r.bound == min(sizes)
        assert r.covered_weight >= target * scale * (1 - 1e-12)
