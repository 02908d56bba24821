"""Build the siting outputs.

Siting outputs: station ids and names, the stations and service-area layers, each household's
nearest station, coverage per unit, and the uncovered clusters.

Coverage = minutes <= minutes + 1e-6 to the nearest station, the rule the plan checker applies.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from gridplan.geo import travel
from gridplan.optimize.siting_candidates import Candidates, Demand

MAX_CLUSTERS = 20


def units_of(points: np.ndarray, units: gpd.GeoDataFrame) -> np.ndarray:
    """Row of the unit containing each point (-1 if none; the first unit on a shared border)."""
    out = np.full(len(points), -1, dtype=np.int64)
    if not len(points) or units is None or not len(units):
        return out
    pi, ui = units.sindex.query(shapely.points(points), predicate="intersects")
    order = np.lexsort((ui, pi))
    pi, ui = pi[order], ui[order]
    first = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, bool)
    out[pi[first]] = ui[first]
    return out


def station_labels(open_: np.ndarray, cands: Candidates, units: gpd.GeoDataFrame | None
                   ) -> tuple[list, list, list, list, np.ndarray]:
    """Name the open candidates.

    (ids, names, existing, source kinds, unit row) of the open candidates. Facilities keep theirs;
    generated ones get "S" + unit code + a 3-digit sequence, west→east then north→south in the unit.
    """
    st_xy = cands.xy[open_] if len(open_) else np.zeros((0, 2))
    st_unit = units_of(st_xy, units)
    ids, names, exist, kinds, gen = [], [], [], [], []
    for t, j in enumerate(open_):
        if j < cands.n_facilities:
            ids.append(cands.fac_ids[j]), names.append(cands.fac_names[j])
            exist.append(bool(cands.fac_existing[j])), kinds.append("facility")
        else:
            ids.append(None), names.append(None), exist.append(False)
            kinds.append(str(cands.kind[j - cands.n_facilities]))
            gen.append(t)
    if gen:
        g = np.asarray(gen)
        keys = pd.DataFrame({"t": g, "u": st_unit[g], "x": np.round(st_xy[g, 0], 1),
                             "ny": -np.round(st_xy[g, 1], 1)}).sort_values(["u", "x", "ny", "t"])
        keys["seq"] = keys.groupby("u").cumcount() + 1
        codes = units["unit_code"].astype(str).to_numpy() if units is not None and len(units) else np.array([])
        vn = units["village_name"].to_numpy() if units is not None and "village_name" in units else None
        taken = set(i for i in ids if i)
        for t, u, seq in zip(keys.t, keys.u, keys.seq):
            code = codes[u] if u >= 0 else "X"
            sid = f"S{code}{seq:03d}"
            while sid in taken:
                seq += 1000
                sid = f"S{code}{seq:03d}"
            taken.add(sid)
            ids[t] = sid
            label = vn[u] if vn is not None and u >= 0 and isinstance(vn[u], str) and vn[u] else code
            names[t] = f"{label} 便民服务点 {seq}"
    return ids, names, exist, kinds, st_unit


def covered_mask(demand: Demand, mins: np.ndarray, minutes: float) -> np.ndarray:
    """Households within ``minutes`` (+ the checker's 1e-6) of their nearest station."""
    return demand.finite & np.isfinite(mins) & (np.nan_to_num(mins, nan=np.inf) <= minutes + travel.EPS_MIN)


def stations_layer(ids, names, exist, kinds, st_unit, st_xy, near, covered, w, units, crs) -> gpd.GeoDataFrame:
    """Build the ``stations`` layer (contract columns + ``source``)."""
    n = len(ids)
    per = np.bincount(near[covered], weights=w[covered], minlength=n) if n else np.zeros(0)
    codes = units["unit_code"].astype(str).to_numpy() if units is not None and len(units) else np.array([])
    return gpd.GeoDataFrame({
        "station_id": ids, "name": names, "existing": np.array(exist, dtype=bool),
        "village_code": [codes[u] if u >= 0 else None for u in st_unit],
        "households_covered": np.round(np.asarray(per, float)).astype(np.int64),
        "source": kinds,
    }, geometry=shapely.points(st_xy) if n else [], crs=crs)


def service_areas_layer(ids, st_xy, minutes, mode, speed, crs, net=None) -> gpd.GeoDataFrame:
    """Circles (straight line) or isochrones (``net``) of ``minutes`` around each station."""
    if net is not None:
        polys = net.isochrones(st_xy, speed, minutes, margin_m=travel.ISO_MARGIN_M.get(mode, 40.0))
    else:
        polys = travel.circles(st_xy, minutes * speed)
    return gpd.GeoDataFrame({"station_id": ids, "minutes": np.full(len(ids), minutes), "mode": [mode] * len(ids)},
                            geometry=list(polys) if len(ids) else [], crs=crs)


def unit_coverage(demand: Demand, covered: np.ndarray, n_units: int, served: np.ndarray | None = None
                  ) -> np.ndarray:
    """Per unit: the household-weighted share covered (``served``: households served per point, if split)."""
    if not n_units:
        return np.zeros(0)
    inu = (demand.unit >= 0) & demand.finite
    tot = np.bincount(demand.unit[inu], weights=demand.w[inu], minlength=n_units)
    got = np.where(covered, demand.w, 0.0) if served is None else served
    cv = np.bincount(demand.unit[inu], weights=got[inu], minlength=n_units)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, cv / np.where(tot > 0, tot, 1), np.nan)


