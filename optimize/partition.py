"""Balanced, contiguous, compact grids inside one unit: the models and the choice between them.

Models split a unit into k = ``choose_k(households, target)`` grids:

- ``optimize.power`` (status "power"): a capacity-constrained power diagram — the balanced
  assignment by min-cost flow, grids as power cells clipped to the unit (straight edges), Lloyd
  rounds for compactness. Tried first (not with barrier lines).
- ``optimize.rebalance`` (status "power+rebalanced"): the power grids mapped onto the Voronoi cell
  graph (``geo.cells``), boundary cells moved between neighbouring grids until the band is met
  (every grid stays connected); the moved cells are cut out of the straight power grids.
- ``optimize.cellmodel`` (status "optimal" | "feasible" | "heuristic", "+rebalanced" when the
  descent finished it): CP-SAT on the same cell graph with contiguity constraints; handles
  barriers, islands and concave outlines.
- ``optimize.treecut`` (status "tree"): recursive spanning-tree bisection of the same cell graph;
  straggly shapes, but balance where the compact models cannot reach it.

The choice: a power answer within the tolerance is kept (it is the most compact model). Otherwise
the models run in the order above, each within its deterministic budget (``model_budget``), until
one is within the tolerance (the tree only when none is), and the answers are ranked: single
Polygons before MultiPolygons, the intended k before another, then within the tolerance before
out of it; among answers within the tolerance the most compact (Polsby-Popper mean) wins, among
answers out of it the most balanced (then the most compact).

With a secondary measure (``--also-balance``, e.g. households while the primary is a workload) a
power answer within the tolerance is kept only when it also meets the secondary tolerance; otherwise
the other models run too, and among the answers within the primary tolerance those within the
secondary one rank first, then the least secondary deviation (a miss of it is noted, never certified).

Balance of every answer is counted from the polygons: each household row is labelled with the
grid polygon it lies in (``geo.grids.assign_points``), so the households layer, the grid counts and
a point-in-polygon lookup always agree, whatever the model did with merged points; and each
household is kept ``CLEARANCE`` inside its grid (``geo.grids.clear_points``), so a reprojection
cannot move it across an edge.

An answer out of tolerance is then put to ``optimize.certify``: the unit's household rows into k
groups within the band, geometry ignored. Proven impossible → balance "certified" (the note says
"tolerance unreachable" and gives the smallest achievable band, ``best_band``); otherwise
"miss" — a model miss, named as such. When the certificate is proven and an answer already reaches
the smallest achievable band, the remaining models are skipped (nothing could be more balanced).

Determinism: every model has iteration counts and CP-SAT deterministic time limits (one worker,
fixed seed); nothing depends on the wall clock or the machine's load.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from time import perf_counter

import numpy as np
import shapely

from gridplan.geo.cells import GRID_SIZE, merge_points
from gridplan.geo.grids import assign_points, clear_points, order_for_codes, polsby_popper, polygon_parts
from gridplan.optimize import cellmodel, certify, compact, power, rebalance, treecut

CLEARANCE = 0.1   # m: each household this far inside its grid (less only between points 0.2 m apart)


@dataclass(frozen=True)
class UnitPartition:
    """One unit's grids: what the pipeline writes and counts."""

    labels: np.ndarray          # grid index 0..k-1 of each input household row, in input order
    polygons: list              # k Polygons (metric CRS), index = grid index, in code order, tiling the unit
    k: int
    status: str                 # the model: "power" | "optimal" | "feasible" | "heuristic" | "tree" | "single" | "empty"
    max_abs_dev: float          # max |h - mean| / mean over the k grids
    seconds: float
    notes: tuple[str, ...] = ()
    households: tuple[int, ...] = ()   # households of each grid (index = grid index)
    cells: int = 0                     # cells in the unit's graph (after merging coincident points)
    # What is known about balance (filled by the chooser; read by the pipeline's summary):
    #   "within"  every grid within the tolerance;
    #   "certified"  out of tolerance, and a geometry-free model proves no k-grouping of the rows
    #                can meet it (best_band is then the smallest achievable max deviation);
    #   "miss"  out of tolerance without such a proof: a model miss;
    #   "failed"  the models raised (the unit is one grid; the cause is in notes);
    #   "single" / "empty"  k = 1 or no households: nothing to balance.
    balance: str = ""
    best_band: float | None = None


