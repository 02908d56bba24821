"""Dataset assembly: read every input, run the checks, project everything into one metric CRS.

``load_dataset`` gathers ALL problems before deciding: with ``strict=True`` any fatal problem
raises ``DataError`` carrying every problem found; ``validate`` returns the list and never raises
for data problems.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely import STRtree

from gridplan.geo import validate as V
from gridplan.geo.attributes import read_attributes
from gridplan.geo.columns import (
    EXISTING_NAMES,
    FACILITY_ID_NAMES,
    HH_COUNT_NAMES,
    HH_ID_NAMES,
    NAME_NAMES,
    POPULATION_NAMES,
    ROLE_NAMES,
    WEIGHT_NAMES,
    WORKER_ID_NAMES,
    available_columns,
    find_column,
)
from gridplan.geo.coords import check_system, to_wgs84
from gridplan.geo.crs import WGS84, choose_metric_crs
from gridplan.geo.crsread import parse_crs
from gridplan.geo.formats import ReadLimits, check_network
from gridplan.geo.model import FACILITY_COLUMNS, HOUSEHOLD_COLUMNS, ROSTER_COLUMNS, UNIT_COLUMNS, Dataset
from gridplan.geo.points_load import Points, id_checks, locate_points, no_valid, prepare_points, read_ids, row_ids
from gridplan.geo.problems import DataError, Problem
from gridplan.geo.read import read_input
from gridplan.geo.source import Raw, source_name
from gridplan.geo.units_load import Units, finish_units, prepare_units


# ============================================================================ the dataset
def empty_units(crs) -> gpd.GeoDataFrame:
    """Return an empty units layer with the contract's columns, in ``crs``."""
    df = pd.DataFrame({c: pd.Series(dtype=object) for c in UNIT_COLUMNS})
    df["target_households"] = df["target_households"].astype(float)
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def empty_households(crs) -> gpd.GeoDataFrame:
    """Return an empty households layer with the contract's columns, in ``crs``."""
    df = pd.DataFrame({"hh_id": pd.Series(dtype="str"), "households": pd.Series(dtype=np.int64),
                       "population": pd.Series(dtype=float), "weight": pd.Series(dtype=float),
                       "unit_idx": pd.Series(dtype=np.int64), "lon": pd.Series(dtype=float),
                       "lat": pd.Series(dtype=float), "src_row": pd.Series(dtype=np.int64)})
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs=crs), crs=crs)



def _read_all(inputs: dict, numeric: list, limits: ReadLimits | None, names: Mapping[str, str]
              ) -> tuple[dict[str, Raw | None], dict[str, str], list[Problem]]:
    """Read every input first, so every unreadable file is reported at once."""
    raws: dict[str, Raw | None] = {}
    sources: dict[str, str] = {}
    problems: list[Problem] = []
    for role, src in inputs.items():
        raws[role] = None
        if src is None:
            if role in ("boundaries", "households"):
                problems.append(V.file_problem(role, "missing_file", f"no {role} given"))
            continue
        raw = read_input(src, role, numeric_columns=numeric, limits=limits, name=names.get(role))
        sources[role] = raw.source
        problems += raw.problems
        raws[role] = raw if raw.ok else None
    return raws, sources, problems


def _prepare_households(raw: Raw | None, id_field, coords: str, override, lon_field, lat_field):
    """(points or None, id texts, id column, problems) of the households file, in raw lon/lat."""
    if raw is None:
        return None, None, None, []
    hh_ids, hh_col, problems = read_ids(raw, HH_ID_NAMES, id_field, "households", "household id")
    if problems:
        return None, hh_ids, hh_col, problems
    rows = V.Rows(raw.source, raw.src_row, raw.tabular,
                  ids=hh_ids.to_numpy(dtype=object) if hh_ids is not None else None)
    problems += id_checks(hh_ids, hh_col, rows, "household id")
    hp = prepare_points(raw, "households", rows, coords, override, lon_field, lat_field)
    return hp, hh_ids, hh_col, problems + hp.problems


