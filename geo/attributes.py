"""Extra numeric columns of the households file that a plan option reads (``--workload``'s columns).

Only the columns named are kept, as floats, in the households frame under ``attr:<name>`` (so they
never collide with the built-in columns). A named column the file does not have, or a cell that is
not a number, is a fatal problem naming the file, the option, the column and the rows; an empty
cell counts as 0 and is reported as a warning.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gridplan.geo import validate as V
from gridplan.geo.columns import available_columns, find_column
from gridplan.geo.problems import Problem

PREFIX = "attr:"


def attribute_column(name: str) -> str:
    """Return the households frame's column holding attribute ``name``."""
    return PREFIX + str(name).strip().lower()


def read_attributes(frame: pd.DataFrame, rows: V.Rows, alive: np.ndarray, names, option: str = "--workload"
                    ) -> tuple[dict[str, np.ndarray], list[Problem]]:
    """Read the numeric columns ``names`` of the households file.

    Parameters
    ----------
    frame : DataFrame
        The households file as read.
    rows : Rows
        How to name its rows.
    alive : (n,) bool array
        Rows still in play (problems are reported for these only).
    names : iterable of str
        Column names (matched case-insensitively).
    option : str
        The option that names them, for messages.

    Returns
    -------
    values : dict
        ``attribute_column(name)`` -> (n,) float array (empty cells 0).
    problems : list of Problem
    """
    out: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    for name in dict.fromkeys(str(n) for n in names):
        col = find_column(frame, name)
        if col is None:
            problems.append(V.file_problem(rows.source, "missing_column",
                                           f"{option} reads column '{name}', which {rows.source} does not have; "
                                           f"available columns: {available_columns(frame)}"))
            continue
        num, bad_text = V.to_numeric(frame[col])
        bad = alive & bad_text
        if bad.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(bad), "bad_attribute",
                                           f"{rows.count(int(bad.sum()))} with a non-numeric '{col}' "
                                           f"(read by {option})", fatal=True))
        empty = alive & np.isnan(num) & ~bad_text
        if empty.any():
            problems.append(V.rows_problem(rows, np.flatnonzero(empty), "empty_attribute",
                                           f"{rows.count(int(empty.sum()))} with an empty '{col}' "
                                           f"(read by {option}): taken as 0"))
        out[attribute_column(name)] = np.where(np.isnan(num), 0.0, num)
    return out, problems
