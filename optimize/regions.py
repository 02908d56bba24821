"""Siting at province scale: county by county, with the coverage target met province-wide.

Each county is an independent siting problem (its own candidates, travel and exact models — small
enough to solve exactly, and run in parallel like the units). Households outside every unit belong to
the county of the nearest unit: they are in that county's models *and* in the share, the same
households either way.

The contract's coverage target is a province-wide share. Allocation:

1. every county first aims at the province's share of its own households (exact ``min_cover``);
2. where some county cannot reach it (too few households within reach of any candidate), the
   shortfall of the counties' own coverage against the province target is given to the counties
   with the largest marginal coverage per station — greedy increments beyond each county's answer,
   largest first across counties — and those counties are solved again, exactly, for their raised
   target. The province share is then at least the target whenever the candidates can reach it
   (coverage recounted over all stations only adds households served across a county line).

3. the counties' reduced problems side by side form one province-wide covering model
   (``optimize.siting_global``, when it is small enough): its solver bound is the bound on the
   province's fewest stations (when each county's stations serve its own households), and when its
   solution needs fewer stations than steps 1-2, its coverage per county becomes the counties'
   targets and they are solved again. Without it the summary claims no bound (``bound`` None,
   status ``ALLOCATED``): the sum of county bounds bounds nothing, as counties can trade coverage.

The province figures are then put back together: every household's nearest station and minutes over
all stations (straight line; along roads each county's own answer), station and unit coverage, and a
summary with one line per county (its target, share, stations, proven bound, gap).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridplan.geo import travel
from gridplan.optimize import siting as st, siting_models as sm
from gridplan.optimize.executors import run_tasks
from gridplan.optimize.options import PlanOptions
from gridplan.optimize.siting import SitingResult, site_stations
from gridplan.optimize.siting_global import ProvinceCover, province_cover
from gridplan.optimize.siting_outputs import uncovered_clusters

MAX_CLUSTERS = 50
MAX_GAINS = 500                     # greedy increments a county offers to the allocation


@dataclass(frozen=True)
class CountyTask:
    """One county's siting problem; ``target_weight`` overrides the options' share when set."""

    code: str
    unit_rows: np.ndarray                 # rows of the province's units in this county
    hh_rows: np.ndarray                   # rows of the province's households sited here
    households: gpd.GeoDataFrame          # unit_idx renumbered to the county's units (-1 outside)
    units: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame | None
    options: PlanOptions
    network: str | None
    target_weight: float | None = None


@dataclass
class CountyAnswer:
    """Hold one county's siting answer.

    A county's result, the marginal coverage further stations would add (greedy, in order) and its
    reduced covering problem (for the province-wide model).
    """

    code: str
    result: SitingResult
    gains: np.ndarray
    red: sm.Reduced | None = None


def site_county(task: CountyTask) -> CountyAnswer:
    """``site_stations``'s four stages for one county, plus its greedy increments."""
    t0 = time.perf_counter()
    opts = task.options
    demand = st.Demand.from_households(task.households)
    if task.target_weight is not None and demand.total > 0:
        opts = opts.with_(coverage_target=float(min(1.0, task.target_weight / demand.total)))
    cands = st.build_candidates(demand, task.facilities, task.households.crs,
                                float(opts.minutes) * opts.speed_m_per_min)
    tr = st.travel_all(demand, cands, opts, task.network, task.households)
    out = st.solve_models(tr, demand, cands, opts, True, None, st.TIEBREAK_NODE_LIMIT)
    res = st.build_outputs(task.households, task.units, opts, demand, cands, tr, out, t0)
    gains, red = np.zeros(0), None
    if opts.coverage_target is not None:
        beyond = sm.reduce(tr.cov, demand.w, forced=out.open)
        gains = np.asarray(sm.greedy_gains(beyond, p=MAX_GAINS)[1], float)
        red = sm.reduce(tr.cov, demand.w, forced=cands.forced) if opts.max_stations is None else None
    res.summary["target_weight"] = (opts.coverage_target * demand.total
                                    if opts.coverage_target is not None else None)
    return CountyAnswer(task.code, res, gains, red)


