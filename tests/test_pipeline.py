"""The whole pipeline on the small bundled sample: contract layers, invariants, determinism, executors."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from conftest import run_check_plan

CONTRACT_COLUMNS = {
    "grids": ["grid_code", "village_code", "township_code", "county_code", "households", "population", "workers",
              "area_km2", "polsby_popper"],
    "stations": ["station_id", "name", "existing", "village_code", "households_covered"],
    "service_areas": ["station_id", "minutes", "mode"],
    "households": ["grid_code", "station_id", "minutes"],
    "workers": ["worker_id", "grid_code", "role"],
    "units": ["households", "grids", "workers", "coverage"],
}


def test_layers_keep_to_the_contract(small_plan):
    for name, cols in CONTRACT_COLUMNS.items():
        layer = getattr(small_plan, name)
        assert isinstance(layer, gpd.GeoDataFrame), name
        assert layer.crs.to_epsg() == 4326, name
        missing = [c for c in cols if c not in layer.columns]
        assert not missing, f"{name} lacks {missing}"
    s = small_plan.summary
    for k in ["households", "units", "grids", "workers", "stations", "coverage", "balance", "contiguous_share",
              "gap_area_m2", "overlap_area_m2", "unassigned_households", "problems", "runtime_s"]:
        assert k in s, k
    assert set(s["coverage"]) >= {"minutes", "mode", "share"}
    assert set(s["balance"]) >= {"max_abs_dev", "p95_abs_dev", "within_tolerance_share"}


def test_grids_nest_tile_and_count(small_plan):
    grids, units = small_plan.grids, small_plan.units
    assert grids.grid_code.is_unique
    assert (grids.geom_type == "Polygon").all() and grids.is_valid.all()
    assert set(grids.workers.unique()) <= {1, 2}
    metric = grids.estimate_utm_crs()
    G, U = grids.to_crs(metric), units.to_crs(metric).set_index("village_code")
    for vc, sub in G.groupby("village_code"):
        unit = U.loc[vc].geometry
        union = shapely.union_all(sub.geometry.values)
        assert union.symmetric_difference(unit).area <= 1e-3 * unit.area, vc
        assert sub.geometry.area.sum() - union.area <= 1e-4 * unit.area, vc
        assert all(str(c).startswith(vc) and len(str(c)) == len(vc) + 3 for c in sub.grid_code)
    hh = small_plan.households
    per_grid = hh.dropna(subset=["grid_code"]).groupby("grid_code")["households"].sum()
    assert (per_grid.reindex(grids.grid_code).fillna(0).to_numpy() == grids.households.to_numpy()).all()
    assert small_plan.summary["households"] == int(hh.households.sum())
    assert small_plan.units["grids"].sum() == len(grids)
    assert small_plan.summary["workers"] == int(grids.workers.sum()) == int(small_plan.units.workers.sum())


def test_grid_codes_run_in_reading_order(small_plan):
    """Sequence numbers follow rows north→south, west→east inside a row (geo.grids.order_for_codes)."""
    from gridplan.geo.grids import order_for_codes
    grids = small_plan.grids.to_crs(small_plan.summary["crs"])   # the plan's own metric CRS
    for _, sub in grids.groupby("village_code"):
        sub = sub.sort_values("grid_code")
        seq = sub.grid_code.str[-3:].astype(int).to_numpy()
        assert (seq == np.arange(1, len(sub) + 1)).all()
        assert (order_for_codes(sub.geometry.values) == np.arange(len(sub))).all()


def test_output_dir_passes_the_contract_checker(small_plan_dir, sample_small):
    res = run_check_plan(small_plan_dir, sample_small["boundaries"], sample_small["households"],
                         "--min-within-tolerance", "0.98")
    assert res["ok"], res["fails"]
    summary = json.loads((small_plan_dir / "summary.json").read_text())
    assert abs(summary["coverage"]["share"] - res["facts"]["coverage_recomputed"]) < 0.005


def test_same_seed_same_plan_across_executors(sample_small, small_plan):
    from gridplan.optimize import plan
    p2 = plan(sample_small["boundaries"], sample_small["households"], sample_small.get("facilities"),
              sample_small.get("roster"), time_limit_per_unit=3.0, jobs=2)
    a = small_plan.grids[["grid_code", "households"]].reset_index(drop=True)
    b = p2.grids[["grid_code", "households"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert (small_plan.households.grid_code.fillna("") == p2.households.grid_code.fillna("")).all()


@pytest.mark.slow
def test_dask_local_cluster_gives_identical_grids(sample_small, small_plan):
    distributed = pytest.importorskip("dask.distributed")
    from gridplan.optimize import plan
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        p3 = plan(sample_small["boundaries"], sample_small["households"], sample_small.get("facilities"),
                  sample_small.get("roster"), time_limit_per_unit=3.0, scheduler=cl.scheduler_address)
    pd.testing.assert_frame_equal(small_plan.grids[["grid_code", "households"]].reset_index(drop=True),
                                  p3.grids[["grid_code", "households"]].reset_index(drop=True))
    assert p3.summary["partition"]["scheduler"] == cl.scheduler_address


def test_bad_options_are_value_errors(sample_small):
    from gridplan.optimize import plan
    with pytest.raises(ValueError, match="tolerance"):
        plan(sample_small["boundaries"], sample_small["households"], tolerance=1.5)
    with pytest.raises(ValueError, match="unknown plan option"):
        plan(sample_small["boundaries"], sample_small["households"], target_housholds=300)


def test_baseline_keeps_balanced_grids_and_codes(small_plan, small_plan_dir, sample_small, tmp_path):
    from gridplan.optimize import plan
    # same data against last year's plan: every grid is kept with its code and shape, nobody moves
    same = plan(sample_small["boundaries"], sample_small["households"], sample_small.get("facilities"),
                sample_small.get("roster"), time_limit_per_unit=3.0, baseline=str(small_plan_dir))
    assert same.summary["baseline"]["changed_households"] == 0
    assert set(same.grids.grid_code) == set(small_plan.grids.grid_code)
    # a new estate of 600 households in the first unit: only that unit is re-split
    hh = pd.read_csv(sample_small["households"])
    first_unit = small_plan.grids.sort_values("households").iloc[-1]
    pt = first_unit.geometry.representative_point()
    extra = pd.DataFrame({"id": [f"NEW{i}" for i in range(6)], "lon": pt.x, "lat": pt.y, "households": 100})
    grown = pd.concat([hh, extra], ignore_index=True)
    path = tmp_path / "grown.csv"
    grown.to_csv(path, index=False)
    p = plan(sample_small["boundaries"], path, sample_small.get("facilities"), sample_small.get("roster"),
             time_limit_per_unit=3.0, baseline=str(small_plan_dir))
    b = p.summary["baseline"]
    assert b["changed_households"] > 0
    unchanged_units = set(small_plan.grids.village_code) - {first_unit.village_code}
    old = small_plan.grids[small_plan.grids.village_code.isin(unchanged_units)].set_index("grid_code")
    new = p.grids[p.grids.village_code.isin(unchanged_units)].set_index("grid_code")
    assert set(old.index) == set(new.index)
    sub_new = p.grids[p.grids.village_code == first_unit.village_code]
    assert sub_new.grid_code.is_unique and len(sub_new) >= 2
