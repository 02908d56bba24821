"""From per-unit partitions to the plan's rows: grids with codes and metrics, units, households.

Each unit's polygons arrive in its county's metric CRS: areas, Polsby-Popper, gaps and overlaps are
measured there, then the polygons are carried into the dataset's CRS. Household labels are taken
from the polygons, so the households layer, lookup and any recount name the same grid.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridplan.geo.crs import Reprojector
from gridplan.geo.grids import polsby_popper
from gridplan.geo.model import Dataset
from gridplan.geo.travel import round_minutes
from gridplan.optimize.options import PlanOptions
from gridplan.optimize.partition import UnitPartition, choose_k


def assemble_grids(ds: Dataset, results: dict[int, UnitPartition], opts: PlanOptions,
                   seqs: dict[int, list[int]] | None = None, crs_of: list | None = None,
                   targets: list | None = None):
    """Grid rows (dataset CRS) with codes and metrics, each household's grid code, per-unit geometry stats.

    ``results`` hold each unit's polygons in ``crs_of[u]``: areas, Polsby-Popper, gaps and overlaps
    are measured there, then the polygons are carried into the dataset's CRS. A failed unit's grid
    deviates from the mean the unit should have had (H / choose_k(H, target)), not from itself.
    ``deviation`` is that of the balanced measure (households column ``_measure`` when the plan
    balances another one, see ``optimize.measures``), kept per grid as ``measure``; ``_workload``
    and ``_secondary`` row columns are summed per grid too.
    """
    units, hh = ds.units, ds.households
    crs_of = crs_of or [ds.crs] * len(units)
    hh_grid = np.full(len(hh), None, dtype=object)
    inside = np.flatnonzero(hh["unit_idx"].to_numpy() >= 0)
    groups = pd.Series(inside).groupby(hh["unit_idx"].to_numpy()[inside]).indices
    pop = hh["population"].to_numpy(float)
    weight = hh["weight"].to_numpy(float)
    counts = hh["households"].to_numpy(np.int64)
    extra = {c: hh[c].to_numpy(float) for c in ("_workload", "_secondary") if c in hh}
    measure = hh["_measure"].to_numpy(float) if "_measure" in hh else counts.astype(float)
    hx, hy = hh.geometry.x.to_numpy(), hh.geometry.y.to_numpy()
    rows, stats, back = [], {}, {}
    for u in range(len(units)):
        part = results[u]
        unit = units.iloc[u]
        code = str(unit["unit_code"])
        idx = inside[groups[u]] if u in groups else np.array([], dtype=np.int64)
        unit_seqs = (seqs or {}).get(u) or list(range(1, part.k + 1))
        codes = np.array([f"{code}{s:03d}" for s in unit_seqs], dtype=object)
        local = np.asarray(part.polygons, dtype=object)
        key = id(crs_of[u])
        if key not in back:
            back[key] = (Reprojector(crs_of[u], ds.crs), Reprojector(ds.crs, crs_of[u]))
        rp, fwd = back[key]
        stats[u] = _unit_geometry(fwd.geom(unit.geometry), local)
        area, pp = shapely.area(local) / 1e6, polsby_popper(local)
        base = rp.geom(local)
        labels = _labels_from_polygons(base, part.labels, hx[idx], hy[idx]) if len(idx) and part.k > 1 \
            else part.labels
        stats[u]["relabelled"] = int(counts[idx][labels != part.labels].sum()) if len(idx) else 0
        if len(idx):
            hh_grid[idx] = codes[labels]
        g_h = np.bincount(labels, weights=counts[idx], minlength=part.k) if len(idx) else np.zeros(part.k)
        g_p = np.bincount(labels, weights=pop[idx], minlength=part.k) if len(idx) else np.zeros(part.k)
        g_w = np.bincount(labels, weights=weight[idx], minlength=part.k) if len(idx) else np.zeros(part.k)
        g_m = np.bincount(labels, weights=measure[idx], minlength=part.k) if len(idx) else np.zeros(part.k)
        g_x = {c: np.bincount(labels, weights=v[idx], minlength=part.k) if len(idx) else np.zeros(part.k)
               for c, v in extra.items()}
        mean = g_m.mean() if part.k else 0.0
        if part.status == "failed" and targets is not None:
            mean = g_m.sum() / choose_k(g_h.sum(), targets[u])
        for i in range(part.k):
            rows.append({"grid_code": codes[i], "village_code": code, "township_code": unit["township_code"],
                         "county_code": unit["county_code"], "households": int(round(g_h[i])),
                         "population": int(round(g_p[i])), "weight": float(g_w[i]),
                         "deviation": float((g_m[i] - mean) / mean) if mean > 0 else 0.0,
                         "measure": float(g_m[i]), **{c: float(v[i]) for c, v in g_x.items()},
                         "unit_idx": u, "status": part.status, "area_km2": float(area[i]),
                         "polsby_popper": float(pp[i]), "geometry": base[i]})
    grids = gpd.GeoDataFrame(rows, geometry="geometry", crs=ds.crs) if rows else gpd.GeoDataFrame(
        {"grid_code": [], "village_code": [], "township_code": [], "county_code": [], "households": [],
         "population": [], "weight": [], "deviation": [], "unit_idx": [], "status": [], "area_km2": [],
         "polsby_popper": []}, geometry=gpd.GeoSeries([], crs=ds.crs), crs=ds.crs)
    return grids, hh_grid, stats


def _labels_from_polygons(polys: np.ndarray, labels: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Give each household the grid whose polygon holds it.

    That is how the households layer, lookup and any recount see it: a label whose polygon does
    not hold its point (points merged across an edge, or an edge moved by the reprojection) takes
    the grid that does. Points no grid holds keep theirs.
    """
    own = shapely.intersects_xy(polys[labels], x, y)
    if own.all():
        return labels
    bad = np.flatnonzero(~own)
    tree = shapely.STRtree(polys)
    pi, gi = tree.query(shapely.points(x[bad], y[bad]), predicate="intersects")
    out = labels.copy()
    first = np.unique(pi, return_index=True)[1]
    out[bad[pi[first]]] = gi[first]
    return out


