"""Adopting a grid layer: codes kept, retired codes never reused, households moved near the fewest possible."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridplan.optimize.adopt import old_seq_of_points
from gridplan.optimize.baseline import load_baseline, replan_unit
from gridplan.optimize.options import PlanOptions
from gridplan.optimize.partition import choose_k
from tests.helpers.adopt_scenario import grow, keep_share
from tests.helpers.fewest import contiguous_fewest, fewest_moved

OPTS = PlanOptions(time_limit_per_unit=1.0)
UNIT = "469025100001"


def grown_unit(seed: int, n: int = 36, growth: float = 1.15):
    """Three 1 km grids of a unit with ``n`` points of 10-30 households; grid 1's points grow by ``growth``."""
    rng = np.random.default_rng(seed)
    unit = shapely.box(0, 0, 3000, 1000)
    xy = rng.uniform([5, 5], [2995, 995], (n, 2))
    w = rng.integers(1, 4, n) * 10
    w = np.where(xy[:, 0] < 1000, (w * growth).astype(int), w)
    old = gpd.GeoDataFrame({"grid_code": [f"{UNIT}{i:03d}" for i in (1, 2, 3)], "village_code": UNIT,
                            "seq": [1, 2, 3]}, geometry=[shapely.box(i * 1000, 0, (i + 1) * 1000, 1000) for i in range(3)],
                           crs=4545)
    return unit, xy, w, old


def moved_and_fewest(seed: int):
    unit, xy, w, old = grown_unit(seed)
    target = float(w[xy[:, 0] >= 1000].sum()) / 2       # last year's grids held one target each
    part, seqs = replan_unit(unit, xy, w, target, OPTS, old)
    was = old_seq_of_points(list(old.geometry), [1, 2, 3], xy)
    moved = int(w[np.asarray(seqs)[part.labels] != was].sum())
    fewest = fewest_moved(was - 1, w, 3, choose_k(w.sum(), target), 0.10)
    return part, moved, fewest


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_moves_are_counted_truly_and_never_below_the_fewest_possible(seed):
    part, moved, fewest = moved_and_fewest(seed)
    assert f"{moved} households moved" in " ".join(part.notes)
    if part.balance == "within":
        assert moved >= fewest                               # the geometry-free optimum is a lower bound
    else:                                                    # a miss says so, grid by grid
        assert part.balance == "miss" and any("outside ±10%" in n for n in part.notes)


def contiguous_fewest_of(seed: int) -> int:
    """The fewest households moved over grids that are connected unions of the points' Voronoi cells."""
    unit, xy, w, old = grown_unit(seed)
    target = float(w[xy[:, 0] >= 1000].sum()) / 2
    was = old_seq_of_points(list(old.geometry), [1, 2, 3], xy)
    return contiguous_fewest(unit, xy, w, was - 1, 3, choose_k(w.sum(), target), 0.10)


@pytest.mark.parametrize("seed", [1, 3, 12, 16, 21])   # contiguity costs moves, the search is hard, or 3 grids grow to 4
def test_moves_within_1_2_of_the_fewest_on_small_units(seed):
    """Issue 12's target on small units (3 grids, 36 points): moved <= 1.2 x the contiguous optimum.

    The optimum is a CP-SAT model with lazy separator rows (``tests/helpers/fewest.py``), a
    formulation independent of the product's flow model; it is never below the geometry-free bound.
    """
    part, moved, fewest = moved_and_fewest(seed)
    best = contiguous_fewest_of(seed)
    assert best >= fewest
    assert part.balance == "within" and moved <= 1.2 * best, (seed, moved, best, fewest)


