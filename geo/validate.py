"""Validation checks as pure functions: arrays and geometries in, repaired data and ``Problem`` records out.

``geo.io.load_dataset`` calls these in order; every function here is usable on ten points in a
test. Nothing raises for bad data. Problems are aggregated: one record per kind and source, with
``count`` and the first :data:`LIST_LIMIT` rows named in the message, so a 1M-row file with 100k
bad rows yields one record, not 100k.

Row naming (``Rows``, in ``geo.problems``, re-exported here): a CSV/table row is ``row N``
(1-based data row); a vector feature is ``feature N`` (0-based) followed by its id when it has
one, e.g. ``feature 3 (id=469025100200)``.
Several rows: ``rows 2, 5, 9 (+41 more)``.

Problem kinds (F = fatal):
  files      unreadable F, empty F, missing_file F, missing_column F, wrong_geometry F,
             no_crs_projected F, crs_mismatch F, no_valid_rows F, network_format F,
             too_large F (a ``geo.formats.ReadLimits`` limit, named in the message; HTTP 413),
             unsafe_input F (a VRT, a linked CRS, a GPKG view: something that points elsewhere),
             unsupported_format F (a zip of several files, a zip in a zip, a PBF as data),
             malformed_rows, layer_chosen, bad_geometry, bad_prj,
             missing_location (roster without homes)
  units      missing_code F, duplicate_code F, empty_polygon F, overlap_too_large F,
             invalid_polygon, overlapping_units, missing_geometry, bad_kind, bad_target
  points     duplicate_id F, missing_id F, bad_households F, zero_households, missing_households,
             missing_coordinates, invalid_coordinates, swapped_lonlat, outside_units,
             bad_population, bad_weight, bad_existing, bad_role
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import shapely
from shapely import STRtree

from gridplan.geo.problems import LIST_LIMIT, Problem, Rows, file_problem, rows_problem  # noqa: F401 - re-exported

MAX_OVERLAP_SHARE = 0.05        # an overlap above this share of the smaller unit is fatal
REPORT_OVERLAP_M2 = 0.01        # overlaps smaller than this are float noise: repaired silently

TRUE_WORDS = {"true", "t", "1", "yes", "y", "是", "有", "existing", "1.0"}
FALSE_WORDS = {"false", "f", "0", "no", "n", "否", "无", "new", "candidate", "0.0"}
KIND_WORDS = {"urban": "urban", "rural": "rural", "城镇": "urban", "城市": "urban", "社区": "urban",
              "农村": "rural", "乡村": "rural", "村": "rural"}
ROLE_WORDS = {"full": "full", "part": "part", "full-time": "full", "part-time": "part",
              "fulltime": "full", "parttime": "part", "专职": "full", "兼职": "part"}


# ----------------------------------------------------------------------------- values
def to_numeric(values) -> tuple[np.ndarray, np.ndarray]:
    """(float array, mask of cells that hold something that is not a number). Empty cells are NaN, not bad."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(s), bool)
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(s), bool)
    num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    nan = np.isnan(num)
    if not nan.any():
        return num, np.zeros(len(s), bool)
    present = s.notna().to_numpy()
    txt = s[nan & present].astype(str).str.strip()
    bad = np.zeros(len(s), bool)
    bad[np.flatnonzero(nan & present)[txt.ne("").to_numpy()]] = True
    return num, bad


def to_text(values) -> pd.Series:
    """Codes and ids as exact strings: 469025100200 (int or float) -> '469025100200'; '' -> missing.

    Text stays as written (leading zeros survive); a float that holds an integer is written without
    its '.0'; a text cell like '469025100200.0' (a spreadsheet export) loses the '.0' too.
    """
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    s = s.reset_index(drop=True)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("str")
    if pd.api.types.is_integer_dtype(s.dtype):
        out = s.astype("str")
        return out.where(s.notna().to_numpy(), np.nan) if s.isna().any() else out
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=float, na_value=np.nan)
        fin = np.isfinite(v)
        integral = fin & (v == np.round(v)) & (np.abs(v) < 2.0 ** 53)
        out = np.full(len(v), np.nan, dtype=object)
        out[integral] = v[integral].astype(np.int64).astype(str)
        other = fin & ~integral
        out[other] = v[other].astype(str)
        return pd.Series(out, dtype="str")
    out = s.astype("str").str.strip()
    out = out.where(s.notna().to_numpy() & out.ne("").to_numpy(), np.nan)
    dotted = out.str.contains(".", regex=False).fillna(False).to_numpy(dtype=bool)
    if dotted.any():
        out[dotted] = out[dotted].str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)
    return out


