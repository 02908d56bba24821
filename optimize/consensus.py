"""One unit's grids that follow the legacy layers where they agree, balanced as every plan is.

``consensus_partition`` per unit:

1. The unit's Voronoi cells (``geo.cells.build_cells``) are cut along every legacy grid boundary
   inside the unit, and the cells on both sides of a cut stay adjacent: a grid edge can then run
   exactly along a legacy line.
2. Each cell gets its legacy grid per layer (the households in it; an empty cell: the legacy grid
   under it); cells agreed into one grid by most layers form consensus groups, brought to the
   unit's k grids (``optimize.agreement_groups``).
3. The groups are made connected and moved into the balance band cell by cell
   (``optimize.rebalance``); the grids are the union of their cells (no smoothing: that would move
   them off the legacy lines).
4. Balance is judged as in ``optimize.partition``: within the tolerance; else, when the
   certificate (``optimize.certify``) proves the band unreachable and these grids reach the best
   possible band, "certified"; else the unit is planned by the ordinary models without the legacy
   layers (its note says so) — the contract's balance comes before agreement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from time import perf_counter

import numpy as np
import shapely

from gridplan.geo.cells import _adjacency, _components, build_cells, merge_points
from gridplan.geo.crs import Reprojector
from gridplan.geo.grids import dissolve_cells
from gridplan.optimize import agreement_groups as ag, certify, rebalance
from gridplan.optimize.cellmodel import FILL_CELLS_PER_GRID
from gridplan.optimize.partition import UnitPartition, _answer, _result, choose_k, partition_unit

LENGTH_SHARE = 1e-3   # a cut edge's length adds at most this to its agreement (ties go to long edges)


@dataclass(frozen=True)
class LegacyUnit:
    """The legacy layers inside one unit, in the dataset CRS.

    labels: (n, L) legacy grid index per layer of each household row of the unit (task order), -1
    where the layer has no grid; polygons: per layer, (geometries, their grid index) meeting the unit.
    """

    labels: np.ndarray
    polygons: tuple


class ConsensusSolver:
    """The pipeline's per-unit solver for a merge: consensus grids where a unit has legacy layers.

    Picklable (plain arrays and geometries), so it runs on process pools like ``solve_unit``.
    """

    def __init__(self, legacy: dict[int, LegacyUnit], crs):
        self.legacy = legacy
        self.crs = crs

    def __call__(self, task):
        """Partition one ``pipeline.UnitTask``; returns (unit index, partition, None)."""
        from gridplan.optimize.pipeline import failed_unit, solve_unit
        leg = self.legacy.get(task.unit_idx)
        if leg is None or not len(task.xy) or not leg.labels.shape[1] or (leg.labels < 0).all():
            return solve_unit(task)
        rp = Reprojector(self.crs, task.crs if task.crs is not None else self.crs)
        polys = tuple((rp.geom(g), ids) for g, ids in leg.polygons)
        try:
            return task.unit_idx, consensus_partition(task.geometry, task.xy, task.households, task.target,
                                                      task.options, leg.labels, polys), None
        except Exception as e:  # the unit is planned without the legacy layers, and says so
            idx, part, _ = solve_unit(task)
            if part.status == "failed":
                return failed_unit(task, f"{type(e).__name__}: {e}")
            note = f"the consensus of the legacy layers failed ({type(e).__name__}: {e}): planned afresh"
            return idx, replace(part, notes=(note, *part.notes)), None


def _lines(geometry, polygons: tuple):
    """Return the legacy grid boundaries inside the unit (metric), one array of lines, or None."""
    rings = [shapely.boundary(g) for g, _ in polygons if len(g)]
    if not rings:
        return None
    inner = shapely.intersection(shapely.union_all(np.concatenate(rings)), geometry)
    lines = [p for p in shapely.get_parts(inner) if p.geom_type in ("LineString", "LinearRing")]
    return np.array(lines, dtype=object) if lines else None


def joined_graph(geometry, xy, hh, k: int, lines):
    """Return (merged points, cell graph): cells cut along ``lines``, adjacent across them."""
    fill = math.sqrt(float(shapely.area(geometry)) / (FILL_CELLS_PER_GRID * k)) if FILL_CELLS_PER_GRID else None
    mp, graph = build_cells(geometry, xy, hh, barriers=lines, fill_spacing=fill)
    if lines is None:
        return mp, graph
    edges, lengths = _adjacency(graph.polygons, None)
    return mp, replace(graph, edges=edges, edge_length=lengths, component=_components(graph.n, edges))


def cell_labels(graph, mp, row_labels: np.ndarray, hh: np.ndarray, polygons: tuple) -> np.ndarray:
    """Return (c, L) legacy grid per cell: its heaviest household row's, else the grid under it."""
    c, n_layers = graph.n, row_labels.shape[1]
    out = np.full((c, n_layers), -1, dtype=np.int64)
    rep = shapely.point_on_surface(graph.polygons)
    for j, (geoms, ids) in enumerate(polygons):
        if len(geoms):
            ci, gi = shapely.STRtree(geoms).query(rep, predicate="intersects")
            out[ci[::-1], j] = np.asarray(ids)[gi[::-1]]   # the first hit wins
    if len(row_labels):
        cell_of_row = graph.point_cell[mp.index]
        order = np.lexsort((-hh, cell_of_row))[::-1]           # heaviest row of each cell written last
        out[cell_of_row[order]] = row_labels[order]
    return out


