"""What an edited plan carries besides its layers: locks, the code registry, the change log, recounts.

- Locks: ``summary["locked"]`` (sorted grid codes). A locked grid is never changed by a later edit
  or a rebalance.
- Code registry: ``summary["code_registry"]`` = {unit code: {"last": highest grid sequence number
  ever used in the unit, "retired": [codes]}} (the format of ``optimize.codes``). A new grid takes
  the next number; a retired code is never handed out again. A plan without a registry starts one
  from the highest number its grids use.
- Change log: ``Plan.changes``, a list of :class:`Change` records (written as ``changes.json``).
- Recounts: after an edit, each touched unit's grids are recounted from the households layer
  (households, population, deviation from the unit's mean), shapes re-measured, and the units
  layer and the summary figures refreshed.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from gridplan.geo.regrid import grid_metrics
from gridplan.optimize.result import Plan

SEQ_DIGITS = 3
KNOWN_HH_COLUMNS = ("grid_code", "station_id", "minutes", "village_code", "households", "population", "geometry")


class EditError(ValueError):
    """An edit refused: ``reason`` says why in a sentence naming the grids and figures."""

    def __init__(self, reason: str, grids: tuple[str, ...] = (), field: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.grids = tuple(grids)
        self.field = field


def refuse_geometry_failures(fn):
    """Turn a geometry-engine or partition failure inside edit ``fn`` into an :class:`EditError` (plan unchanged).

    Overlays of nearly coincident edges can make GEOS give up (a side-location conflict); the edit
    is then refused with that reason rather than crashing the caller.
    """
    import functools

    import shapely.errors

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except shapely.errors.GEOSException as e:
            raise EditError(f"the {fn.__name__} edit was refused: the geometry engine could not overlay these "
                            f"grids ({e})") from e
        except RuntimeError as e:       # every partition model failed on the region (optimize.partition)
            raise EditError(f"the {fn.__name__} edit was refused: no model could partition the region ({e})") from e
    return wrapped


@dataclass(frozen=True)
class Change:
    """One edit in a plan's change log."""

    op: str                                  # lock | unlock | move | merge | split | rebalance
    args: dict                               # the edit as given (JSON-able)
    summary: str                             # one sentence for the planner
    households_moved: int = 0                # households whose grid code changed
    created: tuple[str, ...] = ()            # grid codes created
    retired: tuple[str, ...] = ()            # grid codes retired (never reused)
    reshaped: tuple[str, ...] = ()           # surviving grids whose polygon changed
    forced: bool = False                     # kept despite a balance problem (``force=True``)
    problems: tuple[str, ...] = ()           # balance problems accepted (forced) or noted

    def as_dict(self) -> dict:
        """Return the record as a plain JSON-able dict."""
        d = asdict(self)
        for k in ("created", "retired", "reshaped", "problems"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Change":
        """Build a record from ``as_dict``'s output (unknown keys ignored)."""
        names = set(cls.__dataclass_fields__)
        d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**d)


@dataclass
class Work:
    """A mutable working copy of a plan during one edit (the input plan is never touched)."""

    grids: pd.DataFrame
    households: pd.DataFrame
    units: pd.DataFrame
    workers: pd.DataFrame
    summary: dict
    base: Plan
    touched_units: set = field(default_factory=set)
    reshaped: set = field(default_factory=set)

    @classmethod
    def of(cls, plan: Plan) -> "Work":
        """Copy the layers an edit may change (deep enough that the input plan stays as it was)."""
        import copy
        summary = copy.deepcopy(plan.summary)
        # the registry is written down before any code can retire, so a retired top number stays used
        summary["code_registry"] = dict(sorted(registry(summary, plan.grids).items()))
        return cls(plan.grids.copy(), plan.households.copy(), plan.units.copy(), plan.workers.copy(),
                   summary, plan)


def locked_codes(plan: Plan) -> set[str]:
    """Return the grid codes locked in ``plan``."""
    return set(plan.summary.get("locked", []) or [])


def unit_of_code(code: str) -> str:
    """Return the unit part of a grid code (all but the sequence digits)."""
    return str(code)[:-SEQ_DIGITS]


