"""Check a pygeofilter CQL2 syntax tree against a layer's queryables and compile it into a small plan.

The plan is nested tuples that :mod:`gridplan.geo.cql2` evaluates on batches. Operands are
``("prop", name, kind)`` or ``("lit", value, kind)`` with kind ``number``, ``string`` or
``boolean``; nodes are ``("and"|"or", children)``, ``("not", child)``, ``("const", bool)``,
``("cmp", lhs, op, rhs)``, ``("between", x, low, high)``, ``("in", x, values)``,
``("like", x, pattern, nocase)``, ``("null", x, negated)`` and ``("intersects", geometry)``.
Everything not in that list is refused here with a :class:`FilterError` that names it, so that the
evaluation of a compiled plan cannot fail.
"""
from __future__ import annotations

import math
import operator
from datetime import date, datetime, timezone

import numpy as np
import shapely
from pygeofilter import ast, values

MAX_NODES = 2_000        # predicates, operands and list items
MAX_DEPTH = 24           # nesting of AND / OR / NOT (a chain of ANDs counts once)
MAX_VERTICES = 100_000   # of all geometry literals
_GEOMETRY = "geometry"
_ORDER = ("<", "<=", ">", ">=")
OPS = {"=": operator.eq, "<>": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}


class FilterError(ValueError):
    """A filter that cannot be applied; the message says why (and names the property or function)."""


def _short(text, n: int = 60) -> str:
    text = str(text)
    return repr(text if len(text) <= n else text[:n] + "…")


def _name(node) -> str:
    """How a CQL2 user would name an unsupported node."""
    op = getattr(node, "op", None)
    if isinstance(node, ast.SpatialComparisonPredicate | ast.SpatialDistancePredicate):
        return f"S_{op.name}" if isinstance(node, ast.SpatialComparisonPredicate) else op.name
    if isinstance(node, ast.TemporalPredicate):
        return f"T_{op.name}"
    if isinstance(node, ast.ArrayPredicate):
        return f"A_{op.name}"
    return {ast.Relate: "RELATE", ast.Exists: "EXISTS"}.get(type(node), type(node).__name__)


def _flatten(node, cls) -> list:
    """Return the operands of a chain of ``cls`` (And or Or) nodes, in order, without recursion."""
    out, stack = [], [node]
    while stack:
        x = stack.pop()
        if type(x) is cls:
            stack.extend([x.rhs, x.lhs])
        else:
            out.append(x)
    return out


def _describe(x: tuple) -> str:
    return f"property {_short(x[1])}" if x[0] == "prop" else f"the literal {_short(x[1])}"


def _same_kind(what: str, *xs: tuple) -> None:
    kinds = {x[2] for x in xs}
    if "geometry" in kinds:
        raise FilterError(f"{what}: geometries can only be tested with S_INTERSECTS or IS NULL")
    if len(kinds) > 1:
        raise FilterError(f"type mismatch in {what}: " + ", ".join(f"{_describe(x)} is a {x[2]}" for x in xs))
    if kinds & {"date", "timestamp"} and not what.startswith("'"):
        raise FilterError(f"{what}: DATE and TIMESTAMP literals can only be compared with each other (=, <, …)")


