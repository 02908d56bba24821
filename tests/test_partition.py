"""partition_unit: tiling, contiguity, balance, determinism, edge cases, towers, barriers, islands."""
import numpy as np
import pytest
import shapely
import shapely.affinity
from hypothesis import example, HealthCheck, given, settings, strategies as st

from gridplan.geo.grids import assign_points
from gridplan.optimize.options import PlanOptions
from gridplan.optimize.partition import choose_k, partition_unit
from tests.test_cells import points_in, random_unit

OPT = PlanOptions(time_limit_per_unit=2.0)


def check_tiling(unit, r, xy, h):
    assert len(r.polygons) == r.k and r.labels.shape == (len(xy),)
    if len(xy):
        assert r.labels.min() >= 0 and r.labels.max() < r.k
        # the label of every household is the grid polygon it lies in
        assert (assign_points(r.polygons, xy) == r.labels).all()
        assert tuple(np.bincount(r.labels, weights=h, minlength=r.k).astype(int)) == r.households
    u = shapely.union_all(r.polygons)
    assert u.symmetric_difference(unit).area <= 1e-3 * unit.area
    assert sum(p.area for p in r.polygons) - u.area <= 1e-6 * unit.area      # no overlap
    assert all(p.is_valid for p in r.polygons)


def test_choose_k():
    assert choose_k(0, 300) == 1 and choose_k(100, 300) == 1
    assert choose_k(449, 300) == 1 and choose_k(450, 300) == 2 and choose_k(3000, 300) == 10
    with pytest.raises(ValueError):
        choose_k(10, 0)


def unit_of(kind: str, seed: int):
    """A seeded unit of about 1–4 km²: "convex" (hull of random points), "L", "U" (two arms and a
    notch), "star" (tests.test_cells.random_unit's 10-vertex star, radii 300–900 m); rotated."""
    r = np.random.default_rng(seed)
    s = float(r.uniform(700, 1600))
    if kind == "star":
        return random_unit(seed, True)
    if kind == "convex":
        g = shapely.MultiPoint(r.uniform(-s, s, size=(12, 2))).convex_hull
    elif kind == "L":
        a = float(r.uniform(0.3, 0.6))
        g = shapely.Polygon([(0, 0), (s, 0), (s, a * s), (a * s, a * s), (a * s, s), (0, s)])
    elif kind == "U":
        a, d = float(r.uniform(0.2, 0.35)), float(r.uniform(0.4, 0.8))
        g = shapely.Polygon([(0, 0), (s, 0), (s, s), ((1 - a) * s, s), ((1 - a) * s, (1 - d) * s),
                             (a * s, (1 - d) * s), (a * s, s), (0, s)])
    else:
        raise ValueError(kind)
    g = shapely.affinity.rotate(g, float(r.uniform(0, 180)), origin="centroid")
    return shapely.affinity.translate(g, 4e5, 3e6)


def houses_in(unit, n: int, seed: int, clustered: bool) -> np.ndarray:
    """n house points in the unit: uniform, or 75% in a few hamlets (σ 80 m) and 25% scattered."""
    if not clustered:
        return points_in(unit, n, seed)
    r = np.random.default_rng(seed)
    hamlets = points_in(unit, int(r.integers(3, 9)), seed + 7)
    near = hamlets[r.integers(len(hamlets), size=4 * n)] + r.normal(0, 80, size=(4 * n, 2))
    near = near[shapely.contains_xy(unit, near[:, 0], near[:, 1])][: int(0.75 * n)]
    return np.vstack([near, points_in(unit, n - len(near), seed + 3)])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(300, 900), k=st.integers(2, 8),
       kind=st.sampled_from(["convex", "L", "U", "star"]), clustered=st.booleans())
