"""Streamed result layers: the whole layer is byte-for-byte the old one-piece GeoJSON, read in
many batches; ``limit``, ``offset`` and ``bbox`` pick the right features — on SQLite (GeoPackage)
and on PostGIS."""
from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.layerstream import Window, stream_layer
from gridplan.api.settings import Settings
from tests.helpers.api import tiny_layers, wait_job, write_inputs
from tests.helpers.db import private_pg_database

N = 700


def many_households_runner(inputs, params, out_dir, progress) -> dict:
    """The tiny plan with N households (some without a grid or station: nulls) and non-ASCII ids."""
    from gridplan.geo.output import write_plan_dir

    layers, summary = tiny_layers()
    rng = np.random.default_rng(7)
    xy = rng.uniform([120.0, 30.0], [120.04, 30.02], (N, 2))
    grid = np.where(np.arange(N) % 11 == 0, None, "330110001001001").astype(object)
    minutes = np.where(np.arange(N) % 13 == 0, np.nan, rng.uniform(0, 30, N))
    layers["households"] = gpd.GeoDataFrame(
        {"id": [f"户{i}" for i in range(N)], "grid_code": grid, "station_id": "S1", "minutes": minutes},
        geometry=shapely.points(xy), crs=4326)
    progress("writing", 0.9)
    write_plan_dir(Path(out_dir), layers, summary, report=False)
    return summary


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request, tmp_path):
    """(client, headers, job id, store) of a server holding one succeeded job."""
    def run(url):
        s = Settings(data_dir=str(tmp_path / "data"), database_url=url, poll_interval_s=0.05,
                     runner="tests.test_api_layers:many_households_runner")
        key = create_key("reader", s.data_dir, url)
        planner = create_key("planner", s.data_dir, url)
        inputs = write_inputs(tmp_path / "in")
        with TestClient(create_app(s)) as c:
            files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
            r = c.post("/v1/jobs", files=files, headers={"X-API-Key": planner})
            assert r.status_code == 202, r.text
            jid = r.json()["id"]
            assert wait_job(lambda u: c.get(u, headers={"X-API-Key": key}), jid)["status"] == "succeeded"
            yield c, {"X-API-Key": key}, jid, c.app.state.ctx.store
    if request.param == "sqlite":
        yield from run(None)
    else:
        with private_pg_database() as url:
            yield from run(url)


def _whole(store, jid, layer) -> bytes:
    gdf = store.read_layer(jid, layer)
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    return gdf.to_json(na="null", drop_id=True, ensure_ascii=False).encode("utf-8")


def test_whole_layers_are_byte_identical_to_the_one_piece_answer(served):
    c, h, jid, store = served
    for layer in ("grids", "stations", "service_areas", "households", "units", "workers"):
        expected = _whole(store, jid, layer)
        r = c.get(f"/v1/jobs/{jid}/layers/{layer}", headers=h)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
        assert r.content == expected, layer
        # many small batches join into the same bytes
        assert b"".join(stream_layer(store, jid, layer, batch=17)) == expected, layer
    fc = json.loads(expected)
    assert len(json.loads(_whole(store, jid, "households"))["features"]) == N and fc["features"]


def test_limit_offset_and_bbox_select_the_right_features(served):
    c, h, jid, store = served
    full = store.read_layer(jid, "households")
    ids = list(full["id"])

    def got(**q):
        r = c.get(f"/v1/jobs/{jid}/layers/households", params=q, headers=h)
        assert r.status_code == 200, r.text
        return [f["properties"]["id"] for f in r.json()["features"]]

    assert got(limit=10) == ids[:10]
    assert got(offset=695) == ids[695:]
    assert got(offset=100, limit=50) == ids[100:150]
    assert got(limit=0) == [] and got(offset=N + 5) == []
    bb = (120.005, 30.004, 120.021, 30.013)
    inside = list(full[full.intersects(shapely.box(*bb))]["id"])
    assert 0 < len(inside) < N
    box = ",".join(map(str, bb))
    assert got(bbox=box) == inside
    assert got(bbox=box, offset=5, limit=20) == inside[5:25]
    # batches do not change the window
    parts = b"".join(stream_layer(store, jid, "households", Window(limit=20, offset=5, bbox=bb), batch=7))
    assert [f["properties"]["id"] for f in json.loads(parts)["features"]] == inside[5:25]
    # polygons: a box touching one village's grids only
    grids = store.read_layer(jid, "grids")
    gb = (120.001, 30.001, 120.009, 30.009)
    want = list(grids[grids.intersects(shapely.box(*gb))]["grid_code"])
    r = c.get(f"/v1/jobs/{jid}/layers/grids", params={"bbox": ",".join(map(str, gb))}, headers=h).json()
    assert [f["properties"]["grid_code"] for f in r["features"]] == want and len(want) == 1


@pytest.mark.parametrize("bad", ["1,2,3", "a,b,c,d", "3,0,1,1", "nan,0,1,1", "0,0,inf,1"])
def test_a_bad_window_is_a_422_naming_bbox(tmp_path, bad):
    s = Settings(data_dir=str(tmp_path / "data"), runner="tests.helpers.api:fake_runner")
    key = create_key("reader", s.data_dir)
    with TestClient(create_app(s)) as c:
        r = c.get("/v1/jobs/whatever/layers/grids", params={"bbox": bad}, headers={"X-API-Key": key})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["row"] == "bbox"
        r = c.get("/v1/jobs/whatever/layers/grids", params={"limit": -1}, headers={"X-API-Key": key})
        assert r.status_code == 422
