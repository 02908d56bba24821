"""Reading inputs into a clean, validated, metric ``Dataset``.

Readers: any vector format GDAL reads through pyogrio (GeoJSON, GeoPackage, Shapefile — also
zipped —, FlatGeobuf, ...), GeoParquet, CSV/TSV (pyarrow; UTF-8 with or without BOM, or GB18030),
and in-memory (Geo)DataFrames.

``load_dataset`` runs every check in ``geo.validate`` and gathers ALL problems before deciding:
with ``strict=True`` any fatal problem raises ``DataError`` carrying every problem found;
``validate`` returns the list and never raises for data problems.

Coordinates: ``coords`` (wgs84|gcj02|bd09|cgcs2000) says what geographic lon/lat in the inputs
mean; the offsets of ``geo.coords`` turn them into WGS 84. A file with a projected CRS is
transformed with pyproj (its CRS wins; no offsets). A file without a CRS whose coordinates look
geographic is taken as lon/lat in ``coords``; one whose coordinates look like metres is fatal unless
``crs=`` names its CRS. Everything ends in one metric CRS (``geo.crs.choose_metric_crs`` on the
boundaries' WGS 84 extent); households keep their WGS 84 ``lon``/``lat``.
"""
from __future__ import annotations

import csv
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from shapely import STRtree

from geo import validate as V
from geo.coords import check_system, geometries_to_wgs84, to_wgs84
from geo.crs import WGS84, choose_metric_crs
from geo.model import FACILITY_COLUMNS, HOUSEHOLD_COLUMNS, ROSTER_COLUMNS, UNIT_COLUMNS, Dataset
from geo.problems import DataError, Problem

ROLES = ("boundaries", "households", "facilities", "roster")
CSV_EXTS = {".csv", ".tsv", ".tab", ".txt"}
PARQUET_EXTS = {".parquet", ".geoparquet", ".pq"}

LON_NAMES = ("lon", "lng", "long", "longitude", "x", "point_x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "point_y", "纬度")
WKT_NAMES = ("geometry", "wkt", "geom", "the_geom")
HH_ID_NAMES = ("id", "hh_id", "household_id")
HH_COUNT_NAMES = ("households", "household", "hh", "户数")
POPULATION_NAMES = ("population", "pop", "人口")
WEIGHT_NAMES = ("weight", "权重")
UNIT_NAME_NAMES = ("village_name", "name", "村名", "名称")
FACILITY_ID_NAMES = ("facility_id", "station_id", "id")
NAME_NAMES = ("name", "名称", "姓名")
EXISTING_NAMES = ("existing", "is_existing", "现有")
WORKER_ID_NAMES = ("worker_id", "id")
ROLE_NAMES = ("role", "岗位")
# CSV columns read with type inference; every other CSV column is read as text (codes keep leading zeros)
NUMERIC_NAMES = set(LON_NAMES + LAT_NAMES + HH_COUNT_NAMES + POPULATION_NAMES + WEIGHT_NAMES
                    + ("target_households",))


# ============================================================================ reading
@dataclass
class _Raw:
    frame: pd.DataFrame | None
    source: str
    tabular: bool                       # rows ("row N", 1-based) rather than features
    src_row: np.ndarray                 # 1-based source row / feature number of each frame row
    crs: CRS | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.frame is not None and not any(p.fatal for p in self.problems)


def _source_name(src, role: str) -> str:
    if isinstance(src, (str, os.PathLike)):
        return os.path.basename(os.fspath(src).rstrip("/\\")) or role
    return role


def _fail(source: str, kind: str, message: str) -> _Raw:
    return _Raw(None, source, True, np.zeros(0, np.int64), None, [V.file_problem(source, kind, message)])


def _sniff_csv(path: Path) -> tuple[str, str, list[str]]:
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


def _read_csv(path: Path, source: str, numeric_columns: Iterable[str]) -> _Raw:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    enc, delim, header = _sniff_csv(path)
    if not header:
        return _fail(source, "empty", f"{source} is empty: no header and no rows")
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
        return _fail(source, "unreadable", f"cannot read {source} as {'TSV' if delim == chr(9) else 'CSV'}: "
                                           f"{_short(exc)}")
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
    return _Raw(frame, source, True, src_row, None, problems)


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    text = msg[0] if msg else type(exc).__name__
    return text if len(text) < 300 else text[:300] + "…"


def _pick_layer(path: Path, role: str, source: str) -> tuple[str | None, list[Problem]]:
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


def _read_path(path: Path, role: str, layer: str | None, numeric_columns: Iterable[str]) -> _Raw:
    source = path.name or role
    if not path.exists():
        return _fail(source, "unreadable", f"{source}: file not found ({path})")
    if path.is_file() and path.stat().st_size == 0:
        return _fail(source, "empty", f"{source} is empty (0 bytes)")
    ext = path.suffix.lower()
    if ext in CSV_EXTS:
        return _read_csv(path, source, numeric_columns)
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
                layer, problems = _pick_layer(path, role, source)
            frame = pyogrio.read_dataframe(path, layer=layer, use_arrow=True)
    except Exception as exc:  # noqa: BLE001
        return _fail(source, "unreadable", f"cannot read {source}: {_short(exc)}")
    return _from_frame(frame, source, problems)


def _from_frame(frame: pd.DataFrame, source: str, problems: list[Problem] | None = None) -> _Raw:
    frame = frame.reset_index(drop=True)
    spatial = isinstance(frame, gpd.GeoDataFrame) and frame._geometry_column_name in frame.columns
    crs = CRS.from_user_input(frame.crs) if spatial and frame.crs is not None else None
    return _Raw(frame, source, not spatial, np.arange(1, len(frame) + 1, dtype=np.int64), crs, problems or [])


def _read(src, role: str, layer: str | None = None, numeric_columns: Iterable[str] = ()) -> _Raw:
    source = _source_name(src, role)
    if isinstance(src, pd.DataFrame):
        raw = _from_frame(src, source)
    elif isinstance(src, (str, os.PathLike)):
        raw = _read_path(Path(src), role, layer, numeric_columns)
    else:
        return _fail(source, "unreadable", f"{role}: cannot read an object of type {type(src).__name__} "
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
    raw = _read(src, str(role or "input"), layer, numeric_columns)
    if raw.frame is not None:
        skipped = np.setdiff1d(np.arange(1, int(raw.src_row.max(initial=0)) + 1), raw.src_row)
        raw.frame.attrs.update(source=raw.source, tabular=raw.tabular, skipped_rows=skipped.tolist())
    return raw.frame, raw.problems


# ============================================================================ columns
def _columns(frame: pd.DataFrame) -> list:
    geom = frame._geometry_column_name if isinstance(frame, gpd.GeoDataFrame) else None
    return [c for c in frame.columns if c != geom]


def _find(frame: pd.DataFrame, *names) -> Any:
    """The first column matching one of ``names`` (case-insensitive; also the 10-character
    names Shapefiles truncate to)."""
    low: dict[str, Any] = {}
    for c in _columns(frame):
        low.setdefault(str(c).strip().lower(), c)
    for n in names:
        if not n:
            continue
        k = str(n).strip().lower()
        if k in low:
            return low[k]
        if len(k) > 10 and k[:10] in low:
            return low[k[:10]]
    return None


def _available(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in _columns(frame)]
    return ", ".join(cols[:40]) + (f", … ({len(cols)} columns)" if len(cols) > 40 else "") if cols else "(none)"


def _geometries(raw: _Raw) -> np.ndarray | None:
    """Shapely geometries of a spatial frame, or parsed from a WKT column of a table."""
    f = raw.frame
    if isinstance(f, gpd.GeoDataFrame) and f._geometry_column_name in f.columns:
        return np.asarray(f.geometry.array, dtype=object)
    col = _find(f, *WKT_NAMES)
    if col is None:
        return None
    vals = f[col].to_numpy(dtype=object)
    present = pd.notna(vals)
    if all(isinstance(v, str) for v in vals[present][:1000]):
        text = np.where(present, vals, None)
        return np.asarray(shapely.from_wkt(text, on_invalid="ignore"), dtype=object)
    if shapely.is_geometry(vals[present]).all():
        return np.where(present, vals, None)
    return None


# ============================================================================ CRS helpers
_local = threading.local()


def _transformer(src: CRS, dst: CRS) -> Transformer:
    """A cached always-xy Transformer (building one costs ~0.1 s); one cache per thread, as pyproj
    objects should not be shared between threads."""
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    key = (CRS.from_user_input(src).to_wkt(), CRS.from_user_input(dst).to_wkt())
    t = cache.get(key)
    if t is None:
        if len(cache) > 32:
            cache.clear()
        t = cache[key] = Transformer.from_crs(src, dst, always_xy=True)
    return t


def _transform(src: CRS, dst: CRS, x, y) -> tuple[np.ndarray, np.ndarray]:
    return _transformer(src, dst).transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))