def _cell_components(xy: np.ndarray, radius: float) -> np.ndarray:
    """Component of each point: cells of side ``radius`` joined with their 8 neighbours."""
    cells, inv = np.unique(np.floor(xy / radius).astype(np.int64), axis=0, return_inverse=True)
    lookup = {(int(a), int(b)): k for k, (a, b) in enumerate(cells)}
    r, c = [], []
    for k, (a, b) in enumerate(cells):
        for da in (-1, 0, 1):
            for db in (-1, 0, 1):
                o = lookup.get((int(a) + da, int(b) + db))
                if o is not None:
                    r.append(k), c.append(o)
    g = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(cells), len(cells)))
    return connected_components(g, directed=False)[1][inv.ravel()]


def uncovered_clusters(households: gpd.GeoDataFrame, w: np.ndarray, mask: np.ndarray, hh_unit: np.ndarray,
                       unit_codes: np.ndarray, radius: float, limit: int = MAX_CLUSTERS) -> list[dict]:
    """Group the uncovered households into clusters.

    Groups of uncovered households: cells of side ``radius`` joined with their 8 neighbours; the
    largest ``limit`` by households, each with its weighted WGS 84 centre and main unit code.
    """
    idx = np.flatnonzero(mask & (w > 0))
    if not len(idx):
        return []
    comp = _cell_components(travel.as_xy(households.geometry.values[idx]), radius)
    ww = w[idx]
    if "lon" in households and "lat" in households:
        lon, lat = households["lon"].to_numpy(float)[idx], households["lat"].to_numpy(float)[idx]
    else:
        ll = gpd.GeoSeries(households.geometry.values[idx], crs=households.crs).to_crs(4326)
        lon, lat = ll.x.to_numpy(), ll.y.to_numpy()
    df = pd.DataFrame({"c": comp, "w": ww, "lon": lon * ww, "lat": lat * ww, "u": hh_unit[idx]})
    agg = df.groupby("c").agg(w=("w", "sum"), lon=("lon", "sum"), lat=("lat", "sum"))
    main_u = (df.groupby(["c", "u"])["w"].sum().reset_index()
              .sort_values(["c", "w", "u"], ascending=[True, False, True])
              .drop_duplicates("c").set_index("c")["u"])
    agg = agg.sort_values("w", ascending=False).head(limit)
    out = []
    for c_, row in agg.iterrows():
        u = int(main_u.get(c_, -1))
        out.append({"lon": round(float(row.lon / row.w), 6), "lat": round(float(row.lat / row.w), 6),
                    "households": int(round(row.w)),
                    "village_code": (str(unit_codes[u]) if 0 <= u < len(unit_codes) else None)})
    return out


