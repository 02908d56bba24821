"""Fuzz the OpenAPI schema with schemathesis: no input, however odd, gets a 5xx; every error is
problem+json. Bounded (few examples per operation) so it runs in well under a minute."""
from __future__ import annotations

import json

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from tests.helpers.api import wait_job, write_inputs

KEYS: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    s = Settings(data_dir=str(d / "data"), runner="tests.helpers.api:fake_runner", poll_interval_s=0.05,
                 max_upload_bytes=1_000_000, max_batch_points=5000)
    KEYS["planner"] = create_key("planner", s.data_dir)
    app = create_app(s)
    inputs = write_inputs(d / "in")
    with TestClient(app) as c:  # runs the lifespan; schemathesis then calls the same app
        files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
        jid = c.post("/v1/jobs", files=files, data={"params": json.dumps({})},
                     headers={"X-API-Key": KEYS["planner"]}).json()["id"]
        wait_job(lambda u: c.get(u, headers={"X-API-Key": KEYS["planner"]}), jid)
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations():
    # the schema is static: read it from a bare app (no lifespan needed) to name the test cases
    app = create_app(Settings(data_dir="/nonexistent-unused"))
    return [(r.ok().method.upper(), r.ok().path) for r in schemathesis.openapi.from_asgi("/openapi.json", app)
            .get_all_operations()]


@pytest.mark.parametrize("method,path", _operations())
def test_no_server_errors(api_schema, method, path):
    """schemathesis is driven directly through hypothesis (its pytest plugin is not used)."""
    op = next(r.ok() for r in api_schema.get_all_operations()
              if r.ok().method.upper() == method and r.ok().path == path)
    headers = {"X-API-Key": KEYS["planner"]}

    @given(case=op.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        r = case.call(headers=headers)
        assert r.status_code < 500, f"{case.method} {case.formatted_path} -> {r.status_code}: {r.text[:500]}"
        if r.status_code >= 400:
            ctype = r.headers.get("content-type") or [""]
            ctype = ctype[0] if isinstance(ctype, list) else ctype
            assert ctype.startswith("application/problem+json"), r.text[:300]

    run()
