"""The published coordinate-offset formulas, literally and point by point, in plain Python.

The reference that ``geo.coords`` (vectorized, rewritten for speed) is tested against, and the
"plain per-point loop" baseline of ``benchmarks/coords_speed.py``. Transcribed from the formula as
printed in wandergis/coordtransform (index.js) and googollee/eviltransform
(python/eviltransform/__init__.py, Krasovsky a = 6378245.0 variant).
"""
from __future__ import annotations

import math


def wgs_to_gcj(lon: float, lat: float) -> tuple[float, float]:
    """Offset one WGS 84 point to GCJ-02 by the published formula (unchanged outside China's box)."""
    if not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271):
        return lon, lat
    x, y = lon - 105.0, lat - 35.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    a, ee = 6378245.0, 0.00669342162296594323
    radlat = lat / 180.0 * math.pi
    magic = 1 - ee * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((a * (1 - ee)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (a / sqrtmagic * math.cos(radlat) * math.pi)
    return lon + dlon, lat + dlat


def gcj_to_bd(lon: float, lat: float) -> tuple[float, float]:
    """Offset one GCJ-02 point to BD-09 by the published formula."""
    x_pi = math.pi * 3000.0 / 180.0
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * x_pi)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * x_pi)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def gcj_to_wgs(lon: float, lat: float, tol_deg: float = 1e-10) -> tuple[float, float]:
    """Invert :func:`wgs_to_gcj` by plain fixed-point iteration (the textbook way; slow, exact)."""
    wlon, wlat = lon, lat
    for _ in range(30):
        glon, glat = wgs_to_gcj(wlon, wlat)
        dlon, dlat = glon - lon, glat - lat
        wlon, wlat = wlon - dlon, wlat - dlat
        if max(abs(dlon), abs(dlat)) <= tol_deg:
            break
    return wlon, wlat