def choose_k(total_households: float, target: float) -> int:
    """Return the number of grids for a unit: total / target rounded half up, at least 1."""
    if not target > 0:
        raise ValueError(f"target must be > 0, got {target}")
    t = float(total_households) if total_households == total_households else 0.0
    return max(1, int(math.floor(max(t, 0.0) / float(target) + 0.5)))


def model_budget(options) -> dict:
    """Return the deterministic per-unit budget of each model, for the summary.

    Iteration counts of the power model, CP-SAT deterministic time units and rounds of the cell
    model.
    """
    return {"power": {"starts": power.STARTS, "starts_while_out_of_tolerance": power.MORE_STARTS,
                      "lloyd_rounds": power.ROUNDS},
            "cells": {"cp_sat_deterministic_time": cellmodel.DTIME_PER_SECOND * float(options.time_limit_per_unit),
                      "rounds": cellmodel.ROUNDS},
            "rebalance": {"moves": rebalance.MAX_MOVES},
            "tree": {"spanning_trees_per_split": treecut.ATTEMPTS},
            "certificate": {"cp_sat_deterministic_time_per_model": certify.DTIME}}


@dataclass(frozen=True)
class _Answer:
    """One model's grids, counted from the polygons."""

    status: str
    polygons: list          # code order
    labels: np.ndarray      # grid of each input row
    households: np.ndarray  # per grid
    dev: float
    pp: float
    single: bool            # every grid one Polygon
    notes: tuple[str, ...]
    cells: int
    xy: np.ndarray = None   # the rows' points (for the final clearance)


def _answer(status: str, polys, xy: np.ndarray, hh: np.ndarray, notes=(), cells: int = 0) -> _Answer:
    """Put grids in code order and label every household row with the polygon holding it."""
    k = len(polys)
    order = order_for_codes(polys)
    polys = [polys[j] for j in order]
    labels = assign_points(polys, xy) if len(xy) else np.zeros(0, dtype=np.int64)
    gh = np.bincount(labels, weights=hh, minlength=k).astype(np.int64) if len(xy) else np.zeros(k, np.int64)
    mean = gh.sum() / k if k else 0.0
    dev = float(np.max(np.abs(gh - mean)) / mean) if mean > 0 else 0.0
    multi = [i for i, p in enumerate(polys) if p.geom_type != "Polygon"]
    if multi:
        notes = tuple(notes) + (f"grid(s) {', '.join(str(i) for i in multi)} are MultiPolygons: the unit has "
                                "parts (islands) that no grid can reach by a shared edge",)
    single = not multi
    return _Answer(status, polys, labels.astype(np.int64), gh, dev, float(np.mean(polsby_popper(polys))),
                   single, tuple(notes), int(cells), xy)


def _sec_dev(a: _Answer, sec) -> float:
    """Return the answer's max |deviation| on the secondary measure (``sec`` = (values per row, tolerance))."""
    k = len(a.polygons)
    g = np.bincount(a.labels, weights=sec[0], minlength=k) if len(a.labels) else np.zeros(k)
    mean = g.sum() / k if k else 0.0
    return float(np.max(np.abs(g - mean)) / mean) if mean > 0 else 0.0


def _sec_out(a: _Answer, sec) -> bool:
    """Tell whether a secondary measure is set and the answer misses its tolerance."""
    return sec is not None and _sec_dev(a, sec) > sec[1] + 1e-9


