"""Reshaping existing grid polygons when households change grids (the geometry of plan edits).

Edits work on a plan's grids as they are stored (WGS 84 lon/lat) so that every grid an edit does
not touch keeps its geometry bit for bit, and the grids it does touch keep tiling the same area:

- ``give_households``: the land of some households of one grid passes to a neighbouring grid. The
  land of a household is its Voronoi cell among the households of its own grid, clipped to that
  grid (the piece holding the household), as the planner's cells are (``geo.cells``); land the
  source keeps that no longer touches its households goes along when it touches the receiver.
- ``merge_polygons``: two grids sharing an edge become one.
- ``parts_from_labels``: a re-partition's households labels become grids tiling the exact region
  they replace: the union of each grid's households' Voronoi cells, clipped to the region (no
  geometry is carried across coordinate systems, so nothing can come back a hair off).
- ``grid_metrics``: area (km²) and Polsby-Popper, measured in a metric CRS (``geo.crs``).

Geometry problems (a grid that would fall apart, two grids that do not touch) raise
:class:`RegridError` with the reason; the caller names the grids.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely

from gridplan.geo.grids import polsby_popper, polygon_parts

SLIVER_REL = 1e-9      # parts/holes below this share of the region's area are rounding debris


class RegridError(ValueError):
    """A reshaping that would break a grid (split it, or join grids that do not share an edge)."""


def _clean(geom, ref_area: float):
    """Drop rounding debris (parts and holes far below ``ref_area``) from a polygonal geometry."""
    eps = SLIVER_REL * max(ref_area, 1e-30)
    parts = [p for p in polygon_parts(geom) if p.area > eps]
    out = []
    for p in parts:
        holes = [r for r in p.interiors if shapely.Polygon(r).area > eps]
        out.append(p if len(holes) == len(p.interiors) else shapely.Polygon(p.exterior, holes))
    if not out:
        return shapely.Polygon()
    return out[0] if len(out) == 1 else shapely.MultiPolygon(out)


def voronoi_cells(xy: np.ndarray, region) -> np.ndarray:
    """Voronoi cell of each point (input order) clipped to ``region`` (lon/lat, x scaled by cos(lat)).

    Parameters
    ----------
    xy : (n, 2) array
        Distinct points (lon, lat).
    region : shapely geometry
        The area the cells tile.

    Returns
    -------
    numpy array of shapely geometries
        One (possibly multipart) geometry per point.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if len(xy) == 1:
        return np.array([region], dtype=object)
    c = max(np.cos(np.radians(float(np.mean(xy[:, 1])))), 0.05)
    scaled = xy * [c, 1.0]
    minx, miny, maxx, maxy = region.bounds
    pad = max(maxx - minx, maxy - miny, 1e-6)
    env = shapely.box((minx - pad) * c, miny - pad, (maxx + pad) * c, maxy + pad)
    vor = shapely.voronoi_polygons(shapely.multipoints(scaled), extend_to=env, ordered=True)
    polys = np.asarray(shapely.get_parts(vor), dtype=object)
    if len(polys) != len(xy):   # degenerate input: match cells to points by containment
        _, j = shapely.STRtree(polys).query_nearest(shapely.points(scaled), all_matches=False)
        polys = polys[j]
    back = shapely.transform(polys, lambda p: p / [c, 1.0])
    return shapely.intersection(back, region)


def piece_holding(geom, x: float, y: float):
    """Return the part of ``geom`` that holds the point (x, y), or the nearest part."""
    parts = polygon_parts(geom) if not geom.is_empty else []
    if not parts:
        return shapely.Polygon()
    if len(parts) == 1:
        return parts[0]
    pt = shapely.Point(x, y)
    return min(parts, key=lambda p: (not p.covers(pt), p.distance(pt)))


