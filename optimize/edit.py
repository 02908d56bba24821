"""Hand edits of a plan: lock, move households, merge two grids (split and rebalance: ``edit_split``).

Every edit takes a :class:`~optimize.result.Plan` and returns a new one (the input is never
changed) that keeps the plan's rules true:

- tiling and nesting: grids of a unit still cover it exactly once; only the grids an edit names
  change shape (``geo.regrid``), every other grid keeps its polygon bit for bit;
- contiguity: an edit that would leave a grid in pieces is refused;
- true counts: households and population of each touched grid are recounted from the households
  layer, and each household lies in the grid its row names;
- stable codes: surviving grids keep their codes, new grids take the next number never used in the
  unit (``summary["code_registry"]``), retired codes are never handed out again;
- certified balance: see ``optimize.edit_balance`` (refused with the reason unless forced);
- locks: a locked grid is never changed by a later edit.

Each edit appends a :class:`~optimize.edit_state.Change` to ``Plan.changes``.
"""
from __future__ import annotations

import numpy as np
import shapely

from gridplan.geo.regrid import RegridError, give_households, merge_polygons
from gridplan.optimize.edit_balance import judge
from gridplan.optimize.edit_state import (
    Change,
    EditError,
    Work,
    finish,
    grid_row,
    household_id_column,
    recount,
    refuse_geometry_failures,
    refuse_locked,
    remeasure,
)
from gridplan.optimize.result import Plan

MAX_WORKERS_PER_GRID = 2


def lock(plan: Plan, codes, unlock: bool = False) -> Plan:
    """Return a new plan with the grids ``codes`` locked (or unlocked).

    Parameters
    ----------
    plan : Plan
        The plan to edit.
    codes : iterable of str
        Grid codes of the plan.
    unlock : bool
        Remove the locks instead.

    Returns
    -------
    Plan
    """
    work = Work.of(plan)
    codes = [str(c) for c in ([codes] if isinstance(codes, str) else codes)]
    if not codes:
        raise EditError("no grid code given", field="codes")
    for c in codes:
        grid_row(work, c)
    locked = set(work.summary.get("locked") or [])
    locked = locked - set(codes) if unlock else locked | set(codes)
    work.summary["locked"] = sorted(locked)
    verb = "unlocked" if unlock else "locked"
    change = Change("unlock" if unlock else "lock", {"codes": codes},
                    f"{verb} {len(codes)} grid{'s' if len(codes) != 1 else ''}: {', '.join(codes)}")
    return finish(work, change)


def _selected(work: Work, points, polygon) -> np.ndarray:
    """Boolean mask of the household rows named by id (``points``) or lying in ``polygon``."""
    hh = work.households
    if (points is None) == (polygon is None):
        raise EditError("give either points (household ids) or a polygon", field="points")
    if points is not None:
        col = household_id_column(hh)
        ids = hh[col].astype(str).to_numpy()
        want = {str(p) for p in points}
        unknown = sorted(want - set(ids))
        if unknown:
            raise EditError(f"{len(unknown)} household id(s) not in the plan's households layer "
                            f"(column {col}): {', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}",
                            field="points")
        return np.isin(ids, list(want))
    geom = _polygon(polygon)
    return shapely.covers(geom, hh.geometry.values)


def _polygon(polygon):
    """Return a shapely polygon from a GeoJSON geometry/Feature dict or a shapely geometry."""
    if isinstance(polygon, shapely.Geometry):
        geom = polygon
    else:
        try:
            from shapely.geometry import shape
            geom = shape(polygon.get("geometry", polygon) if isinstance(polygon, dict) else polygon)
        except Exception as e:   # hostile input: any malformed GeoJSON is a refusal, not a crash
            raise EditError(f"polygon: not a GeoJSON Polygon or MultiPolygon ({e})", field="polygon") from None
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
        raise EditError(f"polygon: a Polygon or MultiPolygon is needed, got {geom.geom_type}", field="polygon")
    return geom if geom.is_valid else shapely.make_valid(geom)


