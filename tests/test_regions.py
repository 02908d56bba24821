"""Per-county siting (optimize.regions): the coverage target is met province-wide, households outside
every unit are counted the same way in the models and in the share, and the province summary claims
no bound it has not proven."""
import geopandas as gpd
import numpy as np
import pytest
import shapely
from scipy import sparse

from gridplan.geo import travel
from gridplan.optimize import regions, siting_candidates, siting_global
from gridplan.optimize import siting_models as sm
from gridplan.optimize.options import PlanOptions
from gridplan.optimize.siting import site_stations

CELL = 2500.0
X0, Y0 = 500000.0, 3000000.0


def province(seed=0, n_hh=2400, outside=120):
    """Two counties of 2x2 square units side by side (A west, B east) with a 2.5 km strip of no unit
    between them; households clustered round towns, ``outside`` of them in the strip."""
    rng = np.random.default_rng(seed)
    polys, codes, county = [], [], []
    for c, (cx0, cc) in enumerate(((X0, "460001"), (X0 + 3 * CELL, "460002"))):
        for i in range(2):
            for j in range(2):
                polys.append(shapely.box(cx0 + i * CELL, Y0 + j * CELL, cx0 + (i + 1) * CELL, Y0 + (j + 1) * CELL))
                codes.append(f"{cc}{100 + 2 * i + j:03d}000")
                county.append(cc)
    units = gpd.GeoDataFrame({"unit_code": codes, "village_name": codes, "county_code": county},
                             geometry=polys, crs=32650)
    towns = np.r_[rng.uniform([X0, Y0], [X0 + 2 * CELL, Y0 + 2 * CELL], (6, 2)),
                  rng.uniform([X0 + 3 * CELL, Y0], [X0 + 5 * CELL, Y0 + 2 * CELL], (6, 2))]
    xy = towns[rng.integers(0, 12, n_hh)] + rng.normal(0, 300, (n_hh, 2))
    xy[:, 1] = np.clip(xy[:, 1], Y0 + 1, Y0 + 2 * CELL - 1)
    in_a = xy[:, 0] < X0 + 2.5 * CELL
    xy[:, 0] = np.where(in_a, np.clip(xy[:, 0], X0 + 1, X0 + 2 * CELL - 1),
                        np.clip(xy[:, 0], X0 + 3 * CELL + 1, X0 + 5 * CELL - 1))
    strip = rng.uniform([X0 + 2 * CELL + 10, Y0 + 10], [X0 + 2.4 * CELL, Y0 + 2 * CELL - 10], (outside, 2))
    xy = np.r_[xy, strip]
    hh = gpd.GeoDataFrame({"households": rng.integers(1, 5, len(xy)).astype(float)},
                          geometry=shapely.points(xy), crs=32650)
    pi, ui = units.sindex.query(hh.geometry.values, predicate="intersects")
    uidx = np.full(len(hh), -1)
    uidx[pi[::-1]] = ui[::-1]
    hh["unit_idx"] = uidx
    ll = hh.to_crs(4326)
    hh["lon"], hh["lat"] = ll.geometry.x, ll.geometry.y
    return hh, units


def recount(hh, stations, minutes=20.0, speed_kmh=4.0):
    """The plan's own rule (geo.travel, as lookup answers): nearest station by the ellipsoid chord, weighted."""
    _, mins = travel.station_nearest(travel.household_lonlat(hh), travel.lonlat_of(stations),
                                     travel.metres_per_minute(speed_kmh))
    w = hh.households.to_numpy(float)
    return float((w * travel.within_minutes(mins, minutes)).sum() / w.sum())


def planar_recount(hh, stations, minutes=20.0, speed_kmh=4.0):
    """The plan checker's rule: straight-line distance in the metric CRS (its scale error is ~4e-4)."""
    _, d = shapely.STRtree(stations.geometry.values).query_nearest(hh.geometry.values, return_distance=True,
                                                                   all_matches=False)
    w = hh.households.to_numpy(float)
    return float((w * (d / (speed_kmh * 1000 / 60) <= minutes + 1e-6)).sum() / w.sum())


@pytest.fixture(scope="module")
def prov():
    return province()


def test_households_outside_every_unit_are_in_the_models_and_the_share(prov):
    hh, units = prov
    outside = hh.unit_idx.to_numpy() < 0
    assert outside.sum() == 120
    r = regions.site_by_county(hh, units, PlanOptions(coverage_target=0.9))
    s = r.summary
    w = hh.households.to_numpy(float)
    # every household is in exactly one county's model: the counties' totals add up to the province's
    assert sum(c["households"] for c in s["counties"].values()) == pytest.approx(w.sum())
    assert s["households_total"] == pytest.approx(w.sum())
    assert s["share"] >= 0.9 and s["share"] == pytest.approx(recount(hh, r.stations), abs=1e-12)
    assert s["share"] == pytest.approx(planar_recount(hh, r.stations), abs=2e-3)
    # the strip lies west of the midline, so its households belong to county A (nearest unit)
    hc = regions.households_county(hh, units, units.county_code.to_numpy())
    assert set(hc[outside]) == {"460001"}
    assert all(isinstance(x, str) for x in r.hh_station[outside & (r.hh_minutes <= 20 + 1e-6)])


def county_reds(hh, units, options):
    county = units.county_code.to_numpy()
    return {t.code: regions.site_county(t).red
            for t in regions.county_tasks(hh, units, options, None, None, county)}


