"""Service stations: coverage of the stations we have, and where the next ones go.

``site_stations`` answers the planners' four questions in one call:

* coverage report — with the given stations (facilities marked ``existing``), what share of households
  lies within ``minutes`` of one, and where are the holes (``summary["uncovered_clusters"]``);
* ``options.max_stations = P`` — maximal covering (MCLP): P new stations besides the existing ones;
* ``options.coverage_target = 0.9`` — the fewest new stations reaching the share (set covering with
  partial coverage); the summary carries the solver's proven bound and gap;
* with both, the fewest stations reaching the target with at most P (else P stations at maximal cover);
* then a p-median tiebreak: same number of stations, no less coverage, least weighted travel.

It runs in four stages, each a plain function over small dataclasses (as spopt builds, then solves):
candidates (``optimize.siting_candidates``) → travel (``geo.travel``: straight line, or along roads
with ``network``) → model (``optimize.siting_models``/``siting_median``, HiGHS with zero gaps and node
limits — exact in float weights and deterministic) → outputs (``optimize.siting_outputs``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import sparse

from gridplan.geo import travel
from gridplan.optimize import siting_models as sm, siting_outputs as so, siting_plan as sp
from gridplan.optimize.options import PlanOptions
from gridplan.optimize.siting_candidates import Candidates, Demand, build_candidates, generate_candidates  # noqa: F401
from gridplan.optimize.siting_outputs import uncovered_clusters  # noqa: F401  (re-exported)

TIEBREAK_NODE_LIMIT = 200


@dataclass
class SitingResult:
    """Stations, service areas, each household's nearest station and minutes, unit coverage, summary."""

    stations: gpd.GeoDataFrame       # station_id, name, existing, village_code, households_covered, ...
    service_areas: gpd.GeoDataFrame  # station_id, minutes, mode
    hh_station: np.ndarray           # station_id of each household's nearest station (None if none)
    hh_minutes: np.ndarray           # minutes to it (NaN if none)
    unit_coverage: np.ndarray        # per unit: share of its households covered (NaN if none)
    summary: dict = field(default_factory=dict)
    node_minutes: pd.DataFrame | None = None  # network plans: road minutes per node (geo.travel.NodeMinutes.to_frame)


@dataclass
class Travel:
    """Hold the coverage sets of one siting problem.

    Coverage sets: ``cov`` (household x candidate, minutes + 1 stored for pairs within reach) and
    the road network when travel follows roads.
    """

    cov: sparse.csr_matrix
    net: object | None
    seconds: float
    far: sparse.csr_matrix | None = None     # p-center: pairs within a longer horizon


@dataclass
class ModelOutcome:
    """What the model stage decided: the open candidates, the model used and its result."""

    open: np.ndarray
    model: str
    result: sm.CoverResult | None
    notes: list[str]
    seconds: float
    ext: sp.Extended | None = None           # capacities, closures, p-center, backup (optimize.siting_plan)


# --------------------------------------------------------------------------- stages
def travel_sets(demand: Demand, cands: Candidates, options: PlanOptions, network: str | None,
                households: gpd.GeoDataFrame) -> Travel:
    """Which candidates reach which households within ``options.minutes``."""
    t = time.perf_counter()
    speed, minutes = options.speed_m_per_min, float(options.minutes)
    if network:
        net = _load_network(network, households, households.crs, options.mode)
        cov = net.coverage(demand.xy, cands.xy, speed, minutes)
    else:
        # the one distance model (geo.travel): chords on the ellipsoid, as the households layer and lookup count
        net = None
        cov = travel.straight_coverage(travel.ecef(travel.household_lonlat(households)),
                                       travel.ecef(travel.lonlat_of_xy(cands.xy, households.crs)), speed, minutes)
    return Travel(cov=cov, net=net, seconds=time.perf_counter() - t)


def travel_all(demand: Demand, cands: Candidates, options: PlanOptions, network: str | None,
               households: gpd.GeoDataFrame) -> Travel:
    """Return ``travel_sets``, plus the p-center's longer horizon (``siting_plan.PCENTER_HORIZON``) when asked."""
    tr = travel_sets(demand, cands, options, network, households)
    if options.siting_model == "pcenter":
        far = options.with_(minutes=min(float(options.minutes) * sp.PCENTER_HORIZON, 600.0))
        tr.far = travel_sets(demand, cands, far, network, households).cov
    return tr