def _rank(a: _Answer, k0: int, tol: float, sec=None) -> tuple:
    """Sort key of the choice (smaller is better); see the module docstring.

    With a secondary measure (``sec``), answers within the primary tolerance are ranked by it next:
    within its own tolerance first, then the least secondary deviation, then compactness.
    """
    within = a.dev <= tol + 1e-9
    s_dev = _sec_dev(a, sec) if sec is not None and within else 0.0
    s_out = sec is not None and within and s_dev > sec[1] + 1e-9
    return (not a.single, len(a.polygons) != k0, not within, 0.0 if within else round(a.dev, 9),
            s_out, round(s_dev, 9) if s_out else 0.0, -a.pp)


def partition_unit(geometry, xy: np.ndarray, households: np.ndarray, target: float, options,
                   barriers=None, k: int | None = None, secondary=None) -> UnitPartition:
    """Split one unit into k balanced, contiguous, compact grids (see the module docstring).

    Parameters
    ----------
    geometry : shapely Polygon or MultiPolygon
        The unit in a metric CRS.
    xy : (n, 2) array
        Household rows' points (metric CRS).
    households : (n,) array of int
        The balanced measure of each row: households, or a workload / population in integer
        tenths (``optimize.measures``); every value >= 1.
    target : float
        Households per grid wanted (measured in ``households``; ignored when ``k`` is given).
    options : PlanOptions
        ``tolerance``, ``time_limit_per_unit`` (deterministic budget), ``seed``.
    barriers : optional
        Lines no grid may straddle.
    k : int, optional
        The number of grids, when it is not ``choose_k(sum(households), target)`` (a unit
        balanced on another measure than the households that set its grid count).
    secondary : ((n,) array, float), optional
        A second measure per row and its tolerance (``--also-balance``): while the answer in hand
        misses it, the other models are tried too, and among answers within the primary tolerance
        the one best on the secondary is kept (it is reported, never claimed beyond that).

    Returns
    -------
    UnitPartition
        Every return path sets ``balance`` (and ``best_band`` when certified).
    """
    t0 = perf_counter()
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    hh = np.asarray(households).astype(np.int64).reshape(-1) if len(xy) else np.zeros(0, np.int64)
    total = int(hh.sum())
    tol = float(options.tolerance)
    k = k0 = choose_k(total, target) if k is None else max(1, int(k))
    mp = merge_points(xy, hh)
    notes: list[str] = []
    if mp.m and k > mp.m:
        notes.append(f"k reduced from {k} to {mp.m}: only {mp.m} distinct household locations")
        k = k0 = mp.m
    if mp.m == 0 or k == 1:
        return _whole(geometry, xy, hh, "empty" if mp.m == 0 else "single", notes, mp.m, t0)
    answers: list[_Answer] = []
    failures: list[str] = []
    cert = None
    sec = None if secondary is None else (np.asarray(secondary[0], dtype=float).reshape(-1), float(secondary[1]))
    if barriers is None:
        p = _run(failures, "power", _power, geometry, mp, xy, hh, k, tol, options)
        if p is not None:
            answers.append(p)
            if p.dev <= tol + 1e-9 and not _sec_out(p, sec):
                return _result(p, notes, "within", None, t0, geometry)
            if p.dev > tol + 1e-9:
                cert = certify.certify(hh, k, tol, seed=int(options.seed))
    if not _settled(answers, cert):
        _graph_models(answers, failures, geometry, xy, hh, k, options, barriers, cert, sec)
    if not answers:
        raise RuntimeError("; ".join(failures) or "no model gave grids")
    best = min(answers, key=lambda a: _rank(a, k0, tol, sec))
    notes.extend(failures)
    if best.dev <= tol + 1e-9:
        if _sec_out(best, sec):
            notes.append(f"secondary balance missed: ±{sec[1]:.0%} not met by any model's grids within the "
                         f"primary tolerance (best {_sec_dev(best, sec):.1%}); not proven unreachable")
        return _result(best, notes, "within", None, t0, geometry)
    if cert is None or len(best.polygons) != k:
        cert = certify.certify(hh, len(best.polygons), tol, seed=int(options.seed))
    return _result(best, notes + [_miss_note(best, answers, cert, tol)],
                   "certified" if cert.reachable is False else "miss",
                   cert.best_band if cert.reachable is False else None, t0, geometry)


