"""Service stations: coverage of the stations we have, and where the next ones go.

``site_stations`` answers the planners' four questions in one call:

* coverage report — with the given stations (facilities marked ``existing``), what share of households
  lies within ``minutes`` of one, and where are the holes (``summary["uncovered_clusters"]``);
* ``options.max_stations = P`` — maximal covering (MCLP): P new stations besides the existing ones;
* ``options.coverage_target = 0.9`` — the fewest new stations reaching the share (set covering with
  partial coverage); CP-SAT reports its proven bound and the gap;
* with both, the fewest stations reaching the target with at most P (else P stations at maximal cover);
* then a p-median tiebreak: same number of stations, no less coverage, least weighted travel.

Candidates: the given facilities (existing ones forced open) plus generated ones — each unit's "seat"
(the household nearest the unit's household-weighted centre) and one point per occupied cell of a
square lattice of side ``radius / 2`` (the household nearest the cell's weighted centre, so a station
sits where people live). Households weigh by their ``households`` count.

Travel: ``geo.travel`` (straight line, or along roads with ``network``). Coverage = minutes <= minutes
+ 1e-6 to the nearest station, the same rule the plan checker applies.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from gridplan.geo import travel
from gridplan.optimize.options import PlanOptions
from gridplan.optimize import siting_models as sm

MAX_CLUSTERS = 20


@dataclass
class SitingResult:
    stations: gpd.GeoDataFrame       # station_id, name, existing, village_code, households_covered, ...
    service_areas: gpd.GeoDataFrame  # station_id, minutes, mode
    hh_station: np.ndarray           # station_id of each household's nearest station (None if none)
    hh_minutes: np.ndarray           # minutes to it (NaN if none)
    unit_coverage: np.ndarray        # per unit: share of its households covered (NaN if none)
    summary: dict = field(default_factory=dict)
    node_minutes: pd.DataFrame | None = None  # network plans: road minutes per node (geo.travel.NodeMinutes.to_frame)


# --------------------------------------------------------------------------- candidates
def _nearest_member(xy: np.ndarray, groups: np.ndarray, w: np.ndarray) -> pd.DataFrame:
    """For each group: the index of the member nearest the group's weighted centre."""
    df = pd.DataFrame({"g": groups, "x": xy[:, 0] * w, "y": xy[:, 1] * w, "w": w})
    agg = df.groupby("g", sort=True)[["x", "y", "w"]].sum()
    cx = (agg.x / agg.w).reindex(groups).to_numpy()
    cy = (agg.y / agg.w).reindex(groups).to_numpy()
    d2 = (xy[:, 0] - cx) ** 2 + (xy[:, 1] - cy) ** 2
    best = pd.DataFrame({"g": groups, "d2": d2, "i": np.arange(len(groups))}).sort_values(["g", "d2", "i"])
    return best.drop_duplicates("g")[["g", "i"]]


