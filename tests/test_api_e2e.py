"""End to end through HTTP with the real pipeline: submit data/sample_small, poll to succeeded,
fetch the layers, and look a household's point up -> the grid the plan gave it."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from tests.helpers.api import wait_job

pytestmark = pytest.mark.slow


def test_sample_small_end_to_end(tmp_path, sample_small):
    s = Settings(data_dir=str(tmp_path / "data"), poll_interval_s=0.1)
    planner, reader = create_key("planner", s.data_dir), create_key("reader", s.data_dir)
    with TestClient(create_app(s)) as c:
        # (no roster: the sample roster may be shorter than the grids this plan makes)
        files = {r: (p.name, p.read_bytes()) for r, p in sample_small.items() if r != "roster"}
        r = c.post("/v1/jobs", files=files, data={"params": json.dumps({"time_limit_per_unit": 3.0})},
                   headers={"X-API-Key": planner})
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        h = {"X-API-Key": reader}
        stages = set()

        def get(u):
            resp = c.get(u, headers=h)
            stages.add(resp.json().get("stage"))
            return resp
        j = wait_job(get, jid, timeout=240)
        assert j["status"] == "succeeded", j
        assert j["summary"]["grids"] > 0 and len(stages) > 2  # progress was reported stage by stage
        grids = c.get(f"/v1/jobs/{jid}/layers/grids", headers=h).json()["features"]
        hh = c.get(f"/v1/jobs/{jid}/layers/households", headers=h).json()["features"]
        assert len(grids) == j["summary"]["grids"]
        placed = [f for f in hh if f["properties"].get("grid_code")][:200]
        pts = [f["geometry"]["coordinates"] for f in placed]
        res = c.post("/v1/lookup", json={"plan": jid, "points": pts}, headers=h).json()["results"]
        agree = sum(1 for f, a in zip(placed, res) if a and a["grid_code"] == f["properties"]["grid_code"])
        assert agree == len(placed)
        one = c.get("/v1/lookup", params={"lon": pts[0][0], "lat": pts[0][1]}, headers=h).json()
        assert one["grid_code"] == placed[0]["properties"]["grid_code"] and one["station_id"]