def _transform_geoms(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    t = _transformer(src, dst)

    def xy(c: np.ndarray) -> np.ndarray:
        x, y = t.transform(c[:, 0], c[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms, dtype=object), xy)


def _is_wgs84(crs: CRS) -> bool:
    return crs.equals(WGS84, ignore_axis_order=True)


def _projected_problem(source: str, crs: CRS | None) -> Problem:
    """Coordinates in metres where lon/lat are expected: no CRS at all, or a wrong geographic one."""
    if crs is None:
        return V.file_problem(source, "no_crs_projected",
                              f"{source}: coordinates look projected (metres) but the file has no CRS; "
                              "add a .prj / give --crs")
    return V.file_problem(source, "crs_mismatch",
                          f"{source}: the file says its CRS is {crs.name} (lon/lat in degrees) but its coordinates "
                          "look projected (metres); fix the file's CRS (.prj)")


# ============================================================================ boundaries
@dataclass
class _Units:
    geoms: np.ndarray              # WGS 84 (after offsets), None where unusable
    alive: np.ndarray
    attrs: pd.DataFrame            # canonical attribute columns, full length
    rows: V.Rows
    problems: list[Problem]


def _prepare_units(raw: _Raw, code_field: str, coords: str, override: CRS | None) -> _Units | None:
    problems: list[Problem] = []
    f = raw.frame
    src = raw.source
    n = len(f)
    geoms = _geometries(raw)
    code_col = _find(f, code_field)
    codes = V.to_text(f[code_col]) if code_col is not None else pd.Series([np.nan] * n, dtype="str")
    rows = V.Rows(src, raw.src_row, raw.tabular,
                  ids=codes.to_numpy(dtype=object) if code_col is not None else None)
    if code_col is None:
        problems.append(V.file_problem(src, "missing_column",
                                       f"{src} has no '{code_field}' column (the unit code); available columns: "
                                       f"{_available(f)}. Name the code column with --code-field"))
    else:
        miss = codes.isna().to_numpy()
        if miss.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(miss), "missing_code",
                                           f"{rows.count(int(miss.sum()))} without a '{code_col}' code; every unit "
                                           "needs one", fatal=True))
        problems += V.check_duplicates(codes, rows, "duplicate_code", "unit code", code_col)
    if geoms is None:
        problems.append(V.file_problem(src, "wrong_geometry",
                                       f"{src} has no geometry: boundaries must be polygons (GeoJSON, GeoPackage, "
                                       f"Shapefile, GeoParquet...); columns: {_available(f)}"))
        return _Units(np.full(n, None, object), np.zeros(n, bool), pd.DataFrame(index=range(n)), rows, problems)

    tid0 = shapely.get_type_id(geoms)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    coll = ~missing & (tid0 == 7)
    if coll.any():  # a collection counts as its polygonal parts
        geoms = geoms.copy()
        geoms[coll] = V.polygonal_part(geoms[coll])
    tid = shapely.get_type_id(geoms)
    polygonal = ~missing & ((tid == 3) | (tid == 6))
    wrong = ~missing & ~polygonal
    if missing.any():
        problems.append(V.rows_problem(rows, np.flatnonzero(missing), "missing_geometry",
                                       f"{rows.count(int(missing.sum()))} without a geometry; dropped"))
    if wrong.any():
        names = ", ".join(_TYPE_NAMES.get(int(k), str(k)) for k in sorted(set(tid0[wrong].tolist())))
        problems.append(V.rows_problem(rows, np.flatnonzero(wrong), "wrong_geometry",
                                       f"{rows.count(int(wrong.sum()))} of type {names}: boundaries must be polygons",
                                       fatal=True))
    alive = polygonal & codes.notna().to_numpy()
    geoms = np.where(alive, geoms, None)

    # invalid polygons, repaired in the file's own coordinates (so the reason names its coordinates)
    geoms, ok, reps = V.repair_polygons(geoms, rows)
    problems += reps
    alive &= ok

    # CRS -> WGS 84
    crs = raw.crs or override
    live = np.flatnonzero(alive)
    if len(live):
        b = shapely.bounds(geoms[live])
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        if (crs is None or crs.is_geographic) and V.looks_projected(cx, cy):
            problems.append(_projected_problem(src, crs))
            alive[:] = False
        elif crs is None or crs.is_geographic:
            swap = (np.abs(cy) > 90) & (np.abs(cx) <= 90) & (np.abs(b[:, 0]) <= 90) & (np.abs(b[:, 2]) <= 90)
            if swap.any():
                geoms[live[swap]] = shapely.transform(geoms[live[swap]], lambda c: c[:, ::-1])
                problems.append(V.rows_problem(rows, live[swap], "swapped_lonlat",
                                               f"{rows.count(int(swap.sum()))} with latitudes beyond ±90: lon/lat look "
                                               "swapped; swapped them"))
                b = shapely.bounds(geoms[live])
            out = ((np.abs(b[:, [0, 2]]) > 180).any(axis=1)) | ((np.abs(b[:, [1, 3]]) > 90).any(axis=1))
            if out.any():
                problems.append(V.rows_problem(rows, live[out], "invalid_coordinates",
                                               f"{rows.count(int(out.sum()))} with lon/lat beyond ±180/±90",
                                               fatal=True))
                alive[live[out]] = False
            live = np.flatnonzero(alive)
            if crs is not None and not _is_wgs84(crs):
                geoms[live] = _transform_geoms(geoms[live], crs, WGS84)
            geoms[live] = geometries_to_wgs84(geoms[live], coords)
        else:
            geoms[live] = _transform_geoms(geoms[live], crs, WGS84)
            bad = ~np.isfinite(shapely.bounds(geoms[live])).all(axis=1)
            if bad.any():
                problems.append(V.rows_problem(rows, live[bad], "invalid_coordinates",
                                               f"{rows.count(int(bad.sum()))} that cannot be transformed from {crs.name} "
                                               "to WGS 84", fatal=True))
                alive[live[bad]] = False

    # attributes
    attrs = pd.DataFrame({"unit_code": codes})
    name_col = _find(f, *UNIT_NAME_NAMES)
    attrs["village_name"] = V.to_text(f[name_col]) if name_col is not None else pd.Series([None] * n, dtype=object)
    digits = codes.str.fullmatch(r"\d{12}").fillna(False).to_numpy(dtype=bool) if code_col is not None else np.zeros(n, bool)
    for col, width in (("township_code", 9), ("county_code", 6)):
        c = _find(f, col)
        given = V.to_text(f[c]) if c is not None else pd.Series([np.nan] * n, dtype="str")
        derived = codes.str.slice(0, width).where(digits, np.nan)
        attrs[col] = given.where(given.notna(), derived)
    kind_col = _find(f, "kind")
    if kind_col is not None:
        kinds, bad = V.parse_words(f[kind_col], V.KIND_WORDS, None)
        bad &= alive
        if bad.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(bad), "bad_kind",
                                           f"{rows.count(int(bad.sum()))} with a '{kind_col}' that is neither urban nor "
                                           "rural; treated as unknown (the global target applies)"))
        attrs["kind"] = pd.Series(kinds, dtype=object)
    else:
        attrs["kind"] = pd.Series([None] * n, dtype=object)
    tcol = _find(f, "target_households")
    if tcol is not None:
        num, bad_text = V.to_numeric(f[tcol])
        with np.errstate(invalid="ignore"):
            bad = alive & (bad_text | ~(np.isnan(num) | (np.isfinite(num) & (num > 0))))
        if bad.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(bad), "bad_target",
                                           f"{rows.count(int(bad.sum()))} with a '{tcol}' that is not a number > 0; "
                                           "the global target applies"))
        attrs["target_households"] = np.where(bad, np.nan, num)
    else:
        attrs["target_households"] = np.nan
    return _Units(geoms, alive, attrs, rows, problems)


