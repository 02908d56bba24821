"""Micro-grids (微网格): every grid split into contiguous pieces of about ``micro_target`` households.

A grid is cut into the Voronoi cells of its household points (``geo.cells.build_cells``: points
a few centimetres apart — doubled rows — are one point). Points closer than ``BUILDING_GAP`` (1 m:
the entrances of one block of flats, houses sharing a wall drawn as touching points) form one
building (:func:`buildings`), and a building is never split between micro-grids. Micro-grids then
grow from seeds taken in reading order (north→south, west→east): a micro-grid takes the unassigned
neighbouring building nearest to its seed until it holds ``micro_target`` households; a building
that would overshoot half a target again is left for a micro-grid of its own (so a block of flats
is one micro-grid however large). Micro-grids under half the target join their lightest
neighbour; cells without households join the micro-grid they border. Every micro-grid is a union
of edge-connected cells (one Polygon unless the grid itself has separate parts), the micro-grids
tile their grid, and each household is labelled with the micro-grid polygon that holds it
(``geo.grids.assign_points``), as a lookup would find it.

Codes: the grid code + a 3-digit sequence in reading order (``geo.grids.order_for_codes``). A grid
that would need more than 999 micro-grids gets larger ones (its target raised to H / 999).
Everything is deterministic: no solver, no randomness, orders fixed by coordinates.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridplan.geo.cells import CellGraph, MergedPoints, build_cells
from gridplan.geo.grids import assign_points, clear_points, dissolve_cells, order_for_codes

MAX_MICRO = 999          # 3-digit sequence
SMALL = 0.5              # a micro-grid under this share of the target joins a neighbour
OVERSHOOT = 1.5          # a cell taking a micro-grid past this share of the target starts its own
CLEARANCE = 0.1          # m: each household this far inside its micro-grid (as grids do)
BUILDING_GAP = 1.0       # m: points closer than this are one building (entrances of a block of flats)


@dataclass(frozen=True)
class GridMicro:
    """One grid's micro-grids: polygons in code order and the micro-grid of each household row."""

    polygons: list
    labels: np.ndarray
    households: np.ndarray


def buildings(mp: MergedPoints, graph: CellGraph, gap: float = BUILDING_GAP) -> list[np.ndarray]:
    """Return the cells of each building: points closer than ``gap`` (chains of them) are one building.

    A block of flats written as several entrances a few decimetres apart is one building, never
    split between micro-grids. Such points are linked by edges of their minimum spanning tree, which
    are Delaunay edges, so a building's cells are adjacent (unless the grid's outline cuts between).
    Cells without a point are their own building.
    """
    from scipy.spatial import cKDTree
    m = mp.m
    pairs = cKDTree(mp.xy).query_pairs(r=gap, output_type="ndarray") if m > 1 else np.zeros((0, 2), np.int64)
    if len(pairs):
        g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(m, m))
        comp = connected_components(g, directed=False)[1]
    else:
        comp = np.arange(m)
    of_cell = np.arange(graph.n, dtype=np.int64) + m
    of_cell[graph.point_cell] = comp
    _, of_cell = np.unique(of_cell, return_inverse=True)
    order = np.argsort(of_cell, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(of_cell[order])) + 1)


def _grow(graph: CellGraph, nbrs: list, target: float, members: list[np.ndarray]) -> np.ndarray:
    """Label the cells holding households with micro-grids grown from seeds in reading order (-1: empty).

    Buildings (``members``) are taken whole.
    """
    h, cen = graph.households, graph.centroid
    b_of = np.empty(graph.n, dtype=np.int64)
    for b, cells in enumerate(members):
        b_of[cells] = b
    b_h = np.array([h[c].sum() for c in members], dtype=float)
    lab = np.full(graph.n, -1, dtype=np.int64)
    g = 0
    for s in (c for c in np.lexsort((cen[:, 0], -cen[:, 1])) if h[c] > 0):
        if lab[s] >= 0:
            continue
        take = members[b_of[s]]
        lab[take] = g
        load = b_h[b_of[s]]
        heap = [(0.0, int(d)) for c in take for d in nbrs[c] if lab[d] < 0]
        heapq.heapify(heap)
        seen = {int(c) for c in take}
        while heap and load < target:
            _, c = heapq.heappop(heap)
            if c in seen or lab[c] >= 0:
                continue
            cells = members[b_of[c]]
            seen.update(int(x) for x in cells)
            if b_h[b_of[c]] > 0 and load + b_h[b_of[c]] > OVERSHOOT * target:
                continue            # a heavy building starts a micro-grid of its own
            lab[cells] = g
            load += b_h[b_of[c]]
            for x in cells:
                for d in nbrs[x]:
                    if lab[d] < 0 and int(d) not in seen:
                        heapq.heappush(heap, (float(np.hypot(*(cen[d] - cen[s]))), int(d)))
        g += 1
    return lab


