"""Plan versions over HTTP: listing, publishing with effective dates, as_of lookups, the atomic
swap under concurrent publishing, retention of published plans, the edits hook and the map's source."""
from __future__ import annotations

import json
import sys
import threading
import time
import types

import pytest
from fastapi.testclient import TestClient

from gridplan.api import versions
from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from tests.helpers.api import wait_job, write_inputs
from tests.helpers.versions import codes_of, make_versions

PT = {"lon": 120.001, "lat": 30.019}   # inside grid 001 of the tiny plan's first village


@pytest.fixture
def env(tmp_path):
    """An app over a data dir holding three succeeded versions (k = 1, 2, 3: made in that order)."""
    s = Settings(data_dir=str(tmp_path / "data"), runner="tests.helpers.versions:coded_runner",
                 poll_interval_s=0.05)
    ids = make_versions(tmp_path / "data")
    keys = {"planner": create_key("planner", s.data_dir), "reader": create_key("reader", s.data_dir)}
    with TestClient(create_app(s)) as c:
        yield c, keys, ids, s


def H(keys, role="reader"):
    return {"X-API-Key": keys[role]}


def publish(c, keys, vid, day):
    r = c.post(f"/v1/plans/{vid}/publish", json={"effective_from": day}, headers=H(keys, "planner"))
    assert r.status_code == 200, r.text
    return r.json()


def lookup_plan(c, keys, **q):
    r = c.get("/v1/lookup", params={**PT, **q}, headers=H(keys))
    return r


def test_list_and_show_versions_with_headline_figures(env):
    c, keys, ids, _ = env
    body = c.get("/v1/plans", headers=H(keys)).json()
    assert body["total"] == 3 and [p["id"] for p in body["plans"]] == ids[::-1]   # newest first
    assert body["live"] == ids[2]                       # nothing published: the newest succeeded job
    p = body["plans"][0]
    assert p["source"] == "plan" and p["parent"] is None and p["effective_from"] is None and p["live"] is True
    assert p["grids"] == 8 and p["households"] == 80 and p["coverage_share"] == 1.0
    assert p["within_tolerance_share"] == pytest.approx(0.97)
    one = c.get(f"/v1/plans/{ids[0]}", headers=H(keys)).json()
    assert one["id"] == ids[0] and one["within_tolerance_share"] == pytest.approx(0.99) and one["live"] is False
    assert c.get("/v1/plans/nope", headers=H(keys)).status_code == 404
    assert c.get("/v1/plans?source=edit", headers=H(keys)).json()["total"] == 0
    assert c.get("/v1/plans?source=bogus", headers=H(keys)).status_code == 422


def test_version_layers_and_download_are_the_jobs(env):
    c, keys, ids, _ = env
    fc = c.get(f"/v1/plans/{ids[1]}/layers/grids", headers=H(keys)).json()
    assert {f["properties"]["grid_code"] for f in fc["features"]} == codes_of(2)
    assert c.get(f"/v1/plans/{ids[1]}/layers/grids?limit=3", headers=H(keys)).json()["features"].__len__() == 3
    z = c.get(f"/v1/plans/{ids[1]}/download", headers=H(keys))
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    assert c.get("/v1/plans/nope/layers/grids", headers=H(keys)).status_code == 404


def test_reader_cannot_publish_and_bad_dates_are_422(env):
    c, keys, ids, _ = env
    r = c.post(f"/v1/plans/{ids[0]}/publish", json={"effective_from": "2024-01-01"}, headers=H(keys))
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert c.post(f"/v1/plans/{ids[0]}/publish", json={"effective_from": "2024-01-01"}).status_code == 401
    for bad in ("2024-13-01", "yesterday", "2024-1-1", 20240101, None):
        r = c.post(f"/v1/plans/{ids[0]}/publish", json={"effective_from": bad}, headers=H(keys, "planner"))
        assert r.status_code == 422 and r.json()["errors"], bad
    r = c.post("/v1/plans/nope/publish", json={"effective_from": "2024-01-01"}, headers=H(keys, "planner"))
    assert r.status_code == 404
    assert c.get("/v1/plans?published=true", headers=H(keys)).json()["total"] == 0   # nothing changed