_TYPE_NAMES = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
               5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


def _finish_units(u: _Units, metric: CRS) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    idx = np.flatnonzero(u.alive)
    geoms = _transform_geoms(u.geoms[idx], WGS84, metric) if len(idx) else np.zeros(0, object)
    if len(geoms):
        bad = ~shapely.is_valid(geoms)
        if bad.any():  # projection can rarely break validity: repair silently
            geoms[bad] = V.polygonal_part(shapely.make_valid(geoms[bad]))
    attrs = u.attrs.iloc[idx].reset_index(drop=True)
    geoms, problems = V.resolve_overlaps(geoms, attrs["unit_code"].to_numpy(dtype=object), u.rows.take(idx))
    gone = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if gone.any():
        geoms = geoms[~gone]
        attrs = attrs[~gone].reset_index(drop=True)
    units = gpd.GeoDataFrame(attrs[UNIT_COLUMNS], geometry=gpd.GeoSeries(geoms, crs=metric), crs=metric)
    units["target_households"] = units["target_households"].astype(float)
    units["kind"] = pd.Series(units["kind"].to_numpy(dtype=object), dtype=object)
    units.loc[units["kind"].isna(), "kind"] = None
    return units, problems


# ============================================================================ points
@dataclass
class _Points:
    raw: _Raw
    rows: V.Rows
    x: np.ndarray                  # geographic lon/lat in `coords` (geographic) or WGS 84 lon/lat
    y: np.ndarray
    alive: np.ndarray
    geographic: bool               # True: x/y still need the `coords` offsets
    swapped: np.ndarray            # rows whose lon/lat were swapped for |lat| > 90
    problems: list[Problem]
    has_location: bool = True


