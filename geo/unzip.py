"""Unpacking a zipped input within the read limits, before any reader sees it.

A zip may hold one Shapefile (``.shp`` with its ``.shx``/``.dbf``/``.prj``/``.cpg`` sidecars) or
one data file of an accepted format. Members are written under names of our own into a private
directory (a member's own path is never used), so nothing in the archive can point a reader at
another file. Sizes are checked twice: from the central directory before anything is inflated
(total size and the archive's decompression ratio), and again while streaming, since headers lie.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from gridplan.geo import validate as V
from gridplan.geo.formats import ReadLimits, human_bytes, too_large
from gridplan.geo.problems import Problem

SHP_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
DATA_EXTS = (".geojson", ".json", ".gpkg", ".fgb", ".parquet", ".geoparquet", ".csv", ".tsv", ".tab", ".txt")
_CHUNK = 1 << 20
MAX_MEMBERS = 1000  # a shapefile is five files; a directory listing this long is not an input


@dataclass
class Unpacked:
    """Pick the file to read from an unpacked archive.

    Returns the file (the ``.shp`` of a Shapefile, or the one data file) and the member it came
    from, or the problem that refused the archive.
    """

    path: Path | None
    member: str | None
    problem: Problem | None = None


def _fail(source: str, kind: str, message: str) -> Unpacked:
    return Unpacked(None, None, V.file_problem(source, kind, message))


def _ext(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return ("." + base.rsplit(".", 1)[-1].lower()) if "." in base else ""


def _listed(infos: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """Members that hold data: not directories, not macOS resource forks, not hidden files."""
    out = []
    for i in infos:
        base = i.filename.replace("\\", "/").rsplit("/", 1)[-1]
        if i.is_dir() or i.filename.startswith("__MACOSX/") or not base or base.startswith("."):
            continue
        out.append(i)
    return out


def _choose(infos: list[zipfile.ZipInfo], source: str) -> tuple[list[tuple[zipfile.ZipInfo, str]], Problem | None]:
    """(member, extension to write it under) pairs to extract, or the problem with the archive."""
    shp = [i for i in infos if _ext(i.filename) == ".shp"]
    if len(shp) > 1:
        names = ", ".join(i.filename for i in shp[:5])
        return [], V.file_problem(source, "unsupported_format", f"{source} holds {len(shp)} shapefiles ({names}); "
                                                                "zip one shapefile per file")
    if shp:
        stem = shp[0].filename[:-4].lower()
        parts = {}
        for i in infos:
            ext = _ext(i.filename)
            if ext in SHP_PARTS and i.filename[: -len(ext)].lower() == stem:
                parts.setdefault(ext, i)
        return [(i, ext) for ext, i in parts.items()], None
    if len(infos) != 1:
        names = ", ".join(i.filename for i in infos[:5]) + (" …" if len(infos) > 5 else "")
        what = "nothing" if not infos else f"{len(infos)} files ({names})"
        return [], V.file_problem(source, "unsupported_format" if infos else "empty",
                                  f"{source} holds {what}; a zip must hold one shapefile (.shp with its .shx, .dbf "
                                  "and .prj) or one data file")
    ext = _ext(infos[0].filename)
    return [(infos[0], ext if ext in DATA_EXTS else ".dat")], None


def _preflight(zf: zipfile.ZipFile, chosen, source: str, archive_size: int, limits: ReadLimits) -> Problem | None:
    declared = sum(i.file_size for i in zf.infolist())
    if declared > limits.max_bytes:
        return too_large(source, f"it unpacks to {human_bytes(declared)}", "max_bytes", limits.max_bytes)
    if declared > limits.max_ratio * max(archive_size, 1):
        ratio = declared / max(archive_size, 1)
        return too_large(source, f"it unpacks to {human_bytes(declared)} from {human_bytes(archive_size)} "
                                 f"(a ratio of {ratio:,.0f}:1)", "max_ratio", limits.max_ratio)
    for i, _ in chosen:
        if i.flag_bits & 0x1:
            return V.file_problem(source, "unreadable", f"{source}: member {i.filename} is encrypted")
    return None


def _inflate(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: int, archive_size: int,
             done: int, source: str, limits: ReadLimits) -> tuple[int, Problem | None]:
    """Stream one member to ``dest`` counting bytes; stops at its declared size or a limit."""
    written = 0
    with zf.open(info) as src, open(dest, "wb") as out:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                return written, None
            written += len(chunk)
            total = done + written
            if written > info.file_size or total > budget:
                return written, too_large(source, f"it unpacks to more than {human_bytes(budget)}", "max_bytes",
                                          limits.max_bytes)
            if total > limits.max_ratio * max(archive_size, 1):
                return written, too_large(source, f"it unpacks to more than {limits.max_ratio:g} times its "
                                                  f"{human_bytes(archive_size)}", "max_ratio", limits.max_ratio)
            out.write(chunk)


def _declared_members(path: Path) -> int | None:
    """Return the member count of the end-of-central-directory record; None when not found.

    It is read before ``zipfile`` builds an object per member.
    """
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 65557))
        tail = f.read()
    i = tail.rfind(b"PK\x05\x06")
    if i < 0 or len(tail) < i + 12:
        return None
    return int.from_bytes(tail[i + 10:i + 12], "little")


def unpack(path: Path, source: str, workdir: Path, limits: ReadLimits) -> Unpacked:
    """Extract the data of the zip at ``path`` into ``workdir`` (a private, empty directory).

    Returns the path to read (``data.shp`` for a Shapefile, else ``data<ext>``) and the member's
    name, or the problem (``too_large`` naming ``max_bytes``/``max_ratio``, ``unsupported_format``,
    ``unreadable``) — decided from the central directory before inflating, and re-checked while
    streaming.
    """
    archive_size = os.path.getsize(path)
    members = _declared_members(path)
    if members is not None and members > MAX_MEMBERS:
        return _fail(source, "unsupported_format", f"cannot read {source}: it holds {members:,} members (over "
                                                   f"{MAX_MEMBERS:,}); a zip must hold one shapefile or one data file")
    try:
        with zipfile.ZipFile(path) as zf:
            chosen, problem = _choose(_listed(zf.infolist()), source)
            problem = problem or _preflight(zf, chosen, source, archive_size, limits)
            if problem is not None:
                return Unpacked(None, None, problem)
            done, main = 0, None
            for info, ext in chosen:
                dest = workdir / f"data{ext}"
                n, problem = _inflate(zf, info, dest, limits.max_bytes, archive_size, done, source, limits)
                if problem is not None:
                    return Unpacked(None, None, problem)
                done += n
                if main is None or ext == ".shp":
                    main = (dest, info.filename)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, ValueError,
            OSError) as exc:
        detail = "it uses an unsupported compression method" if isinstance(exc, NotImplementedError) else \
            "the archive is damaged or truncated"
        return _fail(source, "unreadable", f"cannot unpack {source}: {detail}")
    if main[0].suffix == ".shp" and not (workdir / "data.dbf").exists():
        return _fail(source, "unreadable", f"{source}: the shapefile {main[1]} has no .dbf in the zip")
    return Unpacked(main[0], main[1])
