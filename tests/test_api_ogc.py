"""OGC API – Features: GDAL's OAPIF driver reads every collection of a real server (bbox, paging, key
through GDAL_HTTP_HEADER_FILE) and gets the plan's layers back, in true WGS 84 also for a plan
written in GCJ-02; the in-process checks pin the documents, CRSs, filters, paging and auth."""
from __future__ import annotations

import signal
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key_in
from gridplan.api.settings import Settings
from gridplan.api.store import Store
from gridplan.geo.output import write_plan_dir
from tests.helpers.api import free_port, start_server, tiny_layers

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
IDS = {"grids": "grid_code", "stations": "station_id", "workers": "worker_id"}


def plan_layers(seed: int) -> tuple[dict[str, gpd.GeoDataFrame], dict]:
    """The tiny plan with a 5 x 5 lattice of grids and 37 households (enough for several small pages)."""
    layers, summary = tiny_layers()
    rng = np.random.default_rng(seed)
    cells, codes, vill = [], [], []
    for i in range(25):
        x0, y0 = 120.0 + (i % 5) * 0.008, 30.0 + (i // 5) * 0.004
        cells.append(shapely.box(x0, y0, x0 + 0.008, y0 + 0.004))
        v = "330110001001" if i % 5 < 3 else "330110001002"
        vill.append(v)
        codes.append(f"{v}{i + 1:03d}")
    layers["grids"] = gpd.GeoDataFrame({"grid_code": codes, "village_code": vill, "households": rng.integers(1, 99, 25),
                                        "area_km2": rng.uniform(0.5, 1.5, 25)}, geometry=cells, crs=4326)
    xy = rng.uniform([120.0, 30.0], [120.04, 30.02], (37, 2))
    layers["households"] = gpd.GeoDataFrame({"id": [f"户{i}" for i in range(37)], "grid_code": codes[0],
                                             "station_id": "S1", "minutes": rng.uniform(0, 30, 37)},
                                            geometry=shapely.points(xy), crs=4326)
    return layers, summary


def add_plan(store: Store, seed: int, output_coords: str = "wgs84") -> tuple[str, dict]:
    """A succeeded job whose plan directory holds :func:`plan_layers` written in ``output_coords``."""
    layers, summary = plan_layers(seed)
    summary["output_coords"] = output_coords
    jid = store.new_id()
    store.create_job(jid, {}, {})
    write_plan_dir(store.out_dir(jid), layers, summary, output_coords=output_coords, report=False)
    assert store.finish(jid, "succeeded", summary=summary, only_if=("queued",))
    return jid, layers


@pytest.fixture
def data(tmp_path):
    """(settings, reader key, {collection prefix: (plan id, layers)}): an older GCJ-02 plan and the live one."""
    s = Settings(data_dir=str(tmp_path / "data"), poll_interval_s=0.05)
    store = Store(s)
    key = create_key_in(store.engine, "reader")
    old = add_plan(store, 1, "gcj02")
    live = add_plan(store, 2)
    return s, key, {"": live, f"{old[0]}.": old}


def _same(got: gpd.GeoDataFrame, want: gpd.GeoDataFrame, layer: str) -> None:
    """Same features (by id column, else in order), same attributes, geometries within 1e-7 degrees."""
    assert len(got) == len(want), layer
    idc = IDS.get(layer)
    if idc:
        got, want = got.sort_values(idc).reset_index(drop=True), want.sort_values(idc).reset_index(drop=True)
        assert got[idc].tolist() == want[idc].tolist(), layer
    else:
        got, want = got.reset_index(drop=True), want.reset_index(drop=True)
    for col in want.columns.drop(want.geometry.name):
        assert got[col].astype(str).tolist() == want[col].astype(str).tolist(), (layer, col)
    g, w = got.geometry.values, want.geometry.values
    assert all(shapely.equals_exact(g, w, tolerance=1e-7)), layer


@pytest.mark.slow
def test_gdal_reads_every_collection_with_bbox_and_paging(data, tmp_path):
    s, key, plans = data
    port = free_port()
    proc = start_server(Path(s.data_dir), port, log=tmp_path / "server.log")
    headers = tmp_path / "headers.txt"
    headers.write_text(f"X-API-Key: {key}\n")
    pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": str(headers)})
    url = f"OAPIF:http://127.0.0.1:{port}/ogc"
    try:
        listed = {str(n) for n, _ in pyogrio.list_layers(url)}
        box = (120.005, 30.003, 120.021, 30.013)
        for prefix, (_jid, layers) in plans.items():
            assert {prefix + n for n in layers} <= listed
            for name, want in layers.items():
                got = pyogrio.read_dataframe(url, layer=prefix + name, PAGE_SIZE=4)
                _same(got, want, name)
                got = pyogrio.read_dataframe(url, layer=prefix + name, PAGE_SIZE=3, bbox=box)
                _same(got, want[want.intersects(shapely.box(*box))], name)
        # Part 2: GDAL asks for CGCS2000 (EPSG:4490, latitude first on the wire) and gets the same positions
        got = pyogrio.read_dataframe(url, layer="grids", PAGE_SIZE=10, CRS="EPSG:4490")
        assert got.crs.to_epsg() == 4490
        _same(got, plans[""][1]["grids"], "grids")
        # the key travels in the header file only: without it the collections are refused
        pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": None})
        with pytest.raises(pyogrio.errors.DataSourceError, match="401"):
            pyogrio.read_dataframe(url, layer="grids")
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_HEADER_FILE": None})
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    log = (tmp_path / "server.log").read_text()
    assert log.count('"path": "/ogc/collections/grids/items"') >= 25 // 4 + 1   # it paged


@pytest.fixture
def client(data):
    s, key, plans = data
    with TestClient(create_app(s)) as c:
        yield c, {"X-API-Key": key}, plans


def _all_pages(c, url, h, limit) -> list[dict]:
    feats, n_pages = [], 0
    while url:
        r = c.get(url, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["numberReturned"] == len(body["features"]) <= limit
        feats += body["features"]
        n_pages += 1
        url = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
    return feats


def test_items_page_with_next_links_and_counts(client):
    c, h, plans = client
    _jid, layers = plans[""]
    r = c.get("/ogc/collections/grids/items?limit=7", headers=h)
    assert r.headers["content-type"].startswith("application/geo+json")
    assert r.headers["content-crs"] == f"<{CRS84}>"
    assert r.json()["numberMatched"] == 25
    feats = _all_pages(c, "/ogc/collections/grids/items?limit=7", h, 7)
    assert [f["id"] for f in feats] == layers["grids"]["grid_code"].tolist()
    # the default page is 10 features; a limit above the maximum is taken as the maximum
    assert len(c.get("/ogc/collections/households/items", headers=h).json()["features"]) == 10
    assert len(c.get("/ogc/collections/households/items?limit=99999999", headers=h).json()["features"]) == 37


def test_bbox_filters_and_pages_exactly(client):
    c, h, plans = client
    _jid, layers = plans[""]
    box = (120.005, 30.003, 120.021, 30.013)
    want = layers["households"][layers["households"].intersects(shapely.box(*box))]
    feats = _all_pages(c, "/ogc/collections/households/items?limit=2&bbox=" + ",".join(map(str, box)), h, 2)
    assert [f["properties"]["id"] for f in feats] == want["id"].tolist()
    # the same box in EPSG:4326 axis order (latitude first)
    lat_first = ",".join(map(str, (box[1], box[0], box[3], box[2])))
    r = c.get(f"/ogc/collections/households/items?limit=100&bbox={lat_first}&bbox-crs=EPSG:4326", headers=h)
    assert [f["properties"]["id"] for f in r.json()["features"]] == want["id"].tolist()


def test_gcj02_plan_is_served_in_true_wgs84_and_cgcs2000_is_lat_first(client):
    c, h, plans = client
    (prefix, (_jid, layers)), = [(p, v) for p, v in plans.items() if p]
    r = c.get(f"/ogc/collections/{prefix}grids/items/{layers['grids'].grid_code[3]}", headers=h)
    g = shapely.geometry.shape(r.json()["geometry"])
    assert shapely.equals_exact(g, layers["grids"].geometry[3], tolerance=1e-7)
    r = c.get(f"/ogc/collections/{prefix}stations/items?crs=http://www.opengis.net/def/crs/EPSG/0/4490", headers=h)
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4490>"
    lat, lon = r.json()["features"][0]["geometry"]["coordinates"]
    p = layers["stations"].geometry[0]
    assert abs(lon - p.x) < 1e-7 and abs(lat - p.y) < 1e-7
    # the stored GeoPackage really holds the offset coordinates (about 500 m away)
    stored = pyogrio.read_dataframe(Path(c.app.state.ctx.store.out_dir(_jid)) / "plan.gpkg", layer="stations")
    assert stored.geometry[0].distance(p) > 1e-3


def test_attribute_filters_single_items_and_bad_parameters(client):
    c, h, plans = client
    _jid, layers = plans[""]
    r = c.get("/ogc/collections/grids/items?village_code=330110001002&limit=100", headers=h)
    want = layers["grids"][layers["grids"].village_code == "330110001002"]
    assert [f["id"] for f in r.json()["features"]] == want.grid_code.tolist()
    assert "numberMatched" not in r.json()
    code = layers["grids"].grid_code[11]
    r = c.get(f"/ogc/collections/grids/items/{code}", headers=h)
    assert r.status_code == 200 and r.json()["properties"]["grid_code"] == code
    for bad in ("nope'; --", "a%00b", "%00"):
        assert c.get(f"/ogc/collections/grids/items/{bad}", headers=h).status_code == 404, bad
    assert c.get("/ogc/collections/units/items/2", headers=h).json()["id"] == 2
    for fid in ("0", "3", "99999999999999999999", "x"):
        assert c.get(f"/ogc/collections/units/items/{fid}", headers=h).status_code == 404, fid
    r = c.get("/ogc/collections/" + "x" * 5000 + ".grids", headers=h)
    assert r.status_code == 404 and len(r.json()["detail"]) < 200
    # a box beyond the globe is the globe, also for a plan stored in GCJ-02
    old = next(p for p in plans if p)
    for coll in ("grids", old + "grids"):
        r = c.get(f"/ogc/collections/{coll}/items?bbox=-1e308,-90,1e308,90&limit=100", headers=h)
        assert r.status_code == 200 and r.json()["numberReturned"] == 25
    for q in ("bbox=1,2,3", "bbox=a,b,c,d", "limit=0", "offset=-1", "crs=EPSG:3857", "nosuch=1",
              "datetime=yesterday"):
        r = c.get(f"/ogc/collections/grids/items?{q}", headers=h)
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", q
    assert c.get("/ogc/collections/nope/items", headers=h).status_code == 404
    assert c.get("/ogc/collections/0000000000000000.grids", headers=h).status_code == 404


def test_documents_and_keys(client, data):
    c, h, plans = client
    links = {lk["rel"]: lk["href"] for lk in c.get("/ogc").json()["links"]}
    assert links["service-desc"].endswith("/openapi.json") and links["data"].endswith("/ogc/collections")
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in c.get("/ogc/conformance").json()["conformsTo"]
    assert c.get("/ogc/collections").status_code == 401
    assert c.get("/ogc/collections/grids/items").status_code == 401
    cols = {col["id"]: col for col in c.get("/ogc/collections", headers=h).json()["collections"]}
    # the live plan's layers unprefixed, and every plan's (the live one too) as {plan}.{layer}
    assert set(cols) == set(plans[""][1]) | {f"{j}.{n}" for j, layers in plans.values() for n in layers}
    bb = cols["grids"]["extent"]["spatial"]["bbox"][0]
    assert np.allclose(bb, plans[""][1]["grids"].total_bounds)
    assert cols["grids"]["storageCrs"] == CRS84
    old = next(p for p in plans if p)
    assert "storageCrs" not in cols[old + "grids"]   # stored in GCJ-02, served converted
    assert np.allclose(cols[old + "grids"]["extent"]["spatial"]["bbox"][0], plans[old][1]["grids"].total_bounds,
                       atol=2e-3)
    q = c.get("/ogc/collections/grids/queryables", headers=h).json()["properties"]
    assert q == {"grid_code": {"title": "grid_code", "type": "string"},
                 "village_code": {"title": "village_code", "type": "string"},
                 "households": {"title": "households", "type": "integer"},
                 "area_km2": {"title": "area_km2", "type": "number"},
                 "geometry": {"title": "geometry", "format": "geometry-any"}}
    assert c.get("/ogc/collections/stations/queryables", headers=h).json()["properties"]["existing"]["type"] == "boolean"
    # datetime selects published versions by their effective period; an unpublished one answers none
    import datetime as dt

    from gridplan.api import versions
    items = lambda when: c.get(f"/ogc/collections/grids/items?datetime={when}", headers=h).json()  # noqa: E731
    assert items("2000-01-01T00:00:00Z/..")["features"] == []
    live = plans[""][0]
    assert versions.publish(c.app.state.ctx.store.engine, live, dt.date(2026, 1, 1))
    r = items("2000-01-01T00:00:00Z")
    assert r["features"] == [] and r["numberMatched"] == 0
    assert len(items("2026-03-01T00:00:00Z")["features"]) == 10
    assert len(items("2000-01-01T00:00:00Z/..")["features"]) == 10
    assert items("2000-01-01T00:00:00Z/2025-12-31T23:59:59Z")["features"] == []


def test_public_published_opens_the_live_plan_only(data):
    s, key, plans = data
    with TestClient(create_app(s.with_(public_published=True))) as c:
        assert c.get("/ogc/collections/grids/items").status_code == 200
        ids = {col["id"] for col in c.get("/ogc/collections").json()["collections"]}
        assert ids == set(plans[""][1])
        old = next(p for p in plans if p)
        assert c.get(f"/ogc/collections/{old}grids/items").status_code == 401
        assert c.get(f"/ogc/collections/{old}grids/items", headers={"X-API-Key": key}).status_code == 200
        assert c.get("/ogc/collections/grids/items", headers={"X-API-Key": "gp_bad_key"}).status_code == 401


def test_a_plan_whose_files_are_gone_is_not_listed_nor_served(client):
    import shutil

    c, h, plans = client
    old = next(p for p in plans if p)
    assert c.get(f"/ogc/collections/{old}grids", headers=h).status_code == 200
    shutil.rmtree(c.app.state.ctx.store.out_dir(plans[old][0]))
    ids = {col["id"] for col in c.get("/ogc/collections", headers=h).json()["collections"]}
    assert "grids" in ids and not any(i.startswith(old) for i in ids)
    assert c.get(f"/ogc/collections/{old}grids/items", headers=h).status_code == 404


def test_the_api_definition_is_valid_openapi_30(client):
    import jsonschema
    from schemathesis.specs.openapi.definitions import OPENAPI_30  # the official OAS 3.0 schema

    c, _h, _plans = client
    links = [lk for lk in c.get("/ogc").json()["links"] if lk["rel"] == "service-desc"]
    assert links[0]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    r = c.get(links[0]["href"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    doc = r.json()
    jsonschema.Draft4Validator(OPENAPI_30).validate(doc)
    assert doc["openapi"].startswith("3.0") and set(doc["paths"]) >= {
        "/ogc", "/ogc/conformance", "/ogc/collections", "/ogc/collections/{collection_id}/items"}
    params = {p["name"]: p for p in doc["paths"]["/ogc/collections/{collection_id}/items"]["get"]["parameters"]}
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10}
    # the 3.1 document of the whole service does not pass as 3.0: the check can fail
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(OPENAPI_30).validate(dict(c.get("/openapi.json").json(), openapi="3.0.3"))


def test_features_write_missing_values_as_null_and_keep_types():
    import json

    import pandas as pd

    from gridplan.geo.featurestream import feature_jsons

    gdf = gpd.GeoDataFrame({"grid_code": ["g1", "g2"], "name": pd.array(["东厅", pd.NA], dtype="string"),
                            "existing": np.array([True, False]), "minutes": [np.nan, 2.5], "n": np.array([1, 2])},
                           geometry=[shapely.Point(120.1, 30.2), None], crs=4326, index=[7, 9])
    a, b = (json.loads(x) for x in feature_jsons(gdf, "grids"))
    assert a == {"type": "Feature", "id": "g1", "geometry": {"type": "Point", "coordinates": [120.1, 30.2]},
                 "properties": {"grid_code": "g1", "name": "东厅", "existing": True, "minutes": None, "n": 1}}
    assert b["geometry"] is None and b["properties"]["name"] is None and b["properties"]["minutes"] == 2.5
    # other layers are named by FID (the frame's index); lat_lon swaps the axes
    c = json.loads(feature_jsons(gdf, "units", lat_lon=True)[0])
    assert c["id"] == 7 and c["geometry"]["coordinates"] == [30.2, 120.1]
