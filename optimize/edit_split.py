"""Edits that re-partition: split one grid into k, rebalance a unit around its locked grids.

Both run the planner's own partition (``optimize.partition.partition_unit``) on the region they
replace — the grid, or the union of the unit's unlocked grids — in a metric CRS, and rebuild the
grids from its household labels in WGS 84 on that exact region (``geo.regrid.parts_from_labels``:
Voronoi cells of the households), so every other grid keeps its polygon bit for bit and the unit
stays tiled. The grids' edges are therefore the cells' (stepped), not the model's straight ones. Households are labelled with the grid
polygon holding them and recounted. Codes: ``split`` leaves the original code on the part holding
most of its households; ``rebalance`` gives each new grid the old code whose households it keeps
most of (an optimal matching), so the fewest households change code; other grids get the next
numbers never used in the unit, and codes left over retire.
"""
from __future__ import annotations

import numpy as np
import shapely

from gridplan.geo.grids import order_for_codes
from gridplan.geo.regrid import label_points, metric_reprojectors, parts_from_labels
from gridplan.optimize.edit_balance import judge
from gridplan.optimize.edit_state import (
    Change,
    EditError,
    Work,
    finish,
    grid_row,
    locked_codes,
    new_codes,
    plan_target,
    recount,
    refuse_geometry_failures,
    refuse_locked,
    remeasure,
)
from gridplan.optimize.result import Plan


def partition_options(plan: Plan):
    """Return the PlanOptions to re-partition with: the plan's own, or rebuilt from its summary."""
    from gridplan.optimize.options import OptionsError, PlanOptions, option_names
    if plan.options is not None:
        return plan.options
    given = {k: v for k, v in (plan.summary.get("options") or {}).items()
             if k in ("tolerance", "seed", "time_limit_per_unit", "target_households") and v is not None}
    try:
        return PlanOptions.from_mapping({k: v for k, v in given.items() if k in option_names()})
    except (OptionsError, ValueError):
        return PlanOptions()


def repartition(region, xy: np.ndarray, households: np.ndarray, k: int, options, allow_multipart: bool | None = None):
    """Partition ``region`` (WGS 84) into ``k`` grids holding the households at ``xy`` (WGS 84).

    Parameters
    ----------
    region : shapely geometry
        The exact area to tile.
    xy : (n, 2) array
        Household rows (lon, lat).
    households : (n,) array of int
        Households of each row.
    k : int
        Grids wanted.
    options : PlanOptions
        Tolerance, seed and the deterministic per-unit budget.
    allow_multipart : bool, optional
        Whether a grid may come out in pieces (default: when ``region`` is in pieces itself). A
        rebalance passes whether any grid it replaces was: free grids around a locked one that cuts
        the unit in two are single Polygons, and so must their replacements be.

    Returns
    -------
    (polygons, labels, partition)
        WGS 84 polygons tiling ``region`` exactly, the grid of each row, the ``UnitPartition``.
    """
    from gridplan.optimize.partition import partition_unit
    fwd = metric_reprojectors(region.bounds)[0]
    h = np.asarray(households, np.int64)
    part = partition_unit(fwd.geom(region), fwd.xy(xy), h, max(float(h.sum()), 1.0) / k, options)
    # the grids are rebuilt here, in lon/lat, from the partition's labels: Voronoi cells of the
    # households clipped to the exact region, so nothing is carried across coordinate systems
    lab = _same_place_same_label(xy, np.asarray(part.labels, np.int64))
    polys = parts_from_labels(region, xy, lab, part.k)
    multipart = region.geom_type != "Polygon" if allow_multipart is None else bool(allow_multipart)
    bad = [i for i, p in enumerate(polys) if p.is_empty or (p.geom_type != "Polygon" and not multipart)]
    if bad:
        raise EditError(f"the re-partition gave {len(bad)} grid(s) in pieces or empty; nothing was changed")
    labels = label_points(polys, xy, prefer=lab) if len(xy) else np.zeros(0, np.int64)
    return polys, labels, part