def _graph_models(answers: list, failures: list, geometry, xy, hh, k: int, options, barriers, cert,
                  sec=None) -> None:
    """Run the models on the cell graph, appending their answers to ``answers``.

    First the power grids rebalanced on the cells, then (while nothing is within the tolerance)
    the CP-SAT cell model (rebalanced too when out of tolerance) and the spanning-tree bisection.
    """
    tol = float(options.tolerance)
    built = _run(failures, "cell graph", cellmodel.build_graph, geometry, xy, hh, k, barriers)
    if built is None:
        return
    mp, graph = built
    nbrs = graph.neighbours()
    lo, hi = certify.band(int(hh.sum()), k, tol)

    def rebalanced(status: str, cell_lab: np.ndarray, notes=(), base=None) -> None:
        lab0 = rebalance.connect(cell_lab, graph.households, nbrs, k)
        lab = rebalance.rebalance(lab0, graph.households, graph.centroid, nbrs, k, lo, hi)
        polys = _patched(base, graph, mp, cell_lab, lab, k) if base is not None else None
        a = _answer(status, polys, xy, hh, notes, graph.n) if polys is not None else None
        if a is None or a.dev > tol + 1e-9:
            polys, more = cellmodel.grid_polygons(mp, graph, lab, k, tol)
            b = _answer(status, polys, xy, hh, tuple(notes) + tuple(more), graph.n)
            a = b if a is None or _rank(b, k, tol) < _rank(a, k, tol) else a
        answers.append(a)

    power_answer = next((a for a in answers if a.status == "power"), None)
    if power_answer is not None:
        rep = shapely.get_coordinates(shapely.point_on_surface(graph.polygons))
        rep[graph.point_cell] = mp.xy
        _run(failures, "rebalance", rebalanced, "power+rebalanced", assign_points(power_answer.polygons, rep),
             ("power grids rebalanced by moving boundary cells",), power_answer.polygons)
    if _within(answers, tol, sec):
        return
    cell = _run(failures, "cells", cellmodel.cell_partition, mp, graph, k, options)
    if cell is not None:
        answers.append(_answer(cell.status, cell.polygons, xy, hh, cell.notes, graph.n))
        if answers[-1].dev > tol + 1e-9 and cell.k == k:
            _run(failures, "rebalance", rebalanced, cell.status + "+rebalanced", cell.labels, cell.notes)
    if not _within(answers, tol, sec) and graph.n_components == 1:
        band = tol if cert is None or cert.best_band is None else max(tol, cert.best_band)
        lab = _run(failures, "tree", treecut.tree_labels, graph, k, band, int(options.seed))
        if lab is not None:
            lab = compact.compact(lab, graph, k, *certify.band(int(graph.households.sum()), k, band))
            polys, more = cellmodel.grid_polygons(mp, graph, lab, k, band)
            answers.append(_answer("tree", polys, xy, hh, ("balanced by recursive spanning-tree bisection (edges "
                                                           "then shortened by boundary moves): the compact models "
                                                           "missed the tolerance here",) + tuple(more), graph.n))


