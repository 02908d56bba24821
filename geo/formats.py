"""What a file is, judged by its content, against the allow-list of input formats; the read limits.

The contract's input list is the allow-list: GeoJSON, GeoPackage, Shapefile (a ``.shp`` with its
sidecars, or zipped), GeoParquet, FlatGeobuf, CSV/TSV, and OSM PBF for networks. ``sniff`` looks
at a file's bytes — never at its name alone, since GDAL itself picks a driver by content — and
answers one of :data:`FORMATS` or refuses it. Anything that could make a reader open another file
or a URL is refused here, before any reader sees the file: XML (a GDAL VRT, under any name), a
VRT marker anywhere in the first megabyte (GDAL's VRT driver claims any file whose header holds
one), and GDAL's other "pointer" formats.

``ReadLimits`` bounds what one input may cost; a file over a limit gets a problem of kind
``too_large`` that names the limit (HTTP answers 413).
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from gridplan.geo import validate as V
from gridplan.geo.problems import Problem

MiB = 1024 * 1024

#: formats a reader exists for ("shp" is a Shapefile's main file; "pbf" only for networks)
FORMATS = ("zip", "geojson", "gpkg", "shp", "fgb", "parquet", "csv", "pbf")
NAMES = {"zip": "a zip archive", "geojson": "GeoJSON", "gpkg": "a GeoPackage", "shp": "a Shapefile",
         "fgb": "FlatGeobuf", "parquet": "(Geo)Parquet", "csv": "CSV/TSV text", "pbf": "an OSM PBF file"}
ACCEPTED = ("GeoJSON, GeoPackage, Shapefile (.shp with its sidecars, or zipped), GeoParquet, FlatGeobuf "
            "or CSV/TSV")

_SCAN = MiB  # how much of every file is searched for markers of reference-following formats
# GDAL drivers that open a file only to follow what it points at; refused under any name.
_MARKERS = re.compile(rb"<\s*OGRVRTDataSource|<\s*VRTDataset|\"gdal_streamed_alg\"|\"gdal_alg\"",
                      re.IGNORECASE)


@dataclass(frozen=True)
class ReadLimits:
    """What one input may cost to read; every limit is named in the problem that refuses a file.

    Parameters
    ----------
    max_bytes : int
        Bytes of one input after decompression (a zip's members, all together).
    max_ratio : float
        Decompressed bytes per byte of a zip archive (a zip bomb inflates far beyond 100:1).
    max_rows : int
        Rows (CSV) or features (vector files) of one input.
    max_vertices : int
        Coordinates of all geometries of one input.
    max_json_bytes : int
        Bytes of a GeoJSON file (parsed whole in memory; larger data belongs in GeoPackage,
        FlatGeobuf or GeoParquet).
    """

    max_bytes: int = 512 * MiB          # the HTTP upload cap; the generated province is 22 MB
    max_ratio: float = 100.0
    max_rows: int = 2_000_000           # over twice the generated province's 932,791 households
    max_vertices: int = 20_000_000
    max_json_bytes: int = 256 * MiB


DEFAULT_LIMITS = ReadLimits()


def too_large(source: str, what: str, limit_name: str, limit) -> Problem:
    """Build the ``too_large`` problem: ``what`` the file holds, and the limit it passes (by name)."""
    shown = f"{limit:,}" if isinstance(limit, int) else f"{limit:g}"
    return V.file_problem(source, "too_large", f"{source} is too large: {what}, over the limit "
                                               f"{limit_name} = {shown}")


def human_bytes(n: int) -> str:
    """Format a byte count for a message: '1.5 MB' or '812 bytes'."""
    return f"{n / MiB:,.1f} MB" if n >= MiB else f"{n:,} bytes"


@dataclass(frozen=True)
class Sniffed:
    """A file's format (one of :data:`FORMATS`) or, when refused, the problem saying why."""

    format: str | None
    problem: Problem | None = None


def _refuse(source: str, message: str, kind: str = "unreadable") -> Sniffed:
    return Sniffed(None, V.file_problem(source, kind, message))


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _tail(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - n))
        return f.read(n)


