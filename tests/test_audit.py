"""Audit of an existing grid layer: planted defects reported with their counts, gridplan's own plans clean."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from shapely.geometry import box
from typer.testing import CliRunner

from gridplan.api.cli import app
from gridplan.geo.problems import DataError
from gridplan.optimize.audit import RULES, audit
from tests.helpers import planted


@pytest.fixture(scope="module")
def planted_files(tmp_path_factory):
    return planted.build(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="module")
def planted_result(planted_files):
    p = planted_files
    return audit(p["grids"], p["boundaries"], p["households"], target_households=10)


def by_rule(result, rule):
    return [v for v in result.violations if v.rule == rule]


def test_every_planted_defect_is_reported_with_its_count(planted_result):
    assert planted_result.counts == planted.EXPECTED
    assert not planted_result.clean


def test_planted_figures(planted_result):
    r = planted_result
    u = planted.unit_code
    (gap,) = by_rule(r, "gap")
    assert gap.unit_code == u(2) and "3 households" in gap.detail
    # the strip is 0.001° x 0.005° at 30° N: about 96 m x 554 m
    assert 45_000 < gap.figure < 60_000
    (out,) = by_rule(r, "outside_grids")
    assert (out.unit_code, out.figure) == (u(2), 3)
    (ov,) = by_rule(r, "overlap")
    assert {ov.grid_code} <= {u(1) + "001", u(1) + "002"} and 45_000 < ov.figure < 60_000
    (mp,) = by_rule(r, "multipart")
    assert (mp.grid_code, mp.figure) == (u(3) + "001", 2)
    (dup,) = by_rule(r, "duplicate_code")
    assert (dup.grid_code, dup.figure) == (u(4) + "001", 2)
    (order,) = by_rule(r, "code_order")
    assert (order.unit_code, order.figure) == (u(5), 2)
    assert {v.grid_code for v in by_rule(r, "imbalance")} == {u(6) + f"{i:03d}" for i in range(1, 5)}
    assert all("uncertified" in v.detail for v in by_rule(r, "imbalance"))
    assert {v.grid_code for v in r.certified} == {u(7) + "001", u(7) + "002"}
    assert all("certified unreachable" in v.detail for v in r.certified)
    (cross,) = by_rule(r, "crosses_units")
    assert cross.grid_code == u(8) + "004" and "outside every unit" in cross.detail
    (cnt,) = by_rule(r, "grid_count")
    assert (cnt.unit_code, cnt.figure) == (u(9), 4)
    (wk,) = by_rule(r, "workers")
    assert (wk.grid_code, wk.figure) == (u(4) + "004", 3)
    assert by_rule(r, "unknown_unit")[0].unit_code == "469000000999"


def test_outputs_written(planted_result, tmp_path):
    planted_result.to_dir(tmp_path)
    data = json.loads((tmp_path / "audit.json").read_text())
    assert data["clean"] is False and data["counts"] == planted.EXPECTED
    assert len(data["violations"]) == sum(planted.EXPECTED.values()) and len(data["certified"]) == 2
    flagged = gpd.read_file(tmp_path / "audit.gpkg", layer="flagged_grids")
    assert planted.unit_code(1) + "002" in set(flagged["grid_code"])   # the second grid of the overlap too
    assert len(gpd.read_file(tmp_path / "audit.gpkg", layer="gaps")) == 1
    assert len(gpd.read_file(tmp_path / "audit.gpkg", layer="overlaps")) == 1
    html = (tmp_path / "audit.html").read_text()
    assert "http://" not in html.split("<script>")[0] and planted.unit_code(3) + "001" in html


def test_the_tolerance_decides_what_is_imbalanced(planted_files, tmp_path):
    p = planted_files
    g = gpd.read_file(p["grids"])
    one = g[g["village_code"] == planted.unit_code(6)]
    b = gpd.read_file(p["boundaries"])
    b = b[b["village_code"] == planted.unit_code(6)]
    hh = pd.read_csv(p["households"])
    for name, frame in (("g.geojson", one), ("b.geojson", b)):
        frame.to_file(tmp_path / name, driver="GeoJSON")
    strict = audit(tmp_path / "g.geojson", tmp_path / "b.geojson", hh)
    assert strict.counts["imbalance"] == 4
    loose = audit(tmp_path / "g.geojson", tmp_path / "b.geojson", hh, tolerance=0.99 - 1e-9)
    assert loose.counts["imbalance"] == 1 and not loose.clean   # 128.6% > 99%: only the full grid


def test_gridplan_output_is_clean(small_plan_dir, sample_small):
    r = audit(small_plan_dir, sample_small["boundaries"], sample_small["households"], target_households=300)
    assert r.clean, [v.detail for v in r.violations]
    assert r.stats["households_in_grids"] == r.stats["households"]


def test_unreadable_grid_layer_is_a_data_error(planted_files, tmp_path):
    bad = tmp_path / "grids.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(DataError) as e:
        audit(bad, planted_files["boundaries"], planted_files["households"])
    assert "grids.geojson" in str(e.value)


# ---------------------------------------------------------------------------------- generated plans
@st.composite
def layouts(draw):
    n_units = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 10_000))
    points = draw(st.integers(30, 160))
    target = draw(st.sampled_from([25, 40, 60]))
    return n_units, seed, points, target


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(layouts())
def test_generated_plans_audit_clean(tmp_path_factory, layout):
    from gridplan.optimize import plan
    n_units, seed, n_points, target = layout
    d = tmp_path_factory.mktemp("gen")
    rng = np.random.default_rng(seed)
    units = gpd.GeoDataFrame({"village_code": [f"46900000200{i}" for i in range(n_units)]},
                             geometry=[box(120 + 0.01 * i, 30, 120.01 + 0.01 * i, 30.01) for i in range(n_units)],
                             crs=4326)
    xy = rng.uniform([120.0002, 30.0002], [120 + 0.01 * n_units - 0.0002, 30.0098], (n_points, 2))
    hh = pd.DataFrame({"id": np.arange(n_points), "lon": xy[:, 0], "lat": xy[:, 1],
                       "households": rng.integers(1, 4, n_points)})
    p = plan(units, hh, target_households=target, time_limit_per_unit=1.0)
    out = p.to_dir(d / "out", report=False)
    r = audit(out, units, hh, target_households=target)
    misses = p.summary["balance"].get("uncertified_miss_grids", 0)
    assert {k: v for k, v in r.counts.items() if k != "imbalance"} == {k: 0 for k in RULES if k != "imbalance"}
    assert r.counts["imbalance"] == misses
    assert len(r.certified) == p.summary["balance"].get("certified_miss_grids", 0)


# ---------------------------------------------------------------------------------- the command line
def test_cli_exit_codes(planted_files, small_plan_dir, sample_small, tmp_path):
    runner = CliRunner()
    p = planted_files
    bad = runner.invoke(app, ["audit", "--grids", str(p["grids"]), "--boundaries", str(p["boundaries"]),
                              "--households", str(p["households"]), "--out", str(tmp_path / "a")])
    assert bad.exit_code == 1, bad.output
    assert (tmp_path / "a" / "audit.html").exists()
    good = runner.invoke(app, ["audit", "--grids", str(small_plan_dir), "--boundaries", str(sample_small["boundaries"]),
                               "--households", str(sample_small["households"]), "--target-households", "300"])
    assert good.exit_code == 0, good.output
    usage = runner.invoke(app, ["audit", "--grids", str(p["grids"]), "--boundaries", str(p["boundaries"]),
                                "--households", str(p["households"]), "--tolerance", "3"])
    assert usage.exit_code == 2 and "--tolerance" in usage.output
    missing = runner.invoke(app, ["audit", "--grids", str(tmp_path / "nope.gpkg"), "--boundaries",
                                  str(p["boundaries"]), "--households", str(p["households"])])
    assert missing.exit_code == 1 and "nope.gpkg" in missing.output
