"""Data problems as data: every check returns ``Problem`` records, never raises mid-way.

A problem names its source file, the row (CSV, 1-based data row) or feature (0-based feature
index, or the feature's id when it has one), a short machine ``kind`` and a plain sentence.
``fatal`` problems stop a plan (CLI exit 1, HTTP 422); the others are repaired and reported in
``summary.json["problems"]``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable


@dataclass(frozen=True)
class Problem:
    source: str          # file name (or "boundaries"/"households" for in-memory frames)
    row: str | None      # "row 17", "feature 3", "feature id=4690251002" ... or None (whole file)
    kind: str            # machine-readable: "swapped_lonlat", "outside_units", "invalid_polygon" ...
    message: str         # one plain sentence
    fatal: bool = False
    count: int = 1       # how many rows this record stands for (aggregated problems)

    def as_dict(self) -> dict:
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
    return any(p.fatal for p in problems)
