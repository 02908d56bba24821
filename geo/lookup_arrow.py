"""Point lookups answered as an Apache Arrow table: the columnar twin of ``GridIndex.lookup_json``.

One row per input point, in input order, with the lookup answer's fields as columns
(``RESULT_FIELDS``: grid_code, village_code, township_code, county_code, workers, worker_ids,
station_id, station_name, minutes, covered) — all null for a point outside every grid (or not a
valid lon/lat), exactly where the JSON answer has ``null``; for a point in a grid with no reachable
station the station columns are null and ``covered`` is false, as in JSON.

Vectorised end to end: the index's ``grid_of`` and ``nearest_station`` over numpy arrays, then
Arrow ``take`` on per-index attribute arrays built once per index. The code columns are
dictionary-encoded (a plan has far fewer grids than a batch has points), which keeps a million
answers small on the wire; ``plain_strings`` turns them into plain strings for CSV.
"""
from __future__ import annotations

import weakref

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gridplan.geo import travel
from gridplan.geo.coords import check_system, to_wgs84
from gridplan.geo.index import GRID_FIELDS, RESULT_FIELDS, GridIndex
from gridplan.geo.vocabulary import WGS84_ALIKE

_ATTRS: "weakref.WeakKeyDictionary[GridIndex, dict]" = weakref.WeakKeyDictionary()
STR = pa.dictionary(pa.int32(), pa.string())
SCHEMA = pa.schema([(f, STR) for f in GRID_FIELDS] + [
    ("workers", pa.int64()), ("worker_ids", pa.list_(pa.string())), ("station_id", STR), ("station_name", STR),
    ("minutes", pa.float64()), ("covered", pa.bool_())])


def _attrs(idx: GridIndex) -> dict:
    """Return the index's grid and station attributes as Arrow arrays (built once per index, then kept)."""
    got = _ATTRS.get(idx)
    if got is None:
        ga = idx.grid_attrs
        got = {f: pa.array([a[f] for a in ga], pa.string()) for f in GRID_FIELDS}
        got["workers"] = pa.array([a["workers"] for a in ga], pa.int64())
        got["worker_ids"] = pa.array([a["worker_ids"] for a in ga], pa.list_(pa.string()))
        got["station_id"] = pa.array(idx.station_ids, pa.string())
        got["station_name"] = pa.array(idx.station_names, pa.string())
        _ATTRS[idx] = got
    return got


def _coded(values: pa.Array, rows: np.ndarray, valid: np.ndarray) -> pa.DictionaryArray:
    """Return a dictionary column: ``values[rows]`` where ``valid``, else null."""
    ind = pa.array(np.where(valid, rows, 0).astype(np.int32), mask=~valid)
    return pa.DictionaryArray.from_arrays(ind, values)


def lookup_table(idx: GridIndex, lon, lat, coords: str = "wgs84") -> pa.Table:
    """Look points up and answer as an Arrow table (module docstring), in input order.

    Parameters
    ----------
    idx : GridIndex
        The plan's index.
    lon, lat : array-like of float
        The points, stated in ``coords``; NaN (or out of range, set NaN by the caller) gives a null row.
    coords : str
        ``wgs84``, ``cgcs2000``, ``gcj02`` or ``bd09``.

    Returns
    -------
    pyarrow.Table
        Columns ``RESULT_FIELDS`` with the types of ``SCHEMA``.
    """
    coords = check_system(coords)
    x = np.asarray(lon, dtype=float).ravel()
    y = np.asarray(lat, dtype=float).ravel()
    if coords not in WGS84_ALIKE:
        x, y = to_wgs84(x, y, coords)
    n = len(x)
    g = idx.grid_of(x, y)
    found = g >= 0
    hit = np.flatnonzero(found)
    s = np.full(n, -1, dtype=np.int64)
    minutes = np.full(n, np.nan)
    if len(hit):
        s[hit], minutes[hit] = idx.nearest_station(x[hit], y[hit], grid=g[hit])
    has_st = s >= 0
    a = _attrs(idx)
    gmask = pa.array(np.where(found, g, 0), mask=~found)
    cols = {f: _coded(a[f], g, found) for f in GRID_FIELDS}
    cols["workers"] = a["workers"].take(gmask)
    cols["worker_ids"] = a["worker_ids"].take(gmask)
    cols["station_id"] = _coded(a["station_id"], s, has_st)
    cols["station_name"] = _coded(a["station_name"], s, has_st)
    m = np.where(has_st, travel.round_minutes(np.where(has_st, minutes, 0.0)), np.nan)
    cols["minutes"] = pa.array(m, mask=~has_st)
    cols["covered"] = pa.array(idx.covered(minutes) & has_st, mask=~found)
    return pa.table([cols[f] for f in RESULT_FIELDS], schema=SCHEMA)


def plain_strings(table: pa.Table, list_sep: str = ";") -> pa.Table:
    """Return ``table`` with dictionary columns decoded and list columns joined by ``list_sep`` (for CSV)."""
    cols, names = [], []
    for name, col in zip(table.column_names, table.columns):
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        elif pa.types.is_list(col.type):
            col = pc.binary_join(col, list_sep)
        cols.append(col)
        names.append(name)
    return pa.table(cols, names=names)
