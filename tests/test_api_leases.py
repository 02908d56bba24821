"""Job ownership by lease, at the store level: who may re-queue a running job, and whose writes
count. (The same rules against real server processes: tests/test_api_servers.py.)"""
from __future__ import annotations

import os
import sqlite3
import time

import pytest

from gridplan.api.owners import new_owner_id, owner_gone
from gridplan.api.settings import Settings
from gridplan.api.store import Store

FAR = "elsewhere-host:4242:1:abcdef"   # a server on another machine: only its lease speaks for it


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(Settings(data_dir=str(tmp_path / "data"), lease_s=30.0))


def _running(store: Store, owner: str, lease_s: float) -> dict:
    jid = store.new_id()
    store.create_job(jid, {}, {})
    j = store.claim_next(owner, lease_s)
    assert j["id"] == jid and j["owner"] == owner and j["status"] == "running"
    return j


def test_a_live_lease_of_another_server_is_never_taken(store):
    j = _running(store, FAR, 60.0)
    assert store.recover(new_owner_id(), max_attempts=3) == []
    assert store.get_job(j["id"])["status"] == "running" and store.get_job(j["id"])["owner"] == FAR


def test_an_expired_lease_is_requeued_and_the_old_run_can_no_longer_write(store):
    j = _running(store, FAR, 0.0)
    time.sleep(0.01)
    me = new_owner_id()
    assert store.recover(me, max_attempts=3) == [(j["id"], "queued")]
    q = store.get_job(j["id"])
    assert q["status"] == "queued" and q["owner"] is None and "re-queued" in q["error"]
    again = store.claim_next(me, 30.0)
    assert again["id"] == j["id"] and again["attempts"] == 2
    # the superseded run (attempt 1) is refused everywhere; the new one is not
    assert not store.progress(j["id"], "partition", 0.5, attempt=1)
    assert not store.finish(j["id"], "failed", error="old runner", attempt=1)
    assert not store.finish(j["id"], "failed", error="old reaper", owner=FAR, attempt=1)
    assert not store.requeue(j["id"], "old server stopping", owner=FAR, attempt=1)
    assert store.heartbeat(FAR, {j["id"]: 1}) == set()
    assert store.heartbeat(me, {j["id"]: 2}) == {j["id"]}
    assert store.progress(j["id"], "partition", 0.5, attempt=2)
    assert store.finish(j["id"], "succeeded", summary={}, owner=me, attempt=2)
    assert store.get_job(j["id"])["status"] == "succeeded"


def test_heartbeat_keeps_a_job_past_its_first_lease(store):
    me = new_owner_id()
    j = _running(store, me, 0.0)
    assert store.heartbeat(me, {j["id"]: 1}, lease_s=60.0) == {j["id"]}
    assert store.recover(new_owner_id(), max_attempts=3) == []
    # its own server, holding the runner, leaves it alone even once the lease has lapsed
    assert store.heartbeat(me, {j["id"]: 1}, lease_s=0.0) == {j["id"]}
    time.sleep(0.01)
    assert store.recover(me, 3, live={j["id"]}) == []
    # ...but a job it claimed and holds no runner for is recovered like anyone's
    assert store.recover(me, 3, live=set()) == [(j["id"], "queued")]


def test_a_dead_process_on_this_host_loses_its_lease_at_once(store):
    host = new_owner_id().split(":")[0]   # this host and pid namespace
    dead = f"{host}:{2**22 + 17}:12345:abcdef"          # no such pid
    reused = f"{host}:{os.getpid()}:1:abcdef"            # our pid, but not our start time
    assert owner_gone(dead) and owner_gone(reused)
    assert not owner_gone(new_owner_id()) and not owner_gone(FAR)
    # same host name, another pid namespace (a second container with host networking): pids there
    # mean other processes, so only the lease may judge it
    other_ns = f"{host.split('/')[0]}/1:{2**22 + 17}:12345:abcdef"
    assert not owner_gone(other_ns)
    a, b = _running(store, dead, 60.0), _running(store, reused, 60.0)
    got = dict(store.recover(new_owner_id(), max_attempts=3))
    assert got == {a["id"]: "queued", b["id"]: "queued"}


def test_after_the_last_attempt_the_job_fails_with_the_reason(store):
    j = _running(store, FAR, 0.0)
    time.sleep(0.01)
    assert store.recover(new_owner_id(), max_attempts=1) == [(j["id"], "failed")]
    f = store.get_job(j["id"])
    assert f["status"] == "failed" and "interrupted" in f["error"] and "1 time" in f["error"]


def test_an_old_database_gains_the_new_columns(tmp_path):
    data = tmp_path / "old"
    data.mkdir()
    con = sqlite3.connect(data / "gridplan.sqlite")
    con.executescript("""
        CREATE TABLE gridplan_jobs (id VARCHAR(40) PRIMARY KEY, status VARCHAR(16) NOT NULL, progress FLOAT NOT NULL,
          stage VARCHAR(200), error TEXT, summary TEXT, params TEXT NOT NULL, inputs TEXT NOT NULL,
          created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL, started_at FLOAT, finished_at FLOAT,
          attempts INTEGER NOT NULL, runner_pid INTEGER, owner VARCHAR(64));
        CREATE TABLE gridplan_keys (id VARCHAR(16) PRIMARY KEY, key_hash VARCHAR(128) NOT NULL UNIQUE,
          role VARCHAR(16) NOT NULL, created_at FLOAT NOT NULL, revoked BOOLEAN NOT NULL);
        INSERT INTO gridplan_jobs VALUES ('j1', 'running', 0.5, 'x', NULL, NULL, '{}', '{}', 1, 1, 1, NULL, 1, 99,
          'oldserver-1234');
    """)
    con.commit()
    con.close()
    store = Store(Settings(data_dir=str(data)))
    assert store.get_job("j1")["lease_until"] is None
    # a run left by the old release has no lease: it is recovered
    assert store.recover(new_owner_id(), max_attempts=3) == [("j1", "queued")]
    cols = {r[1] for r in sqlite3.connect(data / "gridplan.sqlite").execute("PRAGMA table_info(gridplan_keys)")}
    assert "last_used" in cols
