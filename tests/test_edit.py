"""Plan edits: lock, move, merge, split, rebalance, apply_edits and ``gridplan edit`` (issue 12, "Edit")."""
from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from gridplan.optimize.edit_apply import EditsInvalid, EditsRefused, apply_edits
from gridplan.optimize.edit_state import EditError
from tests.helpers.edit_plans import synthetic_plan, unit_code
from tests.helpers.plan_invariants import CodeHistory, check_plan_invariants


@pytest.fixture(scope="module")
def base():
    return synthetic_plan(0)


def _neighbours(plan, code):
    g = plan.grids
    me = g.loc[g.grid_code == code]
    geom, unit = me.geometry.iloc[0], me.village_code.iloc[0]
    return [c for c, p, u in zip(g.grid_code, g.geometry, g.village_code)
            if c != code and u == unit and shapely.length(shapely.intersection(geom.boundary, p.boundary)) > 0]


def _nearest_ids(plan, source, target, n):
    hh = plan.households[plan.households.grid_code == source]
    geom = plan.grids.set_index("grid_code").geometry
    shared = shapely.line_merge(shapely.intersection(geom[target].boundary, geom[source].boundary))
    mid = shapely.line_interpolate_point(shared, 0.5, normalized=True)   # the middle of their common edge:
    d = shapely.distance(mid, hh.geometry.values)                        # its nearest household's cell holds it
    return hh["id"].to_numpy()[np.argsort(d, kind="stable")[:n]].tolist()


def _snapshot(plan):
    return plan.grids.drop(columns="geometry").copy(), plan.grids.geometry.to_wkb().tolist(), \
        plan.households["grid_code"].copy(), dict(plan.summary)


def _unchanged(plan, snap):
    g, wkb, lab, summary = snap
    assert plan.grids.drop(columns="geometry").equals(g)
    assert plan.grids.geometry.to_wkb().tolist() == wkb
    assert plan.households["grid_code"].equals(lab)
    assert plan.summary == summary


def test_synthetic_plan_meets_the_invariants(base):
    check_plan_invariants(base)


def test_move_gives_households_and_their_land_to_the_neighbour(base):
    snap = _snapshot(base)
    a = base.grids.grid_code.iloc[0]
    b = _neighbours(base, a)[0]
    ids = _nearest_ids(base, b, a, 2)
    new = base.move(ids, to=a, force=True)
    _unchanged(base, snap)                        # the input plan is never changed
    check_plan_invariants(new)
    hh = new.households.set_index("id")
    assert (hh.loc[ids, "grid_code"] == a).all()
    moved = int(base.households.set_index("id").loc[ids, "households"].sum())
    before = base.grids.set_index("grid_code")["households"]
    after = new.grids.set_index("grid_code")["households"]
    assert after[a] == before[a] + moved and after[b] == before[b] - moved
    ch = new.changes[-1]
    assert ch.op == "move" and ch.households_moved == moved and set(ch.reshaped) == {a, b}
    others = [c for c in base.grids.grid_code if c not in (a, b)]
    old_geom = dict(zip(base.grids.grid_code, base.grids.geometry))
    for c, geom in zip(new.grids.grid_code, new.grids.geometry):
        if c in others:                           # grids the edit does not name keep their polygon exactly
            assert shapely.equals_exact(geom, old_geom[c], 0.0)


def test_move_by_polygon_selects_the_households_inside(base):
    a = base.grids.grid_code.iloc[0]
    b = _neighbours(base, a)[0]
    ids = _nearest_ids(base, b, a, 1)
    pt = base.households.set_index("id").loc[ids[0]].geometry
    poly = shapely.geometry.mapping(pt.buffer(1e-6))
    new = base.move(poly, to=a, force=True)
    check_plan_invariants(new)
    assert new.households.set_index("id").loc[ids[0], "grid_code"] == a


def test_move_refusals_name_the_problem(base):
    a = base.grids.grid_code.iloc[0]
    other_unit = base.grids.loc[base.grids.village_code != base.grids.village_code.iloc[0], "grid_code"].iloc[0]
    far = base.households[base.households.grid_code == other_unit]["id"].iloc[:1].tolist()
    with pytest.raises(EditError, match="another unit"):
        base.move(far, to=a)
    with pytest.raises(EditError, match="not in the plan"):
        base.move(["no-such-id"], to=a)
    with pytest.raises(EditError, match="no such grid"):
        base.move(far, to="469001000001999")
    locked = base.lock([a])
    b = _neighbours(base, a)[0]
    with pytest.raises(EditError, match="locked"):
        locked.move(_nearest_ids(base, b, a, 1), to=a)


