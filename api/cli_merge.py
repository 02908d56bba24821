"""``gridplan merge``: one balanced grid layer from the departments' legacy grid layers (多格合一)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import typer

from gridplan.geo.vocabulary import CoordSystem, Mode, OutputCoordSystem
from gridplan.optimize.options import OptionsError, option_help


def parse_layer(spec: str) -> tuple[str, Path, str | None]:
    """Split ``NAME=FILE[:ID_FIELD]`` into (name, file, id field); ValueError when it is not that shape."""
    name, eq, rest = spec.partition("=")
    name = name.strip()
    if not eq or not name or not rest:
        raise ValueError(f"--layer {spec!r}: expected NAME=FILE or NAME=FILE:ID_FIELD (e.g. police=police.gpkg:PID)")
    if Path(rest).exists() or ":" not in rest:
        return name, Path(rest), None
    path, _, fld = rest.rpartition(":")
    return name, Path(path), (fld.strip() or None)


def _layers(specs: list[str]) -> dict:
    """Parse and check every ``--layer``: usage errors exit 2, a missing file exits 1."""
    from gridplan.api.cli import _fail
    layers: dict = {}
    for spec in specs:
        try:
            name, path, fld = parse_layer(spec)
        except ValueError as e:
            _fail(2, str(e))
        if name in layers:
            _fail(2, f"--layer {spec!r}: the layer name {name!r} is given twice")
        if not path.exists():
            _fail(1, f"{path}: no such file (given as --layer {name}=…)")
        layers[name] = (path, fld)
    if not layers:
        _fail(2, "give at least one --layer NAME=FILE[:ID_FIELD]")
    return layers


def _run(layers: dict, inputs: dict, opts: dict, out_dir: Path, quiet: bool, as_json: bool) -> None:
    from gridplan.api.cli import _fail, _flag, _problems_table, _summary_table, console, out
    from gridplan.geo.problems import DataError
    from gridplan.optimize.merge import merge_layers, write_merge
    from gridplan.optimize.options import PlanOptions
    try:
        options = PlanOptions.from_mapping(opts)
    except OptionsError as e:
        _fail(2, "; ".join(f"{_flag(name)}: {msg}" for name, msg in e.errors))
    t0 = time.perf_counter()
    try:
        result, report = merge_layers(layers, inputs["boundaries"], inputs["households"], inputs.get("facilities"),
                                      inputs.get("roster"), options=options)
        write_merge(result, report, out_dir)
    except DataError as e:
        if as_json:
            out.print_json(json.dumps({"ok": False, "problems": [q.as_dict() for q in e.problems]}, ensure_ascii=False))
        else:
            console.print(_problems_table(e.problems, "The input has problems that stop the merge"))
        raise typer.Exit(1)
    except ValueError as e:
        _fail(1, str(e))
    if as_json:
        out.print_json(json.dumps({"summary": result.summary, "merge": report.to_dict()}, ensure_ascii=False,
                                  default=str))
    elif not quiet:
        console.print(_summary_table(result.summary))
        for lay in report.layers:
            reuse = lay["boundary_reused_share"]
            console.print(f"layer [bold]{lay['layer']}[/] ({lay['legacy_grids']} grids): ARI {lay['ari']}, "
                          f"legacy boundary reused {'—' if reuse is None else f'{reuse:.1%}'}", highlight=False)
        console.print(f"Wrote [bold]{out_dir}[/] (plan.gpkg with crosswalk, crosswalk.csv, merge.json, summary.json, "
                      f"report.html) in {time.perf_counter() - t0:.1f} s")


def register(app: typer.Typer) -> None:
    """Add ``gridplan merge`` to ``app``."""

    @app.command("merge")
    def merge_cmd(
        layer: List[str] = typer.Option(..., "--layer", "-l", help="A legacy grid layer: NAME=FILE[:ID_FIELD] "
                                        "(repeat; the id field defaults to the first unique column)."),
        boundaries: Path = typer.Option(..., "--boundaries", "-b", help="Unit polygons (villages/communities)."),
        households: Path = typer.Option(..., "--households", "-h", help="Household points, or CSV with lon/lat."),
        out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
        facilities: Optional[Path] = typer.Option(None, "--facilities", help="Existing/candidate station points."),
        roster: Optional[Path] = typer.Option(None, "--roster", help="Grid workers with home points."),
        target_households: Optional[float] = typer.Option(None, "--target-households",
                                                          help=option_help("target_households")),
        tolerance: Optional[float] = typer.Option(None, "--tolerance", help=option_help("tolerance")),
        minutes: Optional[float] = typer.Option(None, "--minutes", help=option_help("minutes")),
        mode: Optional[Mode] = typer.Option(None, "--mode", help=option_help("mode")),
        coords: Optional[CoordSystem] = typer.Option(None, "--coords", help=option_help("coords")),
        output_coords: Optional[OutputCoordSystem] = typer.Option(None, "--output-coords",
                                                                  help=option_help("output_coords")),
        code_field: Optional[str] = typer.Option(None, "--code-field", help=option_help("code_field")),
        jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help=option_help("jobs")),
        time_limit: Optional[float] = typer.Option(None, "--time-limit", help=option_help("time_limit_per_unit")),
        seed: Optional[int] = typer.Option(None, "--seed", help=option_help("seed")),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
        as_json: bool = typer.Option(False, "--json", help="Print the summary and merge.json to stdout."),
    ):
        """Merge legacy grid layers into one balanced grid layer, with a crosswalk per layer."""
        from gridplan.api.cli import _check_inputs, _plan_options
        _check_inputs(boundaries=boundaries, households=households, facilities=facilities, roster=roster)
        layers = _layers(layer)
        opts = _plan_options(target_households=target_households, tolerance=tolerance, minutes=minutes, mode=mode,
                             coords=coords, output_coords=output_coords, code_field=code_field, jobs=jobs,
                             time_limit_per_unit=time_limit, seed=seed)
        inputs = {"boundaries": boundaries, "households": households, "facilities": facilities, "roster": roster}
        _run(layers, inputs, opts, out, quiet, as_json)
