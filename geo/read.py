"""Read a file the client named (or an in-memory frame) into a ``Raw`` frame and its problems.

This is the one reading path: it opens only what ``geo.formats`` recognises, each format with
its own reader.

Every file — and every member of a zip — is recognised by its content first; a zip is unpacked
within the limits into a private temporary directory under names of our own; the file is then
opened by the reader of its format alone (``geo.readers``, ``geo.gpkg``, ``geo.csvread``). The
row/feature and vertex limits are checked on what was read. Problems name the client's file
(``name=`` when the file on disk is a server-side copy), never a server path.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import shapely

from gridplan.geo import validate as V
from gridplan.geo.columns import geometries_of
from gridplan.geo.csvread import read_csv
from gridplan.geo.formats import DEFAULT_LIMITS, NAMES, ReadLimits, human_bytes, sniff, too_large
from gridplan.geo.gpkg import read_gpkg
from gridplan.geo.problems import Problem
from gridplan.geo.readers import read_gdal, read_geojson, read_parquet
from gridplan.geo.source import Raw, failed, from_frame, source_name
from gridplan.geo.unzip import unpack

log = logging.getLogger("gridplan.read")
ROLES = ("boundaries", "households", "facilities", "roster")
# what a file's name says it is; content wins, but text that is not what its name says is refused
_NAMED = {".geojson": "geojson", ".json": "geojson", ".gpkg": "gpkg", ".shp": "shp", ".fgb": "fgb",
          ".parquet": "parquet", ".geoparquet": "parquet", ".pq": "parquet", ".zip": "zip", ".pbf": "pbf"}


def _refused(problem: Problem, member: str | None) -> Raw:
    if member is not None:
        problem = dataclasses.replace(problem, message=problem.message.replace(
            f"{problem.source}", f"{problem.source} (zip member {member})", 1))
    return Raw(None, problem.source, True, np.zeros(0, np.int64), None, [problem])


def _open(path: Path, source: str, role: str, layer: str | None, numeric_columns: Iterable[str],
          limits: ReadLimits, workdir: Path, member: str | None = None) -> Raw:
    """Recognise the file at ``path`` and read it with its own reader.

    ``member`` is set when the file came out of a zip, under that name.
    """
    sniffed = sniff(path, source)
    if sniffed.problem is not None:
        return _refused(sniffed.problem, member)
    fmt = sniffed.format
    named = _NAMED.get(path.suffix.lower())
    if fmt == "csv" and named is not None:
        return _refused(V.file_problem(source, "unreadable", f"cannot read {source}: it is named like "
                                                             f"{NAMES[named]} but holds plain text"), member)
    if fmt == "zip":
        if member is not None:
            return _refused(V.file_problem(source, "unsupported_format", f"cannot read {source}: a zip inside a "
                                                                         "zip is not accepted"), member)
        up = unpack(path, source, workdir, limits)
        if up.problem is not None:
            return _refused(up.problem, None)
        return _open(up.path, source, role, layer, numeric_columns, limits, workdir, up.member)
    size = os.path.getsize(path)
    if size > limits.max_bytes:
        return _refused(too_large(source, human_bytes(size), "max_bytes", limits.max_bytes), member)
    if fmt == "pbf":
        return _refused(V.file_problem(source, "unsupported_format", f"cannot read {source}: it is an OSM road "
                                                                     "network (PBF); give it as the network file"),
                        member)
    if fmt == "csv":
        return read_csv(path, source, numeric_columns)
    if fmt == "geojson":
        return read_geojson(path, source, limits)
    if fmt == "gpkg":
        return read_gpkg(path, source, role, layer, limits)
    if fmt == "parquet":
        return read_parquet(path, source, limits)
    return read_gdal(path, fmt, source, workdir, limits)


def _check_size(raw: Raw, limits: ReadLimits) -> None:
    """Rows and vertices against the limits (appends a fatal ``too_large`` problem)."""
    n = len(raw.frame)
    if n > limits.max_rows:
        raw.problems.append(too_large(raw.source, f"{n:,} {'rows' if raw.tabular else 'features'}", "max_rows",
                                      limits.max_rows))
        return
    geoms = None if raw.tabular else geometries_of(raw)  # tables: rows (and bytes) bound their WKT already
    if geoms is not None and len(geoms):
        vertices = int(shapely.get_num_coordinates(np.asarray(geoms, dtype=object)).sum())
        if vertices > limits.max_vertices:
            raw.problems.append(too_large(raw.source, f"{vertices:,} vertices", "max_vertices", limits.max_vertices))


def read_path(path: Path, role: str, layer: str | None, numeric_columns: Iterable[str],
              limits: ReadLimits = DEFAULT_LIMITS, source: str | None = None) -> Raw:
    """Read the file at ``path`` (see the module docstring); never raises for bad data."""
    source = source or path.name or role
    if not path.exists():
        return failed(source, "unreadable", f"{source}: file not found")
    if not path.is_file():
        return failed(source, "unreadable", f"cannot read {source}: not a file")
    if path.stat().st_size == 0:
        return failed(source, "empty", f"{source} is empty (0 bytes)")
    with tempfile.TemporaryDirectory(prefix="gridplan-read-") as work:
        try:
            return _open(path, source, role, layer, numeric_columns, limits, Path(work))
        except MemoryError:
            return failed(source, "too_large", f"cannot read {source}: it needs more memory than there is")
        except Exception:  # bad input never crashes; operators get the traceback in the log
            log.warning("reading %s (%s) failed", source, role, exc_info=True)
            return failed(source, "unreadable", f"cannot read {source}: the file could not be read")


def read_input(src, role: str, layer: str | None = None, numeric_columns: Iterable[str] = (),
               limits: ReadLimits | None = None, name: str | None = None) -> Raw:
    """One input — a path or a (Geo)DataFrame — as a ``Raw``; ``name`` is the client's file name."""
    limits = limits or DEFAULT_LIMITS
    source = name or source_name(src, role)
    if isinstance(src, pd.DataFrame):
        raw = from_frame(src, source)
    elif isinstance(src, (str, os.PathLike)):
        raw = read_path(Path(src), role, layer, numeric_columns, limits, source)
    else:
        return failed(source, "unreadable", f"{role}: cannot read an object of type {type(src).__name__} "
                                            "(give a file path or a (Geo)DataFrame)")
    if raw.frame is not None:
        if len(raw.frame) == 0:
            raw.problems.append(V.file_problem(source, "empty",
                                               f"{source} has no {'rows' if raw.tabular else 'features'}"))
        else:
            _check_size(raw, limits)
    return raw


