"""Chinese coordinate offsets: WGS-84 <-> GCJ-02 <-> BD-09, vectorized with numpy.

GCJ-02 ("Mars coordinates") is the obfuscated datum of Amap, Tencent and most Chinese web maps;
BD-09 is Baidu's further offset of GCJ-02. CGCS2000 (EPSG:4490) agrees with WGS 84 to a few
centimetres, so its lon/lat pass through unchanged (pyproj handles projected CGCS2000 CRSs).

The forward offsets are the published formulas (the Krasovsky-ellipsoid variant used by
coordtransform / the original eviltransform). The inverses have no closed form: they are solved
by fixed-point iteration ``w <- g - delta(w)``. The offset's Jacobian is below
:data:`_GCJ_LIPSCHITZ` over China (measured < 0.005 over Hainan, < 0.008 anywhere in the box away from the
``sqrt|lon-105|`` kink at 105°E),
so with ``L`` that bound the classical a-posteriori estimate ``|w_k - w*| <= L/(1-L) |w_k - w_{k-1}|``
says when to stop: every point ends within ``tol_deg`` (default 1e-10 degrees, about 0.01 mm).
That takes 4 rounds over Hainan (true error ~1e-12 degrees).

Outside China the GCJ-02 offset is not applied (as the web maps do), so foreign points pass
through unchanged. NaN in gives NaN out for that point only; infinities pass through.

Speed: the offset needs the sines of x*pi*{6, 2, 1, 1/3, 1/12, 1/30} and y*pi*{1, 1/3, 1/12, 1/30}
(x = lon-105, y = lat-35). All are integer multiples of x*pi/120 (y*pi/120), so one ``sin`` per
axis plus exact double/triple-angle identities give them all (3 transcendental calls per point in
place of 12). Arrays are processed in cache-sized blocks with preallocated buffers (the inverse
iterates inside a block while it is in cache), and big arrays are split over threads (numpy
releases the GIL inside ufuncs) — the kernels are in ``geo.coords_kernels``.
``benchmarks/coords_speed.py`` measures it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import shapely

from gridplan.geo.coords_kernels import (
    _apply,
    _arrays,
    _bd_forward_block,
    _k_bd_to_gcj,
    _k_bd_to_wgs,
    _k_gcj_to_wgs,
    _k_wgs_to_bd,
    _k_wgs_to_gcj,
    out_of_china,  # noqa: F401 - public, re-exported
)
from gridplan.geo.vocabulary import COORD_SYSTEMS as SYSTEMS, CoordSystem


def wgs84_to_gcj02(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Offset WGS 84 lon/lat to GCJ-02 (points outside China pass through unchanged).

    Parameters
    ----------
    lon, lat : array_like
        Longitudes and latitudes in degrees (scalars or arrays of one shape).

    Returns
    -------
    tuple of numpy.ndarray
        GCJ-02 longitudes and latitudes, float arrays of the input's shape.
    """
    return _apply(_k_wgs_to_gcj, lon, lat)


def gcj02_to_wgs84(lon, lat, tol_deg: float = 1e-10, max_iter: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Invert :func:`wgs84_to_gcj02` by fixed-point iteration.

    Parameters
    ----------
    lon, lat : array_like
        GCJ-02 longitudes and latitudes in degrees.
    tol_deg : float
        Bound on each point's error in degrees (the module docstring says how it is guaranteed).
    max_iter : int
        Most rounds of iteration.

    Returns
    -------
    tuple of numpy.ndarray
        WGS 84 longitudes and latitudes.
    """
    return _apply(_k_gcj_to_wgs(float(tol_deg), int(max_iter)), lon, lat)


def gcj02_to_bd09(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Offset GCJ-02 lon/lat to BD-09 (Baidu's closed-form offset, applied everywhere)."""
    return _apply(_bd_forward_block, lon, lat)


def bd09_to_gcj02(lon, lat, tol_deg: float = 1e-10, max_iter: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Invert :func:`gcj02_to_bd09`: the usual closed-form start, refined by iteration to ``tol_deg``."""
    return _apply(_k_bd_to_gcj(float(tol_deg), int(max_iter)), lon, lat)


def wgs84_to_bd09(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Offset WGS 84 lon/lat to BD-09 (GCJ-02 first, then Baidu's offset)."""
    return _apply(_k_wgs_to_bd, lon, lat)


def bd09_to_wgs84(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Invert :func:`wgs84_to_bd09` (both offsets undone by iteration)."""
    return _apply(_k_bd_to_wgs, lon, lat)


def _gcj_delta(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset (dlon, dlat) in degrees of WGS-84 points; 0 outside China."""
    glon, glat = wgs84_to_gcj02(lon, lat)
    return glon - np.asarray(lon, dtype=float), glat - np.asarray(lat, dtype=float)


def _identity(lon, lat):
    return _arrays(lon, lat)


_TO_WGS: dict[str, Callable] = {CoordSystem.wgs84: _identity, CoordSystem.cgcs2000: _identity,
                                CoordSystem.gcj02: gcj02_to_wgs84, CoordSystem.bd09: bd09_to_wgs84}
_FROM_WGS: dict[str, Callable] = {CoordSystem.wgs84: _identity, CoordSystem.cgcs2000: _identity,
                                  CoordSystem.gcj02: wgs84_to_gcj02, CoordSystem.bd09: wgs84_to_bd09}


def check_system(system: str) -> str:
    """Normalise a coordinate-system name (case, ``-`` and ``_`` ignored: ``"GCJ-02"`` -> ``"gcj02"``).

    Raises
    ------
    ValueError
        For a name that is not one of ``geo.vocabulary.COORD_SYSTEMS``.
    """
    s = str(system).lower().replace("-", "").replace("_", "")
    if s not in SYSTEMS:
        raise ValueError(f"unknown coordinate system {system!r}: expected one of {', '.join(SYSTEMS)}")
    return s


def to_wgs84(lon, lat, system: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert lon/lat stated in ``system`` to WGS 84."""
    return _TO_WGS[check_system(system)](lon, lat)


def from_wgs84(lon, lat, system: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert WGS 84 lon/lat to ``system``."""
    return _FROM_WGS[check_system(system)](lon, lat)


def transform_geometries(geoms, func: Callable) -> np.ndarray:
    """Apply a (lon, lat) -> (lon, lat) array function to every vertex of shapely geometries."""
    def xy(coords: np.ndarray) -> np.ndarray:
        x, y = func(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])
    return shapely.transform(np.asarray(geoms, dtype=object), xy)


def geometries_to_wgs84(geoms, system: str) -> np.ndarray:
    """Convert every vertex of shapely geometries stated in ``system`` to WGS 84 (a no-op for WGS 84 alikes)."""
    system = check_system(system)
    if CoordSystem(system).same_as_wgs84:
        return np.asarray(geoms, dtype=object)
    return transform_geometries(geoms, _TO_WGS[system])


def geometries_from_wgs84(geoms, system: str) -> np.ndarray:
    """Convert every vertex of WGS 84 shapely geometries to ``system`` (a no-op for WGS 84 alikes)."""
    system = check_system(system)
    if CoordSystem(system).same_as_wgs84:
        return np.asarray(geoms, dtype=object)
    return transform_geometries(geoms, _FROM_WGS[system])