def seq_of_code(code: str) -> int:
    """Return the sequence number of a grid code (its last digits), 0 if they are not digits."""
    tail = str(code)[-SEQ_DIGITS:]
    return int(tail) if re.fullmatch(r"\d+", tail) else 0


def registry(summary: dict, grids: pd.DataFrame) -> dict[str, dict]:
    """Return the code registry, ``{unit: {"last": highest number used, "retired": [codes]}}`` (``optimize.codes``).

    Started from the grids when absent; a plan written before codes were registered (a bare
    number per unit) is read as that number with no retired codes.
    """
    reg = {}
    for k, v in (summary.get("code_registry") or {}).items():
        e = v if isinstance(v, dict) else {"last": v}
        reg[str(k)] = {"last": int(e.get("last", 0)), "retired": sorted({str(c) for c in e.get("retired", [])})}
    for unit, codes in grids.groupby("village_code")["grid_code"]:
        top = max((seq_of_code(c) for c in codes), default=0)
        e = reg.setdefault(str(unit), {"last": 0, "retired": []})
        e["last"] = max(e["last"], top)
    return reg


def retire(work: Work, codes) -> None:
    """Record ``codes`` as retired in their units' registry entries (never handed out again)."""
    reg = registry(work.summary, work.grids)
    for c in codes:
        e = reg.setdefault(unit_of_code(c), {"last": 0, "retired": []})
        e["retired"] = sorted(set(e["retired"]) | {str(c)})
        e["last"] = max(e["last"], seq_of_code(c))
    work.summary["code_registry"] = dict(sorted(reg.items()))


def new_codes(work: Work, unit: str, n: int) -> list[str]:
    """Hand out ``n`` new grid codes in ``unit``: the next numbers never used there (registry updated)."""
    reg = registry(work.summary, work.grids)
    top = reg.get(unit, {"last": 0})["last"]
    if top + n > 10 ** SEQ_DIGITS - 1:
        raise EditError(f"unit {unit} has used grid numbers up to {top:03d}: {n} more do not fit "
                        f"a {SEQ_DIGITS}-digit sequence")
    reg.setdefault(unit, {"last": 0, "retired": []})["last"] = top + n
    work.summary["code_registry"] = dict(sorted(reg.items()))
    return [f"{unit}{top + i:0{SEQ_DIGITS}d}" for i in range(1, n + 1)]


def household_id_column(households: pd.DataFrame) -> str:
    """Return the households layer's input-id column (the first column the contract does not name)."""
    for c in households.columns:
        if c not in KNOWN_HH_COLUMNS:
            return c
    return "id"


def grid_row(work: Work, code: str, what: str = "grid") -> int:
    """Return the row index of grid ``code``; EditError when there is none."""
    hit = np.flatnonzero(work.grids["grid_code"].astype(str).to_numpy() == str(code))
    if not len(hit):
        raise EditError(f"{what} {code}: no such grid in the plan", (str(code),),
                        field=None if what == "grid" else what)
    return int(work.grids.index[hit[0]])


def refuse_locked(work: Work, codes, what: str) -> None:
    """Raise EditError when any of ``codes`` is locked."""
    locked = sorted(locked_codes(work.base) & {str(c) for c in codes})
    if locked:
        raise EditError(f"{what}: grid {', '.join(locked)} is locked (unlock it first)", tuple(locked))


def _population_per_household(work: Work) -> pd.Series:
    """Return the population per household of each grid before the edit (to carry population with households)."""
    g = work.base.grids
    h = g["households"].astype(float).replace(0, np.nan)
    return pd.Series((g["population"].astype(float) / h).fillna(0.0).to_numpy(), index=g["grid_code"].astype(str))


