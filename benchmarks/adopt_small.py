"""Adopt on small units: households moved against the fewest possible, over many seeds.

Issue 12's target "households moved within 1.2x of the fewest possible on small units (<= 3
grids, <= 40 points)". Each seed is the unit of ``tests/test_adopt.py``: three 1 km grids, 36
points of 10-30 households, the western grid's households grown by 15%, re-planned against the
old grids (``optimize.baseline.replan_unit``). For each seed it prints the households moved, two
references and the seconds:

* the geometry-free fewest (a lower bound: any assignment of households to grids, shapes ignored);
* the contiguous fewest: grids drawn as connected unions of the points' Voronoi cells, solved to
  optimality by the lazy-cut model of ``tests/helpers/fewest.py`` (independent of the product's
  flow model).

    PYTHONPATH=. python benchmarks/adopt_small.py [--seeds 30]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.record import begin, record  # noqa: E402
from tests.test_adopt import contiguous_fewest_of, moved_and_fewest  # noqa: E402


def main() -> None:
    """Run the seeds and record the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=30)
    a = ap.parse_args()
    run = begin()
    rows = []
    print("| seed | balance | moved | geometry-free fewest | contiguous fewest | moved / contiguous | re-plan s |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for seed in range(a.seeds):
        t = time.perf_counter()
        part, moved, free = moved_and_fewest(seed)
        secs = time.perf_counter() - t
        best = contiguous_fewest_of(seed)
        ratio = moved / best if best else (1.0 if moved == 0 else float("inf"))
        rows.append(dict(seed=seed, balance=part.balance, moved=moved, geometry_free=free, contiguous=best,
                         ratio=ratio, seconds=secs))
        print(f"| {seed} | {part.balance} | {moved} | {free} | {best} | {ratio:.3f} | {secs:.1f} |", flush=True)
    within = sum(r["balance"] == "within" and r["moved"] <= 1.2 * r["contiguous"] for r in rows)
    free_ok = sum(r["moved"] <= 1.2 * r["geometry_free"] for r in rows)
    print(f"\nwithin tolerance and moved <= 1.2 x contiguous fewest: {within} of {len(rows)}; "
          f"<= 1.2 x the geometry-free bound: {free_ok} of {len(rows)}; "
          f"worst ratio {max(r['ratio'] for r in rows):.3f}; slowest re-plan {max(r['seconds'] for r in rows):.1f} s")
    record("adopt_small", {"seeds": rows, "within_1_2_of_contiguous": within, "within_1_2_of_geometry_free": free_ok,
                           "n": len(rows)}, run=run,
           notes="target: moved <= 1.2 x the fewest possible on small units; the contiguous fewest is the optimum "
                 "over connected unions of the points' Voronoi cells, the geometry-free fewest a lower bound")


if __name__ == "__main__":
    main()
