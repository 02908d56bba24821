"""One reader per recognised vector format; each opens only its own format and never raises.

- GeoJSON: parsed in Python (orjson + shapely), no GDAL; its ``crs`` member may only *name* a
  CRS (``EPSG:n``, ``urn:ogc:def:crs:EPSG::n``, CRS84) — a ``link`` or URL CRS is refused, never
  fetched. Without one, GeoJSON means WGS 84 lon/lat (RFC 7946).
- GeoParquet / Parquet: pyarrow; the row count and uncompressed size are checked from the footer
  before any column is read, then recounted batch by batch (one batch held) since footers lie;
  a file whose column chunks live in other files is refused.
- Shapefile and FlatGeobuf: GDAL through pyogrio, from a private directory holding only the
  recognised file (and a Shapefile's checked sidecars), under ``geo.gdal_guard``'s thread-local
  lock-down. A Shapefile's ``.prj`` is parsed by pyproj, not GDAL.

GeoPackage has its own module (``geo.gpkg``), CSV/TSV too (``geo.csvread``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gridplan.geo import validate as V
from gridplan.geo.formats import NAMES, ReadLimits, human_bytes, too_large
from gridplan.geo.gdal_guard import gdal_locked_down
from gridplan.geo.problems import Problem
from gridplan.geo.source import Raw, failed, from_frame

_CRS_NAME = re.compile(r"^(?:EPSG:{1,2}(\d+)|urn:ogc:def:crs:EPSG:[\d.]*:(\d+)|urn:ogc:def:crs:OGC:[\d.]*:CRS84|"
                       r"OGC:CRS84|CRS84)$", re.IGNORECASE)
SHP_SIDECARS = (".shx", ".dbf", ".cpg")


# ----------------------------------------------------------------------------- GeoJSON
def geojson_crs(member, source: str) -> tuple[CRS | None, Problem | None]:
    """Return the CRS a GeoJSON ``crs`` member names (WGS 84 when absent); a linked CRS is a problem."""
    if member is None:
        return CRS.from_epsg(4326), None
    props = member.get("properties") if isinstance(member, dict) else None
    kind = str(member.get("type", "")).lower() if isinstance(member, dict) else ""
    name = props.get("name") if isinstance(props, dict) else None
    if kind != "name" or not isinstance(name, str):
        return None, V.file_problem(source, "unsafe_input",
                                    f"cannot read {source}: its \"crs\" is a {kind or 'malformed'} reference, not a "
                                    "CRS name; a linked CRS is never fetched — name it (e.g. \"EPSG:4490\") "
                                    "or omit it")
    m = _CRS_NAME.match(name.strip())
    if not m:
        return None, V.file_problem(source, "unreadable", f"cannot read {source}: its \"crs\" names {name[:80]!r}, "
                                                          "which is not an EPSG code or CRS84")
    code = m.group(1) or m.group(2)
    try:
        return (CRS.from_epsg(int(code)) if code else CRS.from_epsg(4326)), None
    except Exception:  # an unknown EPSG code
        return None, V.file_problem(source, "unreadable", f"cannot read {source}: its \"crs\" names an unknown "
                                                          f"code {name[:40]!r}")


def read_geojson(path: Path, source: str, limits: ReadLimits) -> Raw:
    """Read a GeoJSON FeatureCollection (or one Feature) as a ``Raw``; see the module docstring."""
    import orjson

    size = os.path.getsize(path)
    if size > limits.max_json_bytes:
        return failed(source, "too_large", too_large(source, f"{human_bytes(size)} of GeoJSON (read whole into "
                                                             "memory; use GeoPackage, FlatGeobuf or GeoParquet for "
                                                             "large data)", "max_json_bytes",
                                                     limits.max_json_bytes).message)
    data = Path(path).read_bytes()
    try:
        doc = orjson.loads(data[3:] if data[:3] == b"\xef\xbb\xbf" else data)
    except orjson.JSONDecodeError as exc:
        return failed(source, "unreadable", f"cannot read {source}: not valid JSON (line {exc.lineno}, "
                                            f"column {exc.colno})")
    del data
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind == "FeatureCollection" and isinstance(doc.get("features"), list):
        feats = doc["features"]
    elif kind == "Feature":
        feats = [doc]
    else:
        return failed(source, "unreadable", f"cannot read {source}: JSON, but not a GeoJSON FeatureCollection")
    crs, problem = geojson_crs(doc.get("crs"), source)
    if problem is not None:
        return Raw(None, source, False, np.zeros(0, np.int64), None, [problem])
    if len(feats) > limits.max_rows:
        return failed(source, "too_large", too_large(source, f"{len(feats):,} features", "max_rows",
                                                     limits.max_rows).message)
    return from_frame(_geojson_frame(feats, crs), source, _bad_features(feats, source))


def _point_xy(g) -> tuple[float, float] | None:
    """(x, y) of a plain GeoJSON Point, else None (the general parser takes it)."""
    if g.get("type") != "Point":
        return None
    c = g.get("coordinates")
    if isinstance(c, list) and len(c) == 2 and all(type(v) in (int, float) for v in c):
        return float(c[0]), float(c[1])
    return None


def _geojson_frame(feats: list, crs: CRS | None) -> gpd.GeoDataFrame:
    import orjson

    n = len(feats)
    props = []
    xy = np.full((n, 2), np.nan)
    is_point = np.zeros(n, bool)
    other: dict[int, str] = {}
    for i, f in enumerate(feats):
        f = f if isinstance(f, dict) else {}
        p = f.get("properties")
        p = dict(p) if isinstance(p, dict) else {}
        if "id" in f and "id" not in p:
            p["id"] = f["id"]
        props.append(p)
        g = f.get("geometry")
        if isinstance(g, dict):
            pt = _point_xy(g)
            if pt is not None:
                xy[i], is_point[i] = pt, True
            else:
                other[i] = orjson.dumps(g).decode()
    df = pd.DataFrame.from_records(props, index=pd.RangeIndex(n)) if props else pd.DataFrame()
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].map(lambda v: v if not isinstance(v, (dict, list)) else str(v))
    geoms = np.full(n, None, dtype=object)
    geoms[is_point] = shapely.points(xy[is_point])
    if other:
        idx = np.fromiter(other.keys(), dtype=np.int64, count=len(other))
        geoms[idx] = shapely.from_geojson(np.array(list(other.values()), dtype=object), on_invalid="ignore")
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms), crs=crs)


def _bad_features(feats: list, source: str) -> list[Problem]:
    bad = [i for i, f in enumerate(feats) if not isinstance(f, dict) or
           (f.get("geometry") is not None and not isinstance(f.get("geometry"), dict))]
    if not bad:
        return []
    rows = V.Rows.simple(source, len(feats), tabular=False)
    return [V.rows_problem(rows, bad, "bad_geometry", f"{rows.count(len(bad))} that are not GeoJSON features or "
                                                      "whose geometry is not a GeoJSON object; taken as empty")]


# ----------------------------------------------------------------------------- Parquet
def read_parquet(path: Path, source: str, limits: ReadLimits) -> Raw:
    """Read a GeoParquet (or plain Parquet table) as a ``Raw``; limits checked from the footer first."""
    import pyarrow.parquet as pq

    try:
        md = pq.ParquetFile(path).metadata
        if md.num_rows > limits.max_rows:
            return failed(source, "too_large", too_large(source, f"{md.num_rows:,} rows", "max_rows",
                                                         limits.max_rows).message)
        size = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
        if size > limits.max_bytes:
            return failed(source, "too_large", too_large(source, f"{human_bytes(size)} uncompressed", "max_bytes",
                                                         limits.max_bytes).message)
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            if any(rg.column(j).file_path for j in range(rg.num_columns)):
                return failed(source, "unsafe_input", f"cannot read {source}: its columns point at other files; "
                                                      "only self-contained Parquet files are read")
        inflated = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):  # footers lie: count, one batch held
            inflated += batch.nbytes
            if inflated > limits.max_bytes:
                return failed(source, "too_large", too_large(source, f"more than {human_bytes(limits.max_bytes)} "
                                                                     "uncompressed", "max_bytes",
                                                             limits.max_bytes).message)
        try:
            frame = gpd.read_parquet(path)
        except ValueError as exc:
            if "geo" not in str(exc).lower():
                raise
            frame = pd.read_parquet(path)  # a plain table (e.g. lon/lat columns)
    except Exception:  # pyarrow's own errors; the client gets plain words
        return failed(source, "unreadable", f"cannot read {source}: the Parquet file is damaged or its geometry "
                                            "metadata is not valid GeoParquet")
    return from_frame(frame, source)


# ----------------------------------------------------------------------------- Shapefile, FlatGeobuf
def _link(src: Path, dest: Path) -> None:
    try:
        os.symlink(os.path.abspath(src), dest)
    except OSError:
        import shutil

        shutil.copyfile(src, dest)


def stage_shapefile(shp: Path, workdir: Path) -> Path:
    """Stage the main file and its sidecars (found next to it, any case) as ``workdir/data.*``."""
    dest = workdir / "data.shp"
    if shp.parent.resolve() == workdir.resolve():
        return shp
    _link(shp, dest)
    siblings = {p.name.lower(): p for p in shp.parent.iterdir()} if shp.parent.is_dir() else {}
    for ext in SHP_SIDECARS + (".prj",):
        p = siblings.get((shp.stem + ext).lower())
        if p is not None and p.is_file():
            _link(p, workdir / f"data{ext}")
    return dest


def _prj_crs(shp: Path, source: str) -> tuple[CRS | None, list[Problem]]:
    prj = shp.with_suffix(".prj")
    if not prj.is_file():
        return None, []
    text = prj.read_bytes()[:65536].decode("utf-8", errors="replace").strip()
    try:
        return CRS.from_wkt(text), []
    except Exception:
        return None, [V.file_problem(source, "bad_prj", f"{source}: the .prj does not hold a CRS definition (WKT); "
                                                        "read without a CRS", fatal=False)]


def read_gdal(path: Path, fmt: str, source: str, workdir: Path, limits: ReadLimits) -> Raw:
    """Read a Shapefile (``fmt`` "shp") or FlatGeobuf ("fgb") through pyogrio, locked down."""
    import pyogrio

    problems: list[Problem] = []
    crs = None
    if fmt == "shp":
        path = stage_shapefile(path, workdir)
        crs, problems = _prj_crs(path, source)
        prj = path.with_suffix(".prj")
        if prj.exists():
            prj.unlink()  # GDAL reads the geometry and attributes; pyproj read the CRS
    else:
        dest = workdir / "data.fgb"
        if path != dest:
            _link(path, dest)
        path = dest
    try:
        with gdal_locked_down():
            n = pyogrio.read_info(path)["features"]
            if n > limits.max_rows:
                return failed(source, "too_large", too_large(source, f"{n:,} features", "max_rows",
                                                             limits.max_rows).message)
            frame = pyogrio.read_dataframe(path, use_arrow=True, max_features=limits.max_rows + 1)
    except Exception:  # GDAL's messages carry paths and internals; plain words instead
        return failed(source, "unreadable", f"cannot read {source}: {NAMES[fmt]} that is damaged or incomplete"
                                            + (" (it needs its .shx and .dbf)" if fmt == "shp" else ""))
    if crs is not None:
        frame = frame.set_crs(crs, allow_override=True)
    return from_frame(frame, source, problems)