def load_dataset(boundaries, households, facilities=None, roster=None, network=None, *,
                 coords: str = "wgs84", code_field: str = "village_code", id_field: str | None = None,
                 lon_field: str | None = None, lat_field: str | None = None, crs=None,
                 strict: bool = True, limits: ReadLimits | None = None,
                 names: Mapping[str, str] | None = None, attributes: Sequence[str] = ()) -> Dataset:
    """Read, validate and project every input; see the module docstring and ``geo.model``.

    Parameters
    ----------
    limits : ReadLimits, optional
        What one input may cost to read (``geo.formats.DEFAULT_LIMITS``); a file over a limit
        is a fatal ``too_large`` problem naming the limit.
    names : mapping, optional
        The client's file name per role ("households": "hh.csv") when the paths given are
        server-side copies; problems then name the client's file.
    attributes : sequence of str, optional
        Numeric household columns a plan option reads (``--workload``), kept as ``attr:<name>``
        (``geo.attributes``); a missing column or a non-numeric cell is fatal.

    Raises ``DataError`` (carrying every problem found) when a problem is fatal and ``strict``;
    with ``strict=False`` returns the (possibly partial) Dataset with its problems. Raises
    ``ValueError`` for usage errors (unknown ``coords`` or ``crs``).
    """
    coords = check_system(coords)
    override = parse_crs(crs)
    code_field = code_field or "village_code"
    names = dict(names or {})
    numeric = [c for c in (lon_field, lat_field) if c]
    raws, sources, problems = _read_all({"boundaries": boundaries, "households": households,
                                         "facilities": facilities, "roster": roster}, numeric, limits, names)

    # ---- boundaries (in WGS 84) -> the metric CRS
    u = None
    if raws["boundaries"] is not None:
        u = prepare_units(raws["boundaries"], code_field, coords, override)
        problems += u.problems
        if not u.alive.any() and not any(p.fatal for p in u.problems):
            problems.append(no_valid(u.rows.source, "units"))

    # ---- households (raw lon/lat)
    hp, hh_ids, hh_col, ps = _prepare_households(raws["households"], id_field, coords, override, lon_field, lat_field)
    problems += ps

    metric = _choose_crs(u, hp, coords)
    units = empty_units(metric)
    tree = None
    if u is not None and metric is not None and u.alive.any():
        units, ps = finish_units(u, metric)
        problems += ps
        if len(units):
            tree = STRtree(np.asarray(units.geometry.array, dtype=object))
    if metric is None:
        metric = WGS84

    hh = empty_households(metric)
    if hp is not None and hp.has_location and not any(q.fatal for q in hp.problems):
        hh, ps = _finish_households(hp, hh_ids, coords, metric, units if u is not None else None, tree, attributes)
        problems += ps

    fac = ros = None
    if raws["facilities"] is not None:
        fac, ps = _load_facilities(raws["facilities"], coords, override, metric, units if u is not None else None,
                                   tree, lon_field, lat_field)
        problems += ps
    if raws["roster"] is not None:
        ros, ps = _load_roster(raws["roster"], coords, override, metric, lon_field, lat_field)
        problems += ps

    net = None
    if network is not None:
        net = os.fspath(network)
        sources["network"] = names.get("network") or source_name(network, "network")
        problems += check_network(net, sources["network"])

    ds = Dataset(units=units, households=hh, crs=metric, problems=problems, facilities=fac, roster=ros,
                 network=net, code_field=code_field, id_field=str(hh_col) if hh_col is not None else None,
                 sources=sources)
    if strict and ds.fatal:
        raise DataError(problems)
    return ds


def _choose_crs(u: Units | None, hp: Points | None, coords: str) -> CRS | None:
    if u is not None and u.alive.any():
        b = shapely.total_bounds(u.geoms[u.alive])
        if np.isfinite(b).all():
            return choose_metric_crs(b)
    if hp is not None and hp.has_location and hp.alive.any():
        x, y = hp.x[hp.alive], hp.y[hp.alive]
        if hp.geographic:
            x, y = to_wgs84(x, y, coords)
        fin = np.isfinite(x) & np.isfinite(y)
        if fin.any():
            return choose_metric_crs((x[fin].min(), y[fin].min(), x[fin].max(), y[fin].max()))
    return None