def give_households(source, target, moved_xy: np.ndarray, kept_xy: np.ndarray):
    """Pass the land of the ``moved_xy`` households of ``source`` to ``target``.

    Parameters
    ----------
    source, target : shapely Polygon
        Two grids of one unit (lon/lat).
    moved_xy : (m, 2) array
        Distinct locations of the households leaving ``source``.
    kept_xy : (r, 2) array
        Distinct locations of the households staying in ``source`` (at least one).

    Returns
    -------
    (new_source, new_target) : shapely Polygons
        Together they cover exactly what ``source`` and ``target`` covered.

    Raises
    ------
    RegridError
        When the land does not reach ``target`` (the receiver would be in pieces) or the
        source would fall apart into pieces holding households.
    """
    moved_xy = np.asarray(moved_xy, float).reshape(-1, 2)
    kept_xy = np.asarray(kept_xy, float).reshape(-1, 2)
    if not len(kept_xy):
        raise RegridError("every household would leave the grid (merge the grids instead)")
    xy = np.vstack([moved_xy, kept_xy])
    cells = voronoi_cells(xy, source)
    land = [piece_holding(cells[i], *moved_xy[i]) for i in range(len(moved_xy))]
    area = source.area + target.area
    moved = shapely.union_all(np.asarray(land, dtype=object))
    rest = _clean(shapely.difference(source, moved), area)
    stays, strays = _split_rest(rest, kept_xy)
    joined = [target, moved] + [p for p in strays if p.intersects(target) or p.intersects(moved)]
    left = [p for p in strays if not any(p is q for q in joined)]
    new_target = _clean(shapely.union_all(np.asarray(joined, dtype=object)), area)
    if left:
        stays = _clean(shapely.union_all(np.asarray([stays, *left], dtype=object)), area)
    if new_target.geom_type != "Polygon":
        raise RegridError("the households' land does not share an edge with the receiving grid")
    if stays.geom_type != "Polygon":
        raise RegridError("the grid left behind would fall apart into separate pieces")
    return stays, new_target


def _split_rest(rest, kept_xy: np.ndarray):
    """Return the part of ``rest`` holding the kept households, and the other parts (empty land)."""
    parts = polygon_parts(rest) if not rest.is_empty else []
    if not parts:
        raise RegridError("nothing of the grid would be left")
    pts = shapely.points(kept_xy)
    holding = [p for p in parts if shapely.covers(p, pts).any()]
    if len(holding) != 1:
        raise RegridError("the grid left behind would fall apart into separate pieces holding households")
    main = holding[0]
    return main, [p for p in parts if p is not main]


def merge_polygons(a, b):
    """Return the union of two grids sharing an edge, as one Polygon.

    Raises
    ------
    RegridError
        When they share no edge (the union would be in pieces).
    """
    u = _clean(shapely.union_all(np.asarray([a, b], dtype=object)), a.area + b.area)
    if u.geom_type != "Polygon":
        raise RegridError("the grids do not share an edge: their union would be in separate pieces")
    return u


def _owner_of(piece, polys: list, exclude: int = -1) -> int:
    """Index of the polygon sharing most border with ``piece`` (the nearest one if none touches)."""
    best, best_len = -1, 0.0
    for j, p in enumerate(polys):
        if j == exclude or p.is_empty:
            continue
        ln = shapely.length(shapely.intersection(shapely.boundary(piece), shapely.boundary(p)))
        if ln > best_len:
            best, best_len = j, ln
    if best < 0:
        cand = [j for j, p in enumerate(polys) if j != exclude and not p.is_empty]
        best = min(cand, key=lambda j: polys[j].distance(piece)) if cand else max(exclude, 0)
    return best