def test_an_unbalancing_edit_is_refused_unless_forced(base):
    a = base.grids.grid_code.iloc[0]
    b = _neighbours(base, a)[0]
    ids = _nearest_ids(base, b, a, 12)            # ~24 households: far outside ±10% of a ~40 mean
    with pytest.raises(EditError) as e:
        base.move(ids, to=a)
    assert a in str(e.value) and "rebalance" in str(e.value) and a in e.value.grids
    forced = base.move(ids, to=a, force=True)
    check_plan_invariants(forced)
    assert forced.changes[-1].forced
    kinds = {(p["row"], p["kind"]) for p in forced.summary["problems"]}
    unit = base.grids.loc[base.grids.grid_code == a, "village_code"].iloc[0]
    assert (f"unit {unit}", "edit_forced_imbalance") in kinds
    assert forced.summary["balance"]["within_tolerance_share"] < 1.0


def test_merge_retires_b_and_split_takes_the_next_number_never_used(base):
    a = base.grids.grid_code.iloc[0]
    unit = base.grids.village_code.iloc[0]
    b = max(_neighbours(base, a))
    top = max(int(c[-3:]) for c in base.grids.grid_code if c.startswith(unit))
    merged = base.merge_grids(a, b, force=True)
    check_plan_invariants(merged)
    assert b not in set(merged.grids.grid_code)
    assert merged.summary["code_registry"][unit]["last"] == top
    assert b in merged.summary["code_registry"][unit]["retired"]
    row = merged.grids.set_index("grid_code").loc[a]
    assert row.households == base.grids.set_index("grid_code").loc[[a, b], "households"].sum()
    split = merged.split(a, k=2, force=True)
    check_plan_invariants(split)
    new = sorted(set(split.grids.grid_code) - set(merged.grids.grid_code))
    assert new == [f"{unit}{top + 1:03d}"]        # never b's number again, even if b was the highest
    hist = CodeHistory(base)
    for p in (merged, split):
        hist.step(p)
    assert [c.op for c in split.changes] == ["merge", "split"]


def test_merge_refuses_grids_of_two_units_or_not_touching(base):
    g = base.grids
    u0 = g[g.village_code == unit_code(0)].grid_code.tolist()
    u1 = g[g.village_code == unit_code(1)].grid_code.tolist()
    with pytest.raises(EditError, match="unit"):
        base.merge_grids(u0[0], u1[0])
    apart = [c for c in u0 if c != u0[0] and c not in _neighbours(base, u0[0])]
    if apart:
        with pytest.raises(EditError, match="share an edge"):
            base.merge_grids(u0[0], apart[0], force=True)


def test_rebalance_keeps_locked_grids_and_codes(base):
    unit = unit_code(0)
    codes = base.grids.loc[base.grids.village_code == unit, "grid_code"].tolist()
    a, b = codes[0], _neighbours(base, codes[0])[0]
    skewed = base.move(_nearest_ids(base, b, a, 8), to=a, force=True).lock([codes[-1]])
    out = skewed.rebalance(unit)
    check_plan_invariants(out)
    hist = CodeHistory(skewed)
    hist.step(out)                                # the locked grid kept its polygon exactly
    dev = out.grids.loc[out.grids.village_code == unit, "deviation"].abs()
    assert (dev <= 0.10 + 1e-9).all() or any(p["row"] == f"unit {unit}" for p in out.summary["problems"])
    assert out.changes[-1].op == "rebalance"
    assert set(codes) & set(out.grids.grid_code)  # codes survive where their households stay
    everything_locked = skewed.lock(codes)
    with pytest.raises(EditError, match="every grid is locked"):
        everything_locked.rebalance(unit)


def test_rebalance_that_finds_the_same_grids_changes_nothing(base):
    unit = unit_code(1)
    out = base.rebalance(unit)
    check_plan_invariants(out)
    ch = out.changes[-1]                          # the deterministic partition finds the planner's grids again
    assert (ch.households_moved, ch.created, ch.retired, ch.reshaped) == (0, (), (), ())
    assert out.grids.geometry.to_wkb().tolist() == base.grids.geometry.to_wkb().tolist()
    assert "nothing changed" in ch.summary


def test_apply_edits_validates_and_is_all_or_nothing(base):
    a = base.grids.grid_code.iloc[0]
    with pytest.raises(EditsInvalid) as e:
        apply_edits(base, [{"op": "split", "code": a, "k": "2"}])
    assert e.value.errors[0][0] == "edits[0].k"
    with pytest.raises(EditsInvalid) as e:
        apply_edits(base, [{"op": "lock", "codes": [a]}, {"op": "merge", "a": a, "bee": a}])
    fields = {f for f, _ in e.value.errors}
    assert {"edits[1].b", "edits[1].bee"} <= fields
    with pytest.raises(EditsInvalid, match=r"edits\[0\]\.op"):
        apply_edits(base, [{"op": "explode"}])
    with pytest.raises(EditsRefused) as r:
        apply_edits(base, [{"op": "lock", "codes": [a]}, {"op": "split", "code": a}])
    assert r.value.index == 1 and "locked" in str(r.value)
    out = apply_edits(base, [{"op": "lock", "codes": [a]}, {"op": "unlock", "codes": [a]}])
    assert [c.op for c in out.changes] == ["lock", "unlock"] and out.summary["locked"] == []