def _point_xy(raw: _Raw, role: str, lon_field, lat_field
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, list[Problem]]:
    """Raw x/y of every row (NaN where missing), the mask of non-numeric cells, whether a location
    was found at all, and problems (wrong geometry types, missing columns)."""
    f = raw.frame
    n = len(f)
    src = raw.source
    nan = np.full(n, np.nan)
    no = np.zeros(n, bool)
    geoms = None
    if isinstance(f, gpd.GeoDataFrame) and f._geometry_column_name in f.columns:
        geoms = np.asarray(f.geometry.array, dtype=object)
        if (shapely.is_missing(geoms) | shapely.is_empty(geoms)).all() and _find(f, lon_field, *LON_NAMES) is not None:
            geoms = None  # an empty geometry column next to lon/lat columns: use the columns
    if geoms is not None and not lon_field:
        tid = shapely.get_type_id(geoms)
        ngeom = shapely.get_num_geometries(geoms)
        single_multi = (tid == 4) & (ngeom == 1)
        if single_multi.any():
            geoms = geoms.copy()
            geoms[single_multi] = shapely.get_geometry(geoms[single_multi], 0)
            tid = shapely.get_type_id(geoms)
        present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        wrong = present & (tid != 0)
        problems = []
        if wrong.any():
            rows = V.Rows(src, raw.src_row, raw.tabular)
            names = ", ".join(_TYPE_NAMES.get(int(k), str(k)) for k in sorted(set(tid[wrong].tolist())))
            problems.append(V.rows_problem(rows, np.flatnonzero(wrong), "wrong_geometry",
                                           f"{rows.count(int(wrong.sum()))} of type {names}: {role} must be points",
                                           fatal=True))
        pts = np.where(present & (tid == 0), geoms, None)
        return shapely.get_x(pts), shapely.get_y(pts), no, True, problems
    lon_col = _find(f, lon_field) if lon_field else _find(f, *LON_NAMES)
    lat_col = _find(f, lat_field) if lat_field else _find(f, *LAT_NAMES)
    if lon_col is None or lat_col is None:
        if geoms is None and _geometries(raw) is not None and not (lon_field or lat_field):
            g = _geometries(raw)
            raw.frame = gpd.GeoDataFrame(f.drop(columns=[_find(f, *WKT_NAMES)]), geometry=gpd.GeoSeries(g),
                                         crs=raw.crs)
            return _point_xy(raw, role, lon_field, lat_field)
        wanted = (f"'{lon_field or 'lon'}' and '{lat_field or 'lat'}'" if (lon_field or lat_field)
                  else "lon/lat (or x/y, lng, longitude/latitude, 经度/纬度)")
        return nan, nan, no, False, [V.file_problem(src, "missing_column",
                                                    f"{src} has no point geometry and no {wanted} columns; "
                                                    f"available columns: {_available(f)}")]
    x, bx = V.to_numeric(f[lon_col])
    y, by = V.to_numeric(f[lat_col])
    return x, y, bx | by, True, []


