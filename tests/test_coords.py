"""Correctness of geo.coords: WGS-84 <-> GCJ-02 <-> BD-09.

Three independent checks: (1) published test vectors from public implementations, (2) a plain
per-point transcription of the published formulas (below, standard library only) used as an
oracle over all of China, (3) property tests of the round trips, measured in metres (geodesic
on WGS 84), over Hainan (lon 108.5-111.2, lat 18.1-20.2) and the whole GCJ-02 box.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from gridplan.geo import coords_kernels as coords  # the kernels and their constants
from gridplan.geo.coords import (bd09_to_gcj02, bd09_to_wgs84, check_system, from_wgs84, gcj02_to_bd09,
                        gcj02_to_wgs84, geometries_from_wgs84, geometries_to_wgs84, out_of_china,
                        to_wgs84, wgs84_to_bd09, wgs84_to_gcj02)

GEOD = Geod(ellps="WGS84")
HAINAN = dict(lon=(108.5, 111.2), lat=(18.1, 20.2))
CHINA = dict(lon=(72.1, 137.7), lat=(0.9, 55.7))


# --- the published formulas, point by point (oracle): geo/coords_reference.py ----------------
from gridplan.geo.coords_reference import gcj_to_bd as ref_gcj_to_bd  # noqa: E402
from gridplan.geo.coords_reference import wgs_to_gcj as ref_wgs_to_gcj  # noqa: E402


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Geodesic distance on WGS 84 (metres), elementwise."""
    lon1, lat1, lon2, lat2 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (lon1, lat1, lon2, lat2)))
    return np.asarray(GEOD.inv(lon1.ravel(), lat1.ravel(), lon2.ravel(), lat2.ravel())[2])


def deg_err(a, b) -> float:
    return float(max(np.max(np.abs(np.asarray(a[0]) - b[0])), np.max(np.abs(np.asarray(a[1]) - b[1]))))


def points(box, min_size=1, max_size=40):
    lon = st.floats(*box["lon"], allow_nan=False)
    lat = st.floats(*box["lat"], allow_nan=False)
    return st.lists(st.tuples(lon, lat), min_size=min_size, max_size=max_size).map(
        lambda pts: (np.array([p[0] for p in pts]), np.array([p[1] for p in pts])))


# --- published test vectors ---------------------------------------------------------------------

# googollee/eviltransform, python/test.py (TESTS): (wgsLat, wgsLng, gcjLat, gcjLng).
EVILTRANSFORM_WGS_GCJ = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),    # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),    # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),    # Beijing
]
# wandergis/coordtransform, README.md "result" block, all four from the input (116.404, 39.915).
# Its gcj02towgs84 / bd09togcj02 are the one-step closed-form approximations, not exact inverses.
COORDTRANSFORM_IN = (116.404, 39.915)
COORDTRANSFORM = {
    "wgs84togcj02": (116.41024449916938, 39.91640428150164),
    "gcj02tobd09": (116.41036949371029, 39.92133699351021),
    "gcj02towgs84": (116.39775550083061, 39.91359571849836),   # approximate
    "bd09togcj02": (116.39762729119315, 39.90865673957631),    # approximate
}


@pytest.mark.parametrize("wlat, wlon, glat, glon", EVILTRANSFORM_WGS_GCJ)
def test_eviltransform_vectors_forward_and_exact_inverse(wlat, wlon, glat, glon):
    lon, lat = wgs84_to_gcj02(wlon, wlat)
    assert abs(lon - glon) < 1e-11 and abs(lat - glat) < 1e-11
    back = gcj02_to_wgs84(glon, glat)
    assert deg_err(back, (wlon, wlat)) < 1e-9
    assert metres(back[0], back[1], wlon, wlat)[0] < 1e-4


