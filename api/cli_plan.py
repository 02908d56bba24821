"""``gridplan plan``: plan grids, workers and stations for your own inputs (its many options live here)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gridplan.geo.vocabulary import CoordSystem, Mode, OutputCoordSystem
from gridplan.optimize.options import option_help


def plan_cmd(
    boundaries: Path = typer.Option(..., "--boundaries", "-b", help="Unit polygons (villages/communities)."),
    households: Path = typer.Option(..., "--households", "-h", help="Household points, or CSV with lon/lat."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    facilities: Optional[Path] = typer.Option(None, "--facilities", help="Existing/candidate station points."),
    roster: Optional[Path] = typer.Option(None, "--roster", help="Grid workers with home points."),
    network: Optional[Path] = typer.Option(None, "--network", help="OpenStreetMap .osm.pbf: travel follows roads."),
    barriers: Optional[Path] = typer.Option(None, "--barriers",
                                            help="Lines no grid may straddle (rivers, expressways, railways)."),
    target_households: Optional[float] = typer.Option(None, "--target-households",
                                                      help=option_help("target_households")),
    tolerance: Optional[float] = typer.Option(None, "--tolerance", help=option_help("tolerance")),
    minutes: Optional[float] = typer.Option(None, "--minutes", help=option_help("minutes")),
    mode: Optional[Mode] = typer.Option(None, "--mode", help=option_help("mode")),
    speed_kmh: Optional[float] = typer.Option(None, "--speed-kmh", help=option_help("speed_kmh")),
    coverage_target: Optional[float] = typer.Option(None, "--coverage-target",
                                                    help=option_help("coverage_target")),
    max_stations: Optional[int] = typer.Option(None, "--max-stations", help=option_help("max_stations")),
    workers_budget: Optional[int] = typer.Option(None, "--workers-budget", help=option_help("workers_budget")),
    workers_per_10k: Optional[float] = typer.Option(None, "--workers-per-10k",
                                                    help=option_help("workers_per_10k")),
    coords: Optional[CoordSystem] = typer.Option(None, "--coords", help=option_help("coords")),
    output_coords: Optional[OutputCoordSystem] = typer.Option(None, "--output-coords",
                                                              help=option_help("output_coords")),
    code_field: Optional[str] = typer.Option(None, "--code-field", help=option_help("code_field")),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help=option_help("jobs")),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help=option_help("scheduler")),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help=option_help("baseline")),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help=option_help("time_limit_per_unit")),
    seed: Optional[int] = typer.Option(None, "--seed", help=option_help("seed")),
    balance_by: Optional[str] = typer.Option(None, "--balance-by", help=option_help("balance_by")),
    workload: Optional[str] = typer.Option(None, "--workload", help=option_help("workload")),
    also_balance: Optional[str] = typer.Option(None, "--also-balance", help=option_help("also_balance")),
    micro_target: Optional[float] = typer.Option(None, "--micro-target", help=option_help("micro_target")),
    siting_model: Optional[str] = typer.Option(None, "--siting-model", help=option_help("siting_model")),
    default_capacity: Optional[float] = typer.Option(None, "--default-capacity",
                                                     help=option_help("default_capacity")),
    single_source: bool = typer.Option(False, "--single-source", help=option_help("single_source", show_default=False)),
    center_weighted: bool = typer.Option(False, "--center-weighted",
                                         help=option_help("center_weighted", show_default=False)),
    allow_close: bool = typer.Option(False, "--allow-close", help=option_help("allow_close", show_default=False)),
    close_cost: Optional[float] = typer.Option(None, "--close-cost", help=option_help("close_cost")),
    max_close: Optional[int] = typer.Option(None, "--max-close", help=option_help("max_close")),
    max_move: Optional[int] = typer.Option(None, "--max-move", help=option_help("max_move")),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json to stdout."),
):
    """Plan grids, workers and stations for your own boundaries and households."""
    # imported here: gridplan.api.cli imports this module while it is being made
    from gridplan.api.cli import _check_inputs, _plan_options, _run_plan
    _check_inputs(boundaries=boundaries, households=households, facilities=facilities, roster=roster,
                  network=network, baseline=baseline, barriers=barriers)
    inputs = {"boundaries": boundaries, "households": households, "facilities": facilities, "roster": roster,
              "network": network, "barriers": barriers}
    opts = _plan_options(target_households=target_households, tolerance=tolerance, minutes=minutes, mode=mode,
                         speed_kmh=speed_kmh, coverage_target=coverage_target, max_stations=max_stations,
                         workers_budget=workers_budget, workers_per_10k=workers_per_10k, coords=coords,
                         output_coords=output_coords, code_field=code_field, jobs=jobs, scheduler=scheduler,
                         baseline=str(baseline) if baseline else None, time_limit_per_unit=time_limit, seed=seed,
                         siting_model=siting_model, default_capacity=default_capacity,
                         single_source=single_source or None, center_weighted=center_weighted or None,
                         allow_close=allow_close or None, close_cost=close_cost, max_close=max_close,
                         max_move=max_move, balance_by=balance_by, workload=workload, also_balance=also_balance,
                         micro_target=micro_target)
    _run_plan(inputs, opts, out, quiet, as_json)


def register(app: typer.Typer) -> None:
    """Add the ``plan`` command to the CLI."""
    app.command("plan")(plan_cmd)
