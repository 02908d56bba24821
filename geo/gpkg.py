"""Read a GeoPackage with Python's sqlite3 alone.

No GDAL, so no GDAL SQL functions, VirtualOGR tables or other GPKG/SQLite tricks can run.

The database is opened read-only and immutable with ``trusted_schema`` off; only a layer that is
a plain table listed in ``gpkg_contents`` is read (a view or a virtual table is refused); the
geometry blobs (GeoPackage header + WKB) are decoded with shapely; the CRS comes from
``gpkg_spatial_ref_sys`` (EPSG code, else its WKT) through pyproj, which never fetches anything.
"""
from __future__ import annotations

import sqlite3
import struct
from pathlib import Path
from urllib.parse import quote

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gridplan.geo import validate as V
from gridplan.geo.formats import ReadLimits, too_large
from gridplan.geo.problems import Problem
from gridplan.geo.source import Raw, failed, from_frame

_ENVELOPE = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True)
    con.execute("PRAGMA trusted_schema = OFF")
    con.execute("PRAGMA query_only = ON")
    return con


def wkb_of(blob) -> bytes | None:
    """Return the WKB inside a GeoPackage geometry blob (None when the blob is not one)."""
    if blob is None or len(blob) < 8 or bytes(blob[:2]) != b"GP":
        return None
    env = _ENVELOPE.get((blob[3] >> 1) & 0x7)
    if env is None or len(blob) < 8 + env:
        return None
    return bytes(blob[8 + env:])


def _crs(con: sqlite3.Connection, srs_id) -> CRS | None:
    row = con.execute("SELECT organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys "
                      "WHERE srs_id = ?", (srs_id,)).fetchone()
    if row is None or srs_id in (0, -1):
        return None
    org, code, definition = row
    if str(org or "").upper() == "EPSG" and isinstance(code, int) and code > 0:
        try:
            return CRS.from_epsg(code)
        except Exception:  # an unknown code: fall back to the definition
            pass
    if not definition or str(definition).strip().lower() == "undefined":
        return None
    return CRS.from_wkt(str(definition))


def _layers(con: sqlite3.Connection) -> list[tuple[str, str]]:
    """(table name, geometry type name or '') of every feature/attribute layer."""
    geom = dict(con.execute("SELECT table_name, geometry_type_name FROM gpkg_geometry_columns").fetchall()) \
        if _has_table(con, "gpkg_geometry_columns") else {}
    rows = con.execute("SELECT table_name FROM gpkg_contents WHERE data_type IN ('features', 'attributes') "
                       "ORDER BY rowid").fetchall()
    return [(str(r[0]), str(geom.get(r[0]) or "")) for r in rows]


def _has_table(con: sqlite3.Connection, name: str) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _plain_table(con: sqlite3.Connection, name: str) -> bool:
    """Return True for a table of data: not a view, not a virtual table (whose module could read elsewhere)."""
    row = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None and not str(row[0] or "").lstrip().upper().startswith("CREATE VIRTUAL")


def _pick(layers: list[tuple[str, str]], role: str, layer: str | None, source: str
          ) -> tuple[str | None, list[Problem]]:
    names = [n for n, _ in layers]
    if layer is not None:
        if layer not in names:
            return None, [V.file_problem(source, "unreadable", f"cannot read {source}: it has no layer '{layer}' "
                                                               f"(layers: {', '.join(names[:10])})")]
        return layer, []
    if len(layers) == 1:
        return names[0], []
    want = "POLYGON" if role == "boundaries" else "POINT"
    pick = next((n for n, g in layers if want in g.upper()), names[0])
    msg = (f"{source} has {len(names)} layers ({', '.join(names[:10])}); read '{pick}', the first with "
           f"{want.lower()} geometries (pass layer= to choose another)")
    return pick, [V.file_problem(source, "layer_chosen", msg, fatal=False)]


def _frame(con: sqlite3.Connection, table: str, geom_col: str | None, srs_id) -> gpd.GeoDataFrame | pd.DataFrame:
    info = con.execute(f"PRAGMA table_info({_q(table)})").fetchall()  # cid, name, type, notnull, default, pk
    pks = [r for r in info if r[5]]
    fid = pks[0][1] if len(pks) == 1 and str(pks[0][2]).upper() == "INTEGER" else None
    cols = [r[1] for r in info if r[1] not in (fid, geom_col)]
    sel = ", ".join([_q(c) for c in cols] + ([_q(geom_col)] if geom_col else [])) or "1"
    rows = con.execute(f"SELECT {sel} FROM {_q(table)}").fetchall()
    data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    df = pd.DataFrame({c: pd.Series(v, dtype=object).infer_objects() for c, v in data.items()},
                      index=pd.RangeIndex(len(rows)))
    if geom_col is None:
        return df
    k = len(cols)
    wkb = np.array([wkb_of(r[k]) for r in rows], dtype=object)
    geoms = shapely.from_wkb(wkb, on_invalid="ignore") if len(wkb) else np.zeros(0, dtype=object)
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms), crs=_crs(con, srs_id))


def read_gpkg(path: Path, source: str, role: str, layer: str | None, limits: ReadLimits) -> Raw:
    """One layer of a GeoPackage as a ``Raw`` (see the module docstring); never raises."""
    try:
        con = _connect(path)
    except sqlite3.Error:
        return failed(source, "unreadable", f"cannot read {source}: the GeoPackage (SQLite) file is damaged")
    try:
        if not _has_table(con, "gpkg_contents"):
            return failed(source, "unreadable", f"cannot read {source}: an SQLite file that is not a GeoPackage "
                                                "(no gpkg_contents table)")
        layers = _layers(con)
        if not layers:
            return failed(source, "empty", f"{source} has no feature layers")
        name, problems = _pick(layers, role, layer, source)
        if name is None:
            return Raw(None, source, True, np.zeros(0, np.int64), None, problems)
        if not _plain_table(con, name):
            return failed(source, "unsafe_input", f"cannot read {source}: layer '{name}' is a view or a virtual "
                                                  "table, not a table of data; only plain tables are read")
        n = con.execute(f"SELECT count(*) FROM {_q(name)}").fetchone()[0]
        if n > limits.max_rows:
            return Raw(None, source, False, np.zeros(0, np.int64), None,
                       problems + [too_large(source, f"{n:,} features", "max_rows", limits.max_rows)])
        g = con.execute("SELECT column_name, srs_id FROM gpkg_geometry_columns WHERE table_name = ?",
                        (name,)).fetchone() if _has_table(con, "gpkg_geometry_columns") else None
        frame = _frame(con, name, g[0] if g else None, g[1] if g else None)
    except (sqlite3.Error, ValueError, struct.error, shapely.errors.ShapelyError):
        return failed(source, "unreadable", f"cannot read {source}: the GeoPackage is damaged or not one "
                                            "this reader understands")
    except Exception as exc:  # pyproj CRS errors and the like: plain words only
        if type(exc).__name__ == "CRSError":
            return failed(source, "unreadable", f"cannot read {source}: its coordinate reference system "
                                                "definition is not valid")
        raise
    finally:
        con.close()
    return from_frame(frame, source, problems)
