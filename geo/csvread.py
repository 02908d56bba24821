"""Read CSV/TSV with pyarrow (no GDAL).

UTF-8 with or without BOM, or GB18030; the delimiter sniffed from the header line; malformed
rows skipped and named; codes kept as text.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

import numpy as np

from gridplan.geo import validate as V
from gridplan.geo.columns import NUMERIC_NAMES
from gridplan.geo.problems import Problem
from gridplan.geo.source import Raw, failed, short_error


def sniff_csv(path: Path) -> tuple[str, str, list[str]]:
    """Sniff (encoding, delimiter, header names) from the first 64 KiB."""
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
    """Read a CSV/TSV file as a ``Raw`` table (rows named 'row N'); never raises for bad data."""
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
    except Exception as exc:  # the reader's message is the user's answer
        return failed(source, "unreadable", f"cannot read {source} as {'TSV' if delim == chr(9) else 'CSV'}: "
                                           f"{short_error(exc, source)}")
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
