"""summary.json tells the truth: failed units, balance status counts, grid counts, per-county CRS.

Small synthetic inputs (square units of single houses) keep these tests fast; a unit is made to
fail by making its models raise (in-process), crash their worker or hang (local processes).
"""
from __future__ import annotations

import os
import time

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod

from gridplan.optimize import pipeline, plan
from gridplan.optimize.partition import UnitPartition
from gridplan.optimize.summary import STATUSES, unit_balance

GEOD = Geod(ellps="WGS84")
SIDE = 0.02   # degrees: a unit is a ~2 km square


def make_inputs(origins, households_per_unit, seed=0, county_of=None):
    """Square units at ``origins`` (lon, lat), each with single houses spread uniformly inside."""
    rng = np.random.default_rng(seed)
    units, pts = [], []
    for i, ((x0, y0), n) in enumerate(zip(origins, households_per_unit)):
        county = county_of(i) if county_of else "469025"
        code = f"{county}{100 + i:03d}{i + 1:03d}"
        units.append({"village_code": code, "county_code": county, "township_code": code[:9],
                      "geometry": shapely.box(x0, y0, x0 + SIDE, y0 + SIDE)})
        xy = rng.uniform([x0 + 0.001, y0 + 0.001], [x0 + SIDE - 0.001, y0 + SIDE - 0.001], size=(n, 2))
        pts += [{"id": f"U{i}H{j}", "households": 1, "geometry": shapely.Point(p)} for j, p in enumerate(xy)]
    return gpd.GeoDataFrame(units, crs=4326), gpd.GeoDataFrame(pts, crs=4326)


def _plan(units, hh, **kw):
    return plan(units, hh, coverage_target=None, time_limit_per_unit=1.0, **kw)


def problems_of(p, kind):
    return [q for q in p.summary["problems"] if q["kind"] == kind]


# --- failed units -----------------------------------------------------------------------------

def test_a_unit_whose_models_raise_is_failed_with_its_true_deviation(monkeypatch):
    units, hh = make_inputs([(109.3, 19.3), (109.33, 19.3)], [900, 600])
    bad = units.village_code[0]
    real = pipeline.partition_unit

    def flaky(geometry, xy, households, target, options, barriers=None):
        if int(np.sum(households)) == 900:
            raise RuntimeError("GEOS said no")
        return real(geometry, xy, households, target, options, barriers=barriers)

    monkeypatch.setattr(pipeline, "partition_unit", flaky)
    p = _plan(units, hh)
    s = p.summary
    assert s["partition"]["units_by_balance"]["failed"] == 1
    assert set(s["partition"]["units_by_balance"]) == set(STATUSES)
    (fail,) = problems_of(p, "partition_failed")
    assert fail["row"] == f"unit {bad}" and "GEOS said no" in fail["message"] and "3 were intended" in fail["message"]
    g = p.grids.set_index("village_code")
    # one grid of 900 where 3 were intended: deviation 2.0 against the intended mean of 300, not 0
    assert g.loc[bad, "households"] == 900 and g.loc[bad, "deviation"] == pytest.approx(2.0)
    b = s["balance"]
    assert b["max_abs_dev"] == pytest.approx(2.0) and b["failed_grids"] == 1
    assert b["within_tolerance_share"] == pytest.approx(2 / 3, abs=1e-4)        # the 2 good grids of 3
    assert b["excluding_failed"] == {"max_abs_dev": pytest.approx(float(np.abs(p.grids.deviation[
        p.grids.village_code != bad]).max()), abs=1e-4), "p95_abs_dev": pytest.approx(
        b["excluding_failed"]["p95_abs_dev"]), "within_tolerance_share": 1.0, "grids": 2}
    mism = s["partition"]["grid_count_mismatches"]
    assert mism == [{"unit": bad, "grids": 1, "expected": 3, "reason": "the models failed"}]
    assert problems_of(p, "grid_count")[0]["row"] == f"unit {bad}"


def crash_or_hang_on_the_big_unit(task):
    """A stand-in for solve_unit that kills (or hangs) its worker on the 900-household unit."""
    if int(np.sum(task.households)) == 900:
        if os.environ.get("GRIDPLAN_TEST_HANG"):
            time.sleep(3600)
        os._exit(9)
    return pipeline.solve_unit(task)       # in the worker, the module's own (unpatched) solve_unit