def _sources(work: Work, sel: np.ndarray, to: str, unit: str) -> list[str]:
    """Return the grids the selected households leave (refusing households of other units or of no grid)."""
    hh = work.households
    lab = hh["grid_code"]
    if lab[sel].isna().any():
        raise EditError(f"{int(lab[sel].isna().sum())} selected household row(s) lie outside every unit",
                        field="points")
    other = sel & (hh["village_code"].astype(str).to_numpy() != unit)
    if other.any():
        ids = hh.loc[other, household_id_column(hh)].astype(str).tolist()[:5]
        raise EditError(f"{int(other.sum())} selected household row(s) lie in another unit than grid {to} "
                        f"(unit {unit}), e.g. {', '.join(ids)}: grids never cross a unit's boundary", (to,))
    return sorted(set(lab[sel].astype(str)))


def _unique_xy(xy: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(xy, float).reshape(-1, 2), axis=0)


@refuse_geometry_failures
def move(plan: Plan, points=None, polygon=None, to: str | None = None, force: bool = False) -> Plan:
    """Return a new plan where the chosen households (and their land) belong to grid ``to``.

    Parameters
    ----------
    plan : Plan
        The plan to edit.
    points : iterable of household ids, optional
        Ids from the households layer's id column.
    polygon : GeoJSON dict or shapely geometry, optional
        Every household inside it (WGS 84) is chosen.
    to : str
        The receiving grid's code (same unit as the households).
    force : bool
        Keep the edit even if it leaves grids out of tolerance (recorded in ``problems``).

    Returns
    -------
    Plan

    Raises
    ------
    EditError
        Unknown ids or grid, locked grids, households of another unit, a grid that would fall
        apart or not touch its new land, or balance (see ``optimize.edit_balance``).
    """
    if to is None:
        raise EditError("the receiving grid (to) is missing", field="to")
    work = Work.of(plan)
    to = str(to)
    t = grid_row(work, to, "to")
    unit = str(work.grids.at[t, "village_code"])
    refuse_locked(work, [to], "move")
    hh = work.households
    sel = _selected(work, points, polygon) & (hh["grid_code"].astype(str).to_numpy() != to)
    if not sel.any():
        raise EditError(f"no household outside grid {to} was chosen", (to,), field="points")
    sources = _sources(work, sel, to, unit)
    refuse_locked(work, sources, "move")
    xy = np.column_stack([hh.geometry.x.to_numpy(), hh.geometry.y.to_numpy()])
    lab = hh["grid_code"].astype(str).to_numpy()
    moved_rows = np.zeros(len(hh), bool)
    for s in sources:
        r = grid_row(work, s)
        rows = lab == s
        moved_xy = _unique_xy(xy[rows & sel])
        # rows at a chosen location move with it: one place cannot lie in two grids
        at_moved = rows & _rows_at(xy, moved_xy)
        kept_xy = _unique_xy(xy[rows & ~at_moved])
        try:
            new_s, new_t = give_households(work.grids.geometry.values[work.grids.index.get_loc(r)],
                                           work.grids.geometry.values[work.grids.index.get_loc(t)], moved_xy, kept_xy)
        except RegridError as e:
            raise EditError(f"moving {int(hh.loc[rows & sel, 'households'].sum())} household(s) from grid {s} "
                            f"to grid {to}: {e}", (s, to)) from None
        work.grids.loc[r, "geometry"] = new_s
        work.grids.loc[t, "geometry"] = new_t
        moved_rows |= at_moved
    _relabel(work, moved_rows, to)
    _check_cover(work, [to, *sources])
    recount(work, {unit})
    remeasure(work, [to, *sources])
    problems = judge(work, force)
    n = int(hh.loc[moved_rows, "households"].sum())
    change = Change("move", {"points": None if points is None else [str(p) for p in points],
                             "polygon": None if polygon is None else _geojson(polygon), "to": to, "force": force},
                    f"moved {n} household(s) from {', '.join(sources)} to {to}", households_moved=n,
                    reshaped=tuple(sorted({to, *sources})), forced=any(p["kind"] == "edit_forced_imbalance"
                                                                        for p in problems),
                    problems=tuple(p["message"] for p in problems))
    return finish(work, change, problems)


