"""Cases into grids (optimize.cases / casework / caseroute, gridplan route, POST /v1/cases/route)."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
from fastapi.testclient import TestClient

from gridplan.geo.index import GridIndex
from gridplan.geo.problems import DataError
from gridplan.optimize import casework
from gridplan.optimize.caseroute import load_plan, route_plan_cases, write_route
from gridplan.optimize.cases import fixed_plan, read_cases, route_cases

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.make_cases import make_cases  # noqa: E402


def _same_as_lookup(routed: pd.DataFrame, idx: GridIndex, coords: str = "wgs84") -> None:
    """Every routed case carries the answer GridIndex.lookup_dicts gives at its point (as /v1/lookup does)."""
    answers = idx.lookup_dicts(routed["lon"].to_numpy(float), routed["lat"].to_numpy(float), coords)
    for row, a in zip(routed.astype(object).where(routed.notna(), None).to_dict("records"), answers):
        if a is None:
            assert row["grid_code"] is None and row["station_id"] is None and row["covered"] is False
            continue
        for f in ("grid_code", "village_code", "township_code", "county_code", "station_id"):
            assert row[f] == a[f], (f, row, a)
        assert (row["worker_ids"] or "") == ";".join(a["worker_ids"])
        assert (row["minutes"] is None and a["minutes"] is None) or row["minutes"] == a["minutes"]
        assert row["covered"] == a["covered"]
        if "micro_grid_code" in a:
            assert row["micro_grid_code"] == a["micro_grid_code"]


@pytest.fixture(scope="module")
def plan_cases(small_plan_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("cases")
    grids = pyogrio.read_dataframe(small_plan_dir / "plan.gpkg", layer="grids")
    cases = make_cases(grids, 3000, seed=2)
    path = d / "cases.csv"
    cases.to_csv(path, index=False)
    return load_plan(small_plan_dir), cases, path


def test_routed_cases_equal_the_lookup_answers(plan_cases):
    plan, cases, path = plan_cases
    res = route_plan_cases(plan, path)
    assert len(res.routed) == len(cases) and list(res.routed["id"]) == list(cases["id"])
    assert res.routed["grid_code"].notna().mean() > 0.9 and res.routed["grid_code"].isna().any()
    _same_as_lookup(res.routed, plan.index)


def test_offset_coordinates_route_like_lookup(plan_cases):
    from gridplan.geo.coords import from_wgs84
    plan, cases, _ = plan_cases
    x, y = from_wgs84(cases["lon"].to_numpy(), cases["lat"].to_numpy(), "gcj02")
    gcj = cases.assign(lon=x, lat=y)
    routed = route_cases(read_cases(gcj).frame, fixed_plan("p", plan.index), "gcj02")
    _same_as_lookup(routed, plan.index, "gcj02")


def test_bad_rows_are_named_and_never_stop_the_run(tmp_path, plan_cases):
    plan, cases, _ = plan_cases
    bad = cases.head(20).copy()
    bad.loc[3, "lon"] = np.nan
    bad.loc[5, "time"] = "yesterday"
    p = tmp_path / "bad.csv"
    bad.to_csv(p, index=False)
    res = route_plan_cases(plan, p)
    kinds = {q.kind: q for q in res.problems}
    assert "row 4" in kinds["bad_coordinates"].row and "row 6" in kinds["bad_time"].row
    assert res.routed["grid_code"].isna()[3] and pd.isna(res.routed["time"][5])
    assert kinds["bad_time"].source == "bad.csv"
    pd.DataFrame({"id": [1], "where": ["here"]}).to_csv(tmp_path / "noxy.csv", index=False)
    with pytest.raises(DataError) as e:
        read_cases(tmp_path / "noxy.csv")
    assert e.value.problems[-1].source == "noxy.csv" and "lon/lat" in e.value.problems[-1].message


def test_the_resolver_is_asked_once_per_day_and_routes_by_its_plan(plan_cases):
    plan, cases, _ = plan_cases
    empty = GridIndex(plan.grids.iloc[:0])
    asked = []

    def plan_for_time(t):
        asked.append(t)
        if t is not None and t < pd.Timestamp("2026-07-01", tz="UTC"):
            return "old", empty
        return "live", plan.index

    routed = route_cases(read_cases(cases).frame, plan_for_time)
    days = pd.to_datetime(cases["time"], format="ISO8601", utc=True, errors="coerce").dt.floor("D")
    assert len(asked) == days.nunique() + 1 and asked.count(None) == 1     # + the rows without a time
    early = (days < pd.Timestamp("2026-07-01", tz="UTC")).to_numpy()
    assert (routed["plan"][early] == "old").all() and routed["grid_code"][early].isna().all()
    assert (routed["plan"][~early] == "live").all() and routed["grid_code"][~early].notna().any()


def test_workload_counts_per_grid_and_shares_per_worker():
    routed = pd.DataFrame({"grid_code": ["A", "A", "A", "B", None, "B"],
                           "kind": ["hotline", "dispute", "hotline", "hotline", "hotline", "hotline"],
                           "time": pd.to_datetime(["2026-03-01T08:00Z", "2026-03-31T23:00Z", "2026-04-01T00:00Z",
                                                   "2026-03-15T00:00Z", "2026-03-15T00:00Z", None], utc=True)})
    grids = pd.DataFrame({"grid_code": ["A", "B", "C"], "households": [200, 400, 0]})
    workers = pd.DataFrame({"worker_id": ["w1", "w2", "w3"], "grid_code": ["A", "A", "B"]})
    t = casework.workload_table(routed, grids, workers, ("2026-03-01", "2026-03-31"))
    g = t[(t.level == "grid") & (t.kind == "all")].set_index("grid_code")
    assert g.loc["A", "cases"] == 2 and g.loc["A", "cases_per_1000_households"] == 10.0
    assert g.loc["B", "cases"] == 1 and g.loc["B", "cases_per_1000_households"] == 2.5
    assert g.loc["C", "cases"] == 0 and np.isnan(g.loc["C", "cases_per_1000_households"])
    k = t[(t.level == "grid") & (t.grid_code == "A")].set_index("kind")["cases"]
    assert k["hotline"] == 1 and k["dispute"] == 1
    w = t[(t.level == "worker") & (t.kind == "all")].set_index("worker_id")
    assert w.loc["w1", "cases"] == 1 and w.loc["w1", "households"] == 100 and w.loc["w3", "households"] == 400
    assert w.loc["w1", "cases_per_1000_households"] == 10.0


def test_outputs_feed_the_next_plan(plan_cases, tmp_path):
    plan, _, path = plan_cases
    res = route_plan_cases(plan, path, period=("2026-02-01", "2026-06-30"))
    paths = write_route(res, tmp_path / "out" / "routed.csv")
    for name in ("workload.csv", "case_workload.gpkg", "household_cases.csv", "cases_report.html"):
        assert paths[name].exists(), name
    per_hh = pd.read_csv(paths["household_cases.csv"], dtype={"id": str})
    assert per_hh["cases"].sum() == res.meta["in_period"] - int(
        (casework.in_period(res.routed["time"], "2026-02-01", "2026-06-30") & res.routed["grid_code"].isna()).sum())
    assert set(per_hh["id"]) <= set(plan.households["id"].astype(str))
    layer = pyogrio.read_dataframe(paths["case_workload.gpkg"], layer="case_workload")
    assert layer["cases"].sum() == per_hh["cases"].sum() and "cases_hotline" in layer.columns
    html = paths["cases_report.html"].read_text()
    assert "<script src" not in html and "http://" not in html.replace("http://www.w3.org", "")
    routed = pd.read_csv(paths["cases"], dtype=str)
    assert routed["time"].iloc[0] == str(pd.read_csv(path, dtype=str)["time"].iloc[0])


def test_cli_route(small_plan_dir, plan_cases, tmp_path):
    from test_cli import gridplan
    _, _, path = plan_cases
    r = gridplan("route", "--plan", small_plan_dir, "--cases", path, "--out", tmp_path / "r.csv",
                 "--period-from", "2026-01-01", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cases"] == 3000 and (tmp_path / "workload.csv").exists()
    r = gridplan("route", "--plan", small_plan_dir, "--cases", path, "--out", tmp_path / "r.csv",
                 "--period-to", "someday")
    assert r.returncode == 2 and "--period-to" in r.stderr
    r = gridplan("route", "--plan", tmp_path, "--cases", path, "--out", tmp_path / "r.csv")
    assert r.returncode == 1 and "plan.gpkg" in r.stderr


# ------------------------------------------------------------------------------------------- HTTP
@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from gridplan.api.app import create_app
    from gridplan.api.auth import create_key
    from gridplan.api.settings import Settings
    from tests.helpers.api import wait_job, write_inputs
    d = tmp_path_factory.mktemp("cases_api")
    s = Settings(data_dir=str(d / "data"), runner="tests.helpers.api:fake_runner", poll_interval_s=0.05,
                 max_batch_points=500, max_json_bytes=80_000)
    key = create_key("reader", s.data_dir)
    planner = create_key("planner", s.data_dir)
    inputs = write_inputs(d / "in")
    with TestClient(create_app(s)) as c:
        files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
        r = c.post("/v1/jobs", files=files, data={"params": "{}"}, headers={"X-API-Key": planner})
        jid = r.json()["id"]
        assert wait_job(lambda u: c.get(u, headers={"X-API-Key": key}), jid)["status"] == "succeeded"
        yield c, {"X-API-Key": key}


def _tiny_cases(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    xy = rng.uniform([119.995, 29.995], [120.045, 30.025], (n, 2))
    return pd.DataFrame({"id": [f"c{i}" for i in range(n)], "time": "2026-03-05T10:00:00+08:00",
                         "kind": rng.choice(["hotline", "dispute"], n), "lon": xy[:, 0], "lat": xy[:, 1]})


def test_http_route_json_equals_lookup(api):
    c, h = api
    cases = _tiny_cases()
    r = c.post("/v1/cases/route", json={"cases": cases.to_dict("records"), "period_from": "2026-03-01"}, headers=h)
    assert r.status_code == 200, r.text
    got = r.json()
    look = c.post("/v1/lookup", json={"points": cases[["lon", "lat"]].to_numpy().tolist()}, headers=h).json()
    assert len(got["results"]) == len(look["results"]) == len(cases)
    for mine, ref in zip(got["results"], look["results"]):
        if ref is None:
            assert mine["grid_code"] is None
            continue
        for f in ("grid_code", "village_code", "township_code", "county_code", "station_id", "minutes", "covered",
                  "worker_ids"):
            assert mine[f] == ref[f], f
    grid_rows = [w for w in got["workload"] if w["level"] == "grid" and w["kind"] == "all"]
    assert sum(w["cases"] for w in grid_rows) == sum(x is not None for x in look["results"])


def test_http_route_csv_upload_and_errors(api):
    c, h = api
    cases = _tiny_cases(300, seed=1)
    buf = io.StringIO()
    cases.to_csv(buf, index=False)
    r = c.post("/v1/cases/route", files={"cases": ("orders.csv", buf.getvalue().encode())}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    routed = pd.read_csv(io.StringIO(r.text), dtype=str)
    assert list(routed["id"]) == list(cases["id"]) and routed["time"].iloc[0] == cases["time"].iloc[0]
    r = c.post("/v1/cases/route", files={"cases": ("orders.csv", buf.getvalue().encode())}, data={"want": "workload"},
               headers=h)
    assert r.status_code == 200 and r.json()["workload"]
    r = c.post("/v1/cases/route", files={"cases": ("orders.csv", b"id,where\n1,here\n")}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][-1]["source"] == "orders.csv"
    assert c.post("/v1/cases/route", json={"cases": _tiny_cases(501).to_dict("records")}, headers=h).status_code == 413
    r = c.post("/v1/cases/route", json={"cases": [1, 2]}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["row"] == "cases.0"
    r = c.post("/v1/cases/route", json={"cases": [], "period_to": "soon", "coords": "mars"}, headers=h)
    assert r.status_code == 422 and {e["row"] for e in r.json()["errors"]} == {"period_to", "coords"}
    assert c.post("/v1/cases/route", json={"cases": []}).status_code == 401
    assert c.post("/v1/cases/route", json={"cases": []}, headers=h).json()["results"] == []
    assert "Traceback" not in r.text



def test_http_cases_file_larger_than_the_json_cap_streams_as_an_upload(api):
    c, h = api
    cases = _tiny_cases(3000, seed=2)
    body = cases.to_csv(index=False).encode()
    assert len(body) > 80_000
    r = c.post("/v1/cases/route", files={"cases": ("big.csv", body)}, data={"want": "workload"}, headers=h)
    assert r.status_code == 200, r.text
    assert sum(w["cases"] for w in r.json()["workload"] if w["level"] == "grid" and w["kind"] == "all") > 0
    big_json = {"cases": _tiny_cases(400).to_dict("records"), "pad": "x" * 80_000}
    assert c.post("/v1/cases/route", json=big_json, headers=h).status_code == 413


def test_cases_in_a_plan_with_micro_grids_carry_the_micro_grid(tmp_path):
    from gridplan.optimize import plan
    from gridplan.optimize.cases import fixed_plan, route_cases
    from tests.helpers.edit_plans import synthetic_inputs
    b, hh = synthetic_inputs(5)
    plan(b, hh, target_households=40, time_limit_per_unit=1.0, coverage_target=0, micro_target=10).to_dir(
        tmp_path / "p", report=False)
    idx = GridIndex.from_plan_dir(tmp_path / "p")
    rng = np.random.default_rng(1)
    x0, y0, x1, y1 = b.total_bounds
    n = 300
    cases = pd.DataFrame({"id": [str(i) for i in range(n)], "time": pd.NaT, "kind": "patrol",
                          "lon": rng.uniform(x0 - 1e-3, x1, n), "lat": rng.uniform(y0, y1, n)})
    cases["time"] = pd.to_datetime(cases["time"], utc=True)
    routed = route_cases(cases, fixed_plan("p", idx))
    assert routed["micro_grid_code"].notna().sum() > 0.8 * n
    _same_as_lookup(routed, idx)
