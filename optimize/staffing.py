"""Grid workers: how many per grid (1 or 2) within a budget, and who works which grid.

Workload of a grid (in household-equivalents), unless the plan sets ``--workload`` (then the sum of
that expression over the grid's households)::

    visits   = households + POP_FACTOR * population + weight
    travel   = 1 + minutes_across / TRAVEL_MINUTES
    workload = visits * travel

``population`` falls back to households x persons_per_household where missing; ``weight`` is the sum
of the households' extra workload (elderly living alone ...); ``minutes_across`` is the walking time
across the grid, sqrt(area) / walking speed — a large rural grid costs more time per household.

Allocation: every grid gets one worker; the ``budget - n`` extra workers go to the grids with the
largest workloads. This greedy is exact for "minimise the largest workload per worker": with the
workloads sorted w1 >= w2 >= ... and e = budget - n extra workers, the greedy's maximum is
max(w1 / 2, w_{e+1}); any allocation has only e doubled grids, so one of the e + 1 heaviest keeps a
single worker (maximum >= w_{e+1}), and no grid gets more than two (maximum >= w1 / 2). Ties go to
the lower row (stable), so the result is deterministic.

Roster: a min-cost assignment (``scipy.optimize.linear_sum_assignment``) of workers to slots — one
first slot per grid that only full-time workers may take, one second slot per two-worker grid that
part-time workers take first — minimising straight metres from home to the grid's representative
point (a point inside the grid); each worker takes at most one slot.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from gridplan.optimize.options import PlanOptions

POP_FACTOR = 0.1        # a resident adds a tenth of a household's visits
TRAVEL_MINUTES = 60.0   # an hour's walk across the grid doubles its workload
WALK_M_PER_MIN = 4000.0 / 60.0


def grid_workload(grids: gpd.GeoDataFrame, options: PlanOptions) -> np.ndarray:
    """Workload per grid row (see the module docstring).

    With a user-set ``options.workload`` the grids' ``_workload`` column (the sum of that
    expression over each grid's households, ``optimize.measures``) replaces the formula, so the
    second workers go to the heaviest workload as the plan balanced it.
    """
    n = len(grids)
    if n == 0:
        return np.zeros(0)
    if getattr(options, "workload", None) and "_workload" in grids:
        return pd.to_numeric(grids["_workload"], errors="coerce").fillna(0).to_numpy(float)
    hh = pd.to_numeric(grids["households"], errors="coerce").fillna(0).to_numpy(float) if "households" in grids \
        else np.zeros(n)
    pop = (pd.to_numeric(grids["population"], errors="coerce").to_numpy(float) if "population" in grids
           else np.full(n, np.nan))
    pop = np.where(np.isfinite(pop), pop, hh * options.persons_per_household)
    wt = pd.to_numeric(grids["weight"], errors="coerce").fillna(0).to_numpy(float) if "weight" in grids \
        else np.zeros(n)
    area = grids.geometry.area.to_numpy(float)
    area = np.where(np.isfinite(area), area, 0.0)
    across = np.sqrt(np.maximum(area, 0.0)) / WALK_M_PER_MIN
    visits = hh + POP_FACTOR * np.maximum(pop, 0.0) + np.maximum(wt, 0.0)
    return visits * (1.0 + across / TRAVEL_MINUTES)


def resolve_budget(n_grids: int, population: float, options: PlanOptions,
                   roster_size: int | None = None) -> tuple[int, list[str]]:
    """Decide the total number of workers.

    ``workers_budget``, else the norm ``workers_per_10k`` x population / 10,000 (rounded), else the
    roster's size, else one per grid.

    Returns
    -------
    budget : int
        The workers to allocate: above two per grid it is capped, with a note.
    notes : list of str
        What was changed and why.

    Raises
    ------
    ValueError
        When the budget is below one worker per grid.
    """
    notes: list[str] = []
    if options.workers_budget is not None:
        budget, src = int(options.workers_budget), f"--workers-budget {options.workers_budget}"
    elif options.workers_per_10k is not None:
        budget = int(round(float(population) * options.workers_per_10k / 10_000.0))
        src = (f"the norm of {options.workers_per_10k:g} workers per 10,000 residents "
               f"({float(population):,.0f} residents -> {budget})")
    elif roster_size is not None:
        budget, src = int(roster_size), f"the roster's {roster_size} workers"
    else:
        return int(n_grids), notes
    if budget < n_grids:
        raise ValueError(f"workers budget too small: {src} gives {budget} workers, but the plan has {n_grids} "
                         f"grids and every grid needs at least one worker (need >= {n_grids})")
    if budget > 2 * n_grids:
        notes.append(f"workers budget {budget} from {src} exceeds two per grid; capped at {2 * n_grids}")
        budget = 2 * n_grids
    return budget, notes


def allocate_workers(workload: np.ndarray, budget: int) -> np.ndarray:
    """1 or 2 workers per grid, summing to ``budget``, minimising max(workload / workers)."""
    w = np.asarray(workload, float)
    n = len(w)
    if not n <= budget <= 2 * n:
        raise ValueError(f"budget {budget} must lie between the number of grids ({n}) and twice it ({2 * n})")
    out = np.ones(n, dtype=np.int64)
    extra = budget - n
    if extra:
        order = np.lexsort((np.arange(n), -np.nan_to_num(w, nan=0.0)))
        out[order[:extra]] = 2
    return out


def max_load(workload: np.ndarray, workers: np.ndarray) -> float:
    """Return the largest workload per worker over the grids (0 for no grids)."""
    return float(np.max(np.asarray(workload, float) / np.asarray(workers, float))) if len(workload) else 0.0


FORBIDDEN = 1e12
PRIMARY_BONUS = 1e9      # first slots are filled before any second slot
FULL_ON_SECOND = 1e7     # a full-time worker takes a second slot only when part-timers run out
PART_ON_FIRST = 1e8      # a part-timer holds a grid's first place only when full-timers run out


def assign_roster(grids: gpd.GeoDataFrame, workers_per_grid: np.ndarray, roster: gpd.GeoDataFrame
                  ) -> gpd.GeoDataFrame:
    """Assign named workers to grids.

    Parameters
    ----------
    grids : geopandas.GeoDataFrame
        ``grid_code`` and polygons.
    workers_per_grid : numpy.ndarray
        1 or 2 per grid, in ``grids`` order.
    roster : geopandas.GeoDataFrame
        In the same metric CRS: worker_id, name, role ("full"|"part") and home points.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per roster worker: worker_id, grid_code (None when not needed), role, name, travel_m
        (home to a point inside the grid), slot ("first"|"second"|None), geometry = home.
    """
    n = len(grids)
    wpg = np.asarray(workers_per_grid, dtype=np.int64)
    if len(wpg) != n:
        raise ValueError(f"workers_per_grid has {len(wpg)} entries for {n} grids")
    roles = roster["role"].astype(str).str.strip().str.lower().to_numpy() if "role" in roster \
        else np.full(len(roster), "full")
    bad = [i for i, r in enumerate(roles) if r not in ("full", "part")]
    if bad:
        raise ValueError(f"roster row {bad[0] + 1}: role must be 'full' or 'part', got {roles[bad[0]]!r}")
    # Fewer full-timers than grids is a staffing gap, not a reason to lose the plan: part-timers
    # then hold first places and the caller reports those grids (see ``vacancies``).
    if roster.crs is not None and grids.crs is not None and roster.crs != grids.crs:
        roster = roster.to_crs(grids.crs)
    home = np.column_stack([roster.geometry.x.to_numpy(), roster.geometry.y.to_numpy()])
    cen = grids.geometry.representative_point()
    gxy = np.column_stack([cen.x.to_numpy(), cen.y.to_numpy()])
    slot_grid = np.r_[np.arange(n), np.flatnonzero(wpg >= 2)]
    first = np.r_[np.ones(n, bool), np.zeros(len(slot_grid) - n, bool)]
    dist = np.hypot(home[:, None, 0] - gxy[None, slot_grid, 0], home[:, None, 1] - gxy[None, slot_grid, 1])
    dist = np.where(np.isfinite(dist), dist, 1e8)
    full = (roles == "full")[:, None]
    cost = dist.copy()
    cost = np.where(first[None, :] & ~full, cost + PART_ON_FIRST, cost)
    cost = np.where(~first[None, :] & full, cost + FULL_ON_SECOND, cost)
    cost = np.where(first[None, :], cost - PRIMARY_BONUS, cost)
    ri, ci = linear_sum_assignment(cost)
    grid_code = np.full(len(roster), None, dtype=object)
    slot = np.full(len(roster), None, dtype=object)
    travel = np.full(len(roster), np.nan)
    codes = grids["grid_code"].astype(str).to_numpy()
    for r, c in zip(ri, ci):
        if cost[r, c] >= FORBIDDEN / 2:
            continue
        grid_code[r] = codes[slot_grid[c]]
        slot[r] = "first" if first[c] else "second"
        travel[r] = dist[r, c]
    return gpd.GeoDataFrame({
        "worker_id": roster["worker_id"].astype(str).to_numpy() if "worker_id" in roster
        else [str(i + 1) for i in range(len(roster))],
        "grid_code": grid_code,
        "role": roles,
        "name": roster["name"].astype(str).to_numpy() if "name" in roster else [None] * len(roster),
        "travel_m": np.round(travel, 1),
        "slot": slot,
    }, geometry=roster.geometry.values, crs=roster.crs)


def vacancies(grids: gpd.GeoDataFrame, assigned: gpd.GeoDataFrame) -> tuple[list[str], list[str]]:
    """Grid codes with no worker at all, and grid codes whose first place is held by a part-timer."""
    codes = grids["grid_code"].astype(str)
    first = assigned[assigned["slot"] == "first"]
    staffed = set(first["grid_code"].astype(str))
    part_led = set(first.loc[first["role"] == "part", "grid_code"].astype(str))
    return [c for c in codes if c not in staffed], [c for c in codes if c in part_led]


def staffing_summary(workload: np.ndarray, workers: np.ndarray, budget: int, notes: list[str]) -> dict:
    """Return the summary's ``staffing`` section: budget, workers, two-worker grids, loads per worker, notes."""
    per = np.asarray(workload, float) / np.maximum(np.asarray(workers, float), 1)
    return {"budget": int(budget), "workers": int(np.sum(workers)), "two_worker_grids": int(np.sum(workers == 2)),
            "max_load_per_worker": round(float(per.max()), 2) if len(per) else 0.0,
            "mean_load_per_worker": round(float(per.mean()), 2) if len(per) else 0.0,
            "notes": list(notes)}

