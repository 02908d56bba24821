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


def boundary_reuse(legacy_geoms: np.ndarray, grid_geoms: np.ndarray, units_geoms: np.ndarray,
                   tolerance: float = REUSE_M) -> tuple[float | None, float]:
    """Return (share of the legacy inner boundary length reused by the new grids, that length in m).

    All geometries in one metric CRS. The share is None when the legacy layer has no boundary
    inside the units.
    """
    units = shapely.union_all(units_geoms)
    outline = shapely.buffer(shapely.union_all(shapely.boundary(units_geoms)), tolerance)
    legacy = shapely.union_all(shapely.boundary(legacy_geoms))
    inner = shapely.difference(shapely.intersection(legacy, units), outline)
    length = float(shapely.length(inner))
    if length <= 0:
        return None, 0.0
    near = shapely.buffer(shapely.union_all(shapely.boundary(grid_geoms)), tolerance)
    return float(shapely.length(shapely.intersection(inner, near))) / length, length
