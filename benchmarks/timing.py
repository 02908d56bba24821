"""Timing every contender the same way: same warm-up, same number of runs, best and median reported.

A baseline timed once and cold against gridplan's warm best-of-3 flatters gridplan; ``measure``
is the one way the benchmark scripts time a callable, so ratios compare like with like.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Timing:
    """Seconds of each timed run (warm-up excluded) and the last run's result."""
    runs: list[float] = field(default_factory=list)
    warmup: int = 0
    result: Any = None

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def as_dict(self) -> dict:
        return {"best_s": round(self.best, 6), "median_s": round(self.median, 6),
                "runs_s": [round(t, 6) for t in self.runs], "repeat": len(self.runs), "warmup": self.warmup}


def measure(fn: Callable[[], Any], repeat: int = 3, warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeat`` times timed (perf_counter).

    Parameters
    ----------
    fn : callable
        No arguments; its last result is kept in ``Timing.result``.
    repeat : int
        Timed runs (>= 1).
    warmup : int
        Untimed runs first (0: the first timed run is cold).
    """
    t = Timing(warmup=warmup)
    for _ in range(max(0, warmup)):
        t.result = fn()
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        t.result = fn()
        t.runs.append(time.perf_counter() - t0)
    return t