class _Compiler:
    """One compilation: the queryables, the axis order of geometry literals and the size counters."""

    def __init__(self, kinds: dict[str, str], lat_lon: bool):
        self.kinds, self.lat_lon, self.nodes, self.vertices = kinds, lat_lon, 0, 0

    def count(self, k: int = 1) -> None:
        self.nodes += k
        if self.nodes > MAX_NODES:
            raise FilterError(f"the filter has more than {MAX_NODES} terms")

    def cond(self, node, depth: int) -> tuple:
        if depth > MAX_DEPTH:
            raise FilterError(f"the filter nests AND/OR/NOT deeper than {MAX_DEPTH} levels")
        self.count()
        if isinstance(node, bool):
            return ("const", node)
        if type(node) in (ast.And, ast.Or):
            return ("and" if type(node) is ast.And else "or",
                    tuple(self.cond(x, depth + 1) for x in _flatten(node, type(node))))
        if isinstance(node, ast.Not):
            return ("not", self.cond(node.sub_node, depth + 1))
        if isinstance(node, ast.Include):
            return ("const", not node.not_)
        method = _PREDICATES.get(type(node))
        if method is None:
            if isinstance(node, ast.Predicate):
                raise FilterError(f"{_name(node)} is not supported (see /ogc/conformance)")
            raise FilterError(f"{self.describe_any(node)} is not a predicate: a filter must be a condition")
        return method(self, node)

    def describe_any(self, node) -> str:
        if isinstance(node, ast.Attribute):
            return f"property {_short(node.name)}"
        return "an expression" if isinstance(node, ast.Node) else f"the literal {_short(node)}"

    def operand(self, x) -> tuple:
        """Compile a scalar or geometry operand; refuse unknown properties, functions and other types."""
        self.count()
        if isinstance(x, ast.Attribute):
            kind = self.kinds.get(x.name)
            if kind is None:
                names = ", ".join(sorted(self.kinds)[:40])
                raise FilterError(f"unknown property {_short(x.name)}: the queryables are {names}")
            return ("prop", x.name, kind)
        if isinstance(x, bool):
            return ("lit", x, "boolean")
        if isinstance(x, int | float):
            try:
                v = float(x)
            except OverflowError:
                v = math.inf
            if not math.isfinite(v):
                raise FilterError(f"the number {_short(x)} is out of range")
            return ("lit", v, "number")
        if isinstance(x, str):
            return ("lit", x, "string")
        if isinstance(x, date):   # DATE('…') and TIMESTAMP('…'): no queryable has such a type, literals do
            if isinstance(x, datetime) and x.tzinfo is None:
                x = x.replace(tzinfo=timezone.utc)
            return ("lit", x, "timestamp" if isinstance(x, datetime) else "date")
        if isinstance(x, values.Geometry) and isinstance(x.geometry, dict) and "crs" in x.geometry:
            raise FilterError("an SRID in a geometry literal is not supported: use filter-crs")
        if isinstance(x, values.Geometry | values.Envelope) or (isinstance(x, ast.Function) and x.name == "bbox"):
            return ("geom", self.geometry(x), "geometry")
        raise FilterError(self.unsupported_operand(x))

    def unsupported_operand(self, x) -> str:
        if isinstance(x, ast.Function):
            if x.name == "lower":
                return "CASEI (case-insensitive comparison) is not supported"
            return f"unknown function {_short(x.name)}: this service defines no functions"
        if isinstance(x, ast.Arithmetic):
            return "arithmetic (+, -, *, /) is not supported"
        if isinstance(x, list):
            return "an array is not allowed here"
        if isinstance(x, ast.Node):
            return f"{_name(x)} is not allowed here: expected a property or a literal"
        if isinstance(x, values.Interval):
            return "INTERVAL literals are not supported (no queryable is a date or time)"
        return f"the literal {_short(x)} is not supported"

    def geometry(self, x):
        """Return a geometry literal as a valid, prepared shapely geometry in lon/lat."""
        try:
            if isinstance(x, ast.Function):
                args = [float(a) for a in x.arguments if isinstance(a, int | float) and not isinstance(a, bool)]
                if len(args) != len(x.arguments) or len(args) not in (4, 6):
                    raise ValueError
                g = shapely.box(*(args if len(args) == 4 else (args[0], args[1], args[3], args[4])))
            else:   # (a collection carries the empty coordinates the JSON reading added)
                geo = {k: v for k, v in x.geometry.items() if k != "coordinates" or v != []}
                g = shapely.geometry.shape(geo)
        except Exception:   # pygeoif/shapely reject malformed literals in many ways
            raise FilterError("a geometry literal is malformed") from None
        xy = shapely.get_coordinates(g)
        self.vertices += len(xy)
        if self.vertices > MAX_VERTICES:
            raise FilterError(f"the geometry literals have more than {MAX_VERTICES} vertices")
        if g.is_empty or not np.isfinite(xy).all():
            raise FilterError("a geometry literal is empty or has coordinates that are not finite numbers")
        if self.lat_lon:
            g = shapely.transform(g, lambda c: c[:, ::-1])
        if not g.is_valid:
            g = shapely.make_valid(g)
        shapely.prepare(g)
        return g

    def comparison(self, node) -> tuple:
        op = node.op.value
        lhs, rhs = self.operand(node.lhs), self.operand(node.rhs)
        _same_kind(f"'{op}'", lhs, rhs)
        if op in _ORDER and lhs[2] == "boolean":
            raise FilterError(f"'{op}' does not apply to booleans: use = or <>")
        if lhs[0] == rhs[0] == "lit":   # constant: folded here (so temporal literals never reach a batch)
            return ("const", bool(OPS[op](lhs[1], rhs[1])))
        return ("cmp", lhs, op, rhs)

    def between(self, node) -> tuple:
        x, lo, hi = self.operand(node.lhs), self.operand(node.low), self.operand(node.high)
        _same_kind("BETWEEN", x, lo, hi)
        if x[2] == "boolean":
            raise FilterError("BETWEEN does not apply to booleans")
        out = ("between", x, lo, hi)
        return ("not", out) if node.not_ else out

    def like(self, node) -> tuple:
        x = self.operand(node.lhs)
        if not isinstance(node.pattern, str):
            raise FilterError("LIKE needs a text pattern ('%' any run of characters, '_' one character)")
        _same_kind("LIKE", x, ("lit", node.pattern, "string"))
        out = ("like", x, node.pattern, bool(node.nocase))
        return ("not", out) if node.not_ else out

    def in_(self, node) -> tuple:
        x = self.operand(node.lhs)
        if not isinstance(node.sub_nodes, list | tuple):
            raise FilterError("IN takes a list of literals")
        opts = [self.operand(o) for o in node.sub_nodes]
        if any(o[0] != "lit" for o in opts):
            raise FilterError("IN takes a list of literals")
        _same_kind("IN", x, *opts)
        out = ("in", x, tuple(o[1] for o in opts))
        return ("not", out) if node.not_ else out

    def is_null(self, node) -> tuple:
        x = self.operand(node.lhs)
        if x[0] == "geom":
            raise FilterError("IS NULL applies to properties and scalar literals")
        if x[0] == "lit":   # a literal is never null
            return ("const", bool(node.not_))
        return ("null", x, bool(node.not_))

    def intersects(self, node) -> tuple:
        a, b = self.operand(node.lhs), self.operand(node.rhs)
        props = [x for x in (a, b) if x[0] == "prop" and x[2] == "geometry"]
        lits = [x for x in (a, b) if x[0] == "geom"]
        if len(props) != 1 or len(lits) != 1:
            raise FilterError(f"S_INTERSECTS compares the property {_GEOMETRY!r} with a geometry or BBOX literal")
        return ("intersects", lits[0][1])

    def bbox(self, node) -> tuple:
        a = self.operand(node.lhs)
        if a[:1] != ("prop",) or a[2] != "geometry" or node.crs is not None:
            raise FilterError(f"BBOX takes the property {_GEOMETRY!r} and four numbers (no CRS)")
        return ("intersects", self.geometry(ast.Function("bbox", [node.minx, node.miny, node.maxx, node.maxy])))