@pytest.mark.parametrize("how", ["crash", "hang"])
def test_a_crashed_or_hung_worker_fails_its_unit_and_the_plan_finishes(monkeypatch, how):
    units, hh = make_inputs([(109.3, 19.3), (109.33, 19.3), (109.36, 19.3)], [900, 600, 300])
    if how == "hang":   # read by the forkserver workers, which start after this is set
        monkeypatch.setenv("GRIDPLAN_TEST_HANG", "1")
    monkeypatch.setattr(pipeline, "solve_unit", crash_or_hang_on_the_big_unit)
    monkeypatch.setattr(pipeline, "task_timeout", lambda opts: 3.0)
    from gridplan.optimize import executors
    monkeypatch.setattr(executors, "_mp_context", lambda: __import__("multiprocessing").get_context("spawn"))
    p = _plan(units, hh, jobs=2)
    s = p.summary
    assert s["grids"] == 1 + 2 + 1 and s["partition"]["units_by_balance"]["failed"] == 1
    (fail,) = problems_of(p, "partition_failed")
    assert ("died" if how == "crash" else "safety timeout") in fail["message"]
    assert "2 attempts" in fail["message"]
    assert p.households.grid_code.notna().all()


# --- balance status and uncertified misses ------------------------------------------------------

def _part(k, status="power", balance="", dev=0.0):
    return UnitPartition(labels=np.zeros(0, np.int64), polygons=[], k=k, status=status, max_abs_dev=dev,
                         seconds=0.0, balance=balance)


@pytest.mark.parametrize("part, devs, total, want", [
    (_part(3), [0.05, 0.02, 0.07], 900, "within"),
    (_part(3), [0.15, 0.02, 0.13], 900, "miss"),                      # no certificate: a miss
    (_part(3, balance="certified"), [0.15, 0.02, 0.13], 900, "certified"),
    (_part(3, balance="within"), [0.15, 0.02, 0.13], 900, "miss"),    # the grids say otherwise
    (_part(3, balance="certified"), [0.05, 0.02, 0.07], 900, "within"),
    (_part(1, status="single"), [0.0], 120, "single"),
    (_part(1, status="empty"), [0.0], 0, "empty"),
    (_part(1, status="failed", balance="failed"), [2.0], 900, "failed"),
])
def test_unit_balance_never_over_claims(part, devs, total, want):
    assert unit_balance(part, np.asarray(devs), total, 0.10) == want


def test_model_misses_are_problems_and_agree_with_the_recount(monkeypatch):
    """A partition out of tolerance (forced here) is a model miss with its unit and deviation."""
    units, hh = make_inputs([(109.3, 19.3), (109.33, 19.3)], [900, 600])
    real = pipeline.partition_unit

    def lopsided(geometry, xy, households, target, options, barriers=None):
        if int(np.sum(households)) != 900:
            return real(geometry, xy, households, target, options, barriers=barriers)
        # three west→east strips holding 400, 250 and 250 households (mean 300)
        xs = np.sort(xy[:, 0])
        cuts = [(xs[399] + xs[400]) / 2, (xs[649] + xs[650]) / 2]
        x0, y0, x1, y1 = geometry.bounds
        edges = [x0 - 1, *cuts, x1 + 1]
        polys = [shapely.intersection(geometry, shapely.box(a, y0 - 1, b, y1 + 1)) for a, b in zip(edges, edges[1:])]
        lab = np.searchsorted(cuts, xy[:, 0])
        return UnitPartition(lab, polys, 3, "power", 1 / 3, 0.0, ())

    monkeypatch.setattr(pipeline, "partition_unit", lopsided)
    p = _plan(units, hh)
    s = p.summary
    dev = np.abs(p.grids.deviation.to_numpy())
    out = int((dev > 0.1 + 1e-9).sum())
    assert out == 3
    assert s["partition"]["units_by_balance"]["miss"] == 1
    assert s["balance"]["uncertified_miss_grids"] == out
    assert s["balance"]["uncertified_miss_share"] == pytest.approx(out / len(p.grids), abs=1e-4)
    assert s["balance"]["within_tolerance_share"] == pytest.approx(1 - out / len(p.grids), abs=1e-4)
    (miss,) = problems_of(p, "model_miss")
    assert miss["row"] == f"unit {units.village_code[0]}" and "model miss" in miss["message"]
    assert f"{dev.max():.1%}" in miss["message"]


# --- per-county metric CRS ---------------------------------------------------------------------

def test_each_county_is_measured_in_its_own_crs():
    """Two counties 21° of longitude apart: areas within 0.1% of the geodesic area in both (one
    CRS for both would be off by several percent in the far one)."""
    units, hh = make_inputs([(100.2, 25.0), (121.2, 25.0)], [600, 600], county_of=lambda i: f"5{i}0100")
    p = _plan(units, hh)
    for _, g in p.grids.iterrows():
        geodesic = abs(GEOD.geometry_area_perimeter(g.geometry)[0]) / 1e6
        assert g.area_km2 == pytest.approx(geodesic, rel=1e-3)
    # and the grids still tile each unit (carried back into the dataset CRS without gaps)
    assert p.summary["gap_area_m2"] < 1.0 and p.summary["overlap_area_m2"] < 1.0
    for vc, sub in p.grids.groupby("village_code"):
        u = units.set_index("village_code").loc[vc].geometry
        # edges follow the lon/lat outline to a centimetre (geo.grids.DENSIFY_M): a strip under 1 cm wide
        sd = shapely.union_all(sub.geometry.values).symmetric_difference(u)
        assert abs(GEOD.geometry_area_perimeter(sd)[0]) < 0.01 * GEOD.geometry_area_perimeter(u)[1]
    per = p.households.groupby("grid_code")["households"].sum()
    assert (per.reindex(p.grids.grid_code).to_numpy() == p.grids.households.to_numpy()).all()


