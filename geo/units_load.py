"""Boundaries: unit codes, polygon repair, CRS to WGS 84 (then the metric CRS), unit attributes."""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gridplan.geo import validate as V
from gridplan.geo.columns import UNIT_NAME_NAMES, available_columns, find_column, geometries_of
from gridplan.geo.coords import geometries_to_wgs84
from gridplan.geo.crs import WGS84
from gridplan.geo.crsread import is_wgs84, projected_problem, transform_geoms
from gridplan.geo.grids import densify
from gridplan.geo.model import UNIT_COLUMNS
from gridplan.geo.problems import Problem
from gridplan.geo.source import Raw


@dataclass
class Units:
    """Boundaries in WGS 84 (after offsets), with the mask of usable rows and their attributes."""

    geoms: np.ndarray              # WGS 84 (after offsets), None where unusable
    alive: np.ndarray
    attrs: pd.DataFrame            # canonical attribute columns, full length
    rows: V.Rows
    problems: list[Problem]


def prepare_units(raw: Raw, code_field: str, coords: str, override: CRS | None) -> Units | None:
    """Codes, geometry checks and repair, and WGS 84 polygons of the boundaries file."""
    problems: list[Problem] = []
    f = raw.frame
    src = raw.source
    n = len(f)
    geoms = geometries_of(raw)
    code_col = find_column(f, code_field)
    codes = V.to_text(f[code_col]) if code_col is not None else pd.Series([np.nan] * n, dtype="str")
    rows = V.Rows(src, raw.src_row, raw.tabular,
                  ids=codes.to_numpy(dtype=object) if code_col is not None else None)
    if code_col is None:
        problems.append(V.file_problem(src, "missing_column",
                                       f"{src} has no '{code_field}' column (the unit code); available columns: "
                                       f"{available_columns(f)}. Name the code column with --code-field"))
    else:
        miss = codes.isna().to_numpy()
        if miss.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(miss), "missing_code",
                                           f"{rows.count(int(miss.sum()))} without a '{code_col}' code; every unit "
                                           "needs one", fatal=True))
        problems += V.check_duplicates(codes, rows, "duplicate_code", "unit code", code_col)
    if geoms is None:
        problems.append(V.file_problem(src, "wrong_geometry",
                                       f"{src} has no geometry: boundaries must be polygons (GeoJSON, GeoPackage, "
                                       f"Shapefile, GeoParquet...); columns: {available_columns(f)}"))
        return Units(np.full(n, None, object), np.zeros(n, bool), pd.DataFrame(index=range(n)), rows, problems)

    tid0 = shapely.get_type_id(geoms)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    coll = ~missing & (tid0 == 7)
    if coll.any():  # a collection counts as its polygonal parts
        geoms = geoms.copy()
        geoms[coll] = V.polygonal_part(geoms[coll])
    tid = shapely.get_type_id(geoms)
    polygonal = ~missing & ((tid == 3) | (tid == 6))
    wrong = ~missing & ~polygonal
    if missing.any():
        problems.append(V.rows_problem(rows, np.flatnonzero(missing), "missing_geometry",
                                       f"{rows.count(int(missing.sum()))} without a geometry; dropped"))
    if wrong.any():
        names = ", ".join(TYPE_NAMES.get(int(k), str(k)) for k in sorted(set(tid0[wrong].tolist())))
        problems.append(V.rows_problem(rows, np.flatnonzero(wrong), "wrong_geometry",
                                       f"{rows.count(int(wrong.sum()))} of type {names}: boundaries must be polygons",
                                       fatal=True))
    alive = polygonal & codes.notna().to_numpy()
    geoms = np.where(alive, geoms, None)

    # invalid polygons, repaired in the file's own coordinates (so the reason names its coordinates)
    geoms, ok, reps = V.repair_polygons(geoms, rows)
    problems += reps
    alive &= ok

    # CRS -> WGS 84
    problems += _to_wgs84(geoms, alive, raw.crs or override, coords, rows)
    attrs, ps = _unit_attributes(f, codes, code_col, alive, rows)
    problems += ps
    return Units(geoms, alive, attrs, rows, problems)


