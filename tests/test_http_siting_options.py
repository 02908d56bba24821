"""Issue 15's siting options through HTTP with the real pipeline: a capacity (the facilities'
``capacity`` column and ``default_capacity``) is kept by every station of the results, closures name
the closed stations, p-center reports the worst travel time the households layer shows, single
sourcing gives each household point one station, backup coverage reaches everyone (or fails saying
why), and a bad value of any of these options is a 422 problem+json naming it."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from tests.helpers.api import wait_job, write_inputs

SPOT = (120.01, 30.01)          # three existing stations on one spot, in the first village
FAST = {"time_limit_per_unit": 2.0}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("siting_http")
    s = Settings(data_dir=str(d / "data"), poll_interval_s=0.05)
    keys = {"planner": create_key("planner", s.data_dir), "reader": create_key("reader", s.data_dir)}
    inputs = write_inputs(d / "in")
    fac = d / "in" / "facilities.csv"
    pd.DataFrame({"id": ["E1", "E2", "E3"], "name": ["East hall", "Clinic", "School"], "existing": [True] * 3,
                  "lon": [SPOT[0]] * 3, "lat": [SPOT[1]] * 3, "capacity": [5, None, None]}).to_csv(fac, index=False)
    inputs["facilities"] = fac
    with TestClient(create_app(s)) as c:
        yield c, keys, inputs


def submit(env, params) -> dict:
    c, keys, inputs = env
    files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
    r = c.post("/v1/jobs", files=files, data={"params": json.dumps({**FAST, **params})},
               headers={"X-API-Key": keys["planner"]})
    return r


def finished(env, params) -> tuple[dict, list[dict], list[dict]]:
    """Run a job to its end; return its record and the stations and households layers' properties."""
    c, keys, _ = env
    r = submit(env, params)
    assert r.status_code == 202, r.text
    h = {"X-API-Key": keys["reader"]}
    j = wait_job(lambda u: c.get(u, headers=h), r.json()["id"], timeout=180)
    assert j["status"] == "succeeded", j
    layer = {name: [f["properties"] for f in c.get(f"/v1/jobs/{j['id']}/layers/{name}", headers=h).json()["features"]]
             for name in ("stations", "households")}
    return j, layer["stations"], layer["households"]


def test_capacities_are_kept_by_every_station(env):
    j, st, _ = finished(env, {"coverage_target": 0.9, "default_capacity": 6})
    cov = j["summary"]["coverage"]
    assert j["params"]["default_capacity"] == 6
    by_id = {s["station_id"]: s for s in st}
    assert by_id["E1"]["capacity"] == 5                           # the facilities' column wins
    assert by_id["E2"]["capacity"] == by_id["E3"]["capacity"] == 6  # the default where it gives none
    for s in st:
        assert s["capacity"] in (5, 6) and s["assigned"] <= s["capacity"] + 1e-9
        assert s["utilisation"] == pytest.approx(s["assigned"] / s["capacity"]) and s["utilisation"] <= 1 + 1e-9
    assert cov["stations_over_capacity"] == 0 and cov["share"] >= 0.9 - 1e-12
    assert sum(s["assigned"] for s in st) == pytest.approx(cov["share"] * 40)
    # the capacities bind: 36 households at most 5 + 6 + 6 on the one spot need new stations
    assert len(st) >= 3 + math.ceil((0.9 * 40 - 17) / 6)
    assert (cov["gap"] == 0) == (cov["status"] == "OPTIMAL")


def test_closures_name_the_closed_stations(env):
    j, st, _ = finished(env, {"coverage_target": 0.5, "allow_close": True, "max_close": 2})
    closed = sorted(s["station_id"] for s in st if s["status"] == "closed")
    assert len(closed) == 2 and set(closed) < {"E1", "E2", "E3"}    # three on one spot: two are spare
    assert sorted(j["summary"]["coverage"]["closed"]) == closed
    assert all(s["households_covered"] == 0 for s in st if s["status"] == "closed")
    assert j["params"]["allow_close"] is True and j["params"]["max_close"] == 2


def test_p_center_reports_the_worst_minutes_of_the_households(env):
    j, st, hh = finished(env, {"siting_model": "pcenter", "max_stations": 1})
    cov = j["summary"]["coverage"]
    assert cov["model"] == "pcenter" and cov["status"] == "OPTIMAL" and cov["gap"] == 0
    assert sum(s["status"] == "new" for s in st) == 1
    minutes = [h["minutes"] for h in hh]                    # each household's minutes to its station (3 decimals)
    assert cov["objective"] == pytest.approx(max(minutes), abs=1e-3)    # p-center: the worst of all
    served = [m for m in minutes if m <= cov["minutes"]]    # worst_minutes: the worst of the households served
    assert cov["worst_minutes"] == pytest.approx(max(served), abs=1e-3)
    # one station fewer cannot do better: the existing three alone leave a household farther away
    alone = finished(env, {"siting_model": "pcenter", "max_stations": 0})[0]["summary"]["coverage"]
    assert alone["objective"] >= cov["objective"] - 1e-9


def test_single_source_serves_each_household_point_from_one_station(env):
    j, st, hh = finished(env, {"coverage_target": 0.8, "default_capacity": 10, "single_source": True})
    cov = j["summary"]["coverage"]
    assert cov["share"] >= 0.8 - 1e-12 and cov["stations_over_capacity"] == 0
    per_station: dict[str, float] = {}
    for h in hh:                                           # the households layer names each point's one station
        if h.get("station_id"):
            per_station[h["station_id"]] = per_station.get(h["station_id"], 0) + h["households"]
    for s in st:                                           # so its counts are the stations' loads, exactly
        assert s["assigned"] == per_station.get(s["station_id"], 0) <= s["capacity"]
    assert sum(per_station.values()) == pytest.approx(cov["share"] * 40)


def test_backup_coverage_and_its_infeasible_cap(env):
    j, st, _ = finished(env, {"siting_model": "backup"})
    cov = j["summary"]["coverage"]
    assert cov["model"] == "backup" and cov["status"] == "OPTIMAL" and cov["share"] == 1.0
    assert cov["objective"] == pytest.approx(cov["double_coverage_share"] * 40)   # households reached twice
    c, keys, _ = env
    r = submit(env, {"siting_model": "backup", "max_stations": 1})   # one new station cannot reach everyone
    assert r.status_code == 202, r.text
    failed = wait_job(lambda u: c.get(u, headers={"X-API-Key": keys["reader"]}), r.json()["id"], timeout=180)
    assert failed["status"] == "failed" and "backup coverage" in failed["error"], failed
    assert "+ 1 new" in failed["error"], failed        # the count names the existing sites and the one asked for
    assert "Traceback" not in failed["error"] and "/work" not in failed["error"]


@pytest.mark.parametrize("params, name", [
    ({"default_capacity": 0}, "default_capacity"),
    ({"max_close": -1}, "max_close"),
    ({"close_cost": "cheap"}, "close_cost"),
    ({"siting_model": "nearest"}, "siting_model"),
    ({"max_move": 1.5}, "max_move"),
    ({"single_source": "maybe"}, "single_source"),
])
def test_a_bad_siting_option_is_422_naming_it(env, params, name):
    r = submit(env, params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert [(e["source"], e["row"]) for e in body["errors"]] == [("params", name)], body
    assert name in body["detail"] and "/work" not in r.text and "Error" not in body["detail"]