def parse_words(values, table: dict, default):
    """Map text cells through ``table`` (case-insensitive). Returns (mapped object array, bad mask)."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    s = s.reset_index(drop=True)
    missing = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s.dtype):
        out = np.array(s.to_numpy(dtype=object), dtype=object)
        out[missing] = default
        return out, np.zeros(len(s), bool)
    txt = to_text(s).str.lower()
    mapped = txt.map(table)
    out = np.array(mapped.to_numpy(dtype=object), dtype=object)
    blank = txt.isna().to_numpy()
    bad = ~blank & mapped.isna().to_numpy()
    out[blank | bad] = default
    return out, bad


def parse_bool(values) -> tuple[np.ndarray, np.ndarray]:
    """Cells as booleans (true/false/1/0/yes/no/是/否...). Returns (bool array, bad mask)."""
    table = {w: True for w in TRUE_WORDS} | {w: False for w in FALSE_WORDS}
    out, bad = parse_words(values, table, False)
    return out.astype(bool), bad


# ----------------------------------------------------------------------------- checks on rows
def _duplicated(s: pd.Series) -> np.ndarray:
    """Return the mask of values that occur more than once (no nulls in ``s``).

    pyarrow's dictionary encoding is ~2x faster than pandas on millions of strings.
    """
    try:
        import pyarrow as pa

        enc = pa.array(s.to_numpy(dtype=object) if s.dtype == object else s).dictionary_encode()
        idx = enc.indices.to_numpy(zero_copy_only=False)
        return np.bincount(idx, minlength=len(enc.dictionary))[idx] > 1
    except Exception:  # mixed types: let pandas do it
        return s.duplicated(keep=False).to_numpy()


def check_duplicates(ids: pd.Series, rows: Rows, kind: str, what: str, column=None, alive=None) -> list[Problem]:
    """Duplicate ids/codes -> one fatal Problem naming the values and their rows."""
    s = ids.reset_index(drop=True)
    mask = s.notna().to_numpy()
    if alive is not None:
        mask &= alive
    dup = np.zeros(len(s), bool)
    dup[mask] = _duplicated(s[mask])
    if not dup.any():
        return []
    idx = np.flatnonzero(dup)
    vals = s.iloc[idx]
    groups = pd.Series(idx).groupby(vals.to_numpy(), sort=False).agg(list)
    shown = []
    for value, members in list(groups.items())[:LIST_LIMIT]:
        shown.append(f"{value!s} ({rows.listing(members, limit=4)})")
    more = f"; and {len(groups) - LIST_LIMIT} more" if len(groups) > LIST_LIMIT else ""
    k = len(groups)
    col = f" (column '{column}')" if column is not None else ""
    msg = (f"{k} {what}{' is' if k == 1 else 's are'} used more than once ({rows.count(len(idx))} in all): "
           + "; ".join(shown) + more + f"; each {what} must be unique{col}.")
    return [Problem(rows.source, rows.listing(idx), kind, msg, True, int(len(idx)))]


def check_counts(values, rows: Rows, alive: np.ndarray, column: str) -> tuple[np.ndarray, np.ndarray, list[Problem]]:
    """Check household counts.

    Empty -> 1 (warning); zero -> dropped (warning); negative, fractional or non-numeric -> fatal.
    Returns (int counts, keep mask, problems).
    """
    num, bad_text = to_numeric(values)
    problems: list[Problem] = []
    empty = alive & np.isnan(num) & ~bad_text
    if empty.any():
        problems.append(rows_problem(rows, np.flatnonzero(empty), "missing_households",
                                     f"{rows.count(int(empty.sum()))} with an empty '{column}' count; taken as 1"))
    num = np.where(empty, 1.0, num)
    with np.errstate(invalid="ignore"):
        inf = alive & np.isinf(num)
        neg = alive & (num < 0) & ~inf
        frac = alive & np.isfinite(num) & (num > 0) & (num != np.round(num))
        zero = alive & (num == 0)
    bad = alive & (bad_text | inf)
    if bad.any():
        problems.append(rows_problem(rows, np.flatnonzero(bad), "bad_households",
                                     f"{rows.count(int(bad.sum()))} with a non-numeric '{column}' count; "
                                     "a count must be a whole number >= 1", fatal=True))
    if neg.any():
        problems.append(rows_problem(rows, np.flatnonzero(neg), "bad_households",
                                     f"{rows.count(int(neg.sum()))} with a negative '{column}' count; "
                                     "a count must be a whole number >= 1", fatal=True))
    if frac.any():
        problems.append(rows_problem(rows, np.flatnonzero(frac), "bad_households",
                                     f"{rows.count(int(frac.sum()))} with a fractional '{column}' count; "
                                     "a count must be a whole number >= 1", fatal=True))
    if zero.any():
        problems.append(rows_problem(rows, np.flatnonzero(zero), "zero_households",
                                     f"{rows.count(int(zero.sum()))} with '{column}' = 0 (no households at that "
                                     "point); dropped"))
    keep = ~(zero | neg | frac | bad)
    counts = np.where(np.isfinite(num) & (num >= 1), np.round(num), 1).astype(np.int64)
    return counts, keep, problems


def check_nonnegative(values, rows: Rows, alive: np.ndarray, column: str, default: float,
                      kind: str) -> tuple[np.ndarray, list[Problem]]:
    """Check a numeric column that must be >= 0: bad cells become ``default`` with a warning."""
    num, bad_text = to_numeric(values)
    with np.errstate(invalid="ignore"):
        bad = alive & (bad_text | (num < 0) | np.isinf(num))
    out = np.where(np.isnan(num) | bad, default, num)
    problems = []
    if bad.any():
        shown = "empty" if np.isnan(default) else f"{default:g}"
        problems.append(rows_problem(rows, np.flatnonzero(bad), kind,
                                     f"{rows.count(int(bad.sum()))} with a negative or non-numeric '{column}'; "
                                     f"taken as {shown}"))
    return out, problems


# ----------------------------------------------------------------------------- coordinates
def looks_projected(x: np.ndarray, y: np.ndarray) -> bool:
    """Return True when most finite coordinates lie beyond lon/lat range (|x|>180 or |y|>90).

    Simply swapped lon/lat (|y|>90 but |x|<=90) does not count.
    """
    fin = np.isfinite(x) & np.isfinite(y)
    if not fin.any():
        return False
    ax, ay = np.abs(x[fin]), np.abs(y[fin])
    beyond = (ax > 180) | ((ay > 90) & (ax > 90))
    return int(beyond.sum()) * 2 > int(fin.sum())


def check_geographic(x: np.ndarray, y: np.ndarray, rows: Rows, alive: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Problem]]:
    """Lon/lat sanity on raw geographic coordinates.

    Latitude beyond ±90 with a longitude within ±90 -> swapped (see :func:`swap_problem`); anything
    else beyond range -> dropped. Returns (x, y, alive, swapped mask, problems).
    """
    problems: list[Problem] = []
    x = np.asarray(x, dtype=float).copy()
    y = np.asarray(y, dtype=float).copy()
    fin = np.isfinite(x) & np.isfinite(y)
    swap = alive & fin & (np.abs(y) > 90) & (np.abs(x) <= 90)
    if swap.any():
        x[swap], y[swap] = y[swap].copy(), x[swap].copy()
    out = alive & fin & ((np.abs(x) > 180) | (np.abs(y) > 90))
    if out.any():
        problems.append(rows_problem(rows, np.flatnonzero(out), "invalid_coordinates",
                                     f"{rows.count(int(out.sum()))} with lon/lat beyond ±180/±90; dropped"))
    return x, y, alive & fin & ~out, swap, problems


def swap_problem(rows: Rows, idx, reason: str, inside: int | None) -> Problem:
    """Build the warning for swapped lon/lat.

    ``reason`` is 'latitude' (|lat| > 90) or 'boundaries' (only the swapped point lies inside a
    unit); ``inside`` counts swapped points now inside a unit.
    """
    idx = np.asarray(idx, dtype=np.int64)
    n = len(idx)
    if reason == "latitude":
        why = f"{rows.count(n)} had a latitude beyond ±90: lon/lat look swapped; swapped them"
        if inside is not None:
            if inside == n:
                why += f"; swapping puts {'it' if n == 1 else 'all of them'} inside the boundaries"
            elif inside > 0:
                why += f"; swapping puts {inside} of them inside the boundaries"
            else:
                why += "; even swapped, " + ("it lies" if n == 1 else "they lie") + " outside every unit"
    else:
        why = (f"{rows.count(n)} lay outside every unit, but with lon and lat swapped "
               f"{'it lies' if n == 1 else 'they lie'} inside the boundaries: lon/lat look swapped; swapping puts "
               f"{'it' if n == 1 else 'them'} inside the boundaries, so they were swapped")
    return rows_problem(rows, idx, "swapped_lonlat", why)


def check_missing_coordinates(x: np.ndarray, y: np.ndarray, bad_text: np.ndarray, rows: Rows,
                              alive: np.ndarray, drop: bool = True) -> tuple[np.ndarray, list[Problem]]:
    """Missing (NaN/empty/inf) or non-numeric coordinates -> dropped (or kept, with ``drop=False``)."""
    missing = alive & ~(np.isfinite(x) & np.isfinite(y))
    if not missing.any():
        return alive, []
    n = int(missing.sum())
    nonnum = int((missing & bad_text).sum())
    detail = f" ({nonnum} non-numeric)" if nonnum else ""
    tail = "dropped" if drop else "kept without a location"
    p = rows_problem(rows, np.flatnonzero(missing), "missing_coordinates",
                     f"{rows.count(n)} with missing or non-numeric coordinates{detail}; {tail}")
    return (alive & ~missing if drop else alive), [p]


# ----------------------------------------------------------------------------- polygons
def polygonal_part(geoms) -> np.ndarray:
    """Keep only the polygonal parts of each geometry (None when nothing polygonal is left)."""
    geoms = np.asarray(geoms, dtype=object)
    out = geoms.copy()
    tid = shapely.get_type_id(geoms)
    todo = np.flatnonzero((tid != 3) & (tid != 6) & (tid != -1))
    if len(todo) == 0:
        return out
    parts, owner = shapely.get_parts(geoms[todo], return_index=True)
    for _ in range(4):  # nested collections
        ptid = shapely.get_type_id(parts)
        multi = (ptid == 6) | (ptid == 7)
        if not multi.any():
            break
        sub, sub_owner = shapely.get_parts(parts[multi], return_index=True)
        parts = np.concatenate([parts[~multi], sub])
        owner = np.concatenate([owner[~multi], owner[multi][sub_owner]])
    ptid = shapely.get_type_id(parts)
    keep = (ptid == 3) & ~shapely.is_empty(parts)
    parts, owner = parts[keep], owner[keep]
    res = np.full(len(todo), None, dtype=object)
    if len(parts):
        present = np.unique(owner)
        order = np.argsort(owner, kind="stable")
        multis = shapely.multipolygons(parts[order], indices=np.searchsorted(present, owner[order]))
        single = shapely.get_num_geometries(multis) == 1
        multis[single] = shapely.get_geometry(multis[single], 0)
        res[present] = multis
    out[todo] = res
    return out


def repair_polygons(geoms, rows: Rows) -> tuple[np.ndarray, np.ndarray, list[Problem]]:
    """Repair invalid polygons with ``shapely.make_valid``, keeping polygonal parts.

    Each repair is a warning with the reason. Returns (geoms, ok mask, problems); a polygon with
    no area left is fatal (ok False).
    """
    geoms = np.asarray(geoms, dtype=object).copy()
    ok = np.ones(len(geoms), bool)
    problems: list[Problem] = []
    present = ~shapely.is_missing(geoms)
    invalid = present & ~shapely.is_valid(geoms)
    if invalid.any():
        idx = np.flatnonzero(invalid)
        reasons = shapely.is_valid_reason(geoms[idx])
        fixed = polygonal_part(shapely.make_valid(geoms[idx]))
        geoms[idx] = fixed
        shown = "; ".join(f"{rows.label(int(i))}: {r}" for i, r in zip(idx[:LIST_LIMIT], reasons[:LIST_LIMIT]))
        more = f"; and {len(idx) - LIST_LIMIT} more" if len(idx) > LIST_LIMIT else ""
        problems.append(Problem(rows.source, rows.listing(idx), "invalid_polygon",
                                f"{rows.count(len(idx))} with an invalid polygon, repaired with make_valid "
                                f"(polygonal parts kept): {shown}{more}.", False, len(idx)))
    empty = present & (shapely.is_missing(geoms) | shapely.is_empty(geoms) | ~(shapely.area(geoms) > 0))
    if empty.any():
        idx = np.flatnonzero(empty)
        ok[idx] = False
        problems.append(rows_problem(rows, idx, "empty_polygon",
                                     f"{rows.count(len(idx))} with a polygon that has no area (after repair)",
                                     fatal=True))
    return geoms, ok, problems


def resolve_overlaps(geoms, codes: Sequence[str], rows: Rows, max_share: float = MAX_OVERLAP_SHARE
                     ) -> tuple[np.ndarray, list[Problem]]:
    """Resolve overlapping units (metric geometries).

    Each overlap goes to the unit with the lower code (warning with the area in m²); an overlap
    above ``max_share`` of the smaller unit is fatal.
    """
    geoms = np.asarray(geoms, dtype=object).copy()
    codes = np.asarray(codes, dtype=object)
    n = len(geoms)
    if n < 2:
        return geoms, []
    tree = STRtree(geoms)
    pairs = [tree.query(geoms, predicate="overlaps"), tree.query(geoms, predicate="contains")]
    pairs = np.concatenate(pairs, axis=1)
    a, b = np.minimum(pairs[0], pairs[1]), np.maximum(pairs[0], pairs[1])
    keep = a != b
    if not keep.any():
        return geoms, []
    ab = np.unique(np.stack([a[keep], b[keep]], axis=1), axis=0)
    a, b = ab[:, 0], ab[:, 1]
    inter = shapely.intersection(geoms[a], geoms[b])
    area = shapely.area(polygonal_part(inter).astype(object)) if len(inter) else np.array([])
    area = np.nan_to_num(np.asarray(area, dtype=float))
    unit_area = shapely.area(geoms)
    smaller = np.minimum(unit_area[a], unit_area[b])
    share = np.where(smaller > 0, area / np.where(smaller > 0, smaller, 1), 1.0)
    problems: list[Problem] = []
    # order each pair as (lower code, higher code)
    swap = np.array([str(codes[i]) > str(codes[j]) for i, j in zip(a, b)], dtype=bool)
    lo, hi = np.where(swap, b, a), np.where(swap, a, b)

    def describe(k: int) -> str:
        return (f"{codes[lo[k]]} ({rows.label(int(lo[k]))}) and {codes[hi[k]]} ({rows.label(int(hi[k]))}) "
                f"overlap by {area[k]:,.1f} m² ({share[k]:.1%} of the smaller)")

    big = share > max_share
    if big.any():
        ks = np.flatnonzero(big)
        shown = "; ".join(describe(int(k)) for k in ks[:LIST_LIMIT])
        more = f"; and {len(ks) - LIST_LIMIT} more pairs" if len(ks) > LIST_LIMIT else ""
        involved = np.unique(np.concatenate([lo[ks], hi[ks]]))
        problems.append(Problem(rows.source, rows.listing(involved), "overlap_too_large",
                                f"{len(ks)} pair{'s' if len(ks) != 1 else ''} of units overlap by more than "
                                f"{max_share:.0%} of the smaller unit, which suggests a wrong or duplicated file: "
                                f"{shown}{more}.", True, int(len(ks))))
    small = ~big & (area > 0)
    for k in np.flatnonzero(small):  # one difference per overlapping pair (few, normally)
        g = shapely.difference(geoms[hi[k]], geoms[lo[k]])
        geoms[hi[k]] = polygonal_part(np.array([g], dtype=object))[0]
    reported = np.flatnonzero(small & (area >= REPORT_OVERLAP_M2))
    if len(reported):
        shown = "; ".join(describe(int(k)) for k in reported[:LIST_LIMIT])
        more = f"; and {len(reported) - LIST_LIMIT} more pairs" if len(reported) > LIST_LIMIT else ""
        involved = np.unique(np.concatenate([lo[reported], hi[reported]]))
        problems.append(Problem(rows.source, rows.listing(involved), "overlapping_units",
                                f"{len(reported)} pair{'s' if len(reported) != 1 else ''} of units overlap "
                                f"(total {area[reported].sum():,.1f} m²); each overlap was given to the unit with "
                                f"the lower code: {shown}{more}.", False, int(len(reported))))
    return geoms, problems


# ----------------------------------------------------------------------------- points in units
def locate(points, unit_geoms, codes: Sequence[str] | None = None, tree: STRtree | None = None) -> np.ndarray:
    """Return the row in ``unit_geoms`` containing each point (-1 outside every unit).

    Points on a shared border go to the unit with the lowest code (or lowest row when no codes
    are given). Vectorized.
    """
    points = np.asarray(points, dtype=object)
    out = np.full(len(points), -1, dtype=np.int64)
    if len(points) == 0 or len(unit_geoms) == 0:
        return out
    tree = tree or STRtree(np.asarray(unit_geoms, dtype=object))
    pi, ui = tree.query(points, predicate="intersects")
    if len(pi) == 0:
        return out
    if codes is not None:
        rank = np.empty(len(unit_geoms), dtype=np.int64)
        rank[np.argsort(np.asarray(codes, dtype=str), kind="stable")] = np.arange(len(unit_geoms))
    else:
        rank = np.arange(len(unit_geoms))
    order = np.lexsort((rank[ui], pi))
    pi, ui = pi[order], ui[order]
    first = np.r_[True, pi[1:] != pi[:-1]]
    out[pi[first]] = ui[first]
    return out