def _finish_households(hp: Points, ids: pd.Series | None, coords: str, metric: CRS,
                       units: gpd.GeoDataFrame | None, tree, attributes: Sequence[str] = ()
                       ) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    raw, rows = hp.raw, hp.rows
    f = raw.frame
    problems: list[Problem] = []
    alive = hp.alive.copy()
    col = find_column(f, *HH_COUNT_NAMES)
    if col is not None:
        counts, keep, ps = V.check_counts(f[col], rows, alive, str(col))
        problems += ps
        alive &= keep
    else:
        counts = np.ones(len(f), dtype=np.int64)
    col = find_column(f, *POPULATION_NAMES)
    if col is not None:
        pop, ps = V.check_nonnegative(f[col], rows, alive, str(col), np.nan, "bad_population")
        problems += ps
    else:
        pop = np.full(len(f), np.nan)
    col = find_column(f, *WEIGHT_NAMES)
    if col is not None:
        weight, ps = V.check_nonnegative(f[col], rows, alive, str(col), 0.0, "bad_weight")
        problems += ps
    else:
        weight = np.zeros(len(f))
    attrs, ps = read_attributes(f, rows, alive, attributes)
    problems += ps
    hp.alive = alive
    loc = locate_points(hp, coords, metric, units, tree, "households")
    problems += loc.problems
    keep = np.flatnonzero(alive & (loc.points != None))  # elementwise over an object array, not an identity test
    if len(keep) == 0 and len(f):
        problems.append(no_valid(raw.source, "households"))
    hh_id = (ids if ids is not None else row_ids(raw)).iloc[keep].reset_index(drop=True)
    df = pd.DataFrame({
        "hh_id": hh_id.astype("str"),
        "households": counts[keep],
        "population": pop[keep].astype(float),
        "weight": weight[keep].astype(float),
        "unit_idx": loc.unit_idx[keep],
        "lon": loc.lon[keep], "lat": loc.lat[keep],
        "src_row": raw.src_row[keep].astype(np.int64),
    })
    geom = gpd.GeoSeries(loc.points[keep], crs=metric)
    cols = HOUSEHOLD_COLUMNS + list(attrs)
    for name, values in attrs.items():
        df[name] = values[keep]
    return gpd.GeoDataFrame(df[cols], geometry=geom, crs=metric), problems