def _attach(lab: np.ndarray, graph: CellGraph, nbrs: list) -> np.ndarray:
    """Give unlabelled (empty) cells the micro-grid they border (the nearest, for unreachable pieces)."""
    lab = lab.copy()
    frontier = [int(c) for c in np.flatnonzero(lab >= 0)]
    while frontier:
        nxt = []
        for c in frontier:
            for d in nbrs[c]:
                if lab[d] < 0:
                    lab[d] = lab[c]
                    nxt.append(int(d))
        frontier = sorted(nxt)
    left = np.flatnonzero(lab < 0)
    if len(left) and (lab >= 0).any():
        have = np.flatnonzero(lab >= 0)
        tree = shapely.STRtree(shapely.points(graph.centroid[have]))
        near = tree.query_nearest(shapely.points(graph.centroid[left]), all_matches=False)[1]
        lab[left] = lab[have[near]]
    return np.where(lab < 0, 0, lab)


def _merge_small(lab: np.ndarray, graph: CellGraph, target: float) -> np.ndarray:
    """Join micro-grids under ``SMALL`` × target to their lightest bordering micro-grid, smallest first."""
    lab = lab.copy()
    e = graph.edges.reshape(-1, 2)
    while len(e):
        k = int(lab.max()) + 1
        load = np.bincount(lab, weights=graph.households, minlength=k)
        a, b = lab[e[:, 0]], lab[e[:, 1]]
        cross = a != b
        pairs = np.unique(np.sort(np.column_stack([a[cross], b[cross]]), axis=1), axis=0) if cross.any() \
            else np.zeros((0, 2), np.int64)
        small = [j for j in np.argsort(load, kind="stable") if load[j] < SMALL * target]
        moved = False
        for j in small:
            nb = np.r_[pairs[pairs[:, 0] == j, 1], pairs[pairs[:, 1] == j, 0]]
            if len(nb):
                into = int(nb[np.lexsort((nb, load[nb]))[0]])
                lab[lab == j] = into
                moved = True
                break
        if not moved:
            break
        _, lab = np.unique(lab, return_inverse=True)
    return lab.astype(np.int64)


def split_grid(polygon, xy: np.ndarray, households: np.ndarray, target: float) -> GridMicro:
    """Split one grid into micro-grids (see the module docstring).

    Parameters
    ----------
    polygon : shapely Polygon or MultiPolygon
        The grid, in a metric CRS.
    xy : (n, 2) array
        Its household rows' points.
    households : (n,) array of int
        Households of each row.
    target : float
        Households per micro-grid wanted.

    Returns
    -------
    GridMicro
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    h = np.asarray(households, dtype=np.int64).reshape(-1)
    total = float(h.sum())
    target = max(float(target), total / MAX_MICRO)
    if len(xy) == 0 or total < (1 + SMALL) * target:
        return GridMicro([polygon], np.zeros(len(xy), np.int64), np.array([total]))
    mp, graph = build_cells(polygon, xy, h)
    if mp.m < 2:
        return GridMicro([polygon], np.zeros(len(xy), np.int64), np.array([total]))
    nbrs = graph.neighbours()
    lab = _merge_small(_attach(_grow(graph, nbrs, target, buildings(mp, graph)), graph, nbrs), graph, target)
    k = int(lab.max()) + 1
    polys = dissolve_cells(graph.polygons, lab, k)
    order = order_for_codes(polys)
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    polys = clear_points([polys[j] for j in order], xy, rank[lab[graph.point_cell[mp.index]]], CLEARANCE)
    labels = assign_points(polys, xy)
    return GridMicro(polys, labels, np.bincount(labels, weights=h, minlength=k))


def micro_grids(grids: gpd.GeoDataFrame, hh: gpd.GeoDataFrame, target: float
                ) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """Split every grid into micro-grids.

    Parameters
    ----------
    grids : GeoDataFrame
        The plan's grids (metric CRS): ``grid_code``, ``village_code``, geometry.
    hh : GeoDataFrame
        Household rows (same CRS) with ``grid_code`` and ``households``.
    target : float
        Households per micro-grid (``--micro-target``).

    Returns
    -------
    layer : GeoDataFrame
        ``micro_grid_code``, ``grid_code``, ``village_code``, ``households``, ``area_km2`` (grids' CRS).
    codes : (len(hh),) object array
        Each household row's micro-grid code (None outside every grid).
    """
    codes = np.full(len(hh), None, dtype=object)
    by_grid = hh.reset_index(drop=True).groupby("grid_code").indices if len(hh) else {}
    x, y = hh.geometry.x.to_numpy(), hh.geometry.y.to_numpy()
    counts = hh["households"].to_numpy(np.int64)
    rows = []
    for code, village, geom in zip(grids["grid_code"], grids["village_code"], grids.geometry):
        idx = by_grid.get(code, np.zeros(0, np.int64))
        res = split_grid(geom, np.column_stack([x[idx], y[idx]]), counts[idx], target)
        mcodes = np.array([f"{code}{i + 1:03d}" for i in range(len(res.polygons))], dtype=object)
        codes[idx] = mcodes[res.labels]
        for i, poly in enumerate(res.polygons):
            rows.append({"micro_grid_code": mcodes[i], "grid_code": code, "village_code": village,
                         "households": int(round(float(res.households[i]))),
                         "area_km2": float(shapely.area(poly)) / 1e6, "geometry": poly})
    if not rows:
        return gpd.GeoDataFrame({c: [] for c in ("micro_grid_code", "grid_code", "village_code", "households",
                                                 "area_km2")}, geometry=gpd.GeoSeries([], crs=grids.crs),
                                crs=grids.crs), codes
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=grids.crs), codes

