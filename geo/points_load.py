"""Load points (households, facilities, roster).

Locations from geometries or lon/lat columns, CRS and coordinate-system offsets, the unit each
point lies in, ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely import STRtree

from gridplan.geo import validate as V
from gridplan.geo.columns import LAT_NAMES, LON_NAMES, WKT_NAMES, available_columns, find_column, geometries_of
from gridplan.geo.coords import to_wgs84
from gridplan.geo.crs import WGS84
from gridplan.geo.crsread import is_wgs84, projected_problem, transform_xy, transformer
from gridplan.geo.problems import Problem
from gridplan.geo.source import Raw
from gridplan.geo.units_load import TYPE_NAMES


@dataclass
class Points:
    """Point locations of one file (raw lon/lat or WGS 84), with the mask of usable rows."""

    raw: Raw
    rows: V.Rows
    x: np.ndarray                  # geographic lon/lat in `coords` (geographic) or WGS 84 lon/lat
    y: np.ndarray
    alive: np.ndarray
    geographic: bool               # True: x/y still need the `coords` offsets
    swapped: np.ndarray            # rows whose lon/lat were swapped for |lat| > 90
    problems: list[Problem]
    has_location: bool = True


def point_xy(raw: Raw, role: str, lon_field, lat_field
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, list[Problem]]:
    """Read the raw x/y of every row (NaN where missing).

    Returns also the mask of non-numeric cells, whether a location was found at all, and the
    problems (wrong geometry types, missing columns).
    """
    f = raw.frame
    n = len(f)
    src = raw.source
    nan = np.full(n, np.nan)
    no = np.zeros(n, bool)
    geoms = None
    if isinstance(f, gpd.GeoDataFrame) and f._geometry_column_name in f.columns:
        geoms = np.asarray(f.geometry.array, dtype=object)
        if (shapely.is_missing(geoms) | shapely.is_empty(geoms)).all() and find_column(f, lon_field, *LON_NAMES) is not None:
            geoms = None  # an empty geometry column next to lon/lat columns: use the columns
    if geoms is not None and not lon_field:
        tid = shapely.get_type_id(geoms)
        ngeom = shapely.get_num_geometries(geoms)
        single_multi = (tid == 4) & (ngeom == 1)
        if single_multi.any():
            geoms = geoms.copy()
            geoms[single_multi] = shapely.get_geometry(geoms[single_multi], 0)
            tid = shapely.get_type_id(geoms)
        present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        wrong = present & (tid != 0)
        problems = []
        if wrong.any():
            rows = V.Rows(src, raw.src_row, raw.tabular)
            names = ", ".join(TYPE_NAMES.get(int(k), str(k)) for k in sorted(set(tid[wrong].tolist())))
            problems.append(V.rows_problem(rows, np.flatnonzero(wrong), "wrong_geometry",
                                           f"{rows.count(int(wrong.sum()))} of type {names}: {role} must be points",
                                           fatal=True))
        pts = np.where(present & (tid == 0), geoms, None)
        return shapely.get_x(pts), shapely.get_y(pts), no, True, problems
    lon_col = find_column(f, lon_field) if lon_field else find_column(f, *LON_NAMES)
    lat_col = find_column(f, lat_field) if lat_field else find_column(f, *LAT_NAMES)
    if lon_col is None or lat_col is None:
        if geoms is None and geometries_of(raw) is not None and not (lon_field or lat_field):
            g = geometries_of(raw)
            raw.frame = gpd.GeoDataFrame(f.drop(columns=[find_column(f, *WKT_NAMES)]), geometry=gpd.GeoSeries(g),
                                         crs=raw.crs)
            return point_xy(raw, role, lon_field, lat_field)
        wanted = (f"'{lon_field or 'lon'}' and '{lat_field or 'lat'}'" if (lon_field or lat_field)
                  else "lon/lat (or x/y, lng, longitude/latitude, 经度/纬度)")
        return nan, nan, no, False, [V.file_problem(src, "missing_column",
                                                    f"{src} has no point geometry and no {wanted} columns; "
                                                    f"available columns: {available_columns(f)}")]
    x, bx = V.to_numeric(f[lon_col])
    y, by = V.to_numeric(f[lat_col])
    return x, y, bx | by, True, []


def prepare_points(raw: Raw, role: str, rows: V.Rows, coords: str, override: CRS | None,
                    lon_field=None, lat_field=None, need_location: bool = True) -> Points:
    """Locate every row of a points file in geographic coordinates.

    Locations are checked: missing, swapped, projected.
    """
    n = len(raw.frame)
    x, y, bad_text, found, problems = point_xy(raw, role, lon_field, lat_field)
    alive = np.ones(n, bool)
    none = np.zeros(n, bool)
    if not found:
        if need_location:
            return Points(raw, rows, x, y, np.zeros(n, bool), True, none, problems, False)
        msg = f"{raw.source} has no home locations (no point geometry or lon/lat columns); workers are kept without one"
        return Points(raw, rows, x, y, alive, True, none, [V.file_problem(raw.source, "missing_location", msg,
                                                                           fatal=False)], False)
    if any(p.fatal for p in problems):
        return Points(raw, rows, x, y, np.zeros(n, bool), True, none, problems)
    alive, ps = V.check_missing_coordinates(x, y, bad_text, rows, alive, drop=need_location)
    problems += ps
    fin = np.isfinite(x) & np.isfinite(y)
    crs = raw.crs or override
    swapped = none
    if (crs is None or crs.is_geographic) and V.looks_projected(x[alive & fin], y[alive & fin]):
        problems.append(projected_problem(raw.source, crs))
        return Points(raw, rows, x, y, np.zeros(n, bool), True, none, problems)
    if crs is None or crs.is_geographic:
        x, y, ok, swapped, ps = V.check_geographic(x, y, rows, alive & fin)
        problems += ps
        if need_location:
            alive &= ok
        else:
            x, y = np.where(ok, x, np.nan), np.where(ok, y, np.nan)
        if crs is not None and not is_wgs84(crs):
            x, y = transform_xy(crs, WGS84, x, y)
        return Points(raw, rows, x, y, alive, True, swapped, problems)
    x, y = transform_xy(crs, WGS84, x, y)
    bad = alive & fin & ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        problems.append(V.rows_problem(rows, np.flatnonzero(bad), "invalid_coordinates",
                                       f"{rows.count(int(bad.sum()))} that cannot be transformed from {crs.name} to "
                                       "WGS 84; dropped"))
        if need_location:
            alive &= ~bad
    return Points(raw, rows, x, y, alive, False, swapped, problems)


@dataclass
class Located:
    """Points located: WGS 84 lon/lat, metric x/y and point geometries, and the unit of each."""

    lon: np.ndarray
    lat: np.ndarray
    mx: np.ndarray
    my: np.ndarray
    unit_idx: np.ndarray
    problems: list[Problem]
    points: np.ndarray              # metric shapely points (None where there is no location)


def locate_points(p: Points, coords: str, metric: CRS, units: gpd.GeoDataFrame | None,
                   tree: STRtree | None, role: str, check_outside: bool = True) -> Located:
    """Compute WGS 84 lon/lat, metric x/y and the containing unit of every row.

    Swaps lon/lat where only the swapped point falls inside the boundaries.
    """
    problems: list[Problem] = []
    if p.geographic:
        lon, lat = to_wgs84(p.x, p.y, coords)
    else:
        lon, lat = p.x.copy(), p.y.copy()
    to_metric = transformer(WGS84, metric)
    mx, my = to_metric.transform(lon, lat)
    n = len(lon)
    unit_idx = np.full(n, -1, dtype=np.int64)
    has_units = units is not None and len(units) > 0
    live = p.alive & np.isfinite(mx) & np.isfinite(my)
    codes = units["unit_code"].to_numpy(dtype=object) if has_units else None
    points = np.full(n, None, dtype=object)
    li = np.flatnonzero(live)
    points[li] = shapely.points(mx[li], my[li])
    if has_units:
        unit_idx[li] = V.locate(points[li], units.geometry.array, codes, tree)
        if p.geographic:
            cand = np.flatnonzero(live & (unit_idx < 0) & ~p.swapped & (np.abs(p.x) <= 90))
            if len(cand):
                slon, slat = to_wgs84(p.y[cand], p.x[cand], coords)
                smx, smy = to_metric.transform(slon, slat)
                sidx = V.locate(shapely.points(smx, smy), units.geometry.array, codes, tree)
                inside = sidx >= 0
                if inside.any():
                    k = cand[inside]
                    lon[k], lat[k], mx[k], my[k], unit_idx[k] = slon[inside], slat[inside], smx[inside], smy[inside], sidx[inside]
                    points[k] = shapely.points(mx[k], my[k])
                    problems.append(V.swap_problem(p.rows, k, "boundaries", int(inside.sum())))
    if p.swapped.any():
        sw = np.flatnonzero(p.swapped & p.alive)
        if len(sw):
            problems.append(V.swap_problem(p.rows, sw, "latitude", int((unit_idx[sw] >= 0).sum()) if has_units else None))
    if has_units and check_outside:
        out = live & (unit_idx < 0)
        if out.any():
            k = int(out.sum())
            share = k / max(int(live.sum()), 1)
            hint = (f" — {share:.0%} of all; check --coords (gcj02/bd09?) and the files' CRS"
                    if share > 0.5 else "")
            what = "they get no grid" if role == "households" else "kept"
            problems.append(V.rows_problem(p.rows, np.flatnonzero(out), "outside_units",
                                           f"{p.rows.count(k)} {'lies' if k == 1 else 'lie'} outside every unit ({what}){hint}"))
    return Located(lon, lat, mx, my, unit_idx, problems, points)


def read_ids(raw: Raw, names: tuple, explicit: str | None, role: str, what: str
         ) -> tuple[pd.Series | None, Any, list[Problem]]:
    """(id texts or None, the id column, problems: missing explicit column)."""
    f = raw.frame
    if explicit:
        col = find_column(f, explicit)
        if col is None:
            return None, None, [V.file_problem(raw.source, "missing_column",
                                               f"{raw.source} has no '{explicit}' column ({what}); available columns: "
                                               f"{available_columns(f)}")]
    else:
        col = find_column(f, *names)
    if col is None:
        return None, None, []
    return V.to_text(f[col]), col, []


def id_checks(ids: pd.Series | None, col, rows: V.Rows, what: str) -> list[Problem]:
    """Missing and duplicate ids of a points file."""
    if ids is None:
        return []
    problems = []
    miss = ids.isna().to_numpy()
    if miss.any():
        problems.append(V.rows_problem(rows, np.flatnonzero(miss), "missing_id",
                                       f"{rows.count(int(miss.sum()))} without a {what} (empty '{col}')", fatal=True))
    problems += V.check_duplicates(ids, rows, "duplicate_id", what, col)
    return problems


def row_ids(raw: Raw) -> pd.Series:
    """Source row numbers as ids, for a file without an id column."""
    return pd.Series(raw.src_row.astype(str), dtype="str")


def no_valid(source: str, what: str) -> Problem:
    """Build the fatal problem of a file with no usable row left."""
    return V.file_problem(source, "no_valid_rows", f"{source} has no usable {what} left after dropping bad rows")