def test_province_bound_is_proven_by_the_province_wide_model(prov):
    """The bound comes from one model over all counties; one new station fewer than it cannot reach the
    province's target in that model (checked with the exact province-wide MCLP)."""
    hh, units = prov
    o = PlanOptions(coverage_target=0.9)
    s = regions.site_by_county(hh, units, o).summary
    assert s["status"] == "OPTIMAL" and s["bound"] == s["stations"] and s["gap"] == 0
    reds = county_reds(hh, units, o)
    codes = sorted(reds)
    cov = sparse.block_diag([reds[c].cov.astype(float) for c in codes], format="csr")
    w = np.concatenate([reds[c].w for c in codes])
    best = sm.max_cover(cov, w, s["bound"] - s["existing"] - 1)
    assert best.status == "OPTIMAL"
    assert best.covered_weight + sum(reds[c].base for c in codes) < 0.9 * s["households_total"]
    for c in s["counties"].values():
        assert c["status"] == "OPTIMAL" and c["gap"] == 0 and c["bound"] == c["stations"]
        assert c["share"] >= c["target_share"] - 1e-12


def test_province_wide_model_beats_every_county_at_the_province_share(prov):
    """Counties may trade coverage: here the province reaches 0.9 with fewer stations than each
    county reaching 0.9 of its own households would need."""
    hh, units = prov
    o = PlanOptions(coverage_target=0.9)
    r = regions.site_by_county(hh, units, o)
    county = units.county_code.to_numpy()
    each = sum(regions.site_county(t).result.summary["stations"]
               for t in regions.county_tasks(hh, units, o, None, None, county))
    assert r.summary["stations"] < each
    assert r.summary["share"] >= 0.9 and any("set by the province-wide model" in n for n in r.summary["notes"])


def test_without_the_province_wide_model_no_bound_is_claimed(prov, monkeypatch):
    hh, units = prov
    monkeypatch.setattr(siting_global, "MAX_NNZ", 0)
    s = regions.site_by_county(hh, units, PlanOptions(coverage_target=0.9)).summary
    assert s["bound"] is None and s["gap"] is None and s["status"] == "ALLOCATED"
    assert s["share"] >= 0.9
    assert any("no bound on the province's fewest stations" in n for n in s["notes"])


def facilities_only(hh, monkeypatch, b_east_limit):
    """Only the given facilities as candidates (generated ones switched off): 60 in county A, 25 in
    county B west of ``b_east_limit`` (in cells from X0)."""
    monkeypatch.setattr(siting_candidates, "generate_candidates",
                        lambda *a, **k: (np.zeros((0, 2)), np.array([], dtype=object)))
    rng = np.random.default_rng(5)
    xy = np.array([[g.x, g.y] for g in hh.geometry])
    a_pts = xy[(xy[:, 0] < X0 + 2.5 * CELL)]
    b_pts = xy[(xy[:, 0] > X0 + 2.5 * CELL) & (xy[:, 0] < X0 + b_east_limit * CELL)]
    fac_xy = np.r_[a_pts[rng.choice(len(a_pts), 60, replace=False)], b_pts[rng.choice(len(b_pts), 25, replace=False)]]
    return gpd.GeoDataFrame({"facility_id": [f"F{i}" for i in range(len(fac_xy))], "existing": False},
                            geometry=shapely.points(fac_xy), crs=32650)


def test_a_county_that_cannot_reach_the_share_is_made_up_for_by_the_others(prov, monkeypatch):
    """County B's facilities reach about half its households: county A's target is raised (only as
    far as needed) until the province reaches 0.7."""
    hh, units = prov
    fac = facilities_only(hh, monkeypatch, 4.2)
    r = regions.site_by_county(hh, units, PlanOptions(coverage_target=0.7), facilities=fac)
    s = r.summary
    a, b = s["counties"]["460001"], s["counties"]["460002"]
    assert b["share"] < 0.7 and b["target_share"] == pytest.approx(0.7)     # B alone cannot reach it ...
    assert 0.7 < a["target_share"] < 0.95                                 # ... so A covers more, as needed
    assert a["share"] >= a["target_share"] - 1e-12 and a["status"] == "OPTIMAL"
    assert s["share"] >= 0.7 and s["share"] == pytest.approx(recount(hh, r.stations), abs=1e-12)
    assert any("raised" in n for n in s["notes"])
    # the counties' own coverage reaches the province's target (cross-county service only adds)
    own = a["share"] * a["households"] + b["share"] * b["households"]
    assert own >= 0.7 * s["households_total"] * (1 - 1e-12)


def test_an_unreachable_province_target_is_said_so(prov, monkeypatch):
    hh, units = prov
    fac = facilities_only(hh, monkeypatch, 4.0)
    s = regions.site_by_county(hh, units, PlanOptions(coverage_target=0.8), facilities=fac).summary
    assert s["share"] < 0.8
    assert any("province target 0.8 unreachable" in n for n in s["notes"])


def test_allocate_takes_the_largest_marginal_gains_first_as_prefixes():
    gains = {"A": np.array([50.0, 30.0, 5.0]), "B": np.array([40.0, 35.0, 1.0])}
    assert regions.allocate(60.0, gains) == {"A": 50.0, "B": 40.0}
    assert regions.allocate(120.0, gains) == {"A": 50.0, "B": 75.0}
    assert regions.allocate(126.0, gains) == {"A": 80.0, "B": 75.0}
    assert regions.allocate(1e9, gains) == {"A": 85.0, "B": 76.0}
    assert regions.allocate(0.0, gains) == {}


def test_one_county_is_site_stations_itself(prov):
    hh, units = prov
    one = units.assign(county_code="460001")
    a = regions.site_by_county(hh, one, PlanOptions(coverage_target=0.9))
    b = site_stations(hh, one, PlanOptions(coverage_target=0.9))
    assert list(a.stations.station_id) == list(b.stations.station_id)
    assert a.summary["status"] == "OPTIMAL" and a.summary["bound"] == a.summary["stations"]
