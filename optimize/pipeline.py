"""``plan()``: files or GeoDataFrames in, a ``Plan`` out — the walk of the data through the stages.

load (geo.io) → per-unit partition (optimize.partition, parallel) → grid polygons and metrics
(geo.grids) → staffing (optimize.staffing) → siting (optimize.siting) → Plan (WGS 84 layers).

Each county is partitioned and measured (grid areas, Polsby-Popper, gaps and overlaps) in its own
metric CRS (``geo.crs.local_crs_by_group``: the CGCS2000 3° Gauss-Krüger zone of the county's
central meridian); grids come back into the dataset's CRS for the later stages, and outputs are
WGS 84. A unit whose models raise, crash their worker or hang is retried once and then kept as one
grid marked "failed" — reported in ``summary.json["problems"]``, never counted as balanced.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridplan.geo.crs import Reprojector, local_crs_by_group
from gridplan.geo.grids import to_crs_valid
from gridplan.geo.model import Dataset
from gridplan.geo.problems import Problem
from gridplan.optimize.assemble import assemble_grids, households_layer, units_layer
from gridplan.optimize.executors import run_tasks
from gridplan.optimize.options import PlanOptions
from gridplan.optimize.partition import UnitPartition, choose_k, partition_unit
from gridplan.optimize.result import Plan
from gridplan.optimize.summary import build_summary, levels, micro_summary

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
    weights: np.ndarray | None = None     # what the models balance when not the households (optimize.measures)
    secondary: np.ndarray | None = None   # --also-balance: the second measure per row
    barriers: np.ndarray | None = None    # barrier lines crossing this unit (metric CRS)
    crs: object = None                    # the metric CRS of geometry/xy/old/barriers (None: the dataset's)


def solve_unit(task: UnitTask) -> tuple[int, UnitPartition, list[int] | None]:
    """Partition one unit; with a baseline, keep its still-balanced grids. Returns (unit, partition, seqs).

    One hard unit never stops a county: if the models raise on it (a geometry engine error, say),
    the unit becomes a single grid marked failed with the cause in its notes, and the plan goes on.
    """
    note = None
    if task.old is not None and len(task.old):
        from gridplan.optimize.baseline import replan_unit
        try:
            sizes, target = task.households, task.target
            if task.weights is not None and np.sum(task.households) > 0:   # kept where the measure is balanced
                sizes = task.weights
                target = task.target * float(np.sum(task.weights)) / float(np.sum(task.households))
            res = replan_unit(task.geometry, task.xy, sizes, target, task.options, task.old)
            if res is not None:
                return task.unit_idx, res[0], res[1]
        except Exception as e:  # the unit is planned afresh instead, and says so
            note = f"the re-plan against the baseline failed ({type(e).__name__}: {e}): planned afresh"
    try:
        more = {} if task.secondary is None else {"secondary": (task.secondary, task.options.secondary[1])}
        if task.weights is None:
            part = partition_unit(task.geometry, task.xy, task.households, task.target, task.options,
                                  barriers=task.barriers, **more)
        else:   # the grid count comes from the households, the balance from the measure
            part = partition_unit(task.geometry, task.xy, task.weights, task.target, task.options,
                                  barriers=task.barriers, k=choose_k(int(np.sum(task.households)), task.target),
                                  **more)
        return task.unit_idx, (part if note is None else replace(part, notes=(note, *part.notes))), None
    except Exception as e:  # reported per unit, never fatal to the plan
        return failed_unit(task, f"{type(e).__name__}: {e}")


def failed_unit(task: UnitTask, reason: str) -> tuple[int, UnitPartition, None]:
    """Build the result for a unit whose models failed (raised, crashed or hung): one grid, balance "failed".

    Its deviation is the true one against the mean the unit should have had, H / choose_k(H, target).
    """
    h = np.asarray(task.households, dtype=np.int64)
    total = int(h.sum())
    want = choose_k(total, task.target)
    dev = float(want - 1) if total > 0 else 0.0
    note = f"partition failed: {reason}; the unit is kept as one grid"
    return task.unit_idx, UnitPartition(labels=np.zeros(len(h), dtype=np.int64), polygons=[task.geometry], k=1,
                                        status="failed", max_abs_dev=dev, seconds=0.0, notes=(note,),
                                        households=(total,), balance="failed"), None


# Safety net against a hung worker (a wall-clock limit that never decides an answer: the models are
# bounded by deterministic limits far below it). Retried once, then the unit is recorded as failed.
TASK_TIMEOUT_MIN_S = 300.0
TASK_TIMEOUT_PER_BUDGET = 30.0
TASK_RETRIES = 1


def task_timeout(opts: PlanOptions) -> float:
    """Wall-clock seconds one attempt of one unit may take on a worker before it is stopped."""
    return max(TASK_TIMEOUT_MIN_S, TASK_TIMEOUT_PER_BUDGET * float(opts.time_limit_per_unit))


def model_budget(opts: PlanOptions) -> dict:
    """Return the per-unit model budget, as the summary states it."""
    from gridplan.optimize.partition import model_budget as partition_budget
    out = dict(partition_budget(opts))
    out.update(task_timeout_s=task_timeout(opts), task_retries=TASK_RETRIES,
               executor="in-process (no timeout)" if opts.jobs <= 1 and not opts.scheduler else
               ("dask" if opts.scheduler else f"{opts.jobs} local processes"))
    return out


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
    from gridplan.geo.io import load_dataset
    opts = options_from(options, kwargs)
    t0 = time.perf_counter()
    _report(progress, "load", 0.0)
    attributes = ()
    if opts.workload:
        from gridplan.optimize.workload_expr import parse_workload
        attributes = parse_workload(opts.workload).attributes
    ds = load_dataset(boundaries, households, facilities, roster, network, coords=opts.coords,
                      code_field=opts.code_field, attributes=attributes)
    lines = None
    if barriers is not None:
        from gridplan.geo.io import load_lines
        from gridplan.geo.problems import DataError
        lines, line_problems = load_lines(barriers, ds.crs, coords=opts.coords)
        if any(p.fatal for p in line_problems):
            raise DataError(ds.problems + line_problems)
        ds = replace(ds, problems=ds.problems + line_problems)
    load_s = time.perf_counter() - t0
    _report(progress, "load", 1.0)
    return plan_dataset(ds, opts, progress=progress, runtime={"load": load_s}, barriers=lines)


def county_crs(ds: Dataset) -> dict:
    """Choose the metric CRS of each county (key: county code as a string)."""
    if not len(ds.units):
        return {}
    wgs = ds.units.geometry.to_crs(4326).values
    return local_crs_by_group(wgs, ds.units["county_code"].fillna("").astype(str).to_numpy())


def unit_crs(ds: Dataset) -> list:
    """Return the metric CRS each unit is partitioned and measured in (its county's)."""
    by_county = county_crs(ds)
    return [by_county.get(c, ds.crs) for c in ds.units["county_code"].fillna("").astype(str)]


def unit_tasks(ds: Dataset, opts: PlanOptions, baseline: gpd.GeoDataFrame | None = None, barriers=None,
               crs_of: list | None = None):
    """One task per unit, biggest first (better load balance), streamed lazily, in the unit's metric CRS."""
    line_tree = shapely.STRtree(barriers) if barriers is not None and len(barriers) else None
    old_by_unit = baseline.groupby("village_code") if baseline is not None else None
    old_codes = set(baseline["village_code"]) if baseline is not None else set()
    hh = ds.households
    inside = hh[hh["unit_idx"] >= 0]
    groups = inside.groupby("unit_idx").indices
    xy_all = np.column_stack([inside.geometry.x.to_numpy(), inside.geometry.y.to_numpy()])
    w_all = inside["households"].to_numpy(np.int64)
    m_all = inside["_weight"].to_numpy(np.int64) if "_weight" in inside and opts.balance_by != "households" else None
    s_all = inside["_secondary"].to_numpy(float) if "_secondary" in inside else None
    totals = {u: int(w_all[idx].sum()) for u, idx in groups.items()}
    order = sorted(range(len(ds.units)), key=lambda u: (-totals.get(u, 0), u))
    units = ds.units
    crs_of = crs_of or [ds.crs] * len(units)
    projectors: dict = {}
    for u in order:
        idx = groups.get(u, np.array([], dtype=np.int64))
        row = units.iloc[u]
        code = str(row["unit_code"])
        rp = projectors.get(id(crs_of[u])) or projectors.setdefault(id(crs_of[u]), Reprojector(ds.crs, crs_of[u]))
        old = old_by_unit.get_group(code) if code in old_codes else None
        if old is not None and not rp.identity:
            old = old.to_crs(rp.dst)
        crossing = None
        if line_tree is not None:
            hit = line_tree.query(row.geometry, predicate="intersects")
            crossing = rp.geom(barriers[np.sort(hit)]) if len(hit) else None
        yield UnitTask(unit_idx=u, unit_code=code, geometry=rp.geom(row.geometry),
                       xy=rp.xy(xy_all[idx]), households=w_all[idx],
                       weights=None if m_all is None else m_all[idx],
                       secondary=None if s_all is None else s_all[idx],
                       target=opts.target_for(row.get("kind"), row.get("target_households")), options=opts, old=old,
                       barriers=crossing, crs=None if rp.identity else rp.dst)


def _estimate_population(ds: Dataset, opts: PlanOptions, problems: list[Problem]) -> Dataset:
    """Fill missing household populations as households × the average household size (said so)."""
    hh = ds.households.copy()
    missing_pop = hh["population"].isna()
    if missing_pop.any():
        hh.loc[missing_pop, "population"] = hh.loc[missing_pop, "households"] * opts.persons_per_household
        problems.append(Problem(source=ds.sources.get("households", "households"), row=None,
                                kind="population_estimated", count=int(missing_pop.sum()),
                                message=f"{int(missing_pop.sum())} household row(s) have no population: estimated "
                                        f"as households × {opts.persons_per_household}"))
    return replace(ds, households=hh)


def _partition_units(ds: Dataset, opts: PlanOptions, progress: Progress | None, barriers, runtime: dict,
                     solve=None):
    """Partition every unit (in parallel) with ``solve`` (default ``solve_unit``).

    Returns (results, sequences, unit CRSs, baseline grids).
    """
    n_units = len(ds.units)
    t = time.perf_counter()
    results: dict[int, UnitPartition] = {}
    seqs: dict[int, list[int]] = {}
    baseline = None
    if opts.baseline:
        from gridplan.optimize.baseline import load_baseline
        baseline = load_baseline(opts.baseline, ds.crs)

    def collect(res):
        u, part, unit_seqs = res
        results[u] = part
        if unit_seqs is not None:
            seqs[u] = unit_seqs
        _report(progress, "partition", len(results) / max(n_units, 1))

    _report(progress, "partition", 0.0)
    crs_of = unit_crs(ds)
    run_tasks(solve or solve_unit, unit_tasks(ds, opts, baseline, barriers, crs_of), jobs=opts.jobs,
              scheduler=opts.scheduler, on_result=collect, timeout=task_timeout(opts), retries=TASK_RETRIES,
              on_failure=failed_unit)
    runtime["partition"] = time.perf_counter() - t
    return results, seqs, crs_of, baseline


def _baseline_summary(hh: gpd.GeoDataFrame, hh_grid, baseline, results: dict, opts: PlanOptions) -> dict:
    """Count the households whose grid changed against the baseline, and how each unit was kept."""
    from gridplan.optimize.baseline import changed_households
    xy = np.column_stack([hh.geometry.x.to_numpy(), hh.geometry.y.to_numpy()])
    out = changed_households(xy, hh["households"].to_numpy(float), hh_grid, baseline)
    out.update(path=str(opts.baseline), kept_units=sum(1 for p in results.values() if p.status == "baseline"),
               resplit_units=sum(1 for p in results.values() if p.status == "baseline+resplit"),
               replanned_units=sum(1 for p in results.values() if not p.status.startswith("baseline")))
    return out


def _add_measures(hh: gpd.GeoDataFrame, opts: PlanOptions, source: str, problems: list[Problem]) -> None:
    """Add the per-row measures to the households frame (in place); see ``optimize.measures``.

    ``_weight`` (what the models balance), ``_measure`` (it in the measure's units), ``_workload``
    (with ``--workload``) and ``_secondary`` (with ``--also-balance``).
    """
    from gridplan.optimize.measures import household_measures
    m, more = household_measures(hh, opts, source)
    problems += more
    hh["_weight"] = m.weights
    hh["_measure"] = m.balanced
    if m.workload is not None:
        hh["_workload"] = m.workload
    if m.secondary is not None:
        hh["_secondary"] = m.secondary[2]


def _micro(grids_m: gpd.GeoDataFrame, hh: gpd.GeoDataFrame, opts: PlanOptions, runtime: dict):
    """With ``micro_target``: the micro-grids layer (metric CRS), each household's code set in ``hh``."""
    if not opts.micro_target:
        return None
    from gridplan.optimize.micro import micro_grids
    t = time.perf_counter()
    layer, codes = micro_grids(grids_m, hh, float(opts.micro_target))
    hh["micro_grid_code"] = codes
    runtime["micro_grids"] = time.perf_counter() - t
    return layer


def _staff(ds: Dataset, grids_m: gpd.GeoDataFrame, opts: PlanOptions, problems: list[Problem]) -> gpd.GeoDataFrame:
    """Set each grid's workload and workers (in place) and return the workers layer (metric CRS)."""
    from gridplan.optimize import staffing
    roster = ds.roster
    budget, notes = staffing.resolve_budget(len(grids_m), float(grids_m["population"].sum()), opts,
                                            roster_size=None if roster is None else len(roster))
    problems += [Problem(source="staffing", row=None, kind="staffing_note", message=n) for n in notes]
    workload = staffing.grid_workload(grids_m, opts)
    grids_m["workload"] = workload
    grids_m["workers"] = staffing.allocate_workers(workload, budget) if len(grids_m) else np.array([], dtype=int)
    if roster is None or not len(grids_m):
        return gpd.GeoDataFrame({"worker_id": pd.Series(dtype=object), "grid_code": pd.Series(dtype=object),
                                 "role": pd.Series(dtype=object)}, geometry=gpd.GeoSeries([], crs=ds.crs),
                                crs=ds.crs)
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
    return workers_m


def plan_dataset(ds: Dataset, opts: PlanOptions, progress: Progress | None = None,
                 runtime: dict | None = None, barriers=None, solve=None) -> Plan:
    """Plan a loaded dataset: partition → assemble → staffing → siting → outputs.

    Parameters
    ----------
    ds : Dataset
        The validated inputs (``geo.dataset.load_dataset``).
    opts : PlanOptions
        The plan's options.
    progress : callable, optional
        Called with (stage, overall fraction) as the plan advances (see ``STAGES``).
    runtime : dict, optional
        Seconds already spent (e.g. loading), kept in the summary's ``runtime_s``.
    barriers : array of shapely lines, optional
        Lines grids should not cross, in the dataset's CRS.
    solve : callable, optional
        The per-unit solver (``UnitTask`` -> (unit, partition, seqs)); default ``solve_unit``.

    Returns
    -------
    Plan
        The output layers in WGS 84, the summary and the options.
    """
    runtime = dict(runtime or {})
    problems: list[Problem] = list(ds.problems)
    ds = _estimate_population(ds, opts, problems)
    units, hh = ds.units, ds.households
    _add_measures(hh, opts, ds.sources.get("households", "households"), problems)

    results, seqs, crs_of, baseline = _partition_units(ds, opts, progress, barriers, runtime, solve)
    targets = [opts.target_for(r.get("kind"), r.get("target_households")) for _, r in units.iterrows()]
    grids_m, hh_grid, geom_stats = assemble_grids(ds, results, opts, seqs, crs_of=crs_of, targets=targets)
    hh["grid_code"] = hh_grid
    micro_m = _micro(grids_m, hh, opts, runtime)
    baseline_summary = None if baseline is None else _baseline_summary(hh, hh_grid, baseline, results, opts)

    t = time.perf_counter()
    _report(progress, "staffing", 0.0)
    workers_m = _staff(ds, grids_m, opts, problems)
    runtime["staffing"] = time.perf_counter() - t
    _report(progress, "staffing", 1.0)

    from gridplan.optimize.regions import site_by_county
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
    summary = build_summary(ds, opts, grids_m, hh, sres, problems, runtime, results, targets, model_budget(opts),
                            geom_stats)
    if baseline_summary is not None:
        from gridplan.optimize.codes import code_registry
        summary["baseline"], summary["code_registry"] = baseline_summary, code_registry(grids_m["grid_code"], baseline)
    summary["levels"] = levels(units, grids_m, micro_m)
    if micro_m is not None:
        summary["micro_grids"] = micro_summary(micro_m, opts.micro_target)
    runtime["assemble"] = time.perf_counter() - t
    summary["runtime_s"] = {k: round(v, 3) for k, v in runtime.items()}
    summary["runtime_s"]["total"] = round(sum(runtime.values()), 3)
    _report(progress, "output", 0.0)
    return Plan(grids=to_crs_valid(grids_out, 4326), stations=sres.stations.to_crs(4326),
                service_areas=to_crs_valid(sres.service_areas, 4326), households=hh_out.to_crs(4326),
                units=to_crs_valid(units_out, 4326), workers=workers_m.to_crs(4326), summary=summary, options=opts,
                network_minutes=sres.node_minutes,
                micro_grids=None if micro_m is None else to_crs_valid(micro_m, 4326))


__all__ = ["plan", "plan_dataset", "choose_k", "STAGES", "UnitTask", "solve_unit", "failed_unit", "task_timeout"]