def _unit_geometry(unit_geom, polys: np.ndarray) -> dict:
    """Uncovered and doubly covered area (m²) of one unit's grids, and how many are single Polygons."""
    if not len(polys):
        return {"gap": float(shapely.area(unit_geom)), "overlap": 0.0, "contiguous": 0}
    un = shapely.union_all(polys)
    return {"gap": float(shapely.area(shapely.difference(unit_geom, un))),
            "overlap": float(shapely.area(polys).sum()) - float(shapely.area(un)),
            "contiguous": int((shapely.get_type_id(polys) == 3).sum())}


def units_layer(ds: Dataset, grids_m: gpd.GeoDataFrame, unit_coverage, hh) -> gpd.GeoDataFrame:
    """Build the units output layer: each unit's households, grids and coverage."""
    units = ds.units
    inside = hh[hh["unit_idx"] >= 0]
    hh_per_unit = inside.groupby("unit_idx")["households"].sum().reindex(range(len(units)), fill_value=0)
    g = grids_m.groupby("unit_idx")
    out = gpd.GeoDataFrame({
        ds.code_field: units["unit_code"].to_numpy(),
        "village_name": units["village_name"].to_numpy(),
        "township_code": units["township_code"].to_numpy(),
        "county_code": units["county_code"].to_numpy(),
        "kind": units["kind"].to_numpy(),
        "households": hh_per_unit.to_numpy().astype(int),
        "grids": g.size().reindex(range(len(units)), fill_value=0).to_numpy().astype(int),
        "workers": g["workers"].sum().reindex(range(len(units)), fill_value=0).to_numpy().astype(int),
        "coverage": np.asarray(unit_coverage, dtype=float),
    }, geometry=units.geometry.values, crs=ds.crs)
    if ds.code_field != "village_code":
        out.insert(1, "village_code", units["unit_code"].to_numpy())
    return out


def households_layer(ds: Dataset, hh) -> gpd.GeoDataFrame:
    """Build the households output layer: grid, station, minutes and unit of each household."""
    id_col = ds.id_field or "id"
    codes = ds.units["unit_code"].to_numpy()
    uidx = hh["unit_idx"].to_numpy()
    village = np.where(uidx >= 0, codes[np.clip(uidx, 0, None)] if len(codes) else None, None)
    minutes = np.asarray(hh["minutes"], dtype=float)
    micro = {"micro_grid_code": hh["micro_grid_code"].to_numpy()} if "micro_grid_code" in hh else {}
    return gpd.GeoDataFrame({
        id_col: hh["hh_id"].to_numpy(),
        "grid_code": hh["grid_code"].to_numpy(),
        "station_id": hh["station_id"].to_numpy(),
        "minutes": round_minutes(minutes),   # as lookup reports them (geo.travel)
        "village_code": village,
        "households": hh["households"].to_numpy(),
        "population": hh["population"].to_numpy(float),   # (added) so grid populations can be recounted
        **micro,
    }, geometry=gpd.points_from_xy(hh["lon"].to_numpy(), hh["lat"].to_numpy()), crs=4326)
