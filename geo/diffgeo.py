"""The geometry and set computations behind a plan diff (``optimize.diff`` puts them together).

- :func:`grid_changes`: each grid code of either plan as kept (same code, symmetric difference of
  the two shapes at most ``tolerance_m2``), reshaped (same code, shape changed), created or
  retired, with both areas in m² (a metric CRS chosen for the plans' extent).
- :func:`household_transitions`: households matched by their input id (the households layer's
  first column that is not a plan column; by point when there is none), weighted by the layer's
  ``households`` column (1 a point without it): the transition matrix between old and new grid
  codes, and the points whose grid changed.
- :func:`worker_moves`, :func:`station_changes`: roster workers whose grid changed, stations added,
  removed or moved (by ``station_id``).
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridplan.geo.crs import choose_metric_crs
from gridplan.geo.embed import wgs84_frame

PLAN_COLUMNS = {"grid_code", "station_id", "minutes", "village_code", "township_code", "county_code",
                "households", "population", "unit_code"}
CHANGES = ("kept", "reshaped", "created", "retired")
NONE = "<no grid>"   # stands for "no grid" while grouping (pandas drops None keys and finds None != None)


def _metric(frames) -> object:
    """Return a metric CRS for the union extent of the (WGS 84) frames."""
    b = np.array([f.total_bounds for f in frames if len(f)])
    if not len(b):
        return choose_metric_crs((0, 0, 1, 1))
    return choose_metric_crs((b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()))


def _by_code(grids: gpd.GeoDataFrame) -> gpd.GeoSeries:
    """Return a grids layer's shapes by grid code (WGS 84; first of a repeated code; empty without codes)."""
    if len(grids) == 0 or "grid_code" not in grids.columns:
        return gpd.GeoSeries([], index=pd.Index([], dtype=object), crs=4326)
    grids = wgs84_frame(grids)
    g = gpd.GeoSeries(grids.geometry.to_numpy(), index=grids["grid_code"].astype(str).to_numpy(), crs=4326)
    return g[~g.index.duplicated()]


def grid_changes(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame, tolerance_m2: float = 1.0) -> gpd.GeoDataFrame:
    """Classify every grid code of the two plans and measure its change.

    Parameters
    ----------
    old, new : geopandas.GeoDataFrame
        The ``grids`` layers (``grid_code`` and Polygon geometry) of the two plans.
    tolerance_m2 : float
        Largest symmetric difference (m²) between the two shapes of a code that still counts as kept.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per code (sorted): ``grid_code``, ``change`` (kept/reshaped/created/retired),
        ``area_old_m2``, ``area_new_m2``, ``area_change_m2``, ``changed_m2`` (the symmetric
        difference); geometry the new shape (the old one for a retired grid), WGS 84.
    """
    go, gn = _by_code(old), _by_code(new)
    crs = _metric([gpd.GeoDataFrame(geometry=go), gpd.GeoDataFrame(geometry=gn)])
    codes = sorted(set(go.index) | set(gn.index))
    a_old = pd.Series(go.to_crs(crs).area.to_numpy(), index=go.index).reindex(codes)
    a_new = pd.Series(gn.to_crs(crs).area.to_numpy(), index=gn.index).reindex(codes)
    both = [c for c in codes if c in go.index and c in gn.index]
    sym = pd.Series(np.nan, index=codes)
    if both:
        mo = gpd.GeoSeries(go.loc[both].to_numpy(), crs=4326).to_crs(crs).make_valid().to_numpy()
        mn = gpd.GeoSeries(gn.loc[both].to_numpy(), crs=4326).to_crs(crs).make_valid().to_numpy()
        sym.loc[both] = shapely.area(shapely.symmetric_difference(mo, mn))
    change = np.where(a_old.isna(), "created", np.where(a_new.isna(), "retired",
                                                        np.where(sym <= tolerance_m2, "kept", "reshaped")))
    geom = [gn[c] if c in gn.index else go[c] for c in codes]
    return gpd.GeoDataFrame({"grid_code": codes, "change": change, "area_old_m2": a_old.round(1).to_numpy(),
                             "area_new_m2": a_new.round(1).to_numpy(),
                             "area_change_m2": (a_new.fillna(0) - a_old.fillna(0)).round(1).to_numpy(),
                             "changed_m2": sym.round(1).to_numpy()}, geometry=geom, crs=4326)


def household_key(hh: gpd.GeoDataFrame) -> str | None:
    """Return the name of the households layer's input-id column (its first non-plan column), None if it has none."""
    for c in hh.columns:
        if c != hh.geometry.name and c not in PLAN_COLUMNS:
            return c
    return None