def _geojson(polygon) -> dict:
    return shapely.geometry.mapping(_polygon(polygon))


def _rows_at(xy: np.ndarray, places: np.ndarray) -> np.ndarray:
    """Mask of rows whose coordinates equal one of ``places`` exactly."""
    if not len(places):
        return np.zeros(len(xy), bool)
    keys = {(float(a), float(b)) for a, b in places}
    return np.fromiter(((float(a), float(b)) in keys for a, b in xy), bool, count=len(xy))


def _relabel(work: Work, rows: np.ndarray, to: str) -> None:
    """Give the household ``rows`` grid ``to`` (keeping their old grid to carry population if needed)."""
    hh = work.households
    if "population" not in hh.columns and "_old_grid" not in hh.columns:
        hh["_old_grid"] = hh["grid_code"]
    hh.loc[rows, "grid_code"] = to


def _check_cover(work: Work, codes) -> None:
    """Refuse when a household of the grids ``codes`` does not lie in its grid's polygon."""
    hh, g = work.households, work.grids
    for c in codes:
        rows = hh["grid_code"].astype(str).to_numpy() == c
        if not rows.any():
            continue
        poly = g.geometry.values[g.index.get_loc(grid_row(work, c))]
        ok = shapely.covers(poly, hh.geometry.values[rows])
        if not ok.all():
            raise EditError(f"grid {c}: {int((~ok).sum())} household row(s) would lie outside their grid's "
                            "polygon after the edit (the geometry could not follow); nothing was changed", (c,))


@refuse_geometry_failures
def merge_grids(plan: Plan, a: str, b: str, force: bool = False) -> Plan:
    """Return a new plan where grid ``b`` is merged into grid ``a`` (``a`` keeps its code; ``b`` retires).

    Parameters
    ----------
    plan : Plan
        The plan to edit.
    a, b : str
        Two grids of one unit sharing an edge.
    force : bool
        Keep the edit even if it leaves grids out of tolerance (recorded in ``problems``).

    Returns
    -------
    Plan

    Raises
    ------
    EditError
        Unknown or locked grids, grids of different units or not sharing an edge, or balance.
    """
    work = Work.of(plan)
    a, b = str(a), str(b)
    if a == b:
        raise EditError(f"merge: a and b are the same grid {a}", (a,), field="b")
    ra, rb = grid_row(work, a, "a"), grid_row(work, b, "b")
    g = work.grids
    unit = str(g.at[ra, "village_code"])
    if str(g.at[rb, "village_code"]) != unit:
        raise EditError(f"merge: grid {a} is in unit {unit} and grid {b} in unit {g.at[rb, 'village_code']}: "
                        "grids never cross a unit's boundary", (a, b))
    refuse_locked(work, [a, b], "merge")
    try:
        u = merge_polygons(g.geometry.values[g.index.get_loc(ra)], g.geometry.values[g.index.get_loc(rb)])
    except RegridError as e:
        raise EditError(f"merge {a} and {b}: {e}", (a, b)) from None
    g.loc[ra, "geometry"] = u
    g.loc[ra, "workers"] = min(MAX_WORKERS_PER_GRID, int(g.at[ra, "workers"]) + int(g.at[rb, "workers"]))
    work.grids = g.drop(index=rb)
    rows = work.households["grid_code"].astype(str).to_numpy() == b
    _relabel(work, rows, a)
    if len(work.workers) and "grid_code" in work.workers.columns:
        work.workers.loc[work.workers["grid_code"].astype(str) == b, "grid_code"] = a
    recount(work, {unit})
    remeasure(work, [a])
    problems = judge(work, force)
    n = int(work.households.loc[rows, "households"].sum())
    change = Change("merge", {"a": a, "b": b, "force": force},
                    f"merged grid {b} into {a} ({n} household(s) now in {a}; code {b} retired)",
                    households_moved=n, retired=(b,), reshaped=(a,),
                    forced=any(p["kind"] == "edit_forced_imbalance" for p in problems),
                    problems=tuple(p["message"] for p in problems))
    return finish(work, change, problems)
