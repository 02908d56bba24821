"""Merging legacy grid layers (optimize.merge): agreement measures, consensus groups, the whole merge."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import run_check_plan
from helpers.graphs import lattice_edges
from helpers.legacy import write_legacy_files
from hypothesis import given, settings, strategies as st

from gridplan.optimize import agreement_groups as ag
from gridplan.optimize.agreement import adjusted_rand_index, boundary_reuse, crosswalk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.make_legacy import KINDS, derive, legacy_layers  # noqa: E402


# ------------------------------------------------------------------------------------------ ARI
def test_ari_matches_a_hand_computed_case():
    # contingency [[2, 1, 0], [0, 1, 2]]: Σ C(n_ij, 2) = 2, rows Σ C(3, 2)·2 = 6, columns Σ C(2, 2)·3 = 3,
    # C(6, 2) = 15, E = 6·3/15 = 1.2, max = (6 + 3)/2 = 4.5  →  ARI = (2 − 1.2)/(4.5 − 1.2) = 8/33
    assert adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(8 / 33)


def test_ari_of_identical_and_relabelled_partitions_is_one_and_of_opposites_below_zero():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert adjusted_rand_index(a, a) == 1.0
    assert adjusted_rand_index(a, np.array(["x", "x", "z", "z", "y", "y"])) == 1.0
    # every pair split one way is joined the other: worse than chance
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) < 0


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 5)), min_size=2, max_size=30))
def test_weighted_ari_equals_ari_of_repeated_items(rows):
    a, b, w = (np.array(x) for x in zip(*rows))
    assert adjusted_rand_index(a, b, w) == pytest.approx(adjusted_rand_index(np.repeat(a, w), np.repeat(b, w)))


def test_crosswalk_shares_sum_to_one_per_legacy_and_per_new_grid():
    lab = np.array([0, 0, 1, 1, 1, -1, 2])
    codes = np.array(["A", "B", "B", "B", "C", "C", None], dtype=object)
    cw = crosswalk("police", np.array(["p1", "p2", "p3"], dtype=object), lab, codes, np.array([1, 3, 2, 2, 4, 9, 5]))
    assert set(cw.groupby("legacy_grid_id")["share_of_legacy"].sum().round(12)) == {1.0}
    assert set(cw.groupby("grid_code")["share_of_new"].sum().round(12)) == {1.0}
    row = cw[(cw.legacy_grid_id == "p2") & (cw.grid_code == "B")].iloc[0]
    assert row.households == 4 and row.share_of_legacy == pytest.approx(0.5) and row.share_of_new == pytest.approx(4 / 7)
    assert "p3" not in set(cw.legacy_grid_id)   # its only household has no new grid


def test_boundary_reuse_counts_the_legacy_line_a_new_grid_follows():
    unit = shapely.box(0, 0, 100, 100)
    legacy = np.array([shapely.box(0, 0, 50, 100), shapely.box(50, 0, 100, 100)], dtype=object)
    same = legacy.copy()
    other = np.array([shapely.box(0, 0, 100, 40), shapely.box(0, 40, 100, 100)], dtype=object)
    assert boundary_reuse(legacy, same, np.array([unit]))[0] == pytest.approx(1.0)
    share, length = boundary_reuse(legacy, other, np.array([unit]))
    assert length == pytest.approx(100.0) and share < 0.05   # only where the lines cross


# --------------------------------------------------------------------------------- consensus groups
def test_majority_of_layers_recovers_the_truth_groups_on_a_lattice():
    rows, cols = 6, 8
    edges = np.array(lattice_edges(rows, cols))
    col = np.tile(np.arange(cols), rows)
    truth = col // 2                                    # four vertical strips of 2 columns
    merged = np.where(truth == 1, 0, truth)             # strips 0 and 1 as one grid
    split = truth * 10 + (np.repeat(np.arange(rows), cols) >= 3) * (truth == 2)  # strip 2 cut in two
    shifted = np.where(col == 6, 2, truth)              # column 6 moved from strip 3 to strip 2
    labels = np.column_stack([merged, split, shifted])
    agree = ag.edge_agreement(edges, labels)
    h = np.ones(rows * cols)
    groups = ag.consensus_groups(edges, np.ones(len(edges)), agree, h, 3, cap=1e9)
    assert adjusted_rand_index(groups, truth) == 1.0
    lab = ag.to_k(groups, edges, agree.astype(float), h, np.column_stack([col, col]).astype(float), 4)
    assert adjusted_rand_index(lab, truth) == 1.0


def test_to_k_merges_the_lightest_group_and_splits_the_heaviest():
    edges = np.array(lattice_edges(1, 6))
    h = np.array([5, 5, 5, 5, 1, 1])
    xy = np.column_stack([np.arange(6), np.zeros(6)]).astype(float)
    few = ag.to_k(np.array([0, 0, 0, 0, 1, 1]), edges, np.ones(5), h, xy, 3)
    assert len(np.unique(few)) == 3 and len(np.unique(few[:4])) == 2      # the heavy group was cut
    many = ag.to_k(np.arange(6), edges, np.array([1.0, 1, 1, 1, 2]), h, xy, 5)
    assert len(np.unique(many)) == 5 and many[4] == many[5]              # the light pair joined


# ------------------------------------------------------------------------------ legacy generator
def test_generated_layers_change_at_most_a_fifth_of_the_truth_grids(small_plan):
    truth = small_plan.grids.to_crs(small_plan.grids.estimate_utm_crs())
    n = len(truth)
    for kind in KINDS:
        layer = derive(truth, kind, 0.2, seed=3)
        same = sum(any(g.equals(t) for t in truth.geometry) for g in layer.geometry)
        assert n - same <= int(0.2 * n) and same < n, kind
        assert layer.union_all().symmetric_difference(truth.union_all()).area < 1.0
    again = legacy_layers(truth, seed=3)
    assert all(again[k].geometry.geom_equals(derive(truth, k, 0.2, seed=3 + i).geometry).all() for i, k in enumerate(KINDS))


# --------------------------------------------------------------------------------------- the merge
@pytest.fixture(scope="module")
def merged(small_plan, sample_small, tmp_path_factory):
    from gridplan.optimize.merge import merge_layers, write_merge
    d = tmp_path_factory.mktemp("merge")
    files = {kind: f"{path}:{kind}_id" if kind == "shifts" else path
             for kind, path in write_legacy_files(small_plan, d, seed=1).items()}
    result, report = merge_layers(files, sample_small["boundaries"], sample_small["households"],
                                  sample_small.get("facilities"), sample_small.get("roster"), time_limit_per_unit=3.0)
    out = write_merge(result, report, d / "out")
    return result, report, out


def test_merge_recovers_the_truth_keeps_the_contract_and_balance(merged, small_plan, sample_small):
    result, report, out = merged
    truth = small_plan.households["grid_code"].to_numpy(object)
    mine = result.households["grid_code"].to_numpy(object)
    ok = pd.notna(truth) & pd.notna(mine)
    assert (ok == pd.notna(truth)).all()
    assert adjusted_rand_index(truth[ok], mine[ok], small_plan.households["households"].to_numpy()[ok]) >= 0.9
    bal = result.summary["balance"]
    assert bal["uncertified_miss_grids"] == 0 and bal["failed_grids"] == 0
    assert result.summary["partition"]["statuses"].get("consensus", 0) >= 1
    assert {lay["layer"] for lay in report.layers} == set(KINDS)
    assert all(0.5 < lay["ari"] <= 1.0 for lay in report.layers)


def test_merged_plan_passes_the_contract_checker(merged, sample_small):
    res = run_check_plan(merged[2], sample_small["boundaries"], sample_small["households"], "--certify")
    assert res["ok"], res["fails"]


def test_merge_writes_crosswalk_and_merge_json(merged):
    result, report, out = merged
    cw = pd.read_csv(out / "crosswalk.csv", dtype={"grid_code": str, "legacy_grid_id": str})
    assert list(cw.columns) == ["layer", "legacy_grid_id", "grid_code", "households", "share_of_legacy",
                                "share_of_new"]
    for _, part in cw.groupby("layer"):
        assert np.allclose(part.groupby("legacy_grid_id")["share_of_legacy"].sum(), 1.0)
        assert np.allclose(part.groupby("grid_code")["share_of_new"].sum(), 1.0)
        assert part["households"].sum() == result.households["households"][result.households.grid_code.notna()].sum()
    layer = gpd.read_file(out / "plan.gpkg", layer="crosswalk")
    assert len(layer) == len(cw) and layer.crs.to_epsg() == 4326
    m = json.loads((out / "merge.json").read_text())
    assert {x["layer"]: x["id_field"] for x in m["layers"]} == {"merges": "merges_id", "splits": "splits_id",
                                                              "shifts": "shifts_id"}
    assert set(m["conflicts"]) == set(KINDS)
    assert json.loads((out / "summary.json").read_text())["merge"]["merges"]["ari"] == m["layers"][0]["ari"]


def test_conflicts_name_crossing_and_overlapping_legacy_grids(sample_small):
    from gridplan.optimize.merge import merge_layers
    units = gpd.read_file(sample_small["boundaries"])
    a = units.geometry.iloc[0]
    j = int(np.flatnonzero(units.geometry.touches(a).to_numpy())[0])
    layer = gpd.GeoDataFrame({"pid": ["both", "first"]},
                             geometry=[shapely.union(a, units.geometry.iloc[j]), a], crs=units.crs)
    _, report = merge_layers({"police": layer}, sample_small["boundaries"], sample_small["households"],
                             time_limit_per_unit=1.0)
    c = report.conflicts["police"]
    assert [x["legacy_grid_id"] for x in c["grids_crossing_units"]] == ["both"]
    assert c["overlapping_grids"][0]["legacy_grid_ids"] == ["both", "first"]
    assert c["households_outside_layer"] > 0


def test_a_layer_without_its_id_field_is_a_data_error_naming_the_file(sample_small, tmp_path):
    from gridplan.geo.problems import DataError
    from gridplan.optimize.merge import merge_layers
    units = gpd.read_file(sample_small["boundaries"])[["geometry"]].assign(name="same")
    units.to_file(tmp_path / "urban.geojson", driver="GeoJSON")
    with pytest.raises(DataError) as e:
        merge_layers({"urban": str(tmp_path / "urban.geojson") + ":UID"}, sample_small["boundaries"],
                     sample_small["households"])
    assert any("urban.geojson" in p.source and "UID" in p.message for p in e.value.problems)
    with pytest.raises(DataError) as e:     # no column is unique: nothing to default to
        merge_layers({"urban": tmp_path / "urban.geojson"}, sample_small["boundaries"], sample_small["households"])
    assert any("unique" in p.message for p in e.value.problems)


# ------------------------------------------------------------------------------------------ the CLI
def test_cli_merge_writes_the_plan_and_crosswalk(merged, sample_small, tmp_path):
    from test_cli import gridplan
    d = merged[2].parent
    out = tmp_path / "cli"
    r = gridplan("merge", "--layer", f"police={d / 'merges.geojson'}", "--layer", f"urban={d / 'splits.geojson'}:splits_id",
                 "--boundaries", sample_small["boundaries"], "--households", sample_small["households"],
                 "--time-limit", "3", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "layer police" in r.stderr and "ARI" in r.stderr
    assert set(pd.read_csv(out / "crosswalk.csv")["layer"]) == {"police", "urban"}
    assert (out / "report.html").exists() and (out / "merge.json").exists()


def test_cli_merge_errors_name_the_layer(sample_small, tmp_path):
    from test_cli import gridplan
    base = ["--boundaries", sample_small["boundaries"], "--households", sample_small["households"], "--out", tmp_path]
    r = gridplan("merge", "--layer", "police", *base)
    assert r.returncode == 2 and "NAME=FILE" in r.stderr
    r = gridplan("merge", "--layer", "police=missing.gpkg", *base)
    assert r.returncode == 1 and "missing.gpkg" in r.stderr
    r = gridplan("merge", "--layer", f"a={sample_small['boundaries']}", "--layer", f"a={sample_small['boundaries']}",
                 *base)
    assert r.returncode == 2 and "twice" in r.stderr
    r = gridplan("merge", "--layer", f"a={sample_small['boundaries']}:NOPE", *base)
    assert r.returncode == 1 and "NOPE" in r.stderr and "Traceback" not in r.stderr


def test_run_merge_is_a_job_runner(merged, sample_small, tmp_path):
    from gridplan.optimize.merge import run_merge
    d = merged[2].parent
    stages = []
    summary = run_merge({"boundaries": sample_small["boundaries"], "households": sample_small["households"],
                         "layer:police": d / "merges.geojson", "layer:urban": d / "shifts.geojson"},
                        {"layer_id_fields": {"urban": "shifts_id"}, "time_limit_per_unit": 3.0}, tmp_path / "job",
                        lambda stage, f: stages.append((stage, f)))
    assert set(summary["merge"]) == {"police", "urban"} and summary["grids"] == len(merged[0].grids)
    assert (tmp_path / "job" / "crosswalk.csv").exists() and stages and stages[-1][1] >= 0.98
    m = json.loads((tmp_path / "job" / "merge.json").read_text())
    assert {x["layer"]: x["id_field"] for x in m["layers"]} == {"police": "merges_id", "urban": "shifts_id"}


def test_a_layer_of_points_or_garbage_is_refused_by_name(sample_small, tmp_path):
    from gridplan.geo.problems import DataError
    from gridplan.optimize.merge import merge_layers
    pts = gpd.GeoDataFrame({"pid": ["a", "b"]}, geometry=gpd.points_from_xy([109.3, 109.31], [19.3, 19.31]), crs=4326)
    pts.to_file(tmp_path / "health.geojson", driver="GeoJSON")
    (tmp_path / "party.geojson").write_bytes(b"\x00\x01 not json at all")
    for name in ("health", "party"):
        with pytest.raises(DataError) as e:
            merge_layers({name: tmp_path / f"{name}.geojson"}, sample_small["boundaries"], sample_small["households"])
        assert any(p.fatal and p.source == f"{name}.geojson" for p in e.value.problems), e.value.problems


def test_merge_is_the_same_on_worker_processes(merged, sample_small):
    from gridplan.optimize.merge import merge_layers
    d = merged[2].parent
    files = {"merges": d / "merges.geojson", "splits": d / "splits.geojson", "shifts": f"{d / 'shifts'}.geojson:shifts_id"}
    again, _ = merge_layers(files, sample_small["boundaries"], sample_small["households"], sample_small.get("facilities"),
                            sample_small.get("roster"), time_limit_per_unit=3.0, jobs=2)
    assert (again.households["grid_code"].fillna("") == merged[0].households["grid_code"].fillna("")).all()
    assert again.grids.geometry.geom_equals_exact(merged[0].grids.geometry, 1e-9).all()