def recount(work: Work, units) -> None:
    """Recount households and population of every grid of ``units`` from the households layer.

    Population comes from the households layer's ``population`` column when it has one; otherwise
    each household carries its old grid's population per household (the change record says so).
    Deviations are from each unit's mean households per grid.
    """
    units = {str(u) for u in units}
    g, hh = work.grids, work.households
    sel_g = g["village_code"].astype(str).isin(units).to_numpy()
    codes = g.loc[sel_g, "grid_code"].astype(str)
    lab = hh["grid_code"].astype(object).where(hh["grid_code"].notna(), None)
    in_units = lab.isin(set(codes)).to_numpy()
    counts = hh.loc[in_units, "households"].astype(float).groupby(lab[in_units]).sum()
    if "population" in hh.columns:
        pop = hh.loc[in_units, "population"].astype(float).groupby(lab[in_units]).sum()
    else:
        old = hh.loc[in_units, "_old_grid"] if "_old_grid" in hh.columns else lab[in_units]
        ratio = old.astype(str).map(_population_per_household(work)).fillna(0.0)
        pop = (hh.loc[in_units, "households"].astype(float) * ratio).groupby(lab[in_units]).sum()
    h = codes.map(counts).fillna(0.0).to_numpy()
    g.loc[sel_g, "households"] = np.rint(h).astype(int)
    g.loc[sel_g, "population"] = np.rint(codes.map(pop).fillna(0.0).to_numpy()).astype(int)
    mean = g.loc[sel_g].groupby("village_code")["households"].transform("mean").astype(float).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        g.loc[sel_g, "deviation"] = np.where(mean > 0, (h - mean) / mean, 0.0)
    work.touched_units |= units


def remeasure(work: Work, codes) -> None:
    """Re-measure area and Polsby-Popper of the grids ``codes`` (their polygons changed)."""
    codes = {str(c) for c in codes}
    sel = work.grids["grid_code"].astype(str).isin(codes).to_numpy()
    if sel.any():
        area, pp = grid_metrics(work.grids.geometry.values[sel])
        work.grids.loc[sel, "area_km2"] = area
        work.grids.loc[sel, "polsby_popper"] = pp
    work.reshaped |= codes


def refresh_units(work: Work) -> None:
    """Update the units layer's grid and worker counts of the touched units."""
    u, g = work.units, work.grids
    if not len(u) or "village_code" not in u.columns:
        return
    n = g.groupby("village_code").size()
    w = g.groupby("village_code")["workers"].sum()
    code = u["village_code"].astype(str)
    touched = code.isin(work.touched_units).to_numpy()
    u.loc[touched, "grids"] = code[touched].map(n).fillna(0).astype(int).to_numpy()
    u.loc[touched, "workers"] = code[touched].map(w).fillna(0).astype(int).to_numpy()


def finish(work: Work, change: Change, problems: list[dict] = ()) -> Plan:
    """Build the new Plan from the working copy: sorted grids, refreshed units and summary, the log."""
    from gridplan.optimize.edit_balance import refresh_summary
    work.grids = work.grids.sort_values("grid_code", kind="stable").reset_index(drop=True)
    if "_old_grid" in work.households.columns:
        work.households = work.households.drop(columns="_old_grid")
    if change.retired:
        retire(work, change.retired)
    refresh_units(work)
    refresh_summary(work, list(problems))
    base = work.base
    from gridplan.optimize.edit_micro import refresh_micro
    touched = {str(c) for c in (*work.reshaped, *change.created, *change.retired)}
    micro, work.households = refresh_micro(base.micro_grids, work.grids, work.households, work.summary, touched)
    return replace(base, grids=work.grids, households=work.households, units=work.units, workers=work.workers,
                   summary=work.summary, changes=[*base.changes, change], micro_grids=micro)


def plan_tolerance(plan: Plan) -> float:
    """Return the plan's balance tolerance (options, else summary, else the default 0.10)."""
    opts = plan.options
    if opts is not None and getattr(opts, "tolerance", None):
        return float(opts.tolerance)
    s = plan.summary
    return float((s.get("options") or {}).get("tolerance") or (s.get("balance") or {}).get("tolerance") or 0.10)


def plan_target(plan: Plan) -> float:
    """Return the plan's target households per grid (options, else summary, else 300)."""
    opts = plan.options
    if opts is not None and getattr(opts, "target_households", None):
        return float(opts.target_households)
    return float((plan.summary.get("options") or {}).get("target_households") or 300)
