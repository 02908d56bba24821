"""CRS helpers for reading: cached transformers, WGS 84 tests, the projected-coordinates problem."""
from __future__ import annotations

import threading

import numpy as np
import shapely
from pyproj import CRS, Transformer

from gridplan.geo import validate as V
from gridplan.geo.crs import WGS84
from gridplan.geo.problems import Problem
from gridplan.geo.source import short_error

_local = threading.local()


def transformer(src: CRS, dst: CRS) -> Transformer:
    """Return a cached always-xy Transformer (building one costs ~0.1 s).

    One cache per thread, as pyproj objects should not be shared between threads.
    """
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    key = (CRS.from_user_input(src).to_wkt(), CRS.from_user_input(dst).to_wkt())
    t = cache.get(key)
    if t is None:
        if len(cache) > 32:
            cache.clear()
        t = cache[key] = Transformer.from_crs(src, dst, always_xy=True)
    return t


def transform_xy(src: CRS, dst: CRS, x, y) -> tuple[np.ndarray, np.ndarray]:
    """x/y arrays from ``src`` to ``dst`` (always x=lon/easting, y=lat/northing)."""
    return transformer(src, dst).transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))


def transform_geoms(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    """Shapely geometries from ``src`` to ``dst``."""
    t = transformer(src, dst)

    def xy(c: np.ndarray) -> np.ndarray:
        x, y = t.transform(c[:, 0], c[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms, dtype=object), xy)


def is_wgs84(crs: CRS) -> bool:
    """Return True when ``crs`` is WGS 84 lon/lat (axis order aside)."""
    return crs.equals(WGS84, ignore_axis_order=True)


def projected_problem(source: str, crs: CRS | None) -> Problem:
    """Coordinates in metres where lon/lat are expected: no CRS at all, or a wrong geographic one."""
    if crs is None:
        return V.file_problem(source, "no_crs_projected",
                              f"{source}: coordinates look projected (metres) but the file has no CRS; "
                              "add a .prj / give --crs")
    return V.file_problem(source, "crs_mismatch",
                          f"{source}: the file says its CRS is {crs.name} (lon/lat in degrees) but its coordinates "
                          "look projected (metres); fix the file's CRS (.prj)")


def parse_crs(crs) -> CRS | None:
    """Parse a user-given CRS (``--crs``) into a pyproj CRS; None when empty.

    Raises
    ------
    ValueError
        When the CRS is unknown.
    """
    if crs is None or (isinstance(crs, str) and not crs.strip()):
        return None
    try:
        return CRS.from_user_input(crs)
    except Exception as exc:
        raise ValueError(f"unknown CRS {crs!r}: {short_error(exc)}") from None