def reach_figures(cov: sparse.csr_matrix, open_: np.ndarray, demand: Demand, mins: np.ndarray,
                  covered: np.ndarray) -> dict:
    """Return the worst minutes of a served household and the share of households two stations reach."""
    total = demand.total
    within = np.asarray((cov[:, open_] != 0).sum(axis=1)).ravel() if len(open_) else np.zeros(cov.shape[0])
    two = demand.finite & (within >= 2)
    m = np.where(covered, mins, np.nan)
    return {"worst_minutes": float(np.nanmax(m)) if np.isfinite(m).any() else None,
            "double_coverage_share": float(demand.w[two].sum() / total) if total > 0 else None}


def with_status(stations: gpd.GeoDataFrame, open_: np.ndarray, cands: Candidates, capacity: np.ndarray,
                load: np.ndarray | None) -> gpd.GeoDataFrame:
    """Add ``status`` (kept | new), ``capacity``, ``assigned`` and ``utilisation`` to the stations layer."""
    st = stations.copy()
    st["status"] = np.where(st["existing"].to_numpy(bool), "kept", "new")
    cap = capacity[open_] if len(open_) else np.zeros(0)
    st["capacity"] = np.where(np.isfinite(cap), cap, np.nan)
    assigned = load[open_] if load is not None and len(open_) else st["households_covered"].to_numpy(float)
    st["assigned"] = np.round(np.asarray(assigned, float), 6)
    with np.errstate(invalid="ignore", divide="ignore"):
        st["utilisation"] = np.where(np.isfinite(cap) & (cap > 0), st["assigned"] / np.where(cap > 0, cap, 1), np.nan)
    return st


def append_closed(stations: gpd.GeoDataFrame, closed: np.ndarray, moves: list, open_: np.ndarray,
                  cands: Candidates, units, crs) -> gpd.GeoDataFrame:
    """Append the closed existing stations (status closed, or moved with ``moved_to``) to the layer."""
    xy = cands.xy[closed]
    ids = [cands.fac_ids[j] for j in closed]
    new_id = dict(zip(open_.tolist(), stations["station_id"].tolist()))
    moved_to = {int(c): new_id.get(int(n)) for c, n in moves}
    codes = units["unit_code"].astype(str).to_numpy() if units is not None and len(units) else np.array([])
    uu = units_of(xy, units)
    rows = gpd.GeoDataFrame({
        "station_id": ids, "name": [cands.fac_names[j] for j in closed], "existing": True,
        "village_code": [codes[u] if u >= 0 else None for u in uu], "households_covered": 0,
        "source": "facility", "status": ["moved" if int(j) in moved_to else "closed" for j in closed],
        "capacity": np.nan, "assigned": 0.0, "utilisation": np.nan,
        "moved_to": [moved_to.get(int(j)) for j in closed]}, geometry=shapely.points(xy), crs=crs)
    st = stations.copy()
    st["moved_from"] = None
    back = {v: cands.fac_ids[k] for k, v in moved_to.items()}
    st["moved_from"] = [back.get(i) for i in st["station_id"]]
    return gpd.GeoDataFrame(pd.concat([st, rows], ignore_index=True), geometry="geometry", crs=crs)


def station_figures(stations: gpd.GeoDataFrame, capacitated: bool) -> dict:
    """Return the stations' utilisation figures, closures and moves for the summary."""
    out = {"closed": stations.loc[stations["status"] == "closed", "station_id"].tolist()}
    if "moved_to" in stations:
        mv = stations[stations["status"] == "moved"]
        out["moved"] = [{"from": a, "to": b} for a, b in zip(mv["station_id"], mv["moved_to"])]
    if capacitated:
        live = stations[stations["status"] != "closed"]
        u = live["utilisation"].to_numpy(float)
        cap, assigned = live["capacity"].to_numpy(float), live["assigned"].to_numpy(float)
        over = np.isfinite(cap) & (assigned > cap * (1 + 1e-9) + 1e-6)
        out.update({"capacitated": True, "assigned_share_of_capacity": float(np.nansum(assigned) / np.nansum(cap))
                    if np.nansum(cap) > 0 else None,
                    "utilisation_max": float(np.nanmax(u)) if np.isfinite(u).any() else None,
                    "utilisation_mean": float(np.nanmean(u)) if np.isfinite(u).any() else None,
                    "stations_over_capacity": int(over.sum())})
    return out
