"""Siting at province scale: candidates, models and coverage county by county, then one summary.

Counties plan their own stations (a county's target is the county's), so each county is an
independent siting problem — small enough for the exact models, and run in parallel like the
units. The province is then put back together: every household's nearest station and minutes
are recomputed over all stations (a household near a county line may be served across it, as
check_plan and residents count it), station and unit coverage follow from that, and the summary
carries the province figures plus one line per county (share, stations, proven bound, gap).
"""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridplan.geo import travel
from gridplan.optimize.executors import run_tasks
from gridplan.optimize.options import PlanOptions
from gridplan.optimize.siting import SitingResult, site_stations, uncovered_clusters

MAX_CLUSTERS = 50


@dataclass(frozen=True)
class CountyTask:
    code: str
    unit_rows: np.ndarray                 # rows of the province's units in this county
    households: gpd.GeoDataFrame          # unit_idx renumbered to the county's units
    units: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame | None
    options: PlanOptions
    network: str | None


def _site_county(task: CountyTask) -> tuple[str, SitingResult]:
    return task.code, site_stations(task.households, task.units, task.options, task.facilities, task.network)


def county_of_points(xy: np.ndarray, units: gpd.GeoDataFrame, county: np.ndarray) -> np.ndarray:
    """County code of the unit holding each point (the nearest unit when none holds it)."""
    if not len(xy):
        return np.zeros(0, dtype=object)
    tree = shapely.STRtree(units.geometry.values)
    pts = shapely.points(xy)
    _, near = tree.query_nearest(pts, all_matches=False)   # distance 0 inside a unit
    return county[near]


def county_tasks(households: gpd.GeoDataFrame, units: gpd.GeoDataFrame, options: PlanOptions,
                 facilities: gpd.GeoDataFrame | None, network: str | None, county: np.ndarray):
    hh_unit = households["unit_idx"].to_numpy(np.int64)
    fac_county = None
    if facilities is not None and len(facilities):
        fac = facilities.to_crs(households.crs) if facilities.crs != households.crs else facilities
        fac_county = county_of_points(travel.as_xy(fac.geometry), units, county)
    for code in sorted(set(county)):
        rows = np.flatnonzero(county == code)
        remap = np.full(len(units), -1, dtype=np.int64)
        remap[rows] = np.arange(len(rows))
        sel = (hh_unit >= 0) & np.isin(hh_unit, rows)
        hh_c = households[sel].copy()
        hh_c["unit_idx"] = remap[hh_unit[sel]]
        fac_c = facilities[fac_county == code] if fac_county is not None else None
        yield CountyTask(code, rows, hh_c, units.iloc[rows].reset_index(drop=True), fac_c, options, network)