def county_of_points(xy: np.ndarray, units: gpd.GeoDataFrame, county: np.ndarray) -> np.ndarray:
    """County code of the unit holding each point (the nearest unit when none holds it)."""
    out = np.full(len(xy), "", dtype=object)
    ok = travel.finite_rows(xy)
    if not ok.any():
        return out
    tree = shapely.STRtree(units.geometry.values)
    _, near = tree.query_nearest(shapely.points(xy[ok]), all_matches=False)   # distance 0 inside a unit
    out[ok] = county[near]
    return out


def households_county(households: gpd.GeoDataFrame, units: gpd.GeoDataFrame, county: np.ndarray) -> np.ndarray:
    """County of each household: its unit's, else the nearest unit's ("" without coordinates)."""
    hh_unit = households["unit_idx"].to_numpy(np.int64)
    out = np.full(len(households), "", dtype=object)
    inside = hh_unit >= 0
    out[inside] = county[hh_unit[inside]]
    if (~inside).any():
        out[~inside] = county_of_points(travel.as_xy(households.geometry.values[~inside]), units, county)
    return out


def county_tasks(households: gpd.GeoDataFrame, units: gpd.GeoDataFrame, options: PlanOptions,
                 facilities: gpd.GeoDataFrame | None, network: str | None, county: np.ndarray):
    """One task per county (sorted by code); households without coordinates go to none."""
    hh_unit = households["unit_idx"].to_numpy(np.int64)
    hh_county = households_county(households, units, county)
    fac_county = None
    if facilities is not None and len(facilities):
        fac = facilities.to_crs(households.crs) if facilities.crs != households.crs else facilities
        fac_county = county_of_points(travel.as_xy(fac.geometry), units, county)
    for code in sorted(set(county)):
        rows = np.flatnonzero(county == code)
        remap = np.full(len(units), -1, dtype=np.int64)
        remap[rows] = np.arange(len(rows))
        sel = np.flatnonzero(hh_county == code)
        hh_c = households.iloc[sel].copy()
        hh_c["unit_idx"] = np.where(hh_unit[sel] >= 0, remap[np.maximum(hh_unit[sel], 0)], -1)
        fac_c = facilities[fac_county == code] if fac_county is not None else None
        yield CountyTask(code, rows, sel, hh_c, units.iloc[rows].reset_index(drop=True), fac_c, options, network)


def allocate(shortfall: float, gains: dict[str, np.ndarray]) -> dict[str, float]:
    """Share the extra coverage that closes ``shortfall`` among the counties.

    Extra coverage per county closing ``shortfall``: the largest marginal gains first across
    counties (each county's gains are non-increasing, so the picks are prefixes). Counties left out
    get nothing; if all gains together fall short, every county gets all its gains.
    """
    items = sorted(((-float(g), code, i) for code, arr in gains.items() for i, g in enumerate(arr)))
    extra: dict[str, float] = {}
    got = 0.0
    for g, code, _ in items:
        if got >= shortfall:
            break
        extra[code] = extra.get(code, 0.0) + (-g)
        got += -g
    return extra


def _run(tasks, options) -> dict[str, CountyAnswer]:
    answers: dict[str, CountyAnswer] = {}
    run_tasks(site_county, tasks, jobs=options.jobs, scheduler=options.scheduler,
              on_result=lambda a: answers.__setitem__(a.code, a))
    return answers


def _added(answers: dict[str, CountyAnswer]) -> int:
    return int(sum(a.result.summary["added"] for a in answers.values()))