def _load_facilities(raw: Raw, coords, override, metric, units, tree, lon_field, lat_field
                     ) -> tuple[gpd.GeoDataFrame | None, list[Problem]]:
    f = raw.frame
    ids, col, problems = read_ids(raw, FACILITY_ID_NAMES, None, "facilities", "facility id")
    rows = V.Rows(raw.source, raw.src_row, raw.tabular, ids=ids.to_numpy(dtype=object) if ids is not None else None)
    problems += id_checks(ids, col, rows, "facility id")
    p = prepare_points(raw, "facilities", rows, coords, override, lon_field, lat_field)
    problems += p.problems
    if not p.has_location or any(q.fatal for q in p.problems):
        return None, problems
    loc = locate_points(p, coords, metric, units, tree, "facilities")
    problems += loc.problems
    name_col = find_column(f, *NAME_NAMES)
    names = V.to_text(f[name_col]) if name_col is not None else pd.Series([np.nan] * len(f), dtype="str")
    ex_col = find_column(f, *EXISTING_NAMES)
    if ex_col is not None:
        existing, bad = V.parse_bool(f[ex_col])
        bad &= p.alive
        if bad.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(bad), "bad_existing",
                                           f"{rows.count(int(bad.sum()))} with an '{ex_col}' value that is not "
                                           "true/false/1/0/yes/no/是/否; taken as false"))
    else:
        existing = np.zeros(len(f), bool)
    keep = np.flatnonzero(p.alive & (loc.points != None))  # elementwise over an object array, not an identity test
    if len(keep) == 0:
        problems.append(no_valid(raw.source, "facilities"))
    fid = (ids if ids is not None else row_ids(raw)).iloc[keep].reset_index(drop=True)
    df = pd.DataFrame({"facility_id": fid.astype("str"),
                       "name": names.iloc[keep].fillna("").reset_index(drop=True).astype("str"),
                       "existing": existing[keep].astype(bool)})
    cols = list(FACILITY_COLUMNS)
    cap_col = find_column(f, "capacity", "容量")
    if cap_col is not None:                  # optional: households a station can serve (capacitated siting)
        cap = pd.to_numeric(f[cap_col], errors="coerce").to_numpy(float)
        bad = p.alive & f[cap_col].notna().to_numpy() & ~(np.isfinite(cap) & (cap >= 0))
        if bad.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(bad), "bad_capacity",
                                           f"{rows.count(int(bad.sum()))} with a '{cap_col}' value that is not a "
                                           "number of households >= 0; the default capacity is used"))
        df["capacity"], cols = np.where(bad, np.nan, cap)[keep], cols + ["capacity"]
    geom = gpd.GeoSeries(loc.points[keep], crs=metric)
    return gpd.GeoDataFrame(df[cols], geometry=geom, crs=metric), problems


def _load_roster(raw: Raw, coords, override, metric, lon_field, lat_field
                 ) -> tuple[gpd.GeoDataFrame | None, list[Problem]]:
    f = raw.frame
    problems: list[Problem] = []
    col = find_column(f, *WORKER_ID_NAMES)
    if col is None:
        problems.append(V.file_problem(raw.source, "missing_column",
                                       f"{raw.source} has no 'worker_id' column; available columns: {available_columns(f)}"))
        return None, problems
    ids = V.to_text(f[col])
    rows = V.Rows(raw.source, raw.src_row, raw.tabular, ids=ids.to_numpy(dtype=object))
    problems += id_checks(ids, col, rows, "worker id")
    p = prepare_points(raw, "roster", rows, coords, override, lon_field, lat_field, need_location=False)
    problems += p.problems
    if any(q.fatal for q in p.problems):
        return None, problems
    if p.has_location:
        loc = locate_points(p, coords, metric, None, None, "roster", check_outside=False)
        mx, my = loc.mx, loc.my
    else:
        mx = my = np.full(len(f), np.nan)
    name_col = find_column(f, *NAME_NAMES)
    names = V.to_text(f[name_col]) if name_col is not None else pd.Series([np.nan] * len(f), dtype="str")
    role_col = find_column(f, *ROLE_NAMES)
    if role_col is not None:
        roles, bad = V.parse_words(f[role_col], V.ROLE_WORDS, "full")
        if bad.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(bad), "bad_role",
                                           f"{rows.count(int(bad.sum()))} with a '{role_col}' that is neither full nor "
                                           "part; taken as full"))
    else:
        roles = np.full(len(f), "full", dtype=object)
    fin = np.isfinite(mx) & np.isfinite(my)
    geom = np.full(len(f), None, dtype=object)
    geom[fin] = shapely.points(mx[fin], my[fin])
    df = pd.DataFrame({"worker_id": ids.astype("str"), "name": names.fillna("").astype("str"),
                       "role": pd.Series(roles, dtype="str")})
    return gpd.GeoDataFrame(df[ROSTER_COLUMNS], geometry=gpd.GeoSeries(geom, crs=metric), crs=metric), problems



def validate(boundaries, households, facilities=None, roster=None, **options) -> list[Problem]:
    """Return every problem found in the inputs (``load_dataset`` options apply).

    Never raises for data problems; a usage error (unknown ``coords`` or ``crs``) still raises
    ``ValueError``.
    """
    options.pop("strict", None)
    return load_dataset(boundaries, households, facilities, roster, strict=False, **options).problems
