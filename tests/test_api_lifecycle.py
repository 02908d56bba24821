"""Lifecycle of stored data: purge, retention, orphan sweep, owner-only file modes, API keys
listed and revoked (effective on every server sharing the database within a second)."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.lifecycle import sweep_cached_zips, sweep_orphans, sweep_retention
from gridplan.api.settings import Settings
from gridplan.api.store import Store, jobs
from tests.helpers.api import ROOT, free_port, start_server, wait_job, write_inputs
from tests.helpers.db import private_pg_database

RUNNER = "tests.helpers.api:fake_runner"


def _submit(c, inputs, key, params=None) -> str:
    files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
    r = c.post("/v1/jobs", files=files, data={"params": json.dumps(params or {})}, headers={"X-API-Key": key})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _get(c, key):
    return lambda u: c.get(u, headers={"X-API-Key": key})


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    if request.param == "sqlite":
        yield None
    else:
        with private_pg_database() as url:
            yield url


# ---------------------------------------------------------------------------------- purge
def test_purge_removes_inputs_outputs_zip_layers_and_row(tmp_path, db_url, monkeypatch):
    monkeypatch.setenv("GRIDPLAN_TEST_SLOW_TARGET", "999")
    marker = tmp_path / "runner.pid"
    monkeypatch.setenv("GRIDPLAN_TEST_RUNNER_MARKER", str(marker))
    s = Settings(data_dir=str(tmp_path / "data"), database_url=db_url, runner=RUNNER, poll_interval_s=0.05)
    planner, reader = create_key("planner", s.data_dir, db_url), create_key("reader", s.data_dir, db_url)
    inputs = write_inputs(tmp_path / "in")
    with TestClient(create_app(s)) as c:
        store = c.app.state.ctx.store
        keep, gone = _submit(c, inputs, planner), _submit(c, inputs, planner, {"target_households": 40})
        for jid in (keep, gone):
            assert wait_job(_get(c, reader), jid)["status"] == "succeeded"
        assert c.get(f"/v1/jobs/{gone}/download", headers={"X-API-Key": reader}).status_code == 200
        assert (store.job_dir(gone) / f"gridplan-{gone}.zip").exists()
        # cached zips age out on their own; the download makes one again
        assert c.get(f"/v1/jobs/{keep}/download", headers={"X-API-Key": reader}).status_code == 200
        assert sweep_cached_zips(store, 3600.0) == []
        assert set(sweep_cached_zips(store, 3600.0, now=time.time() + 7200)) == {
            f"jobs/{gone}/gridplan-{gone}.zip", f"jobs/{keep}/gridplan-{keep}.zip"}
        assert not (store.job_dir(keep) / f"gridplan-{keep}.zip").exists()
        assert c.get(f"/v1/jobs/{keep}/download", headers={"X-API-Key": reader}).status_code == 200
        assert (store.job_dir(keep) / f"gridplan-{keep}.zip").exists()
        assert c.get(f"/v1/jobs/{gone}/download", headers={"X-API-Key": reader}).status_code == 200
        assert c.get("/v1/lookup?lon=120.001&lat=30.019", headers={"X-API-Key": reader}).json()["grid_code"]
        assert store.has_layer(gone, "grids")

        assert c.delete(f"/v1/jobs/{gone}?purge=true", headers={"X-API-Key": reader}).status_code == 403
        r = c.delete(f"/v1/jobs/{gone}?purge=true", headers={"X-API-Key": planner})
        assert r.status_code == 204 and r.content == b""
        assert not store.job_dir(gone).exists()
        assert c.get(f"/v1/jobs/{gone}", headers={"X-API-Key": reader}).status_code == 404
        assert store.get_job(gone) is None and not store.has_layer(gone, "grids")
        assert c.delete(f"/v1/jobs/{gone}?purge=true", headers={"X-API-Key": planner}).status_code == 404
        # the other job is intact, and lookups fall back to it
        assert c.get(f"/v1/jobs/{keep}/layers/grids", headers={"X-API-Key": reader}).json()["features"]
        a = c.get("/v1/lookup?lon=120.001&lat=30.019", headers={"X-API-Key": reader}).json()
        assert a["grid_code"] == "330110001001001"

        # a running job: purge stops its runner and removes everything
        marker.unlink(missing_ok=True)
        slow = _submit(c, inputs, planner, {"target_households": 999})
        wait_job(_get(c, reader), slow, statuses=("running",))
        t0 = time.monotonic()
        while not marker.exists() and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        pid = int(marker.read_text())
        assert c.delete(f"/v1/jobs/{slow}?purge=true", headers={"X-API-Key": planner}).status_code == 204
        assert not store.job_dir(slow).exists() and store.get_job(slow) is None
        assert not Path(f"/proc/{pid}").exists() or "Z" == Path(f"/proc/{pid}/stat").read_text().split()[2]
        # without purge, DELETE still only cancels (finished -> 409)
        assert c.delete(f"/v1/jobs/{keep}", headers={"X-API-Key": planner}).status_code == 409


# ---------------------------------------------------------------------------------- retention
def _backdate(store: Store, job_id: str, days: float) -> None:
    with store.engine.begin() as c:
        c.execute(jobs.update().where(jobs.c.id == job_id)
                  .values(finished_at=jobs.c.finished_at - days * 86400.0))


def test_retention_sweep_runs_periodically_and_keeps_the_newest_plan(tmp_path):
    s = Settings(data_dir=str(tmp_path / "data"), runner=RUNNER, poll_interval_s=0.05, retention_days=1.0,
                 sweep_interval_s=1.0)
    planner = create_key("planner", s.data_dir)
    inputs = write_inputs(tmp_path / "in")
    with TestClient(create_app(s)) as c:
        store = c.app.state.ctx.store
        ids = []
        for t in (30, 40, 50):
            ids.append(_submit(c, inputs, planner, {"target_households": t}))
            assert wait_job(_get(c, planner), ids[-1])["status"] == "succeeded"
        old, mid, new = ids
        _backdate(store, old, 2)

        def wait_gone(jid):
            t0 = time.monotonic()
            while store.get_job(jid) is not None and time.monotonic() - t0 < 30:
                time.sleep(0.1)
            return store.get_job(jid) is None

        assert wait_gone(old) and not store.job_dir(old).exists()
        assert store.get_job(mid) and store.get_job(new)
        _backdate(store, mid, 3)
        _backdate(store, new, 2)  # past retention too, but the newest succeeded plan stays
        assert wait_gone(mid)
        assert store.get_job(new)["status"] == "succeeded" and store.out_dir(new).is_dir()
    # 0 keeps everything
    assert sweep_retention(Store(s), 0.0, now=time.time() + 1e9) == []


# ---------------------------------------------------------------------------------- orphans
def test_orphan_sweep_at_start_up(tmp_path):
    s = Settings(data_dir=str(tmp_path / "data"), runner=RUNNER, poll_interval_s=0.05, orphan_grace_s=600)
    store = Store(s)
    jid = store.new_id()
    store.create_job(jid, {}, {})
    (store.input_dir(jid)).mkdir(parents=True)
    (store.input_dir(jid) / "households.csv").write_text("id,lon,lat\n")
    old = time.time() - 7200
    orphan = store.job_dir("0rphan0000000001")
    (orphan / "input").mkdir(parents=True)
    (orphan / "input" / "boundaries.geojson").write_text("{}")
    fresh = store.job_dir("0rphan0000000002")  # an upload still being checked on another server
    (fresh / "input").mkdir(parents=True)
    (fresh / "input" / "households.csv").write_text("id\n")
    stale_part = store.job_dir(jid) / "gridplan-x.zip.part"
    stale_part.write_bytes(b"half a zip")
    fresh_part = store.job_dir(jid) / "gridplan-y.zip.part"
    fresh_part.write_bytes(b"being written")
    half_plan = store.job_dir(jid) / ".out.k2j3h4"   # a killed run's half-written output directory
    half_plan.mkdir()
    (half_plan / "plan.gpkg").write_bytes(b"half")
    for p in (orphan / "input" / "boundaries.geojson", orphan / "input", orphan, stale_part,
              half_plan / "plan.gpkg", half_plan):
        os.utime(p, (old, old))
    with TestClient(create_app(s)):
        pass
    assert not orphan.exists() and not stale_part.exists() and not half_plan.exists()
    assert fresh.exists() and fresh_part.exists()
    assert (store.input_dir(jid) / "households.csv").exists()
    # and once the grace period has passed, the rest goes too (the job's own files stay)
    removed = sweep_orphans(store, 600, now=time.time() + 3600)
    assert set(removed) == {"jobs/0rphan0000000002", f"jobs/{jid}/gridplan-y.zip.part"}
    assert (store.input_dir(jid) / "households.csv").exists()


# ---------------------------------------------------------------------------------- file modes
def test_a_real_servers_files_are_owner_only(tmp_path):
    data = tmp_path / "data"
    key = create_key("planner", str(data))
    inputs = write_inputs(tmp_path / "in")
    port = free_port()
    p = start_server(data, port, {"GRIDPLAN_RUNNER": RUNNER}, log=tmp_path / "server.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=30) as c:
            jid = _submit(c, inputs, key)
            assert wait_job(c.get, jid)["status"] == "succeeded"
            assert c.get(f"/v1/jobs/{jid}/download").status_code == 200
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)
    seen = {"dirs": 0, "files": 0}
    for dirpath, dirs, files in os.walk(data):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        seen["dirs"] += 1
        for f in files:
            mode = stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode)
            assert mode == 0o600, (os.path.join(dirpath, f), oct(mode))
            seen["files"] += 1
    job = data / "jobs" / jid
    for must in ("gridplan.sqlite", f"jobs/{jid}/input/households.csv", f"jobs/{jid}/out/plan.gpkg",
                 f"jobs/{jid}/runner.log", f"jobs/{jid}/gridplan-{jid}.zip"):
        assert (data / must).exists(), must
    assert job.is_dir() and seen["files"] >= 5


def test_a_shared_sticky_directory_is_not_locked_down(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    Store(Settings(data_dir=str(shared)))
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(shared / "jobs").st_mode) == 0o700


# ---------------------------------------------------------------------------------- keys
def gridplan(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "gridplan.api.cli", *map(str, args)], check=False, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def test_keys_list_and_revoke_take_effect_on_every_server_within_a_second(tmp_path):
    s = Settings(data_dir=str(tmp_path / "data"), runner=RUNNER)
    r = gridplan("keys", "create", "--role", "reader", "--data-dir", s.data_dir)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    kid = key.split("_")[1]
    other = create_key("planner", s.data_dir)
    with TestClient(create_app(s)) as one, TestClient(create_app(s)) as two:
        for c in (one, two):
            assert c.get("/v1/jobs", headers={"X-API-Key": key}).status_code == 200
        r = gridplan("keys", "list", "--data-dir", s.data_dir, "--json")
        assert r.returncode == 0, r.stderr
        rows = {k["id"]: k for k in json.loads(r.stdout)}
        assert set(rows) == {kid, other.split("_")[1]}
        assert rows[kid]["role"] == "reader" and rows[kid]["revoked"] is False
        assert rows[kid]["last_used"] is not None and rows[kid]["created_at"] <= rows[kid]["last_used"]
        assert rows[other.split("_")[1]]["last_used"] is None
        table = gridplan("keys", "list", "--data-dir", s.data_dir)
        from gridplan.api.auth import hash_key
        for secret in (key, key.split("_", 2)[2], hash_key(key), other):
            assert secret not in r.stdout + table.stdout + table.stderr
        assert kid in table.stdout and "reader" in table.stdout

        r = gridplan("keys", "revoke", kid, "--data-dir", s.data_dir)
        assert r.returncode == 0, r.stderr
        time.sleep(1.05)  # the key caches hold an answer for at most 1 s
        for c in (one, two):
            assert c.get("/v1/jobs", headers={"X-API-Key": key}).status_code == 401
            assert c.get("/v1/jobs", headers={"X-API-Key": other}).status_code == 200
        rows = {k["id"]: k for k in json.loads(gridplan("keys", "list", "--data-dir", s.data_dir, "--json").stdout)}
        assert rows[kid]["revoked"] is True and rows[other.split("_")[1]]["revoked"] is False
    r = gridplan("keys", "revoke", "nosuchid", "--data-dir", s.data_dir)
    assert r.returncode == 1 and "nosuchid" in r.stderr