def test_changes_travel_with_the_plan_directory(base, tmp_path):
    from gridplan.optimize.result import read_plan
    a = base.grids.grid_code.iloc[0]
    b = _neighbours(base, a)[0]
    new = base.lock([b])
    new.to_dir(tmp_path / "p", report=False)
    log = json.loads((tmp_path / "p" / "changes.json").read_text())
    assert log[0]["op"] == "lock" and log[0]["args"] == {"codes": [b]}
    back = read_plan(tmp_path / "p")
    assert back.changes == new.changes and back.summary["locked"] == [b]
    with pytest.raises(EditError, match="locked"):
        back.split(b, force=True)


def test_cli_edit_writes_the_edited_plan(base, tmp_path):
    from typer.testing import CliRunner

    from gridplan.api.cli import app
    base.to_dir(tmp_path / "p", report=False)
    a = base.grids.grid_code.iloc[0]
    b = _neighbours(base, a)[0]
    ids = _nearest_ids(base, b, a, 1)
    (tmp_path / "ids.csv").write_text("id\n" + "\n".join(ids) + "\n")
    r = CliRunner().invoke(app, ["edit", "--plan", str(tmp_path / "p"), "--lock", b, "--out", str(tmp_path / "q")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["edit", "--plan", str(tmp_path / "q"), "--move-points", str(tmp_path / "ids.csv"),
                                 "--to", a, "--out", str(tmp_path / "r")])
    assert r.exit_code == 1 and "locked" in r.output and not (tmp_path / "r").exists()
    r = CliRunner().invoke(app, ["edit", "--plan", str(tmp_path / "p"), "--move-points", str(tmp_path / "ids.csv"),
                                 "--to", a, "--force", "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    (tmp_path / "e.json").write_text(json.dumps([{"op": "split", "code": a, "k": 0}]))
    r = CliRunner().invoke(app, ["edit", "--plan", str(tmp_path / "p"), "--edits", str(tmp_path / "e.json"),
                                 "--out", str(tmp_path / "s")])
    assert r.exit_code == 1 and "edits[0].k" in r.output
    r = CliRunner().invoke(app, ["edit", "--plan", str(tmp_path / "p"), "--out", str(tmp_path / "s")])
    assert r.exit_code == 2
    r = CliRunner().invoke(app, ["edit", "--plan", str(tmp_path / "p"), "--merge", a, b, "--split", a, "--k", "2",
                                 "--rebalance", unit_code(1), "--force", "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    from gridplan.optimize.result import read_plan
    m = read_plan(tmp_path / "m")
    check_plan_invariants(m)
    assert [c.op for c in m.changes] == ["merge", "split", "rebalance"] and b not in set(m.grids.grid_code)


def test_edit_errors_become_422_problems_naming_the_field(base):
    from gridplan.api.edit_errors import edits_problem
    a = base.grids.grid_code.iloc[0]
    with pytest.raises(EditsInvalid) as e:
        apply_edits(base, [{"op": "split", "code": a, "k": 1}])
    p = edits_problem(e.value)
    assert p.status == 422 and p.errors[0]["source"] == "edits[0].k"
    with pytest.raises(EditsRefused) as r:
        apply_edits(base, [{"op": "merge", "a": a, "b": "469001000009001"}])
    p = edits_problem(r.value)
    assert p.status == 422 and p.kind == "edit-refused" and "no such grid" in p.errors[0]["problem"]
    assert p.errors[0]["source"] == "edits[0].b"


def test_edits_split_the_touched_grids_micro_grids_again():
    from gridplan.optimize import plan
    from tests.helpers.edit_plans import synthetic_inputs
    b, hh = synthetic_inputs(3)
    p = plan(b, hh, target_households=40, time_limit_per_unit=1.0, coverage_target=0, micro_target=10)
    assert p.micro_grids is not None and len(p.micro_grids)
    a = p.grids.grid_code.iloc[0]
    other = max(_neighbours(p, a))
    merged = p.merge_grids(a, other, force=True)
    for q in (merged, merged.split(a, k=2, force=True)):
        mg, h = q.micro_grids, q.households
        assert set(mg["grid_code"]) == set(q.grids["grid_code"])            # none left of a retired grid
        by_code = mg.set_index("micro_grid_code")
        assert h["micro_grid_code"].notna().all()
        assert (by_code.loc[h["micro_grid_code"], "grid_code"].to_numpy() == h["grid_code"].to_numpy()).all()
        for code, sub in mg.groupby("grid_code"):                           # micro-grids tile their grid
            g = q.grids.set_index("grid_code").geometry[code]
            # as tight as the planner's own micro-grids (about 5e-6 of the grid, from their cells' snapping)
            assert shapely.union_all(sub.geometry.values).symmetric_difference(g).area < 2e-5 * g.area
        inside = [by_code.geometry[c].buffer(1e-9).contains(pt) for c, pt in zip(h["micro_grid_code"], h.geometry)]
        assert all(inside)
