"""``gridplan route``: cases (hotline orders, disputes, patrol findings) into grids, with the workload per grid."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from gridplan.geo.vocabulary import CoordSystem


def _date(value: str | None, flag: str):
    """Check an ISO 8601 date/time option; exit 2 naming the flag when it is not one."""
    from gridplan.api.cli import _fail
    if value is None:
        return None
    import pandas as pd
    try:
        pd.Timestamp(value)
    except (ValueError, TypeError):
        _fail(2, f"{flag}: {value!r} is not an ISO 8601 date (e.g. 2026-03-01)")
    return value


def register(app: typer.Typer) -> None:
    """Add ``gridplan route`` to ``app``."""

    @app.command("route")
    def route_cmd(
        plan: Path = typer.Option(..., "--plan", help="A plan output directory (plan.gpkg + summary.json)."),
        cases: Path = typer.Option(..., "--cases", help="Cases: id, time (ISO 8601), kind, lon, lat."),
        out: Path = typer.Option(..., "--out", "-o", help="The routed cases (.csv or .parquet); workload.csv, "
                                 "case_workload.gpkg, household_cases.csv and cases_report.html go beside it."),
        coords: CoordSystem = typer.Option(CoordSystem("wgs84"), "--coords", help="What the cases' lon/lat mean."),
        period_from: Optional[str] = typer.Option(None, "--period-from", help="First day the workload counts."),
        period_to: Optional[str] = typer.Option(None, "--period-to", help="Last day the workload counts."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
        as_json: bool = typer.Option(False, "--json", help="Print the run's figures as JSON to stdout."),
    ):
        """Route each case to its grid, unit, workers and station; sum the workload per grid and worker."""
        from gridplan.api.cli import _check_inputs, _fail, _problems_table, console, out as stdout
        from gridplan.geo.problems import DataError
        from gridplan.optimize.caseroute import load_plan, route_plan_cases, write_route
        _check_inputs(cases=cases)
        if not (plan / "plan.gpkg").exists():
            _fail(1, f"{plan}: not a plan directory (no plan.gpkg; given as --plan)")
        period = (_date(period_from, "--period-from"), _date(period_to, "--period-to"))
        t0 = time.perf_counter()
        try:
            layers = load_plan(plan)
            result = route_plan_cases(layers, cases, coords=coords.value, period=period)
        except DataError as e:
            console.print(_problems_table(e.problems, "The cases file has problems that stop routing"))
            raise typer.Exit(1)
        except ValueError as e:
            _fail(1, str(e))
        write_route(result, out)
        m = dict(result.meta, seconds=round(time.perf_counter() - t0, 3))
        if as_json:
            stdout.print_json(json.dumps(m, ensure_ascii=False))
        elif not quiet:
            if result.problems:
                console.print(_problems_table(result.problems, "Problems (the cases concerned are named)"))
            console.print(f"{m['routed']:,} of {m['cases']:,} cases routed into a grid ({m['in_period']:,} in the "
                          f"period); wrote [bold]{out}[/] and workload.csv, case_workload.gpkg, household_cases.csv, "
                          f"cases_report.html beside it in {m['seconds']:.1f} s", highlight=False)
