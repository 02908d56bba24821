"""``plan()``: files or GeoDataFrames in, a ``Plan`` out — the walk of the data through the stages.

load (geo.io) → per-unit partition (optimize.partition, parallel) → grid polygons and metrics
(geo.grids) → staffing (optimize.staffing) → siting (optimize.siting) → Plan (WGS 84 layers).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.grids import polsby_popper
from geo.model import Dataset
from geo.problems import Problem
from geo.travel import round_minutes
from optimize.executors import run_tasks
from optimize.options import PlanOptions
from optimize.partition import UnitPartition, choose_k, partition_unit
from optimize.result import Plan

Progress = Callable[[str, float], None]

# each stage's share of a job's overall progress (for progress bars and the HTTP job status)
STAGES = {"load": (0.0, 0.05), "partition": (0.05, 0.80), "staffing": (0.80, 0.83),
          "siting": (0.83, 0.98), "output": (0.98, 1.0)}


def _report(progress: Progress | None, stage: str, within: float) -> None:
    if progress is not None:
        lo, hi = STAGES[stage]
        progress(stage, lo + (hi - lo) * min(max(within, 0.0), 1.0))


@dataclass(frozen=True)
class UnitTask:
    """Everything one unit's partition needs: small, picklable, independent of the rest."""
    unit_idx: int
    unit_code: str
    geometry: object
    xy: np.ndarray
    households: np.ndarray
    target: float
    options: PlanOptions
    old: gpd.GeoDataFrame | None = None   # last plan's grids of this unit (--baseline)
    barriers: np.ndarray | None = None    # barrier lines crossing this unit (metric CRS)


def solve_unit(task: UnitTask) -> tuple[int, UnitPartition, list[int] | None]:
    """Partition one unit; with a baseline, keep its still-balanced grids. Returns (unit, partition, seqs).

    One hard unit never stops a county: if the models fail on it (a geometry engine error, say),
    the unit becomes a single grid with the failure in its notes, and the rest of the plan goes on.
    """
    try:
        if task.old is not None and len(task.old):
            from optimize.baseline import replan_unit
            res = replan_unit(task.geometry, task.xy, task.households, task.target, task.options, task.old)
            if res is not None:
                return task.unit_idx, res[0], res[1]
        return task.unit_idx, partition_unit(task.geometry, task.xy, task.households, task.target,
                                             task.options, barriers=task.barriers), None
    except Exception as e:  # noqa: BLE001 — reported per unit, never fatal to the plan
        return task.unit_idx, single_grid(task, f"partition failed ({type(e).__name__}: {e}); "
                                                "the unit is kept as one grid"), None


def single_grid(task: UnitTask, note: str) -> UnitPartition:
    h = np.asarray(task.households, dtype=np.int64)
    return UnitPartition(labels=np.zeros(len(h), dtype=np.int64), polygons=[task.geometry], k=1, status="failed",
                         max_abs_dev=0.0, seconds=0.0, notes=(note,))


def options_from(options: PlanOptions | None, kwargs: dict) -> PlanOptions:
    if options is None:
        return PlanOptions.from_mapping(kwargs)
    return options.with_(**kwargs) if kwargs else options


def plan(boundaries, households, facilities=None, roster=None, network=None, *, barriers=None,
         options: PlanOptions | None = None, progress: Progress | None = None, **kwargs) -> Plan:
    """Plan grids, workers and stations for ``boundaries`` (units) and ``households`` (points).

    Inputs are paths (any format GDAL reads, CSV for points) or GeoDataFrames; ``kwargs`` are
    :class:`PlanOptions` fields (``target_households=300, tolerance=0.1, minutes=20, mode="walk",
    coverage_target=0.9, max_stations=None, workers_budget=None, coords="wgs84", jobs=1`` ...).
    ``barriers``: lines (rivers, expressways; a path or a GeoDataFrame) that no grid may straddle.
    Raises :class:`geo.problems.DataError` listing every fatal data problem, ``ValueError`` for
    bad options.
    """
    from geo.io import load_dataset
    opts = options_from(options, kwargs)
    t0 = time.perf_counter()
    _report(progress, "load", 0.0)
    ds = load_dataset(boundaries, households, facilities, roster, network, coords=opts.coords,
                      code_field=opts.code_field)
    lines = None
    if barriers is not None:
        from geo.io import load_lines
        from geo.problems import DataError
        lines, line_problems = load_lines(barriers, ds.crs, coords=opts.coords)
        if any(p.fatal for p in line_problems):
            raise DataError(ds.problems + line_problems)
        ds = replace(ds, problems=ds.problems + line_problems)
    load_s = time.perf_counter() - t0
    _report(progress, "load", 1.0)
    return plan_dataset(ds, opts, progress=progress, runtime={"load": load_s}, barriers=lines)