def test_coordtransform_forward_vectors():
    lon, lat = COORDTRANSFORM_IN
    assert deg_err(wgs84_to_gcj02(lon, lat), COORDTRANSFORM["wgs84togcj02"]) < 1e-11
    assert deg_err(gcj02_to_bd09(lon, lat), COORDTRANSFORM["gcj02tobd09"]) < 1e-11
    # the exact inverses undo the published forward values
    assert deg_err(gcj02_to_wgs84(*COORDTRANSFORM["wgs84togcj02"]), COORDTRANSFORM_IN) < 1e-9
    assert deg_err(bd09_to_gcj02(*COORDTRANSFORM["gcj02tobd09"]), COORDTRANSFORM_IN) < 1e-9


@pytest.mark.parametrize("name, ours, forward", [("gcj02towgs84", gcj02_to_wgs84, wgs84_to_gcj02),
                                                 ("bd09togcj02", bd09_to_gcj02, gcj02_to_bd09)])
def test_coordtransform_approximate_inverses_are_improved_on(name, ours, forward):
    """Within the approximation's metre-level error of the published value, but exact: ours maps
    back onto the input, the published one-step value misses it by centimetres."""
    lon, lat = COORDTRANSFORM_IN
    mine = ours(lon, lat)
    published = COORDTRANSFORM[name]
    assert metres(mine[0], mine[1], *published)[0] < 1.0
    assert deg_err(forward(*mine), COORDTRANSFORM_IN) < 1e-10
    assert deg_err(forward(*published), COORDTRANSFORM_IN) > 1e-7


# --- agreement with the per-point formulas -------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(points(CHINA))
def test_forward_matches_published_formulas_over_china(pts):
    lon, lat = pts
    glon, glat = wgs84_to_gcj02(lon, lat)
    ref = np.array([ref_wgs_to_gcj(a, b) for a, b in zip(lon, lat)])
    assert deg_err((glon, glat), (ref[:, 0], ref[:, 1])) < 1e-11
    blon, blat = gcj02_to_bd09(lon, lat)
    ref = np.array([ref_gcj_to_bd(a, b) for a, b in zip(lon, lat)])
    assert deg_err((blon, blat), (ref[:, 0], ref[:, 1])) < 1e-11


def test_bd_forward_matches_formula_worldwide_and_at_origin():
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(-180, 180, 2000), rng.uniform(-90, 90, 2000)
    lon[:3], lat[:3] = [0.0, 180.0, -180.0], [0.0, 0.0, -90.0]
    got = gcj02_to_bd09(lon, lat)
    ref = np.array([ref_gcj_to_bd(a, b) for a, b in zip(lon, lat)])
    assert deg_err(got, (ref[:, 0], ref[:, 1])) < 1e-11


# --- round trips (metres) ------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(points(HAINAN))
def test_hainan_round_trips_within_1cm(pts):
    lon, lat = pts
    w = wgs84_to_gcj02(lon, lat)
    back = gcj02_to_wgs84(*w)
    assert metres(*back, lon, lat).max() < 0.01
    assert deg_err(back, (lon, lat)) <= 1e-10       # the documented tol_deg
    back = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert metres(*back, lon, lat).max() < 0.01
    assert deg_err(back, (lon, lat)) <= 2e-10       # two inverses, each within 1e-10
    back = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    assert metres(*back, lon, lat).max() < 0.01
    assert deg_err(back, (lon, lat)) <= 1e-10


@settings(max_examples=60, deadline=None)
@given(points(CHINA))
def test_inverse_within_tolerance_over_china(pts):
    lon, lat = pts
    g = wgs84_to_gcj02(lon, lat)
    inside = ~out_of_china(*g)   # the inverse decides "in China" on its own iterate, near the edge
    back = gcj02_to_wgs84(*g)    # of the box a point can legitimately flip; away from it, exact
    assert deg_err((back[0][inside], back[1][inside]), (lon[inside], lat[inside])) <= 1e-10


