"""What the grids balance, per household row: households, population or a user-set workload.

``--balance-by households`` (the default) balances the integer household counts, as always.
``population`` and ``workload`` (``--workload``, an expression over the households' columns,
``optimize.workload_expr``) are balanced in integer tenths: each row's value is rounded to 0.1,
so the partition models and the certificate (``optimize.certify``) work on the same integers
and "certified" stays a proof for the values the balance is counted in. A row below 0.05 would
round to 0 tenths: it is counted as 0.1 (the models need every point to weigh something) and the
plan says how many rows that was.

A workload that is negative or not finite for some row is a data error naming the rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridplan.geo.attributes import attribute_column
from gridplan.geo.problems import DataError, Problem, Rows, rows_problem
from gridplan.optimize.workload_expr import BUILTIN_COLUMNS, evaluate, parse_workload

SCALE = 10           # tenths: a workload or population is balanced rounded to 0.1
TABULAR = (".csv", ".tsv", ".txt")


@dataclass(frozen=True)
class Measures:
    """The per-row measures of one plan (household rows in the dataset's order).

    balance_by: the balanced measure's name; weights: (n,) int64 >= 1, what the partition models
    balance (households, or tenths); balanced: (n,) float, ``weights`` in the measure's units;
    workload: (n,) float, the user's workload per row (None without ``--workload``);
    secondary: (name, tolerance, (n,) float values) of ``--also-balance`` or None.
    """

    balance_by: str
    weights: np.ndarray
    balanced: np.ndarray
    workload: np.ndarray | None = None
    secondary: tuple[str, float, np.ndarray] | None = None

    @property
    def scale(self) -> int:
        """Return the weights' units per unit of the measure (1 for households, 10 otherwise)."""
        return 1 if self.balance_by == "households" else SCALE


def row_workload(hh: pd.DataFrame, expression: str, source: str) -> np.ndarray:
    """Evaluate ``--workload`` on every household row.

    Parameters
    ----------
    hh : DataFrame
        The dataset's households (``households``, ``population``, ``weight`` and the
        ``attr:<name>`` columns ``geo.attributes`` kept).
    expression : str
        The workload expression.
    source : str
        The households file's name, for messages.

    Returns
    -------
    (n,) float array

    Raises
    ------
    DataError
        When the result is negative or not finite for some rows (naming them), or a column is missing.
    """
    expr = parse_workload(expression)
    cols = {c: hh[c].to_numpy(float) for c in BUILTIN_COLUMNS}
    missing = []
    for name in expr.attributes:
        key = attribute_column(name)
        if key in hh.columns:
            cols[name] = hh[key].to_numpy(float)
        else:
            missing.append(name)
    if missing:
        raise DataError([Problem(source, None, "missing_column", f"--workload reads column(s) "
                                 f"{', '.join(repr(m) for m in missing)}, which {source} does not have", True)])
    values, bad = evaluate(expr, cols, len(hh))
    if bad.any():
        rows = Rows(source, hh["src_row"].to_numpy(np.int64), source.lower().endswith(TABULAR))
        raise DataError([rows_problem(rows, np.flatnonzero(bad), "bad_workload",
                                      f"--workload {expr.text!r} is negative or not finite for "
                                      f"{rows.count(int(bad.sum()))}", fatal=True)])
    return values


def measure_values(hh: pd.DataFrame, name: str, workload: np.ndarray | None) -> np.ndarray:
    """Return the per-row values of measure ``name`` (households, population or workload)."""
    if name == "households":
        return hh["households"].to_numpy(float)
    if name == "population":
        return np.nan_to_num(hh["population"].to_numpy(float), nan=0.0)
    if workload is None:
        raise ValueError("the workload measure needs --workload")
    return np.asarray(workload, dtype=float)


def household_measures(hh: pd.DataFrame, opts, source: str) -> tuple[Measures, list[Problem]]:
    """Build the plan's per-row measures (see the module docstring).

    Returns
    -------
    measures : Measures
    problems : list of Problem
        A warning when rows weighing less than 0.05 were counted as 0.1.
    """
    workload = row_workload(hh, opts.workload, source) if opts.workload else None
    name = opts.balance_by
    problems: list[Problem] = []
    if name == "households":
        weights = hh["households"].to_numpy(np.int64)
        balanced = weights.astype(float)
    else:
        tenths = np.rint(measure_values(hh, name, workload) * SCALE).astype(np.int64)
        light = tenths < 1
        if light.any():
            problems.append(Problem(source, None, "measure_floored", f"{int(light.sum())} household row(s) have a "
                                    f"{name} below 0.05: balanced as 0.1", count=int(light.sum())))
        weights = np.maximum(tenths, 1)
        balanced = weights / SCALE
    secondary = None
    if opts.secondary is not None:
        s_name, s_tol = opts.secondary
        secondary = (s_name, s_tol, measure_values(hh, s_name, workload))
    return Measures(name, weights, balanced, workload, secondary), problems