def site_by_county(households: gpd.GeoDataFrame, units: gpd.GeoDataFrame, options: PlanOptions,
                   facilities: gpd.GeoDataFrame | None = None, network: str | None = None) -> SitingResult:
    """``site_stations`` per county (in parallel with ``options.jobs``/``options.scheduler``), combined."""
    county = units["county_code"].fillna("").astype(str).to_numpy() if len(units) else np.zeros(0, object)
    if len(set(county)) <= 1:
        return site_stations(households, units, options, facilities, network)
    results: dict[str, SitingResult] = {}
    run_tasks(_site_county, county_tasks(households, units, options, facilities, network, county),
              jobs=options.jobs, scheduler=options.scheduler, on_result=lambda r: results.__setitem__(*r))
    codes = sorted(results)
    crs = households.crs
    stations = pd.concat([results[c].stations for c in codes], ignore_index=True)
    stations = gpd.GeoDataFrame(stations, geometry="geometry", crs=crs)
    areas = gpd.GeoDataFrame(pd.concat([results[c].service_areas for c in codes], ignore_index=True),
                             geometry="geometry", crs=crs)

    # every household's nearest station over the whole province
    minutes = float(options.minutes)
    hh_xy = travel.as_xy(households.geometry)
    w = households["households"].to_numpy(float)
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    finite = travel.finite_rows(hh_xy)
    ids = stations["station_id"].to_numpy(dtype=object)
    if network:
        # along roads, each county's answer for its own households (a cross-county road search per
        # household would need the whole province's network at once)
        near_id = np.full(len(households), None, dtype=object)
        mins = np.full(len(households), np.nan)
        hh_unit = households["unit_idx"].to_numpy(np.int64)
        pos = {c: np.flatnonzero(np.isin(hh_unit, np.flatnonzero(county == c))) for c in codes}
        for c in codes:
            near_id[pos[c]] = results[c].hh_station
            mins[pos[c]] = results[c].hh_minutes
        near = pd.Series(np.arange(len(ids)), index=ids).reindex(near_id).fillna(-1).to_numpy(np.int64)
    else:
        near, mins = travel.station_nearest(travel.household_lonlat(households), travel.lonlat_of(stations),
                                            options.speed_m_per_min)
        near_id = np.full(len(households), None, dtype=object)
        near_id[near >= 0] = ids[near[near >= 0]]
    covered = finite & np.isfinite(mins) & (np.nan_to_num(mins, nan=np.inf) <= minutes + travel.EPS_MIN)
    total_w = float(w[finite].sum())
    if len(stations):
        stations["households_covered"] = np.round(
            np.bincount(near[covered], weights=w[covered], minlength=len(stations))).astype(np.int64)

    hh_unit = households["unit_idx"].to_numpy(np.int64)
    inu = (hh_unit >= 0) & finite
    tot = np.bincount(hh_unit[inu], weights=w[inu], minlength=len(units))
    cv = np.bincount(hh_unit[inu & covered], weights=w[inu & covered], minlength=len(units))
    with np.errstate(invalid="ignore", divide="ignore"):
        unit_coverage = np.where(tot > 0, cv / np.where(tot > 0, tot, 1), np.nan)

    per = {c: results[c].summary for c in codes}
    bounds = [s.get("bound") for s in per.values()]
    unit_codes = units["unit_code"].astype(str).to_numpy()
    radius = minutes * options.speed_m_per_min
    first = per[codes[0]]
    summary = {
        "minutes": minutes, "mode": options.mode, "speed_kmh": options.effective_speed_kmh,
        "travel": first.get("travel"),
        "share": float(w[covered].sum() / total_w) if total_w > 0 else float("nan"),
        "households_covered": float(w[covered].sum()), "households_total": total_w,
        "stations": int(len(stations)), "existing": int(stations["existing"].sum()) if len(stations) else 0,
        "added": int((~stations["existing"].astype(bool)).sum()) if len(stations) else 0,
        "candidates": int(sum(s.get("candidates", 0) for s in per.values())),
        "model": first.get("model"), "scope": "county",
        "status": "OPTIMAL" if all(s.get("status") == "OPTIMAL" for s in per.values()) else "MIXED",
        # counties are independent problems: the province's bound is the sum of theirs
        "bound": float(sum(bounds)) if all(b is not None for b in bounds) else None,
        "gap": max(float(s.get("gap") or 0.0) for s in per.values()),
        "target": options.coverage_target, "max_stations": options.max_stations,
        "counties": {c: {"share": s.get("share"), "stations": s.get("stations"), "added": s.get("added"),
                         "bound": s.get("bound"), "gap": s.get("gap"), "status": s.get("status"),
                         "households": s.get("households_total")} for c, s in per.items()},
        "uncovered_clusters": uncovered_clusters(households, w, finite & ~covered, hh_unit, unit_codes,
                                                 radius)[:MAX_CLUSTERS],
        "notes": [f"county {c}: {n}" for c in codes for n in per[c].get("notes", [])],
        "runtime_s": {"solve": round(sum(s.get("runtime_s", {}).get("solve", 0.0) for s in per.values()), 3),
                      "travel": round(sum(s.get("runtime_s", {}).get("travel", 0.0) for s in per.values()), 3)},
    }
    node_minutes = None
    if network and all(results[c].node_minutes is not None for c in codes):
        node_minutes = pd.concat([results[c].node_minutes.assign(county_code=c) for c in codes], ignore_index=True)
    return SitingResult(stations=stations, service_areas=areas, hh_station=near_id, hh_minutes=mins,
                        unit_coverage=unit_coverage, summary=summary, node_minutes=node_minutes)