def consensus_partition(geometry, xy: np.ndarray, households: np.ndarray, target: float, options,
                        row_labels: np.ndarray, polygons: tuple) -> UnitPartition:
    """Split one unit into k balanced grids following the legacy layers (see the module docstring).

    Parameters
    ----------
    geometry : shapely Polygon or MultiPolygon
        The unit (metric CRS).
    xy, households : (n, 2), (n,)
        The unit's household rows.
    target : float
        Households per grid wanted.
    options : PlanOptions
        ``tolerance``, ``seed`` (and the ordinary models' budget for the fallback).
    row_labels : (n, L) int
        Legacy grid index per layer of each row (-1: none).
    polygons : tuple of (geometries, grid indexes) per layer
        The legacy grids meeting the unit, metric CRS.

    Returns
    -------
    UnitPartition
        status "consensus"; or the ordinary models' partition when the consensus misses the balance.
    """
    t0 = perf_counter()
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    hh = np.asarray(households, dtype=np.int64).reshape(-1)
    tol = float(options.tolerance)
    k = choose_k(int(hh.sum()), target)
    if k == 1 or merge_points(xy, hh).m <= k:
        return partition_unit(geometry, xy, hh, target, options)
    mp, graph = joined_graph(geometry, xy, hh, k, _lines(geometry, polygons))
    labels = cell_labels(graph, mp, np.asarray(row_labels, dtype=np.int64), hh, polygons)
    agree = ag.edge_agreement(graph.edges, labels)
    lo, hi = certify.band(int(hh.sum()), k, tol)
    groups = ag.consensus_groups(graph.edges, graph.edge_length, agree, graph.households, labels.shape[1], hi)
    longest = float(graph.edge_length.max()) if len(graph.edge_length) else 1.0
    weight = agree + LENGTH_SHARE * graph.edge_length / max(longest, 1e-9)
    lab = ag.to_k(groups, graph.edges, weight, graph.households, graph.centroid, k, int(options.seed))
    nbrs = graph.neighbours()
    if int(lab.max()) + 1 == k:
        lab = rebalance.connect(lab, graph.households, nbrs, k)
        lab = rebalance.rebalance(lab, graph.households, graph.centroid, nbrs, k, lo, hi)
    note = f"merged from {labels.shape[1]} legacy layer(s): {len(np.unique(groups))} consensus group(s) into {k} grids"
    a = _answer("consensus", dissolve_cells(graph.polygons, lab, int(lab.max()) + 1), xy, hh, (note,), graph.n)
    if a.single and len(a.polygons) == k and a.dev <= tol + 1e-9:
        return _result(a, [], "within", None, t0)
    cert = certify.certify(hh, k, tol, seed=int(options.seed))
    if (a.single and len(a.polygons) == k and cert.reachable is False and cert.best_band is not None
            and a.dev <= cert.best_band + 1e-9):
        return _result(a, [f"tolerance unreachable (proven): best possible ±{cert.best_band:.1%}"],
                       "certified", cert.best_band, t0)
    std = partition_unit(geometry, xy, hh, target, options)
    why = f"the consensus of the legacy layers reached {a.dev:.1%} against ±{tol:.0%}: planned without them"
    return replace(std, notes=(why, *std.notes), seconds=perf_counter() - t0)
