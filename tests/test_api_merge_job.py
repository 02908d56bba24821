"""HTTP ``kind=merge``: legacy layers as the repeated ``layers`` upload, end to end, and the 422s of bad ones."""
from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from tests.helpers.legacy import write_legacy_files


@pytest.fixture(scope="module")
def env(tmp_path_factory, small_plan, sample_small):
    d = tmp_path_factory.mktemp("mergejob")
    layers = write_legacy_files(small_plan, d, seed=1)
    s = Settings(data_dir=str(d / "data"), poll_interval_s=0.05, max_merge_layers=3)
    keys = {"planner": create_key("planner", s.data_dir), "reader": create_key("reader", s.data_dir)}
    with TestClient(create_app(s)) as c:
        yield c, keys, d, layers, sample_small


def post(env, layers, names=None, params=None, kind="merge"):
    c, keys, _, _, sample = env
    files = [(r, (Path(sample[r]).name, Path(sample[r]).read_bytes())) for r in ("boundaries", "households")]
    files += [("layers", (fname, data)) for fname, data in layers]
    data = {"kind": kind, "params": json.dumps({"time_limit_per_unit": 3.0, **(params or {})})}
    if names is not None:
        data["layer_names"] = names
    return c.post("/v1/jobs", files=files, data=data, headers={"X-API-Key": keys["planner"]})


def upload(path: Path, as_name: str | None = None) -> tuple[str, bytes]:
    return as_name or path.name, path.read_bytes()


def problem(r, status=422) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


