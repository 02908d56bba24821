"""Several servers on one database: job ownership by lease and heartbeat.

Two real ``gridplan serve`` processes share a data directory and a database (SQLite, and
PostgreSQL when GRIDPLAN_TEST_DATABASE_URL is set). A job submitted to one runs once, on one of
them, to ``succeeded``; a server that starts meanwhile never kills the other's runner; a killed
server's job is taken over by the surviving server. The runner never sees the database URL on its
command line."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from gridplan.api.store import Store
from tests.helpers.api import free_port, start_server, wait_job, write_inputs
from tests.helpers.db import private_pg_database

pytestmark = pytest.mark.slow

# lease 5 s (heartbeat every 1.7 s) and 7 s runs: a job outlives its first lease, so it only stays
# with its server if the heartbeat renews it
ENV = {"GRIDPLAN_RUNNER": "tests.helpers.api:fake_runner", "GRIDPLAN_TEST_RUNNER_SLEEP": "7",
       "GRIDPLAN_LEASE_S": "5"}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":  # an explicit URL, outside the data dir, so argv leaks would show
        yield f"sqlite:///{tmp_path / 'shared-db' / 'jobs.sqlite'}"
    else:
        with private_pg_database() as url:
            yield url


def _client(port, key):
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=30)


def _submit(c, inputs) -> str:
    files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
    r = c.post("/v1/jobs", files=files, data={"params": json.dumps({})})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _wait_file(p: Path, timeout=30.0) -> str:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if p.exists() and p.read_text():
            return p.read_text()
        time.sleep(0.05)
    raise TimeoutError(p)


def _stop(*procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except Exception:  # noqa: BLE001
            p.kill()
            p.wait()


def test_two_servers_one_database_run_each_job_once(tmp_path, db_url):
    if db_url.startswith("sqlite"):
        (tmp_path / "shared-db").mkdir()
    data = tmp_path / "data"
    key = create_key("planner", str(data), db_url)
    inputs = write_inputs(tmp_path / "in")
    marker = tmp_path / "runner.pid"
    env = dict(ENV, GRIDPLAN_TEST_RUNNER_MARKER=str(marker))
    pa, pb = free_port(), free_port()
    a = start_server(data, pa, env, database_url=db_url, log=tmp_path / "a.log")
    b = None
    try:
        with _client(pa, key) as ca:
            first = _submit(ca, inputs)
            wait_job(ca.get, first, statuses=("running",))
            runner = int(_wait_file(marker))
            argv = Path(f"/proc/{runner}/cmdline").read_bytes().split(b"\0")
            assert b"gridplan.api.worker" in argv
            assert not any(db_url.encode() in arg or b"://" in arg for arg in argv), argv
            # a second server starts on the same database while the first one's job runs
            b = start_server(data, pb, env, database_url=db_url, log=tmp_path / "b.log")
            with _client(pb, key) as cb:
                second = _submit(cb, inputs)
                j1 = wait_job(ca.get, first, timeout=90)
                j2 = wait_job(cb.get, second, timeout=90)
                assert (j1["status"], j1["attempts"]) == ("succeeded", 1), j1
                assert (j2["status"], j2["attempts"]) == ("succeeded", 1), j2
                assert cb.get(f"/v1/jobs/{first}/layers/grids").json()["features"]
    finally:
        _stop(*(p for p in (a, b) if p is not None))


def test_a_killed_servers_job_is_taken_over_by_the_other(tmp_path, db_url):
    if db_url.startswith("sqlite"):
        (tmp_path / "shared-db").mkdir()
    data = tmp_path / "data"
    key = create_key("planner", str(data), db_url)
    inputs = write_inputs(tmp_path / "in")
    pa, pb = free_port(), free_port()
    a = start_server(data, pa, ENV, database_url=db_url, log=tmp_path / "a.log")
    b = start_server(data, pb, ENV, database_url=db_url, log=tmp_path / "b.log")
    try:
        with _client(pa, key) as ca, _client(pb, key) as cb:
            jid = _submit(ca, inputs)
            wait_job(ca.get, jid, statuses=("running",))
            owner = Store(Settings(data_dir=str(data), database_url=db_url)).get_job(jid)["owner"]
            victim = a if owner.split(":")[1] == str(a.pid) else b
            survivor = cb if victim is a else ca
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            j = wait_job(survivor.get, jid, timeout=90)
            assert j["status"] == "succeeded" and j["attempts"] == 2, j
    finally:
        _stop(a, b)


def test_every_server_follows_the_newest_plan_made_or_purged_elsewhere(tmp_path):
    from fastapi.testclient import TestClient

    from gridplan.api.app import create_app

    data = str(tmp_path / "data")
    runs = Settings(data_dir=data, runner="tests.helpers.api:fake_runner", poll_interval_s=0.05)
    serves = runs.with_(job_workers=0)  # this one never runs jobs: it only hears of them through the database
    key = create_key("planner", data)
    h = {"X-API-Key": key}
    inputs = write_inputs(tmp_path / "in")
    files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}

    def default_plan(c, want, timeout=30.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            r = c.get("/v1/lookup?lon=120.001&lat=30.019", headers=h)
            if r.status_code == 200 and r.headers["X-Gridplan-Plan"] == want:
                return True
            time.sleep(0.2)
        return False

    with TestClient(create_app(runs)) as one, TestClient(create_app(serves)) as two:
        first = one.post("/v1/jobs", files=files, headers=h).json()["id"]
        assert wait_job(lambda u: one.get(u, headers=h), first)["status"] == "succeeded"
        assert default_plan(two, first)
        second = one.post("/v1/jobs", files=files, data={"params": '{"target_households": 40}'}, headers=h).json()["id"]
        assert wait_job(lambda u: one.get(u, headers=h), second)["status"] == "succeeded"
        assert default_plan(two, second)
        assert one.delete(f"/v1/jobs/{second}?purge=true", headers=h).status_code == 204
        assert default_plan(one, first, timeout=1.0)
        assert default_plan(two, first)