def generate_candidates(hh_xy: np.ndarray, hh_w: np.ndarray, hh_unit: np.ndarray, cell_m: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Generated candidate points (x, y) and their kind ("seat" | "cell"), deduplicated, deterministic."""
    ok = travel.finite_rows(hh_xy) & (hh_w > 0)
    xy, w, unit = hh_xy[ok], hh_w[ok], hh_unit[ok]
    if not len(xy):
        return np.zeros((0, 2)), np.array([], dtype=object)
    seats = _nearest_member(xy, np.where(unit >= 0, unit, -1), w)
    seats = seats[seats.g >= 0]
    cx = np.floor(xy[:, 0] / cell_m).astype(np.int64)
    cy = np.floor(xy[:, 1] / cell_m).astype(np.int64)
    cell = cx * 10_000_019 + cy
    cells = _nearest_member(xy, cell, w)
    pts = np.vstack([xy[seats.i.to_numpy()], xy[cells.i.to_numpy()]])
    kind = np.array(["seat"] * len(seats) + ["cell"] * len(cells), dtype=object)
    _, first = np.unique(np.round(pts, 1), axis=0, return_index=True)
    first = np.sort(first)
    return pts[first], kind[first]


def _units_of(points: np.ndarray, units: gpd.GeoDataFrame) -> np.ndarray:
    """Row of the unit containing each point (-1 if none; the first unit on a shared border)."""
    out = np.full(len(points), -1, dtype=np.int64)
    if not len(points) or units is None or not len(units):
        return out
    geoms = shapely.points(points)
    pi, ui = units.sindex.query(geoms, predicate="intersects")
    order = np.lexsort((ui, pi))
    pi, ui = pi[order], ui[order]
    first = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, bool)
    out[pi[first]] = ui[first]
    return out


# --------------------------------------------------------------------------- main entry
def site_stations(households: gpd.GeoDataFrame, units: gpd.GeoDataFrame, options: PlanOptions,
                  facilities: gpd.GeoDataFrame | None = None, network: str | None = None,
                  time_limit: float = 30.0, workers: int = 1, tiebreak: bool = True,
                  tiebreak_time: float = 5.0) -> SitingResult:
    """Stations, service areas and coverage (see the module docstring). ``time_limit`` bounds each
    solver call (seconds); ``tiebreak`` runs the p-median second stage for at most ``tiebreak_time``."""
    t0 = time.perf_counter()
    crs = households.crs
    minutes, mode = float(options.minutes), options.mode
    speed = options.speed_m_per_min
    radius = minutes * speed
    hh_xy = travel.as_xy(households.geometry)
    w = (households["households"].to_numpy(float) if "households" in households
         else np.ones(len(households)))
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    finite = travel.finite_rows(hh_xy)
    hh_unit = (households["unit_idx"].to_numpy(np.int64) if "unit_idx" in households
               else np.full(len(households), -1))
    unit_codes = units["unit_code"].astype(str).to_numpy() if units is not None and len(units) else np.array([])
    notes: list[str] = []

    # ---- candidates: facilities first (existing forced), then generated
    fac_xy = np.zeros((0, 2))
    fac_ids, fac_names, fac_exist = [], [], np.zeros(0, bool)
    if facilities is not None and len(facilities):
        fac = facilities.to_crs(crs) if facilities.crs is not None and facilities.crs != crs else facilities
        fac_xy = travel.as_xy(fac.geometry)
        good = travel.finite_rows(fac_xy)
        if (~good).any():
            notes.append(f"{int((~good).sum())} facility point(s) without coordinates ignored")
        fac = fac[good]
        fac_xy = fac_xy[good]
        fac_ids = (fac["facility_id"].astype(str).tolist() if "facility_id" in fac
                   else [f"F{i + 1}" for i in range(len(fac))])
        fac_names = fac["name"].astype(str).tolist() if "name" in fac else list(fac_ids)
        fac_exist = (fac["existing"].fillna(False).astype(bool).to_numpy() if "existing" in fac
                     else np.ones(len(fac), bool))
    gen_xy, gen_kind = generate_candidates(hh_xy, w, hh_unit, cell_m=max(radius / 2.0, 1.0))
    cand_xy = np.vstack([fac_xy, gen_xy]) if len(gen_xy) else fac_xy
    n_fac = len(fac_xy)
    forced = np.flatnonzero(fac_exist)

    # ---- travel
    t_travel = time.perf_counter()
    net = None
    if network:
        net = _load_network(network, households, crs, mode)
        cov = net.coverage(hh_xy, cand_xy, speed, minutes)
    else:
        # the one distance model (geo.travel): chords on the ellipsoid, as the households layer counts
        cov = travel.straight_coverage(travel.ecef(travel.household_lonlat(households)),
                                       travel.ecef(travel.lonlat_of_xy(cand_xy, crs)), speed, minutes)
    t_travel = time.perf_counter() - t_travel

    # ---- models
    t_solve = time.perf_counter()
    P, target = options.max_stations, options.coverage_target
    total_w = float(w[finite].sum())
    result = None
    if P is None and target is None:
        model = "report"
        open_ = forced
    elif target is not None and P is None:
        model = "min_cover"
        result = sm.min_cover(cov, w, target_weight=target * total_w, forced=forced, time_limit=time_limit,
                              seed=options.seed, workers=workers)
    else:
        model = "max_cover"
        result = sm.max_cover(cov, w, int(P), forced=forced, time_limit=time_limit, seed=options.seed,
                              workers=workers)
        if target is not None and result.covered_weight + 1e-9 >= target * total_w:
            try:
                r2 = sm.min_cover(cov, w, target_weight=target * total_w, forced=forced, time_limit=time_limit,
                                  seed=options.seed, workers=workers, max_sites=int(P))
                result, model = r2, "min_cover"
            except sm.Infeasible:
                pass
        elif target is not None:
            notes.append(f"{P} new station(s) reach {result.share:.3f}, below the target {target:.3f}")
    tie_note = None
    if result is not None:
        notes.extend(result.notes)
        open_ = result.open
        if tiebreak and len(np.setdiff1d(open_, forced)):
            result, tie_note = sm.tiebreak(cov, w, result, forced=forced, radius=minutes,
                                           time_limit=tiebreak_time, seed=options.seed, workers=workers)
            open_ = result.open
            notes.append(tie_note)
    t_solve = time.perf_counter() - t_solve

    # ---- stations table
    open_ = np.asarray(sorted(open_), dtype=np.int64)
    st_xy = cand_xy[open_] if len(open_) else np.zeros((0, 2))
    st_unit = _units_of(st_xy, units)
    ids, names, exist, kinds = [], [], [], []
    gen_order = []
    for t, j in enumerate(open_):
        if j < n_fac:
            ids.append(fac_ids[j]); names.append(fac_names[j]); exist.append(bool(fac_exist[j]))
            kinds.append("facility")
        else:
            ids.append(None); names.append(None); exist.append(False); kinds.append(str(gen_kind[j - n_fac]))
            gen_order.append(t)
    # generated ids: "S" + unit code + 3-digit sequence, west->east then north->south inside the unit
    if gen_order:
        g = np.asarray(gen_order)
        keys = pd.DataFrame({"t": g, "u": st_unit[g], "x": np.round(st_xy[g, 0], 1), "ny": -np.round(st_xy[g, 1], 1)})
        keys = keys.sort_values(["u", "x", "ny", "t"])
        keys["seq"] = keys.groupby("u").cumcount() + 1
        vn = units["village_name"].to_numpy() if units is not None and "village_name" in units else None
        taken = set(i for i in ids if i)
        for t, u, seq in zip(keys.t, keys.u, keys.seq):
            code = unit_codes[u] if u >= 0 else "X"
            sid = f"S{code}{seq:03d}"
            while sid in taken:
                seq += 1000
                sid = f"S{code}{seq:03d}"
            taken.add(sid)
            ids[t] = sid
            label = (vn[u] if vn is not None and u >= 0 and isinstance(vn[u], str) and vn[u] else code)
            names[t] = f"{label} 便民服务点 {seq}"
    # ---- nearest station of every household, from its lon/lat as lookup answers it (geo.travel)
    hh_ll = travel.household_lonlat(households)
    node_minutes = None
    if net is not None:
        table = net.node_minutes(st_xy, speed)
        near, mins = table.nearest_lonlat(hh_ll)
        node_minutes = table.to_frame(ids)
    else:
        near, mins = travel.station_nearest(hh_ll, travel.lonlat_of_xy(st_xy, crs), speed)
    ids_arr = np.array(ids, dtype=object)
    hh_station = np.full(len(hh_xy), None, dtype=object)
    hh_station[near >= 0] = ids_arr[near[near >= 0]] if len(ids_arr) else None
    covered = finite & np.isfinite(mins) & (np.nan_to_num(mins, nan=np.inf) <= minutes + travel.EPS_MIN)
    share = float(w[covered].sum() / total_w) if total_w > 0 else float("nan")
    hh_cov_per_station = np.bincount(near[covered], weights=w[covered], minlength=len(open_)) if len(open_) else []
    stations = gpd.GeoDataFrame({
        "station_id": ids,
        "name": names,
        "existing": np.array(exist, dtype=bool),
        "village_code": [unit_codes[u] if u >= 0 else None for u in st_unit],
        "households_covered": np.round(np.asarray(hh_cov_per_station, float)).astype(np.int64),
        "source": kinds,
    }, geometry=shapely.points(st_xy) if len(st_xy) else [], crs=crs)

    # ---- service areas
    if net is not None:
        polys = net.isochrones(st_xy, speed, minutes, margin_m=travel.ISO_MARGIN_M.get(mode, 40.0))
    else:
        polys = travel.circles(st_xy, radius)
    service_areas = gpd.GeoDataFrame({"station_id": ids, "minutes": np.full(len(ids), minutes),
                                      "mode": [mode] * len(ids)},
                                     geometry=list(polys) if len(ids) else [], crs=crs)

    # ---- per unit coverage
    n_units = len(units) if units is not None else 0
    unit_coverage = np.full(n_units, np.nan)
    if n_units:
        inu = (hh_unit >= 0) & finite
        tot = np.bincount(hh_unit[inu], weights=w[inu], minlength=n_units)
        cv = np.bincount(hh_unit[inu & covered], weights=w[inu & covered], minlength=n_units)
        with np.errstate(invalid="ignore", divide="ignore"):
            unit_coverage = np.where(tot > 0, cv / np.where(tot > 0, tot, 1), np.nan)

    summary = {
        "minutes": minutes, "mode": mode, "speed_kmh": options.effective_speed_kmh,
        "travel": "network" if net is not None else "straight_line",
        "share": share,
        "households_covered": float(w[covered].sum()), "households_total": total_w,
        "stations": int(len(open_)), "existing": int(np.sum(exist)), "added": int(len(open_) - np.sum(exist)),
        "candidates": int(len(cand_xy)), "model": model,
        "status": result.status if result is not None else "REPORT",
        "bound": _bound_for(result, model, forced),
        "gap": float(result.gap) if result is not None else 0.0,
        "coverable_share": (float(result.coverable_weight / total_w) if result is not None and total_w > 0
                            else None),
        "target": target, "max_stations": P,
        "uncovered_clusters": uncovered_clusters(households, w, finite & ~covered, hh_unit, unit_codes, radius),
        "notes": [n for n in notes if n],
        "runtime_s": {"travel": round(t_travel, 3), "solve": round(t_solve, 3),
                      "total": round(time.perf_counter() - t0, 3)},
    }
    return SitingResult(stations=stations, service_areas=service_areas, hh_station=hh_station,
                        hh_minutes=mins, unit_coverage=unit_coverage, summary=summary, node_minutes=node_minutes)


def _bound_for(result, model, forced):
    """The proven bound in the summary's terms: for min_cover the fewest stations in total (existing +
    new) any solution needs; for max_cover the most households any P stations can cover."""
    if result is None:
        return None
    if model == "min_cover":
        return int(np.ceil(result.bound - 1e-9)) + int(len(forced))
    return float(result.bound)


def _load_network(path, households, crs, mode):
    lon = households["lon"].to_numpy(float) if "lon" in households else None
    bbox = None
    if lon is not None:
        lat = households["lat"].to_numpy(float)
        ok = np.isfinite(lon) & np.isfinite(lat)
        if ok.any():
            pad = 0.05
            bbox = [lon[ok].min() - pad, lat[ok].min() - pad, lon[ok].max() + pad, lat[ok].max() + pad]
    return travel.RoadNetwork.from_pbf(path, crs, mode, bbox=bbox)


def uncovered_clusters(households: gpd.GeoDataFrame, w: np.ndarray, mask: np.ndarray, hh_unit: np.ndarray,
                       unit_codes: np.ndarray, radius: float, limit: int = MAX_CLUSTERS) -> list[dict]:
    """Groups of uncovered households: cells of side ``radius`` joined with their 8 neighbours; the
    largest ``limit`` by households, each with its weighted WGS 84 centre and main unit code."""
    idx = np.flatnonzero(mask & (w > 0))
    if not len(idx):
        return []
    xy = travel.as_xy(households.geometry.values[idx])
    cx = np.floor(xy[:, 0] / radius).astype(np.int64)
    cy = np.floor(xy[:, 1] / radius).astype(np.int64)
    cells, inv = np.unique(np.column_stack([cx, cy]), axis=0, return_inverse=True)
    inv = inv.ravel()
    lookup = {(int(a), int(b)): k for k, (a, b) in enumerate(cells)}
    r, c = [], []
    for k, (a, b) in enumerate(cells):
        for da in (-1, 0, 1):
            for db in (-1, 0, 1):
                o = lookup.get((int(a) + da, int(b) + db))
                if o is not None:
                    r.append(k); c.append(o)
    g = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(cells), len(cells)))
    _, lab = connected_components(g, directed=False)
    comp = lab[inv]
    ww = w[idx]
    if "lon" in households and "lat" in households:
        lon = households["lon"].to_numpy(float)[idx]
        lat = households["lat"].to_numpy(float)[idx]
    else:
        ll = gpd.GeoSeries(households.geometry.values[idx], crs=households.crs).to_crs(4326)
        lon, lat = ll.x.to_numpy(), ll.y.to_numpy()
    df = pd.DataFrame({"c": comp, "w": ww, "lon": lon * ww, "lat": lat * ww, "u": hh_unit[idx]})
    agg = df.groupby("c").agg(w=("w", "sum"), lon=("lon", "sum"), lat=("lat", "sum"))
    main_u = (df.groupby(["c", "u"])["w"].sum().reset_index().sort_values(["c", "w", "u"], ascending=[True, False, True])
              .drop_duplicates("c").set_index("c")["u"])
    agg = agg.sort_values("w", ascending=False).head(limit)
    out = []
    for c_, row in agg.iterrows():
        u = int(main_u.get(c_, -1))
        out.append({"lon": round(float(row.lon / row.w), 6), "lat": round(float(row.lat / row.w), 6),
                    "households": int(round(row.w)),
                    "village_code": (str(unit_codes[u]) if 0 <= u < len(unit_codes) else None)})
    return out
