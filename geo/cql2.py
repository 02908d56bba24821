"""CQL2 filters (OGC API – Features Part 3) on a layer's attributes and geometry, checked then applied to batches.

A filter is parsed by pygeofilter (``cql2-text`` or ``cql2-json``), then checked and compiled ONCE
into a small plan of our own against the layer's queryables (:func:`parse_filter`): every property
must be an attribute of the layer (or ``geometry``), operands must have matching types, the
expression is bounded in size and depth, and only what is implemented is accepted — comparisons,
``AND``/``OR``/``NOT``, ``IN``, ``BETWEEN``, ``LIKE``, ``IS NULL``, ``INCLUDE``/``EXCLUDE`` and
``S_INTERSECTS`` (or ``BBOX(geometry, …)``) with a geometry or box literal. Anything else raises
:class:`FilterError` naming the problem, so a filter that passes cannot fail while features stream.

:func:`filter_mask` evaluates the plan on one batch (a GeoDataFrame in true WGS 84) with numpy,
pandas and pyarrow.compute: nothing is ever passed to ``eval`` nor spliced into SQL. Missing values
follow SQL's three-valued logic (a comparison with a null is unknown, ``NOT`` unknown is unknown,
only true rows are kept). ``LIKE`` is pyarrow's ``match_like`` (``%`` any run, ``_`` one character,
a backslash escapes; RE2, linear time). pygeofilter's own geopandas backend is not used: its ``LIKE``
is a backtracking regex with ``.`` as the single-character wildcard, and ``NOT`` of a null fails.
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from gridplan.geo.cql2plan import OPS, FilterError, _short, compile_node

__all__ = ["FilterError", "Filter", "LANGS", "kind_of", "parse_filter", "filter_mask"]

LANGS = ("cql2-text", "cql2-json")
MAX_CHARS = 20_000      # filter text
MAX_JSON_DEPTH = 64     # nesting of cql2-json and of parentheses in cql2-text (geometry literals included)
GEOMETRY = "geometry"   # the name of the spatial queryable


@dataclass(frozen=True)
class Filter:
    """A checked filter: its compiled plan, and a box every match intersects (for the spatial index).

    Parameters
    ----------
    plan : tuple
        The compiled expression (built by :func:`parse_filter` only).
    bounds : tuple of float, optional
        ``(minlon, minlat, maxlon, maxlat)`` of an ``S_INTERSECTS`` literal the whole filter requires.
    """

    plan: tuple
    bounds: tuple[float, float, float, float] | None = None


def kind_of(dtype: str) -> str:
    """Return the CQL2 type of a layer attribute from its numpy dtype name: number, boolean or string."""
    if dtype.startswith(("int", "uint", "float")):
        return "number"
    return "boolean" if dtype.startswith("bool") else "string"


def _json_doc(text: str):
    """Load a cql2-json document, bounded in depth, with ``{"bbox": [...]}`` literals made polygons.

    pygeofilter reads a JSON ``bbox`` ``[minx, miny, maxx, maxy]`` into its ``Envelope(x1, x2, y1, y2)``
    in the wrong order, so boxes are rewritten here as GeoJSON polygons first; and it reads ``between``
    only in a draft's ``[x, [low, high]]`` form, so CQL2 1.0's ``[x, low, high]`` is rewritten to it;
    it takes a geometry collection (no ``coordinates``) for an unknown node, so one is added.
    """
    try:
        doc = json.loads(text)
    except RecursionError:
        raise FilterError(f"the filter is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as e:
        raise FilterError(f"the filter is not valid JSON: {str(e)[:120]}") from None
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise FilterError(f"the filter is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, dict):
            box = node.get("bbox")
            if isinstance(box, list) and len(box) in (4, 6) and len(node) == 1:
                x0, y0, x1, y1 = (box[0], box[1], box[2], box[3]) if len(box) == 4 else (box[0], box[1], box[3], box[4])
                node.clear()
                node.update({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]})
            if node.get("type") == "GeometryCollection" and "coordinates" not in node:
                node["coordinates"] = []   # pygeofilter knows a geometry by its coordinates member
            args = node.get("args")
            if node.get("op") == "between" and isinstance(args, list) and len(args) == 3:
                node["args"] = [args[0], args[1:]]   # CQL2 1.0 form -> the pre-release form pygeofilter reads
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return doc


# pygeofilter 0.4's cql2-text grammar gives AND and OR the same precedence (``a OR b AND c`` is read as
# ``(a OR b) AND c``), lets NOT negate only a single predicate and wants property names of two characters
# or more; CQL2's BNF binds AND tighter than OR, lets NOT negate a parenthesised expression and takes
# one-letter names. These rules replace its boolean ones and its name pattern (same transformer).
_ONE_LETTER = ("attribute: /[a-zA-Z][a-zA-Z_:0-9.]+/", "attribute: /[a-zA-Z][a-zA-Z_:0-9.]*/")
_PYGEOFILTER_BOOLEAN = '''?condition: condition_1
          | condition "AND"i condition_1                                 -> and_
          | condition "OR"i condition_1                                   -> or_

?condition_1: predicate
            | "NOT"i predicate                                               -> not_
            | "NOT"i "(" predicate ")"                                       -> not_
            | "(" condition ")"
'''
_CQL2_BOOLEAN = '''?condition: condition_and
          | condition "OR"i condition_and -> or_

?condition_and: condition_1
              | condition_and "AND"i condition_1 -> and_

?condition_1: condition_2
            | "NOT"i condition_2 -> not_

?condition_2: predicate
            | "(" condition ")"
'''


_PARSE_LOCK = threading.Lock()   # stdout is swapped while parsing: one parse at a time (each takes ms)


@functools.lru_cache(maxsize=1)
def _text_parser():
    """Return pygeofilter's cql2-text parser with CQL2's precedence of AND, OR and NOT (built once)."""
    from lark import Lark
    from pygeofilter.parsers.cql2_text import parser as cql2_text

    path = Path(cql2_text.__file__).with_name("grammar.lark")
    grammar = path.read_text(encoding="utf-8")
    if _PYGEOFILTER_BOOLEAN not in grammar:   # a pygeofilter whose grammar changed: use it as it is
        return cql2_text.parser
    grammar = grammar.replace(_PYGEOFILTER_BOOLEAN, _CQL2_BOOLEAN).replace(*_ONE_LETTER)
    return Lark(grammar, parser="lalr", source_path=str(path),
                maybe_placeholders=False, transformer=cql2_text.CQLTransformer(),
                import_paths=[str(path.parent.parent)])


def _parse(text: str, lang: str):
    """Run pygeofilter's parser; any failure of it becomes a FilterError with a short message."""
    from pygeofilter.parsers.cql2_json import parse as parse_json

    if lang == "cql2-json":
        doc = _json_doc(text)
        try:
            return parse_json(doc)
        except RecursionError:
            raise FilterError(f"the filter is nested deeper than {MAX_JSON_DEPTH} levels") from None
        except Exception:   # the third-party walker raises KeyError, TypeError, ValueError… on bad shapes
            raise FilterError("the filter is not valid CQL2 JSON (see the cql2-json schema)") from None
    depth = level = 0
    for ch in text:   # parentheses, also inside quotes (a conservative bound)
        level += (ch == "(") - (ch == ")")
        depth = max(depth, level)
    if depth > MAX_JSON_DEPTH:
        raise FilterError(f"the filter is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        with _PARSE_LOCK, contextlib.redirect_stdout(io.StringIO()):   # its WKT reader print()s coordinates
            return _text_parser().parse(text)
    except RecursionError:
        raise FilterError(f"the filter is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except Exception as e:   # lark's errors carry the position; their text quotes the whole input
        where = f" at column {e.column}" if isinstance(getattr(e, "column", None), int) and e.column > 0 else ""
        raise FilterError(f"the filter is not valid CQL2 text{where}") from None


def parse_filter(text: str, lang: str | None, fields: dict[str, str], lat_lon: bool = False) -> Filter:
    """Parse and check a CQL2 filter against a layer's queryables.

    Parameters
    ----------
    text : str
        The ``filter`` parameter.
    lang : str, optional
        ``cql2-text`` (the default) or ``cql2-json``.
    fields : dict
        The layer's attributes, name -> numpy dtype name; ``geometry`` is the spatial queryable.
    lat_lon : bool
        Geometry literals are latitude first (``filter-crs`` EPSG:4326 / EPSG:4490), else lon/lat.

    Returns
    -------
    Filter
        The checked filter, for :func:`filter_mask`.

    Raises
    ------
    FilterError
        The filter is too large or deep, malformed, names an unknown property or function,
        mixes types, or uses what this service does not implement.
    """
    lang = lang or "cql2-text"
    if lang not in LANGS:
        raise FilterError(f"filter-lang {_short(lang)} is not offered: use cql2-text or cql2-json")
    if not text or not text.strip():
        raise FilterError("the filter is empty")
    if len(text) > MAX_CHARS:
        raise FilterError(f"the filter is longer than {MAX_CHARS} characters")
    kinds = {name: kind_of(dtype) for name, dtype in fields.items()}
    kinds[GEOMETRY] = "geometry"
    root = _parse(text, lang)
    try:
        plan, bounds = compile_node(root, kinds, lat_lon)
    except (TypeError, AttributeError, KeyError, IndexError):   # a node pygeofilter built from odd JSON shapes
        raise FilterError("the filter is not a valid CQL2 expression") from None
    return Filter(plan, bounds)


def _tv(result) -> tuple[np.ndarray, np.ndarray]:
    """Split a boolean array with nulls into (definitely true, definitely false) numpy masks."""
    arr = pd.array(result, dtype="boolean")
    na = np.asarray(arr.isna(), dtype=bool)
    val = arr.to_numpy(dtype=bool, na_value=False)
    return val & ~na, ~val & ~na


def _operand(gdf, x, n: int):
    """Return an operand's values on the batch: a nullable array (property) or a broadcast literal."""
    tag, value, kind = x
    if tag == "lit":
        dtype = {"number": "Float64", "boolean": "boolean", "string": "string"}[kind]
        return pd.array([value] * n, dtype=dtype)
    col = gdf[value]
    if kind == "number":
        return pd.array(pd.to_numeric(col, errors="coerce"), dtype="Float64")
    if kind == "boolean":
        return pd.array(col, dtype="boolean")
    return pd.array(col.astype("string"), dtype="string")


def _like(arr, pattern: str, nocase: bool) -> tuple[np.ndarray, np.ndarray]:
    """Apply SQL ``LIKE`` to a string array with pyarrow (RE2): (true rows, false rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    res = pc.match_like(pa.array(arr, type=pa.string()), pattern, ignore_case=nocase)
    na = res.is_null().to_numpy(zero_copy_only=False)
    val = res.fill_null(False).to_numpy(zero_copy_only=False)
    return val & ~na, ~val & ~na


def _eval(gdf, node, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate a compiled node on a batch: (true rows, false rows); the rest are unknown."""
    tag = node[0]
    if tag == "const":
        return np.full(n, node[1]), np.full(n, not node[1])
    if tag in ("and", "or"):
        parts = [_eval(gdf, c, n) for c in node[1]]
        t, f = parts[0]
        for t2, f2 in parts[1:]:
            t, f = (t & t2, f | f2) if tag == "and" else (t | t2, f & f2)
        return t, f
    if tag == "not":
        t, f = _eval(gdf, node[1], n)
        return f, t
    if tag == "intersects":
        geoms = np.asarray(gdf.geometry.values, dtype=object)
        try:
            hit = np.asarray(shapely.intersects(geoms, node[1]), dtype=bool)
        except shapely.errors.GEOSException:   # an invalid stored geometry GEOS cannot test: test it repaired
            hit = np.asarray(shapely.intersects(shapely.make_valid(geoms), node[1]), dtype=bool)
        known = ~np.asarray(pd.isna(geoms), dtype=bool)
        return hit & known, ~hit & known
    if tag == "null":
        x = node[1]
        isna = np.asarray(gdf.geometry.isna() if x[2] == "geometry" else pd.isna(_operand(gdf, x, n)), dtype=bool)
        return (~isna, isna) if node[2] else (isna, ~isna)
    lhs = _operand(gdf, node[1], n)
    if tag == "cmp":
        return _tv(OPS[node[2]](lhs, _operand(gdf, node[3], n)))
    if tag == "between":
        lo, hi = _operand(gdf, node[2], n), _operand(gdf, node[3], n)
        return _tv((lhs >= lo) & (lhs <= hi))
    if tag == "in":
        na = np.asarray(pd.isna(lhs), dtype=bool)
        hit = np.asarray(pd.Series(lhs).isin(node[2]), dtype=bool)
        return hit & ~na, ~hit & ~na
    if tag == "like":
        return _like(lhs, node[2], node[3])
    raise AssertionError(f"uncompiled node {tag}")   # parse_filter builds only the tags above


def filter_mask(gdf, f: Filter) -> np.ndarray:
    """Return the mask of the rows of ``gdf`` (a WGS 84 batch of the layer) that filter ``f`` keeps.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        One batch of the layer, geometries in true WGS 84 lon/lat.
    f : Filter
        From :func:`parse_filter` with this layer's fields.

    Returns
    -------
    numpy.ndarray
        Boolean, one per row: True where the filter is true (not false, not unknown).
    """
    n = len(gdf)
    if n == 0:
        return np.zeros(0, bool)
    return _eval(gdf, f.plan, n)[0]