def read_table(src, *, role: str, layer: str | None = None, numeric_columns: Iterable[str] = (),
               limits: ReadLimits | None = None, name: str | None = None
               ) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Read one input as it is (source column names kept). Never raises on bad data.

    ``role`` ("boundaries", "households", "facilities", "roster", or any other word such as
    "points") names in-memory inputs in problems and, for a multi-layer file, picks the first
    polygon layer (boundaries) or point layer (anything else) when ``layer`` is not given.

    CSV columns are read as text except the known numeric ones (coordinates, counts, plus
    ``numeric_columns``), so codes and ids keep their leading zeros. Returns (frame, problems);
    the frame is None when the file could not be read. ``frame.attrs`` holds ``source`` (file
    name), ``tabular`` (True: rows are named "row N", 1-based) and ``skipped_rows``.
    """
    raw = read_input(src, str(role or "input"), layer, numeric_columns, limits, name)
    if raw.frame is not None:
        gap = np.ones(int(raw.src_row.max(initial=0)) + 1, dtype=bool)  # row numbers not read (skipped)
        gap[0] = False
        gap[raw.src_row] = False
        skipped = np.flatnonzero(gap)
        raw.frame.attrs.update(source=raw.source, tabular=raw.tabular, skipped_rows=skipped.tolist())
    return raw.frame, raw.problems