def unit_tasks(ds: Dataset, opts: PlanOptions, baseline: gpd.GeoDataFrame | None = None, barriers=None):
    """One task per unit, biggest first (better load balance), streamed lazily."""
    line_tree = shapely.STRtree(barriers) if barriers is not None and len(barriers) else None
    old_by_unit = baseline.groupby("village_code") if baseline is not None else None
    old_codes = set(baseline["village_code"]) if baseline is not None else set()
    hh = ds.households
    inside = hh[hh["unit_idx"] >= 0]
    groups = inside.groupby("unit_idx").indices
    xy_all = np.column_stack([inside.geometry.x.to_numpy(), inside.geometry.y.to_numpy()])
    w_all = inside["households"].to_numpy(np.int64)
    totals = {u: int(w_all[idx].sum()) for u, idx in groups.items()}
    order = sorted(range(len(ds.units)), key=lambda u: (-totals.get(u, 0), u))
    units = ds.units
    for u in order:
        idx = groups.get(u, np.array([], dtype=np.int64))
        row = units.iloc[u]
        code = str(row["unit_code"])
        old = old_by_unit.get_group(code) if code in old_codes else None
        crossing = None
        if line_tree is not None:
            hit = line_tree.query(row.geometry, predicate="intersects")
            crossing = barriers[np.sort(hit)] if len(hit) else None
        yield UnitTask(unit_idx=u, unit_code=code, geometry=row.geometry,
                       xy=xy_all[idx], households=w_all[idx],
                       target=opts.target_for(row.get("kind"), row.get("target_households")), options=opts, old=old,
                       barriers=crossing)