def test_single_houses_give_balanced_connected_tiling(seed, n, k, kind, clustered):
    """The requirement: single houses (1–3 households a point), n ≫ k → EVERY grid within ±10% of
    the unit mean, on convex and concave units alike (no indivisible point excuses a miss)."""
    unit = unit_of(kind, seed)
    xy = houses_in(unit, n, seed + 1, clustered)
    h = np.random.default_rng(seed + 2).integers(1, 4, n)
    target = h.sum() / k
    r = partition_unit(unit, xy, h, target, OPT)
    assert r.k == choose_k(h.sum(), target)
    check_tiling(unit, r, xy, h)
    assert all(p.geom_type == "Polygon" for p in r.polygons)          # each grid connected
    mean = h.sum() / r.k
    dev = np.abs(np.array(r.households) - mean) / mean
    assert dev.max() <= OPT.tolerance + 1e-9, f"{kind} unit: grid households {r.households}, mean {mean:.1f}"
    assert r.max_abs_dev == pytest.approx(dev.max())


def test_single_houses_balanced_on_deep_interleaved_spikes():
    """A star with deep interleaved spikes: power cells straddle two spikes and the CP-SAT cell model
    misses the band (max dev 0.63); moving boundary cells (optimize.rebalance) or the spanning-tree
    bisection (optimize.treecut) balances it."""
    r0 = np.random.default_rng(34)
    ang = np.sort(r0.uniform(0, 2 * np.pi, 16))
    rad = r0.uniform(150, 1000, 16)
    unit = shapely.Polygon(np.c_[rad * np.cos(ang), rad * np.sin(ang)] + [4e5, 3e6])
    r = np.random.default_rng(34 + 1000)
    n, k = int(r.integers(300, 1500)), int(r.integers(2, 13))       # 1026 points, k = 12
    xy = points_in(unit, n, 35)
    h = r.integers(1, 4, n)
    res = partition_unit(unit, xy, h, h.sum() / k, OPT)
    check_tiling(unit, res, xy, h)
    assert res.max_abs_dev <= OPT.tolerance + 1e-9
    assert res.status == "tree" or res.status.endswith("+rebalanced"), res.status


def test_deterministic_for_a_seed():
    unit = random_unit(11, True)
    xy = points_in(unit, 300, 12)
    h = np.ones(300, dtype=int)
    a = partition_unit(unit, xy, h, 60, OPT)
    b = partition_unit(unit, xy[::-1].copy(), h, 60, OPT)      # input order does not matter either
    assert (a.labels == b.labels[::-1]).all()
    assert all(p.equals_exact(q, 0) for p, q in zip(a.polygons, b.polygons))


def test_edge_cases_empty_one_point_one_grid():
    unit = shapely.box(0, 0, 500, 400)
    r0 = partition_unit(unit, np.zeros((0, 2)), np.zeros(0, dtype=int), 300, OPT)
    assert r0.k == 1 and r0.status == "empty" and r0.labels.shape == (0,)
    assert abs(r0.polygons[0].area - unit.area) < 1e-3
    r1 = partition_unit(unit, np.array([[10.0, 10.0]]), np.array([5]), 300, OPT)
    assert r1.k == 1 and r1.labels.tolist() == [0] and r1.status == "single"
    xy = points_in(unit, 50, 1)
    r2 = partition_unit(unit, xy, np.ones(50, dtype=int), 300, OPT)
    assert r2.k == 1 and (r2.labels == 0).all() and r2.max_abs_dev == 0


def test_three_households_cannot_make_more_than_three_grids():
    unit = shapely.box(0, 0, 300, 100)
    r = partition_unit(unit, np.array([[50.0, 50], [150, 50], [250, 50]]), np.array([200, 200, 200]), 100, OPT)
    assert r.k == 3 and sorted(r.labels.tolist()) == [0, 1, 2]
    assert any("k reduced" in n for n in r.notes)
    assert r.labels.tolist() == [0, 1, 2]          # codes run west → east