def _prepare_points(raw: _Raw, role: str, rows: V.Rows, coords: str, override: CRS | None,
                    lon_field=None, lat_field=None, need_location: bool = True) -> _Points:
    n = len(raw.frame)
    x, y, bad_text, found, problems = _point_xy(raw, role, lon_field, lat_field)
    alive = np.ones(n, bool)
    none = np.zeros(n, bool)
    if not found:
        if need_location:
            return _Points(raw, rows, x, y, np.zeros(n, bool), True, none, problems, False)
        msg = f"{raw.source} has no home locations (no point geometry or lon/lat columns); workers are kept without one"
        return _Points(raw, rows, x, y, alive, True, none, [V.file_problem(raw.source, "missing_location", msg,
                                                                           fatal=False)], False)
    if any(p.fatal for p in problems):
        return _Points(raw, rows, x, y, np.zeros(n, bool), True, none, problems)
    alive, ps = V.check_missing_coordinates(x, y, bad_text, rows, alive, drop=need_location)
    problems += ps
    fin = np.isfinite(x) & np.isfinite(y)
    crs = raw.crs or override
    swapped = none
    if (crs is None or crs.is_geographic) and V.looks_projected(x[alive & fin], y[alive & fin]):
        problems.append(_projected_problem(raw.source, crs))
        return _Points(raw, rows, x, y, np.zeros(n, bool), True, none, problems)
    if crs is None or crs.is_geographic:
        x, y, ok, swapped, ps = V.check_geographic(x, y, rows, alive & fin)
        problems += ps
        if need_location:
            alive &= ok
        else:
            x, y = np.where(ok, x, np.nan), np.where(ok, y, np.nan)
        if crs is not None and not _is_wgs84(crs):
            x, y = _transform(crs, WGS84, x, y)
        return _Points(raw, rows, x, y, alive, True, swapped, problems)
    x, y = _transform(crs, WGS84, x, y)
    bad = alive & fin & ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        problems.append(V.rows_problem(rows, np.flatnonzero(bad), "invalid_coordinates",
                                       f"{rows.count(int(bad.sum()))} that cannot be transformed from {crs.name} to "
                                       "WGS 84; dropped"))
        if need_location:
            alive &= ~bad
    return _Points(raw, rows, x, y, alive, False, swapped, problems)


@dataclass
class _Located:
    lon: np.ndarray
    lat: np.ndarray
    mx: np.ndarray
    my: np.ndarray
    unit_idx: np.ndarray
    problems: list[Problem]
    points: np.ndarray              # metric shapely points (None where there is no location)


def _locate_points(p: _Points, coords: str, metric: CRS, units: gpd.GeoDataFrame | None,
                   tree: STRtree | None, role: str, check_outside: bool = True) -> _Located:
    """WGS 84 lon/lat, metric x/y and containing unit of every row; swaps lon/lat where only the
    swapped point falls inside the boundaries."""
    problems: list[Problem] = []
    if p.geographic:
        lon, lat = to_wgs84(p.x, p.y, coords)
    else:
        lon, lat = p.x.copy(), p.y.copy()
    to_metric = _transformer(WGS84, metric)
    mx, my = to_metric.transform(lon, lat)
    n = len(lon)
    unit_idx = np.full(n, -1, dtype=np.int64)
    has_units = units is not None and len(units) > 0
    live = p.alive & np.isfinite(mx) & np.isfinite(my)
    codes = units["unit_code"].to_numpy(dtype=object) if has_units else None
    points = np.full(n, None, dtype=object)
    li = np.flatnonzero(live)
    points[li] = shapely.points(mx[li], my[li])
    if has_units:
        unit_idx[li] = V.locate(points[li], units.geometry.array, codes, tree)
        if p.geographic:
            cand = np.flatnonzero(live & (unit_idx < 0) & ~p.swapped & (np.abs(p.x) <= 90))
            if len(cand):
                slon, slat = to_wgs84(p.y[cand], p.x[cand], coords)
                smx, smy = to_metric.transform(slon, slat)
                sidx = V.locate(shapely.points(smx, smy), units.geometry.array, codes, tree)
                inside = sidx >= 0
                if inside.any():
                    k = cand[inside]
                    lon[k], lat[k], mx[k], my[k], unit_idx[k] = slon[inside], slat[inside], smx[inside], smy[inside], sidx[inside]
                    points[k] = shapely.points(mx[k], my[k])
                    problems.append(V.swap_problem(p.rows, k, "boundaries", int(inside.sum())))
    if p.swapped.any():
        sw = np.flatnonzero(p.swapped & p.alive)
        if len(sw):
            problems.append(V.swap_problem(p.rows, sw, "latitude", int((unit_idx[sw] >= 0).sum()) if has_units else None))
    if has_units and check_outside:
        out = live & (unit_idx < 0)
        if out.any():
            k = int(out.sum())
            share = k / max(int(live.sum()), 1)
            hint = (f" — {share:.0%} of all; check --coords (gcj02/bd09?) and the files' CRS"
                    if share > 0.5 else "")
            what = "they get no grid" if role == "households" else "kept"
            problems.append(V.rows_problem(p.rows, np.flatnonzero(out), "outside_units",
                                           f"{p.rows.count(k)} {'lies' if k == 1 else 'lie'} outside every unit ({what}){hint}"))
    return _Located(lon, lat, mx, my, unit_idx, problems, points)


def _ids(raw: _Raw, names: tuple, explicit: str | None, role: str, what: str
         ) -> tuple[pd.Series | None, Any, list[Problem]]:
    """(id texts or None, the id column, problems: missing explicit column)."""
    f = raw.frame
    if explicit:
        col = _find(f, explicit)
        if col is None:
            return None, None, [V.file_problem(raw.source, "missing_column",
                                               f"{raw.source} has no '{explicit}' column ({what}); available columns: "
                                               f"{_available(f)}")]
    else:
        col = _find(f, *names)
    if col is None:
        return None, None, []
    return V.to_text(f[col]), col, []


