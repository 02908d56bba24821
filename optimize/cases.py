"""Cases into grids (事事入格): each case routed to its grid, unit, workers and station.

A *case* is an event at a point: a hotline (12345) work order, a dispute, a patrol finding. Input
columns: ``id``, ``time`` (ISO 8601), ``kind``, ``lon``/``lat`` (in ``coords``: wgs84, gcj02,
bd09 or cgcs2000) — any table ``geo.io.read_table`` reads (CSV with pyarrow, under the
hostile-upload limits), or point features.

``route_cases`` answers with ``geo.index.GridIndex`` — the very lookup ``/v1/lookup`` runs — so
a case's grid, workers, station and minutes equal the lookup's answer at its point. Which plan a
case is routed by comes from ``plan_for_time(t)`` → (plan id, GridIndex), asked once per distinct
day of the cases' times (``None`` for a case without a valid time): the default resolver is one
plan for every case; the service passes the plan version in effect on that day.

Bad rows never stop a run: a row without valid coordinates is routed to nothing, a row without a
valid time is routed by ``plan_for_time(None)`` and left out of any period; both are reported as
problems naming the file and rows.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridplan.geo import validate as V
from gridplan.geo.columns import LAT_NAMES, LON_NAMES, data_columns, find_column, geometries_of
from gridplan.geo.distance import round_minutes
from gridplan.geo.problems import DataError, Problem
from gridplan.geo.read import read_input

Resolver = Callable[[object], tuple]
ROUTED_COLUMNS = ["id", "time", "kind", "lon", "lat", "plan", "grid_code", "village_code", "township_code",
                  "county_code", "worker_ids", "station_id", "minutes", "covered"]


@dataclass
class Cases:
    """Cases as read: ``frame`` (id, time (UTC, NaT when invalid), kind, lon, lat), the source and the problems."""

    frame: pd.DataFrame
    source: str
    problems: list[Problem] = field(default_factory=list)


def _text(frame: pd.DataFrame, name: str, default) -> pd.Series:
    """Return column ``name`` as text (``default`` where missing or when the column is absent)."""
    col = find_column(frame, name)
    if col is None:
        return pd.Series(np.full(len(frame), default, dtype=object))
    s = frame[col].reset_index(drop=True)
    if s.dtype != object and not pd.api.types.is_string_dtype(s.dtype):
        s = V.to_text(s)                       # numbers: exact text ('1001', not '1001.0')
    return s.fillna(default) if default is not None else s


def _xy(raw) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the cases' lon/lat columns (or point geometries) as float arrays, None when absent."""
    f = raw.frame
    lon_c, lat_c = find_column(f, *LON_NAMES), find_column(f, *LAT_NAMES)
    if lon_c is not None and lat_c is not None:
        return (pd.to_numeric(f[lon_c], errors="coerce").to_numpy(float),
                pd.to_numeric(f[lat_c], errors="coerce").to_numpy(float))
    geoms = geometries_of(raw)
    if geoms is None:
        return None
    import shapely
    pts = np.where(shapely.get_type_id(geoms) == 0, geoms, None)
    return shapely.get_x(pts), shapely.get_y(pts)


def parse_times(values) -> pd.Series:
    """Parse ISO 8601 texts to UTC timestamps (naive times are taken as UTC); NaT where invalid.

    pandas' ISO 8601 parser (a pyarrow strptime fast path measured slower, and it is lenient:
    Feb 30, second 60).
    """
    return pd.to_datetime(pd.Series(values).reset_index(drop=True), format="ISO8601", utc=True, errors="coerce")


def read_cases(src, name: str | None = None, limits=None) -> Cases:
    """Read a cases file (or frame); raise ``DataError`` when it cannot be routed at all.

    Parameters
    ----------
    src : path or DataFrame
        The cases: ``id``, ``time``, ``kind``, ``lon``/``lat`` (or point geometries).
    name : str, optional
        The client's name of the file, for messages.
    limits : geo.formats.ReadLimits, optional
        The read limits (default ``DEFAULT_LIMITS``).
    """
    raw = read_input(src, "cases", name=name, limits=limits)
    problems = list(raw.problems)
    if not raw.ok:
        raise DataError(problems)
    xy = _xy(raw)
    if xy is None:
        raise DataError(problems + [V.file_problem(raw.source, "missing_column", f"{raw.source} has no lon/lat "
                                                   "columns and no point geometry: each case needs its location")])
    f = raw.frame
    rows = V.Rows(raw.source, raw.src_row, raw.tabular)
    ids = _text(f, "id", None) if find_column(f, "id") is not None else pd.Series(raw.src_row.astype(str))
    tcol = find_column(f, "time")
    text = _text(f, "time", None)
    times = parse_times(text.array) if tcol is not None else pd.Series(pd.NaT, index=range(len(f)),
                                                                  dtype="datetime64[ns, UTC]")
    frame = pd.DataFrame({"id": ids.array, "time": times.array, "time_text": text.array,
                          "kind": _text(f, "kind", "").array, "lon": xy[0], "lat": xy[1]})
    bad_xy = ~(np.isfinite(xy[0]) & np.isfinite(xy[1]))
    if bad_xy.any():
        problems.append(V.rows_problem(rows, np.flatnonzero(bad_xy), "bad_coordinates",
                                       f"{rows.count(int(bad_xy.sum()))} without valid coordinates: routed to no grid"))
    if tcol is None:
        problems.append(V.file_problem(raw.source, "missing_column", f"{raw.source} has no 'time' column: every "
                                       "case is routed by the live plan and none falls in a period", fatal=False))
    else:
        bad_t = frame["time"].isna().to_numpy() & pd.notna(f[tcol]).to_numpy()
        if bad_t.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(bad_t), "bad_time",
                                           f"{rows.count(int(bad_t.sum()))} with a time that is not ISO 8601: "
                                           "routed by the live plan, left out of any period"))
    extra = [c for c in data_columns(f) if str(c).lower() not in {"id", "time", "kind"}]
    frame.attrs["extra_columns"] = extra
    return Cases(frame, raw.source, problems)


