"""Balance after an edit: the verdict on each touched unit, and the summary figures recomputed.

An edit may leave a grid outside the tolerance only when

- the unit was already out of it and the edit does not make its largest deviation worse, or
- the tolerance is proven unreachable for the unit's household rows and grid count
  (``optimize.certify``: "certified"), or
- the planner forces it (``force=True``): the plan's ``problems`` then say so, naming the grids.

Otherwise the edit is refused with an :class:`~optimize.edit_state.EditError` naming the grids, their
households, the unit's mean and the tolerance.
"""
from __future__ import annotations

import numpy as np

from gridplan.optimize.edit_state import EditError, Work, plan_tolerance
from gridplan.optimize.summary import EPS, balance_figures

BALANCE_KINDS = ("model_miss", "tolerance_unreachable", "edit_forced_imbalance", "edit_imbalance_kept")


def _unit_devs(grids, unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sel = grids["village_code"].astype(str).to_numpy() == unit
    return (grids.loc[sel, "grid_code"].astype(str).to_numpy(), grids.loc[sel, "households"].to_numpy(float),
            np.abs(grids.loc[sel, "deviation"].to_numpy(float)))


def _certified(work: Work, unit: str, k: int, tol: float) -> bool:
    """Whether the tolerance is proven unreachable for the unit's household rows split into k grids."""
    from gridplan.optimize.certify import certify
    hh = work.households
    sizes = hh.loc[hh["village_code"].astype(str) == unit, "households"].to_numpy(np.int64)
    seed = int((work.summary.get("options") or {}).get("seed") or 0)
    return certify(sizes, k, tol, seed=seed).reachable is False


def judge(work: Work, force: bool) -> list[dict]:
    """Check the balance of every touched unit; return the problems to record (refuse when not allowed).

    Parameters
    ----------
    work : Work
        The recounted working copy (its ``base`` is the plan before the edit).
    force : bool
        Keep an edit that leaves grids out of tolerance without a proof (recorded as a problem).

    Returns
    -------
    list of dict
        Problem records (``summary.json`` form) for units left out of tolerance.

    Raises
    ------
    EditError
        An out-of-tolerance result neither forced, certified nor already there before.
    """
    tol = plan_tolerance(work.base)
    out = []
    for unit in sorted(work.touched_units):
        codes, h, dev = _unit_devs(work.grids, unit)
        bad = dev > tol + EPS
        if not bad.any() or len(codes) <= 1:
            continue
        _, _, before = _unit_devs(work.base.grids, unit)
        mean = float(h.mean())
        named = ", ".join(f"{c} ({int(x)} households, {d:.1%})" for c, x, d in zip(codes[bad], h[bad], dev[bad]))
        where = f"unit {unit}"
        if _certified(work, unit, len(codes), tol):
            out.append(_problem(where, "tolerance_unreachable", int(bad.sum()),
                                f"±{tol:.0%} unreachable (proven: no split of the unit's households into "
                                f"{len(codes)} grids meets it); outside: {named}"))
        elif len(before) and float(dev.max()) <= float(before.max()) + EPS:
            out.append(_problem(where, "edit_imbalance_kept", int(bad.sum()),
                                f"still outside ±{tol:.0%} of the unit mean {mean:.1f} (no worse than before "
                                f"the edit: max {dev.max():.1%} vs {before.max():.1%}): {named}"))
        elif force:
            out.append(_problem(where, "edit_forced_imbalance", int(bad.sum()),
                                f"edit forced: grids outside ±{tol:.0%} of the unit mean {mean:.1f}: {named}"))
        else:
            raise EditError(f"the edit would leave grids of unit {unit} outside ±{tol:.0%} of the unit mean "
                            f"{mean:.1f} households: {named}; rebalance the unit, or force the edit",
                            tuple(codes[bad]))
    return out


def _problem(row: str, kind: str, count: int, message: str) -> dict:
    return {"source": "edit", "row": row, "kind": kind, "message": message, "fatal": False, "count": count}


def refresh_summary(work: Work, problems: list[dict]) -> None:
    """Recompute the summary's grid, worker and balance figures; replace the touched units' balance problems."""
    s, g = work.summary, work.grids
    tol = plan_tolerance(work.base)
    s["grids"] = int(len(g))
    s["workers"] = int(g["workers"].sum()) if len(g) else 0
    dev = np.abs(g["deviation"].to_numpy(float)) if len(g) else np.zeros(0)
    bal = dict(s.get("balance") or {})
    bal.update(balance_figures(dev, tol))
    rows = {f"unit {u}" for u in work.touched_units}
    kept = [p for p in (s.get("problems") or [])
            if not (isinstance(p, dict) and p.get("row") in rows and p.get("kind") in BALANCE_KINDS)]
    s["problems"] = kept + problems
    flagged = {}
    for p in s["problems"]:
        if isinstance(p, dict) and p.get("kind") in BALANCE_KINDS:
            flagged[str(p.get("row", ""))[5:]] = p["kind"]
    unit = g["village_code"].astype(str)
    out = dev > tol + EPS
    certified = unit.map(lambda u: flagged.get(u) == "tolerance_unreachable").to_numpy(bool)
    bal["certified_miss_grids"] = int((out & certified).sum())
    bal["uncertified_miss_grids"] = int((out & ~certified).sum())
    bal["uncertified_miss_share"] = round(float((out & ~certified).sum()) / max(len(g), 1), 4)
    s["balance"] = bal
    if len(g) and "polsby_popper" in g.columns:
        comp = dict(s.get("compactness") or {})
        comp.update(polsby_popper_mean=round(float(g["polsby_popper"].mean()), 4),
                    polsby_popper_p10=round(float(g["polsby_popper"].quantile(0.10)), 4))
        s["compactness"] = comp
    s["contiguous_share"] = round(float((g.geom_type == "Polygon").mean()), 4) if len(g) else 1.0
    s["locked"] = sorted(set(s.get("locked") or []) & set(g["grid_code"].astype(str)))
