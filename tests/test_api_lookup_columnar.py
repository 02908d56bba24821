"""POST /v1/lookup with Arrow IPC, (Geo)Parquet and CSV bodies and answers: the JSON answers, columnar;
its own batch cap; hostile bodies answered with a 4xx problem naming what is wrong, never a 500."""
from __future__ import annotations

import io

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.columnar import ARROW, PARQUET, answer_kind
from gridplan.api.settings import Settings
from gridplan.geo.coords import from_wgs84
from gridplan.geo.index import RESULT_FIELDS
from tests.helpers.api import wait_job, write_inputs

RUNNER = "tests.helpers.api:fake_runner"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("columnar")
    s = Settings(data_dir=str(d / "data"), runner=RUNNER, poll_interval_s=0.05, max_batch_points=1000,
                 lookup_max_points_columnar=5000, max_columnar_bytes=400_000)
    keys = {"planner": create_key("planner", s.data_dir), "reader": create_key("reader", s.data_dir)}
    inputs = write_inputs(d / "in")
    with TestClient(create_app(s)) as c:
        files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
        r = c.post("/v1/jobs", files=files, data={"params": "{}"}, headers={"X-API-Key": keys["planner"]})
        h = {"X-API-Key": keys["reader"]}
        assert wait_job(lambda u: c.get(u, headers=h), r.json()["id"])["status"] == "succeeded"
        yield c, h


def points(n=300, seed=0):
    """Points over and around the tiny plan (120.00–120.04 x 30.00–30.02), some NaN and out of range."""
    xy = np.random.default_rng(seed).uniform([119.99, 29.995], [120.05, 30.025], (n, 2))
    xy[5] = [np.nan, 30.01]
    xy[6] = [200.0, 30.01]
    return xy


def arrow_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def expected(c, h, xy):
    """The JSON batch's answers for the same points (NaN sent as an out-of-range point: both are null)."""
    pts = np.where(np.isnan(xy), 999.0, xy).tolist()
    r = c.post("/v1/lookup", json={"points": pts}, headers=h)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def as_rows(table: pa.Table) -> list:
    rows = []
    for row in table.select(list(RESULT_FIELDS)).to_pylist():
        rows.append(None if row["grid_code"] is None else row)
    return rows


def test_arrow_in_arrow_out_is_the_json_answer_row_by_row(env):
    c, h = env
    xy = points()
    ids = pa.array([f"p{i}" for i in range(len(xy))])
    body = arrow_bytes(pa.table({"id": ids, "lon": xy[:, 0], "lat": xy[:, 1]}))
    r = c.post("/v1/lookup", content=body, headers={**h, "Content-Type": ARROW})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == ARROW
    t = pa.ipc.open_stream(r.content).read_all()
    assert t.column_names == ["id"] + list(RESULT_FIELDS)
    assert t.column("id").to_pylist() == ids.to_pylist()
    want = expected(c, h, xy)
    assert as_rows(t) == want
    assert sum(w is None for w in want) > 10 and sum(w is not None for w in want) > 100   # both kinds tested
    outside = t.filter(pa.compute.is_null(t.column("grid_code")))
    assert all(v is None for col in outside.select(list(RESULT_FIELDS)).columns for v in col.to_pylist())


def test_offset_coordinates_as_a_query_parameter(env):
    c, h = env
    xy = points(seed=3)
    xy = xy[np.isfinite(xy).all(1) & (np.abs(xy[:, 0]) <= 180)]
    gx, gy = from_wgs84(xy[:, 0], xy[:, 1], "gcj02")
    body = arrow_bytes(pa.table({"lon": gx, "lat": gy}))
    r = c.post("/v1/lookup?coords=gcj02", content=body, headers={**h, "Content-Type": ARROW})
    assert r.status_code == 200, r.text
    got = pa.ipc.open_stream(r.content).read_all().column("grid_code").to_pylist()
    assert got == [None if a is None else a["grid_code"] for a in expected(c, h, xy)]


