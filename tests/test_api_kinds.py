"""HTTP job kinds: ``kind=audit`` end to end, ``kind=adopt`` on an uploaded layer, and the 422s of a wrong kind."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from tests.helpers import planted
from tests.helpers.api import wait_job, write_inputs, write_tiny_plan

RUNNER = "tests.helpers.api:fake_runner"   # the plan kind's runner; audit and adopt run their own


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("kinds")
    s = Settings(data_dir=str(d / "data"), runner=RUNNER, poll_interval_s=0.05)
    keys = {"planner": create_key("planner", s.data_dir), "reader": create_key("reader", s.data_dir)}
    with TestClient(create_app(s)) as c:
        yield c, keys, d


def files_of(paths: dict) -> dict:
    return {r: (p.name, p.read_bytes()) for r, p in paths.items()}


def post(c, keys, files, kind=None, params=None):
    data = {}
    if kind is not None:
        data["kind"] = kind
    if params is not None:
        data["params"] = json.dumps(params)
    return c.post("/v1/jobs", files=files, data=data, headers={"X-API-Key": keys["planner"]})


def problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


def test_audit_job_end_to_end(env):
    c, keys, d = env
    paths = planted.build(d / "planted")
    r = post(c, keys, files_of(paths), "audit", {"target_households": 10})
    assert r.status_code == 202, r.text
    get = lambda u: c.get(u, headers={"X-API-Key": keys["reader"]})  # noqa: E731
    j = wait_job(get, r.json()["id"])
    assert j["status"] == "succeeded", j["error"]
    assert j["summary"]["kind"] == "audit" and j["summary"]["clean"] is False
    assert j["summary"]["counts"] == planted.EXPECTED and j["summary"]["certified"] == 2
    assert j["params"]["kind"] == "audit"
    z = zipfile.ZipFile(io.BytesIO(get(f"/v1/jobs/{j['id']}/download").content))
    assert {"audit.json", "audit.gpkg", "audit.html"} <= set(z.namelist())
    assert json.loads(z.read("audit.json"))["counts"] == planted.EXPECTED
    # an audit is no plan: lookups neither default to it nor fail on it with a 500
    r = get(f"/v1/lookup?lon=120.005&lat=30.005&plan={j['id']}")
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert c.app.state.ctx.store.newest_succeeded() is None or \
        c.app.state.ctx.store.newest_succeeded()["id"] != j["id"]


def test_adopt_job_keeps_the_uploaded_layer_as_baseline(env):
    c, keys, d = env
    inputs = write_inputs(d / "in", n_households=80)
    layer = write_tiny_plan(d / "tiny") / "plan.gpkg"
    r = post(c, keys, {**files_of(inputs), "grids": ("official.gpkg", layer.read_bytes())}, "adopt",
             {"target_households": 10, "time_limit_per_unit": 1})
    assert r.status_code == 202, r.text
    j = wait_job(lambda u: c.get(u, headers={"X-API-Key": keys["reader"]}), r.json()["id"], timeout=120)
    assert j["status"] == "succeeded", j["error"]
    assert j["summary"]["kind"] == "adopt" and "baseline" in j["summary"]


def test_unknown_kind_is_422_naming_kind(env):
    c, keys, d = env
    body = problem(post(c, keys, files_of(write_inputs(d / "in2")), "frobnicate"), 422)
    assert [e["source"] for e in body["errors"]] == ["kind"]


def test_uploads_must_fit_the_kind(env):
    c, keys, d = env
    inputs = write_inputs(d / "in3")
    body = problem(post(c, keys, files_of(inputs), "audit"), 422)
    assert [e["source"] for e in body["errors"]] == ["grids"]
    paths = planted.build(d / "planted3")
    body = problem(post(c, keys, files_of(paths), "plan"), 422)      # a plan takes no grids upload
    assert [e["source"] for e in body["errors"]] == ["grids"]
    body = problem(post(c, keys, files_of(paths), "audit", {"tolerance": 5, "nope": 1}), 422)
    assert sorted(e["row"] for e in body["errors"]) == ["nope", "tolerance"]


def test_unreadable_grid_layer_is_422_naming_the_file(env):
    c, keys, d = env
    inputs = write_inputs(d / "in4")
    body = problem(post(c, keys, {**files_of(inputs), "grids": ("official.geojson", b'{"type": "Feature')}, "audit"),
                   422)
    assert any(e["source"] == "official.geojson" for e in body["errors"]), body
    assert str(d) not in json.dumps(body)