def _both(tr: Travel, demand: Demand, forced, P: int, need: float, node_limit: int | None, notes: list):
    """Target and cap: the fewest (≤ P) reaching the target, else P at maximal cover."""
    result = sm.max_cover(tr.cov, demand.w, int(P), forced=forced, node_limit=node_limit)
    if result.covered_weight >= need - sm.REL_EPS * demand.total:
        try:
            return sm.min_cover(tr.cov, demand.w, target_weight=need, forced=forced, max_sites=int(P),
                                node_limit=node_limit), "min_cover"
        except sm.Infeasible:
            pass
    else:
        notes.append(f"{P} new station(s) reach {result.share:.3f}, below the target "
                     f"{need / demand.total:.3f}")
    return result, "max_cover"


def solve_models(tr: Travel, demand: Demand, cands: Candidates, options: PlanOptions, tiebreak: bool,
                 node_limit: int | None, tiebreak_node_limit: int) -> ModelOutcome:
    """Run the covering model the options ask for, then the p-median tiebreak."""
    t = time.perf_counter()
    if sp.wants_extended(options, cands):
        w = np.where(demand.finite, demand.w, 0.0)
        ext = sp.solve_extended(tr.cov, w, cands, options, node_limit, far=tr.far)
        return ModelOutcome(ext.open, ext.model, None, ext.notes, time.perf_counter() - t, ext)
    P, target = options.max_stations, options.coverage_target
    forced, notes = cands.forced, []
    if P is None and target is None:
        return ModelOutcome(forced, "report", None, notes, time.perf_counter() - t)
    if P is None:
        result, model = sm.min_cover(tr.cov, demand.w, target_weight=target * demand.total, forced=forced,
                                     node_limit=node_limit), "min_cover"
    elif target is None:
        result, model = sm.max_cover(tr.cov, demand.w, int(P), forced=forced, node_limit=node_limit), "max_cover"
    else:
        result, model = _both(tr, demand, forced, P, target * demand.total, node_limit, notes)
    notes.extend(result.notes)
    if tiebreak and len(np.setdiff1d(result.open, forced)):
        result, tie_note = sm.tiebreak(tr.cov, demand.w, result, forced=forced, radius=float(options.minutes),
                                       node_limit=tiebreak_node_limit)
        notes.append(tie_note)
    return ModelOutcome(result.open, model, result, notes, time.perf_counter() - t)


def _bound_for(result: sm.CoverResult | None, model: str, forced) -> float | int | None:
    """Express the proven bound in the summary's terms.

    The proven bound in the summary's terms: for min_cover the fewest stations in total (existing +
    new) any solution needs; for max_cover the most households any P stations can cover.
    """
    if result is None:
        return None
    if model == "min_cover":
        return int(np.ceil(result.bound - 1e-9)) + int(len(forced))
    return float(result.bound)


def build_outputs(households: gpd.GeoDataFrame, units: gpd.GeoDataFrame, options: PlanOptions, demand: Demand,
                  cands: Candidates, tr: Travel, out: ModelOutcome, t0: float) -> SitingResult:
    """Layers, each household's nearest station, unit coverage and the summary."""
    crs, minutes, speed = households.crs, float(options.minutes), options.speed_m_per_min
    open_ = np.asarray(sorted(out.open), dtype=np.int64)
    st_xy = cands.xy[open_] if len(open_) else np.zeros((0, 2))
    ids, names, exist, kinds, st_unit = so.station_labels(open_, cands, units)
    # each household's nearest station from its lon/lat, as lookup answers it (geo.travel)
    hh_ll, node_minutes = travel.household_lonlat(households), None
    if tr.net is not None:
        table = tr.net.node_minutes(st_xy, speed)
        near, mins = table.nearest_lonlat(hh_ll)
        node_minutes = table.to_frame(ids)
    else:
        near, mins = travel.station_nearest(hh_ll, travel.lonlat_of_xy(st_xy, crs), speed)
    hh_station = np.full(len(demand.xy), None, dtype=object)
    if len(ids):
        hh_station[near >= 0] = np.array(ids, dtype=object)[near[near >= 0]]
    covered = so.covered_mask(demand, mins, minutes)
    ext = out.ext
    if ext is not None and ext.assign is not None:      # capacitated: each household's station is its assignment
        near, mins, covered = _assigned(ext.assign, open_, tr.cov, demand)
        hh_station = np.full(len(demand.xy), None, dtype=object)
        hh_station[near >= 0] = np.array(ids, dtype=object)[near[near >= 0]]
    stations = so.stations_layer(ids, names, exist, kinds, st_unit, st_xy, near, covered, demand.w, units, crs)
    areas = so.service_areas_layer(ids, st_xy, minutes, options.mode, speed, crs, tr.net)
    n_units = len(units) if units is not None else 0
    codes = units["unit_code"].astype(str).to_numpy() if n_units else np.array([])
    r, total = out.result, demand.total
    served = ext.served if ext is not None and ext.served is not None else np.where(covered, demand.w, 0.0)
    summary = {
        "minutes": minutes, "mode": options.mode, "speed_kmh": options.effective_speed_kmh,
        "travel": "network" if tr.net is not None else "straight_line",
        "share": float(served[demand.finite].sum() / total) if total > 0 else float("nan"),
        "households_covered": float(served[demand.finite].sum()), "households_total": total,
        "stations": int(len(open_)), "existing": int(np.sum(exist)), "added": int(len(open_) - np.sum(exist)),
        "candidates": int(len(cands)), "model": out.model,
        "status": r.status if r is not None else "REPORT",
        "bound": _bound_for(r, out.model, cands.forced),
        "gap": float(r.gap) if r is not None else 0.0,
        "solver": "HiGHS (scipy.optimize.milp), gap 0, node limit" if r is not None else None,
        "nodes": int(r.nodes) if r is not None else 0,
        "coverable_share": float(r.coverable_weight / total) if r is not None and total > 0 else None,
        "target": options.coverage_target, "max_stations": options.max_stations,
        "uncovered_clusters": so.uncovered_clusters(households, demand.w, demand.finite & ~covered, demand.unit,
                                                    codes, minutes * speed),
        "notes": [n for n in list(cands.notes) + out.notes if n],
        "runtime_s": {"travel": round(tr.seconds, 3), "solve": round(out.seconds, 3),
                      "total": round(time.perf_counter() - t0, 3)},
    }
    summary.update(so.reach_figures(tr.cov, open_, demand, mins, covered))
    if ext is not None:
        stations = _extend(stations, summary, ext, open_, cands, units, crs)
    return SitingResult(stations=stations, service_areas=areas, hh_station=hh_station, hh_minutes=mins,
                        unit_coverage=so.unit_coverage(demand, covered, n_units, served), summary=summary,
                        node_minutes=node_minutes)