def test_as_of_across_three_versions_published_out_of_order(env):
    c, keys, (a, b, cc), _ = env
    publish(c, keys, cc, "2025-01-01")
    publish(c, keys, a, "2024-01-01")       # earlier than the live one's: goes into the history
    publish(c, keys, b, "2024-06-01")
    cases = {"2023-12-31": None, "2024-01-01": a, "2024-05-31": a, "2024-06-01": b, "2024-12-31": b,
             "2025-01-01": cc, "2031-07-15": cc}
    for day, want in cases.items():
        r = lookup_plan(c, keys, as_of=day)
        if want is None:
            assert r.status_code == 404 and r.json()["type"].endswith("no-plan"), day
            continue
        assert r.status_code == 200 and r.json()["plan"] == want, (day, r.text)
        assert r.json()["grid_code"] in codes_of({a: 1, b: 2, cc: 3}[want])
        batch = c.post("/v1/lookup", json={"as_of": day, "points": [[PT["lon"], PT["lat"]]]}, headers=H(keys)).json()
        assert batch["plan"] == want and batch["results"][0]["grid_code"] == r.json()["grid_code"]
        assert c.get(f"/v1/plans/live?as_of={day}", headers=H(keys)).json()["id"] == want
    listed = {p["id"]: p for p in c.get("/v1/plans?published=true", headers=H(keys)).json()["plans"]}
    assert [(listed[v]["effective_from"], listed[v]["effective_to"]) for v in (a, b, cc)] == [
        ("2024-01-01", "2024-06-01"), ("2024-06-01", "2025-01-01"), ("2025-01-01", None)]
    assert lookup_plan(c, keys).json()["plan"] == cc and listed[cc]["live"]
    assert lookup_plan(c, keys, plan=a).json()["plan"] == a          # plan=ID still reaches any version
    assert lookup_plan(c, keys, as_of="2024-02-30").status_code == 422
    assert lookup_plan(c, keys, as_of="2024-02-01", plan=a).status_code == 422


def test_live_plan_is_the_published_one_in_effect_not_the_newest(env, monkeypatch):
    c, keys, (a, b, cc), _ = env
    assert lookup_plan(c, keys).json()["plan"] == cc            # nothing published: the newest
    publish(c, keys, b, "2030-01-01")                           # published, not yet in effect
    assert lookup_plan(c, keys).json()["plan"] == cc
    got = publish(c, keys, a, "2020-01-01")
    assert got["live"] is True and got["effective_to"] == "2030-01-01"
    r = lookup_plan(c, keys)
    assert r.json()["plan"] == a and r.headers["x-gridplan-plan"] == a
    assert r.json()["grid_code"] in codes_of(1)
    # the day the later version takes effect, the server follows it without any new publish
    import datetime as dt
    monkeypatch.setattr(versions, "today", lambda: dt.date(2030, 1, 1))
    t0 = time.monotonic()
    while lookup_plan(c, keys).json()["plan"] != b and time.monotonic() - t0 < 20:
        time.sleep(0.1)
    assert lookup_plan(c, keys).json()["plan"] == b
    assert c.get("/v1/plans/live", headers=H(keys)).json()["id"] == b


def test_lookups_never_answer_from_a_half_swapped_index_while_publishing(env):
    c, keys, ids, _ = env
    k_of = {v: k + 1 for k, v in enumerate(ids)}
    errors, seen, n = [], set(), [0]
    stop = threading.Event()

    def hammer(batch: bool):
        while not stop.is_set():
            if batch:
                r = c.post("/v1/lookup", json={"points": [[PT["lon"], PT["lat"]], [120.035, 30.005]]}, headers=H(keys))
                plan, codes = r.json()["plan"], [x["grid_code"] for x in r.json()["results"]]
            else:
                r = lookup_plan(c, keys)
                plan, codes = r.json()["plan"], [r.json()["grid_code"]]
                if r.headers["x-gridplan-plan"] != plan:
                    errors.append(("header", plan, r.headers["x-gridplan-plan"]))
            if not set(codes) <= codes_of(k_of[plan]):
                errors.append((plan, codes))
            seen.add(plan)
            n[0] += 1

    threads = [threading.Thread(target=hammer, args=(b,)) for b in (False, True, False)]
    for t in threads:
        t.start()
    try:
        for day in range(1, 19):    # each publish takes effect on a later day: the live plan moves every time
            vid = ids[day % 3]
            publish(c, keys, vid, f"2020-01-{day:02d}")
            assert lookup_plan(c, keys).json()["plan"] == vid   # this server swapped before answering
            time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    assert seen == set(ids) and n[0] > 20