def test_inverse_is_offset_sized_and_not_identity():
    """Guard against an inverse that returns its input: the GCJ offset in Hainan is hundreds of metres."""
    lon, lat = np.array([110.0, 109.2]), np.array([19.5, 18.3])
    g = wgs84_to_gcj02(lon, lat)
    assert (metres(*g, lon, lat) > 100).all()
    assert (metres(*gcj02_to_wgs84(*g), *g) > 100).all()


def test_inverse_near_the_105E_kink():
    """The offset has a sqrt|lon-105| term (infinite slope at 105E); the inverse still converges."""
    eps = np.array([0.0, 1e-12, 1e-9, 1e-6, 1e-3, -1e-12, -1e-9, -1e-6, -1e-3])
    lon, lat = 105.0 + eps, np.full(eps.shape, 30.0)
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert deg_err(back, (lon, lat)) <= 1e-10


def test_looser_tolerance_is_honoured():
    rng = np.random.default_rng(5)
    lon, lat = rng.uniform(*HAINAN["lon"], 5000), rng.uniform(*HAINAN["lat"], 5000)
    g = wgs84_to_gcj02(lon, lat)
    loose = gcj02_to_wgs84(*g, tol_deg=1e-6)
    assert deg_err(loose, (lon, lat)) <= 1e-6
    one = gcj02_to_wgs84(*g, max_iter=1)              # one round = the classic approximation
    assert 1e-7 < deg_err(one, (lon, lat)) < 1e-4


def test_contraction_bounds_used_by_the_stopping_rule_hold():
    """The inverses stop on L/(1-L)*|last step| <= tol; L must bound the offsets' Jacobians."""
    rng = np.random.default_rng(11)
    h = 1e-6

    def jac_norm(f, lon, lat):
        d0 = [a - b for a, b in zip(f(lon, lat), (lon, lat))]
        dx = [a - b for a, b in zip(f(lon + h, lat), (lon + h, lat))]
        dy = [a - b for a, b in zip(f(lon, lat + h), (lon, lat + h))]
        rows = [np.abs(dx[i] - d0[i]) / h + np.abs(dy[i] - d0[i]) / h for i in range(2)]
        return np.maximum(*rows)

    lon, lat = rng.uniform(72.01, 137.83, 100_000), rng.uniform(0.83, 55.82, 100_000)
    away = np.abs(lon - 105.0) > 1e-3
    assert jac_norm(wgs84_to_gcj02, lon, lat)[away].max() < coords._GCJ_LIPSCHITZ / 3
    lon, lat = rng.uniform(-180, 180, 100_000), rng.uniform(-90, 90, 100_000)
    assert jac_norm(gcj02_to_bd09, lon, lat).max() < coords._BD_LIPSCHITZ / 3