def parts_from_labels(region, xy: np.ndarray, labels: np.ndarray, k: int) -> list:
    """Tile ``region`` exactly into ``k`` grids: the union of the Voronoi cells of each label's points.

    Parameters
    ----------
    region : shapely geometry
        The exact area to tile (lon/lat).
    xy : (n, 2) array
        Household points (lon/lat); coincident points must share a label.
    labels : (n,) array of int
        Grid 0..k-1 of each point.
    k : int
        Number of grids.

    Returns
    -------
    list of shapely geometries
        Grid ``j`` is the union of its points' cells clipped to ``region``; pieces of a cell cut
        off from its point (a concave region) go to the grid they share most border with. The
        edges between grids are Voronoi edges shared exactly; the region's outline is kept as it is
        (its rounding debris — holes and parts below ``SLIVER_REL`` of its area — dropped).
    """
    xy = np.asarray(xy, float).reshape(-1, 2)
    labels = np.asarray(labels, np.int64)
    # rounding debris first: a hole of 1e-19 deg² left by the union of neighbouring grids made GEOS
    # drop 0.35e-6 deg² (4,000 m²) of a Voronoi cell clipped to the region
    region = _clean(region, region.area)
    uxy, first = np.unique(xy, axis=0, return_index=True)
    lab = labels[first]
    cells = voronoi_cells(uxy, region)
    own, loose = [[] for _ in range(k)], []
    for i, c in enumerate(cells):
        parts = polygon_parts(c) if not c.is_empty else []
        if not parts:
            continue
        main = piece_holding(c, *uxy[i])
        own[lab[i]].append(main)
        loose.extend(p for p in parts if p is not main)
    out = [_clean(shapely.union_all(np.asarray(g, dtype=object)), region.area) if g else shapely.Polygon()
           for g in own]
    _hand_over(loose, out, region.area)
    missed = _clean(shapely.difference(region, shapely.union_all(np.asarray(out, dtype=object))), region.area)
    _hand_over(polygon_parts(missed), out, region.area)      # what an overlay lost goes to a neighbour too
    return out


def _hand_over(pieces: list, out: list, ref_area: float) -> None:
    """Give each piece, largest first, to the grid of ``out`` it shares most border with (in place)."""
    for q in sorted(pieces, key=lambda q: -q.area):
        j = _owner_of(q, out)
        out[j] = _clean(shapely.union(out[j], q), ref_area)


@lru_cache(maxsize=16)
def _reprojectors(epsg: int):
    from gridplan.geo.crs import Reprojector
    return Reprojector(4326, epsg), Reprojector(epsg, 4326)


def metric_reprojectors(bounds_wgs84):
    """Return (to metric, back to WGS 84) Reprojectors for a metric CRS chosen for these bounds (cached)."""
    from gridplan.geo.crs import choose_metric_crs
    return _reprojectors(int(choose_metric_crs(bounds_wgs84).to_epsg()))


def grid_metrics(polys_wgs84) -> tuple[np.ndarray, np.ndarray]:
    """Area (km²) and Polsby-Popper of lon/lat polygons, measured in a metric CRS chosen for them.

    Parameters
    ----------
    polys_wgs84 : sequence of shapely geometries
        Grids in WGS 84.

    Returns
    -------
    (area_km2, polsby_popper) : arrays
    """
    g = np.asarray(list(polys_wgs84), dtype=object)
    if not len(g):
        return np.zeros(0), np.zeros(0)
    m = metric_reprojectors(tuple(shapely.total_bounds(g)))[0].geom(g)
    return shapely.area(m) / 1e6, polsby_popper(m)


def label_points(polys: list, xy: np.ndarray, prefer: np.ndarray | None = None) -> np.ndarray:
    """Index of the polygon holding each point: ``prefer[i]`` when that one covers it, else any that does.

    Points no polygon covers go to the nearest one.
    """
    g = np.asarray(polys, dtype=object)
    xy = np.asarray(xy, float).reshape(-1, 2)
    pts = shapely.points(xy)
    out = np.full(len(xy), -1, dtype=np.int64)
    if prefer is not None and len(xy):
        ok = shapely.covers(g[prefer], pts)
        out[ok] = prefer[ok]
    todo = np.flatnonzero(out < 0)
    if len(todo):
        tree = shapely.STRtree(g)
        pi, gi = tree.query(pts[todo], predicate="covered_by")
        first = np.unique(pi, return_index=True)[1]
        out[todo[pi[first]]] = gi[first]
        lost = np.flatnonzero(out < 0)
        if len(lost):
            _, near = tree.query_nearest(pts[lost], all_matches=False)
            out[lost] = near
    return out