def _to_wgs84(geoms: np.ndarray, alive: np.ndarray, crs: CRS | None, coords: str, rows: V.Rows) -> list[Problem]:
    """Bring unit polygons to WGS 84 in place (``geoms`` and ``alive`` are updated); return the problems."""
    problems: list[Problem] = []
    src = rows.source
    live = np.flatnonzero(alive)
    if len(live):
        b = shapely.bounds(geoms[live])
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        if (crs is None or crs.is_geographic) and V.looks_projected(cx, cy):
            problems.append(projected_problem(src, crs))
            alive[:] = False
        elif crs is None or crs.is_geographic:
            swap = (np.abs(cy) > 90) & (np.abs(cx) <= 90) & (np.abs(b[:, 0]) <= 90) & (np.abs(b[:, 2]) <= 90)
            if swap.any():
                geoms[live[swap]] = shapely.transform(geoms[live[swap]], lambda c: c[:, ::-1])
                problems.append(V.rows_problem(rows, live[swap], "swapped_lonlat",
                                               f"{rows.count(int(swap.sum()))} with latitudes beyond ±90: lon/lat look "
                                               "swapped; swapped them"))
                b = shapely.bounds(geoms[live])
            out = ((np.abs(b[:, [0, 2]]) > 180).any(axis=1)) | ((np.abs(b[:, [1, 3]]) > 90).any(axis=1))
            if out.any():
                problems.append(V.rows_problem(rows, live[out], "invalid_coordinates",
                                               f"{rows.count(int(out.sum()))} with lon/lat beyond ±180/±90",
                                               fatal=True))
                alive[live[out]] = False
            live = np.flatnonzero(alive)
            if crs is not None and not is_wgs84(crs):
                geoms[live] = transform_geoms(geoms[live], crs, WGS84)
            geoms[live] = geometries_to_wgs84(geoms[live], coords)
        else:
            geoms[live] = transform_geoms(geoms[live], crs, WGS84)
            bad = ~np.isfinite(shapely.bounds(geoms[live])).all(axis=1)
            if bad.any():
                problems.append(V.rows_problem(rows, live[bad], "invalid_coordinates",
                                               f"{rows.count(int(bad.sum()))} that cannot be transformed from {crs.name} "
                                               "to WGS 84", fatal=True))
                alive[live[bad]] = False

    return problems


def _unit_attributes(f, codes: pd.Series, code_col, alive: np.ndarray, rows: V.Rows) -> tuple[pd.DataFrame, list[Problem]]:
    """Build the canonical attribute columns of every unit row (names, derived codes, kind, target)."""
    problems: list[Problem] = []
    n = len(f)
    attrs = pd.DataFrame({"unit_code": codes})
    name_col = find_column(f, *UNIT_NAME_NAMES)
    attrs["village_name"] = V.to_text(f[name_col]) if name_col is not None else pd.Series([None] * n, dtype=object)
    digits = codes.str.fullmatch(r"\d{12}").fillna(False).to_numpy(dtype=bool) if code_col is not None else np.zeros(n, bool)
    for col, width in (("township_code", 9), ("county_code", 6)):
        c = find_column(f, col)
        given = V.to_text(f[c]) if c is not None else pd.Series([np.nan] * n, dtype="str")
        derived = codes.str.slice(0, width).where(digits, np.nan)
        attrs[col] = given.where(given.notna(), derived)
    kind_col = find_column(f, "kind")
    if kind_col is not None:
        kinds, bad = V.parse_words(f[kind_col], V.KIND_WORDS, None)
        bad &= alive
        if bad.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(bad), "bad_kind",
                                           f"{rows.count(int(bad.sum()))} with a '{kind_col}' that is neither urban nor "
                                           "rural; treated as unknown (the global target applies)"))
        attrs["kind"] = pd.Series(kinds, dtype=object)
    else:
        attrs["kind"] = pd.Series([None] * n, dtype=object)
    tcol = find_column(f, "target_households")
    if tcol is not None:
        num, bad_text = V.to_numeric(f[tcol])
        with np.errstate(invalid="ignore"):
            bad = alive & (bad_text | ~(np.isnan(num) | (np.isfinite(num) & (num > 0))))
        if bad.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(bad), "bad_target",
                                           f"{rows.count(int(bad.sum()))} with a '{tcol}' that is not a number > 0; "
                                           "the global target applies"))
        attrs["target_households"] = np.where(bad, np.nan, num)
    else:
        attrs["target_households"] = np.nan
    return attrs, problems


TYPE_NAMES = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
               5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


DENSIFY_DEG = 0.01    # ~1.1 km: a lon/lat segment of this length bends by about a centimetre in metres


def finish_units(u: Units, metric: CRS) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Build the units layer in the ``metric`` CRS, overlaps resolved."""
    idx = np.flatnonzero(u.alive)
    # Straight lon/lat edges are curves in metres: densify first, so the metric outline follows
    # the given one to a centimetre (grids built in metres then fit the outline as given).
    geoms = transform_geoms(densify(u.geoms[idx], DENSIFY_DEG), WGS84, metric) if len(idx) \
        else np.zeros(0, object)
    if len(geoms):
        bad = ~shapely.is_valid(geoms)
        if bad.any():  # projection can rarely break validity: repair silently
            geoms[bad] = V.polygonal_part(shapely.make_valid(geoms[bad]))
    attrs = u.attrs.iloc[idx].reset_index(drop=True)
    geoms, problems = V.resolve_overlaps(geoms, attrs["unit_code"].to_numpy(dtype=object), u.rows.take(idx))
    gone = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if gone.any():
        geoms = geoms[~gone]
        attrs = attrs[~gone].reset_index(drop=True)
    units = gpd.GeoDataFrame(attrs[UNIT_COLUMNS], geometry=gpd.GeoSeries(geoms, crs=metric), crs=metric)
    units["target_households"] = units["target_households"].astype(float)
    units["kind"] = pd.Series(units["kind"].to_numpy(dtype=object), dtype=object)
    units.loc[units["kind"].isna(), "kind"] = None
    return units, problems