def test_blocked_and_threaded_paths_agree_with_small_calls():
    """Big arrays go through blocks and threads; every element must equal the one-point result."""
    rng = np.random.default_rng(7)
    n = coords._THREAD_MIN + 3 * coords._BLOCK + 17       # threaded, ragged last block
    lon, lat = rng.uniform(*HAINAN["lon"], n), rng.uniform(*HAINAN["lat"], n)
    idx = np.array([0, 1, coords._BLOCK - 1, coords._BLOCK, n // 2, n - 2, n - 1])
    for f in (wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84):
        big = f(lon, lat)
        for i in idx:
            small = f(lon[i], lat[i])
            if f in (gcj02_to_wgs84, bd09_to_gcj02, bd09_to_wgs84):
                # an inverse's block stops when its worst point converges: others may get one
                # more round in one call than in another, so compare within the tolerance
                assert deg_err(small, (big[0][i], big[1][i])) <= 2e-10
            else:
                assert small[0] == big[0][i] and small[1] == big[1][i]


# --- outside China, NaN, empty, scalar, shapes ---------------------------------------------------

def test_outside_china_passes_through_gcj_unchanged():
    # (the box is rough: Bangkok or Hanoi count as "in China", Tokyo does not)
    lon = np.array([-0.1276, 2.35, -74.0, 151.2, 139.69, 72.0, 137.9, 120.0, 120.0])
    lat = np.array([51.507, 48.86, 40.7, -33.87, 35.69, 30.0, 30.0, 0.5, 56.0])
    assert out_of_china(lon, lat).all()
    for f in (wgs84_to_gcj02, gcj02_to_wgs84):
        olon, olat = f(lon, lat)
        assert np.array_equal(olon, lon) and np.array_equal(olat, lat)
    # BD-09 is a plain formula applied everywhere (as Baidu does); its round trip still holds
    back = gcj02_to_wgs84(*bd09_to_gcj02(*gcj02_to_bd09(lon, lat)))
    assert deg_err(back, (lon, lat)) <= 1e-10


def test_out_of_china_box():
    assert not out_of_china(110.0, 19.0)
    assert out_of_china([72.0, 137.9, 110.0, 110.0], [30.0, 30.0, 0.8, 55.9]).all()


ALL_PAIRWISE = [wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84]


@pytest.mark.parametrize("f", ALL_PAIRWISE, ids=lambda f: f.__name__)
def test_nan_in_nan_out_without_warnings_others_unaffected(f):
    rng = np.random.default_rng(2)
    lon, lat = rng.uniform(*HAINAN["lon"], 50), rng.uniform(*HAINAN["lat"], 50)
    clean = f(lon, lat)
    lon2, lat2 = lon.copy(), lat.copy()
    lon2[[3, 10]] = np.nan
    lat2[[10, 20]] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        olon, olat = f(lon2, lat2)
        allnan = f(np.full(20_000, np.nan), np.full(20_000, np.nan))
    bad = np.isnan(lon2) | np.isnan(lat2)
    assert np.isnan(olon[bad]).all() and np.isnan(olat[bad]).all()
    # the clean points are as accurate as without NaN neighbours
    assert deg_err((olon[~bad], olat[~bad]), (clean[0][~bad], clean[1][~bad])) <= 2e-10
    assert np.isnan(allnan[0]).all() and np.isnan(allnan[1]).all()


@pytest.mark.parametrize("f", ALL_PAIRWISE, ids=lambda f: f.__name__)
def test_infinities_do_not_warn_or_spread(f):
    lon = np.array([np.inf, 110.0, -np.inf])
    lat = np.array([19.0, 19.0, 19.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        olon, olat = f(lon, lat)
    assert not np.isfinite(olon[[0, 2]]).any() or not np.isfinite(olat[[0, 2]]).any()
    assert deg_err((olon[1], olat[1]), f(110.0, 19.0)) == 0.0


@pytest.mark.parametrize("f", ALL_PAIRWISE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0)])
def test_empty_arrays(f, shape):
    olon, olat = f(np.empty(shape), np.empty(shape))
    assert olon.shape == shape and olat.shape == shape
    assert olon.dtype == np.float64


@pytest.mark.parametrize("f", ALL_PAIRWISE, ids=lambda f: f.__name__)
def test_scalars_and_shapes(f):
    lon, lat = f(110.0, 19.0)
    assert isinstance(lon, np.floating) and np.ndim(lon) == 0 and np.ndim(lat) == 0
    alon, alat = f([110.0], [19.0])
    assert alon.shape == (1,) and alon[0] == lon and alat[0] == lat
    grid_lon, grid_lat = np.meshgrid(np.linspace(108.6, 111.1, 4), np.linspace(18.2, 20.1, 3))
    glon, glat = f(grid_lon, grid_lat)
    assert glon.shape == (3, 4) and glat.shape == (3, 4)
    flat = f(grid_lon.ravel(), grid_lat.ravel())
    assert deg_err((glon.ravel(), glat.ravel()), flat) <= 2e-10
    # non-contiguous and integer input
    assert f(grid_lon[:, ::2], grid_lat[:, ::2])[0].shape == (3, 2)
    assert deg_err(f(np.array([110]), np.array([19])), f(110.0, 19.0)) == 0.0


@pytest.mark.parametrize("f", ALL_PAIRWISE, ids=lambda f: f.__name__)
def test_shape_mismatch_is_an_error(f):
    with pytest.raises(ValueError, match="differ in shape"):
        f([110.0, 110.1], [19.0])


# --- systems, dispatch, geometries ---------------------------------------------------------------

@pytest.mark.parametrize("alias, canonical", [
    ("GCJ-02", "gcj02"), ("gcj_02", "gcj02"), ("GCJ02", "gcj02"), ("BD-09", "bd09"), ("bd_09", "bd09"),
    ("Bd09", "bd09"), ("WGS-84", "wgs84"), ("wgs_84", "wgs84"), ("CGCS2000", "cgcs2000"), ("cgcs-2000", "cgcs2000")])
def test_check_system_aliases(alias, canonical):
    assert check_system(alias) == canonical


@pytest.mark.parametrize("bad", ["utm", "", "gcj", "epsg:4326", None])
def test_check_system_rejects_unknown(bad):
    with pytest.raises(ValueError, match="unknown coordinate system"):
        check_system(bad)


def test_to_and_from_wgs84_dispatch():
    lon, lat = np.array([110.0, 109.5]), np.array([19.0, 18.5])
    assert deg_err(from_wgs84(lon, lat, "GCJ-02"), wgs84_to_gcj02(lon, lat)) == 0.0
    assert deg_err(from_wgs84(lon, lat, "bd_09"), wgs84_to_bd09(lon, lat)) == 0.0
    assert deg_err(to_wgs84(lon, lat, "gcj02"), gcj02_to_wgs84(lon, lat)) == 0.0
    assert deg_err(to_wgs84(lon, lat, "BD-09"), bd09_to_wgs84(lon, lat)) == 0.0
    for system in ("wgs84", "CGCS2000"):
        assert deg_err(to_wgs84(lon, lat, system), (lon, lat)) == 0.0
        assert deg_err(from_wgs84(lon, lat, system), (lon, lat)) == 0.0
    with pytest.raises(ValueError):
        to_wgs84(lon, lat, "mars")


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_geometries_round_trip(system):
    geoms = shapely.from_wkt([
        "POLYGON ((110 19, 110.1 19, 110.1 19.1, 110 19.1, 110 19), (110.02 19.02, 110.05 19.02, 110.05 19.05, 110.02 19.02))",
        "MULTIPOLYGON (((109 18.5, 109.01 18.5, 109.01 18.51, 109 18.5)), ((109.5 18.6, 109.51 18.6, 109.5 18.61, 109.5 18.6)))",
        "LINESTRING (110.3 20.0, 110.35 20.02)", "POINT (111 20)", "POINT EMPTY"])
    moved = geometries_from_wgs84(geoms, system)
    assert moved.shape == geoms.shape
    assert shapely.get_num_coordinates(moved).tolist() == shapely.get_num_coordinates(geoms).tolist()
    c0, c1 = shapely.get_coordinates(geoms), shapely.get_coordinates(moved)
    assert (metres(c0[:, 0], c0[:, 1], c1[:, 0], c1[:, 1]) > 100).all()
    back = geometries_to_wgs84(moved, system)
    c2 = shapely.get_coordinates(back)
    assert np.abs(c2 - c0).max() <= 2e-10
    assert shapely.get_type_id(back).tolist() == shapely.get_type_id(geoms).tolist()


def test_geometries_pass_through_for_wgs84_and_cgcs2000():
    geoms = shapely.from_wkt(["POINT (110 19)"])
    for system in ("wgs84", "cgcs2000"):
        assert shapely.equals(geometries_to_wgs84(geoms, system), geoms).all()
        assert shapely.equals(geometries_from_wgs84(geoms, system), geoms).all()
