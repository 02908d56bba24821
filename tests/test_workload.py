"""Workload balance: the checked expression, the options, the plan balanced by workload, staffing by it."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridplan.geo.problems import DataError
from gridplan.optimize import staffing
from gridplan.optimize.options import OptionsError, PlanOptions
from gridplan.optimize.workload_expr import ExpressionError, evaluate, missing_columns, parse_workload

EXPR = "households + 2*elderly_alone + 0.5*cases"


def test_expression_reads_columns_and_evaluates_per_row():
    e = parse_workload(EXPR)
    assert e.columns == ("households", "elderly_alone", "cases")
    assert e.attributes == ("elderly_alone", "cases")
    cols = {"households": np.array([1, 3, 2]), "elderly_alone": np.array([0, 1, 2]), "cases": np.array([4, 0, 1])}
    values, bad = evaluate(e, cols, 3)
    assert values.tolist() == [3.0, 5.0, 6.5]
    assert not bad.any()
    v, _ = evaluate(parse_workload("max(households, -(cases - 10) / 2)"), cols, 3)
    assert v.tolist() == [3.0, 5.0, 4.5]
    assert missing_columns(e, ["Households", "CASES"]) == ["elderly_alone"]


@pytest.mark.parametrize("text, words, pos", [
    ("households + __import__('os')", "only min", 14),
    ("households.real", "attribute is not allowed", 1),
    ("households ** 2", "operator Pow", 1),
    ("households if cases else 1", "ifexp is not allowed", 1),
    ("cases > 1", "compare is not allowed", 1),
    ("households + 'a'", "is not a finite number", 14),
    ("1e999 * cases", "is not a finite number", 1),
    ("min", "must be called", 1),
    ("households +", "not an expression", None),
])
def test_expression_outside_the_allow_list_is_refused_with_its_position(text, words, pos):
    with pytest.raises(ExpressionError) as e:
        parse_workload(text)
    msg = str(e.value)
    assert msg.startswith("--workload: ") and words in msg
    if pos is not None:
        assert f"at position {pos} " in msg


def test_negative_or_non_finite_rows_are_flagged():
    e = parse_workload("households - 2*cases + 1 / weight")
    _, bad = evaluate(e, {"households": np.array([5, 1, 3]), "cases": np.array([0, 3, 0]),
                          "weight": np.array([1, 1, 0])}, 3)
    assert bad.tolist() == [False, True, True]


def test_options_check_the_measures_together():
    with pytest.raises(OptionsError) as e:
        PlanOptions(balance_by="workload")
    assert e.value.fields == ("balance_by",)
    with pytest.raises(OptionsError) as e:
        PlanOptions(workload="households ** 2")
    assert e.value.fields == ("workload",) and "position" in str(e.value)
    with pytest.raises(OptionsError) as e:
        PlanOptions(also_balance="households:1.5")
    assert e.value.fields == ("also_balance",)
    with pytest.raises(OptionsError) as e:
        PlanOptions(also_balance="households:0.2")       # already the primary measure
    assert e.value.fields == ("also_balance",)
    o = PlanOptions.from_mapping({"balance_by": "workload", "workload": EXPR, "also_balance": "households:0.15"})
    assert o.secondary == ("households", 0.15)


@pytest.fixture(scope="module")
def weighted(sample_small, tmp_path_factory):
    """The small sample with an elderly/cases column: a fifth of the rows weigh three times their households."""
    h = pd.read_csv(sample_small["households"])
    rng = np.random.default_rng(7)
    heavy = rng.random(len(h)) < 0.2
    h["elderly_alone"] = np.where(heavy, h["households"], 0)
    h["cases"] = np.where(heavy, 0, rng.integers(0, 3, len(h)))
    path = tmp_path_factory.mktemp("wl") / "hh.csv"
    h.to_csv(path, index=False)
    return path


def test_plan_balanced_by_workload(sample_small, weighted):
    from gridplan import plan
    p = plan(sample_small["boundaries"], weighted, coverage_target=0, balance_by="workload", workload=EXPR,
             also_balance="households:0.3", time_limit_per_unit=2.0)
    b = p.summary["balance"]
    assert b["measure"] == "workload" and b["workload"] == EXPR
    assert "households_spread" in b and b["secondary"]["measure"] == "households"
    # the grid workload column is the expression summed over each grid's households, recounted from the input
    h = pd.read_csv(weighted)
    h["w"] = h["households"] + 2 * h["elderly_alone"] + 0.5 * h["cases"]
    codes = p.households.set_index("id")["grid_code"]
    per_grid = h.assign(grid=h["id"].map(codes)).groupby("grid")["w"].sum()
    g = p.grids.set_index("grid_code")
    assert np.allclose(g["workload"].to_numpy(), per_grid.reindex(g.index).to_numpy())
    # the deviation column is the workload's against its unit's mean, and the balance claim holds on it
    mean = g.groupby("village_code")["workload"].transform("mean")
    assert np.allclose(g["deviation"], (g["workload"] - mean) / mean, atol=0.01)
    units = p.summary["partition"]["units_by_balance"]
    assert units["miss"] == 0 and units["failed"] == 0
    out = np.abs(g["deviation"]) > 0.1 + 1e-9
    assert out.sum() == b["certified_miss_grids"]


def test_plan_names_missing_columns_and_bad_rows(sample_small, weighted):
    from gridplan import plan
    with pytest.raises(DataError) as e:
        plan(sample_small["boundaries"], weighted, coverage_target=0, balance_by="workload",
             workload="households + rentals")
    assert "hh.csv" in str(e.value) and "'rentals'" in str(e.value) and "--workload" in str(e.value)
    with pytest.raises(DataError) as e:
        plan(sample_small["boundaries"], weighted, coverage_target=0, workload="households - 100")
    assert "negative or not finite" in str(e.value) and "row" in str(e.value)


def test_staffing_uses_a_user_workload_when_set():
    box = [shapely.box(0, 0, 100, 100), shapely.box(0, 0, 5000, 5000), shapely.box(0, 0, 100, 100)]
    grids = gpd.GeoDataFrame({"households": [300, 300, 300], "population": [800, 800, 800], "weight": [0, 0, 0],
                              "_workload": [310.0, 290.0, 900.0]}, geometry=box, crs=3857)
    default = staffing.grid_workload(grids, PlanOptions())
    assert int(np.argmax(default)) == 1                    # the formula: the large grid is heaviest
    user = staffing.grid_workload(grids, PlanOptions(workload="households + cases"))
    assert user.tolist() == [310.0, 290.0, 900.0]
    assert staffing.allocate_workers(user, 4).tolist() == [1, 1, 2]


def test_partition_keeps_the_secondary_measure_where_a_model_reaches_it():
    from gridplan.optimize.partition import partition_unit
    rng = np.random.default_rng(3)
    unit = shapely.box(0, 0, 1200, 900)
    xy = rng.random((600, 2)) * [1200, 900]
    hh = np.ones(600, dtype=np.int64)
    heavy = xy[:, 0] < 300                                  # the west quarter weighs 3
    work = np.where(heavy, 30, 10).astype(np.int64)          # the workload in tenths
    opts = PlanOptions(time_limit_per_unit=1.0)
    plain = partition_unit(unit, xy, work, 150, opts, k=4)
    both = partition_unit(unit, xy, work, 150, opts, k=4, secondary=(hh.astype(float), 0.15))

    def dev(labels, values):
        g = np.bincount(labels, weights=values, minlength=4)
        return float(np.max(np.abs(g - g.mean())) / g.mean())
    assert plain.balance == both.balance == "within"           # the primary tolerance holds either way
    assert dev(both.labels, work) <= 0.1 + 1e-9
    assert dev(both.labels, hh) < dev(plain.labels, hh)       # the power grids alone leave a worse spread
    if dev(both.labels, hh) > 0.15:
        assert any("secondary balance missed" in n for n in both.notes)
    again = partition_unit(unit, xy, work, 150, opts, k=4, secondary=(hh.astype(float), 0.15))
    assert np.array_equal(again.labels, both.labels)


def test_cli_plan_takes_the_new_options_and_names_refusals(sample_small, weighted, tmp_path):
    import json
    import subprocess
    import sys

    from conftest import ROOT

    def gridplan(*args):
        env = {"PYTHONPATH": str(ROOT), "COLUMNS": "200", "PATH": "/usr/bin:/bin"}
        return subprocess.run([sys.executable, "-m", "gridplan.api.cli", *map(str, args)], capture_output=True,
                              text=True, cwd=ROOT, env=env, timeout=600)
    base = ("plan", "-b", sample_small["boundaries"], "-h", weighted, "--coverage-target", "0", "--time-limit", "2")
    r = gridplan(*base, "-o", tmp_path / "bad", "--balance-by", "workload", "--workload", "households ** 2")
    assert r.returncode == 2 and "workload" in r.stdout + r.stderr and "position" in r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    r = gridplan(*base, "-o", tmp_path / "ok", "--balance-by", "workload", "--workload", EXPR, "--micro-target", "40",
                 "--json", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(r.stdout)
    assert s["balance"]["measure"] == "workload" and s["levels"]["micro_grids"] >= s["grids"]


def test_plan_balanced_by_population(sample_small):
    from gridplan import plan
    p = plan(sample_small["boundaries"], sample_small["households"], coverage_target=0, balance_by="population",
             time_limit_per_unit=2.0)
    assert p.summary["balance"]["measure"] == "population" and "households_spread" in p.summary["balance"]
    g = p.grids
    mean = g.groupby("village_code")["population"].transform("mean")
    assert np.allclose(g["deviation"], (g["population"] - mean) / mean, atol=0.01)
    units = p.summary["partition"]["units_by_balance"]
    assert units["miss"] == 0 and units["failed"] == 0
    assert ((g["deviation"].abs() <= 0.1 + 1e-9) | g["village_code"].isin(
        [q["row"].removeprefix("unit ") for q in p.summary["problems"] if q["kind"] == "tolerance_unreachable"])).all()


def test_baseline_keeps_grids_balanced_on_the_workload(sample_small, weighted, tmp_path):
    from gridplan import plan
    kw = dict(coverage_target=0, balance_by="workload", workload=EXPR, time_limit_per_unit=2.0)
    first = plan(sample_small["boundaries"], weighted, **kw)
    first.to_dir(tmp_path / "v1", report=False)
    again = plan(sample_small["boundaries"], weighted, baseline=str(tmp_path / "v1"), **kw)
    assert again.summary["baseline"]["changed_households"] == 0
    assert again.grids["grid_code"].tolist() == first.grids["grid_code"].tolist()
    assert np.allclose(again.grids["workload"], first.grids["workload"])
    assert again.summary["partition"]["units_by_balance"]["miss"] == 0
