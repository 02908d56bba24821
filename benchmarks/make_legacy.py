"""Seeded legacy grid layers derived from a truth grid layer, one kind of change per layer.

``derive(truth, kind, share, seed)`` changes at most ``share`` of the truth grids (metric CRS,
columns ``grid_code``, ``village_code``):

- ``merges``: a grid and an adjacent grid of its unit become one grid (both count as changed);
- ``splits``: a grid is cut in two through its centroid, across its longer axis;
- ``shifts``: the boundary between two adjacent grids of a unit moves: the strip of one within
  ``STRIP`` × its width of the other changes sides (both count as changed).

Every other grid is kept as it is; ids are fresh (``<kind>-0001``...), so nothing links a legacy
grid to its truth grid but the geometry. ``legacy_layers(truth, seed)`` gives the three layers.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from shapely import affinity

KINDS = ("merges", "splits", "shifts")
STRIP = 0.15   # a shifted boundary moves by this share of the giving grid's width (sqrt of its area)


def _neighbours(geoms: np.ndarray, units: np.ndarray) -> list[list[int]]:
    """Grids of the same unit sharing an edge of positive length, per grid (sorted)."""
    out: list[list[int]] = [[] for _ in geoms]
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    for i, j in zip(a, b):
        if i < j and units[i] == units[j]:
            shared = shapely.intersection(shapely.boundary(geoms[i]), shapely.boundary(geoms[j]))
            if shapely.length(shared) > 1.0:
                out[i].append(int(j))
                out[j].append(int(i))
    return [sorted(x) for x in out]


def _split(g):
    """Cut a polygon in two through its centroid, across its longer axis."""
    c = g.centroid
    box = g.minimum_rotated_rectangle
    xy = np.asarray(box.exterior.coords)[:4]
    e0, e1 = xy[1] - xy[0], xy[2] - xy[1]
    long_axis = e0 if np.hypot(*e0) >= np.hypot(*e1) else e1
    angle = np.degrees(np.arctan2(long_axis[1], long_axis[0]))
    size = 4 * max(np.hypot(*e0), np.hypot(*e1), 1.0)
    half = affinity.rotate(shapely.box(c.x - size, c.y - size, c.x, c.y + size), angle, origin=c)
    return [shapely.intersection(g, half), shapely.difference(g, half)]


def derive(truth: gpd.GeoDataFrame, kind: str, share: float = 0.2, seed: int = 0) -> gpd.GeoDataFrame:
    """Return a legacy layer (``{kind}_id``, geometry) made from ``truth`` by one kind of change.

    Parameters
    ----------
    truth : GeoDataFrame
        Truth grids in a metric CRS, with ``village_code``.
    kind : str
        One of ``KINDS``.
    share : float
        At most this share of the truth grids is changed.
    seed : int
        The choice of grids.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    rng = np.random.default_rng(seed)
    geoms = np.asarray(truth.geometry.values, dtype=object).copy()
    units = truth["village_code"].astype(str).to_numpy()
    budget = int(np.floor(share * len(geoms)))
    nbrs = _neighbours(geoms, units)
    touched: set[int] = set()
    out = list(geoms)
    extra = []
    for i in rng.permutation(len(geoms)):
        i = int(i)
        if i in touched:
            continue
        if kind == "splits":
            if len(touched) + 1 > budget:
                break
            out[i], piece = _split(geoms[i])
            extra.append(piece)
            touched.add(i)
            continue
        free = [j for j in nbrs[i] if j not in touched]
        if not free or len(touched) + 2 > budget:
            continue
        j = free[int(rng.integers(len(free)))]
        if kind == "merges":
            out[i], out[j] = shapely.union(geoms[i], geoms[j]), None
        else:
            width = np.sqrt(shapely.area(geoms[j]))
            strip = shapely.intersection(geoms[j], shapely.buffer(geoms[i], STRIP * width))
            out[i], out[j] = shapely.union(geoms[i], strip), shapely.difference(geoms[j], strip)
        touched.update((i, j))
    kept = [g for g in out + extra if g is not None and not g.is_empty]
    ids = [f"{kind}-{n:04d}" for n in range(1, len(kept) + 1)]
    return gpd.GeoDataFrame({f"{kind}_id": ids}, geometry=gpd.GeoSeries(kept, crs=truth.crs), crs=truth.crs)


def legacy_layers(truth: gpd.GeoDataFrame, share: float = 0.2, seed: int = 0) -> dict[str, gpd.GeoDataFrame]:
    """Return the three legacy layers (merges, splits, shifts) of ``truth``, each with its own seed."""
    return {kind: derive(truth, kind, share, seed + n) for n, kind in enumerate(KINDS)}
