"""Barrier lines (rivers, expressways, railways) in a metric CRS."""
from __future__ import annotations

import numpy as np
import shapely
from pyproj import CRS

from gridplan.geo import validate as V
from gridplan.geo.columns import geometries_of
from gridplan.geo.coords import check_system, geometries_to_wgs84
from gridplan.geo.crs import WGS84
from gridplan.geo.crsread import is_wgs84, parse_crs, projected_problem, transform_geoms
from gridplan.geo.formats import ReadLimits
from gridplan.geo.problems import Problem
from gridplan.geo.read import read_input

LINE_TYPES = ("LineString", "MultiLineString", "LinearRing")
POLYGON_TYPES = ("Polygon", "MultiPolygon")


def load_lines(src, metric: CRS, *, coords: str = "wgs84", crs=None, role: str = "barriers",
               limits: ReadLimits | None = None, name: str | None = None) -> tuple[np.ndarray, list[Problem]]:
    """Barrier lines (rivers, expressways, railways) in the ``metric`` CRS, and the problems found.

    Any vector format or frame. Lines are kept as they are; polygons (a river drawn as an area)
    stand for their outlines, with a note. The file's CRS wins; lon/lat without a CRS mean
    ``coords`` (GCJ-02 and BD-09 offsets are removed). Features with no usable line are named.
    """
    coords = check_system(coords)
    raw = read_input(src, role, limits=limits, name=name)
    problems = list(raw.problems)
    empty = np.zeros(0, dtype=object)
    if not raw.ok:
        return empty, problems
    geoms = geometries_of(raw)
    rows = V.Rows(raw.source, raw.src_row, raw.tabular)
    if geoms is None or not len(geoms):
        problems.append(V.file_problem(raw.source, "no_geometry", f"{raw.source}: no line geometries to use as "
                                       "barriers (expected LineString/MultiLineString features)"))
        return empty, problems
    types = np.array([g.geom_type if g is not None and not g.is_empty else "" for g in geoms])
    bad = np.flatnonzero(~np.isin(types, LINE_TYPES + POLYGON_TYPES))
    if len(bad):
        problems.append(V.rows_problem(rows, bad, "wrong_geometry_type",
                                       "features that are neither lines nor polygons are ignored as barriers"))
    poly = np.isin(types, POLYGON_TYPES)
    if poly.any():
        problems.append(V.rows_problem(rows, np.flatnonzero(poly), "polygon_barrier",
                                       "polygon barriers stand for their outlines"))
    keep = np.isin(types, LINE_TYPES + POLYGON_TYPES)
    g = np.asarray(geoms, dtype=object)[keep]
    g = np.where(np.isin(types[keep], POLYGON_TYPES), shapely.boundary(g), g)
    if not len(g):
        return empty, problems
    src_crs = raw.crs or parse_crs(crs)
    if src_crs is None or src_crs.is_geographic:
        b = shapely.total_bounds(g)
        if src_crs is None and (abs(b[[0, 2]]).max() > 180 or abs(b[[1, 3]]).max() > 90):
            problems.append(projected_problem(raw.source, None))
            return empty, problems
        if src_crs is not None and not is_wgs84(src_crs):
            g = transform_geoms(g, src_crs, WGS84)
        g = geometries_to_wgs84(g, coords)
        src_crs = WGS84
    return transform_geoms(g, src_crs, CRS.from_user_input(metric)), problems