# --- the CLI shows it -------------------------------------------------------------------------

def test_cli_summary_heads_with_the_strict_share_and_names_failed_units(monkeypatch):
    from rich.console import Console

    from gridplan.api import cli
    rec = Console(record=True, width=200)
    monkeypatch.setattr(cli, "console", rec)
    summary = {"households": 1500, "units": 2, "grids": 3,
               "balance": {"within_tolerance_share": 0.6667, "within_granular_tolerance_share": 1.0,
                           "tolerance": 0.1, "max_abs_dev": 2.0, "p95_abs_dev": 1.8, "failed_grids": 1,
                           "excluding_failed": {"within_tolerance_share": 1.0}, "uncertified_miss_grids": 0,
                           "uncertified_miss_share": 0.0},
               "partition": {"units_by_balance": {"within": 1, "failed": 1, "miss": 0}},
               "problems": [{"kind": "partition_failed", "row": "unit 469025100001",
                             "message": "partition failed: worker process died (exit code 9) (2 attempts)"},
                            {"kind": "population_estimated", "row": None, "message": "..."},
                            {"kind": "partition_note", "row": "unit 469025101002", "message": "..."}]}
    rec.print(cli._summary_table(summary))
    cli._print_problems(summary)
    text = rec.export_text()
    lines = [ln for ln in text.splitlines() if "│" in ln or "|" in ln]
    first_share = next(i for i, ln in enumerate(lines) if "within" in ln)
    assert "±10%" in lines[first_share] and "66.7%" in lines[first_share]          # strict, first
    assert "granular" in text and text.index("66.7%") < text.index("granular")
    assert "excluding failed" in text and "within 1, failed 1" in text
    assert "partition_failed unit 469025100001: partition failed: worker process died" in text
    assert "1 partition_note, 1 population_estimated" in text


def test_labels_come_from_the_polygons():
    from gridplan.optimize.assemble import _labels_from_polygons
    polys = np.array([shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)], dtype=object)
    x, y = np.array([5.0, 15.0, 10.0, 30.0, 12.0]), np.array([5.0, 5.0, 5.0, 5.0, 1.0])
    labels = np.array([0, 0, 1, 1, 1])    # point 1 lies in grid 1; point 2 on the shared edge; 3 outside
    assert _labels_from_polygons(polys, labels, x, y).tolist() == [0, 1, 1, 1, 1]


def _checker():
    """shared/tools/check_plan.py beside the checkout, or where GRIDPLAN_CHECK_PLAN points."""
    from conftest import CHECK_PLAN
    for p in (CHECK_PLAN, os.environ.get("GRIDPLAN_CHECK_PLAN")):
        if p and os.path.exists(p):
            return str(p)
    pytest.skip("check_plan.py not found (set GRIDPLAN_CHECK_PLAN)")


def test_summary_figures_agree_with_the_independent_checker(small_plan, small_plan_dir, sample_small):
    import json
    import subprocess
    import sys
    r = subprocess.run([sys.executable, _checker(), str(small_plan_dir), "--boundaries", str(sample_small["boundaries"]),
                        "--households", str(sample_small["households"]), "--certify", "--target-households", "300"],
                       capture_output=True, text=True)
    facts = json.loads(r.stdout.strip().splitlines()[-1])["facts"]
    s = small_plan.summary
    b = s["balance"]
    assert b["within_tolerance_share"] == pytest.approx(facts["within_tolerance_share"], abs=1e-4)
    assert b["max_abs_dev"] == pytest.approx(facts["balance_max_abs_dev"], abs=1e-4)
    assert b["p95_abs_dev"] == pytest.approx(facts["balance_p95_abs_dev"], abs=1e-4)
    # never fewer uncertified misses than the checker finds (a derived status is a miss, not a proof)
    assert b["uncertified_miss_share"] >= facts["uncertified_miss_share"] - 1e-4
    assert len(s["partition"]["grid_count_mismatches"]) == facts["units_wrong_grid_count"]
    assert s["partition"]["units_by_balance"]["miss"] + s["partition"]["units_by_balance"]["certified"] \
        == facts["units_missing_tolerance"]
    assert s["coverage"]["share"] == pytest.approx(facts["coverage_recomputed"], abs=0.005)
    assert small_plan.grids.area_km2.sum() == pytest.approx(
        small_plan.grids.to_crs(small_plan.grids.estimate_utm_crs()).area.sum() / 1e6, rel=1e-3)
