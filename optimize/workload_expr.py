"""``--workload "households + 2*elderly_alone + 0.5*cases"``: a checked arithmetic expression, never ``eval``.

The text is parsed with :mod:`ast` and every node is checked against an allow-list: numbers,
column names, ``+ - * /``, parentheses, unary minus and ``min(...)`` / ``max(...)``. Anything else
(attributes, subscripts, calls to other functions, comparisons, strings, ``**`` ...) is refused
with the option's name and the 1-based character position of the offending part. The tree is then
evaluated over numpy columns of the households (``households``, ``population``, ``weight`` and any
attribute column of the households file).

Per-row results that are negative or not finite are data errors; :func:`evaluate` reports the
positions of such rows and the caller names them in the file's terms.
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

MAX_LENGTH = 500      # characters
MAX_NODES = 200       # ast nodes: far beyond any real formula, small enough to evaluate in no time
BUILTIN_COLUMNS = ("households", "population", "weight")
_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}
_FUNCS = {"min": np.minimum, "max": np.maximum}


class ExpressionError(ValueError):
    """A refused workload expression; ``str(e)`` names the option and the position."""


@dataclass(frozen=True)
class WorkloadExpr:
    """A checked workload expression: its text, its tree and the columns it reads (in first-use order)."""

    text: str
    tree: ast.expr
    columns: tuple[str, ...]

    @property
    def attributes(self) -> tuple[str, ...]:
        """Return the columns read from the households file beyond the built-in ones."""
        return tuple(c for c in self.columns if c not in BUILTIN_COLUMNS)


def _fail(option: str, node: ast.AST | None, text: str, why: str) -> ExpressionError:
    pos = f" at position {getattr(node, 'col_offset', 0) + 1}" if node is not None else ""
    return ExpressionError(f"{option}: {why}{pos} in {text!r}" if option else f"{why}{pos}")


def parse_workload(text: str, option: str = "--workload") -> WorkloadExpr:
    """Parse and check a workload expression.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"households + 2*elderly_alone + 0.5*cases"``.
    option : str
        The option's name, for messages.

    Returns
    -------
    WorkloadExpr

    Raises
    ------
    ExpressionError
        Naming the option and the position of what is refused.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"{option}: must be a non-empty expression, got {text!r}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"{option}: at most {MAX_LENGTH} characters, got {len(text)}")
    if any(ch in text for ch in "\n\r\x00"):
        raise ExpressionError(f"{option}: must be one line, got {text[:60]!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise ExpressionError(f"{option}: not an expression ({e.msg}) at position {e.offset or 1} "
                              f"in {text!r}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError(f"{option}: too deeply nested in {text[:60]!r}") from None
    nodes = list(ast.walk(tree))   # outermost first: the refusal names the widest offending part
    if len(nodes) > MAX_NODES:
        raise ExpressionError(f"{option}: too long ({len(nodes)} parts; at most {MAX_NODES})")
    columns: list[str] = []
    callees = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
    for node in nodes:
        _check(node, option, text.strip(), columns)
        if isinstance(node, ast.Name) and node.id in _FUNCS and id(node) not in callees:
            raise _fail(option, node, text.strip(), f"{node.id} must be called: {node.id}(a, b)")
    names = sorted((n for n in nodes if isinstance(n, ast.Name) and n.id in columns), key=lambda n: n.col_offset)
    return WorkloadExpr(text.strip(), tree, tuple(dict.fromkeys(n.id for n in names)))


def _check(node: ast.AST, option: str, text: str, columns: list[str]) -> None:
    """Refuse any node outside the allow-list (see the module docstring)."""
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise _fail(option, node, text, f"operator {type(node.op).__name__} is not allowed (only + - * /)")
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise _fail(option, node, text, "only unary minus is allowed")
    elif isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise _fail(option, node, text, f"{v!r} is not a finite number")
    elif isinstance(node, ast.Name):
        if not isinstance(node.ctx, ast.Load):
            raise _fail(option, node, text, "assignment is not allowed")
        if node.id not in _FUNCS:
            columns.append(node.id)
    elif isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in _FUNCS or node.keywords or len(node.args) < 2:
            raise _fail(option, node, text, "only min(a, b, ...) and max(a, b, ...) may be called")
    elif not isinstance(node, (ast.operator, ast.unaryop, ast.expr_context)):
        raise _fail(option, node, text, f"{type(node).__name__.lower()} is not allowed "
                                        "(numbers, column names, + - * /, parentheses, min, max)")


def missing_columns(expr: WorkloadExpr, available) -> list[str]:
    """Return the columns ``expr`` reads that are not in ``available`` (case-insensitive)."""
    have = {str(c).strip().lower() for c in available}
    return [c for c in expr.columns if c.lower() not in have]


def evaluate(expr: WorkloadExpr, columns: Mapping[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate ``expr`` per row.

    Parameters
    ----------
    expr : WorkloadExpr
        A parsed expression.
    columns : mapping of str to (n,) arrays
        Every column the expression reads (keys compared case-insensitively).
    n : int
        Number of rows.

    Returns
    -------
    values : (n,) float array
        The workload of each row.
    bad : (n,) bool array
        Rows whose result is negative or not finite (a data error for the caller to name).

    Raises
    ------
    KeyError
        When a column is missing from ``columns`` (check with :func:`missing_columns` first).
    """
    low = {str(k).strip().lower(): np.asarray(v, dtype=float) for k, v in columns.items()}
    with np.errstate(all="ignore"):
        out = np.broadcast_to(np.asarray(_eval(expr.tree, low), dtype=float), (n,)).copy()
    bad = ~np.isfinite(out) | (out < 0)
    return out, bad


def _eval(node: ast.AST, cols: Mapping[str, np.ndarray]):
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return cols[node.id.lower()]
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, cols)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, cols), _eval(node.right, cols))
    if isinstance(node, ast.Call):
        fn = _FUNCS[node.func.id]
        vals = [_eval(a, cols) for a in node.args]
        acc = vals[0]
        for v in vals[1:]:
            acc = fn(acc, v)
        return acc
    raise TypeError(f"unexpected node {type(node).__name__}")   # unreachable after parse_workload's check