def site_by_county(households: gpd.GeoDataFrame, units: gpd.GeoDataFrame, options: PlanOptions,
                   facilities: gpd.GeoDataFrame | None = None, network: str | None = None) -> SitingResult:
    """Site stations county by county and combine them into one result.

    Stations county by county (in parallel with ``options.jobs``/``options.scheduler``), the
    coverage target met province-wide (see the module docstring), combined into one result.
    """
    county = units["county_code"].fillna("").astype(str).to_numpy() if len(units) else np.zeros(0, object)
    if len(set(county)) <= 1:
        return site_stations(households, units, options, facilities, network)
    tasks = {t.code: t for t in county_tasks(households, units, options, facilities, network, county)}
    answers = _run(tasks.values(), options)
    raised: dict[str, float] = {}
    proof, how = None, "raised where others fall short"
    if options.coverage_target is not None:
        own = sum(a.result.summary["households_covered"] for a in answers.values())
        total = float(sum(a.result.summary["households_total"] for a in answers.values()))
        shortfall = options.coverage_target * total - own
        if shortfall > sm.REL_EPS * total:
            extra = allocate(shortfall, {c: a.gains for c, a in answers.items()})
            raised = {c: answers[c].result.summary["households_covered"] + e for c, e in extra.items()}
            answers.update(_run([replace(tasks[c], target_weight=raised[c]) for c in sorted(raised)], options))
        if options.max_stations is None:
            proof = province_cover({c: a.red for c, a in answers.items()}, options.coverage_target * total, total)
        if proof is not None and proof.new_sites < _added(answers):
            # the province-wide model found fewer stations: its coverage per county becomes the targets
            better = _run([replace(tasks[c], target_weight=proof.county_cover[c]) for c in sorted(tasks)], options)
            if _added(better) < _added(answers):
                answers, raised = better, dict(proof.county_cover)
                how = "set by the province-wide model"
    return combine(households, units, options, network, county, tasks, answers, (raised, how), proof)


def _nearest(households, stations, answers, tasks, codes, options, network):
    """Each household's nearest station id and minutes over the province."""
    ids = stations["station_id"].to_numpy(dtype=object)
    if network:
        # along roads, each county's answer for its own households (a cross-county road search per
        # household would need the whole province's network at once)
        near_id = np.full(len(households), None, dtype=object)
        mins = np.full(len(households), np.nan)
        for c in codes:
            near_id[tasks[c].hh_rows] = answers[c].result.hh_station
            mins[tasks[c].hh_rows] = answers[c].result.hh_minutes
        near = pd.Series(np.arange(len(ids)), index=ids).reindex(near_id).fillna(-1).to_numpy(np.int64)
        return near, near_id, mins
    # the one distance model (geo.travel): from each household's lon/lat, as lookup answers it
    near, mins = travel.station_nearest(travel.household_lonlat(households), travel.lonlat_of(stations),
                                        options.speed_m_per_min)
    near_id = np.full(len(households), None, dtype=object)
    near_id[near >= 0] = ids[near[near >= 0]]
    return near, near_id, mins


def combine(households, units, options, network, county, tasks, answers, raised=({}, ""), proof=None
            ) -> SitingResult:
    """Combine the counties' answers into the province's layers, coverage and summary.

    The province's layers, coverage and summary from the counties' answers; ``raised`` is (county
    targets changed, how) and ``proof`` the province-wide model's answer.
    """
    codes = sorted(answers)
    crs = households.crs
    stations = gpd.GeoDataFrame(pd.concat([answers[c].result.stations for c in codes], ignore_index=True),
                                geometry="geometry", crs=crs)
    areas = gpd.GeoDataFrame(pd.concat([answers[c].result.service_areas for c in codes], ignore_index=True),
                             geometry="geometry", crs=crs)
    demand = st.Demand.from_households(households)
    near, near_id, mins = _nearest(households, stations, answers, tasks, codes, options, network)
    covered = st.so.covered_mask(demand, mins, float(options.minutes))
    if len(stations):
        stations["households_covered"] = np.round(
            np.bincount(near[covered], weights=demand.w[covered], minlength=len(stations))).astype(np.int64)
    summary = _summary(households, units, options, demand, covered, stations, answers, raised, proof)
    node_minutes = None   # network plans: each county's road table, for lookup
    if network and all(answers[c].result.node_minutes is not None for c in codes):
        node_minutes = pd.concat([answers[c].result.node_minutes.assign(county_code=c) for c in codes],
                                 ignore_index=True)
    return SitingResult(stations=stations, service_areas=areas, hh_station=near_id, hh_minutes=mins,
                        unit_coverage=st.so.unit_coverage(demand, covered, len(units)), summary=summary,
                        node_minutes=node_minutes)