def test_published_plans_are_never_purged(env):
    from gridplan.api.lifecycle import sweep_retention

    c, keys, (a, b, cc), _ = env
    publish(c, keys, b, "2024-01-01")
    store = c.app.state.ctx.store
    assert store.was_published(b) and not store.was_published(a)
    r = c.delete(f"/v1/jobs/{b}?purge=true", headers=H(keys, "planner"))
    assert r.status_code == 409
    publish(c, keys, cc, "2025-01-01")                # b is superseded, but was published: still kept
    gone = sweep_retention(store, 1, now=time.time() + 10 * 86400)
    assert gone == [a]
    assert store.get_job(a) is None and store.get_job(b) and store.get_job(cc)
    assert c.delete(f"/v1/jobs/{b}?purge=true", headers=H(keys, "planner")).status_code == 409
    assert c.get("/v1/plans", headers=H(keys)).json()["total"] == 2


def test_job_output_carries_version_json_and_its_kind(env, tmp_path):
    c, keys, ids, s = env
    inputs = write_inputs(tmp_path / "in")
    files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
    r = c.post("/v1/jobs", files=files, data={"params": json.dumps({"target_households": 400})},
               headers=H(keys, "planner"))
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    assert wait_job(lambda u: c.get(u, headers=H(keys)), jid)["status"] == "succeeded"
    rec = json.loads((c.app.state.ctx.store.out_dir(jid) / "version.json").read_text())
    assert rec["id"] == jid and rec["source"] == "plan" and rec["parent"] is None and rec["created"].endswith("+00:00")
    v = c.get(f"/v1/plans/{jid}", headers=H(keys)).json()
    assert v["source"] == "plan" and v["grids"] == 8
    t0 = time.monotonic()                             # newest succeeded, nothing published: it becomes live
    while lookup_plan(c, keys).json()["plan"] != jid and time.monotonic() - t0 < 20:
        time.sleep(0.05)
    assert lookup_plan(c, keys).json()["grid_code"] in codes_of(4)


def test_edits_make_a_new_version_with_its_parent(env, monkeypatch):
    c, keys, (a, b, cc), _ = env
    calls = []

    def apply_edits(plan, edits):
        calls.append(edits)
        if edits[0].get("op") == "refuse":
            raise ValueError("grid 330110001001011 would leave its unit")
        return plan

    fake = types.ModuleType("gridplan.optimize.edit_apply")
    fake.apply_edits = apply_edits
    monkeypatch.setitem(sys.modules, "gridplan.optimize.edit_apply", fake)
    body = {"edits": [{"op": "lock", "codes": ["330110001001011"]}]}
    assert c.post(f"/v1/plans/{a}/edits", json=body, headers=H(keys)).status_code == 403
    r = c.post(f"/v1/plans/{a}/edits", json=body, headers=H(keys, "planner"))
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["source"] == "edit" and new["parent"] == a and new["id"] not in (a, b, cc) and calls == [body["edits"]]
    assert new["grids"] == 8
    fc = c.get(f"/v1/plans/{new['id']}/layers/grids", headers=H(keys)).json()
    assert {f["properties"]["grid_code"] for f in fc["features"]} == codes_of(1)
    rec = json.loads((c.app.state.ctx.store.out_dir(new["id"]) / "version.json").read_text())
    assert (rec["id"], rec["parent"], rec["source"]) == (new["id"], a, "edit")
    assert lookup_plan(c, keys, plan=new["id"]).json()["grid_code"] in codes_of(1)
    assert [p["id"] for p in c.get(f"/v1/plans?parent={a}", headers=H(keys)).json()["plans"]] == [new["id"]]
    r = c.post(f"/v1/plans/{a}/edits", json={"edits": [{"op": "refuse"}]}, headers=H(keys, "planner"))
    assert r.status_code == 422 and "would leave its unit" in r.json()["detail"] and r.json()["errors"]
    assert c.post(f"/v1/plans/{a}/edits", json={"edits": []}, headers=H(keys, "planner")).status_code == 422
    assert c.post("/v1/plans/nope/edits", json=body, headers=H(keys, "planner")).status_code == 404
    monkeypatch.setitem(sys.modules, "gridplan.optimize.edit_apply", None)   # a build without the edit modules
    monkeypatch.setitem(sys.modules, "gridplan.optimize.edit", None)
    r = c.post(f"/v1/plans/{a}/edits", json=body, headers=H(keys, "planner"))
    assert r.status_code == 501 and r.headers["content-type"].startswith("application/problem+json")


