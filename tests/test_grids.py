"""Grid polygons: Polsby-Popper, code order, dissolve, smoothing, point assignment."""
import math

import numpy as np
import shapely

from gridplan.geo.cells import build_cells
from gridplan.geo.grids import (
    assign_points,
    dissolve_cells,
    grid_codes,
    order_for_codes,
    polsby_popper,
    repair_transformed,
    smooth_grids,
)


def test_polsby_popper_known_shapes():
    pp = polsby_popper([shapely.Point(0, 0).buffer(10, quad_segs=64), shapely.box(0, 0, 1, 1),
                        shapely.box(0, 0, 4, 1), shapely.Polygon()])
    assert abs(pp[0] - 1) < 1e-3 and abs(pp[1] - math.pi / 4) < 1e-12
    assert abs(pp[2] - 4 * math.pi * 4 / 100) < 1e-12 and pp[3] == 0


def test_order_is_rows_north_to_south_then_west_to_east():
    nw, ne, sw, se = (shapely.box(0, 10, 10, 20), shapely.box(10, 10, 20, 20),
                      shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10))
    order = order_for_codes([se, nw, sw, ne])
    assert order.tolist() == [1, 3, 2, 0]
    assert grid_codes("469025100001", 3) == ["469025100001001", "469025100001002", "469025100001003"]


def test_dissolve_tiles_and_smoothing_keeps_tiling_and_points():
    unit = shapely.box(0, 0, 1000, 600)
    r = np.random.default_rng(4)
    xy = r.uniform([0, 0], [1000, 600], size=(300, 2))
    mp, g = build_cells(unit, xy)
    labels = (g.centroid[:, 0] > 500).astype(int) + 2 * (g.centroid[:, 1] > 300).astype(int)
    polys = dissolve_cells(g.polygons, labels, 4)
    assert all(p.geom_type == "Polygon" for p in polys)
    assert abs(sum(p.area for p in polys) - unit.area) < 1e-3
    assert (assign_points(polys, mp.xy) == labels[g.point_cell]).all()
    sm = smooth_grids(polys, 30.0)
    assert sm is not None
    assert abs(sum(p.area for p in sm) - unit.area) < 1e-3
    assert shapely.union_all(sm).symmetric_difference(unit).area < 1e-3
    assert sum(shapely.length(sm)) < sum(shapely.length(polys))        # straighter edges
    assert polsby_popper(sm).mean() > polsby_popper(polys).mean()


def test_clear_points_moves_edges_off_households_without_changing_labels():
    """Two grids whose shared edge passes 1 mm from a household of the left grid and 3 cm from
    one of the right: afterwards both are ~0.1 m (or 0.45 × their gap) inside their own grid."""
    import shapely

    from gridplan.geo.grids import assign_points, clear_points
    left, right = shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)
    xy = np.array([[9.999, 5.0], [10.03, 2.0], [10.05, 8.0], [9.9, 8.0], [3.0, 3.0]])
    lab = np.array([0, 1, 1, 0, 0])
    assert (assign_points([left, right], xy) == lab).all()
    out = clear_points([left, right], xy, lab, 0.1)
    assert (assign_points(out, xy) == lab).all()
    pts = shapely.points(xy)
    d_other = np.array([shapely.distance(out[1 - l], p) for l, p in zip(lab, pts)])
    assert d_other[0] >= 0.1 - 1e-6 and d_other[1] >= 0.1 - 1e-6
    assert d_other[2] >= 0.45 * 0.15 - 1e-6 and d_other[3] >= 0.45 * 0.15 - 1e-6   # 0.15 m apart
    assert abs(out[0].area + out[1].area - 200) < 1e-6 and out[0].intersection(out[1]).area < 1e-9
    assert all(p.geom_type == "Polygon" and p.is_valid for p in out)


def test_repair_transformed_drops_a_crossing_spike_and_keeps_valid_polygons():
    # the province's case: a 4 cm zig-zag that crossed its own edge after reprojection
    square = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)])
    spike = shapely.Polygon([(0, 0), (10, 0), (10, 10), (5.00, 10), (5.02, 9.98), (5.04, 10.02), (0, 10)])
    assert square.is_valid and not spike.is_valid
    out = repair_transformed([square, spike, None])
    assert out[0] is square and out[2] is None
    assert out[1].is_valid and out[1].geom_type == "Polygon"
    assert abs(out[1].area - 100) < 0.1 and out[1].symmetric_difference(square).area < 0.1
    # a real second part is kept, not dropped as a sliver
    bow = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    fixed = repair_transformed([bow])[0]
    assert fixed.is_valid and fixed.geom_type == "MultiPolygon" and abs(fixed.area - 50) < 1e-9


def test_to_crs_valid_keeps_a_household_inside_a_long_straight_edge():
    import geopandas as gpd
    from pyproj import Transformer

    from gridplan.geo.grids import to_crs_valid
    # a 14 km edge in UTM 49N, 2.6° off its central meridian (its image bends 1.5 m); households 0.3 m
    # either side of it, half way along
    a, b = np.array([760000.0, 2030000.0]), np.array([770000.0, 2040000.0])
    poly = shapely.Polygon([a, b, (770000, 2045000), (755000, 2045000)])
    mid = (a + b) / 2
    normal = np.array([-(b - a)[1], (b - a)[0]]) / np.linalg.norm(b - a)
    to_ll = Transformer.from_crs(32649, 4326, always_xy=True)
    pts = {side: shapely.Point(to_ll.transform(*(mid + side * 0.3 * normal))) for side in (1, -1)}   # in, out
    vertexwise = gpd.GeoSeries([poly], crs=32649).to_crs(4326).iloc[0]
    out = to_crs_valid(gpd.GeoDataFrame(geometry=[poly], crs=32649), 4326).geometry.iloc[0]
    # the edge's image bends more than 0.3 m: vertex by vertex, one of the two lands on the wrong side
    assert not (vertexwise.contains(pts[1]) and not vertexwise.contains(pts[-1]))
    assert out.contains(pts[1]) and not out.contains(pts[-1])


def test_densify_gives_neighbours_bit_identical_shared_edges():
    from gridplan.geo.grids import densify
    left = shapely.Polygon([(0, 0), (1000.3, 7.1), (1003.9, 1000.2), (0, 1000)])
    right = shapely.Polygon([(1000.3, 7.1), (2000, 0), (2000, 1000), (1003.9, 1000.2)])   # the edge reversed
    a, b = densify([left, right], 100.0)
    assert len(a.exterior.coords) > 30
    assert a.symmetric_difference(left).area < 1e-6 and b.symmetric_difference(right).area < 1e-6
    shared = {tuple(c) for c in a.exterior.coords} & {tuple(c) for c in b.exterior.coords}
    assert len(shared) == 11                                    # both ends + 9 new points, exactly equal
    assert shapely.intersection(a, b).length > 990              # they still share the edge, not points
