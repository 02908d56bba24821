"""geo.crs: the metric CRS choice, and that distances in it are true (geodesic) distances."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import CRS, Geod, Transformer

from gridplan.geo.crs import choose_metric_crs, gk3_cm_epsg, in_china_box, is_geographic, utm_epsg

GEOD = Geod(ellps="WGS84")
HAINAN_BOUNDS = (108.6, 18.15, 111.05, 20.16)


def central_meridian(crs: CRS) -> float:
    for p in crs.coordinate_operation.params:
        if "longitude of natural origin" in p.name.lower():
            return float(p.value)
    raise AssertionError(f"no central meridian in {crs.name}")


@settings(max_examples=80, deadline=None)
@given(lon=st.floats(73.0, 135.5), lat=st.floats(3.0, 54.0), half=st.floats(0.0, 1.0))
def test_inside_china_picks_nearest_cgcs2000_gk3_cm_zone(lon, lat, half):
    crs = choose_metric_crs((lon - half, lat - half / 2, lon + half, lat + half / 2))
    code = crs.to_epsg()
    assert 4534 <= code <= 4554
    assert "CGCS2000" in crs.name and "3-degree Gauss-Kruger CM" in crs.name
    assert crs.is_projected and crs.axis_info[0].unit_name == "metre"
    cm = central_meridian(crs)
    assert cm % 3 == 0
    # nearest zone (the edge zones 75E / 135E also take the rest of the box)
    assert abs(cm - lon) <= 1.5 + 1e-9 or cm in (75.0, 135.0)
    assert abs(cm - lon) <= min(abs(c - lon) for c in range(75, 136, 3)) + 1e-9


def test_hainan_zone():
    crs = choose_metric_crs(HAINAN_BOUNDS)
    assert crs.to_epsg() == 4546 and central_meridian(crs) == 111.0
    assert gk3_cm_epsg(75.0) == 4534 and gk3_cm_epsg(135.0) == 4554
    assert gk3_cm_epsg(60.0) == 4534 and gk3_cm_epsg(170.0) == 4554   # clipped to the defined zones


@pytest.mark.parametrize("bounds, epsg", [
    ((13.3, 52.4, 13.5, 52.6), 32633),          # Berlin: UTM 33N
    ((-74.1, 40.6, -73.9, 40.8), 32618),        # New York: UTM 18N
    ((151.1, -33.95, 151.3, -33.8), 32756),     # Sydney: UTM 56S
    ((-58.5, -34.7, -58.3, -34.5), 32721),      # Buenos Aires: UTM 21S
    ((100.4, 13.6, 100.6, 13.8), 4543),         # Bangkok is inside the rough China box -> GK CM 102E
    ((139.6, 35.6, 139.8, 35.8), 32654),        # Tokyo: outside the box -> UTM 54N
    ((179.5, 10.0, 179.9, 10.2), 32660),
    ((-180.0, -10.0, -179.8, -9.8), 32701),
])
def test_outside_china_uses_utm_by_hemisphere(bounds, epsg):
    crs = choose_metric_crs(bounds)
    assert crs.to_epsg() == epsg
    if 32600 < epsg < 32800:
        assert "UTM zone" in crs.name and crs.name.endswith("N" if epsg < 32700 else "S")


def test_utm_and_box_edges():
    assert utm_epsg(180.0, 1.0) == 32660 and utm_epsg(-180.0, 1.0) == 32601
    assert utm_epsg(3.0, 0.0) == 32631 and utm_epsg(3.0, -0.001) == 32731
    assert in_china_box(110.0, 19.0) and not in_china_box(72.9, 30.0) and not in_china_box(110.0, 2.9)


@pytest.mark.parametrize("bounds", [
    (np.nan, np.nan, np.nan, np.nan),           # an empty GeoDataFrame's total_bounds
    (108.0, 18.0, np.inf, 20.0),
    (-np.inf, 18.0, 110.0, 20.0),
    (108.0, np.nan, 110.0, 20.0)])
def test_non_finite_bounds_are_an_error(bounds):
    with pytest.raises(ValueError, match="no finite extent"):
        choose_metric_crs(bounds)


def test_is_geographic():
    assert is_geographic(4326) and is_geographic("EPSG:4490")
    assert not is_geographic(choose_metric_crs(HAINAN_BOUNDS)) and not is_geographic(None)


HAINAN_PT = st.tuples(st.floats(108.6, 111.05), st.floats(18.15, 20.16))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(HAINAN_PT, HAINAN_PT), min_size=1, max_size=30))
def test_hainan_distances_in_chosen_crs_match_geodesic(pairs):
    """Planar distance in the chosen CRS within 0.1% of the WGS 84 geodesic, anywhere in Hainan
    (the scale error of GK at 2.4 degrees from the central meridian is ~0.085%)."""
    crs = choose_metric_crs(HAINAN_BOUNDS)
    to_m = Transformer.from_crs(4326, crs, always_xy=True)
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    keep = np.hypot(*(a - b).T) > 1e-3           # > ~100 m apart: relative error is meaningful
    if not keep.any():
        return
    a, b = a[keep], b[keep]
    ax, ay = to_m.transform(a[:, 0], a[:, 1])
    bx, by = to_m.transform(b[:, 0], b[:, 1])
    planar = np.hypot(np.subtract(ax, bx), np.subtract(ay, by))
    geodesic = np.asarray(GEOD.inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])[2])
    assert np.all(np.abs(planar / geodesic - 1.0) < 1e-3)


def test_hainan_west_tip_scale_error_is_the_worst_case_and_under_0_1_percent():
    crs = choose_metric_crs(HAINAN_BOUNDS)
    to_m = Transformer.from_crs(4326, crs, always_xy=True)
    errs = []
    for lon in (108.6, 109.85, 111.0):
        x, y = to_m.transform([lon, lon + 0.01], [19.0, 19.0])
        geodesic = GEOD.inv(lon, 19.0, lon + 0.01, 19.0)[2]
        errs.append(abs(np.hypot(x[1] - x[0], y[1] - y[0]) / geodesic - 1.0))
    assert errs[2] < 1e-4 < errs[0] < 1e-3 and errs[1] < errs[0]


def test_one_crs_per_county_each_on_its_own_meridian():
    """A province 21° wide: each county gets the GK zone of its own centre, not the province's."""
    import shapely
    from gridplan.geo.crs import local_crs_by_group
    geoms = [shapely.box(100.1, 25.0, 100.3, 25.2), shapely.box(100.2, 25.1, 100.4, 25.3),
             shapely.box(121.1, 30.0, 121.3, 30.2), shapely.box(-74.1, 40.6, -73.9, 40.8)]
    got = local_crs_by_group(geoms, ["A", "A", "B", "C"])
    assert {k: v.to_epsg() for k, v in got.items()} == {"A": gk3_cm_epsg(100.25), "B": gk3_cm_epsg(121.2),
                                                        "C": 32618}
    assert central_meridian(got["A"]) == 99.0 and central_meridian(got["B"]) == 120.0
    assert local_crs_by_group([], []) == {}


def test_reprojector_round_trips_and_is_identity_for_the_same_crs():
    import shapely
    from gridplan.geo.crs import Reprojector
    a, b = CRS.from_epsg(4545), CRS.from_epsg(4546)
    poly = shapely.Polygon([(400000, 2100000), (402000, 2100000), (402000, 2102000)])
    there = Reprojector(a, b).geom(poly)
    back = Reprojector(b, a).geom(there)
    assert not there.equals(poly) and back.equals_exact(poly, 1e-6)
    same = Reprojector(a, CRS.from_epsg(4545))
    assert same.identity and same.geom(poly) is poly
    assert Reprojector(a, b).xy(np.zeros((0, 2))).shape == (0, 2)
