"""Plan diffs: two real plans of the sample county (the transition matrix adds up to both plans'
grid counts), a plan against itself (all kept), a planted change of every kind, the CLI and the files."""
from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import box
from typer.testing import CliRunner

from gridplan.optimize.diff import diff_plans, transition_frame
from gridplan.optimize.result import Plan, read_plan
from tests.helpers.api import tiny_layers


@pytest.fixture(scope="module")
def two_plans(tmp_path_factory, sample_small):
    """The one-township sample planned at tolerance 0.10 with 300 and then 250 households a grid, read back."""
    from gridplan.optimize import plan

    d = tmp_path_factory.mktemp("diff")
    dirs = []
    for name, target in (("t300", 300), ("t250", 250)):
        p = plan(sample_small["boundaries"], sample_small["households"], sample_small.get("facilities"),
                 sample_small.get("roster"), tolerance=0.10, target_households=target, time_limit_per_unit=3.0)
        p.to_dir(d / name, report=False)
        dirs.append(d / name)
    return dirs, [read_plan(x) for x in dirs]


def test_real_plans_transition_matrix_adds_up_to_both_plans(two_plans):
    _, (old, new) = two_plans
    d = diff_plans(old, new, "t300", "t250")
    assert d.household_key == "id" and d.households_only_old == d.households_only_new == 0
    m = transition_frame(d)
    rows, cols = m.sum(axis=1), m.sum(axis=0)
    old_counts = old.grids.set_index("grid_code")["households"]
    new_counts = new.grids.set_index("grid_code")["households"]
    assert set(old_counts.index) <= set(rows.index) and set(new_counts.index) <= set(cols.index)
    for code, n in old_counts.items():
        assert rows[code] == pytest.approx(n), code
    for code, n in new_counts.items():
        assert cols[code] == pytest.approx(n), code
    # every code is in exactly one class, and a smaller target made the plans differ
    classes = [set(d.kept), {g.grid_code for g in d.reshaped}, set(d.created), set(d.retired)]
    assert sum(map(len, classes)) == len(set(old_counts.index) | set(new_counts.index))
    assert len(new.grids) > len(old.grids) and d.created and d.households_moved > 0
    moved = sum(t.households for t in d.transitions if t.old != t.new and t.old and t.new)
    assert d.households_moved == pytest.approx(moved)
    for g in d.reshaped:
        assert g.changed_m2 > 1.0 and g.households_in == pytest.approx(
            sum(t.households for t in d.transitions if t.new == g.grid_code and t.old != g.grid_code))
    assert len(d.moved) == d.points_moved


def test_a_plan_diffed_with_itself_is_all_kept(two_plans):
    _, (old, _new) = two_plans
    d = diff_plans(old, old)
    assert sorted(d.kept) == sorted(old.grids["grid_code"]) and not (d.reshaped or d.created or d.retired)
    assert d.households_moved == 0 and d.points_moved == 0 and not d.workers_reassigned
    assert not (d.stations_added or d.stations_removed or d.stations_moved)
    assert all(t.old == t.new for t in d.transitions)


def _planted() -> tuple[Plan, Plan]:
    """The tiny plan and a copy with one code retired, one created, two grids reshaped, a household,
    a worker and stations changed."""
    layers, summary = tiny_layers()
    hh = gpd.GeoDataFrame({"id": ["a", "b", "c"], "grid_code": ["330110001001001", "330110001001002", None],
                           "households": [3, 5, 1]},
                          geometry=shapely.points([[120.0095, 30.016], [120.0105, 30.016], [121, 31]]), crs=4326)
    layers["households"] = hh
    old = Plan(**layers, summary=summary)
    g = layers["grids"].copy()
    g.loc[0, "geometry"] = box(120.00, 30.01, 120.011, 30.02)     # 001 grows east by 0.001°
    g.loc[1, "geometry"] = box(120.011, 30.01, 120.02, 30.02)     # 002 shrinks
    g.loc[3, "grid_code"] = "330110001001005"                     # 004 retired, 005 created
    new_hh = hh.assign(grid_code=["330110001001001", "330110001001002", None])
    new_hh.loc[1, "grid_code"] = "330110001001001"                # b (at x 120.0105..) now in the grown 001
    st = layers["stations"].copy()
    st.loc[0, "geometry"] = shapely.Point(120.006, 30.015)        # S1 moved ~100 m
    st = gpd.GeoDataFrame(pd.concat([st.iloc[[0]], st.iloc[[1]].assign(station_id="S3")]), crs=4326)  # S2 out, S3 in
    w = layers["workers"].assign(grid_code=["330110001001002", "330110001001002", "330110001001002"])
    new = Plan(**{**layers, "grids": g, "households": new_hh, "stations": st, "workers": w}, summary=summary)
    return old, new


