"""The ``gridplan`` command line (CONTRACT.md "Command line").

Exit codes: 0 success; 1 data or validation error (the message names the file, row/feature and
the problem); 2 usage error. Set GRIDPLAN_DEBUG=1 to see tracebacks of unexpected errors.
"""
from __future__ import annotations

import json
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridplan.geo.vocabulary import CoordSystem, Mode, OutputCoordSystem  # noqa: F401  (Mode: the plan command's, re-exported)
from gridplan.optimize.options import OptionsError, option_default, option_help

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Grid-governance plans: balanced grids, grid workers, service stations, point→grid lookup.")

console = Console(stderr=True)   # progress and tables on stderr; stdout stays for --json and keys
out = Console()


def _fail(code: int, message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _problems_table(problems, title="Data problems") -> Table:
    t = Table(title=title, show_lines=False, title_justify="left")
    t.add_column("", no_wrap=True)
    t.add_column("file")
    t.add_column("where")
    t.add_column("problem")
    for p in problems:
        t.add_row("[red]ERROR[/]" if p.fatal else "[yellow]warn[/]", p.source, p.row or "", p.message)
    return t


def _check_inputs(**paths) -> None:
    for role, p in paths.items():
        if p is not None and not Path(p).exists():
            _fail(1, f"{p}: no such file (given as --{role.replace('_', '-')})")


def _summary_table(summary) -> Table:
    """Build the plan summary table; a figure the summary lacks shows as — (``geo.summary.UNKNOWN``)."""
    from gridplan.geo.summary import Summary, fmt_num, fmt_pct
    s = summary if isinstance(summary, Summary) else Summary.from_dict(summary)
    t = Table(title="Plan summary", title_justify="left", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    b, c, comp = s.bal, s.cov, s.comp
    tol = s.tolerance
    rows = [
        ("households", fmt_num(s.households)),
        ("units", fmt_num(s.units)),
        ("grids", fmt_num(s.grids)),
        (f"[bold]grids within ±{fmt_pct(tol, 0)} of their unit mean[/]",
         f"[bold]{fmt_pct(b.within_tolerance_share)}[/]"),
    ]
    if b.failed_grids:
        ex = b.excluding_failed
        rows.append(("  … excluding failed units", fmt_pct(ex.within_tolerance_share if ex else None)))
    if b.uncertified_miss_share is not None or b.uncertified_miss_grids is not None:
        rows.append(("  uncertified misses (grids)",
                     f"{fmt_num(b.uncertified_miss_grids)} ({fmt_pct(b.uncertified_miss_share, 2)})"))
    counts = s.part.units_by_balance or {}
    if counts:
        rows.append(("units by balance", ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "—"))
    rows += [
        ("max / p95 deviation", f"{fmt_pct(b.max_abs_dev)} / {fmt_pct(b.p95_abs_dev)}"),
        ("grids within tolerance (granular, a bound)", fmt_pct(b.within_granular_tolerance_share)),
        ("workers", fmt_num(s.workers)),
        ("stations", fmt_num(s.stations)),
        (f"coverage ({fmt_num(c.minutes)} min, {fmt_num(c.mode)})", fmt_pct(c.share)),
        ("Polsby-Popper mean / p10", f"{fmt_num(comp.polsby_popper_mean, 2)} / {fmt_num(comp.polsby_popper_p10, 2)}"),
        ("contiguous grids", fmt_pct(s.contiguous_share)),
        ("unassigned households", fmt_num(s.unassigned_households)),
        ("problems", f"{len(s.problem_list)}"),
        ("runtime", f"{fmt_num(s.runtime_total, 1)} s"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    return t


# partition problems shown one per line (the rest are counted by kind)
PARTITION_SHOWN = ("partition_failed", "model_miss", "tolerance_unreachable", "grid_count")
SHOW_AT_MOST = 10


def _print_problems(summary) -> None:
    """Print the plan's problems concisely: failed units, misses and grid counts named; the rest counted."""
    from gridplan.geo.summary import Summary
    problems = (summary if isinstance(summary, Summary) else Summary.from_dict(summary)).problem_list
    if not problems:
        return
    shown = [q for q in problems if q.kind in PARTITION_SHOWN]
    for q in shown[:SHOW_AT_MOST]:
        colour = "red" if q.kind == "partition_failed" else "yellow"
        console.print(f"[{colour}]{q.kind}[/] {q.row or ''}: {q.message}", highlight=False)
    if len(shown) > SHOW_AT_MOST:
        console.print(f"… and {len(shown) - SHOW_AT_MOST} more partition problem(s)")
    by_kind: dict[str, int] = {}
    for q in problems:
        if q.kind not in PARTITION_SHOWN:
            by_kind[q.kind or "?"] = by_kind.get(q.kind or "?", 0) + 1
    if by_kind:
        console.print("[yellow]Also:[/] " + ", ".join(f"{v} {k}" for k, v in sorted(by_kind.items()))
                      + ' — see summary.json["problems"]', highlight=False)


def _run_plan(inputs: dict, opts: dict, out_dir: Path, quiet: bool, as_json: bool) -> dict:
    from gridplan.geo.problems import DataError
    from gridplan.optimize.options import PlanOptions
    from gridplan.optimize.pipeline import STAGES, plan

    try:
        options = PlanOptions.from_mapping(opts)
    except OptionsError as e:
        _fail(2, "; ".join(f"{_flag(name)}: {msg}" for name, msg in e.errors))
    labels = {"load": "Reading and validating", "partition": "Partitioning units", "staffing": "Staffing grids",
              "siting": "Siting stations", "output": "Writing outputs"}
    t0 = time.perf_counter()
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                        TimeElapsedColumn(), console=console, disable=quiet or as_json, transient=False)
    tasks: dict[str, int] = {}

    def on_progress(stage: str, fraction: float) -> None:
        lo, hi = STAGES[stage]
        for s, (slo, shi) in STAGES.items():   # close earlier stages, open this one
            if shi <= lo + 1e-9 and s in tasks:
                progress.update(tasks[s], completed=100)
        if stage not in tasks:
            tasks[stage] = progress.add_task(labels[stage], total=100)
        progress.update(tasks[stage], completed=100 * (fraction - lo) / max(hi - lo, 1e-9))

    try:
        with progress:
            p = plan(inputs["boundaries"], inputs["households"], inputs.get("facilities"), inputs.get("roster"),
                     inputs.get("network"), barriers=inputs.get("barriers"), options=options, progress=on_progress)
            on_progress("output", STAGES["output"][0])
            t = time.perf_counter()
            p.to_dir(out_dir)
            p.summary.setdefault("runtime_s", {})["output"] = round(time.perf_counter() - t, 3)
            on_progress("output", 1.0)
    except DataError as e:
        if as_json:
            out.print_json(json.dumps({"ok": False, "problems": [q.as_dict() for q in e.problems]}, ensure_ascii=False))
        else:
            console.print(_problems_table(e.problems, "The input has problems that stop the plan"))
        raise typer.Exit(1)
    except ValueError as e:   # options that only the data can refute (budget below the grid count, ...)
        _fail(1, str(e))
    summary = p.summary
    # the summary on disk gets the output time too
    from gridplan.geo.output import summary_json
    (out_dir / "summary.json").write_text(summary_json(summary), encoding="utf-8")
    if as_json:
        out.print_json(summary_json(summary))
    elif not quiet:
        console.print(_summary_table(summary))
        _print_problems(summary)
        console.print(f"Wrote [bold]{out_dir}[/] (plan.gpkg, summary.json, report.html) "
                      f"in {time.perf_counter() - t0:.1f} s")
    return summary


# options whose command-line flag is not "--" + the option's name with dashes
_FLAGS = {"time_limit_per_unit": "--time-limit"}


def _flag(option: str) -> str:
    """Return the command-line flag of a plan option (as users type it)."""
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def _plan_options(**kw) -> dict:
    """Return the options given on the command line (None: not given) as plain values for PlanOptions."""
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in kw.items() if v is not None}


@app.command()
def demo(out: Path = typer.Option(Path("gridplan-demo"), "--out", help="Output directory."),
         jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Worker processes for partitioning."),
         small: bool = typer.Option(False, "--small", help="Use the small one-township sample (fast)."),
         quiet: bool = typer.Option(False, "--quiet", "-q"),
         as_json: bool = typer.Option(False, "--json", help="Print summary.json to stdout.")):
    """Run the whole plan on the bundled sample county (Baisha, Hainan): grids, workers, stations, report."""
    from gridplan.geo.samples import sample_paths
    try:
        inputs = sample_paths("sample_small" if small else "sample")
    except FileNotFoundError as e:
        _fail(1, str(e))
    if not quiet and not as_json:
        console.print(f"gridplan demo: the bundled sample county from [bold]{inputs['boundaries'].parent}[/]")
    _run_plan(inputs, {"jobs": jobs}, out, quiet, as_json)


@app.command()
def validate(
    boundaries: Path = typer.Option(..., "--boundaries", "-b"),
    households: Path = typer.Option(..., "--households", "-h"),
    facilities: Optional[Path] = typer.Option(None, "--facilities"),
    roster: Optional[Path] = typer.Option(None, "--roster"),
    coords: CoordSystem = typer.Option(CoordSystem(option_default("coords")), "--coords",
                                       help=option_help("coords", show_default=False)),
    code_field: str = typer.Option(option_default("code_field"), "--code-field",
                                   help=option_help("code_field", show_default=False)),
    as_json: bool = typer.Option(False, "--json", help="Print the problems as JSON to stdout."),
):
    """List every data problem found; exit 1 if any is fatal."""
    from gridplan.geo.io import validate as validate_files
    _check_inputs(boundaries=boundaries, households=households, facilities=facilities, roster=roster)
    problems = validate_files(boundaries, households, facilities, roster, coords=coords.value, code_field=code_field)
    fatal = [p for p in problems if p.fatal]
    if as_json:
        out.print_json(json.dumps({"ok": not fatal, "problems": [p.as_dict() for p in problems]}, ensure_ascii=False))
    elif problems:
        console.print(_problems_table(problems))
        console.print(f"{len(fatal)} fatal, {len(problems) - len(fatal)} repairable problem(s).")
    else:
        console.print("[green]No problems found.[/]")
    raise typer.Exit(1 if fatal else 0)


@app.command()
def lookup(
    plan_dir: Path = typer.Option(..., "--plan", help="A plan's output directory."),
    lon: Optional[float] = typer.Argument(None),
    lat: Optional[float] = typer.Argument(None),
    points: Optional[Path] = typer.Option(None, "--points", help="Points file (CSV lon/lat or any vector format)."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Where to write the looked-up points (CSV, GPKG...)."),
    coords: OutputCoordSystem = typer.Option(OutputCoordSystem.wgs84, "--coords", help="What the given lon/lat mean."),
):
    """Which grid (and worker, and station) is this point in? Offline, on an output directory."""
    from gridplan.geo.index import GridIndex
    if (lon is None) != (lat is None):
        _fail(2, "give both LON and LAT, or --points F --out F")
    if lon is None and points is None:
        _fail(2, "give LON LAT, or --points F --out F")
    if points is not None and out_file is None:
        _fail(2, "--points needs --out")
    if not (plan_dir / "plan.gpkg").exists():
        _fail(1, f"{plan_dir}: no plan.gpkg here — give the output directory of `gridplan plan`")
    try:
        idx = GridIndex.from_plan_dir(plan_dir)
    except ValueError as e:   # e.g. a network plan without its road table
        _fail(1, str(e))
    if lon is not None:
        res = idx.lookup_one(lon, lat, coords=coords.value)
        if res is None:
            out.print_json(json.dumps({"lon": lon, "lat": lat, "grid_code": None}))
            console.print("The point lies outside every grid of this plan.")
            raise typer.Exit(1)
        out.print_json(json.dumps(res, ensure_ascii=False, default=str))
        return
    _lookup_file(idx, points, out_file, coords.value)


def _lookup_file(idx, points: Path, out_file: Path, coords: str) -> None:
    import geopandas as gpd
    import numpy as np
    import pandas as pd

    from gridplan.geo.io import read_table
    df, problems = read_table(points, role="points")
    fatal = [p for p in problems if p.fatal]
    if fatal:
        console.print(_problems_table(fatal))
        raise typer.Exit(1)
    if isinstance(df, gpd.GeoDataFrame):
        g = df.to_crs(4326) if df.crs is not None else df
        lon, lat = g.geometry.x.to_numpy(), g.geometry.y.to_numpy()
    else:
        cols = {c.lower(): c for c in df.columns}
        lx = next((cols[c] for c in ("lon", "lng", "longitude", "x") if c in cols), None)
        ly = next((cols[c] for c in ("lat", "latitude", "y") if c in cols), None)
        if lx is None or ly is None:
            _fail(1, f"{points}: no lon/lat (or x/y) columns; found {', '.join(map(str, df.columns))}")
        lon = pd.to_numeric(df[lx], errors="coerce").to_numpy(float)
        lat = pd.to_numeric(df[ly], errors="coerce").to_numpy(float)
    res = idx.lookup(lon, lat, coords=coords)
    table = pd.DataFrame(df.drop(columns=[df.geometry.name]) if isinstance(df, gpd.GeoDataFrame) else df).copy()
    for k, v in res.items():
        table[k] = v
    if out_file.suffix.lower() in (".csv", ".txt"):
        if "lon" not in table.columns:
            table["lon"], table["lat"] = lon, lat
        table.to_csv(out_file, index=False)
    else:
        gpd.GeoDataFrame(table, geometry=gpd.points_from_xy(lon, lat), crs=4326).to_file(out_file)
    found = int(np.sum(pd.notna(res.get("grid_code"))))
    console.print(f"{found:,} of {len(table):,} points lie in a grid; wrote {out_file}")


@app.command()
def serve(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port"),
          data_dir: Path = typer.Option(Path("gridplan-data"), "--data-dir"),
          database_url: Optional[str] = typer.Option(None, "--database-url",
                                                     help="postgresql://… (PostGIS); default SQLite in --data-dir.")):
    """Run the HTTP service (jobs, results, lookup, keys)."""
    from gridplan.api.server import serve as run_server
    run_server(host=host, port=port, data_dir=str(data_dir), database_url=database_url)


# Commands that live in their own modules (``gridplan.api.cli_<name>``), each with ``register(app)``:
# one module per concern keeps this file to the shared plumbing.
COMMAND_MODULES: list[str] = [
    "cli_plan",
    "cli_keys",
    "cli_edit",
    "cli_diff",
    "cli_merge", "cli_route",
    "cli_audit",
    "cli_export",
]


def _register_commands() -> None:
    import importlib
    for name in COMMAND_MODULES:
        importlib.import_module(f"gridplan.api.{name}").register(app)


# Only the module under its own name registers them: run as a script (``__main__``) the block below
# imports it, and a worker process's copy of the script (``__mp_main__``) needs no commands.
if __name__ == "gridplan.api.cli":
    _register_commands()


def main() -> None:
    """Run the CLI: errors print one line (no traceback unless GRIDPLAN_DEBUG is set) and exit non-zero."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except Exception as e:  # never a traceback for users; GRIDPLAN_DEBUG=1 shows it
        if os.environ.get("GRIDPLAN_DEBUG"):
            raise
        console.print(f"[bold red]error:[/] {type(e).__name__}: {e}", highlight=False)
        console.print("(set GRIDPLAN_DEBUG=1 to see the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    from gridplan.api.cli import main as _main  # the module under its own name, commands registered
    _main()