def _keyed(hh: gpd.GeoDataFrame, key: str | None) -> pd.DataFrame:
    """Households as ``key → (grid_code, weight, x, y)``; the key is the input id, or the point."""
    hh = wgs84_frame(hh)
    x, y = shapely.get_x(hh.geometry.to_numpy()), shapely.get_y(hh.geometry.to_numpy())
    k = hh[key].astype(str).to_numpy() if key else np.char.add(np.round(x, 7).astype(str),
                                                                 np.char.add(",", np.round(y, 7).astype(str)))
    w = pd.to_numeric(hh["households"], errors="coerce").fillna(1).to_numpy() if "households" in hh else np.ones(len(hh))
    code = hh["grid_code"].astype(object).where(hh["grid_code"].notna(), None) if "grid_code" in hh else None
    df = pd.DataFrame({"key": k, "grid": code if code is not None else None, "w": w, "x": x, "y": y})
    return df.drop_duplicates("key", keep="first").set_index("key")


def household_transitions(old_hh: gpd.GeoDataFrame, new_hh: gpd.GeoDataFrame):
    """Match the two households layers and count the moves between grids.

    Parameters
    ----------
    old_hh, new_hh : geopandas.GeoDataFrame
        The ``households`` layers (input id, ``grid_code``, ``households``; Point).

    Returns
    -------
    matrix : pandas.DataFrame
        ``old``, ``new`` (grid codes; None: outside every grid, or not in that plan), ``households``
        (the old plan's weights; the new plan's for a household only it has) and ``points``.
    moved : geopandas.GeoDataFrame
        The households in both plans whose grid changed: ``id``, ``old_grid``, ``new_grid``,
        ``households``; their point in the new plan.
    key : str or None
        The id column matched on (None: matched by point).
    only : dict
        ``{"old": households only the old plan has, "new": households only the new plan has}``.
    """
    key = household_key(old_hh) if household_key(old_hh) == household_key(new_hh) else None
    a, b = _keyed(old_hh, key), _keyed(new_hh, key)
    j = a.join(b, how="outer", lsuffix="_old", rsuffix="_new")
    only_new = j["w_old"].isna()
    w = j["w_old"].where(~only_new, j["w_new"])
    pair = pd.DataFrame({"old": j["grid_old"].astype(object).where(j["grid_old"].notna(), None),
                         "new": j["grid_new"].astype(object).where(j["grid_new"].notna(), None),
                         "households": w, "points": 1})
    matrix = (pair.fillna({"old": NONE, "new": NONE}).groupby(["old", "new"], sort=True)[["households", "points"]]
              .sum().reset_index())
    for c in ("old", "new"):
        matrix[c] = matrix[c].astype(object).where(matrix[c] != NONE, None)
    both = j["w_old"].notna() & j["w_new"].notna()
    mv = j[both & (pair["old"].fillna(NONE) != pair["new"].fillna(NONE))]   # None == None here
    moved = gpd.GeoDataFrame({"id": mv.index.astype(str), "old_grid": mv["grid_old"].astype(object),
                              "new_grid": mv["grid_new"].astype(object), "households": mv["w_old"].to_numpy()},
                             geometry=gpd.points_from_xy(mv["x_new"], mv["y_new"]), crs=4326)
    only = {"old": float(j.loc[j["w_new"].isna(), "w_old"].sum()), "new": float(j.loc[only_new, "w_new"].sum())}
    return matrix, moved.reset_index(drop=True), key, only


def worker_moves(old_w: gpd.GeoDataFrame, new_w: gpd.GeoDataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Return the workers (by ``worker_id``) whose grid changed, and the ids only the new / old roster has."""
    def grid_of(w):
        if len(w) == 0 or "worker_id" not in w or "grid_code" not in w:
            return pd.Series(dtype=object)
        return pd.Series(w["grid_code"].astype(object).to_numpy(), index=w["worker_id"].astype(str)).groupby(level=0).first()

    o, n = grid_of(old_w), grid_of(new_w)
    common = o.index.intersection(n.index)
    ch = [i for i in common if (o[i] if pd.notna(o[i]) else None) != (n[i] if pd.notna(n[i]) else None)]
    moves = pd.DataFrame({"worker_id": ch, "old_grid": [o[i] for i in ch], "new_grid": [n[i] for i in ch]})
    return moves, sorted(set(n.index) - set(o.index)), sorted(set(o.index) - set(n.index))


def station_changes(old_st: gpd.GeoDataFrame, new_st: gpd.GeoDataFrame, tolerance_m: float = 1.0) -> dict[str, list]:
    """Return the station ids added, removed, and moved (same id, more than ``tolerance_m`` apart)."""
    def pts(s):
        if len(s) == 0 or "station_id" not in s:
            return gpd.GeoSeries([], crs=4326)
        s = wgs84_frame(s)
        return gpd.GeoSeries(s.geometry.to_numpy(), index=s["station_id"].astype(str), crs=4326)

    o, n = pts(old_st), pts(new_st)
    o, n = o[~o.index.duplicated()], n[~n.index.duplicated()]
    common = sorted(set(o.index) & set(n.index))
    moved = []
    if common:
        crs = _metric([gpd.GeoDataFrame(geometry=o), gpd.GeoDataFrame(geometry=n)])
        d = o.loc[common].to_crs(crs).distance(n.loc[common].to_crs(crs), align=False)
        moved = [c for c, m in zip(common, d.to_numpy()) if m > tolerance_m]
    return {"added": sorted(set(n.index) - set(o.index)), "removed": sorted(set(o.index) - set(n.index)),
            "moved": moved}
