"""``gridplan audit``: check an existing grid layer against the contract's rules (exit 0 clean, 1 violations)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from gridplan.geo.vocabulary import CoordSystem

SHOW_AT_MOST = 40   # violation rows printed (audit.json has them all)


def _tables(result) -> tuple[Table, Table]:
    """Return the per-rule counts and the first violations, as rich tables."""
    counts = Table(title="Audit: violations per rule", title_justify="left")
    counts.add_column("rule")
    counts.add_column("violations", justify="right")
    for rule, n in result.counts.items():
        counts.add_row(rule, f"[red]{n}[/]" if n else "[dim]0[/]")
    rows = Table(title="Violations" + (f" (first {SHOW_AT_MOST})" if len(result.violations) > SHOW_AT_MOST else ""),
                 title_justify="left")
    for c in ("rule", "grid", "unit", "figure", "detail"):
        rows.add_column(c, overflow="fold")
    for v in result.violations[:SHOW_AT_MOST]:
        rows.add_row(v.rule, v.grid_code or "", v.unit_code or "", f"{v.figure:g} {v.unit}", v.detail)
    return counts, rows


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command to ``app``."""

    @app.command("audit")
    def audit_cmd(
        grids: Path = typer.Option(..., "--grids", help="The grid layer to check (any vector format, or a plan "
                                                        "directory)."),
        boundaries: Path = typer.Option(..., "--boundaries", "-b"),
        households: Path = typer.Option(..., "--households", "-h"),
        grid_code_field: str = typer.Option("grid_code", "--grid-code-field", help="The grid layer's code column."),
        unit_field: str = typer.Option("village_code", "--unit-field",
                                       help="The grid layer's column naming each grid's unit."),
        code_field: str = typer.Option("village_code", "--code-field", help="The boundaries' unit code column."),
        target_households: Optional[float] = typer.Option(None, "--target-households",
                                                          help="Also check each unit's grid count against it."),
        tolerance: float = typer.Option(0.10, "--tolerance", help="Allowed deviation from the unit mean."),
        coords: CoordSystem = typer.Option(CoordSystem.wgs84, "--coords", help="What lon/lat in the inputs mean."),
        later_version: bool = typer.Option(False, "--later-version",
                                           help="The layer is a later version: skip the west→east code order."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write audit.json, audit.gpkg, audit.html here."),
    ):
        """Check a grid layer: nesting, gaps, overlaps, contiguity, balance, codes, workers. Exit 1 on violations."""
        from gridplan.api.cli import _check_inputs, _fail, _problems_table, console
        from gridplan.geo.problems import DataError
        from gridplan.optimize.audit import audit, audit_options
        from gridplan.optimize.options import OptionsError

        _check_inputs(grids=grids, boundaries=boundaries, households=households)
        try:
            opts = audit_options({"grid_code_field": grid_code_field, "unit_field": unit_field,
                                  "code_field": code_field, "target_households": target_households,
                                  "tolerance": tolerance, "coords": coords.value})
        except OptionsError as e:
            _fail(2, "; ".join(f"--{f.replace('_', '-')}: {m}" for f, m in e.errors))
        try:
            result = audit(grids, boundaries, households, first_version=not later_version, **opts)
        except DataError as e:
            console.print(_problems_table(e.problems, "The inputs have problems that stop the audit"))
            raise typer.Exit(1)
        counts, rows = _tables(result)
        console.print(counts)
        if result.violations:
            console.print(rows)
        if result.certified:
            console.print(f"{len(result.certified)} grid(s) miss the tolerance where no split of their unit's "
                          "points can meet it (certified; not violations).")
        if out is not None:
            result.to_dir(out)
            console.print(f"Wrote [bold]{out}[/] (audit.json, audit.gpkg, audit.html)")
        console.print("[green]Clean: every rule holds.[/]" if result.clean
                      else f"[red]{len(result.violations)} violation(s).[/]")
        raise typer.Exit(0 if result.clean else 1)