def _id_checks(ids: pd.Series | None, col, rows: V.Rows, what: str) -> list[Problem]:
    if ids is None:
        return []
    problems = []
    miss = ids.isna().to_numpy()
    if miss.any():
        problems.append(V.rows_problem(rows, np.flatnonzero(miss), "missing_id",
                                       f"{rows.count(int(miss.sum()))} without a {what} (empty '{col}')", fatal=True))
    problems += V.check_duplicates(ids, rows, "duplicate_id", what, col)
    return problems


def _row_ids(raw: _Raw) -> pd.Series:
    return pd.Series(raw.src_row.astype(str), dtype="str")


def _no_valid(source: str, what: str) -> Problem:
    return V.file_problem(source, "no_valid_rows", f"{source} has no usable {what} left after dropping bad rows")


# ============================================================================ the dataset
def _empty_units(crs) -> gpd.GeoDataFrame:
    df = pd.DataFrame({c: pd.Series(dtype=object) for c in UNIT_COLUMNS})
    df["target_households"] = df["target_households"].astype(float)
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _empty_households(crs) -> gpd.GeoDataFrame:
    df = pd.DataFrame({"hh_id": pd.Series(dtype="str"), "households": pd.Series(dtype=np.int64),
                       "population": pd.Series(dtype=float), "weight": pd.Series(dtype=float),
                       "unit_idx": pd.Series(dtype=np.int64), "lon": pd.Series(dtype=float),
                       "lat": pd.Series(dtype=float), "src_row": pd.Series(dtype=np.int64)})
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _parse_crs(crs) -> CRS | None:
    if crs is None or (isinstance(crs, str) and not crs.strip()):
        return None
    try:
        return CRS.from_user_input(crs)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"unknown CRS {crs!r}: {_short(exc)}") from None


def load_dataset(boundaries, households, facilities=None, roster=None, network=None, *,
                 coords: str = "wgs84", code_field: str = "village_code", id_field: str | None = None,
                 lon_field: str | None = None, lat_field: str | None = None, crs=None,
                 strict: bool = True) -> Dataset:
    """Read, validate and project every input; see the module docstring and ``geo.model``.

    Raises ``DataError`` (carrying every problem found) when a problem is fatal and ``strict``;
    with ``strict=False`` returns the (possibly partial) Dataset with its problems. Raises
    ``ValueError`` for usage errors (unknown ``coords`` or ``crs``).
    """
    coords = check_system(coords)
    override = _parse_crs(crs)
    code_field = code_field or "village_code"
    problems: list[Problem] = []
    sources: dict[str, str] = {}
    numeric = [c for c in (lon_field, lat_field) if c]

    # ---- read everything first, so every unreadable file is reported at once
    raws: dict[str, _Raw | None] = {}
    for role, src in (("boundaries", boundaries), ("households", households),
                      ("facilities", facilities), ("roster", roster)):
        if src is None:
            raws[role] = None
            if role in ("boundaries", "households"):
                problems.append(V.file_problem(role, "missing_file", f"no {role} given"))
            continue
        raw = _read(src, role, numeric_columns=numeric)
        sources[role] = raw.source
        problems += raw.problems
        raws[role] = raw if raw.ok else None

    # ---- boundaries (in WGS 84) -> the metric CRS
    u = None
    if raws["boundaries"] is not None:
        u = _prepare_units(raws["boundaries"], code_field, coords, override)
        problems += u.problems
        if not u.alive.any() and not any(p.fatal for p in u.problems):
            problems.append(_no_valid(u.rows.source, "units"))

    # ---- households (raw lon/lat)
    hp = None
    hh_ids = hh_col = None
    if raws["households"] is not None:
        raw = raws["households"]
        hh_ids, hh_col, ps = _ids(raw, HH_ID_NAMES, id_field, "households", "household id")
        problems += ps
        if not ps:
            rows = V.Rows(raw.source, raw.src_row, raw.tabular,
                          ids=hh_ids.to_numpy(dtype=object) if hh_ids is not None else None)
            problems += _id_checks(hh_ids, hh_col, rows, "household id")
            hp = _prepare_points(raw, "households", rows, coords, override, lon_field, lat_field)
            problems += hp.problems

    metric = _choose_crs(u, hp, coords)
    units = _empty_units(metric)
    tree = None
    if u is not None and metric is not None and u.alive.any():
        units, ps = _finish_units(u, metric)
        problems += ps
        if len(units):
            tree = STRtree(np.asarray(units.geometry.array, dtype=object))
    if metric is None:
        metric = WGS84

    hh = _empty_households(metric)
    if hp is not None and hp.has_location and not any(q.fatal for q in hp.problems):
        hh, ps = _finish_households(hp, hh_ids, coords, metric, units if u is not None else None, tree)
        problems += ps

    fac = ros = None
    if raws["facilities"] is not None:
        fac, ps = _load_facilities(raws["facilities"], coords, override, metric, units if u is not None else None,
                                   tree, lon_field, lat_field)
        problems += ps
    if raws["roster"] is not None:
        ros, ps = _load_roster(raws["roster"], coords, override, metric, lon_field, lat_field)
        problems += ps

    net = None
    if network is not None:
        net = os.fspath(network)
        sources["network"] = _source_name(network, "network")
        if not Path(net).is_file():
            problems.append(V.file_problem(sources["network"], "unreadable",
                                           f"{sources['network']}: network file not found ({net})"))
        elif not net.lower().endswith(".pbf"):
            problems.append(V.file_problem(sources["network"], "network_format",
                                           f"{sources['network']} is not an .osm.pbf file; road travel may fail",
                                           fatal=False))

    ds = Dataset(units=units, households=hh, crs=metric, problems=problems, facilities=fac, roster=ros,
                 network=net, code_field=code_field, id_field=str(hh_col) if hh_col is not None else None,
                 sources=sources)
    if strict and ds.fatal:
        raise DataError(problems)
    return ds


