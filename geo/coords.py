"""Chinese coordinate offsets: WGS-84 <-> GCJ-02 <-> BD-09, vectorized with numpy.

GCJ-02 ("Mars coordinates") is the obfuscated datum of Amap, Tencent and most Chinese web maps;
BD-09 is Baidu's further offset of GCJ-02. CGCS2000 (EPSG:4490) agrees with WGS 84 to a few
centimetres, so its lon/lat pass through unchanged (pyproj handles projected CGCS2000 CRSs).

The forward offsets are the published formulas. The inverses have no closed form: they are
solved by fixed-point iteration until every point is within ``tol_deg`` (default 1e-10 degrees,
about 0.01 mm), which converges in 2-5 rounds.

Outside China the GCJ-02 offset is not applied (as the web maps do), so foreign points pass
through unchanged.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import shapely

SYSTEMS = ("wgs84", "gcj02", "bd09", "cgcs2000")

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by the GCJ-02 formula
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0


def out_of_china(lon, lat) -> np.ndarray:
    """True where the point lies outside the rough box in which GCJ-02 applies."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _gcj_delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = lon - 105.0
    y = lat - 35.0
    s6x, s2x = np.sin(6.0 * x * np.pi), np.sin(2.0 * x * np.pi)
    common = (20.0 * s6x + 20.0 * s2x) * 2.0 / 3.0
    sqx = np.sqrt(np.abs(x))
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqx + common
            + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
            + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqx + common
            + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
            + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def _arrays(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if lon.shape != lat.shape:
        raise ValueError(f"lon and lat differ in shape: {lon.shape} vs {lat.shape}")
    return lon, lat


def wgs84_to_gcj02(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = _arrays(lon, lat)
    dlon, dlat = _gcj_delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon, lat, tol_deg: float = 1e-10, max_iter: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`wgs84_to_gcj02` by fixed-point iteration (error < tol_deg)."""
    lon, lat = _arrays(lon, lat)
    wlon, wlat = lon.copy(), lat.copy()
    for _ in range(max_iter):
        glon, glat = wgs84_to_gcj02(wlon, wlat)
        elon, elat = glon - lon, glat - lat
        wlon = wlon - elon
        wlat = wlat - elat
        err = np.nanmax(np.abs(np.concatenate([elon.ravel(), elat.ravel()]))) if lon.size else 0.0
        if not err > tol_deg:  # also stops on all-NaN input
            break
    return wlon, wlat


def gcj02_to_bd09(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    x, y = _arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon, lat, tol_deg: float = 1e-10, max_iter: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`gcj02_to_bd09`: the usual closed-form start, refined by iteration."""
    lon, lat = _arrays(lon, lat)
    x, y = lon - 0.0065, lat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    glon, glat = z * np.cos(theta), z * np.sin(theta)
    for _ in range(max_iter):
        blon, blat = gcj02_to_bd09(glon, glat)
        elon, elat = blon - lon, blat - lat
        glon = glon - elon
        glat = glat - elat
        err = np.nanmax(np.abs(np.concatenate([elon.ravel(), elat.ravel()]))) if lon.size else 0.0
        if not err > tol_deg:
            break
    return glon, glat


def wgs84_to_bd09(lon, lat):
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon, lat):
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def _identity(lon, lat):
    return _arrays(lon, lat)


_TO_WGS: dict[str, Callable] = {"wgs84": _identity, "cgcs2000": _identity,
                                "gcj02": gcj02_to_wgs84, "bd09": bd09_to_wgs84}
_FROM_WGS: dict[str, Callable] = {"wgs84": _identity, "cgcs2000": _identity,
                                  "gcj02": wgs84_to_gcj02, "bd09": wgs84_to_bd09}


def check_system(system: str) -> str:
    s = str(system).lower().replace("-", "").replace("_", "")
    if s not in SYSTEMS:
        raise ValueError(f"unknown coordinate system {system!r}: expected one of {', '.join(SYSTEMS)}")
    return s


def to_wgs84(lon, lat, system: str) -> tuple[np.ndarray, np.ndarray]:
    """lon/lat stated in ``system`` -> WGS 84."""
    return _TO_WGS[check_system(system)](lon, lat)


def from_wgs84(lon, lat, system: str) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 lon/lat -> ``system``."""
    return _FROM_WGS[check_system(system)](lon, lat)


def transform_geometries(geoms, func: Callable) -> np.ndarray:
    """Apply a (lon, lat) -> (lon, lat) array function to every vertex of shapely geometries."""
    def xy(coords: np.ndarray) -> np.ndarray:
        x, y = func(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])
    return shapely.transform(np.asarray(geoms, dtype=object), xy)


def geometries_to_wgs84(geoms, system: str) -> np.ndarray:
    system = check_system(system)
    if system in ("wgs84", "cgcs2000"):
        return np.asarray(geoms, dtype=object)
    return transform_geometries(geoms, _TO_WGS[system])


def geometries_from_wgs84(geoms, system: str) -> np.ndarray:
    system = check_system(system)
    if system in ("wgs84", "cgcs2000"):
        return np.asarray(geoms, dtype=object)
    return transform_geometries(geoms, _FROM_WGS[system])
