"""Household units and the planar cell graph of one unit.

A unit (village / community polygon) is cut into *cells*: the Voronoi cells of its household
points, clipped to the unit, so that the cells tile the unit exactly. Coincident points are
merged first (``merge_points``: only points a few centimetres apart). A clipped Voronoi cell may fall
apart into several pieces (a concave unit, a multipart unit, a barrier line cutting through it):
the piece holding the point carries its households, the other pieces are *empty cells* (0
households) that still belong to the tiling and are attached to some grid by the optimizer.

Two cells are adjacent when they share a boundary of positive length (a corner is not enough)
that does not run along a barrier line (river, expressway). The graph may have several
connected components (islands, multipart units, a barrier cutting the unit in two).

Everything is in the unit's metric CRS. All outputs are deterministic for the same input.
Nothing here knows about the optimizer: ``optimize.partition`` consumes ``CellGraph``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

GRID_SIZE = 1e-3        # metres: every clipped cell is snapped to this precision so shared edges match exactly
MIN_SHARED = 1e-2       # metres of common boundary below which two cells only "touch" (corner contact)
BARRIER_EPS = 5e-3      # metres: a shared edge within this distance of a barrier line runs along it
MERGE_RADIUS = 0.05     # metres: points this close are one indivisible point (doubled rows, GPS noise)


@dataclass(frozen=True)
class MergedPoints:
    """Distinct household locations of one unit.

    xy: (m, 2) coordinates; households: (m,) summed counts; index: (n,) the merged point of each
    input row (input order), so ``households[index]`` broadcasts back to the input rows.
    """

    xy: np.ndarray
    households: np.ndarray
    index: np.ndarray

    @property
    def m(self) -> int:
        """Return the number of merged points."""
        return len(self.households)


@dataclass(frozen=True)
class CellGraph:
    """Cells of one unit and their adjacency.

    polygons: (c,) shapely Polygons (None for a coarsened graph, whose nodes are groups of cells);
    households: (c,) int; area: (c,) m²; centroid: (c, 2); point_cell: (m,) cell of each merged
    point; edges: (e, 2) int pairs i < j of adjacent cells, sorted; edge_length: (e,) shared
    boundary length; component: (c,) connected-component id (0.. in order of first cell).
    """

    polygons: np.ndarray | None
    households: np.ndarray
    area: np.ndarray
    centroid: np.ndarray
    point_cell: np.ndarray
    edges: np.ndarray
    edge_length: np.ndarray
    component: np.ndarray

    @property
    def n(self) -> int:
        """Return the number of cells."""
        return len(self.households)

    @property
    def n_components(self) -> int:
        """Return the number of connected components."""
        return int(self.component.max()) + 1 if self.n else 0

    def neighbours(self) -> list[np.ndarray]:
        """Adjacency lists (sorted) of every cell."""
        nb: list[list[int]] = [[] for _ in range(self.n)]
        for a, b in self.edges:
            nb[a].append(int(b))
            nb[b].append(int(a))
        return [np.array(sorted(x), dtype=np.int64) for x in nb]


def merge_points(xy, households=None, snap: float = MERGE_RADIUS) -> MergedPoints:
    """Merge points closer than ``snap`` metres (chains of them, single linkage) into one point.

    Only points no grid edge could reasonably pass between are merged (a doubled row, GPS noise):
    entrances of one building 0.2 m apart stay separate points, so a grid edge may run between
    them, as it may between the rows that ``check_plan.py --certify`` splits. The merged location
    is the household-weighted mean of its members; merged points are ordered by their members'
    smallest coordinates (deterministic, independent of input order).
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    n = len(xy)
    h = np.ones(n, dtype=np.int64) if households is None else np.asarray(households).astype(np.int64).reshape(-1)
    if len(h) != n:
        raise ValueError(f"households has {len(h)} values for {n} points")
    if n == 0:
        return MergedPoints(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    if not np.isfinite(xy).all():
        bad = int(np.flatnonzero(~np.isfinite(xy).all(axis=1))[0])
        raise ValueError(f"household row {bad}: coordinates are not finite")
    if (h < 1).any():
        bad = int(np.flatnonzero(h < 1)[0])
        raise ValueError(f"household row {bad}: households must be >= 1, got {h[bad]}")
    from scipy.spatial import cKDTree
    pairs = cKDTree(xy).query_pairs(r=snap, output_type="ndarray") if n > 1 else np.zeros((0, 2), np.int64)
    if len(pairs):
        g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        _, comp = connected_components(g, directed=False)
    else:
        comp = np.arange(n)
    # order groups by their lexicographically smallest member (input order plays no part)
    o = np.lexsort((xy[:, 1], xy[:, 0]))
    first_pos = np.full(int(comp.max()) + 1, n, dtype=np.int64)
    np.minimum.at(first_pos, comp[o], np.arange(n))
    rank = np.empty(len(first_pos), dtype=np.int64)
    rank[np.argsort(first_pos, kind="stable")] = np.arange(len(first_pos))
    inv = rank[comp]
    m = len(first_pos)
    hs = np.bincount(inv, weights=h, minlength=m)
    sx = np.bincount(inv, weights=h * xy[:, 0], minlength=m) / hs
    sy = np.bincount(inv, weights=h * xy[:, 1], minlength=m) / hs
    return MergedPoints(np.column_stack([sx, sy]), np.rint(hs).astype(np.int64), inv.astype(np.int64))


def _polygons(geom) -> list:
    """Return the non-empty Polygon parts of any geometry (collections flattened)."""
    if geom is None or geom.is_empty:
        return []
    parts = shapely.get_parts(shapely.get_parts(geom))
    out = []
    for p in parts:
        if p.geom_type == "Polygon" and p.area > 0:
            out.append(p)
        elif p.geom_type in ("MultiPolygon", "GeometryCollection"):
            out.extend(_polygons(p))
    return out


def _barrier_lines(barriers, unit):
    """Barrier lines (any linear geometry or iterable of them) clipped to the unit, or None."""
    if barriers is None:
        return None
    if isinstance(barriers, shapely.Geometry):
        geoms = [barriers]
    else:
        geoms = [g for g in barriers if g is not None]
    lines = []
    for g in geoms:
        g = shapely.boundary(g) if g.geom_type in ("Polygon", "MultiPolygon") else g
        lines.extend(p for p in shapely.get_parts(g) if p.geom_type in ("LineString", "LinearRing"))
    if not lines:
        return None
    u = shapely.union_all(lines)
    u = shapely.intersection(u, shapely.buffer(unit, 1.0))
    return None if u.is_empty else u


def _voronoi(xy: np.ndarray, envelope) -> list:
    """Voronoi polygon of each point (input order), covering ``envelope``."""
    m = len(xy)
    if m == 1:
        return [envelope]
    pts = shapely.multipoints(xy)
    vor = shapely.voronoi_polygons(pts, extend_to=envelope, ordered=True)
    polys = list(shapely.get_parts(vor))
    if len(polys) == m:
        return polys
    # degenerate input (e.g. all points collinear is fine, but GEOS may drop some): match by containment
    tree = shapely.STRtree(polys)
    idx = tree.query_nearest(shapely.points(xy), all_matches=False)
    return [polys[j] for j in idx[1]]


def fill_seeds(unit, xy: np.ndarray, spacing: float, limit: int = 5000) -> np.ndarray:
    """Lay a hexagonal lattice of extra (empty) Voronoi seeds inside ``unit``.

    Seeds lie ``spacing`` metres apart and at least spacing/2 away from every household point:
    they cut empty land into small cells, so grid edges can run straight through fields instead
    of following long Voronoi edges. Beyond ``limit`` seeds the spacing grows to fit.
    """
    if not spacing > 0:
        return np.zeros((0, 2))
    minx, miny, maxx, maxy = unit.bounds
    dy = spacing * np.sqrt(3) / 2
    ys = np.arange(miny + dy / 2, maxy, dy)
    xs = np.arange(minx + spacing / 2, maxx, spacing)
    if len(xs) * len(ys) > limit:
        return fill_seeds(unit, xy, spacing * np.sqrt(len(xs) * len(ys) / limit), limit)
    gx, gy = np.meshgrid(xs, ys)
    gx = gx + (np.arange(len(ys)) % 2)[:, None] * spacing / 2
    cand = np.column_stack([gx.ravel(), gy.ravel()])
    cand = cand[shapely.contains_xy(unit, cand[:, 0], cand[:, 1])]
    if len(cand) and len(xy):
        tree = shapely.STRtree(shapely.points(xy))
        _, d = tree.query_nearest(shapely.points(cand), return_distance=True, all_matches=False)
        cand = cand[d >= spacing / 2]
    return cand


def build_cells(geometry, xy, households=None, barriers=None, snap: float = MERGE_RADIUS,
                fill_spacing: float | None = None) -> tuple[MergedPoints, CellGraph]:
    """Build the merged points and the cell graph of one unit.

    geometry: the unit's valid Polygon/MultiPolygon (metric CRS); xy: (n, 2) household points
    (may be empty; points slightly outside the unit go to the nearest cell); households: (n,) counts;
    barriers: optional line geometries adjacency may not cross; fill_spacing: optional spacing
    of extra empty seeds (``fill_seeds``).
    """
    unit = geometry if geometry.is_valid else shapely.make_valid(geometry)
    unit_parts = _polygons(unit)
    if not unit_parts:
        raise ValueError("the unit geometry has no polygonal area")
    unit = shapely.set_precision(shapely.union_all(unit_parts), GRID_SIZE)
    mp = merge_points(xy, households, snap=snap)
    bar = _barrier_lines(barriers, unit)
    pieces, owner = _voronoi_pieces(unit, mp, fill_spacing)
    if bar is not None and len(pieces):
        pieces, owner = _cut_by_barriers(pieces, owner, bar)
    c = len(pieces)
    point_cell = _point_cells(mp, pieces, owner)
    hh = np.bincount(point_cell, weights=mp.households, minlength=c).astype(np.int64) if mp.m else np.zeros(c, np.int64)
    area = shapely.area(pieces) if c else np.zeros(0)
    cen = shapely.get_coordinates(shapely.centroid(pieces)) if c else np.zeros((0, 2))

    # adjacency: shared boundary of positive length not along a barrier
    edges, lengths = _adjacency(pieces, bar)
    comp = _components(c, edges)
    graph = CellGraph(pieces, hh, np.asarray(area, float), cen, point_cell, edges, lengths, comp)
    return mp, graph


def _voronoi_pieces(unit, mp: MergedPoints, fill_spacing: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``unit`` into Voronoi cells of the merged points, split into connected pieces.

    Returns the pieces and their owners: the merged point whose Voronoi cell each piece came
    from, -1 for pieces of fill seeds or of a unit without points.
    """
    pieces, owner = [], []
    if mp.m == 0:
        for p in _polygons(unit):
            pieces.append(p)
            owner.append(-1)
    else:
        minx, miny, maxx, maxy = unit.bounds
        px0, py0 = mp.xy.min(axis=0)
        px1, py1 = mp.xy.max(axis=0)
        pad = max(maxx - minx, maxy - miny, px1 - px0, py1 - py0, 1.0)
        env = shapely.box(min(minx, px0) - pad, min(miny, py0) - pad, max(maxx, px1) + pad, max(maxy, py1) + pad)
        extra = fill_seeds(unit, mp.xy, fill_spacing) if fill_spacing else np.zeros((0, 2))
        vor = _voronoi(np.vstack([mp.xy, extra]), env)
        clipped = shapely.intersection(np.array(vor, dtype=object), unit, grid_size=GRID_SIZE)
        for i, g in enumerate(clipped):
            for p in _polygons(g):
                pieces.append(p)
                owner.append(i if i < mp.m else -1)
    return np.array(pieces, dtype=object), np.asarray(owner, dtype=np.int64)


def _barrier_faces(p, bar) -> list | None:
    """Split piece ``p`` along the barrier lines ``bar``; None when the cut is not clean."""
    cut = shapely.polygonize(shapely.get_parts(shapely.union_all(
        [shapely.boundary(p), shapely.intersection(bar, p)], grid_size=GRID_SIZE)))
    faces = [f for f in _polygons(cut) if shapely.contains(p, shapely.point_on_surface(f))]
    if len(faces) > 1 and abs(sum(f.area for f in faces) - p.area) <= 1e-3 * max(p.area, 1.0):
        return [shapely.set_precision(f, GRID_SIZE) for f in faces]
    return None


def _cut_by_barriers(pieces: np.ndarray, owner: np.ndarray, bar) -> tuple[np.ndarray, np.ndarray]:
    """Cut the pieces that barrier lines cross apart; each new piece keeps its owner."""
    tree = shapely.STRtree(pieces)
    hit = set(tree.query(bar, predicate="intersects").tolist())
    if not hit:
        return pieces, owner
    new_p, new_o = [], []
    for i, (p, o) in enumerate(zip(pieces, owner)):
        faces = _barrier_faces(p, bar) if i in hit else None
        if faces is None:
            new_p.append(p)
            new_o.append(o)
            continue
        for f in faces:
            for q in _polygons(f):
                new_p.append(q)
                new_o.append(o)
    return np.array(new_p, dtype=object), np.asarray(new_o, dtype=np.int64)


def _point_cells(mp: MergedPoints, pieces: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Give each merged point one piece: the piece of its own cell nearest to it.

    A point whose own Voronoi cell missed the unit entirely goes to the nearest piece.
    """
    point_cell = np.full(mp.m, -1, dtype=np.int64)
    if not mp.m:
        return point_cell
    pts = shapely.points(mp.xy)
    order = np.argsort(owner, kind="stable")
    so = owner[order]
    starts = np.searchsorted(so, np.arange(mp.m), side="left")
    ends = np.searchsorted(so, np.arange(mp.m), side="right")
    for i in range(mp.m):
        cand = order[starts[i]:ends[i]]
        if len(cand) == 1:
            point_cell[i] = cand[0]
        elif len(cand) > 1:
            d = shapely.distance(pieces[cand], pts[i])
            point_cell[i] = cand[int(np.argmin(d))]
    lost = np.flatnonzero(point_cell < 0)
    if len(lost):
        tree = shapely.STRtree(pieces)
        _, nearest = tree.query_nearest(pts[lost], all_matches=False)
        point_cell[lost] = nearest
    return point_cell


def _adjacency(pieces: np.ndarray, bar) -> tuple[np.ndarray, np.ndarray]:
    c = len(pieces)
    if c < 2:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    tree = shapely.STRtree(pieces)
    a, b = tree.query(pieces, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    if not len(a):
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    bnd = shapely.boundary(pieces)
    shared = shapely.intersection(bnd[a], bnd[b])
    if bar is not None:
        shared = shapely.difference(shared, shapely.buffer(bar, BARRIER_EPS, cap_style="flat"))
    length = shapely.length(shared)
    ok = length > MIN_SHARED
    e = np.column_stack([a[ok], b[ok]]).astype(np.int64)
    ln = length[ok]
    order = np.lexsort((e[:, 1], e[:, 0])) if len(e) else np.zeros(0, dtype=np.int64)
    return e[order], ln[order]


def _components(c: int, edges: np.ndarray) -> np.ndarray:
    if c == 0:
        return np.zeros(0, dtype=np.int64)
    m = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(c, c)) if len(edges) else coo_matrix((c, c))
    _, lab = connected_components(m, directed=False)
    # renumber in order of first appearance so ids are stable
    _, first = np.unique(lab, return_index=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(np.argsort(first))] = np.arange(len(first))
    return rank[lab]


def coarsen(graph: CellGraph, max_households: float, max_nodes: int) -> tuple[np.ndarray, CellGraph]:
    """Merge neighbouring cells into compact *atoms* so that a big unit's model stays small.

    Quadtree on cell centroids: a box is split while it holds more than ``max_households`` or more
    cells than a fair share of ``max_nodes``; the atoms are the connected pieces of the cells of each
    leaf box (never merging across components, i.e. across a unit part or a barrier). A single
    point heavier than ``max_households`` stays its own atom. Returns (atom of each cell, atom graph
    without polygons).
    """
    n = graph.n
    if n <= max_nodes:
        return np.arange(n, dtype=np.int64), graph
    cen, hh, area = graph.centroid, graph.households, graph.area
    box_of = np.zeros(n, dtype=np.int64)
    cells_cap = max(1, int(np.ceil(n / max_nodes)))
    stack = [(np.arange(n), *cen.min(axis=0), *cen.max(axis=0))]
    leaves = []
    while stack:
        idx, x0, y0, x1, y1 = stack.pop()
        if len(idx) <= 1 or (hh[idx].sum() <= max_households and len(idx) <= cells_cap) or (x1 - x0 < 1e-6 and y1 - y0 < 1e-6):
            leaves.append(idx)
            continue
        xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
        east = cen[idx, 0] > xm
        north = cen[idx, 1] > ym
        for e_, n_, bx in ((False, False, (x0, y0, xm, ym)), (True, False, (xm, y0, x1, ym)),
                           (False, True, (x0, ym, xm, y1)), (True, True, (xm, ym, x1, y1))):
            sub = idx[(east == e_) & (north == n_)]
            if len(sub):
                stack.append((sub, *bx))
    for b, idx in enumerate(leaves):
        box_of[idx] = b
    # connected pieces of each box: components of the edges inside a box
    inside = box_of[graph.edges[:, 0]] == box_of[graph.edges[:, 1]] if len(graph.edges) else np.zeros(0, bool)
    atom = _components(n, graph.edges[inside])
    na = int(atom.max()) + 1
    a_h = np.bincount(atom, weights=hh, minlength=na).astype(np.int64)
    a_area = np.bincount(atom, weights=area, minlength=na)
    w = np.maximum(area, 1e-9)
    aw = np.bincount(atom, weights=w, minlength=na)
    a_cen = np.column_stack([np.bincount(atom, weights=w * cen[:, 0], minlength=na) / aw,
                             np.bincount(atom, weights=w * cen[:, 1], minlength=na) / aw])
    ea, eb = atom[graph.edges[:, 0]], atom[graph.edges[:, 1]]
    cross = ea != eb
    lo, hi = np.minimum(ea[cross], eb[cross]), np.maximum(ea[cross], eb[cross])
    if len(lo):
        key = lo * na + hi
        uk, inv = np.unique(key, return_inverse=True)
        ln = np.bincount(inv.reshape(-1), weights=graph.edge_length[cross])
        a_edges = np.column_stack([uk // na, uk % na]).astype(np.int64)
    else:
        a_edges, ln = np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    a_comp = np.zeros(na, dtype=np.int64)
    a_comp[atom] = graph.component
    return atom, CellGraph(None, a_h, a_area, a_cen, atom[graph.point_cell], a_edges, ln, a_comp)