def _choose_crs(u: _Units | None, hp: _Points | None, coords: str) -> CRS | None:
    if u is not None and u.alive.any():
        b = shapely.total_bounds(u.geoms[u.alive])
        if np.isfinite(b).all():
            return choose_metric_crs(b)
    if hp is not None and hp.has_location and hp.alive.any():
        x, y = hp.x[hp.alive], hp.y[hp.alive]
        if hp.geographic:
            x, y = to_wgs84(x, y, coords)
        fin = np.isfinite(x) & np.isfinite(y)
        if fin.any():
            return choose_metric_crs((x[fin].min(), y[fin].min(), x[fin].max(), y[fin].max()))
    return None


def _finish_households(hp: _Points, ids: pd.Series | None, coords: str, metric: CRS,
                       units: gpd.GeoDataFrame | None, tree) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    raw, rows = hp.raw, hp.rows
    f = raw.frame
    problems: list[Problem] = []
    alive = hp.alive.copy()
    col = _find(f, *HH_COUNT_NAMES)
    if col is not None:
        counts, keep, ps = V.check_counts(f[col], rows, alive, str(col))
        problems += ps
        alive &= keep
    else:
        counts = np.ones(len(f), dtype=np.int64)
    col = _find(f, *POPULATION_NAMES)
    if col is not None:
        pop, ps = V.check_nonnegative(f[col], rows, alive, str(col), np.nan, "bad_population")
        problems += ps
    else:
        pop = np.full(len(f), np.nan)
    col = _find(f, *WEIGHT_NAMES)
    if col is not None:
        weight, ps = V.check_nonnegative(f[col], rows, alive, str(col), 0.0, "bad_weight")
        problems += ps
    else:
        weight = np.zeros(len(f))
    hp.alive = alive
    loc = _locate_points(hp, coords, metric, units, tree, "households")
    problems += loc.problems
    keep = np.flatnonzero(alive & (loc.points != None))  # noqa: E711
    if len(keep) == 0 and len(f):
        problems.append(_no_valid(raw.source, "households"))
    hh_id = (ids if ids is not None else _row_ids(raw)).iloc[keep].reset_index(drop=True)
    df = pd.DataFrame({
        "hh_id": hh_id.astype("str"),
        "households": counts[keep],
        "population": pop[keep].astype(float),
        "weight": weight[keep].astype(float),
        "unit_idx": loc.unit_idx[keep],
        "lon": loc.lon[keep], "lat": loc.lat[keep],
        "src_row": raw.src_row[keep].astype(np.int64),
    })
    geom = gpd.GeoSeries(loc.points[keep], crs=metric)
    return gpd.GeoDataFrame(df[HOUSEHOLD_COLUMNS], geometry=geom, crs=metric), problems


def _load_facilities(raw: _Raw, coords, override, metric, units, tree, lon_field, lat_field
                     ) -> tuple[gpd.GeoDataFrame | None, list[Problem]]:
    f = raw.frame
    ids, col, problems = _ids(raw, FACILITY_ID_NAMES, None, "facilities", "facility id")
    rows = V.Rows(raw.source, raw.src_row, raw.tabular, ids=ids.to_numpy(dtype=object) if ids is not None else None)
    problems += _id_checks(ids, col, rows, "facility id")
    p = _prepare_points(raw, "facilities", rows, coords, override, lon_field, lat_field)
    problems += p.problems
    if not p.has_location or any(q.fatal for q in p.problems):
        return None, problems
    loc = _locate_points(p, coords, metric, units, tree, "facilities")
    problems += loc.problems
    name_col = _find(f, *NAME_NAMES)
    names = V.to_text(f[name_col]) if name_col is not None else pd.Series([np.nan] * len(f), dtype="str")
    ex_col = _find(f, *EXISTING_NAMES)
    if ex_col is not None:
        existing, bad = V.parse_bool(f[ex_col])
        bad &= p.alive
        if bad.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(bad), "bad_existing",
                                           f"{rows.count(int(bad.sum()))} with an '{ex_col}' value that is not "
                                           "true/false/1/0/yes/no/是/否; taken as false"))
    else:
        existing = np.zeros(len(f), bool)
    keep = np.flatnonzero(p.alive & (loc.points != None))  # noqa: E711
    if len(keep) == 0:
        problems.append(_no_valid(raw.source, "facilities"))
    fid = (ids if ids is not None else _row_ids(raw)).iloc[keep].reset_index(drop=True)
    df = pd.DataFrame({"facility_id": fid.astype("str"),
                       "name": names.iloc[keep].fillna("").reset_index(drop=True).astype("str"),
                       "existing": existing[keep].astype(bool)})
    geom = gpd.GeoSeries(loc.points[keep], crs=metric)
    return gpd.GeoDataFrame(df[FACILITY_COLUMNS], geometry=geom, crs=metric), problems