def sniff(path: Path, source: str) -> Sniffed:
    """Recognise the format of the file at ``path`` from its content (``source`` names it in a refusal).

    Refuses (kind ``unreadable``, or ``unsafe_input`` for references) XML and GDAL VRTs
    under any name, binary files that are none of the accepted formats, and text that is not
    JSON or delimited text.
    """
    head = _head(path, _SCAN)
    if not head:
        return _refuse(source, f"{source} is empty (0 bytes)", "empty")
    if _MARKERS.search(head):
        return _refuse(source, f"cannot read {source}: it is a GDAL virtual dataset (VRT) or pipeline that "
                               "points at other files or URLs; such files are not accepted — send the data itself "
                               f"({ACCEPTED})", "unsafe_input")
    fmt = _binary_format(path, head)
    if fmt is not None:
        return Sniffed(fmt)
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text[:1] == b"<":
        return _refuse(source, f"cannot read {source}: it is XML (a GDAL VRT, GML or KML?), not an accepted input "
                               f"format; send {ACCEPTED}")
    if text[:1] in (b"{", b"["):
        return Sniffed("geojson")
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return _refuse(source, f"cannot read {source}: it is UTF-16 text (Excel's 'Unicode text'); save it as "
                               "CSV UTF-8")
    if b"\x00" in head[:65536]:
        return _refuse(source, f"cannot read {source}: a binary file of a kind that is not accepted; send {ACCEPTED}")
    return Sniffed("csv")


def _binary_format(path: Path, head: bytes) -> str | None:
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:16] == b"SQLite format 3\x00":
        return "gpkg"
    if head[:4] == b"\x00\x00\x27\x0a" and len(head) >= 100:
        return "shp"
    if head[:3] == b"fgb" and head[4:7] == b"fgb":
        return "fgb"
    if head[:4] == b"PAR1" and _tail(path, 4) == b"PAR1":
        return "parquet"
    if is_osm_pbf_head(head):
        return "pbf"
    return None


# ----------------------------------------------------------------------------- OSM PBF
def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while i < len(buf) and shift < 64:
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7
    raise ValueError("truncated varint")


def is_osm_pbf_head(head: bytes) -> bool:
    """Return True when ``head`` (the first bytes of a file) starts an OSM PBF file.

    That is a 4-byte big-endian length, then a BlobHeader whose ``type`` (field 1) is
    "OSMHeader" and whose ``datasize`` (field 3) is a sane blob size.
    """
    if len(head) < 8:
        return False
    (n,) = struct.unpack(">I", head[:4])
    if not 8 <= n <= 64 * 1024 or len(head) < 4 + n:
        return False
    buf, i, kind, size = head[4:4 + n], 0, None, None
    try:
        while i < len(buf):
            key, i = _varint(buf, i)
            field, wire = key >> 3, key & 7
            if wire == 2:
                ln, i = _varint(buf, i)
                if field == 1:
                    kind = buf[i:i + ln]
                i += ln
            elif wire == 0:
                v, i = _varint(buf, i)
                if field == 3:
                    size = v
            else:
                return False
    except ValueError:
        return False
    return kind == b"OSMHeader" and size is not None and 0 < size <= 32 * MiB


def check_network(path, source: str | None = None) -> list[Problem]:
    """Check a road-network file cheaply (the first blob header only).

    Returns no problem for an OSM PBF, one fatal ``network_format`` problem for anything else
    (``unreadable`` when the file is missing).
    """
    p = Path(path)
    source = source or p.name or "network"
    if not p.is_file():
        return [V.file_problem(source, "unreadable", f"{source}: network file not found")]
    if not is_osm_pbf_head(_head(p, 70 * 1024)):
        return [V.file_problem(source, "network_format", f"{source} is not an OpenStreetMap PBF file (.osm.pbf): "
                                                         "its first block is not an OSM header")]
    return []