def _same_place_same_label(xy: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Give rows at one location the label of the first of them (one place lies in one grid)."""
    if not len(xy):
        return labels
    _, first, inv = np.unique(xy, axis=0, return_index=True, return_inverse=True)
    return labels[first][inv.reshape(-1)]


def _rows_of(work: Work, codes) -> np.ndarray:
    return work.households["grid_code"].astype(str).isin({str(c) for c in codes}).to_numpy()


def _xy(work: Work, rows: np.ndarray) -> np.ndarray:
    g = work.households.geometry.values[rows]
    return np.column_stack([shapely.get_x(g), shapely.get_y(g)])


def _new_rows(work: Work, template: int, codes: list[str], polys: list) -> None:
    """Append grid rows (copies of row ``template`` with new codes, polygons and one worker)."""
    import pandas as pd
    g = work.grids
    add = g.loc[[template] * len(codes)].copy()
    add["grid_code"] = codes
    add["workers"] = 1
    add = add.set_geometry(list(polys), crs=g.crs)
    work.grids = pd.concat([g, add], ignore_index=True)


@refuse_geometry_failures
def split(plan: Plan, code: str, k: int = 2, force: bool = False) -> Plan:
    """Return a new plan where grid ``code`` is split into ``k`` balanced, contiguous grids.

    Parameters
    ----------
    plan : Plan
        The plan to edit.
    code : str
        The grid to split (not locked).
    k : int
        Number of grids it becomes (≥ 2).
    force : bool
        Keep the edit even if it leaves grids of the unit out of tolerance.

    Returns
    -------
    Plan
        The part holding most of the grid's households keeps ``code``; the others get the next
        numbers never used in the unit.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 2:
        raise EditError(f"k must be an integer >= 2, got {k!r}", field="k")
    work = Work.of(plan)
    code = str(code)
    r = grid_row(work, code, "code")
    refuse_locked(work, [code], "split")
    unit = str(work.grids.at[r, "village_code"])
    rows = _rows_of(work, [code])
    xy = _xy(work, rows)
    if len(np.unique(xy, axis=0)) < k:
        raise EditError(f"grid {code} has {len(np.unique(xy, axis=0))} household location(s): it cannot be "
                        f"split into {k} grids with households", (code,), field="k")
    region = work.grids.geometry.values[work.grids.index.get_loc(r)]
    h = work.households.loc[rows, "households"].to_numpy(np.int64)
    polys, labels, part = repartition(region, xy, h, int(k), partition_options(plan))
    if len(polys) != k:
        raise EditError(f"grid {code} could only be split into {len(polys)} grids", (code,), field="k")
    per = np.bincount(labels, weights=h, minlength=k)
    order = order_for_codes(polys)
    keep = int(max(order, key=lambda i: per[i]))           # most households; code order breaks ties
    others = [int(i) for i in order if i != keep]
    fresh = new_codes(work, unit, len(others))
    work.grids.loc[r, "geometry"] = polys[keep]
    _new_rows(work, r, fresh, [polys[i] for i in others])
    names = np.empty(k, dtype=object)
    names[keep] = code
    names[others] = fresh
    hh_idx = np.flatnonzero(rows)
    work.households.loc[work.households.index[hh_idx], "grid_code"] = names[labels]
    recount(work, {unit})
    remeasure(work, [code, *fresh])
    problems = judge(work, force)
    moved = int(h[labels != keep].sum())
    change = Change("split", {"code": code, "k": int(k), "force": force},
                    f"split grid {code} into {k}: {code} keeps {int(per[keep])} household(s), new "
                    f"{', '.join(fresh)} take {moved}", households_moved=moved, created=tuple(fresh),
                    reshaped=(code,), forced=any(p["kind"] == "edit_forced_imbalance" for p in problems),
                    problems=tuple(p["message"] for p in problems))
    return finish(work, change, problems)


def _match_codes(old_codes: list[str], old_lab: np.ndarray, new_lab: np.ndarray, h: np.ndarray, k: int):
    """Give new grids old codes so the most households keep theirs (optimal assignment)."""
    from scipy.optimize import linear_sum_assignment
    col = {c: j for j, c in enumerate(old_codes)}
    overlap = np.zeros((k, len(old_codes)))
    np.add.at(overlap, (new_lab, np.array([col[c] for c in old_lab], dtype=np.int64)), h)
    ri, ci = linear_sum_assignment(-overlap)
    names: dict[int, str] = {}
    for i, j in zip(ri, ci):
        if overlap[i, j] > 0:
            names[int(i)] = old_codes[j]
    return names


def _free_grids(work: Work, unit: str) -> tuple[list[str], list[str], list[int]]:
    """Return the unit's locked codes, its unlocked codes and their grid rows (EditError if none)."""
    g = work.grids
    in_unit = g["village_code"].astype(str).to_numpy() == unit
    if not in_unit.any():
        raise EditError(f"unit {unit}: no such unit in the plan", field="unit")
    codes = g.loc[in_unit, "grid_code"].astype(str).tolist()
    locked = sorted(set(codes) & locked_codes(work.base))
    free = [c for c in codes if c not in locked]
    if not free:
        raise EditError(f"unit {unit}: every grid is locked ({', '.join(locked)})", tuple(locked), field="unit")
    rows = [int(g.index[i]) for i in np.flatnonzero(in_unit) if str(g.iloc[i]["grid_code"]) in free]
    return locked, free, rows


def _place(work: Work, unit: str, free_rows: list[int], polys: list, labels: np.ndarray, old_lab: np.ndarray,
           h: np.ndarray):
    """Put the re-partitioned grids in place of the free ones: codes matched, new ones numbered, rest retired.

    Returns (new codes, retired codes, reshaped codes, whether nothing changed, each row's new code).
    """
    g = work.grids
    free = [str(g.at[r, "grid_code"]) for r in free_rows]
    names = _match_codes(free, old_lab, labels, h, len(polys))
    unnamed = [int(i) for i in order_for_codes(polys) if int(i) not in names]
    fresh = new_codes(work, unit, len(unnamed))
    names.update(zip(unnamed, fresh))
    retired = sorted(set(free) - set(names.values()))
    by_code = dict(zip(free, free_rows))
    # the same grids as before (every household keeps its code): keep their polygons as they are
    same = not fresh and not retired and all(names[int(i)] == c for i, c in zip(labels, old_lab))
    reshaped = []
    for i, c in names.items():
        if c in by_code and not same:
            if not shapely.equals_exact(g.geometry.values[g.index.get_loc(by_code[c])], polys[i], 0.0):
                reshaped.append(c)
            g.loc[by_code[c], "geometry"] = polys[i]
    work.grids = g.drop(index=[by_code[c] for c in retired])
    _new_rows(work, free_rows[0], fresh, [polys[i] for i in unnamed])
    return fresh, retired, reshaped, same, np.array([names[int(i)] for i in labels], dtype=object)


def _band_options(options, total: int, k_unit: int, free_total: int, k_free: int):
    """Options whose tolerance around the free grids' mean keeps them inside the unit's band.

    With locked grids the free grids' mean (free households / free grids) differs from the unit's
    mean; the partition must aim at the part of its band that lies inside the unit's.
    """
    tol = float(options.tolerance)
    mean_u, mean_f = total / max(k_unit, 1), free_total / max(k_free, 1)
    if mean_f <= 0 or abs(mean_f - mean_u) < 1e-9:
        return options
    inner = min(1 - mean_u * (1 - tol) / mean_f, mean_u * (1 + tol) / mean_f - 1)
    return options.with_(tolerance=float(min(tol, max(inner, 0.01))))


@refuse_geometry_failures
def rebalance(plan: Plan, unit: str, k: int | None = None, target: float | None = None,
              force: bool = False) -> Plan:
    """Return a new plan where the unlocked grids of ``unit`` are re-partitioned (locked grids stay).

    Parameters
    ----------
    plan : Plan
        The plan to edit.
    unit : str
        The unit's code.
    k : int, optional
        Grids for the unlocked part; default choose_k(unit households, target) − locked grids.
    target : float, optional
        Households per grid (default: the plan's target).
    force : bool
        Keep the result even if it leaves grids out of tolerance without a proof.

    Returns
    -------
    Plan
    """
    from gridplan.optimize.partition import choose_k
    work = Work.of(plan)
    unit = str(unit)
    g = work.grids
    locked, free, free_rows = _free_grids(work, unit)
    total = int(work.households.loc[work.households["village_code"].astype(str) == unit, "households"].sum())
    if k is None:
        k = max(1, choose_k(total, float(target or plan_target(plan))) - len(locked))
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise EditError(f"k must be an integer >= 1, got {k!r}", field="k")
    rows = _rows_of(work, free)
    xy = _xy(work, rows)
    h = work.households.loc[rows, "households"].to_numpy(np.int64)
    free_geoms = np.asarray([g.geometry.values[g.index.get_loc(r)] for r in free_rows], dtype=object)
    region = shapely.union_all(free_geoms)
    opts = _band_options(partition_options(plan), total, len(locked) + int(k), int(h.sum()), int(k))
    was_multi = bool((shapely.get_type_id(free_geoms) != shapely.GeometryType.POLYGON).any())
    polys, labels, part = repartition(region, xy, h, int(k), opts, allow_multipart=was_multi)
    k = len(polys)
    old_lab = work.households.loc[rows, "grid_code"].astype(str).to_numpy()
    fresh, retired, reshaped, same, new_lab = _place(work, unit, free_rows, polys, labels, old_lab, h)
    work.households.loc[work.households.index[np.flatnonzero(rows)], "grid_code"] = new_lab
    if len(work.workers) and "grid_code" in work.workers.columns:
        work.workers.loc[work.workers["grid_code"].astype(str).isin(retired), "grid_code"] = None
    recount(work, {unit})
    remeasure(work, reshaped + fresh)
    problems = judge(work, force)
    moved = int(h[new_lab != old_lab].sum())
    change = Change("rebalance", {"unit": unit, "k": int(k), "force": force},
                    f"rebalanced unit {unit} into {k} unlocked grid(s) around {len(locked)} locked: "
                    + ("the partition gives the same grids, nothing changed" if same else
                       f"{moved} household(s) change grid (model {part.status}, balance {part.balance})"),
                    households_moved=moved, created=tuple(fresh), retired=tuple(retired),
                    reshaped=tuple(sorted(reshaped)),
                    forced=any(p["kind"] == "edit_forced_imbalance" for p in problems),
                    problems=tuple(p["message"] for p in problems))
    return finish(work, change, problems)