def _assigned(assign: np.ndarray, open_: np.ndarray, cov: sparse.csr_matrix, demand: Demand):
    """Each household's assigned station (position in ``open_``), its minutes and the served mask."""
    pos = np.full(len(assign), -1, dtype=np.int64)
    ok = assign >= 0
    pos[ok] = np.searchsorted(open_, assign[ok])
    mins = np.full(len(assign), np.nan)
    if ok.any():
        mins[ok] = np.asarray(cov[np.flatnonzero(ok), assign[ok]]).ravel() - 1.0   # stored: minutes + 1
    return pos, mins, ok & demand.finite


def _extend(stations, summary: dict, ext: sp.Extended, open_, cands, units, crs):
    """Put the extended model's proof, loads and closures into the summary and the stations layer."""
    summary.update({"model": ext.model, "status": ext.status, "bound": ext.bound, "gap": ext.gap,
                    "nodes": ext.nodes, "objective": ext.objective,
                    "solver": "HiGHS (scipy.optimize.milp), gap 0, node and round limits"})
    stations = so.with_status(stations, open_, cands, ext.capacity, ext.load if ext.assign is not None else None)
    if len(ext.closed):
        stations = so.append_closed(stations, ext.closed, ext.moves, open_, cands, units, crs)
    summary.update(so.station_figures(stations, ext.assign is not None))
    return stations


# --------------------------------------------------------------------------- main entry
def site_stations(households: gpd.GeoDataFrame, units: gpd.GeoDataFrame, options: PlanOptions,
                  facilities: gpd.GeoDataFrame | None = None, network: str | None = None,
                  tiebreak: bool = True, node_limit: int | None = None,
                  tiebreak_node_limit: int = TIEBREAK_NODE_LIMIT) -> SitingResult:
    """Stations, service areas and coverage (see the module docstring).

    Parameters
    ----------
    households : points in a metric CRS with ``households`` (count) and ``unit_idx`` (row of ``units``)
    units : the units (``unit_code``, optional ``village_name``)
    options : ``minutes``, ``mode``/``speed_kmh``, ``coverage_target``, ``max_stations``
    facilities : candidate or existing stations (``facility_id``, ``name``, ``existing``)
    network : an .osm.pbf path when travel follows roads
    tiebreak : run the p-median second stage
    node_limit, tiebreak_node_limit : branch-and-bound nodes per model (deterministic limits; None:
        ``siting_mip.node_limit_for`` the model's size)

    Returns
    -------
    SitingResult
    """
    t0 = time.perf_counter()
    demand = Demand.from_households(households)
    cands = build_candidates(demand, facilities, households.crs, float(options.minutes) * options.speed_m_per_min)
    tr = travel_all(demand, cands, options, network, households)
    out = solve_models(tr, demand, cands, options, tiebreak, node_limit, tiebreak_node_limit)
    return build_outputs(households, units, options, demand, cands, tr, out, t0)


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
