"""The service on PostgreSQL/PostGIS: jobs and keys in PostgreSQL, result layers as PostGIS tables.

Needs GRIDPLAN_TEST_DATABASE_URL (``bash .ci/postgres.sh`` sets a server up as root and writes it);
each test makes and drops its own database there, so parallel runs never share tables."""
from __future__ import annotations

import json
import os

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from gridplan.api.store import PG_SCHEMA
from tests.helpers.api import wait_job, write_inputs
from tests.helpers.db import private_pg_database

URL = os.environ.get("GRIDPLAN_TEST_DATABASE_URL")
pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(not URL, reason="GRIDPLAN_TEST_DATABASE_URL is not set (run `bash .ci/postgres.sh` "
                                                 "as root to start PostgreSQL/PostGIS and get the URL)")]


@pytest.fixture
def pg_url():
    with private_pg_database() as url:
        yield url


def test_jobs_layers_lookup_and_restart_on_postgis(tmp_path, pg_url):
    s = Settings(data_dir=str(tmp_path / "data"), database_url=pg_url, runner="tests.helpers.api:fake_runner",
                 poll_interval_s=0.05)
    planner = create_key("planner", s.data_dir, pg_url)
    inputs = write_inputs(tmp_path / "in")
    with TestClient(create_app(s)) as c:
        h = {"X-API-Key": planner}
        files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
        r = c.post("/v1/jobs", files=files, data={"params": json.dumps({})}, headers=h)
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        assert wait_job(lambda u: c.get(u, headers=h), jid)["status"] == "succeeded"
        eng = c.app.state.ctx.store.engine
        assert eng.dialect.name == "postgresql"
        with eng.connect() as conn:
            n = conn.execute(sa.text(f'SELECT count(*) FROM "{PG_SCHEMA}"."j{jid}_grids"')).scalar_one()
            srid = conn.execute(sa.text(f'SELECT ST_SRID(geom) FROM "{PG_SCHEMA}"."j{jid}_grids" LIMIT 1')).scalar_one()
        assert n == 8 and srid == 4326
        fc = c.get(f"/v1/jobs/{jid}/layers/grids", headers=h).json()
        assert len(fc["features"]) == 8 and fc["features"][0]["properties"]["grid_code"]
        a = c.get(f"/v1/lookup?lon=120.001&lat=30.019&plan={jid}", headers=h).json()
        assert a["grid_code"] == "330110001001001" and a["worker_ids"] == ["W1"]
    # a new server on the same database still has the job, and rebuilds the index from PostGIS alone
    import shutil
    shutil.rmtree(tmp_path / "data" / "jobs" / jid / "out")
    with TestClient(create_app(s)) as c:
        h = {"X-API-Key": planner}
        assert c.get(f"/v1/jobs/{jid}", headers=h).json()["status"] == "succeeded"
        a = c.get(f"/v1/lookup?lon=120.001&lat=30.019&plan={jid}", headers=h).json()
        assert a["grid_code"] == "330110001001001"