def test_tower_makes_tolerance_infeasible_and_deviation_is_minimized():
    unit = shapely.box(0, 0, 600, 400)
    xy = np.vstack([[[300.0, 200.0]], points_in(unit, 200, 5)])
    h = np.r_[400, np.ones(200, dtype=int)]
    r = partition_unit(unit, xy, h, 300, OPT)
    assert r.k == 2
    check_tiling(unit, r, xy, h)
    # best possible: the tower alone (400) against the 200 houses: deviation 1/3
    assert r.max_abs_dev == pytest.approx(1 / 3, abs=1e-9)
    # and that is proven: no split of the points into 2 groups meets ±10%, the best is ±1/3
    assert r.balance == "certified" and r.best_band == pytest.approx(1 / 3)
    assert any("tolerance unreachable" in n for n in r.notes)


def test_barrier_is_not_crossed():
    unit = shapely.box(0, 0, 1000, 400)
    xy = points_in(unit, 240, 9)
    river = shapely.LineString([(430, -5), (470, 405)])
    r = partition_unit(unit, xy, np.ones(240, dtype=int), 60, OPT, barriers=[river])
    check_tiling(unit, r, xy, np.ones(240, dtype=int))
    west = shapely.Polygon([(-10, -10), (429.0, -10), (471.0, 410), (-10, 410)])
    for p in r.polygons:       # every grid lies on one side of the river
        share = p.intersection(west).area / p.area
        assert share < 0.01 or share > 0.99


def test_multipart_unit_islands():
    a, b = shapely.box(0, 0, 400, 400), shapely.box(600, 0, 1000, 400)
    unit = shapely.MultiPolygon([a, b])
    xy = np.vstack([points_in(a, 120, 1), points_in(b, 120, 2)])
    h = np.ones(240, dtype=int)
    r = partition_unit(unit, xy, h, 60, OPT)
    check_tiling(unit, r, xy, h)
    assert r.k == 4 and all(p.geom_type == "Polygon" for p in r.polygons)
    # an island without households must be attached somewhere, and that is reported
    c = shapely.box(0, 600, 100, 700)
    unit3 = shapely.MultiPolygon([a, b, c])
    r3 = partition_unit(unit3, xy, h, 60, OPT)
    check_tiling(unit3, r3, xy, h)
    assert sum(p.geom_type == "MultiPolygon" for p in r3.polygons) == 1
    assert any("MultiPolygon" in n for n in r3.notes)


def towers_in(unit, seed: int, n_houses: int, n_towers: int, near_pairs: int):
    """Houses, towers (2–4 entrances 0.2–0.6 m apart, up to 260 households a tower) and pairs of
    houses 0.01–0.6 m apart (doubled rows and neighbours): the points of a county like the issue's."""
    r = np.random.default_rng(seed)
    xy = [houses_in(unit, n_houses, seed + 5, True)]
    h = [r.integers(1, 4, n_houses)]
    for c in points_in(unit, n_towers, seed + 6):
        m = int(r.integers(2, 5))
        steps = r.uniform(0.2, 0.6, m - 1) * np.sign(r.uniform(-1, 1, m - 1))
        ent = c + np.c_[np.r_[0.0, np.cumsum(steps)], r.uniform(-0.05, 0.05, m)]
        xy.append(ent)
        h.append(r.multinomial(int(r.integers(60, 261)) - m, np.full(m, 1 / m)) + 1)
    base = houses_in(unit, near_pairs, seed + 7, False)
    ang = r.uniform(0, 2 * np.pi, near_pairs)
    d = r.uniform(0.01, 0.6, near_pairs)
    xy += [base, base + np.c_[d * np.cos(ang), d * np.sin(ang)]]
    h += [r.integers(1, 3, near_pairs), r.integers(1, 3, near_pairs)]
    xy, h = np.vstack(xy), np.concatenate(h).astype(np.int64)
    inside = shapely.contains_xy(unit, xy[:, 0], xy[:, 1])
    return xy[inside], h[inside]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(["convex", "L", "U", "star"]),
       towers=st.integers(0, 12), pairs=st.integers(0, 80), target=st.sampled_from([150.0, 300.0]))