def test_merge_job_end_to_end(env):
    from tests.helpers.api import wait_job
    c, keys, d, layers, sample = env
    r = post(env, [upload(layers["merges"]), upload(layers["shifts"], "urban grids.geojson")], '["police", "urban"]',
             {"layer_id_fields": {"urban": "shifts_id"}})
    assert r.status_code == 202, r.text
    get = lambda u: c.get(u, headers={"X-API-Key": keys["reader"]})  # noqa: E731
    j = wait_job(get, r.json()["id"], timeout=300)
    assert j["status"] == "succeeded", j["error"]
    assert j["summary"]["kind"] == "merge" and set(j["summary"]["merge"]) == {"police", "urban"}
    assert j["params"]["kind"] == "merge" and j["params"]["layer_id_fields"] == {"urban": "shifts_id"}
    # the stored inputs are named by the role run_merge reads, never by the client's names
    stored = c.app.state.ctx.store.get_job(j["id"])["inputs"]
    assert stored["layer:police"] == "layer0.geojson" and stored["layer:urban"] == "layer1.geojson"

    z = zipfile.ZipFile(io.BytesIO(get(f"/v1/jobs/{j['id']}/download").content))
    assert {"plan.gpkg", "crosswalk.csv", "merge.json"} <= set(z.namelist())
    rows = list(csv.DictReader(io.StringIO(z.read("crosswalk.csv").decode("utf-8-sig"))))
    assert {row["layer"] for row in rows} == {"police", "urban"}
    merge = json.loads(z.read("merge.json"))
    assert {x["layer"]: x["id_field"] for x in merge["layers"]} == {"police": "merges_id", "urban": "shifts_id"}
    gpkg = d / "downloaded.gpkg"
    gpkg.write_bytes(z.read("plan.gpkg"))
    assert "crosswalk" in {name for name, _ in pyogrio.list_layers(gpkg)}

    cw = get(f"/v1/jobs/{j['id']}/layers/crosswalk").json()["features"]   # the crosswalk as a layer too
    assert sorted((f["properties"]["layer"], f["properties"]["legacy_grid_id"], f["properties"]["grid_code"])
                  for f in cw) == sorted((row["layer"], row["legacy_grid_id"], row["grid_code"]) for row in rows)
    grids = get(f"/v1/jobs/{j['id']}/layers/grids").json()["features"]
    codes = {f["properties"]["grid_code"] for f in grids}
    assert len(grids) == j["summary"]["grids"] and {row["grid_code"] for row in rows} <= codes
    # lookups answer from the merged plan: a household lands in a grid of the merge
    hh = gpd.read_file(gpkg, layer="households").to_crs(4326).iloc[0]
    r = get(f"/v1/lookup?lon={hh.geometry.x}&lat={hh.geometry.y}&plan={j['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["grid_code"] == hh["grid_code"] and r.json()["grid_code"] in codes
    # the merge is a plan version with source "merge"
    plans = get("/v1/plans?source=merge").json()["plans"]
    assert [p["id"] for p in plans] == [j["id"]]


def test_merge_needs_layers(env):
    body = problem(post(env, []))
    assert [e["source"] for e in body["errors"]] == ["layers"]


def test_layer_names_must_match_the_files(env):
    layers = env[3]
    two = [upload(layers["merges"]), upload(layers["splits"])]
    body = problem(post(env, two, "police"))
    assert [e["source"] for e in body["errors"]] == ["layer_names"] and "1 name(s) for 2" in body["errors"][0]["problem"]
    body = problem(post(env, two, "police, police"))
    assert [e["source"] for e in body["errors"]] == ["layer_names"] and "twice" in body["errors"][0]["problem"]
    body = problem(post(env, two, '["police", "a/b"]'))
    assert [e["source"] for e in body["errors"]] == ["layer_names"] and "'a/b'" in body["errors"][0]["problem"]
    # the default names are the files' stems: two files of one name collide
    body = problem(post(env, [upload(layers["merges"], "x.geojson"), upload(layers["splits"], "x.geojson")]))
    assert [e["source"] for e in body["errors"]] == ["layer_names"]
    body = problem(post(env, two, "police,urban", {"layer_id_fields": {"health": "hid"}}))
    assert [(e["source"], e["row"]) for e in body["errors"]] == [("params", "layer_id_fields")]
    body = problem(post(env, [upload(layers["merges"])] * 4))           # max_merge_layers is 3 here
    assert [e["source"] for e in body["errors"]] == ["layers"] and "max_merge_layers" in body["errors"][0]["problem"]


def test_layers_belong_to_a_merge_job(env):
    body = problem(post(env, [upload(env[3]["merges"])], kind="plan"))
    assert [e["source"] for e in body["errors"]] == ["layers"]
    body = problem(post(env, [], "police", kind="plan"))
    assert [e["source"] for e in body["errors"]] == ["layer_names"]


def test_a_hostile_or_wrong_layer_file_is_422_naming_it(env):
    c, keys, d, layers, sample = env
    good = upload(layers["merges"])
    vrt = (b'<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>/etc/passwd</SrcDataSource>'
           b'</OGRVRTLayer></OGRVRTDataSource>')
    pts = gpd.GeoDataFrame({"pid": ["a", "b"]}, geometry=gpd.points_from_xy([109.3, 109.31], [19.3, 19.31]), crs=4326)
    pts.to_file(d / "points.geojson", driver="GeoJSON")
    cases = {"health.vrt": vrt, "party.geojson": (d / "points.geojson").read_bytes(), "empty.geojson": b""}
    said = {"health.vrt": "virtual dataset", "party.geojson": "legacy grid layer must be polygons",
            "empty.geojson": "empty"}
    for fname, data in cases.items():
        body = problem(post(env, [good, (fname, data)], "police,other"))
        assert any(e["source"] == fname and said[fname] in e["problem"] for e in body["errors"]), body
        text = json.dumps(body)
        assert str(d) not in text and "layer1" not in text and "/etc/passwd" not in text
    # a named id field the layer lacks is found before the job is queued
    body = problem(post(env, [good], "police", {"layer_id_fields": {"police": "NOPE"}}))
    assert [e["source"] for e in body["errors"]] == [layers["merges"].name], body
    assert "NOPE" in body["errors"][0]["problem"] and "layer_id_fields" in body["errors"][0]["problem"]
    assert "--layer" not in body["errors"][0]["problem"]


def test_the_client_submits_a_merge_job(env):
    from gridplan.api.client import Client
    c, keys, _d, layers, sample = env
    gp = Client(key=keys["planner"], http=c)
    jid = gp.submit(sample["boundaries"], sample["households"], params={"time_limit_per_unit": 3.0},
                    layers={"police": layers["merges"], "urban": layers["splits"]})
    job = gp.wait(jid, timeout=300, poll_s=0.05)
    assert job["status"] == "succeeded" and job["summary"]["kind"] == "merge"
    assert set(job["summary"]["merge"]) == {"police", "urban"}