def _patched(base: list, graph, mp, lab0: np.ndarray, lab: np.ndarray, k: int) -> list | None:
    """Move the relabelled cells out of the ``base`` grids into their new grids.

    Straight edges are kept elsewhere. Returns None when that does not give k single Polygons.
    """
    moved = np.flatnonzero(lab != lab0)
    if not len(moved):
        return list(base)
    cut = shapely.union_all(graph.polygons[moved], grid_size=GRID_SIZE)
    out = []
    for j in range(k):
        g = shapely.difference(base[j], cut, grid_size=GRID_SIZE)
        add = graph.polygons[moved[lab[moved] == j]]
        g = shapely.union_all(np.r_[np.array([g], dtype=object), add], grid_size=GRID_SIZE) if len(add) else g
        out.append(g)
    # pieces cut off join the neighbour sharing most border (the caller recounts the balance)
    return power.repair_fragments(out, mp.xy, mp.households)


def _run(failures: list[str], name: str, fn, *args):
    """One model; its exception becomes a note (the other models still run)."""
    try:
        return fn(*args)
    except Exception as e:  # one model failing must not lose the others' answers
        failures.append(f"the {name} model failed ({type(e).__name__}: {e})")
        return None


def _within(answers: list[_Answer], tol: float, sec=None) -> bool:
    return any(a.dev <= tol + 1e-9 and a.single and not _sec_out(a, sec) for a in answers)


def _settled(answers: list[_Answer], cert) -> bool:
    """Tell whether the certificate proves the band unreachable and an answer reaches the best band."""
    return (cert is not None and cert.reachable is False and cert.best_band is not None
            and any(a.single and a.dev <= cert.best_band + 1e-9 for a in answers))


def _miss_note(best: _Answer, answers: list[_Answer], cert, tol: float) -> str:
    tried = ", ".join(f"{a.status} {a.dev:.1%}" for a in answers)
    if cert.reachable is False:
        if cert.best_band is not None:
            return (f"tolerance unreachable: no split of the unit's household points into {len(best.polygons)} "
                    f"groups meets ±{tol:.0%} (proven, geometry aside); the best possible is "
                    f"±{cert.best_band:.1%}, these grids reach {best.dev:.1%} (models: {tried})")
        return (f"tolerance unreachable: no split of the unit's household points into {len(best.polygons)} groups "
                f"meets ±{tol:.0%} (proven, geometry aside); no split reaches better than ±{cert.band_bound:.1%}, "
                f"these grids reach {best.dev:.1%} (models: {tried})")
    why = "the points could be split within it, geometry aside" if cert.reachable else \
        "the certificate was not decided within its limit"
    return f"model miss: max deviation {best.dev:.1%} exceeds ±{tol:.0%} ({why}; models: {tried})"


def _result(a: _Answer, notes: list[str], balance: str, best_band, t0: float, within=None) -> UnitPartition:
    polys = clear_points(a.polygons, a.xy, a.labels, CLEARANCE, within=within)
    return UnitPartition(a.labels, polys, len(a.polygons), a.status, a.dev, perf_counter() - t0,
                         tuple(notes) + a.notes, tuple(int(v) for v in a.households), a.cells,
                         balance=balance, best_band=best_band)


def _whole(geometry, xy, hh, status: str, notes: list[str], m: int, t0: float) -> UnitPartition:
    """Return the unit as one grid (no households, or k = 1)."""
    parts = polygon_parts(geometry)
    if not parts:
        raise ValueError("the unit geometry has no polygonal area")
    g = parts[0] if len(parts) == 1 else shapely.union_all(parts)
    labels = np.zeros(len(xy), dtype=np.int64)
    return UnitPartition(labels, [g], 1, status, 0.0, perf_counter() - t0, tuple(notes), (int(hh.sum()),), int(m),
                         balance=status, best_band=None)


def _power(geometry, mp, xy, hh, k, tol, options) -> _Answer | None:
    """Return the power-diagram model's grids, or None when it found no single-Polygon tiling."""
    if mp.m < k:
        return None
    res = power.power_partition(geometry, mp.xy, mp.households, k, tol, seed=int(options.seed))
    if res is None:
        return None
    return _answer("power", res.polygons, xy, hh, (), mp.m)
