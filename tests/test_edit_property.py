"""200 random edit sequences keep every rule of a plan (issue 12 target; hypothesis, derandomized in CI).

Each sequence starts from one of a few small synthetic plans and applies up to four edits drawn at
random — lock, unlock, move households across a shared edge, merge neighbours, split, rebalance,
sometimes forced. An edit may be refused (EditError: the plan is then unchanged); an accepted one
must leave a plan that tiles its units, keeps grids contiguous and nested, recounts true, never
reuses a retired code, never changes a locked grid, accounts for every grid out of tolerance in
its problems, and logs the edit.
"""
from __future__ import annotations

import numpy as np
import shapely
from hypothesis import example, event, given, settings, strategies as st

from gridplan.optimize.edit_balance import BALANCE_KINDS
from gridplan.optimize.edit_state import EditError
from tests.helpers.edit_plans import synthetic_plan
from tests.helpers.plan_invariants import CodeHistory, check_plan_invariants

PLANS = [(0, 2, 80, 40), (1, 2, 60, 30), (2, 3, 50, 25)]
OPS = ["lock", "unlock", "move", "move", "move", "merge", "merge", "split", "split", "rebalance"]

edit = st.tuples(st.sampled_from(OPS), st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 6),
                 st.booleans())


def _neighbours(plan, code):
    g = plan.grids.set_index("grid_code")
    me, unit = g.geometry[code], g.village_code[code]
    return sorted(c for c, p, u in zip(g.index, g.geometry, g.village_code)
                  if c != code and u == unit and shapely.length(shapely.intersection(me.boundary, p.boundary)) > 0)


def _move_ids(plan, source, target, n):
    hh = plan.households[plan.households.grid_code == source]
    g = plan.grids.set_index("grid_code").geometry
    shared = shapely.line_merge(shapely.intersection(g[target].boundary, g[source].boundary))
    d = shapely.distance(shapely.line_interpolate_point(shared, 0.5, normalized=True), hh.geometry.values)
    return hh["id"].to_numpy()[np.argsort(d, kind="stable")[:n]].tolist()


def _apply(plan, op, i, j, n, force):
    codes = sorted(plan.grids["grid_code"])
    code = codes[i % len(codes)]
    if op == "lock":
        return plan.lock([code])
    if op == "unlock":
        locked = plan.summary.get("locked") or [code]
        return plan.lock([locked[i % len(locked)]], unlock=True)
    if op == "rebalance":
        units = sorted(set(plan.grids["village_code"]))
        return plan.rebalance(units[i % len(units)], force=force)
    if op == "split":
        return plan.split(code, k=2 + (n > 4), force=force)
    nb = _neighbours(plan, code)
    if not nb:
        return None
    other = nb[j % len(nb)]
    if op == "merge":
        return plan.merge_grids(code, other, force=force)
    return plan.move(_move_ids(plan, other, code, n), to=code, force=force)


def _balance_accounted(plan):
    tol = float(plan.summary["balance"]["tolerance"])
    g = plan.grids
    out = set(g.loc[g["deviation"].abs() > tol + 1e-9, "village_code"])
    rows = {p["row"] for p in plan.summary.get("problems", []) if p.get("kind") in BALANCE_KINDS}
    missing = {u for u in out if f"unit {u}" not in rows}
    assert not missing, f"units out of tolerance with no balance problem recorded: {sorted(missing)}"


@settings(max_examples=200, deadline=None)
@given(which=st.integers(0, len(PLANS) - 1), edits=st.lists(edit, min_size=1, max_size=4))
# found by the 30-minute random run: GEOS gave up (side-location conflict) on the last move
@example(which=2, edits=[("lock", 0, 0, 1, False), ("split", 4, 0, 1, True), ("split", 7, 0, 1, True),
                         ("move", 329, 0, 4, True)])
# and by the longer run: every model of a split's partition failed on the region's geometry
@example(which=2, edits=[("move", 3, 1, 3, True), ("split", 159, 0, 5, False)])
# and by the run of this session: the free grids' union kept a 1e-19 deg² hole, and clipping Voronoi cells
# to it lost 4,000 m² of the unit in the rebalance
@example(which=0, edits=[("lock", 0, 0, 1, False), ("split", 1, 0, 1, True), ("rebalance", 0, 0, 1, False)])
# and: a locked grid cut the free land in two, and the rebalance let a grid span both pieces (a MultiPolygon)
@example(which=1, edits=[("lock", 1, 0, 1, False), ("lock", 1, 0, 1, False), ("split", 0, 0, 1, True),
                         ("rebalance", 0, 0, 1, False)])
def test_random_edit_sequences_keep_every_invariant(which, edits):
    plan = synthetic_plan(*PLANS[which])
    history = CodeHistory(plan)
    for op, i, j, n, force in edits:
        before = (plan.grids.geometry.to_wkb().tolist(), plan.households["grid_code"].tolist(), len(plan.changes))
        try:
            new = _apply(plan, op, i, j, n, force)
        except EditError:
            new = None
        event(f"{op}: {'refused' if new is None else 'forced' if new.changes[-1].forced else 'applied'}")
        assert (plan.grids.geometry.to_wkb().tolist(), plan.households["grid_code"].tolist(),
                len(plan.changes)) == before, "an edit changed its input plan"
        if new is None:
            continue
        check_plan_invariants(new)
        history.step(new)
        _balance_accounted(new)
        assert len(new.changes) == len(plan.changes) + 1 and new.changes[-1].op == op
        plan = new