def test_every_kind_of_change_is_named():
    old, new = _planted()
    d = diff_plans(old, new)
    assert d.retired == ["330110001001004"] and d.created == ["330110001001005"]
    assert [g.grid_code for g in d.reshaped] == ["330110001001001", "330110001001002"]
    g1 = d.reshaped[0]
    assert g1.area_change_m2 > 90_000 and g1.households_in == 5 and g1.households_out == 0
    assert d.reshaped[1].households_out == 5 and d.households_moved == 5 and d.points_moved == 1
    assert [(w.worker_id, w.old_grid, w.new_grid) for w in d.workers_reassigned] == [
        ("W1", "330110001001001", "330110001001002")]
    assert (d.stations_added, d.stations_removed, d.stations_moved) == (["S3"], ["S2"], ["S1"])
    assert {(t.old, t.new): t.households for t in d.transitions} == {
        ("330110001001001", "330110001001001"): 3, ("330110001001002", "330110001001001"): 5, (None, None): 1}


def test_to_dir_writes_json_gpkg_and_a_self_contained_page(tmp_path):
    old, new = _planted()
    d = diff_plans(old, new, "v1", "v2")
    d.to_dir(tmp_path / "out")
    j = json.loads((tmp_path / "out" / "diff.json").read_text())
    assert j == json.loads(json.dumps(d.to_dict())) and j["old"] == "v1" and j["counts"]["retired"] == 1
    layers = dict(pyogrio.list_layers(tmp_path / "out" / "diff.gpkg"))
    assert set(layers) == {"changed_grids", "moved_households"}
    cg = pyogrio.read_dataframe(tmp_path / "out" / "diff.gpkg", layer="changed_grids")
    assert sorted(zip(cg["grid_code"], cg["change"])) == [
        ("330110001001001", "reshaped"), ("330110001001002", "reshaped"), ("330110001001004", "retired"),
        ("330110001001005", "created")]
    mh = pyogrio.read_dataframe(tmp_path / "out" / "diff.gpkg", layer="moved_households")
    assert list(mh["id"]) == ["b"] and list(mh["new_grid"]) == ["330110001001001"]
    html = (tmp_path / "out" / "diff.html").read_text()
    assert "v1" in html and "v2" in html and "330110001001005" in html
    assert 'src="http' not in html and "<link" not in html     # nothing fetched from elsewhere


def test_cli_diff_prints_a_table_and_writes_the_files(two_plans, tmp_path):
    from gridplan.api.cli import app

    (a, b), _ = two_plans
    r = CliRunner().invoke(app, ["diff", str(a), str(b), "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert "grids reshaped" in r.output and "households moved" in r.output
    assert {p.name for p in (tmp_path / "d").iterdir()} == {"diff.json", "diff.gpkg", "diff.html"}
    r = CliRunner().invoke(app, ["diff", str(a), str(a), "--json"])
    assert r.exit_code == 0 and '"reshaped": []' in r.output
    r = CliRunner().invoke(app, ["diff", str(tmp_path / "nothing"), str(b)])
    assert r.exit_code == 1 and "no plan.gpkg" in r.output


def test_households_only_one_plan_has_are_counted_apart():
    old, new = _planted()
    fewer = Plan(**{**new.layers(), "households": new.households.iloc[:2]}, summary=new.summary)
    d = diff_plans(old, fewer)
    assert (d.households_only_old, d.households_only_new) == (1, 0)
    d = diff_plans(fewer, old)
    assert (d.households_only_old, d.households_only_new) == (0, 1)
    rows = transition_frame(diff_plans(old, fewer)).sum(axis=1)
    assert rows["330110001001001"] == 3 and rows["330110001001002"] == 5   # still every old household
