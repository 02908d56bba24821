"""HTTP jobs: auth, synchronous validation (problem+json), 413, the job life cycle, results, cancel."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from tests.helpers.api import wait_job, write_inputs

RUNNER = "tests.helpers.api:fake_runner"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("api")
    s = Settings(data_dir=str(d / "data"), runner=RUNNER, poll_interval_s=0.05, max_upload_bytes=200_000)
    keys = {"planner": create_key("planner", s.data_dir), "reader": create_key("reader", s.data_dir)}
    inputs = write_inputs(d / "in")
    with TestClient(create_app(s)) as c:
        yield c, keys, inputs, d


def H(keys, role):
    return {"X-API-Key": keys[role]}


def upload(inputs, params=None, **extra):
    files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
    files.update(extra)
    data = {"params": json.dumps(params)} if params is not None else {}
    return files, data


def assert_problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    return body


def test_health_needs_no_key_and_v1_needs_one(env):
    c, keys, _, _ = env
    assert c.get("/health").json() == {"status": "ok"}
    assert_problem(c.get("/v1/jobs"), 401)
    assert_problem(c.get("/v1/jobs", headers={"X-API-Key": "gp_nope_nope"}), 401)
    assert_problem(c.get("/v1/lookup?lon=120&lat=30"), 401)
    assert c.get("/v1/jobs", headers=H(keys, "reader")).status_code == 200


def test_reader_may_not_submit_or_cancel(env):
    c, keys, inputs, _ = env
    files, data = upload(inputs, {})
    assert_problem(c.post("/v1/jobs", files=files, data=data, headers=H(keys, "reader")), 403)
    assert_problem(c.delete("/v1/jobs/whatever", headers=H(keys, "reader")), 403)


def test_keys_are_hashed_at_rest(env):
    # read through the app's own engine: opening the SQLite file directly in this process would drop
    # SQLite's POSIX locks held by the in-process server
    c, keys, _, _ = env
    import sqlalchemy as sa
    from gridplan.api.auth import hash_key
    from gridplan.api.store import keys as keys_table
    with c.app.state.ctx.store.engine.connect() as conn:
        rows = [tuple(map(str, r)) for r in conn.execute(sa.select(keys_table))]
    assert len(rows) == 2
    stored = " ".join(" ".join(r) for r in rows)
    assert keys["planner"] not in stored and keys["reader"] not in stored
    assert hash_key(keys["planner"]) in stored and hash_key(keys["reader"]) in stored


def test_job_life_cycle_layers_download_and_listing(env):
    c, keys, inputs, _ = env
    files, data = upload(inputs, {"target_households": 20, "mode": "bike"})
    r = c.post("/v1/jobs", files=files, data=data, headers=H(keys, "planner"))
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    assert r.json()["status"] == "queued" and r.headers["location"] == f"/v1/jobs/{jid}"
    get = lambda u: c.get(u, headers=H(keys, "reader"))  # noqa: E731
    j = wait_job(get, jid)
    assert j["status"] == "succeeded" and j["progress"] == 1.0 and j["error"] is None
    assert j["summary"]["grids"] == 8 and json.loads(j["summary"]["tag"]) == {"target_households": 20, "mode": "bike"}
    fc = get(f"/v1/jobs/{jid}/layers/grids").json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 8
    assert {"grid_code", "village_code", "workers"} <= set(fc["features"][0]["properties"])
    for layer in ("stations", "service_areas", "households", "units", "workers"):
        assert get(f"/v1/jobs/{jid}/layers/{layer}").status_code == 200
    assert_problem(get(f"/v1/jobs/{jid}/layers/nonsense"), 422)
    z = zipfile.ZipFile(io.BytesIO(get(f"/v1/jobs/{jid}/download").content))
    assert {"plan.gpkg", "summary.json"} <= set(z.namelist())
    listing = get("/v1/jobs").json()
    assert jid in [x["id"] for x in listing["jobs"]] and listing["total"] >= 1
    assert all(x["status"] == "succeeded" for x in get("/v1/jobs?status=succeeded").json()["jobs"])
    assert_problem(c.delete(f"/v1/jobs/{jid}", headers=H(keys, "planner")), 409)


# issue 10: each of these was accepted with 202 (seed "abc" made every unit one grid, "succeeded")
BAD_PARAMS = [({"tolerance": 5}, "tolerance"), ({"mode": "teleport"}, "mode"), ({"frobnicate": 1}, "frobnicate"),
              ({"scheduler": "tcp://x:1"}, "scheduler"), ({"jobs": 4}, "jobs"), ({"minutes": "Infinity"}, "minutes"),
              ({"seed": "abc"}, "seed"), ({"kind_targets": "x"}, "kind_targets"),
              ({"persons_per_household": -1}, "persons_per_household"), ({"max_stations": 1.5}, "max_stations"),
              ({"speed_kmh": True}, "speed_kmh"), ({"workers_budget": 1e300}, "workers_budget"),
              ({"coords": None, "output_coords": "cgcs2000"}, "output_coords"), ({"code_field": ""}, "code_field")]


def test_bad_params_are_422_naming_the_option(env):
    c, keys, inputs, _ = env
    for params, name in BAD_PARAMS:
        files, data = upload(inputs, params)
        if params == {"minutes": "Infinity"}:    # a bare JSON Infinity, as a client's serializer writes it
            data = {"params": '{"minutes": Infinity}'}
        body = assert_problem(c.post("/v1/jobs", files=files, data=data, headers=H(keys, "planner")), 422)
        assert [(e["source"], e["row"]) for e in body["errors"]] == [("params", name)], body
        assert name in body["errors"][0]["problem"] and name in body["detail"]
        assert all({"source", "row", "problem"} <= set(e) for e in body["errors"])
    files, data = upload(inputs, {"seed": "abc", "tolerance": 2, "nope": 1})
    body = assert_problem(c.post("/v1/jobs", files=files, data=data, headers=H(keys, "planner")), 422)
    assert sorted(e["row"] for e in body["errors"]) == ["nope", "seed", "tolerance"]   # all at once
    listing = c.get("/v1/jobs", headers=H(keys, "reader")).json()["jobs"]
    assert not any((j["params"] or {}).get("seed") == "abc" for j in listing)          # nothing was queued


def test_coverage_target_zero_is_accepted(env):
    c, keys, inputs, _ = env
    files, data = upload(inputs, {"coverage_target": 0})
    r = c.post("/v1/jobs", files=files, data=data, headers=H(keys, "planner"))
    assert r.status_code == 202, r.text
    assert wait_job(lambda u: c.get(u, headers=H(keys, "reader")), r.json()["id"])["status"] == "succeeded"
    files, _ = upload(inputs)
    body = assert_problem(c.post("/v1/jobs", files=files, data={"params": "{not json"},
                                 headers=H(keys, "planner")), 422)
    assert body["errors"][0]["source"] == "params"


def test_missing_file_and_bad_data_are_422(env):
    c, keys, inputs, d = env
    files, data = upload(inputs, {})
    del files["households"]
    body = assert_problem(c.post("/v1/jobs", files=files, data=data, headers=H(keys, "planner")), 422)
    assert any("households" in str(e["row"]) or "households" in e["source"] for e in body["errors"])
    bad = d / "bad_households.csv"
    bad.write_text("id,lon,lat\n1,abc,30.01\n2,,\n")
    files, data = upload({"boundaries": inputs["boundaries"], "households": bad}, {})
    body = assert_problem(c.post("/v1/jobs", files=files, data=data, headers=H(keys, "planner")), 422)
    assert body["errors"] and all(e["problem"] for e in body["errors"])
    files, data = upload({"boundaries": inputs["boundaries"], "households": inputs["households"]}, {})
    files["boundaries"] = ("boundaries.geojson", b"this is not geojson at all")
    body = assert_problem(c.post("/v1/jobs", files=files, data=data, headers=H(keys, "planner")), 422)
    assert body["errors"]
    # nothing was queued by any of these
    assert c.get("/v1/jobs?status=queued", headers=H(keys, "reader")).json()["total"] == 0


def test_oversized_upload_is_413(env):
    c, keys, inputs, _ = env
    files, data = upload(inputs, {})
    files["households"] = ("households.csv", b"id,lon,lat\n" + b"1,120.01,30.01\n" * 20_000)
    assert_problem(c.post("/v1/jobs", files=files, data=data, headers=H(keys, "planner")), 413)


def test_failed_job_keeps_its_reason(env, monkeypatch):
    c, keys, inputs, _ = env
    monkeypatch.setenv("GRIDPLAN_TEST_RUNNER_FAIL", "1")
    files, data = upload(inputs, {})
    jid = c.post("/v1/jobs", files=files, data=data, headers=H(keys, "planner")).json()["id"]
    j = wait_job(lambda u: c.get(u, headers=H(keys, "reader")), jid)
    assert j["status"] == "failed" and "households.csv" in j["error"] and "row 3" in j["error"]
    assert j["summary"]["problems"][0]["kind"] == "bad_point"
    assert_problem(c.get(f"/v1/jobs/{jid}/layers/grids", headers=H(keys, "reader")), 409)


def test_cancel_a_running_job(env, monkeypatch, tmp_path):
    c, keys, inputs, _ = env
    marker = tmp_path / "pid"
    monkeypatch.setenv("GRIDPLAN_TEST_RUNNER_SLEEP", "30")
    monkeypatch.setenv("GRIDPLAN_TEST_RUNNER_MARKER", str(marker))
    files, data = upload(inputs, {})
    jid = c.post("/v1/jobs", files=files, data=data, headers=H(keys, "planner")).json()["id"]
    get = lambda u: c.get(u, headers=H(keys, "reader"))  # noqa: E731
    j = wait_job(get, jid, statuses=("running",))
    import time
    t0 = time.monotonic()
    while not marker.exists() and time.monotonic() - t0 < 20:
        time.sleep(0.05)
    pid = int(marker.read_text())
    r = c.delete(f"/v1/jobs/{jid}", headers=H(keys, "planner"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        try:
            import os
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the runner process was not stopped")
    assert get(f"/v1/jobs/{jid}").json()["status"] == "cancelled"


def test_unknown_job_is_404(env):
    c, keys, _, _ = env
    assert_problem(c.get("/v1/jobs/doesnotexist", headers=H(keys, "reader")), 404)
    assert_problem(c.get("/v1/jobs/doesnotexist/layers/grids", headers=H(keys, "reader")), 404)
    assert_problem(c.delete("/v1/jobs/doesnotexist", headers=H(keys, "planner")), 404)
