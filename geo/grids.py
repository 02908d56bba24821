"""Grid polygons from cells: dissolve, code order, shape metrics.

The single place for the Polsby-Popper metric and for the west→east, north→south code order.
"""
from __future__ import annotations

import numpy as np
import shapely

from gridplan.geo.cells import GRID_SIZE
from gridplan.geo.validate import polygonal_part


def polygon_parts(geom) -> list:
    """Return the non-empty Polygons of a geometry (made valid; lines and points dropped)."""
    if geom.geom_type == "Polygon" and geom.is_valid:   # the common case, cheap
        return [geom] if geom.area > 0 else []
    g = polygonal_part([shapely.make_valid(geom)])[0]
    if g is None:
        return []
    return [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and p.area > 0]


SLIVER_SHARE = 1e-6   # parts of a repaired polygon below this share of its area are dropped


def repair_transformed(geoms) -> np.ndarray:
    """Repair polygons that a coordinate transform made invalid; valid ones are returned as they are.

    A vertex a few centimetres from an edge (a household kept just inside its grid) can cross that
    edge after reprojection to degrees. The invalid ring is rebuilt (``make_valid``, structure
    method); slivers smaller than ``SLIVER_SHARE`` of the polygon's area are dropped, so a grid stays
    one Polygon when the defect was such a spike.
    """
    g = np.asarray(list(geoms) if not isinstance(geoms, np.ndarray) else geoms, dtype=object).reshape(-1).copy()
    bad = np.flatnonzero(~shapely.is_valid(g) & ~shapely.is_missing(g))
    for i in bad:
        fixed = shapely.make_valid(g[i], method="structure", keep_collapsed=False)
        parts = [p for p in shapely.get_parts(fixed) if p.geom_type == "Polygon" and p.area > 0]
        if not parts:
            continue
        total = sum(p.area for p in parts)
        parts = [p for p in parts if p.area >= SLIVER_SHARE * total]
        g[i] = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    return g


DENSIFY_M = 1000.0  # m: longer edges get vertices before leaving a projected CRS (1 km bends < 1 cm)


def _densify_ring(c: np.ndarray, max_len: float) -> np.ndarray:
    """Return ring coordinates with vertices added so no segment exceeds ``max_len``.

    Each segment's new points are computed from its lexicographically smaller end, so two grids
    sharing an edge (in opposite directions) get bit-identical points: the coverage stays exact.
    """
    p, q = c[:-1], c[1:]
    n = np.maximum(1, np.ceil(np.hypot(*(q - p).T) / max_len).astype(np.int64))
    if (n == 1).all():
        return c
    swap = (p[:, 0] > q[:, 0]) | ((p[:, 0] == q[:, 0]) & (p[:, 1] > q[:, 1]))
    a = np.where(swap[:, None], q, p)
    b = np.where(swap[:, None], p, q)
    seg = np.repeat(np.arange(len(p)), n)
    k = np.arange(len(seg)) - np.repeat(np.cumsum(n) - n, n)           # 0..n-1 along each segment
    kk = np.where(swap[seg], n[seg] - k, k)                             # the same step counted from a
    t = (kk / n[seg])[:, None]
    pts = a[seg] + t * (b[seg] - a[seg])
    pts[k == 0] = p[seg[k == 0]]                                        # original vertices unchanged
    return np.vstack([pts, c[-1:]])


def densify(geoms, max_len: float) -> np.ndarray:
    """Return polygons with vertices added so no edge exceeds ``max_len`` (shared edges stay identical)."""
    g = np.asarray(list(geoms) if not isinstance(geoms, np.ndarray) else geoms, dtype=object).reshape(-1).copy()
    for i, geom in enumerate(g):
        if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
            continue
        polys = [shapely.Polygon(_densify_ring(np.asarray(p.exterior.coords), max_len),
                                 [_densify_ring(np.asarray(r.coords), max_len) for r in p.interiors])
                 for p in shapely.get_parts(geom)]
        g[i] = polys[0] if geom.geom_type == "Polygon" else shapely.MultiPolygon(polys)
    return g