def plan_dataset(ds: Dataset, opts: PlanOptions, progress: Progress | None = None,
                 runtime: dict | None = None, barriers=None) -> Plan:
    runtime = dict(runtime or {})
    problems: list[Problem] = list(ds.problems)
    units, hh = ds.units, ds.households.copy()
    n_units = len(units)
    # population where the input has none: households × the average household size (an estimate, said so)
    missing_pop = hh["population"].isna()
    if missing_pop.any():
        hh.loc[missing_pop, "population"] = hh.loc[missing_pop, "households"] * opts.persons_per_household
        problems.append(Problem(source=ds.sources.get("households", "households"), row=None,
                                kind="population_estimated", count=int(missing_pop.sum()),
                                message=f"{int(missing_pop.sum())} household row(s) have no population: estimated "
                                        f"as households × {opts.persons_per_household}"))
    ds = replace(ds, households=hh)

    # --- partition, unit by unit ---------------------------------------------------------
    t = time.perf_counter()
    results: dict[int, UnitPartition] = {}
    seqs: dict[int, list[int]] = {}
    baseline = None
    if opts.baseline:
        from optimize.baseline import load_baseline
        baseline = load_baseline(opts.baseline, ds.crs)

    def collect(res):
        u, part, unit_seqs = res
        results[u] = part
        if unit_seqs is not None:
            seqs[u] = unit_seqs
        _report(progress, "partition", len(results) / max(n_units, 1))

    _report(progress, "partition", 0.0)
    run_tasks(solve_unit, unit_tasks(ds, opts, baseline, barriers), jobs=opts.jobs, scheduler=opts.scheduler,
              on_result=collect)
    runtime["partition"] = time.perf_counter() - t

    grids_m, hh_grid = assemble_grids(ds, results, opts, seqs)
    hh["grid_code"] = hh_grid
    baseline_summary = None
    if baseline is not None:
        from optimize.baseline import changed_households
        xy = np.column_stack([hh.geometry.x.to_numpy(), hh.geometry.y.to_numpy()])
        baseline_summary = changed_households(xy, hh["households"].to_numpy(float), hh_grid, baseline)
        baseline_summary.update(path=str(opts.baseline), kept_units=sum(1 for p in results.values() if p.status == "baseline"),
                                resplit_units=sum(1 for p in results.values() if p.status == "baseline+resplit"),
                                replanned_units=sum(1 for p in results.values() if not p.status.startswith("baseline")))
    for u in sorted(results):
        for note in results[u].notes:
            problems.append(Problem(source="partition", row=f"unit {units.iloc[u]['unit_code']}",
                                    kind="partition_note", message=note))

    # --- staffing --------------------------------------------------------------------------
    from optimize import staffing
    t = time.perf_counter()
    _report(progress, "staffing", 0.0)
    roster = ds.roster
    budget, notes = staffing.resolve_budget(len(grids_m), float(grids_m["population"].sum()), opts,
                                            roster_size=None if roster is None else len(roster))
    problems += [Problem(source="staffing", row=None, kind="staffing_note", message=n) for n in notes]
    workload = staffing.grid_workload(grids_m, opts)
    grids_m["workload"] = workload
    grids_m["workers"] = staffing.allocate_workers(workload, budget) if len(grids_m) else np.array([], dtype=int)
    if roster is not None and len(grids_m):
        workers_m = staffing.assign_roster(grids_m, grids_m["workers"].to_numpy(), roster)
        empty, part_led = staffing.vacancies(grids_m, workers_m)
        src = ds.sources.get("roster", "roster")
        if empty:
            problems.append(Problem(source=src, row=None, kind="roster_vacancy", count=len(empty),
                                    message=f"{len(empty)} grid(s) have no worker from the roster: "
                                            f"{', '.join(empty[:10])}{' …' if len(empty) > 10 else ''}"))
        if part_led:
            problems.append(Problem(source=src, row=None, kind="roster_no_full_time", count=len(part_led),
                                    message=f"{len(part_led)} grid(s) have no full-time worker (a part-timer holds "
                                            f"the first place): {', '.join(part_led[:10])}"
                                            f"{' …' if len(part_led) > 10 else ''} — add full-time workers"))
    else:
        workers_m = gpd.GeoDataFrame({"worker_id": pd.Series(dtype=object), "grid_code": pd.Series(dtype=object),
                                      "role": pd.Series(dtype=object)}, geometry=gpd.GeoSeries([], crs=ds.crs),
                                     crs=ds.crs)
    runtime["staffing"] = time.perf_counter() - t
    _report(progress, "staffing", 1.0)

    # --- siting ----------------------------------------------------------------------------
    from optimize.regions import site_by_county
    t = time.perf_counter()
    _report(progress, "siting", 0.0)
    sres = site_by_county(hh, units, opts, facilities=ds.facilities, network=ds.network)
    hh["station_id"] = sres.hh_station
    hh["minutes"] = sres.hh_minutes
    runtime["siting"] = time.perf_counter() - t
    _report(progress, "siting", 1.0)

    # --- layers and summary ----------------------------------------------------------------
    t = time.perf_counter()
    units_out = units_layer(ds, grids_m, sres.unit_coverage, hh)
    hh_out = households_layer(ds, hh)
    grids_out = grids_m[["grid_code", "village_code", "township_code", "county_code", "households", "population",
                         "workers", "area_km2", "polsby_popper", "deviation", "weight", "workload", "geometry"]]
    summary = build_summary(ds, opts, grids_m, hh, sres, problems, runtime, results)
    if baseline_summary is not None:
        summary["baseline"] = baseline_summary
    runtime["assemble"] = time.perf_counter() - t
    summary["runtime_s"] = {k: round(v, 3) for k, v in runtime.items()}
    summary["runtime_s"]["total"] = round(sum(runtime.values()), 3)
    _report(progress, "output", 0.0)
    return Plan(grids=grids_out.to_crs(4326), stations=sres.stations.to_crs(4326),
                service_areas=sres.service_areas.to_crs(4326), households=hh_out.to_crs(4326),
                units=units_out.to_crs(4326), workers=workers_m.to_crs(4326), summary=summary, options=opts,
                network_minutes=sres.node_minutes)