def test_parquet_in_geoparquet_out_and_geoparquet_points_in(env):
    c, h = env
    xy = points(seed=1)
    buf = io.BytesIO()
    pq.write_table(pa.table({"lon": xy[:, 0], "lat": xy[:, 1]}), buf)
    r = c.post("/v1/lookup", content=buf.getvalue(), headers={**h, "Content-Type": "application/x-parquet"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == PARQUET
    gdf = gpd.read_parquet(io.BytesIO(r.content))
    assert gdf.crs.to_string() == "OGC:CRS84" and list(gdf.columns[:-1]) == list(RESULT_FIELDS)
    fin = np.isfinite(xy).all(1) & (np.abs(xy[:, 0]) <= 180)   # the rest: empty points
    assert np.allclose(shapely.get_coordinates(gdf.geometry.values[fin]), xy[fin])
    assert as_rows(pa.Table.from_pandas(pd.DataFrame(gdf.drop(columns="geometry")))) == expected(c, h, xy)
    # a GeoParquet body of points (no lon/lat columns) answers the same
    pts = gpd.GeoDataFrame({"id": np.arange(len(xy))}, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=4326)
    buf = io.BytesIO()
    pts.to_parquet(buf)
    r2 = c.post("/v1/lookup", content=buf.getvalue(), headers={**h, "Content-Type": PARQUET, "Accept": ARROW})
    assert r2.status_code == 200, r2.text
    t = pa.ipc.open_stream(r2.content).read_all()
    assert t.column("id").to_pylist() == list(range(len(xy)))
    assert t.column("grid_code").to_pylist() == gdf.grid_code.astype(object).where(gdf.grid_code.notna(), None).tolist()


def test_csv_in_csv_out_for_spreadsheets(env):
    c, h = env
    xy = points(seed=2)[:50]
    text = "id,lon,lat\n" + "".join(f"r{i},{x!r},{y!r}\n" for i, (x, y) in enumerate(xy.tolist())).replace("nan", "")
    r = c.post("/v1/lookup", content=text.encode(), headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    df = pd.read_csv(io.StringIO(r.text), dtype=str, keep_default_na=False)
    assert list(df.columns) == ["id"] + list(RESULT_FIELDS)
    want = expected(c, h, xy)
    for (_, row), w in zip(df.iterrows(), want):
        assert row["grid_code"] == ("" if w is None else w["grid_code"])
        if w is not None:
            assert row["worker_ids"] == ";".join(w["worker_ids"])


def test_json_in_with_a_columnar_accept_and_406(env):
    c, h = env
    r = c.post("/v1/lookup", json={"points": [[120.001, 30.019]]}, headers={**h, "Accept": ARROW})
    assert r.status_code == 200 and pa.ipc.open_stream(r.content).read_all().column("grid_code")[0].as_py()
    r = c.post("/v1/lookup", json={"points": [[120.001, 30.019]]}, headers={**h, "Accept": "text/html"})
    assert r.status_code == 406 and r.headers["content-type"].startswith("application/problem+json")
    assert answer_kind("text/csv;q=0.5, application/vnd.apache.arrow.stream", "json") == "arrow"
    assert answer_kind("*/*", "parquet") == "parquet" and answer_kind(None, "json") == "json"


def test_the_columnar_cap_is_its_own_and_json_answers_keep_theirs(env):
    c, h = env
    xy = np.tile([120.001, 30.019], (2000, 1))
    ok = c.post("/v1/lookup", content=arrow_bytes(pa.table({"lon": xy[:, 0], "lat": xy[:, 1]})),
                headers={**h, "Content-Type": ARROW})
    assert ok.status_code == 200 and pa.ipc.open_stream(ok.content).read_all().num_rows == 2000  # > JSON's 1000
    as_json = c.post("/v1/lookup", content=arrow_bytes(pa.table({"lon": xy[:, 0], "lat": xy[:, 1]})),
                     headers={**h, "Content-Type": ARROW, "Accept": "application/json"})
    assert as_json.status_code == 413 and "1000" in as_json.json()["detail"]
    big = np.tile([120.001, 30.019], (6000, 1))
    r = c.post("/v1/lookup", content=arrow_bytes(pa.table({"lon": big[:, 0], "lat": big[:, 1]})),
               headers={**h, "Content-Type": ARROW})
    assert r.status_code == 413 and "lookup_max_points_columnar" in r.json()["detail"]
    huge = np.zeros((30000, 2))
    r = c.post("/v1/lookup", content=arrow_bytes(pa.table({"lon": huge[:, 0], "lat": huge[:, 1]})),
               headers={**h, "Content-Type": ARROW})
    assert r.status_code == 413 and "max_columnar_bytes" in r.json()["detail"]


@pytest.mark.parametrize("ctype, body, status, words", [
    (ARROW, b"not arrow at all", 400, "Arrow IPC"),
    (ARROW, "TRUNCATED", 400, "Arrow IPC"),
    (ARROW, "NO_LAT", 422, "'lat'"),
    (ARROW, "STRING_LON", 422, "'lon'"),
    (PARQUET, b"PAR1garbagePAR1", 400, "Parquet"),
    ("text/csv", b"lon,lat\n120.0,abc\n", 422, "CSV"),
    ("text/csv", b"x,y\n1,2\n", 422, "'lon'"),
])
def test_hostile_bodies_get_a_problem_naming_it(env, ctype, body, status, words):
    c, h = env
    good = arrow_bytes(pa.table({"lon": [120.001] * 50, "lat": [30.019] * 50}))
    body = {"TRUNCATED": good[: len(good) // 2 + 7], "NO_LAT": arrow_bytes(pa.table({"lon": [1.0]})),
            "STRING_LON": arrow_bytes(pa.table({"lon": ["a"], "lat": [1.0]}))}.get(body, body)
    r = c.post("/v1/lookup", content=body, headers={**h, "Content-Type": ctype})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert words in r.json()["detail"]
    assert "Error" not in r.json()["detail"] and "/" not in r.json()["detail"].replace("text/csv", "")


def test_arrow_answers_stream_in_record_batches_in_input_order(env, monkeypatch):
    import gridplan.api.routes.lookup as lookup_route
    monkeypatch.setattr(lookup_route, "CHUNK", 64)
    c, h = env
    xy = points(seed=4)
    ids = pa.array(np.arange(len(xy)) * 7)
    r = c.post("/v1/lookup", content=arrow_bytes(pa.table({"id": ids, "lon": xy[:, 0], "lat": xy[:, 1]})),
               headers={**h, "Content-Type": ARROW})
    assert r.status_code == 200, r.text
    batches = list(pa.ipc.open_stream(r.content))
    assert [b.num_rows for b in batches] == [64, 64, 64, 64, 44]
    t = pa.Table.from_batches(batches)
    assert t.column("id").to_pylist() == ids.to_pylist() and as_rows(t) == expected(c, h, xy)


def test_single_lookup_checks_the_key_first_and_documents_its_query(env):
    """GET /v1/lookup reads its query by hand (the hot path): same auth order, errors and OpenAPI as before."""
    c, h = env
    assert c.get("/v1/lookup?lon=abc").status_code == 401
    r = c.get("/v1/lookup?lon=abc&lat=95&coords=mars&plan=" + "x" * 65, headers=h)
    assert r.status_code == 422
    assert [(e["source"], e["row"]) for e in r.json()["errors"]] == \
        [("query", "lon"), ("query", "lat"), ("query", "plan"), ("query", "coords")]
    assert c.get("/v1/lookup?lon=120.001&lat=30.019&coords=GCJ-02", headers=h).status_code == 422   # names are exact
    op = c.get("/openapi.json").json()["paths"]["/v1/lookup"]["get"]
    assert [p["name"] for p in op["parameters"]] == ["lon", "lat", "plan", "coords", "as_of"]
    assert op["parameters"][0]["required"] and op["security"] == [{"APIKeyHeader": []}]
