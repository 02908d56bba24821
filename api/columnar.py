"""Columnar lookup batches: read points from Arrow IPC, (Geo)Parquet or CSV bodies; write answers back.

Media types (``POST /v1/lookup``, chosen by ``Content-Type`` for the request and ``Accept`` for
the answer):

* ``application/vnd.apache.arrow.stream`` — Arrow IPC stream;
* ``application/vnd.apache.parquet`` or ``application/x-parquet`` — Parquet; GeoParquet answers
  carry a point ``geometry`` column (WKB, OGC:CRS84) and the ``geo`` metadata;
* ``text/csv`` — CSV with a header row;
* ``application/json`` — the JSON batch (the default).

Input columns: ``lon`` and ``lat`` (numbers; float64 preferred) and an optional ``id`` echoed
first in the answer; a GeoParquet body may give a point geometry column instead of lon/lat.
Bodies are hostile: the size is capped before parsing (the guard), the row count is checked
before the columns are materialised (Arrow: batch by batch; Parquet: from the footer), and any
malformed body is a :class:`BodyError` that names the problem — never a crash.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa

ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
CSV = "text/csv"
JSON = "application/json"
MEDIA = {ARROW: "arrow", PARQUET: "parquet", "application/x-parquet": "parquet", CSV: "csv", JSON: "json",
         "application/*": "json", "*/*": None}
KIND_MEDIA = {"arrow": ARROW, "parquet": PARQUET, "csv": CSV + "; charset=utf-8", "json": JSON}


class BodyError(ValueError):
    """A columnar body that cannot be read: ``status`` (400 unreadable, 413 too many rows, 422 wrong columns)."""

    def __init__(self, status: int, detail: str, field: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.field = status, detail, field


def request_kind(content_type: str | None) -> str | None:
    """Return the body kind of a ``Content-Type`` ("arrow", "parquet", "csv", "json"); None when unknown."""
    if not content_type:
        return "json"
    mt = content_type.split(";", 1)[0].strip().lower()
    return MEDIA.get(mt) if mt not in ("*/*", "application/*") else None


def answer_kind(accept: str | None, default: str) -> str | None:
    """Pick the answer kind from an ``Accept`` header (q-values honoured); ``default`` for none or ``*/*``.

    Returns None when no acceptable kind is offered (a 406).
    """
    if not accept or not accept.strip():
        return default
    best, best_q = None, 0.0
    for part in accept.split(","):
        bits = [b.strip() for b in part.split(";")]
        mt = bits[0].lower()
        q = 1.0
        for b in bits[1:]:
            if b.startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        kind = default if mt in ("*/*", "application/*") else MEDIA.get(mt)
        if kind is not None and q > best_q:
            best, best_q = kind, q
    return best


def _column(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        raise BodyError(422, f"the body has no {name!r} column (columns: {', '.join(table.column_names[:20]) or 'none'})",
                        name)
    col = table.column(name)
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        raise BodyError(422, f"column {name!r} must hold numbers (float64), not {col.type}", name)
    return col.cast(pa.float64()).to_numpy(zero_copy_only=False)   # nulls -> NaN -> a null answer


def _points(table: pa.Table, cap: int):
    if table.num_rows > cap:
        raise BodyError(413, f"{table.num_rows} points is more than the limit of {cap} per request "
                             "(lookup_max_points_columnar)")
    lon, lat = _column(table, "lon"), _column(table, "lat")
    ids = table.column("id") if "id" in table.column_names else None
    return lon, lat, ids


def read_arrow(body: bytes, cap: int):
    """Read an Arrow IPC stream body: ``(lon, lat, ids or None)``, checking rows batch by batch."""
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(body))
        schema = reader.schema
        missing = [c for c in ("lon", "lat") if schema.get_field_index(c) < 0]
        if missing:
            raise BodyError(422, f"the Arrow stream has no {missing[0]!r} column "
                                 f"(columns: {', '.join(schema.names[:20]) or 'none'})", missing[0])
        keep = [c for c in ("lon", "lat", "id") if schema.get_field_index(c) >= 0]
        batches, rows = [], 0
        for batch in reader:
            rows += batch.num_rows
            if rows > cap:
                raise BodyError(413, f"more than {cap} points in one request: the limit "
                                     "(lookup_max_points_columnar)")
            batch.validate(full=True)
            batches.append(batch.select(keep))
        table = pa.Table.from_batches(batches) if batches else \
            pa.table({c: pa.array([], schema.field(c).type) for c in keep})
    except BodyError:
        raise
    except (pa.ArrowException, ValueError, TypeError, OSError, MemoryError) as e:
        raise BodyError(400, f"the body is not a readable Arrow IPC stream: {_msg(e)}") from None
    return _points(table, cap)


def read_parquet(body: bytes, cap: int):
    """Read a (Geo)Parquet body: lon/lat columns, or the GeoParquet primary geometry (points)."""
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(pa.BufferReader(body))
        if f.metadata.num_rows > cap:
            raise BodyError(413, f"{f.metadata.num_rows} points is more than the limit of {cap} per request "
                                 "(lookup_max_points_columnar)")
        names = f.schema_arrow.names
        geo = _geo_column(f.schema_arrow.metadata or {})
        if "lon" not in names and geo in names:
            table = f.read(columns=[geo] + (["id"] if "id" in names else []))
            return _geometry_points(table, geo, cap)
        table = f.read(columns=[c for c in ("lon", "lat", "id") if c in names])
    except BodyError:
        raise
    except (pa.ArrowException, ValueError, TypeError, OSError, MemoryError) as e:
        raise BodyError(400, f"the body is not a readable Parquet file: {_msg(e)}") from None
    return _points(table, cap)


def _geo_column(meta: dict) -> str | None:
    raw = meta.get(b"geo")
    if not raw:
        return None
    try:
        return str(json.loads(raw).get("primary_column") or "geometry")
    except (ValueError, AttributeError):
        raise BodyError(422, "the GeoParquet 'geo' metadata is not valid JSON") from None


def _geometry_points(table: pa.Table, geo: str, cap: int):
    import shapely

    if table.num_rows > cap:
        raise BodyError(413, f"{table.num_rows} points is more than the limit of {cap} per request "
                             "(lookup_max_points_columnar)")
    col = table.column(geo)
    if not pa.types.is_binary(col.type) and not pa.types.is_large_binary(col.type):
        raise BodyError(422, f"geometry column {geo!r} must be WKB", geo)
    try:
        geoms = shapely.from_wkb(col.to_numpy(zero_copy_only=False), on_invalid="raise")
    except Exception:  # shapely raises GEOSException on bad WKB
        raise BodyError(422, f"geometry column {geo!r} holds invalid WKB", geo) from None
    ok = shapely.get_type_id(geoms) == 0
    if not (ok | shapely.is_missing(geoms)).all():
        row = int(np.flatnonzero(~(ok | shapely.is_missing(geoms)))[0])
        raise BodyError(422, f"geometry column {geo!r} row {row}: a point is needed", geo)
    lon = np.where(ok, shapely.get_x(geoms), np.nan)
    lat = np.where(ok, shapely.get_y(geoms), np.nan)
    ids = table.column("id") if "id" in table.column_names else None
    return lon, lat, ids


def read_csv(body: bytes, cap: int):
    """Read a CSV body with a header row holding ``lon``, ``lat`` and optionally ``id`` (kept as text)."""
    import pyarrow.csv as pcsv

    try:
        head = body[:65536].split(b"\n", 1)[0].decode("utf-8-sig", "replace")
        names = [h.strip().strip('"') for h in head.split(",")]
        types = {"lon": pa.float64(), "lat": pa.float64(), "id": pa.string()}
        table = pcsv.read_csv(pa.BufferReader(body), read_options=pcsv.ReadOptions(use_threads=True),
                              convert_options=pcsv.ConvertOptions(
                                  include_columns=[c for c in ("lon", "lat", "id") if c in names],
                                  column_types={c: t for c, t in types.items() if c in names}))
    except (pa.ArrowException, ValueError, TypeError, OSError, MemoryError) as e:
        raise BodyError(422 if "CSV conversion" in str(e) else 400, f"the body is not a readable CSV table: {_msg(e)}") \
            from None
    return _points(table, cap)


READERS = {"arrow": read_arrow, "parquet": read_parquet, "csv": read_csv}


def _msg(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else "unreadable"
    return text[:300]


def with_ids(table: pa.Table, ids) -> pa.Table:
    """Put the request's ``id`` column first in the answer (when it had one)."""
    return table if ids is None else table.add_column(0, "id", ids)


def arrow_stream(tables, schema: pa.Schema):
    """Yield an Arrow IPC stream chunk by chunk: one bytes piece per table of ``tables`` (then the end marker).

    The answer leaves while the next chunk is looked up, and the server never holds the whole answer.
    """
    buf = io.BytesIO()
    writer = pa.ipc.new_stream(pa.PythonFile(buf, mode="w"), schema)
    for t in tables:
        writer.write_table(t)
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    writer.close()
    yield buf.getvalue()


def write_answer(table: pa.Table, kind: str, lon=None, lat=None) -> bytes:
    """Serialize an answer table as ``kind`` ("arrow", "parquet" — GeoParquet when lon/lat are given — or "csv")."""
    if kind == "arrow":
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        return sink.getvalue().to_pybytes()
    if kind == "parquet":
        return _geoparquet(table, lon, lat)
    import pyarrow.csv as pcsv

    from gridplan.geo.lookup_arrow import plain_strings
    buf = io.BytesIO()
    pcsv.write_csv(plain_strings(table), buf)
    return buf.getvalue()


def _geoparquet(table: pa.Table, lon, lat) -> bytes:
    import pyarrow.parquet as pq
    import shapely

    if lon is not None:
        wkb = shapely.to_wkb(shapely.points(lon, lat))   # NaN lon/lat: an empty point
        table = table.append_column("geometry", pa.array(wkb, pa.binary()))
        geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": {
            "encoding": "WKB", "geometry_types": ["Point"]}}}   # no "crs": OGC:CRS84
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"geo": json.dumps(geo).encode()})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression="snappy")
    return buf.getvalue().to_pybytes()