def assemble_grids(ds: Dataset, results: dict[int, UnitPartition], opts: PlanOptions,
                   seqs: dict[int, list[int]] | None = None):
    """Grid rows (metric CRS) with codes and metrics, and each household's grid code."""
    units, hh = ds.units, ds.households
    hh_grid = np.full(len(hh), None, dtype=object)
    inside = np.flatnonzero(hh["unit_idx"].to_numpy() >= 0)
    groups = pd.Series(inside).groupby(hh["unit_idx"].to_numpy()[inside]).indices
    pop = hh["population"].to_numpy(float)
    weight = hh["weight"].to_numpy(float)
    counts = hh["households"].to_numpy(np.int64)
    rows = []
    for u in range(len(units)):
        part = results[u]
        unit = units.iloc[u]
        code = str(unit["unit_code"])
        idx = inside[groups[u]] if u in groups else np.array([], dtype=np.int64)
        unit_seqs = (seqs or {}).get(u) or list(range(1, part.k + 1))
        codes = np.array([f"{code}{s:03d}" for s in unit_seqs], dtype=object)
        if len(idx):
            hh_grid[idx] = codes[part.labels]
        g_h = np.bincount(part.labels, weights=counts[idx], minlength=part.k) if len(idx) else np.zeros(part.k)
        g_p = np.bincount(part.labels, weights=pop[idx], minlength=part.k) if len(idx) else np.zeros(part.k)
        g_w = np.bincount(part.labels, weights=weight[idx], minlength=part.k) if len(idx) else np.zeros(part.k)
        mean = g_h.mean() if part.k else 0.0
        for i in range(part.k):
            rows.append({"grid_code": codes[i], "village_code": code, "township_code": unit["township_code"],
                         "county_code": unit["county_code"], "households": int(round(g_h[i])),
                         "population": int(round(g_p[i])), "weight": float(g_w[i]),
                         "deviation": float((g_h[i] - mean) / mean) if mean > 0 else 0.0,
                         "unit_idx": u, "status": part.status, "geometry": part.polygons[i]})
    grids = gpd.GeoDataFrame(rows, geometry="geometry", crs=ds.crs) if rows else gpd.GeoDataFrame(
        {"grid_code": [], "village_code": [], "township_code": [], "county_code": [], "households": [],
         "population": [], "weight": [], "deviation": [], "unit_idx": [], "status": []},
        geometry=gpd.GeoSeries([], crs=ds.crs), crs=ds.crs)
    grids["area_km2"] = grids.geometry.area / 1e6
    grids["polsby_popper"] = polsby_popper(grids.geometry.values) if len(grids) else np.array([])
    return grids, hh_grid


def units_layer(ds: Dataset, grids_m: gpd.GeoDataFrame, unit_coverage, hh) -> gpd.GeoDataFrame:
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
    id_col = ds.id_field or "id"
    codes = ds.units["unit_code"].to_numpy()
    uidx = hh["unit_idx"].to_numpy()
    village = np.where(uidx >= 0, codes[np.clip(uidx, 0, None)] if len(codes) else None, None)
    minutes = np.asarray(hh["minutes"], dtype=float)
    return gpd.GeoDataFrame({
        id_col: hh["hh_id"].to_numpy(),
        "grid_code": hh["grid_code"].to_numpy(),
        "station_id": hh["station_id"].to_numpy(),
        "minutes": round_minutes(minutes),   # as lookup reports them (geo.travel)
        "village_code": village,
        "households": hh["households"].to_numpy(),
    }, geometry=gpd.points_from_xy(hh["lon"].to_numpy(), hh["lat"].to_numpy()), crs=4326)


