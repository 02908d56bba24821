"""Cells of a unit: merged points, Voronoi cells tiling the unit, adjacency, barriers, atoms."""
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings, strategies as st

from gridplan.geo.cells import build_cells, coarsen, merge_points


def random_unit(seed: int, concave: bool):
    r = np.random.default_rng(seed)
    ang = np.sort(r.uniform(0, 2 * np.pi, 10))
    rad = r.uniform(300, 900, 10) if concave else np.full(10, 700.0)
    poly = shapely.Polygon(np.c_[rad * np.cos(ang), rad * np.sin(ang)] + [4e5, 3e6])
    return shapely.make_valid(poly) if not poly.is_valid else poly


def points_in(poly, n, seed):
    r = np.random.default_rng(seed)
    x0, y0, x1, y1 = poly.bounds
    out = np.zeros((0, 2))
    while len(out) < n:
        c = r.uniform([x0, y0], [x1, y1], size=(4 * n, 2))
        c = c[shapely.contains_xy(poly, c[:, 0], c[:, 1])]
        out = np.vstack([out, c])
    return out[:n]


def test_merge_points_merges_only_points_centimetres_apart():
    """Doubled rows and GPS noise (< 5 cm, chained) merge; entrances of a building 0.2 m apart
    stay separate points, which a grid edge may run between."""
    xy = np.array([[0, 0], [0.03, 0.02], [10, 10], [0.06, 0.04], [10.2, 10], [10, 10]])
    mp = merge_points(xy, np.array([1, 2, 3, 4, 5, 6]))
    assert mp.m == 3
    assert mp.households.tolist() == [7, 9, 5]          # ordered by the smallest member, west first
    assert mp.index[0] == mp.index[1] == mp.index[3] and mp.index[2] == mp.index[5] != mp.index[4]
    # input order plays no part
    perm = np.array([4, 2, 0, 5, 3, 1])
    mq = merge_points(xy[perm], np.array([1, 2, 3, 4, 5, 6])[perm])
    assert np.allclose(mq.xy, mp.xy) and (mq.households == mp.households).all()
    assert (mq.index == mp.index[perm]).all()


def test_merge_points_rejects_bad_rows():
    with pytest.raises(ValueError, match="row 1"):
        merge_points(np.array([[0, 0], [np.nan, 1]]))
    with pytest.raises(ValueError, match="row 0"):
        merge_points(np.array([[0, 0]]), np.array([0]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(1, 150), concave=st.booleans())
def test_cells_tile_the_unit_and_hold_their_points(seed, n, concave):
    unit = random_unit(seed, concave)
    xy = points_in(unit, n, seed + 1)
    mp, g = build_cells(unit, xy)
    cells = g.polygons
    assert all(c.geom_type == "Polygon" and c.is_valid for c in cells)
    # exact tiling: areas add up, union equals the unit
    assert abs(g.area.sum() - unit.area) <= 1e-5 * unit.area
    assert shapely.union_all(cells).symmetric_difference(unit).area <= 1e-5 * unit.area
    # every merged point sits in its own cell, and households are conserved
    assert shapely.covers(cells[g.point_cell], shapely.points(mp.xy)).all() or \
        (shapely.distance(cells[g.point_cell], shapely.points(mp.xy)) < 1e-2).all()
    assert g.households.sum() == n
    # adjacency only between cells sharing an edge; a convex unit is one component
    for a, b in g.edges[:50]:
        assert shapely.intersection(cells[a].boundary, cells[b].boundary).length > 0
    if not concave:
        assert g.n_components == 1


def test_barrier_cuts_adjacency():
    unit = shapely.box(0, 0, 1000, 500)
    xy = points_in(unit, 120, 3)
    river = shapely.LineString([(480, -10), (520, 510)])
    _, g = build_cells(unit, xy, barriers=[river])
    assert g.n_components == 2
    # cells never straddle the river, and no edge joins the two sides
    cen_side = np.sign((520 - 480) * (g.centroid[:, 1] + 10) - (510 + 10) * (g.centroid[:, 0] - 480))
    for a, b in g.edges:
        assert cen_side[a] == cen_side[b]
    assert set(cen_side[g.component == 0]) != set(cen_side[g.component == 1])
    # without the barrier the same cells form one component
    _, g0 = build_cells(unit, xy)
    assert g0.n_components == 1


def test_multipart_unit_has_one_component_per_island():
    unit = shapely.MultiPolygon([shapely.box(0, 0, 100, 100), shapely.box(300, 0, 400, 100)])
    xy = np.array([[10, 10], [50, 50], [90, 20], [350, 50]])
    mp, g = build_cells(unit, xy)
    assert g.n_components == 2
    assert abs(g.area.sum() - unit.area) < 1e-6
    assert g.households.sum() == 4


def test_empty_unit_is_one_empty_cell_per_part():
    unit = shapely.MultiPolygon([shapely.box(0, 0, 100, 100), shapely.box(300, 0, 400, 100)])
    mp, g = build_cells(unit, np.zeros((0, 2)))
    assert mp.m == 0 and g.n == 2 and g.households.sum() == 0


def test_coarsen_keeps_households_and_connectivity():
    unit = random_unit(7, True)
    xy = points_in(unit, 600, 8)
    _, g = build_cells(unit, xy)
    atom, ag = coarsen(g, max_households=6, max_nodes=200)
    assert ag.n < g.n
    assert ag.households.sum() == g.households.sum()
    assert abs(ag.area.sum() - g.area.sum()) < 1e-6 * g.area.sum()
    # each atom's cells are connected and lie in a single component
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    for a in range(0, ag.n, max(1, ag.n // 25)):
        idx = np.flatnonzero(atom == a)
        assert len(set(g.component[idx])) == 1
        pos = {c: i for i, c in enumerate(idx)}
        e = [(pos[x], pos[y]) for x, y in g.edges if x in pos and y in pos]
        m = coo_matrix((np.ones(len(e)), ([x for x, _ in e], [y for _, y in e])), shape=(len(idx),) * 2)
        assert connected_components(m, directed=False)[0] == 1