def _bound_status(options, n_stations: int, n_exist: int, proof: ProvinceCover | None) -> tuple:
    """(status, bound on total stations, gap) for the province."""
    if options.coverage_target is None and options.max_stations is None:
        return "REPORT", None, None
    if proof is None:
        return "ALLOCATED", None, None
    bound = n_exist + proof.bound
    return ("OPTIMAL" if n_stations <= bound else "FEASIBLE", bound,
            (n_stations - bound) / max(1, n_stations))


def _summary(households, units, options, demand, covered, stations, answers, raised, proof) -> dict:
    per = {c: answers[c].result.summary for c in sorted(answers)}
    first = next(iter(per.values()))
    total = demand.total
    n_exist = int(stations["existing"].sum()) if len(stations) else 0
    notes = [f"county {c}: {n}" for c, s in per.items() for n in s.get("notes", [])]
    raised, how = raised
    if raised:
        notes.append(f"province target: {len(raised)} county target(s) {how}: "
                     + ", ".join(f"{c} to {raised[c] / per[c]['households_total']:.4f}" for c in sorted(raised)))
    share = float(demand.w[covered].sum() / total) if total > 0 else float("nan")
    if options.coverage_target is not None and share < options.coverage_target - sm.REL_EPS:
        notes.append(f"province target {options.coverage_target:g} unreachable: every county at its most "
                     f"coverable gives {share:.4f}")
    status, bound, gap = _bound_status(options, len(stations), n_exist, proof)
    if proof is None and status != "REPORT":
        notes.append("counties sited separately: the county bounds hold for their allocated targets; no bound "
                     "on the province's fewest stations is proven (province-wide model too large or not run)")
    elif proof is not None:
        notes.append(f"province-wide model ({proof.status.lower()}, {proof.nodes} nodes): at least {bound} "
                     "stations when each county's stations serve its own households")
    return {
        "minutes": float(options.minutes), "mode": options.mode, "speed_kmh": options.effective_speed_kmh,
        "travel": first.get("travel"),
        "share": share, "households_covered": float(demand.w[covered].sum()), "households_total": total,
        "stations": int(len(stations)), "existing": n_exist, "added": int(len(stations) - n_exist),
        "candidates": int(sum(s.get("candidates", 0) for s in per.values())),
        "model": first.get("model"), "scope": "county",
        "status": status, "bound": bound, "gap": gap,
        "target": options.coverage_target, "max_stations": options.max_stations,
        "counties": {c: {"share": s.get("share"), "stations": s.get("stations"), "added": s.get("added"),
                         "target_share": (s["target_weight"] / s["households_total"]
                                          if s.get("target_weight") is not None and s["households_total"] else None),
                         "bound": s.get("bound"), "gap": s.get("gap"), "status": s.get("status"),
                         "households": s.get("households_total")} for c, s in per.items()},
        "uncovered_clusters": uncovered_clusters(households, demand.w, demand.finite & ~covered, demand.unit,
                                                 units["unit_code"].astype(str).to_numpy(),
                                                 float(options.minutes) * options.speed_m_per_min)[:MAX_CLUSTERS],
        "notes": notes,
        "runtime_s": {k: round(sum(s.get("runtime_s", {}).get(k, 0.0) for s in per.values()), 3)
                      for k in ("travel", "solve")},
    }