def test_a_foreign_layer_is_adopted_and_its_odd_codes_retired(tmp_path):
    g = gpd.GeoDataFrame({"grid_code": [f"{UNIT}001", "A-2", f"{UNIT}001"], "village_code": UNIT},
                         geometry=[shapely.box(120, 30, 120.01, 30.01), shapely.box(120.01, 30, 120.02, 30.01),
                                   shapely.box(120.02, 30, 120.03, 30.01)], crs=4326)
    path = tmp_path / "official.geojson"
    g.to_file(path, driver="GeoJSON")
    b = load_baseline(path, "EPSG:4545")
    assert list(b["seq"]) == [1, 2, 3] and set(b["next_seq"]) == {4}
    reg = b.attrs["code_registry"][UNIT]
    assert reg["last"] == 3 and reg["retired"] == ["A-2", f"{UNIT}001"]   # the odd code and the repeat


def test_bad_baseline_file_is_a_data_error(tmp_path):
    from gridplan.geo.problems import DataError
    bad = tmp_path / "official.geojson"
    bad.write_text("not json at all")
    with pytest.raises(DataError, match="official.geojson"):
        load_baseline(bad, "EPSG:4545")


def test_adopt_after_growth_keeps_codes_and_never_reuses_a_retired_one(small_plan, small_plan_dir, sample_small,
                                                                      tmp_path):
    from gridplan.optimize import plan
    hh = pd.read_csv(sample_small["households"], dtype={"id": str})
    b = gpd.read_file(sample_small["boundaries"])
    grown, chosen = grow(hh, b, growth=0.15)
    path = tmp_path / "grown.csv"
    grown.to_csv(path, index=False)
    new = plan(sample_small["boundaries"], path, time_limit_per_unit=3.0, baseline=str(small_plan_dir))
    ks = keep_share(small_plan.grids, new.grids, grown)
    assert ks["eligible_households"] > 0 and ks["keep_share"] >= 0.90
    bal = new.summary["balance"]
    assert bal["uncertified_miss_grids"] == 0                # every grid within tolerance or certified
    from gridplan.optimize.audit import audit
    checked = audit(new.to_dir(tmp_path / "v1", report=False), sample_small["boundaries"], path,
                    first_version=False)                     # a later version: surviving codes keep their place
    assert checked.clean, [v.detail for v in checked.violations]
    reg = new.summary["code_registry"]
    assert set(reg) >= set(small_plan.grids["village_code"])
    # a second version: shrink a unit so that a grid retires, then grow it back: the code stays retired
    unit = small_plan.grids.groupby("village_code").size().idxmax()
    v2 = tmp_path / "v2"
    new.to_dir(v2, report=False)
    g = gpd.GeoDataFrame(grown, geometry=gpd.points_from_xy(grown["lon"], grown["lat"]), crs=4326)
    inside = g.within(b.set_index("village_code").loc[unit].geometry)
    keep = ~inside | (np.cumsum(inside.to_numpy()) % 3 == 0)    # two thirds of that unit's households leave
    shrunk = tmp_path / "shrunk.csv"
    grown[keep.to_numpy()].to_csv(shrunk, index=False)
    v3 = plan(sample_small["boundaries"], shrunk, time_limit_per_unit=3.0, baseline=str(v2))
    retired = set(v3.summary["code_registry"][unit]["retired"])
    assert retired, "shrinking the unit retires grids"
    v3_dir = tmp_path / "v3"
    v3.to_dir(v3_dir, report=False)
    v4 = plan(sample_small["boundaries"], path, time_limit_per_unit=3.0, baseline=str(v3_dir))
    codes = set(v4.grids.loc[v4.grids["village_code"] == unit, "grid_code"])
    assert not codes & retired, "a retired code came back"
    assert set(v4.summary["code_registry"][unit]["retired"]) >= retired


def test_every_small_unit_is_re_planned_within_tolerance():
    # the fresh answer (codes matched to the old grids) keeps a unit in tolerance where repair and re-split miss
    for seed in (3, 8, 19, 24):
        part, moved, fewest = moved_and_fewest(seed)
        assert part.balance == "within" and moved >= fewest, (seed, part.status, moved, fewest)