def build_summary(ds: Dataset, opts: PlanOptions, grids, hh, sres, problems, runtime, results) -> dict:
    units = ds.units
    dev = np.abs(grids["deviation"].to_numpy(float)) if len(grids) else np.zeros(0)
    # granular tolerance: a grid is also balanced within half its unit's largest indivisible point
    inside = hh[hh["unit_idx"] >= 0]
    biggest = inside.groupby("unit_idx")["households"].max()
    g_units = grids["unit_idx"].to_numpy() if len(grids) else np.zeros(0, dtype=int)
    mean_u = grids.groupby("unit_idx")["households"].transform("mean").to_numpy(float) if len(grids) else np.zeros(0)
    big = pd.Series(g_units).map(biggest).fillna(0).to_numpy(float)
    slack = np.maximum(opts.tolerance * mean_u, 0.5 * big)
    gran = np.abs(grids["households"].to_numpy(float) - mean_u) <= slack + 1e-9 if len(grids) else np.zeros(0, bool)

    gap = overlap = 0.0
    contiguous = 0
    for u, sub in grids.groupby("unit_idx"):
        geoms = sub.geometry.values
        un = shapely.union_all(geoms)
        ug = units.geometry.iloc[u]
        gap += ug.difference(un).area
        overlap += float(shapely.area(geoms).sum()) - un.area
        contiguous += int((shapely.get_type_id(geoms) == 3).sum())

    total_hh = int(hh["households"].sum())
    unassigned = int(hh.loc[hh["unit_idx"] < 0, "households"].sum())
    statuses = pd.Series([results[u].status for u in sorted(results)]).value_counts().to_dict()
    part_s = runtime.get("partition", 0.0)
    cov = dict(sres.summary)
    cov.setdefault("minutes", opts.minutes)
    cov.setdefault("mode", opts.mode)
    cov.setdefault("speed_kmh", opts.effective_speed_kmh)
    return {
        "households": total_hh,
        "units": int(len(units)),
        "grids": int(len(grids)),
        "workers": int(grids["workers"].sum()) if len(grids) else 0,
        "stations": int(len(sres.stations)),
        "coverage": cov,
        "balance": {
            "max_abs_dev": round(float(dev.max()), 4) if len(dev) else 0.0,
            "p95_abs_dev": round(float(np.quantile(dev, 0.95)), 4) if len(dev) else 0.0,
            "within_tolerance_share": round(float((dev <= opts.tolerance + 1e-9).mean()), 4) if len(dev) else 1.0,
            "within_granular_tolerance_share": round(float(gran.mean()), 4) if len(gran) else 1.0,
            "tolerance": opts.tolerance,
        },
        "compactness": {
            "polsby_popper_mean": round(float(grids["polsby_popper"].mean()), 4) if len(grids) else None,
            "polsby_popper_p10": round(float(grids["polsby_popper"].quantile(0.10)), 4) if len(grids) else None,
        },
        "contiguous_share": round(contiguous / len(grids), 4) if len(grids) else 1.0,
        "gap_area_m2": round(max(gap, 0.0), 2),
        "overlap_area_m2": round(max(overlap, 0.0), 2),
        "unassigned_households": unassigned,
        "partition": {"statuses": {str(k): int(v) for k, v in statuses.items()},
                      "households_per_second": round(total_hh / part_s, 1) if part_s > 0 else None,
                      "jobs": opts.jobs, "scheduler": opts.scheduler},
        "options": {k: v for k, v in opts.as_dict().items() if k not in ("scheduler",)},
        "crs": ds.crs.to_string(),
        "problems": [p.as_dict() for p in problems],
        "runtime_s": {},
    }


__all__ = ["plan", "plan_dataset", "choose_k", "STAGES", "UnitTask", "solve_unit"]