def test_a_second_server_follows_a_publish(env):
    c, keys, (a, b, cc), s = env
    with TestClient(create_app(s)) as c2:
        assert lookup_plan(c2, keys).json()["plan"] == cc
        publish(c, keys, a, "2021-01-01")
        t0 = time.monotonic()
        while lookup_plan(c2, keys).json()["plan"] != a and time.monotonic() - t0 < 20:
            time.sleep(0.05)
        r = lookup_plan(c2, keys)
        assert r.json()["plan"] == a and r.json()["grid_code"] in codes_of(1)


def test_map_page_asks_for_the_live_plan(env):
    c, _, _, _ = env
    html = c.get("/map").text
    assert "/v1/plans/live" in html and "as_of" in html


def test_diff_of_two_versions_over_http(env):
    c, keys, (a, b, _), _ = env
    r = c.get(f"/v1/plans/{a}/diff/{b}", headers=H(keys))
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["old"], d["new"]) == (a, b)
    assert sorted(d["retired"]) == sorted(codes_of(1)) and sorted(d["created"]) == sorted(codes_of(2))
    assert d["kept"] == [] and d["counts"]["retired"] == 8
    same = c.get(f"/v1/plans/{a}/diff/{a}", headers=H(keys)).json()
    assert sorted(same["kept"]) == sorted(codes_of(1)) and same["counts"]["households_moved"] == 0
    h = c.get(f"/v1/plans/{a}/diff/{b}?format=html", headers=H(keys))
    assert h.status_code == 200 and h.headers["content-type"].startswith("text/html") and a in h.text
    assert "default-src 'none'" in h.headers["content-security-policy"]
    assert c.get(f"/v1/plans/{a}/diff/nope", headers=H(keys)).status_code == 404
    assert c.get(f"/v1/plans/{a}/diff/{b}?format=pdf", headers=H(keys)).status_code == 422


@pytest.mark.postgres
def test_versions_publish_as_of_edits_and_purge_on_postgres(tmp_path, monkeypatch):
    from tests.helpers.db import private_pg_database

    with private_pg_database() as url:
        s = Settings(data_dir=str(tmp_path / "data"), database_url=url,
                     runner="tests.helpers.versions:coded_runner", poll_interval_s=0.05)
        a, b, cc = make_versions(tmp_path / "data", database_url=url)
        keys = {"planner": create_key("planner", s.data_dir, url), "reader": create_key("reader", s.data_dir, url)}
        with TestClient(create_app(s)) as c:
            assert c.app.state.ctx.store.engine.dialect.name == "postgresql"
            assert lookup_plan(c, keys).json()["plan"] == cc
            publish(c, keys, cc, "2025-01-01")
            publish(c, keys, a, "2024-01-01")
            publish(c, keys, b, "2024-06-01")
            for day, want in {"2024-03-01": a, "2024-06-01": b, "2026-01-01": cc}.items():
                assert lookup_plan(c, keys, as_of=day).json()["plan"] == want
            assert lookup_plan(c, keys, as_of="2023-01-01").status_code == 404
            assert c.delete(f"/v1/jobs/{a}?purge=true", headers=H(keys, "planner")).status_code == 409
            fake = types.ModuleType("gridplan.optimize.edit_apply")
            fake.apply_edits = lambda plan, edits: plan
            monkeypatch.setitem(sys.modules, "gridplan.optimize.edit_apply", fake)
            r = c.post(f"/v1/plans/{b}/edits", json={"edits": [{"op": "lock"}]}, headers=H(keys, "planner"))
            assert r.status_code == 201, r.text
            new = r.json()["id"]
            fc = c.get(f"/v1/plans/{new}/layers/grids", headers=H(keys)).json()   # from PostGIS
            assert {f["properties"]["grid_code"] for f in fc["features"]} == codes_of(2)
            publish(c, keys, new, "2025-06-01")
            assert lookup_plan(c, keys).json()["plan"] == new
            listed = {p["id"]: p for p in c.get("/v1/plans?published=true", headers=H(keys)).json()["plans"]}
            assert listed[cc]["effective_to"] == "2025-06-01" and listed[new]["parent"] == b


