"""Data problems as data: every check returns ``Problem`` records, never raises mid-way.

A problem names its source file, the row (CSV, 1-based data row) or feature (0-based feature
index, or the feature's id when it has one), a short machine ``kind`` and a plain sentence.
``fatal`` problems stop a plan (CLI exit 1, HTTP 422); the others are repaired and reported in
``summary.json["problems"]``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

LIST_LIMIT = 10  # rows named in one aggregated problem's message


@dataclass(frozen=True)
class Problem:
    """One data problem: the client's file, the row(s), a machine kind and a plain sentence."""

    source: str          # file name (or "boundaries"/"households" for in-memory frames)
    row: str | None      # "row 17", "feature 3", "feature id=4690251002" ... or None (whole file)
    kind: str            # machine-readable: "swapped_lonlat", "outside_units", "invalid_polygon" ...
    message: str         # one plain sentence
    fatal: bool = False
    count: int = 1       # how many rows this record stands for (aggregated problems)

    def as_dict(self) -> dict:
        """Return the problem as a plain dict (its fields)."""
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.source}" + (f", {self.row}" if self.row else "")
        return f"{'ERROR' if self.fatal else 'warning'}: {where}: {self.message}"


class DataError(Exception):
    """Raised when input data has fatal problems. Carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        fatal = [p for p in self.problems if p.fatal] or self.problems
        head = "; ".join(str(p) for p in fatal[:5])
        more = f" (and {len(fatal) - 5} more)" if len(fatal) > 5 else ""
        super().__init__(head + more)


def has_fatal(problems: Iterable[Problem]) -> bool:
    """Return True when any problem is fatal."""
    return any(p.fatal for p in problems)


# ----------------------------------------------------------------------------- naming rows
@dataclass
class Rows:
    """How to name the rows of one source. Arrays are full length (one entry per source row)."""

    source: str
    src_row: np.ndarray            # 1-based row / feature number in the source
    tabular: bool                  # True: "row N" (1-based); False: "feature N" (0-based)
    ids: np.ndarray | None = None  # id values (shown for features)

    @classmethod
    def simple(cls, source: str, n: int, tabular: bool = True, ids=None) -> "Rows":
        """Name rows 1..n of ``source`` in order."""
        return cls(source, np.arange(1, n + 1, dtype=np.int64), tabular, ids)

    @property
    def noun(self) -> str:
        """Return "row" for a table, "feature" for a spatial file."""
        return "row" if self.tabular else "feature"

    def count(self, n: int) -> str:
        """Return ``n`` with the noun, e.g. '3 rows'."""
        return f"{n} {self.noun}{'' if n == 1 else 's'}"

    def _bare(self, i: int) -> str:
        n = int(self.src_row[i])
        if self.tabular:
            return str(n)
        text = str(n - 1)
        if self.ids is not None:
            v = self.ids[i]
            if v is not None and not (isinstance(v, float) and np.isnan(v)) and str(v) != "" and v is not pd.NA:
                text += f" (id={v})"
        return text

    def take(self, idx) -> "Rows":
        """Return the names of the rows at positions ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        return Rows(self.source, self.src_row[idx], self.tabular, None if self.ids is None else self.ids[idx])

    def label(self, i: int) -> str:
        """Return the name of the row at position ``i``, e.g. 'row 4' or 'feature 3 (id=a)'."""
        return f"{self.noun} {self._bare(i)}"

    def listing(self, idx: Sequence[int], limit: int = LIST_LIMIT) -> str:
        """'row 4' / 'rows 4, 9, 12 (+97 more)' / 'features 0 (id=a), 3 (id=b)'."""
        idx = np.asarray(idx, dtype=np.int64)
        n = len(idx)
        if n == 0:
            return ""
        head = ", ".join(self._bare(int(i)) for i in idx[:limit])
        more = f" (+{n - limit} more)" if n > limit else ""
        return f"{self.noun}{'' if n == 1 else 's'} {head}{more}"


def rows_problem(rows: Rows, idx, kind: str, sentence: str, fatal: bool = False) -> Problem:
    """One aggregated Problem for the rows at positions ``idx``; the message ends with the listing."""
    idx = np.asarray(idx, dtype=np.int64)
    where = rows.listing(idx)
    return Problem(rows.source, where or None, kind, f"{sentence} ({where})." if where else sentence + ".",
                   fatal, max(int(len(idx)), 1))


def file_problem(source: str, kind: str, message: str, fatal: bool = True, count: int = 1) -> Problem:
    """Build a problem about a whole file (no row)."""
    return Problem(source, None, kind, message, fatal, count)