_PREDICATES = {cls: _Compiler.comparison for cls in (ast.Equal, ast.NotEqual, ast.LessThan, ast.LessEqual,
                                                     ast.GreaterThan, ast.GreaterEqual)}
_PREDICATES.update({ast.Between: _Compiler.between, ast.Like: _Compiler.like, ast.In: _Compiler.in_,
                    ast.IsNull: _Compiler.is_null, ast.GeometryIntersects: _Compiler.intersects,
                    ast.BBox: _Compiler.bbox})


def compile_node(root, kinds: dict[str, str], lat_lon: bool = False) -> tuple[tuple, tuple | None]:
    """Check and compile a pygeofilter syntax tree.

    Parameters
    ----------
    root : pygeofilter.ast.Node
        The parsed filter.
    kinds : dict
        Queryable name -> ``number``, ``string``, ``boolean`` or ``geometry``.
    lat_lon : bool
        Geometry literals are written latitude first.

    Returns
    -------
    tuple
        ``(plan, bounds)``: the compiled plan and the lon/lat bounds of an ``S_INTERSECTS``
        literal that every match must intersect (None when the filter implies none).

    Raises
    ------
    FilterError
        Anything this service does not evaluate, or evaluates only with other types.
    """
    plan = _Compiler(kinds, lat_lon).cond(root, 0)
    tops = plan[1] if plan[0] == "and" else (plan,)
    hint = next((p[1] for p in tops if p[0] == "intersects"), None)
    return plan, (tuple(float(v) for v in hint.bounds) if hint is not None else None)