def test_an_audit_job_is_listed_but_never_live_nor_published(tmp_path):
    from gridplan.api.store import Store

    s = Settings(data_dir=str(tmp_path / "data"), runner="tests.helpers.versions:coded_runner", poll_interval_s=0.05)
    (a,) = make_versions(tmp_path / "data", ks=(1,))
    st = Store(s)
    audit = st.new_id()
    st.create_job(audit, {"kind": "audit"}, {})
    (st.out_dir(audit)).mkdir(parents=True)
    (st.out_dir(audit) / "audit.json").write_text("{}")
    assert st.finish(audit, "succeeded", summary={"kind": "audit", "clean": True}, only_if=("queued",))
    keys = {"planner": create_key("planner", s.data_dir), "reader": create_key("reader", s.data_dir)}
    with TestClient(create_app(s)) as c:
        listed = c.get("/v1/plans", headers=H(keys)).json()
        assert [(p["id"], p["source"]) for p in listed["plans"]] == [(audit, "audit"), (a, "plan")]
        assert listed["live"] == a and lookup_plan(c, keys).json()["plan"] == a   # newest *plan*, not the audit
        rec = json.loads((st.out_dir(audit) / "version.json").read_text())
        assert (rec["id"], rec["source"]) == (audit, "audit")
        r = c.post(f"/v1/plans/{audit}/publish", json={"effective_from": "2024-01-01"}, headers=H(keys, "planner"))
        assert r.status_code == 409 and "no plan to publish" in r.json()["detail"]
        assert not st.was_published(audit)


def test_jobs_that_succeeded_before_versions_existed_are_back_filled(tmp_path):
    import sqlalchemy as sa

    from gridplan.api.store import Store, jobs

    s = Settings(data_dir=str(tmp_path / "data"))
    st = Store(s)
    now = time.time()
    with st.engine.begin() as conn:   # rows as an older release left them: no version recorded
        for k, (jid, params) in enumerate((("old1", {}), ("old2", {"kind": "adopt", "parent": "old1"}),
                                           ("old3", {"kind": "bogus"}))):
            conn.execute(jobs.insert().values(id=jid, status="succeeded", progress=1.0, params=json.dumps(params),
                                              inputs="{}", created_at=now + k, updated_at=now + k,
                                              finished_at=now + k, attempts=1))
        conn.execute(sa.text("DROP TABLE IF EXISTS gridplan_versions"))
    versions._READY.discard(st.engine)
    rows, total = versions.list_versions(st.engine)
    assert total == 3 and [(v.id, v.source, v.parent) for v in rows] == [
        ("old3", "plan", None), ("old2", "adopt", "old1"), ("old1", "plan", None)]
    assert versions.live_id(st.engine) == "old3" and not st.was_published("old1")


def test_cases_route_by_the_version_in_effect_on_their_day(env):
    c, keys, (a, b, cc), _ = env
    publish(c, keys, a, "2024-01-01")
    publish(c, keys, b, "2024-06-01")
    cases = [{"id": "1", "time": "2024-02-01T10:00:00+08:00", "kind": "x", **PT},
             {"id": "2", "time": "2024-07-01T10:00:00Z", "kind": "x", **PT},
             {"id": "3", "time": "2023-05-01T10:00:00Z", "kind": "x", **PT}]   # before any publication: live
    r = c.post("/v1/cases/route", json={"cases": cases}, headers=H(keys))
    assert r.status_code == 200, r.text
    got = {x["id"]: x for x in r.json()["results"]}
    assert got["1"]["plan"] == a and got["1"]["grid_code"] in codes_of(1)
    assert got["2"]["plan"] == b and got["2"]["grid_code"] in codes_of(2)
    assert got["3"]["plan"] == b                                   # b is live today
    named = c.post("/v1/cases/route", json={"cases": cases, "plan": cc}, headers=H(keys)).json()
    assert {x["plan"] for x in named["results"]} == {cc}          # a named plan routes every case


def test_ogc_unprefixed_collections_follow_the_live_plan(env):
    c, keys, (a, b, cc), _ = env
    publish(c, keys, a, "2024-01-01")
    items = c.get("/ogc/collections/grids/items", params={"limit": 100}, headers=H(keys)).json()
    assert {f["id"] for f in items["features"]} == set(codes_of(1))
    publish(c, keys, b, "2024-06-01")
    items = c.get("/ogc/collections/grids/items", params={"limit": 100}, headers=H(keys)).json()
    assert {f["id"] for f in items["features"]} == set(codes_of(2))