def to_crs_valid(gdf, crs):
    """Return ``gdf`` in ``crs``, its edges densified first and polygons the transform broke repaired.

    A straight edge in metres is a curve in degrees (and the other way round): over a few
    kilometres the two differ by half a metre, enough to move a household kept 0.1 m inside its
    grid across the edge. Edges are densified to ``DENSIFY_M`` before a projected layer is
    transformed, so the output follows the grid to a centimetre; then ``repair_transformed``.
    """
    if gdf.crs is not None and gdf.crs.is_projected and len(gdf):
        gdf = gdf.set_geometry(type(gdf.geometry)(densify(gdf.geometry.values, DENSIFY_M),
                                                  index=gdf.index, crs=gdf.crs))
    out = gdf.to_crs(crs)
    if len(out):
        fixed = repair_transformed(out.geometry.values)
        out = out.set_geometry(type(out.geometry)(fixed, index=out.index, crs=out.crs))
    return out


def polsby_popper(geoms) -> np.ndarray:
    """Polsby-Popper compactness 4πA/P² of each geometry (1 for a disc; 0 for empty/degenerate)."""
    g = np.asarray(list(geoms) if not isinstance(geoms, np.ndarray) else geoms, dtype=object).reshape(-1)
    if not len(g):
        return np.zeros(0)
    a = shapely.area(g)
    p = shapely.length(g)
    with np.errstate(divide="ignore", invalid="ignore"):
        pp = np.where(p > 0, 4.0 * np.pi * a / (p * p), 0.0)
    return np.nan_to_num(pp)


def order_for_codes(polygons) -> np.ndarray:
    """Permutation putting grids in code order: north→south rows, west→east inside a row.

    The exact rule (reading order, like the lines of a page): let A be the total area of the
    grids, k their number and h = sqrt(A / k) (the side of an average grid). Each grid's row is
    floor((ymax - cy) / h), where (cx, cy) is the centroid of the grid and ymax the northern edge
    of all grids' bounds; grids are sorted by (row, cx, -cy). ``polygons[order]`` is the coded
    sequence: the grid at position i gets the sequence number i + 1.
    """
    g = np.asarray(list(polygons), dtype=object).reshape(-1)
    k = len(g)
    if k <= 1:
        return np.arange(k, dtype=np.int64)
    cen = shapely.get_coordinates(shapely.centroid(g))
    total = float(np.sum(shapely.area(g)))
    ymax = float(shapely.total_bounds(g)[3])
    h = np.sqrt(total / k) if total > 0 else 1.0
    row = np.floor((ymax - cen[:, 1]) / h + 1e-9)
    return np.lexsort((-cen[:, 1], cen[:, 0], row)).astype(np.int64)


def grid_codes(unit_code: str, k: int) -> list[str]:
    """Return unit code + 3-digit sequence (001, 002, ...) for k grids already in code order."""
    if k > 999:
        raise ValueError(f"unit {unit_code}: {k} grids do not fit a 3-digit sequence")
    return [f"{unit_code}{i:03d}" for i in range(1, k + 1)]


def dissolve_cells(cell_polys, labels, k) -> list:
    """Union of the cells of each grid (index 0..k-1); cells tile the unit, so the grids do too.

    A grid whose cells are connected by shared edges comes out as one Polygon; a grid holding
    separate islands comes out as a MultiPolygon (the caller reports it). Unions snap to
    ``GRID_SIZE`` so edges shared by neighbouring cells cancel exactly.
    """
    cells = np.asarray(list(cell_polys), dtype=object).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(cells) != len(labels):
        raise ValueError(f"{len(cells)} cells but {len(labels)} labels")
    out = []
    for j in range(int(k)):
        members = cells[labels == j]
        if not len(members):
            out.append(shapely.Polygon())
            continue
        try:
            u = shapely.coverage_union_all(members) if len(members) > 1 else members[0]
        except shapely.errors.GEOSException:
            # "CoverageUnion cannot process incorrectly noded inputs": cells that do not share
            # vertices exactly; the overlay union with snapping handles them
            u = shapely.union_all(members, grid_size=GRID_SIZE)
        if u.geom_type != "Polygon" or not u.is_valid:
            u = shapely.union_all(members, grid_size=GRID_SIZE)
        if u.geom_type == "MultiPolygon":
            parts = [p for p in shapely.get_parts(u) if p.area > 1e-6]
            u = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
        if u.geom_type == "Polygon":
            u = _drop_tiny_holes(u)
        out.append(u)
    return out


