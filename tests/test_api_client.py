"""The Python client against the in-process app: submit, wait with progress, list, pull layers (whole and
through OGC pages), look up, download, and errors as ApiError/JobFailed."""
from __future__ import annotations

import zipfile

import pytest
import shapely
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.client import ApiError, Client, JobFailed
from gridplan.api.settings import Settings
from tests.helpers.api import tiny_layers, write_inputs


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """(planner Client, reader Client, id of a succeeded job) on one in-process app."""
    tmp = tmp_path_factory.mktemp("client")
    s = Settings(data_dir=str(tmp / "data"), poll_interval_s=0.05, runner="tests.helpers.api:fake_runner")
    planner, reader = create_key("planner", s.data_dir), create_key("reader", s.data_dir)
    inputs = write_inputs(tmp / "in")
    with TestClient(create_app(s)) as http:
        gp, ro = Client(key=planner, http=http), Client(key=reader, http=http)
        seen = []
        jid = gp.submit(inputs["boundaries"], inputs["households"], params={"target_households": 20})
        job = gp.wait(jid, timeout=120, poll_s=0.05, progress=seen.append)
        assert job["status"] == "succeeded" and seen and seen[-1]["status"] == "succeeded"
        yield gp, ro, jid, tmp


def test_lists_and_pulls_layers_as_geodataframes(service):
    gp, ro, jid, _tmp = service
    assert jid in [j["id"] for j in ro.jobs()] and jid in [j["id"] for j in ro.plans()]
    want = tiny_layers()[0]
    for name in ("grids", "stations", "units"):
        got = ro.layer(jid, name)
        assert len(got) == len(want[name]) and got.crs.to_epsg() == 4326
        assert all(shapely.equals_exact(got.geometry.values, want[name].geometry.values, tolerance=1e-9))
    # through OGC API pages of 3 features: the live plan and the plan by id give the same grids
    for coll in ("grids", f"{jid}.grids"):
        got = ro.items(coll, page_size=3)
        assert got.grid_code.tolist() == want["grids"].grid_code.tolist()
    east = ro.items("grids", village_code="330110001002", page_size=3)
    assert set(east.village_code) == {"330110001002"} and len(east) == 4
    assert len(ro.items("grids", bbox=(120.0, 30.0, 120.009, 30.009))) == 1
    assert len(ro.items("households", limit=1)) == 1 and len(ro.items("grids", limit=0)) == 0


def test_lookup_single_and_batch(service):
    _gp, ro, jid, _tmp = service
    grids = tiny_layers()[0]["grids"]
    inside = [(p.x, p.y) for p in grids.geometry.representative_point()]
    ans = ro.lookup(*inside[5])
    assert ans["grid_code"] == grids.grid_code[5]
    assert ro.lookup(100.0, 10.0) is None
    many = ro.lookup_many(inside + [(100.0, 10.0)], plan=jid, batch=3)
    assert [a and a["grid_code"] for a in many] == grids.grid_code.tolist() + [None]


def test_download_and_errors(service):
    gp, ro, jid, tmp = service
    z = ro.download(jid, tmp)
    assert "plan.gpkg" in zipfile.ZipFile(z).namelist()
    with pytest.raises(ApiError) as e:
        ro.submit(tmp / "in" / "boundaries.geojson", tmp / "in" / "households.csv")
    assert e.value.status == 403
    with pytest.raises(ApiError) as e:
        ro.job("0123456789abcdef")
    assert e.value.status == 404 and "0123456789abcdef" in e.value.detail
    with pytest.raises(TypeError):
        gp.submit("a", "b", rooster="c")


def test_a_failed_job_raises_job_failed(service, monkeypatch):
    gp, _ro, _jid, tmp = service
    monkeypatch.setenv("GRIDPLAN_TEST_RUNNER_FAIL", "1")
    jid = gp.submit(tmp / "in" / "boundaries.geojson", tmp / "in" / "households.csv")
    with pytest.raises(JobFailed) as e:
        gp.wait(jid, timeout=120, poll_s=0.05)
    assert "failed" in str(e.value) and e.value.body["status"] == "failed"


def test_submits_an_audit_job_with_its_grids_upload(service):
    gp, _ro, _jid, tmp = service
    grids = tiny_layers()[0]["grids"].iloc[1:]            # the first village's first grid lost: a gap
    path = tmp / "official.geojson"
    grids.to_file(path, driver="GeoJSON")
    jid = gp.submit(tmp / "in" / "boundaries.geojson", tmp / "in" / "households.csv", kind="audit", grids=path)
    job = gp.wait(jid, timeout=120, poll_s=0.05)
    assert job["summary"]["kind"] == "audit" and job["summary"]["counts"]["gap"] == 1
    assert job["summary"]["clean"] is False


def test_publish_and_look_up_as_of_through_the_client(service):
    gp, ro, jid, _tmp = service
    versions = {v["id"]: v for v in ro.plans()}
    assert jid in versions and versions[jid]["effective_from"] is None
    with pytest.raises(ApiError) as e:
        ro.publish(jid, "2026-01-01")                    # a reader key cannot publish
    assert e.value.status == 403
    assert gp.publish(jid, "2026-01-01")["effective_from"] == "2026-01-01"
    assert [v["id"] for v in ro.plans(published=True)] == [jid]
    grids = tiny_layers()[0]["grids"]
    pt = grids.geometry.representative_point().iloc[0]
    assert ro.lookup(pt.x, pt.y, as_of="2026-02-01")["plan"] == jid
    with pytest.raises(ApiError) as e:
        ro.lookup(pt.x, pt.y, as_of="2025-12-31")        # nothing was in effect then
    assert e.value.status == 404
