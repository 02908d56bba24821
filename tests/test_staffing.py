"""Staffing: the allocation's optimum checked by brute force; the budget honoured; roster rules."""
import itertools

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gridplan.optimize.options import PlanOptions
from gridplan.optimize.staffing import allocate_workers, assign_roster, grid_workload, max_load, resolve_budget


def brute_force_best(w, budget):
    n = len(w)
    best = np.inf
    for doubled in itertools.combinations(range(n), budget - n):
        k = np.ones(n)
        k[list(doubled)] = 2
        best = min(best, max_load(w, k))
    return best


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1, 1000, allow_nan=False), min_size=1, max_size=8), st.data())
def test_allocation_is_optimal_and_spends_the_budget(w, data):
    w = np.array(w)
    budget = data.draw(st.integers(len(w), 2 * len(w)))
    k = allocate_workers(w, budget)
    assert set(np.unique(k)) <= {1, 2}
    assert k.sum() == budget
    assert max_load(w, k) == pytest.approx(brute_force_best(w, budget))


def test_allocation_rejects_budgets_outside_one_to_two_per_grid():
    with pytest.raises(ValueError):
        allocate_workers(np.ones(3), 2)
    with pytest.raises(ValueError):
        allocate_workers(np.ones(3), 7)


def test_resolve_budget_sources_error_and_cap():
    o = PlanOptions()
    assert resolve_budget(10, 5000, o) == (10, [])
    assert resolve_budget(10, 5000, o.with_(workers_budget=15))[0] == 15
    with pytest.raises(ValueError, match="10 grids"):
        resolve_budget(10, 5000, o.with_(workers_budget=9))
    b, notes = resolve_budget(10, 5000, o.with_(workers_budget=50))
    assert b == 20 and notes and "capped" in notes[0]
    # the norm: 30 per 10,000 residents of 5,000 -> 15
    assert resolve_budget(10, 5000, o.with_(workers_per_10k=30))[0] == 15
    with pytest.raises(ValueError, match="per 10,000"):
        resolve_budget(10, 5000, o.with_(workers_per_10k=10))
    assert resolve_budget(10, 5000, o, roster_size=13)[0] == 13


def _grids(n, size=500.0):
    polys = [shapely.box(i * size, 0, (i + 1) * size, size) for i in range(n)]
    return gpd.GeoDataFrame({"grid_code": [f"G{i:03d}" for i in range(n)], "households": 100 + 10 * np.arange(n),
                             "population": np.nan, "weight": 0.0}, geometry=polys, crs=32650)


def test_workload_grows_with_households_population_weight_and_area():
    g = _grids(2)
    base = grid_workload(g, PlanOptions())
    g2 = g.copy()
    g2.loc[0, "weight"] = 5.0
    g2.loc[1, "population"] = 1000.0
    w2 = grid_workload(g2, PlanOptions())
    assert w2[0] > base[0] and w2[1] > base[1]
    big = g.copy()
    big.geometry = big.geometry.scale(3, 3)
    assert (grid_workload(big, PlanOptions()) > base).all()


def _roster(roles, xs):
    return gpd.GeoDataFrame({"worker_id": [f"W{i}" for i in range(len(roles))], "name": [f"n{i}" for i in range(len(roles))],
                             "role": roles}, geometry=shapely.points(np.column_stack([xs, np.full(len(xs), 250.0)])), crs=32650)


def test_roster_rules_full_first_part_second_nearest_home():
    g = _grids(3)
    wpg = np.array([2, 1, 2])
    # two full-time living at grid 0 and 2, one far away; two part-time
    r = _roster(["full", "full", "full", "part", "part"], [250.0, 2250.0, 1250.0, 300.0, 1200.0])
    out = assign_roster(g, wpg, r)
    assert out.worker_id.is_unique
    first = out[out.slot == "first"]
    assert sorted(first.grid_code) == ["G000", "G001", "G002"]
    assert (first.role == "full").all()
    counts = out.grid_code.value_counts()
    assert counts.to_dict() == {"G000": 2, "G002": 2, "G001": 1}
    assert set(out[out.role == "part"].grid_code) == {"G000", "G002"}
    # brute force: among assignments obeying the rules, ours has the least total travel
    cen = g.geometry.representative_point()
    best = np.inf
    for perm in itertools.permutations(range(5)):
        fulls = perm[:3]
        if any(r.role.iloc[i] != "full" for i in fulls):
            continue
        seconds = perm[3:]
        if any(r.role.iloc[i] != "part" for i in seconds):
            continue
        grids_of = [0, 1, 2, 0, 2]
        tot = sum(r.geometry.iloc[i].distance(cen.iloc[grids_of[k]]) for k, i in enumerate(perm))
        best = min(best, tot)
    assert out.travel_m.sum() == pytest.approx(best, abs=1.0)


def test_roster_with_too_few_full_time_workers_staffs_what_it_can_and_names_the_gaps():
    from gridplan.optimize.staffing import vacancies
    g = _grids(3)
    r = _roster(["full", "part", "part"], [0.0, 1.0, 2.0])
    out = assign_roster(g, np.array([1, 1, 1]), r)
    # the one full-timer holds a first place; part-timers hold the other two rather than leave them empty
    assert (out.slot == "first").sum() == 3
    assert out.loc[out.role == "full", "slot"].eq("first").all()
    empty, part_led = vacancies(g, out)
    assert empty == [] and len(part_led) == 2
    fewer = assign_roster(g, np.array([1, 1, 1]), _roster(["full"], [0.0]))
    empty, part_led = vacancies(g, fewer)
    assert len(empty) == 2 and part_led == []


def test_roster_extra_workers_left_unassigned_and_full_fill_second_when_no_part():
    g = _grids(2)
    r = _roster(["full", "full", "full", "full"], [250.0, 750.0, 300.0, 5000.0])
    out = assign_roster(g, np.array([2, 1]), r)
    assert out.grid_code.notna().sum() == 3
    assert out.set_index("worker_id").grid_code.isna()["W3"]