def _drop_tiny_holes(p):
    """Remove slivers of holes below 1e-6 m² that snapping can leave between cells."""
    holes = [r for r in p.interiors if shapely.Polygon(r).area > 1e-6]
    if len(holes) == len(p.interiors):
        return p
    return shapely.Polygon(p.exterior, holes)


def smooth_grids(polygons, tolerance: float):
    """Straighten the staircase edges *between* grids without breaking the tiling.

    ``shapely.coverage_simplify`` simplifies every edge shared by two grids once (both sides move
    together, so no gap or overlap appears) and keeps the unit's outer boundary fixed. Returns the
    simplified polygons, or None when the result is not a valid set of single Polygons. Points near
    an edge may change sides: the caller re-assigns them with ``assign_points``.
    """
    polys = list(polygons)
    if len(polys) < 2 or tolerance <= 0 or not all(p.geom_type == "Polygon" for p in polys):
        return None
    out = shapely.coverage_simplify(np.asarray(polys, dtype=object), float(tolerance), simplify_boundary=False)
    if not all(g.geom_type == "Polygon" and not g.is_empty and g.is_valid for g in out):
        return None
    return list(out)


def assign_points(polygons, xy) -> np.ndarray:
    """Return the index of the polygon holding each point.

    A point on a shared edge goes to the first polygon in index order, a point inside none to
    the nearest polygon.
    """
    g = np.asarray(list(polygons), dtype=object)
    pts = shapely.points(np.asarray(xy, dtype=float).reshape(-1, 2))
    out = np.full(len(pts), -1, dtype=np.int64)
    if not len(pts):
        return out
    tree = shapely.STRtree(g)
    pi, gi = tree.query(pts, predicate="intersects")
    order = np.lexsort((gi, pi))
    pi, gi = pi[order], gi[order]
    first = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, bool)
    out[pi[first]] = gi[first]
    lost = np.flatnonzero(out < 0)
    if len(lost):
        _, near = tree.query_nearest(pts[lost], all_matches=False)
        out[lost] = near
    return out


HAIR_M = 0.002   # m: the disk that brings a point left a hair outside its grid back in, unsnapped


def clear_points(polygons, xy, labels, clearance: float = 0.1, within=None) -> list:
    """Grids that keep every point at least ~``clearance`` metres inside the grid its label names.

    See ``_clear``; then a point still outside its own grid but inside ``within`` (a hair from the
    unit's edge, where snapped vertices cannot follow it) gets a ``HAIR_M`` disk of its grid, not
    snapped, taken from any grid it overlaps.
    """
    out = _clear(polygons, xy, labels, clearance, within)
    if within is None or len(out) < 2 or not len(xy):
        return out
    g = np.asarray(out, dtype=object)
    pts = shapely.points(np.asarray(xy, dtype=float).reshape(-1, 2))
    labels = np.asarray(labels, dtype=np.int64)
    for i in np.flatnonzero(~shapely.covers(g[labels], pts) & shapely.covers(within, pts)):
        disk = shapely.buffer(pts[i], HAIR_M, quad_segs=4)
        k = int(labels[i])
        hit = [j for j in np.flatnonzero(shapely.intersects(g, disk)) if j != k]
        trial = g.copy()
        trial[k] = shapely.union(g[k], disk)
        for j in hit:
            trial[j] = shapely.difference(g[j], disk)
        if _same_kind(list(trial), out):
            g = trial
    return list(g)