# found by the long random run: clearing all points at once cut a sliver off a grid, so no point was cleared
@example(seed=33, kind="convex", towers=0, pairs=33, target=150.0)
# found by the 30-minute random run: a household 0.04 mm inside the unit edge, outside the snapped grids
@example(seed=71, kind="U", towers=3, pairs=7, target=150.0)
@example(seed=319, kind="L", towers=4, pairs=34, target=150.0)
# found by this session's random run: shifting the power model's grids back by the origin made a ring invalid
@example(seed=18, kind="star", towers=0, pairs=0, target=150.0)
def test_every_household_lies_in_the_grid_its_label_names(seed, kind, towers, pairs, target):
    """Labels come from the polygons: every household row's point is covered by the polygon of its
    grid and by no other, and each grid's households are exactly those of the points inside it —
    also for tower entrances and doubled rows a few decimetres apart."""
    unit = unit_of(kind, seed)
    xy, h = towers_in(unit, seed, 400, towers, pairs)
    r = partition_unit(unit, xy, h, target, OPT)
    check_tiling(unit, r, xy, h)
    pts = shapely.points(xy)
    cover = np.array([shapely.covers(p, pts) for p in r.polygons])        # (k, n)
    assert cover[r.labels, np.arange(len(xy))].all()
    assert (cover.sum(axis=0) == 1).all(), "a household sits on a grid edge: its grid is ambiguous"
    inside = (cover * h[None, :]).sum(axis=1)
    assert tuple(int(v) for v in inside) == r.households
    # and not by a hair: each point ~0.1 m from every other grid (0.45 × the gap to a point of another grid)
    from scipy.spatial import cKDTree
    d, j = cKDTree(xy).query(xy, k=min(len(xy), 16))
    gap = np.where(r.labels[j] != r.labels[:, None], d, np.inf).min(axis=1)
    need = np.minimum(0.1, 0.45 * gap) - 1e-6
    for g, p in enumerate(r.polygons):
        other = r.labels != g
        assert (shapely.distance(p, pts[other]) >= need[other]).all()
    assert r.balance in ("within", "certified", "miss", "single")
    if r.balance == "certified":
        assert r.best_band is not None and r.best_band > OPT.tolerance


def test_the_choice_prefers_within_tolerance_then_compactness_then_balance():
    """Issue 11: a 12.4% power answer beat a 7.9% cell answer. Now: single Polygons and the intended
    k first; within the tolerance before out of it; the most compact within; the most balanced without."""
    from gridplan.optimize.partition import _Answer, _rank
    box = shapely.box(0, 0, 1, 1)

    def ans(status, dev, pp, k=3, single=True):
        return _Answer(status, [box] * k, np.zeros(0, np.int64), np.zeros(k, np.int64), dev, pp, single, (), 0)

    power, cells = ans("power", 0.124, 0.75), ans("optimal", 0.079, 0.45)
    assert min([power, cells], key=lambda a: _rank(a, 3, 0.10)) is cells
    tree, rebalanced = ans("tree", 0.02, 0.35), ans("power+rebalanced", 0.095, 0.62)
    assert min([tree, rebalanced, power], key=lambda a: _rank(a, 3, 0.10)) is rebalanced
    worse, better = ans("power", 0.30, 0.8), ans("tree", 0.17, 0.3)
    assert min([worse, better], key=lambda a: _rank(a, 3, 0.10)) is better
    islands = ans("optimal", 0.0, 0.9, single=False)
    assert min([islands, worse], key=lambda a: _rank(a, 3, 0.10)) is worse
    assert min([ans("optimal", 0.0, 0.9, k=4), worse], key=lambda a: _rank(a, 3, 0.10)) is worse
