"""Capacities, closures, p-center and backup coverage through ``site_stations`` and the plan: loads
recounted from the households' assigned stations never exceed a capacity, the summary's worst travel
time and double coverage are recounted, closed stations are named; the sample county's capacitated
plan reaches 90% coverage within capacity and its report draws the utilisation bars."""
import re

import numpy as np
import pandas as pd
import pytest

from gridplan.geo.report import MAX_UNIT_BARS
from gridplan.optimize.options import OptionsError, PlanOptions
from gridplan.optimize.siting import site_stations
from tests.test_siting import synthetic


@pytest.fixture(scope="module")
def county():
    return synthetic()


def loads(result, hh):
    w = hh["households"].to_numpy(float)
    served = pd.Series(w).groupby(pd.Series(result.hh_station)).sum()
    return served


def test_capacitated_coverage_target_respects_every_capacity(county):
    hh, units, fac = county
    r = site_stations(hh, units, PlanOptions(coverage_target=0.9, default_capacity=600), facilities=fac)
    st, s = r.stations, r.summary
    assert s["status"] == "OPTIMAL" and s["gap"] == 0 and s["stations_over_capacity"] == 0
    # split assignment (the default): a household point's households may go to several stations; the
    # stations' assigned households add up to the households served
    assert (st["assigned"] <= st["capacity"] + 1e-6).all()
    assert s["share"] >= 0.9 - 1e-12
    assert st["assigned"].sum() == pytest.approx(s["share"] * hh["households"].sum(), rel=1e-9)
    assert set(st["status"]) <= {"kept", "new"} and (st["utilisation"] <= 1 + 1e-9).all()
    # the capacity binds: the uncapacitated plan has fewer stations than the total demand / 600 needs
    free = site_stations(hh, units, PlanOptions(coverage_target=0.9), facilities=fac)
    assert len(st) >= max(len(free.stations), int(np.ceil(0.9 * hh["households"].sum() / 600)))


def test_facility_capacity_column_and_single_source():
    hh, units, fac = synthetic(n_hh=100)     # single source is the pair model: a small county
    fac = fac.assign(capacity=[50.0, np.nan])
    r = site_stations(hh, units, PlanOptions(coverage_target=0.8, default_capacity=60, single_source=True),
                      facilities=fac, node_limit=300)
    assert r.summary["status"] in ("OPTIMAL", "FEASIBLE") and (r.summary["gap"] == 0) == (r.summary["status"] == "OPTIMAL")
    st = r.stations.set_index("station_id")
    assert st.loc["E1", "capacity"] == 50 and st.loc["E1", "assigned"] <= 50 + 1e-9
    assert r.summary["stations_over_capacity"] == 0 and r.summary["share"] >= 0.8 - 1e-12
    served = loads(r, hh)                    # single source: recount whole household points per station
    assert (served <= st["capacity"].reindex(served.index) + 1e-6).all()
    assert np.allclose(st["assigned"].reindex(served.index), served, rtol=1e-9)


def test_closures_name_the_closed_stations(county):
    hh, units, fac = county
    dup = fac.iloc[[0, 0, 0]].copy()
    dup["facility_id"], dup["existing"] = ["E1", "E2", "E3"], True          # three stations on one spot
    r = site_stations(hh, units, PlanOptions(coverage_target=0.5, allow_close=True, max_close=2), facilities=dup)
    st = r.stations
    closed = st[st["status"] == "closed"]
    assert len(closed) == 2 and set(closed["station_id"]) < {"E1", "E2", "E3"}
    assert sorted(r.summary["closed"]) == sorted(closed["station_id"]) and r.summary["status"] == "OPTIMAL"
    assert (closed["households_covered"] == 0).all()
    kept = site_stations(hh, units, PlanOptions(coverage_target=0.5), facilities=dup)
    assert len(kept.stations) == len(st) - len(closed) + 2


def test_p_center_worst_minutes_recounted(county):
    hh, units, fac = county
    r = site_stations(hh, units, PlanOptions(siting_model="pcenter", max_stations=4), facilities=fac)
    s = r.summary
    assert s["model"] == "pcenter" and s["status"] == "OPTIMAL"
    assert s["objective"] == pytest.approx(np.nanmax(r.hh_minutes), rel=1e-6)
    fewer = site_stations(hh, units, PlanOptions(siting_model="pcenter", max_stations=3), facilities=fac)
    assert fewer.summary["objective"] >= s["objective"]


def test_backup_coverage_share_recounted(county):
    hh, units, fac = county
    r = site_stations(hh, units, PlanOptions(siting_model="backup", coverage_target=None), facilities=fac)
    s = r.summary
    assert s["model"] == "backup" and s["status"] == "OPTIMAL"
    w = hh["households"].to_numpy(float)
    assert s["objective"] == pytest.approx(s["double_coverage_share"] * w.sum(), rel=1e-9)


def test_siting_options_are_strict():
    for bad in ({"siting_model": "pdq"}, {"default_capacity": 0}, {"allow_close": "yes"}, {"max_move": -1}):
        with pytest.raises(OptionsError) as e:
            PlanOptions.from_mapping(bad)
        assert e.value.fields == tuple(bad)


@pytest.mark.slow
def test_sample_county_capacitated_plan_and_report(sample_full, tmp_path):
    from gridplan.optimize import plan
    p = plan(sample_full["boundaries"], sample_full["households"], sample_full.get("facilities"), None,
             default_capacity=700, coverage_target=0.9, time_limit_per_unit=3.0)
    st = p.stations
    assert (st["assigned"] <= st["capacity"] + 1e-6).all() and st["capacity"].notna().all()
    cov = p.summary["coverage"]
    assert cov["share"] >= 0.9 and cov["stations_over_capacity"] == 0
    out = p.to_dir(tmp_path / "out")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Station utilisation" in html
    chart = html[html.index('class="gp-utilisation"'):]
    chart = chart[:chart.index("</svg>")]
    assert len(re.findall(r'class="bar"', chart)) == min(len(st), MAX_UNIT_BARS)