def _clear(polygons, xy, labels, clearance: float = 0.1, within=None) -> list:
    """Grids that keep every point at least ~``clearance`` metres inside the grid its label names.

    A household a millimetre from a grid edge belongs to whichever grid the next reprojection or
    the next point-in-polygon test says; here each point closer than ``clearance`` to another
    grid gets a small disk (radius ``clearance``, or 0.45 × the distance to the nearest point
    labelled otherwise, if smaller) cut from the other grids and given to its own grid, inside
    the union of the grids (or ``within``, the unit they tile: a point a hair inside the unit's edge
    but outside the grids, where snapping left a sliver, is then covered too). Labels do not change.
    Returns the input polygons when the result would not be valid single-part grids as before.
    """
    polys = list(polygons)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    labels = np.asarray(labels, dtype=np.int64)
    if len(polys) < 2 or not len(xy):
        return polys
    g = np.asarray(polys, dtype=object)
    pts = shapely.points(xy)
    whole = _fill_pinholes(shapely.union_all(g, grid_size=GRID_SIZE))
    if within is not None:
        whole = shapely.union(whole, within, grid_size=GRID_SIZE)
    pi, gi = shapely.STRtree(g).query(pts, predicate="dwithin", distance=clearance)
    own = shapely.covers(g[labels], pts)
    # near another grid, or not covered by its own (a pinhole or sliver gap the overlays left between grids)
    near = np.union1d(np.unique(pi[gi != labels[pi]]), np.flatnonzero(~own))
    near = near[own[near] | shapely.covers(whole, pts[near])]   # points outside every grid stay as they are
    if not len(near):
        return polys
    from scipy.spatial import cKDTree
    kk = min(len(xy), 16)
    d, j = cKDTree(xy).query(xy[near], k=kk)
    d, j = np.atleast_2d(d), np.atleast_2d(j)
    other = labels[j] != labels[near][:, None]
    nearest = np.where(other, d, np.inf).min(axis=1)
    radius = np.minimum(clearance, 0.45 * nearest)
    # a 16-gon around each point, circumscribed so that it holds the whole circle of that radius
    disks = shapely.buffer(pts[near], radius / np.cos(np.pi / 16), quad_segs=4)
    owner = labels[near]
    for give in (_give_clipped, _give_pieces):
        out = give(polys, owner, disks, range(len(near)), whole)
        if _same_kind(out, polys):
            return out
    # all at once broke a grid (a disk cut a sliver off, say): take the disks one point at a time,
    # keeping each that leaves every grid a valid polygon of its former kind
    out, todo = polys, list(range(len(near)))
    for _ in range(3):                      # a disk refused early may fit once its neighbours are in
        left = []
        for i in todo:
            trial = next((t for t in (give(out, owner, disks, [i], whole) for give in (_give_clipped, _give_pieces))
                          if _same_kind(t, polys)), None)
            if trial is None:
                left.append(i)
            else:
                out = trial
        if len(left) == len(todo):
            break
        todo = left
    return out


PINHOLE_M2 = 1.0   # holes of the grids' union smaller than this are overlay slivers, not land outside the unit


def _fill_pinholes(geom):
    """Return ``geom`` with its interior rings under ``PINHOLE_M2`` filled."""
    parts = []
    for p in shapely.get_parts(geom):
        if p.geom_type != "Polygon":
            continue
        holes = [r for r in p.interiors if shapely.Polygon(r).area >= PINHOLE_M2]
        parts.append(shapely.Polygon(p.exterior, holes))
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts) if parts else geom


def _give_clipped(polys, owner, disks, which, whole) -> list:
    """Cut the disks ``which`` from every grid but their owner's; add them, clipped to the grids' union, to it."""
    which = list(which)
    out = []
    for k, p in enumerate(polys):
        mine = [i for i in which if owner[i] == k]
        theirs = [i for i in which if owner[i] != k]
        if theirs:
            p = shapely.difference(p, shapely.union_all(disks[theirs]))
        if mine:
            p = shapely.union_all([p, shapely.intersection(shapely.union_all(disks[mine]), whole)])
        out.append(p)
    return out


def _give_pieces(polys, owner, disks, which, whole=None) -> list:
    """Move to each disk's owner exactly the parts of the other grids that the disk covers.

    Only what the other grids held changes hands (no clip to the snapped outline, whose rounding can
    leave a detached sliver); a hairline (~1e-10 m) between neighbours is closed by a 1 µm snap.
    """
    out = list(polys)
    gained: dict[int, list] = {}
    for i in which:
        o = int(owner[i])
        for k, p in enumerate(out):
            if k != o and shapely.intersects(p, disks[i]):
                gained.setdefault(o, []).append(shapely.intersection(p, disks[i]))
                out[k] = shapely.difference(p, disks[i])
    for k, parts in gained.items():
        merged = shapely.union_all([out[k], *parts])
        if merged.geom_type != out[k].geom_type:
            merged = shapely.union_all([out[k], *parts], grid_size=1e-6)
        out[k] = merged
    return out


def _same_kind(out, polys) -> bool:
    """Whether every grid is still a valid, non-empty geometry of its former type."""
    return all(q.geom_type == polys[i].geom_type and q.is_valid and not q.is_empty for i, q in enumerate(out))
