"""Reading one input (a file the client named, or a frame) into a ``Raw`` frame with its problems.

Files are recognised by their content (``geo.formats``) and opened only with their own reader.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd

from geo import validate as V
from geo.columns import NUMERIC_NAMES
from geo.problems import Problem
from geo.source import Raw, failed, from_frame, short_error, source_name

ROLES = ("boundaries", "households", "facilities", "roster")
CSV_EXTS = {".csv", ".tsv", ".tab", ".txt"}
PARQUET_EXTS = {".parquet", ".geoparquet", ".pq"}


def sniff_csv(path: Path) -> tuple[str, str, list[str]]:
    """(encoding, delimiter, header names) from the first 64 KiB."""
    with open(path, "rb") as f:
        head = f.read(65536)
    cut = head.rfind(b"\n")
    sample = head[: cut if cut > 0 else len(head)]
    try:
        text = sample.decode("utf-8")
        enc = "utf-8"
    except UnicodeDecodeError:
        text = sample.decode("gb18030", errors="replace")
        enc = "gb18030"
    text = text.lstrip("\ufeff")
    first = text.splitlines()[0] if text.strip() else ""
    if path.suffix.lower() in (".tsv", ".tab"):
        delim = "\t"
    else:
        counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
        delim = max(counts, key=counts.get) if max(counts.values()) > 0 else ","
    header = next(csv.reader([first], delimiter=delim)) if first else []
    return enc, delim, header


def read_csv(path: Path, source: str, numeric_columns: Iterable[str]) -> Raw:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    enc, delim, header = sniff_csv(path)
    if not header:
        return failed(source, "empty", f"{source} is empty: no header and no rows")
    numeric = {n.strip().lower() for n in NUMERIC_NAMES} | {str(n).strip().lower() for n in numeric_columns if n}
    column_types = {h: pa.string() for h in header if h.strip().lower() not in numeric}
    skipped: list[int | None] = []

    def on_bad_row(row):
        skipped.append(row.number)
        return "skip"

    def read(threads: bool):
        skipped.clear()
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=enc, use_threads=threads),
            parse_options=pacsv.ParseOptions(delimiter=delim, invalid_row_handler=on_bad_row),
            convert_options=pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=True),
        )

    try:
        table = read(True)
        if skipped and any(n is None for n in skipped):
            table = read(False)  # single-threaded reading knows the line numbers of bad rows
    except Exception as exc:  # noqa: BLE001 - the reader's message is the user's answer
        return failed(source, "unreadable", f"cannot read {source} as {'TSV' if delim == chr(9) else 'CSV'}: "
                                           f"{short_error(exc)}")
    frame = table.to_pandas()
    frame.columns = [str(c).strip() for c in frame.columns]
    n = len(frame)
    problems: list[Problem] = []
    if skipped:
        bad = np.array(sorted(int(s) - 1 for s in skipped if s is not None), dtype=np.int64)  # data rows
        src_row = np.setdiff1d(np.arange(1, n + len(skipped) + 1), bad)[:n]
        rows = V.Rows(source, bad if len(bad) else np.zeros(0, np.int64), True)
        problems.append(V.rows_problem(rows, np.arange(len(bad)), "malformed_rows",
                                       f"{rows.count(len(skipped))} with the wrong number of fields; skipped"))
    else:
        src_row = np.arange(1, n + 1, dtype=np.int64)
    return Raw(frame, source, True, src_row, None, problems)



def pick_layer(path: Path, role: str, source: str) -> tuple[str | None, list[Problem]]:
    import pyogrio

    layers = pyogrio.list_layers(path)
    if len(layers) <= 1:
        return None, []
    want = "Polygon" if role == "boundaries" else "Point"
    names = [str(r[0]) for r in layers]
    pick = next((str(r[0]) for r in layers if r[1] and want in str(r[1])), names[0])
    msg = (f"{source} has {len(names)} layers ({', '.join(names[:10])}); read '{pick}', the first with "
           f"{want.lower()} geometries (pass layer= to choose another)")
    return pick, [V.file_problem(source, "layer_chosen", msg, fatal=False)]


def read_path(path: Path, role: str, layer: str | None, numeric_columns: Iterable[str]) -> Raw:
    source = path.name or role
    if not path.exists():
        return failed(source, "unreadable", f"{source}: file not found ({path})")
    if path.is_file() and path.stat().st_size == 0:
        return failed(source, "empty", f"{source} is empty (0 bytes)")
    ext = path.suffix.lower()
    if ext in CSV_EXTS:
        return read_csv(path, source, numeric_columns)
    problems: list[Problem] = []
    try:
        if ext in PARQUET_EXTS:
            try:
                frame = gpd.read_parquet(path)
            except ValueError as exc:
                if "geo" not in str(exc).lower():
                    raise
                frame = pd.read_parquet(path)  # a plain table (e.g. lon/lat columns)
        else:
            import pyogrio

            if layer is None:
                layer, problems = pick_layer(path, role, source)
            frame = pyogrio.read_dataframe(path, layer=layer, use_arrow=True)
    except Exception as exc:  # noqa: BLE001
        return failed(source, "unreadable", f"cannot read {source}: {short_error(exc)}")
    return from_frame(frame, source, problems)



def read_input(src, role: str, layer: str | None = None, numeric_columns: Iterable[str] = ()) -> Raw:
    source = source_name(src, role)
    if isinstance(src, pd.DataFrame):
        raw = from_frame(src, source)
    elif isinstance(src, (str, os.PathLike)):
        raw = read_path(Path(src), role, layer, numeric_columns)
    else:
        return failed(source, "unreadable", f"{role}: cannot read an object of type {type(src).__name__} "
                                           "(give a file path or a (Geo)DataFrame)")
    if raw.frame is not None and len(raw.frame) == 0:
        raw.problems.append(V.file_problem(source, "empty", f"{source} has no {'rows' if raw.tabular else 'features'}"))
    return raw


def read_table(src, *, role: str, layer: str | None = None, numeric_columns: Iterable[str] = ()
               ) -> tuple[gpd.GeoDataFrame | pd.DataFrame | None, list[Problem]]:
    """Read one input as it is (source column names kept). Never raises on bad data.

    ``role`` ("boundaries", "households", "facilities", "roster", or any other word such as
    "points") names in-memory inputs in problems and, for a multi-layer file, picks the first
    polygon layer (boundaries) or point layer (anything else) when ``layer`` is not given.

    CSV columns are read as text except the known numeric ones (coordinates, counts, plus
    ``numeric_columns``), so codes and ids keep their leading zeros. Returns (frame, problems);
    the frame is None when the file could not be read. ``frame.attrs`` holds ``source`` (file
    name), ``tabular`` (True: rows are named "row N", 1-based) and ``skipped_rows``.
    """
    raw = read_input(src, str(role or "input"), layer, numeric_columns)
    if raw.frame is not None:
        skipped = np.setdiff1d(np.arange(1, int(raw.src_row.max(initial=0)) + 1), raw.src_row)
        raw.frame.attrs.update(source=raw.source, tabular=raw.tabular, skipped_rows=skipped.tolist())
    return raw.frame, raw.problems