def _load_roster(raw: _Raw, coords, override, metric, lon_field, lat_field
                 ) -> tuple[gpd.GeoDataFrame | None, list[Problem]]:
    f = raw.frame
    problems: list[Problem] = []
    col = _find(f, *WORKER_ID_NAMES)
    if col is None:
        problems.append(V.file_problem(raw.source, "missing_column",
                                       f"{raw.source} has no 'worker_id' column; available columns: {_available(f)}"))
        return None, problems
    ids = V.to_text(f[col])
    rows = V.Rows(raw.source, raw.src_row, raw.tabular, ids=ids.to_numpy(dtype=object))
    problems += _id_checks(ids, col, rows, "worker id")
    p = _prepare_points(raw, "roster", rows, coords, override, lon_field, lat_field, need_location=False)
    problems += p.problems
    if any(q.fatal for q in p.problems):
        return None, problems
    if p.has_location:
        loc = _locate_points(p, coords, metric, None, None, "roster", check_outside=False)
        mx, my = loc.mx, loc.my
    else:
        mx = my = np.full(len(f), np.nan)
    name_col = _find(f, *NAME_NAMES)
    names = V.to_text(f[name_col]) if name_col is not None else pd.Series([np.nan] * len(f), dtype="str")
    role_col = _find(f, *ROLE_NAMES)
    if role_col is not None:
        roles, bad = V.parse_words(f[role_col], V.ROLE_WORDS, "full")
        if bad.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(bad), "bad_role",
                                           f"{rows.count(int(bad.sum()))} with a '{role_col}' that is neither full nor "
                                           "part; taken as full"))
    else:
        roles = np.full(len(f), "full", dtype=object)
    fin = np.isfinite(mx) & np.isfinite(my)
    geom = np.full(len(f), None, dtype=object)
    geom[fin] = shapely.points(mx[fin], my[fin])
    df = pd.DataFrame({"worker_id": ids.astype("str"), "name": names.fillna("").astype("str"),
                       "role": pd.Series(roles, dtype="str")})
    return gpd.GeoDataFrame(df[ROSTER_COLUMNS], geometry=gpd.GeoSeries(geom, crs=metric), crs=metric), problems


# ============================================================================ barrier lines
LINE_TYPES = ("LineString", "MultiLineString", "LinearRing")
POLYGON_TYPES = ("Polygon", "MultiPolygon")


def load_lines(src, metric: CRS, *, coords: str = "wgs84", crs=None, role: str = "barriers"
               ) -> tuple[np.ndarray, list[Problem]]:
    """Barrier lines (rivers, expressways, railways) in the ``metric`` CRS, and the problems found.

    Any vector format or frame. Lines are kept as they are; polygons (a river drawn as an area)
    stand for their outlines, with a note. The file's CRS wins; lon/lat without a CRS mean
    ``coords`` (GCJ-02 and BD-09 offsets are removed). Features with no usable line are named.
    """
    coords = check_system(coords)
    raw = _read(src, role)
    problems = list(raw.problems)
    empty = np.zeros(0, dtype=object)
    if not raw.ok:
        return empty, problems
    geoms = _geometries(raw)
    rows = V.Rows(raw.source, raw.src_row, raw.tabular)
    if geoms is None or not len(geoms):
        problems.append(V.file_problem(raw.source, "no_geometry", f"{raw.source}: no line geometries to use as "
                                       "barriers (expected LineString/MultiLineString features)"))
        return empty, problems
    types = np.array([g.geom_type if g is not None and not g.is_empty else "" for g in geoms])
    bad = np.flatnonzero(~np.isin(types, LINE_TYPES + POLYGON_TYPES))
    if len(bad):
        problems.append(V.rows_problem(rows, bad, "wrong_geometry_type",
                                       "features that are neither lines nor polygons are ignored as barriers"))
    poly = np.isin(types, POLYGON_TYPES)
    if poly.any():
        problems.append(V.rows_problem(rows, np.flatnonzero(poly), "polygon_barrier",
                                       "polygon barriers stand for their outlines"))
    keep = np.isin(types, LINE_TYPES + POLYGON_TYPES)
    g = np.asarray(geoms, dtype=object)[keep]
    g = np.where(np.isin(types[keep], POLYGON_TYPES), shapely.boundary(g), g)
    if not len(g):
        return empty, problems
    src_crs = raw.crs or _parse_crs(crs)
    if src_crs is None or src_crs.is_geographic:
        b = shapely.total_bounds(g)
        if src_crs is None and (abs(b[[0, 2]]).max() > 180 or abs(b[[1, 3]]).max() > 90):
            problems.append(_projected_problem(raw.source, None))
            return empty, problems
        if src_crs is not None and not _is_wgs84(src_crs):
            g = _transform_geoms(g, src_crs, WGS84)
        g = geometries_to_wgs84(g, coords)
        src_crs = WGS84
    return _transform_geoms(g, src_crs, CRS.from_user_input(metric)), problems


def validate(boundaries, households, facilities=None, roster=None, **options) -> list[Problem]:
    """Every problem found in the inputs (``load_dataset`` options apply); never raises for data
    problems (a usage error — unknown ``coords`` or ``crs`` — still raises ``ValueError``)."""
    options.pop("strict", None)
    return load_dataset(boundaries, households, facilities, roster, strict=False, **options).problems