def fixed_plan(plan_id: str, index) -> Resolver:
    """Return the resolver that routes every case by one plan (the given or live plan)."""
    return lambda t: (plan_id, index)


def _plans_by_row(times: pd.Series, plan_for_time: Resolver) -> tuple[np.ndarray, dict]:
    """Resolve the plan of each row, asking ``plan_for_time`` once per distinct day (None: no time)."""
    has_t = times.notna().to_numpy()
    day = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[D]").astype(np.int64)
    which = np.empty(len(times), dtype=object)
    indexes: dict = {}
    if has_t.any():
        uniq, inv = np.unique(day[has_t], return_inverse=True)
        pids = np.empty(len(uniq), dtype=object)
        for k, d in enumerate(uniq):
            pids[k], idx = plan_for_time(pd.Timestamp(np.datetime64(int(d), "D")).tz_localize("UTC"))
            indexes[pids[k]] = idx
        which[has_t] = pids[inv]
    if not has_t.all():
        pid, indexes[pid] = plan_for_time(None)
        which[~has_t] = pid
    return which, indexes


def route_cases(cases: pd.DataFrame, plan_for_time: Resolver, coords: str = "wgs84") -> pd.DataFrame:
    """Route every case to its grid, unit, workers and nearest station.

    Parameters
    ----------
    cases : DataFrame
        ``read_cases(...).frame``: id, time, kind, lon, lat.
    plan_for_time : callable
        ``t -> (plan id, GridIndex)``; ``t`` is a day (UTC Timestamp) or None.
    coords : str
        The coordinate system of lon/lat.

    Returns
    -------
    DataFrame
        ``ROUTED_COLUMNS`` in input order (``time`` parsed, UTC; ``time_text`` as given, when
        read by ``read_cases``); grid fields null outside every grid; ``minutes`` rounded as
        lookup rounds them; ``worker_ids`` joined with ``;``.
    """
    n = len(cases)
    plan_of, indexes = _plans_by_row(cases["time"], plan_for_time) if n else (np.zeros(0, object), {})
    lon, lat = cases["lon"].to_numpy(float), cases["lat"].to_numpy(float)
    fields = ("grid_code", "village_code", "township_code", "county_code", "worker_ids", "station_id")
    cats: dict[str, dict] = {f: {} for f in ("plan",) + fields}   # value -> category number, per column
    codes = {f: np.full(n, -1, dtype=np.int64) for f in cats}
    minutes, covered = np.full(n, np.nan), np.zeros(n, dtype=bool)
    micro = np.full(n, None, dtype=object) if any(getattr(i, "micro", None) is not None
                                                  for i in indexes.values()) else None
    for pid, idx in indexes.items():
        sel = np.flatnonzero(plan_of == pid)
        if not len(sel):
            continue
        res = idx.lookup(lon[sel], lat[sel], coords)
        g, s = res["grid"], res["station"]
        codes["plan"][sel] = cats["plan"].setdefault(pid, len(cats["plan"]))
        per_grid = {f: [a[f] for a in idx.grid_attrs] for f in fields[:4]}
        per_grid["worker_ids"] = [";".join(a["worker_ids"]) or None for a in idx.grid_attrs]
        for f, vals in per_grid.items():
            codes[f][sel] = _lookup_codes(cats[f], vals)[g]           # g == -1 -> the trailing -1
        sid = _lookup_codes(cats["station_id"], list(idx.station_ids))
        codes["station_id"][sel] = np.where(g >= 0, sid[s], -1)
        ok = (g >= 0) & (s >= 0)
        minutes[sel] = np.where(ok, round_minutes(res["minutes"]), np.nan)
        covered[sel] = ok & res["covered"]
        if micro is not None and "micro_grid_code" in res:
            micro[sel] = res["micro_grid_code"]
    frame = cases[["id", "time", "kind", "lon", "lat"]].reset_index(drop=True).copy()
    for f in cats:
        names = np.array(list(cats[f]), dtype=object) if cats[f] else np.zeros(0, dtype=object)
        frame[f] = pd.Categorical.from_codes(codes[f], categories=pd.Index(names, dtype=object))
    frame["minutes"], frame["covered"] = minutes, covered
    if micro is not None:                 # plans with micro-grids: the building head's micro-grid too
        frame.insert(frame.columns.get_loc("grid_code") + 1, "micro_grid_code", micro)
    if "time_text" in cases:
        frame["time_text"] = cases["time_text"].array
    return frame


def _lookup_codes(cat: dict, values: list) -> np.ndarray:
    """Category numbers of ``values`` (None -> -1), adding new values to ``cat``; one trailing -1 appended."""
    out = [(-1 if v is None else cat.setdefault(v, len(cat))) for v in values]
    return np.array(out + [-1], dtype=np.int64)
