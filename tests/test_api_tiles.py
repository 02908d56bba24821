"""GET /tiles/{plan}/{z}/{x}/{y}.mvt over HTTP: keys, live and job ids, ETag/304, cache headers, bad tiles."""
from __future__ import annotations

import json

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from gridplan.geo.tiles import TMS
from tests.helpers.api import wait_job, write_inputs

RUNNER = "tests.helpers.api:fake_runner"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiles")
    s = Settings(data_dir=str(d / "data"), runner=RUNNER, poll_interval_s=0.05, tile_cache_mb=1)
    keys = {"planner": create_key("planner", s.data_dir), "reader": create_key("reader", s.data_dir)}
    inputs = write_inputs(d / "in")
    with TestClient(create_app(s)) as c:
        files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
        r = c.post("/v1/jobs", files=files, data={"params": json.dumps({})}, headers={"X-API-Key": keys["planner"]})
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        h = {"X-API-Key": keys["reader"]}
        assert wait_job(lambda u: c.get(u, headers=h), jid)["status"] == "succeeded"
        yield c, h, jid


def url(plan, z=12, lon=120.02, lat=30.01):
    t = TMS.tile(lon, lat, z)
    return f"/tiles/{plan}/{t.z}/{t.x}/{t.y}.mvt"


def test_a_reader_gets_a_tile_of_the_live_plan_and_of_the_job(env):
    c, h, jid = env
    live = c.get(url("live"), headers=h)
    assert live.status_code == 200, live.text
    assert live.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert live.headers["x-gridplan-plan"] == jid and jid in live.headers["etag"]
    assert "max-age=60" in live.headers["cache-control"]
    tiles = mapbox_vector_tile.decode(live.content)
    assert len(tiles["grids"]["features"]) == 8 and len(tiles["stations"]["features"]) == 2
    by_id = c.get(url(jid), headers=h)
    assert by_id.content == live.content and "immutable" in by_id.headers["cache-control"]


def test_etag_revalidation_answers_304_without_a_body(env):
    c, h, jid = env
    first = c.get(url(jid), headers=h)
    again = c.get(url(jid), headers={**h, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = c.get(url(jid, z=13), headers={**h, "If-None-Match": first.headers["etag"]})
    assert other.status_code == 200


def test_tiles_need_a_key_and_name_what_is_wrong(env):
    c, h, jid = env
    r = c.get(url(jid))
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    r = c.get(f"/tiles/{jid}/3/8/0.mvt", headers=h)
    assert r.status_code == 404 and "does not exist" in r.json()["detail"]
    r = c.get(url("nosuchjob"), headers=h)
    assert r.status_code == 404 and "nosuchjob" in r.json()["detail"]
    r = c.get(f"/tiles/{jid}/1/x/0.mvt", headers=h)
    assert r.status_code == 422


def test_a_tile_far_from_the_plan_is_empty(env):
    c, h, jid = env
    r = c.get(url(jid, lon=0.0, lat=0.0), headers=h)
    assert r.status_code == 200 and r.content == b""


def test_tilejson_names_the_bounds_and_layers(env):
    c, h, jid = env
    tj = c.get("/tiles/live/tiles.json", headers=h).json()
    assert tj["plan"] == jid and tj["tiles"][0].endswith(f"/tiles/{jid}/{{z}}/{{x}}/{{y}}.mvt")
    w, s, e, n = tj["bounds"]
    assert (w, s, e, n) == pytest.approx((120.0, 30.0, 120.04, 30.02), abs=0.02)  # service areas reach beyond
    layers = {v["id"]: v for v in tj["vector_layers"]}
    assert layers["grids"]["features"] == 8 and layers["grids"]["fields"]["grid_code"] == "String"


def test_the_map_serves_its_vendored_maplibre_and_allows_its_workers(env):
    c, h, jid = env
    js = c.get("/static/maplibre/maplibre-gl.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert b"maplibregl" in js.content and b"sourceMappingURL" not in js.content[-200:]
    assert c.get("/static/maplibre/maplibre-gl.css").headers["content-type"].startswith("text/css")
    r = c.get("/static/maplibre/..%2Fleaflet.js")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    csp = c.get("/map").headers["content-security-policy"]
    assert "worker-src blob:" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp


def test_the_live_plan_overview_tiles_are_rendered_before_any_map_asks(env):
    """A server starting on a data dir with a plan warms its tile source and overview tiles by itself."""
    import time

    from gridplan.api.tilecache import overview_tiles
    _, _, jid = env
    settings = env[0].app.state.ctx.settings
    with TestClient(create_app(settings)) as fresh:     # no tile request is ever made to this one
        deadline = time.monotonic() + 30
        cache, want = None, None
        while time.monotonic() < deadline:
            cache = getattr(fresh.app.state, "tiles", None)
            src = cache._src.get(jid) if cache is not None else None
            want = overview_tiles(src) if src is not None else None
            if want and {(jid, *t) for t in want} <= set(cache._tiles):
                break
            time.sleep(0.1)
        assert want and {(jid, *t) for t in want} <= set(cache._tiles), "the overview tiles were not warmed"
        zooms = sorted({z for z, _, _ in want})
        assert len(zooms) == 2 and zooms[1] == zooms[0] + 1
        assert sum(1 for z, _, _ in want if z == zooms[0]) <= 4
    off = TestClient(create_app(settings.with_(tile_warm=False)))
    with off:
        time.sleep(0.5)
        assert getattr(off.app.state, "tiles", None) is None
