"""Durability against real server processes: restarts keep jobs and results; a SIGKILL during a
job re-queues it (or fails it with the reason once its attempts are spent) — nothing is lost."""
from __future__ import annotations

import json
import os
import signal
import time

import httpx
import pytest

from gridplan.api.auth import create_key
from tests.helpers.api import free_port, start_server, wait_job, write_inputs

pytestmark = pytest.mark.slow

BASE_ENV = {"GRIDPLAN_RUNNER": "tests.helpers.api:fake_runner", "GRIDPLAN_TEST_SLOW_TARGET": "999"}


def _client(port, key):
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=30)


def _submit(c, inputs, params) -> str:
    files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
    r = c.post("/v1/jobs", files=files, data={"params": json.dumps(params)})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    except OSError:
        return False


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except Exception:  # noqa: BLE001
            p.kill()
            p.wait()


def test_sigkill_during_a_job_loses_nothing(tmp_path):
    data = tmp_path / "data"
    key = create_key("planner", str(data))
    inputs = write_inputs(tmp_path / "in")
    marker = tmp_path / "runner.pid"
    port = free_port()
    env = dict(BASE_ENV, GRIDPLAN_TEST_RUNNER_MARKER=str(marker))
    p1 = start_server(data, port, env, log=tmp_path / "server1.log")
    try:
        with _client(port, key) as c:
            done = _submit(c, inputs, {"target_households": 30})
            assert wait_job(c.get, done)["status"] == "succeeded"
            before = c.get("/v1/lookup?lon=120.001&lat=30.019").json()
            grids_before = c.get(f"/v1/jobs/{done}/layers/grids").json()
            marker.unlink()
            slow = _submit(c, inputs, {"target_households": 999})
            assert wait_job(c.get, slow, statuses=("running",))["status"] == "running"
            queued = _submit(c, inputs, {"target_households": 40})  # waits behind the slow one
            t0 = time.monotonic()
            while not marker.exists() and time.monotonic() - t0 < 30:
                time.sleep(0.05)
            runner_pid = int(marker.read_text())
            assert c.get(f"/v1/jobs/{queued}").json()["status"] == "queued"
        p1.send_signal(signal.SIGKILL)
        p1.wait(timeout=10)
        # the runner dies with its server: nothing keeps computing unowned
        assert _wait_dead(runner_pid), "the job runner outlived its SIGKILLed server"
    finally:
        if p1.poll() is None:
            p1.kill()

    p2 = start_server(data, port, {"GRIDPLAN_RUNNER": BASE_ENV["GRIDPLAN_RUNNER"]}, log=tmp_path / "server2.log")
    try:
        with _client(port, key) as c:
            j = c.get(f"/v1/jobs/{slow}").json()
            assert j["status"] in ("queued", "running", "succeeded")
            j = wait_job(c.get, slow)
            assert j["status"] == "succeeded" and j["attempts"] == 2
            assert wait_job(c.get, queued)["status"] == "succeeded"
            # the finished job and its results are intact
            assert c.get(f"/v1/jobs/{done}").json()["status"] == "succeeded"
            assert c.get(f"/v1/jobs/{done}/layers/grids").json() == grids_before
            assert c.get(f"/v1/jobs/{done}/download").status_code == 200
            after = c.get(f"/v1/lookup?lon=120.001&lat=30.019&plan={done}").json()
            assert after == before
            ids = {x["id"] for x in c.get("/v1/jobs").json()["jobs"]}
            assert {done, slow, queued} <= ids
    finally:
        _stop(p2)


def test_crash_after_last_attempt_fails_with_reason(tmp_path):
    data = tmp_path / "data"
    key = create_key("planner", str(data))
    inputs = write_inputs(tmp_path / "in")
    port = free_port()
    env = dict(BASE_ENV, GRIDPLAN_MAX_ATTEMPTS="1")
    p1 = start_server(data, port, env, log=tmp_path / "server1.log")
    try:
        with _client(port, key) as c:
            slow = _submit(c, inputs, {"target_households": 999})
            wait_job(c.get, slow, statuses=("running",))
        p1.send_signal(signal.SIGKILL)
        p1.wait(timeout=10)
    finally:
        if p1.poll() is None:
            p1.kill()
    p2 = start_server(data, port, env, log=tmp_path / "server2.log")
    try:
        with _client(port, key) as c:
            j = c.get(f"/v1/jobs/{slow}").json()
            assert j["status"] == "failed" and "interrupted" in j["error"]
    finally:
        _stop(p2)


def test_graceful_restart_keeps_everything(tmp_path):
    data = tmp_path / "data"
    key = create_key("planner", str(data))
    inputs = write_inputs(tmp_path / "in")
    port = free_port()
    p1 = start_server(data, port, BASE_ENV, log=tmp_path / "server1.log")
    try:
        with _client(port, key) as c:
            done = _submit(c, inputs, {})
            wait_job(c.get, done)
            summary = c.get(f"/v1/jobs/{done}").json()["summary"]
    finally:
        _stop(p1)
    assert p1.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    p2 = start_server(data, port, BASE_ENV, log=tmp_path / "server2.log")
    try:
        with _client(port, key) as c:
            j = c.get(f"/v1/jobs/{done}").json()
            assert j["status"] == "succeeded" and j["summary"] == summary
            assert c.get("/v1/lookup?lon=120.001&lat=30.019").json()["grid_code"] == "330110001001001"
    finally:
        _stop(p2)
