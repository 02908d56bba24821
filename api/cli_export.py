"""``gridplan export``: a finished plan as files for other tools — today a PMTiles archive of its vector tiles.

    gridplan export --plan OUT_DIR --pmtiles plan.pmtiles [--min-zoom 0] [--max-zoom 14]

The archive holds the layers ``/tiles/{plan}/{z}/{x}/{y}.mvt`` serves (grids, units, micro-grids,
service areas, stations; true WGS 84) and can be hosted by any static web server (``geo.pmtiles_out``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridplan.geo.tiles import MAX_ZOOM


class ExportOptions(BaseModel):
    """The options of ``gridplan export``, checked before any work (errors name the option)."""

    model_config = ConfigDict(extra="forbid")
    min_zoom: int = Field(0, ge=0, le=MAX_ZOOM, description="the lowest zoom written")
    max_zoom: int = Field(14, ge=0, le=16, description="the highest zoom written (at most 16: tile counts grow 4x a zoom)")

    @model_validator(mode="after")
    def _ordered(self) -> "ExportOptions":
        if self.min_zoom > self.max_zoom:
            raise ValueError(f"--min-zoom {self.min_zoom} is above --max-zoom {self.max_zoom}")
        return self


def _options(min_zoom: int, max_zoom: int) -> ExportOptions:
    from gridplan.api.cli import _fail
    try:
        return ExportOptions(min_zoom=min_zoom, max_zoom=max_zoom)
    except ValidationError as e:
        err = e.errors()[0]
        where = "--" + str(err["loc"][0]).replace("_", "-") if err.get("loc") else "options"
        _fail(2, f"{where}: {err['msg'].removeprefix('Value error, ')}")


def export_cmd(plan: Path = typer.Option(..., "--plan", help="A plan's output directory (plan.gpkg, summary.json)."),
               pmtiles: Optional[Path] = typer.Option(None, "--pmtiles", help="Write the plan's vector tiles to "
                                                      "this PMTiles v3 archive."),
               min_zoom: int = typer.Option(0, "--min-zoom", help="Lowest zoom written."),
               max_zoom: int = typer.Option(14, "--max-zoom", help="Highest zoom written (at most 16)."),
               quiet: bool = typer.Option(False, "--quiet", "-q")):
    """Export a finished plan for other tools: ``--pmtiles`` writes its vector tiles as one PMTiles archive."""
    from gridplan.api.cli import _fail, console
    from gridplan.geo.pmtiles_out import write_pmtiles
    from gridplan.geo.tiles import read_tile_source

    opts = _options(min_zoom, max_zoom)
    if pmtiles is None:
        _fail(2, "nothing to export: give --pmtiles FILE")
    if not pmtiles.parent.is_dir():
        _fail(1, f"{pmtiles.parent}: no such directory (given in --pmtiles)")
    try:
        src = read_tile_source(plan)
    except FileNotFoundError as e:
        _fail(1, str(e))
    try:
        stats = write_pmtiles(src, pmtiles, opts.min_zoom, opts.max_zoom, name=f"gridplan {plan.name}")
    except ValueError as e:
        _fail(1, f"{plan}: {e}")
    if not quiet:
        console.print(f"Wrote {stats.tiles} tiles (zooms {stats.min_zoom}–{stats.max_zoom}, "
                      f"{stats.bytes / 1e6:.1f} MB) to {pmtiles}")


def register(app: typer.Typer) -> None:
    """Add ``gridplan export`` to the CLI."""
    app.command("export")(export_cmd)
