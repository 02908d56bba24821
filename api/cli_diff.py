"""``gridplan diff OLD_DIR NEW_DIR [--out DIR] [--json]``: what changed between two plans.

Prints a table (grids kept / reshaped / created / retired, households moved, workers reassigned,
stations added / removed / moved) and the reshaped grids; with ``--out`` writes ``diff.json``,
``diff.gpkg`` and ``diff.html`` there (:meth:`gridplan.optimize.diff.PlanDiff.to_dir`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

SHOW_AT_MOST = 30


def _read(path: Path):
    """Read a plan output directory for the diff; exit 1 naming the directory when it is not one."""
    from gridplan.api.cli import _fail
    from gridplan.optimize.result import read_plan

    if not (path / "plan.gpkg").is_file():
        _fail(1, f"{path}: no plan.gpkg here — give the output directory of `gridplan plan` (or a download)")
    try:
        return read_plan(path)
    except Exception as e:  # a damaged directory: say which, never a traceback
        _fail(1, f"{path}: the plan cannot be read: {e}")


def diff(
    old_dir: Path = typer.Argument(..., help="The old plan's output directory."),
    new_dir: Path = typer.Argument(..., help="The new plan's output directory."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Write diff.json, diff.gpkg and diff.html here."),
    tolerance_m2: float = typer.Option(1.0, "--tolerance-m2", min=0.0,
                                       help="A grid whose shapes differ by at most this many m² is kept."),
    as_json: bool = typer.Option(False, "--json", help="Print diff.json to stdout."),
) -> None:
    """Show what changed between two plans: grids, households, workers, stations."""
    from gridplan.api.cli import console, out
    from gridplan.geo.versionfile import read_version
    from gridplan.optimize.diff import diff_plans, table_rows

    old, new = _read(old_dir), _read(new_dir)
    names = [(read_version(d) or {}).get("id") or d.name for d in (old_dir, new_dir)]
    d = diff_plans(old, new, old_id=names[0], new_id=names[1], tolerance_m2=tolerance_m2)
    if as_json:
        out.print_json(json.dumps(d.to_dict(), ensure_ascii=False))
    else:
        t = Table(title=f"Diff {names[0]} → {names[1]}", title_justify="left", show_header=False)
        for k, v in table_rows(d):
            t.add_row(k, v)
        console.print(t)
        if d.reshaped:
            r = Table(title="Reshaped grids", title_justify="left")
            for col in ("grid", "area change m²", "households in", "households out"):
                r.add_column(col, justify="right" if col != "grid" else "left")
            for g in d.reshaped[:SHOW_AT_MOST]:
                r.add_row(g.grid_code, f"{g.area_change_m2:,.0f}", f"{g.households_in:,.0f}", f"{g.households_out:,.0f}")
            console.print(r)
        for label, codes in (("Created", d.created), ("Retired", d.retired)):
            if codes:
                more = f" … and {len(codes) - SHOW_AT_MOST} more" if len(codes) > SHOW_AT_MOST else ""
                console.print(f"{label}: " + ", ".join(codes[:SHOW_AT_MOST]) + more, highlight=False)
    if out_dir is not None:
        d.to_dir(out_dir)
        console.print(f"Wrote [bold]{out_dir}[/] (diff.json, diff.gpkg, diff.html)")


def register(app: typer.Typer) -> None:
    """Add ``gridplan diff`` to the CLI."""
    app.command(name="diff")(diff)
