"""How far a merged grid layer agrees with a legacy layer: ARI, crosswalk, boundary length reused.

- ``adjusted_rand_index``: the adjusted Rand index (Hubert & Arabie 1985) of two labellings of the
  same items, each item weighted by its households (pairs of households, not of rows), from the
  contingency table: ARI = (Σ C(n_ij,2) − E) / (½(Σ C(a_i,2) + Σ C(b_j,2)) − E),
  E = Σ C(a_i,2) · Σ C(b_j,2) / C(n,2). 1: identical partitions; about 0: chance agreement.
- ``crosswalk``: households of each (legacy grid, new grid) pair, with the pair's share of the
  legacy grid and of the new grid (among the households both layers place), so each legacy grid's
  shares and each new grid's shares sum to 1.
- ``boundary_reuse``: the share of the legacy grid boundaries inside the units (units' own
  outlines excluded: every layer follows them) that lies within ``REUSE_M`` metres of a new grid
  boundary.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

REUSE_M = 1.0   # metres: a legacy line this close to a new grid boundary counts as reused
PIECE_M = 5.0   # metres: legacy lines are measured in pieces of at most this length


def _pairs(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float((x * (x - 1) / 2).sum())


def adjusted_rand_index(a, b, weights=None) -> float:
    """Return the adjusted Rand index of labellings ``a`` and ``b`` (items weighted by ``weights``).

    Parameters
    ----------
    a, b : array-like of hashable labels, same length
    weights : array-like of int, optional
        Multiplicity of each item (households at a point); default 1.

    Returns
    -------
    float
        1.0 for identical partitions (also when both put everything in one group, or there are
        fewer than two items); NaN never.
    """
    a, b = np.asarray(a), np.asarray(b)
    if len(a) != len(b):
        raise ValueError(f"labellings of different lengths ({len(a)} and {len(b)})")
    w = np.ones(len(a)) if weights is None else np.asarray(weights, dtype=float)
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max(initial=-1) + 1, ib.max(initial=-1) + 1))
    np.add.at(table, (ia, ib), w)
    n = table.sum()
    sum_ij, sum_a, sum_b = _pairs(table), _pairs(table.sum(axis=1)), _pairs(table.sum(axis=0))
    total = n * (n - 1) / 2
    if total <= 0:
        return 1.0
    expected = sum_a * sum_b / total
    top = (sum_a + sum_b) / 2 - expected
    if top == 0:
        return 1.0
    return float((sum_ij - expected) / top)


def crosswalk(layer: str, legacy_ids: np.ndarray, legacy_label: np.ndarray, grid_code: np.ndarray,
              households: np.ndarray) -> pd.DataFrame:
    """Return the crosswalk rows of one layer.

    Columns: layer, legacy_grid_id, grid_code, households, share_of_legacy, share_of_new; only
    households placed by both layers count (legacy label >= 0, grid code present).
    """
    ok = (legacy_label >= 0) & pd.notna(grid_code)
    df = pd.DataFrame({"legacy_grid_id": np.asarray(legacy_ids, dtype=object)[legacy_label[ok]],
                       "grid_code": np.asarray(grid_code, dtype=object)[ok],
                       "households": np.asarray(households)[ok].astype(np.int64)})
    df = df.groupby(["legacy_grid_id", "grid_code"], sort=True, as_index=False)["households"].sum()
    df = df[df["households"] > 0].reset_index(drop=True)
    df["share_of_legacy"] = df["households"] / df.groupby("legacy_grid_id")["households"].transform("sum")
    df["share_of_new"] = df["households"] / df.groupby("grid_code")["households"].transform("sum")
    df.insert(0, "layer", layer)
    return df


def _segments(geoms, step: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return the (m, 2) start and end points of the straight pieces of the lines of ``geoms``.

    With ``step``, pieces longer than it are cut first.
    """
    parts = shapely.get_parts(shapely.get_parts(np.asarray(geoms, dtype=object)))
    if not len(parts):
        return np.zeros((0, 2)), np.zeros((0, 2))
    if step:
        parts = shapely.segmentize(parts, step)
    xy, idx = shapely.get_coordinates(parts, return_index=True)
    same = idx[1:] == idx[:-1]
    return xy[:-1][same], xy[1:][same]


def boundary_reuse(legacy_geoms: np.ndarray, grid_geoms: np.ndarray, units_geoms: np.ndarray,
                   tolerance: float = REUSE_M) -> tuple[float | None, float]:
    """Return (share of the legacy inner boundary length reused by the new grids, that length in m).

    All geometries in one metric CRS. The legacy boundaries are cut into pieces of at most
    ``PIECE_M`` metres; a piece counts when its midpoint lies inside a unit, farther than
    ``tolerance`` from the units' outlines, and it is reused when its midpoint is within
    ``tolerance`` of a new grid boundary. The share is None when no legacy boundary lies inside the units.
    """
    a, b = _segments(shapely.union_all(shapely.boundary(legacy_geoms)), PIECE_M)
    pts, length = shapely.points((a + b) / 2), np.hypot(*(b - a).T)
    inside = np.zeros(len(pts), dtype=bool)
    inside[shapely.STRtree(pts).query(units_geoms, predicate="intersects")[1]] = True   # polygons prepared
    ua, ub = _segments(shapely.boundary(units_geoms))
    inside[shapely.STRtree(pts).query(shapely.linestrings(np.stack([ua, ub], axis=1)), predicate="dwithin",
                                      distance=tolerance)[1]] = False
    total = float(length[inside].sum())
    if total <= 0:
        return None, 0.0
    ga, gb = _segments(shapely.boundary(np.asarray(grid_geoms, dtype=object)))
    near = np.zeros(int(inside.sum()), dtype=bool)
    near[shapely.STRtree(pts[inside]).query(shapely.linestrings(np.stack([ga, gb], axis=1)), predicate="dwithin",
                                            distance=tolerance)[1]] = True
    return float(length[inside][near].sum()) / total, total
