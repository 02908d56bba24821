"""Choosing the local metric CRS in which every distance and area is computed.

Inside China: CGCS2000 / 3-degree Gauss-Krüger "CM" zones (EPSG:4534 for 75°E ... EPSG:4554 for
135°E), the projection Chinese surveys use; the zone whose central meridian is nearest the data's
centre. Elsewhere: the UTM zone of the data's centre (WGS 84). Scale error stays below 0.03%
within ±1.5° of the central meridian, which a county or a province like Hainan fits.

A wide province does not fit one zone (10° from the meridian: 1.6% in distance, 3% in area), so
the pipeline partitions and measures each county in its own zone (``local_crs_by_group``) and
carries the grids between CRSs with ``Reprojector``.
"""
from __future__ import annotations

import numpy as np
from pyproj import CRS

WGS84 = CRS.from_epsg(4326)
CGCS2000 = CRS.from_epsg(4490)


def in_china_box(lon: float, lat: float) -> bool:
    """Return True when (lon, lat) lies in the rough bounding box of China."""
    return 73.0 <= lon <= 135.5 and 3.0 <= lat <= 54.0


def gk3_cm_epsg(lon: float) -> int:
    """EPSG code of the CGCS2000 3-degree Gauss-Krüger CM zone nearest ``lon``."""
    cm = int(np.clip(round(lon / 3.0) * 3, 75, 135))
    return 4534 + (cm - 75) // 3


def utm_epsg(lon: float, lat: float) -> int:
    """Return the EPSG code of the WGS 84 UTM zone holding (lon, lat)."""
    zone = int(np.clip(np.floor((lon + 180.0) / 6.0) + 1, 1, 60))
    return (32600 if lat >= 0 else 32700) + zone


def choose_metric_crs(bounds_wgs84) -> CRS:
    """Choose a metric CRS for data whose WGS 84 bounds are (minx, miny, maxx, maxy)."""
    minx, miny, maxx, maxy = (float(v) for v in bounds_wgs84)
    if not all(np.isfinite([minx, miny, maxx, maxy])):
        raise ValueError("cannot choose a metric CRS: the data has no finite extent")
    lon, lat = (minx + maxx) / 2.0, (miny + maxy) / 2.0
    if in_china_box(lon, lat):
        return CRS.from_epsg(gk3_cm_epsg(lon))
    return CRS.from_epsg(utm_epsg(lon, lat))


def is_geographic(crs) -> bool:
    """Return True when ``crs`` is given and geographic (degrees)."""
    return crs is not None and CRS.from_user_input(crs).is_geographic


def local_crs_by_group(geoms_wgs84, keys) -> dict:
    """One metric CRS per group (a county): ``choose_metric_crs`` on the group's own WGS 84 extent.

    Parameters
    ----------
    geoms_wgs84 : array-like of shapely geometries in WGS 84 (lon, lat).
    keys : array-like of group keys (county codes), one per geometry.

    Returns
    -------
    dict mapping each key to its CRS. A county is well inside ±1.5° of its own zone's central
    meridian, so scale errors stay below ~0.03% (one CRS for a province 10° wide reaches 1.5%).
    """
    import shapely
    geoms = np.asarray(list(geoms_wgs84), dtype=object)
    keys = np.asarray(list(keys), dtype=object)
    out = {}
    if not len(geoms):
        return out
    b = shapely.bounds(geoms)
    for key in dict.fromkeys(keys.tolist()):
        sel = b[keys == key]
        sel = sel[np.isfinite(sel).all(axis=1)]
        if len(sel):
            out[key] = choose_metric_crs((sel[:, 0].min(), sel[:, 1].min(), sel[:, 2].max(), sel[:, 3].max()))
    return out


class Reprojector:
    """Coordinates and shapely geometries from one CRS to another (identity when they are equal)."""

    def __init__(self, src, dst):
        from pyproj import Transformer
        self.src, self.dst = CRS.from_user_input(src), CRS.from_user_input(dst)
        self.identity = self.src == self.dst
        self._t = None if self.identity else Transformer.from_crs(self.src, self.dst, always_xy=True)

    def xy(self, xy: np.ndarray) -> np.ndarray:
        """Return the (n, 2) array of coordinates transformed to ``dst``."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        if self.identity or not len(xy):
            return xy
        x, y = self._t.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    def geom(self, g):
        """Return a geometry (or an array of them) in ``dst``; vertices move, edges stay straight."""
        import shapely
        if self.identity or g is None:
            return g
        return shapely.transform(g, self.xy)
