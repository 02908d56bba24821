"""``gridplan route`` end to end: a plan directory and a cases file in, routed cases and workload out.

Outputs (``write_route``): the routed cases at ``out`` (CSV, or GeoParquet-free Parquet when it
ends in ``.parquet``) and beside it ``workload.csv`` (``casework.WORKLOAD_COLUMNS``),
``case_workload.gpkg`` (layer ``case_workload``), ``household_cases.csv`` (cases per household id,
for the next plan's ``--workload``) and ``cases_report.html``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd

from gridplan.geo.problems import Problem
from gridplan.optimize import casework
from gridplan.optimize.cases import ROUTED_COLUMNS, Resolver, fixed_plan, read_cases, route_cases

OUTPUT_FILES = ("workload.csv", "case_workload.gpkg", "household_cases.csv", "cases_report.html")


@dataclass
class PlanLayers:
    """What routing needs of a plan: its index and the grids, workers and households layers."""

    plan_id: str
    index: object
    grids: gpd.GeoDataFrame
    workers: pd.DataFrame | None
    households: gpd.GeoDataFrame | None
    id_col: str = "id"


@dataclass
class RouteResult:
    """Routed cases, the workload table and layer, the per-household counts, the problems and a few figures."""

    routed: pd.DataFrame
    workload: pd.DataFrame
    layer: gpd.GeoDataFrame
    household_cases: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def load_plan(plan_dir, plan_id: str | None = None, households: bool = True) -> PlanLayers:
    """Read a plan output directory: its ``GridIndex`` (as ``/v1/lookup`` builds it) and layers."""
    import pyogrio

    from gridplan.geo.index import GridIndex
    path = Path(plan_dir)
    index = GridIndex.from_plan_dir(path, plan_id=plan_id or path.name)
    gpkg = path / "plan.gpkg"
    names = {n for n, _ in pyogrio.list_layers(gpkg)}
    grids = pyogrio.read_dataframe(gpkg, layer="grids")
    workers = pyogrio.read_dataframe(gpkg, layer="workers", read_geometry=False) if "workers" in names else None
    hh, id_col = None, "id"
    if households and "households" in names:
        hh = pyogrio.read_dataframe(gpkg, layer="households", columns=None)
        id_col = next((c for c in hh.columns if c not in ("grid_code", "station_id", "minutes", "village_code",
                                                          "households", "geometry")), "id")
    return PlanLayers(plan_id or path.name, index, grids, workers, hh, id_col)


def route_plan_cases(plan: PlanLayers, cases_src, *, coords: str = "wgs84", period: tuple = (None, None),
                     plan_for_time: Resolver | None = None, name: str | None = None, limits=None) -> RouteResult:
    """Route a cases file by ``plan`` (or by ``plan_for_time``) and sum the workload over ``period``.

    Parameters
    ----------
    plan : PlanLayers
        The given (live) plan: its grids and workers make the workload tables.
    cases_src : path or DataFrame
        The cases (``cases.read_cases``).
    coords : str
        What the cases' lon/lat mean.
    period : (start, end)
        Dates or timestamps (inclusive) the workload counts; None: open.
    plan_for_time : callable, optional
        ``t -> (plan id, GridIndex)`` (the version in effect); default: ``plan`` for every case.
    name : str, optional
        The client's file name, for messages.
    limits : ReadLimits, optional
        Read limits of the cases file.
    """
    cases = read_cases(cases_src, name=name, limits=limits)
    resolve = plan_for_time or fixed_plan(plan.plan_id, plan.index)
    routed = route_cases(cases.frame, resolve, coords)
    mask = casework.in_period(routed["time"], *period)
    table = casework.workload_table(routed, plan.grids, plan.workers, period, mask)
    layer = casework.case_workload_layer(table, plan.grids)
    per_hh = (casework.household_cases(routed, plan.households, plan.id_col, period, coords, mask)
              if plan.households is not None else pd.DataFrame(columns=[plan.id_col, "cases"]))
    meta = {"cases": int(len(routed)), "routed": int(routed["grid_code"].notna().sum()),
            "in_period": int(mask.sum()),
            "period_from": None if period[0] is None else str(period[0]),
            "period_to": None if period[1] is None else str(period[1]),
            "plans": sorted({str(p) for p in routed["plan"].dropna().unique()}) or [plan.plan_id],
            "source": cases.source, "problems": [str(p) for p in cases.problems]}
    return RouteResult(routed, table, layer, per_hh, cases.problems, meta)


def write_route(result: RouteResult, out) -> dict[str, Path]:
    """Write the routed cases to ``out`` and the other outputs beside it; return their paths."""
    from gridplan.geo.output import write_layer
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    routed = result.routed
    if "time_text" in routed:   # the time as the file gave it (the parsed UTC time only decides plan and period)
        routed = routed.drop(columns=["time"]).rename(columns={"time_text": "time"})[ROUTED_COLUMNS]
    if out.suffix.lower() == ".parquet":
        routed.to_parquet(out, index=False)
    else:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        pacsv.write_csv(pa.Table.from_pandas(routed, preserve_index=False), out)
    d = out.parent
    paths = {"cases": out, **{name: d / name for name in OUTPUT_FILES}}
    result.workload.to_csv(paths["workload.csv"], index=False)
    gpkg = paths["case_workload.gpkg"]
    if gpkg.exists():
        gpkg.unlink()
    write_layer(result.layer.to_crs(4326) if result.layer.crs is not None else result.layer, gpkg, "case_workload")
    result.household_cases.to_csv(paths["household_cases.csv"], index=False)
    paths["cases_report.html"].write_text(casework.render_cases_report(result.workload, result.meta),
                                          encoding="utf-8")
    (d / "route.json").write_text(json.dumps(result.meta, ensure_ascii=False, indent=2), encoding="utf-8")
    paths["route.json"] = d / "route.json"
    return paths
