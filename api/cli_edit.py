"""``gridplan edit``: apply hand edits to a plan directory and write the new plan elsewhere.

    gridplan edit --plan DIR [--lock CODE ...] [--unlock CODE ...] [--move-points F --to CODE]
                  [--merge A B] [--split CODE --k 2] [--rebalance UNIT] [--edits edits.json]
                  [--force] --out DIR

The flags build one list of edits, applied in this order: locks, unlocks, the move, the merge, the
split, the rebalance, then the edits of ``--edits`` (a JSON list, see ``optimize.edit_apply``). All
or nothing: a refused edit writes nothing. ``--move-points F`` reads F through the allow-listed
readers: a table with an ``id`` column (household ids of the plan's households layer), or polygons
(every household inside them moves). Exit 0 written; 1 an edit refused or a bad file; 2 usage.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

MAX_EDITS_FILE = 50 * 1024 * 1024


def _move_selection(path: Path) -> dict:
    """Return the move's selection from a file: {"points": ids} or {"polygon": GeoJSON}."""
    import shapely

    from gridplan.api.cli import _fail
    from gridplan.geo.io import read_table
    frame, problems = read_table(path, role="points", name=path.name)
    fatal = [p for p in problems if p.fatal]
    if frame is None or fatal:
        _fail(1, "; ".join(p.message for p in (fatal or problems)) or f"{path.name}: cannot read it")
    if "id" in frame.columns:
        ids = [str(v) for v in frame["id"].tolist() if v is not None and str(v) != ""]
        if not ids:
            _fail(1, f"{path.name}: the id column is empty")
        return {"points": ids}
    geom = getattr(frame, "geometry", None)
    if geom is None or not (geom.geom_type.isin(["Polygon", "MultiPolygon"])).any():
        _fail(1, f"{path.name}: neither an id column (household ids) nor polygons to select households with")
    polys = frame[geom.geom_type.isin(["Polygon", "MultiPolygon"])]
    if polys.crs is not None and not polys.crs.equals("EPSG:4326"):
        polys = polys.to_crs(4326)
    return {"polygon": shapely.geometry.mapping(shapely.union_all(polys.geometry.values))}


def _edits_file(path: Path) -> list:
    """Return the edits listed in a JSON file (size-limited; a JSON list is required)."""
    from gridplan.api.cli import _fail
    if not path.is_file():
        _fail(1, f"{path.name}: no such file (given as --edits)")
    if path.stat().st_size > MAX_EDITS_FILE:
        _fail(1, f"{path.name}: larger than {MAX_EDITS_FILE // 2**20} MB")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        _fail(1, f"{path.name}: not valid JSON ({e})")
    if isinstance(data, dict) and "edits" in data:
        data = data["edits"]
    if not isinstance(data, list):
        _fail(1, f"{path.name}: expected a JSON list of edits (or {{\"edits\": [...]}})")
    return data


def build_edits(lock, unlock, move_points, to, merge, split, k, rebalance, edits_file, force) -> list[dict]:
    """Turn the command's flags into the edits list (order: module docstring)."""
    from gridplan.api.cli import _fail
    edits: list[dict] = []
    if lock:
        edits.append({"op": "lock", "codes": list(lock)})
    if unlock:
        edits.append({"op": "unlock", "codes": list(unlock)})
    if (move_points is None) != (to is None):
        _fail(2, "--move-points and --to go together")
    if move_points is not None:
        edits.append({"op": "move", **_move_selection(move_points), "to": to, "force": force})
    if merge:
        edits.append({"op": "merge", "a": merge[0], "b": merge[1], "force": force})
    if split is not None:
        edits.append({"op": "split", "code": split, "k": k, "force": force})
    if rebalance is not None:
        edits.append({"op": "rebalance", "unit": rebalance, "force": force})
    if edits_file is not None:
        edits.extend(_edits_file(edits_file))
    if not edits:
        _fail(2, "no edit given (use --lock, --move-points/--to, --merge, --split, --rebalance or --edits)")
    return edits


def register(app: typer.Typer) -> None:
    """Add the ``edit`` command to the CLI app."""

    @app.command("edit")
    def edit_cmd(
        plan_dir: Path = typer.Option(..., "--plan", help="A gridplan output directory to edit."),
        out: Path = typer.Option(..., "--out", "-o", help="Output directory for the edited plan."),
        lock: Optional[list[str]] = typer.Option(None, "--lock", help="Lock this grid (repeatable)."),
        unlock: Optional[list[str]] = typer.Option(None, "--unlock", help="Unlock this grid (repeatable)."),
        move_points: Optional[Path] = typer.Option(None, "--move-points",
                                                   help="Households to move: ids (an id column) or polygons."),
        to: Optional[str] = typer.Option(None, "--to", help="The grid the households of --move-points join."),
        merge: Optional[tuple[str, str]] = typer.Option(None, "--merge", help="Merge grid B into grid A."),
        split: Optional[str] = typer.Option(None, "--split", help="Split this grid."),
        k: int = typer.Option(2, "--k", help="Grids --split makes."),
        rebalance: Optional[str] = typer.Option(None, "--rebalance", help="Re-partition this unit's unlocked grids."),
        edits_file: Optional[Path] = typer.Option(None, "--edits", help="A JSON list of edits."),
        force: bool = typer.Option(False, "--force", help="Keep edits that leave grids out of tolerance."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ):
        """Edit a plan (lock, move, merge, split, rebalance) and write the new plan with changes.json."""
        from gridplan.api.cli import _fail, console
        from gridplan.optimize.edit_apply import EditsInvalid, EditsRefused, apply_edits
        from gridplan.optimize.result import read_plan
        edits = build_edits(lock, unlock, move_points, to, merge if merge and merge[0] else None, split, k,
                            rebalance, edits_file, force)
        if not (plan_dir / "plan.gpkg").is_file():
            _fail(1, f"{plan_dir.name}: not a gridplan output directory (no plan.gpkg) — given as --plan")
        plan = read_plan(plan_dir)
        try:
            new = apply_edits(plan, edits)
        except EditsInvalid as e:
            _fail(2 if edits_file is None else 1, f"invalid edits: {e}")
        except EditsRefused as e:
            _fail(1, f"refused, nothing written: {e}")
        new.to_dir(out)
        if not quiet:
            for c in new.changes[len(plan.changes):]:
                console.print(f"• {c.summary}" + (" [yellow](forced)[/]" if c.forced else ""), highlight=False)
            console.print(f"wrote {out} ({new.summary.get('grids')} grids; changes.json lists "
                          f"{len(new.changes)} edit(s))", highlight=False)
