"""CQL2 filters on OGC API – Features items: the features a filter selects are the ones pandas selects
from the layer (also across pages and for a plan stored in GCJ-02), nulls follow SQL's three-valued
logic, AND binds tighter than OR, and hostile filters are 400 problems, never 500s."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient
from hypothesis import example, given, strategies as st

from gridplan.api.app import create_app
from gridplan.api.auth import create_key_in
from gridplan.api.settings import Settings
from gridplan.api.store import Store
from gridplan.geo.cql2 import FilterError, filter_mask, parse_filter
from tests.test_api_ogc import add_plan

PART3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/"
CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/"

# ---- the evaluator on a frame with nulls, against pandas (nullable dtypes: Kleene logic) ----

FRAME = gpd.GeoDataFrame(
    {"name": ["a_b", "abc", None, "x%y", "ABC", "户1", "abd"],
     "n": [1.0, 5.0, 7.0, np.nan, 10.0, -3.0, 4.0],
     "k": [1, 2, 3, 4, 5, 6, 7],
     "flag": [True, False, None, True, False, True, None]},
    geometry=[shapely.box(0, 0, 1, 1), shapely.box(2, 2, 3, 3), None, shapely.Point(5, 5),
              shapely.LineString([(0, 4), (4, 0)]), shapely.Point(0.5, 0.5), shapely.Point(9, 9)], crs=4326)
FIELDS = {"name": "object", "n": "float64", "k": "int64", "flag": "bool"}
name, n, k = FRAME["name"].astype("string"), FRAME["n"].astype("Float64"), FRAME["k"].astype("Int64")
flag = FRAME["flag"].astype("boolean")
BOX = shapely.box(0.5, 0.5, 2.5, 2.5)

CASES = [   # (cql2-text, the same in cql2-json, pandas' answer as a nullable boolean Series)
    ("n > 4", {"op": ">", "args": [{"property": "n"}, 4]}, n > 4),
    ("NOT n > 4", {"op": "not", "args": [{"op": ">", "args": [{"property": "n"}, 4]}]}, ~(n > 4)),
    ("n <> 5", {"op": "<>", "args": [{"property": "n"}, 5]}, n != 5),
    ("k <= 3 OR n >= 10", {"op": "or", "args": [{"op": "<=", "args": [{"property": "k"}, 3]},
                                                {"op": ">=", "args": [{"property": "n"}, 10]}]}, (k <= 3) | (n >= 10)),
    ("k BETWEEN 2 AND 4", {"op": "between", "args": [{"property": "k"}, 2, 4]}, (k >= 2) & (k <= 4)),
    ("n NOT BETWEEN 2 AND 8", {"op": "not", "args": [{"op": "between", "args": [{"property": "n"}, 2, 8]}]},
     ~((n >= 2) & (n <= 8))),
    ("name LIKE 'a%'", {"op": "like", "args": [{"property": "name"}, "a%"]}, name.str.startswith("a")),
    ("name LIKE '_b_'", {"op": "like", "args": [{"property": "name"}, "_b_"]}, name.str.fullmatch(".b.")),
    ("name LIKE 'x\\%y'", {"op": "like", "args": [{"property": "name"}, "x\\%y"]}, name == "x%y"),
    ("name IN ('abc', 'ABC', 'zz')", {"op": "in", "args": [{"property": "name"}, ["abc", "ABC", "zz"]]},
     name.isin(["abc", "ABC", "zz"]).astype("boolean").mask(name.isna())),
    ("name NOT IN ('abc')", {"op": "not", "args": [{"op": "in", "args": [{"property": "name"}, ["abc"]]}]},
     name != "abc"),
    ("name IS NULL", {"op": "isNull", "args": [{"property": "name"}]}, name.isna().astype("boolean")),
    ("n IS NOT NULL AND flag = true",
     {"op": "and", "args": [{"op": "not", "args": [{"op": "isNull", "args": [{"property": "n"}]}]},
                            {"op": "=", "args": [{"property": "flag"}, True]}]}, n.notna() & (flag == True)),  # noqa: E712
    ("flag <> true", {"op": "<>", "args": [{"property": "flag"}, True]}, flag != True),  # noqa: E712
    ("NOT (n > 4 AND k < 5)", {"op": "not", "args": [{"op": "and", "args": [
        {"op": ">", "args": [{"property": "n"}, 4]}, {"op": "<", "args": [{"property": "k"}, 5]}]}]},
     ~((n > 4) & (k < 5))),
    ("k = 1 OR k = 2 AND n > 100", {"op": "or", "args": [{"op": "=", "args": [{"property": "k"}, 1]}, {
        "op": "and", "args": [{"op": "=", "args": [{"property": "k"}, 2]}, {"op": ">", "args": [{"property": "n"}, 100]}]}]},
     (k == 1) | ((k == 2) & (n > 100))),
    ("S_INTERSECTS(geometry, BBOX(0.5, 0.5, 2.5, 2.5))",
     {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [0.5, 0.5, 2.5, 2.5]}]},
     pd.Series(FRAME.intersects(BOX), dtype="boolean")),
    ("S_INTERSECTS(geometry, POLYGON((0 0, 3 0, 3 3, 0 0))) AND name LIKE '%b%'",
     {"op": "and", "args": [{"op": "s_intersects", "args": [{"property": "geometry"}, {
         "type": "Polygon", "coordinates": [[[0, 0], [3, 0], [3, 3], [0, 0]]]}]},
                            {"op": "like", "args": [{"property": "name"}, "%b%"]}]},
     FRAME.intersects(shapely.Polygon([(0, 0), (3, 0), (3, 3)])).astype("boolean") & name.str.contains("b")),
    ("name = '户1' OR n < 0", {"op": "or", "args": [{"op": "=", "args": [{"property": "name"}, "户1"]},
                                                    {"op": "<", "args": [{"property": "n"}, 0]}]},
     (name == "户1") | (n < 0)),
]


@pytest.mark.parametrize("text,doc,want", CASES, ids=[c[0] for c in CASES])
def test_filters_select_what_pandas_selects(text, doc, want):
    want = want.fillna(False).to_numpy(bool)
    assert 0 < want.sum() < len(FRAME), "a case that keeps all or nothing tells little"
    got = filter_mask(FRAME, parse_filter(text, "cql2-text", FIELDS))
    assert got.tolist() == want.tolist()
    got = filter_mask(FRAME, parse_filter(json.dumps(doc), "cql2-json", FIELDS))
    assert got.tolist() == want.tolist()


def test_every_geometry_type_is_a_literal_in_both_encodings():
    gc = shapely.GeometryCollection([shapely.Point(9, 9), shapely.LineString([(2.5, 0), (2.5, 3)])])
    want = FRAME.intersects(gc).tolist()
    assert 0 < sum(want) < len(FRAME)
    doc = {"op": "s_intersects", "args": [{"property": "geometry"}, shapely.geometry.mapping(gc)]}
    for text, lang in ((f"S_INTERSECTS(geometry, {gc.wkt})", None), (json.dumps(doc), "cql2-json")):
        assert filter_mask(FRAME, parse_filter(text, lang, FIELDS)).tolist() == want, lang
    for g in (shapely.MultiPolygon([shapely.box(0, 0, 0.2, 0.2), shapely.box(4.9, 4.9, 5, 5)]),
              shapely.MultiLineString([[(0, 2), (1, 2)], [(8, 9), (10, 9)]]), shapely.MultiPoint([(5, 5), (9, 9)])):
        want = FRAME.intersects(g).tolist()
        doc = {"op": "s_intersects", "args": [shapely.geometry.mapping(g), {"property": "geometry"}]}
        assert filter_mask(FRAME, parse_filter(f"S_INTERSECTS(geometry, {g.wkt})", None, FIELDS)).tolist() == want
        assert filter_mask(FRAME, parse_filter(json.dumps(doc), "cql2-json", FIELDS)).tolist() == want


def test_geometry_literals_lat_first_when_the_filter_crs_says_so():
    lon_lat = parse_filter("S_INTERSECTS(geometry, POINT(5 5.0001))", None, FIELDS)
    lat_lon = parse_filter("S_INTERSECTS(geometry, POINT(5.0001 5))", None, FIELDS, lat_lon=True)
    assert filter_mask(FRAME, lon_lat).tolist() == filter_mask(FRAME, lat_lon).tolist()
    assert lat_lon.bounds == pytest.approx((5, 5.0001, 5, 5.0001))
    assert parse_filter("S_INTERSECTS(geometry, POINT(1 2)) AND k > 1", None, FIELDS).bounds == (1, 2, 1, 2)
    assert parse_filter("S_INTERSECTS(geometry, POINT(1 2)) OR k > 1", None, FIELDS).bounds is None


BAD = [   # (filter, lang, words the message must hold)
    ("nope = 1", None, "unknown property 'nope'"),
    ('{"op": "=", "args": [{"property": "nope"}, 1]}', "cql2-json", "unknown property 'nope'"),
    ("n = 'abc'", None, "type mismatch"),
    ("name > 3", None, "type mismatch"),
    ("flag > true", None, "booleans"),
    ("n LIKE 'a%'", None, "type mismatch"),
    ("geometry = 1", None, "S_INTERSECTS"),
    ("S_INTERSECTS(n, POINT(1 1))", None, "S_INTERSECTS"),
    ("S_WITHIN(geometry, POINT(1 1))", None, "S_WITHIN is not supported"),
    ("foo(n) = 1", None, "unknown function 'foo'"),
    ('{"op": "=", "args": [{"function": {"name": "evil", "args": []}}, 1]}', "cql2-json", "not valid"),
    ("n + 1 > 2", None, "arithmetic"),
    ("n < TIMESTAMP('2020-01-01T00:00:00Z')", None, "type mismatch"),
    ("T_BEFORE(n, TIMESTAMP('2020-01-01T00:00:00Z'))", None, "not valid"),
    ("n IN (k)", None, "literals"),
    ("n > 1e999", None, "out of range"),
    ("n = ", None, "not valid CQL2 text"),
    ("", None, "empty"),
    ("n > 1", "cql3", "filter-lang"),
    ("{", "cql2-json", "not valid JSON"),
    ('{"op": "and"}', "cql2-json", "not valid CQL2 JSON"),
    ("[1, 2]", "cql2-json", "not a predicate"),
    ("n > 1 AND " * 3000 + "n > 1", None, "longer than"),
    ("(" * 200 + "n > 1" + ")" * 200, None, "nested deeper"),
    ('{"op": "not", "args": [' * 300 + "true" + "]}" * 300, "cql2-json", "nested deeper"),
    ("[" * 15000 + "]" * 15000, "cql2-json", "longer than"),
    ("k IN (" + ",".join(map(str, range(2500))) + ")", None, "more than 2000 terms"),
    ("S_INTERSECTS(geometry, POINT(1 2 3 4 5))", None, "not valid"),
    ("S_INTERSECTS(geometry, SRID=3857;POINT(1 2))", None, "use filter-crs"),
    ('{"op": "in", "args": [{"property": "n"}, {"type": "Point", "coordinates": [1, 1]}]}', "cql2-json",
     "IN takes a list"),
    ('{"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [1e999, 0]}]}',
     "cql2-json", "not finite"),
]


@pytest.mark.parametrize("text,lang,words", BAD, ids=[f"{b[0][:40]}|{b[1]}" for b in BAD])
def test_bad_filters_are_refused_with_a_reason(text, lang, words):
    with pytest.raises(FilterError, match=None) as e:
        parse_filter(text, lang, FIELDS)
    assert words in str(e.value) and len(str(e.value)) < 300


TOKENS = ["n", "k", "name", "flag", "geometry", "nope", "=", "<>", "<", ">=", "AND", "OR", "NOT", "(", ")", ",",
          "IN", "BETWEEN", "LIKE", "IS", "NULL", "1", "-2.5", "'a%'", "'x'", "true", "S_INTERSECTS", "BBOX",
          "POINT(1 1)", "CASEI", "DATE('2020-01-01')", "+", "'", '"n"', "INCLUDE", "1e999"]


@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14))
@example(["n", "IN", "(", "1", ",", "'x'", ")"])
@example(["NOT", "(", "n", ">", "1", "OR", "name", "IS", "NULL", ")"])
@example(["n", "BETWEEN", "1", "AND", "1e999"])
@example(["DATE('2020-01-01')", "IS", "NULL"])
@example(["'x'", "IS", "NULL", "OR", "1", "IN", "(", "1", ")"])
def test_any_token_soup_is_evaluated_or_refused_never_crashes(tokens):
    try:
        f = parse_filter(" ".join(tokens), None, FIELDS)
    except FilterError:
        return
    mask = filter_mask(FRAME, f)
    assert mask.dtype == bool and len(mask) == len(FRAME)


# ---- over HTTP: pages of a real plan, both CQL2 encodings, hostile filters ----

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ogcfilter")
    s = Settings(data_dir=str(tmp / "data"), poll_interval_s=0.05)
    store = Store(s)
    key = create_key_in(store.engine, "reader")
    old = add_plan(store, 1, "gcj02")
    live = add_plan(store, 2)
    with TestClient(create_app(s)) as c:
        yield c, {"X-API-Key": key}, {"": live, f"{old[0]}.": old}


def _ids(c, url, h, params) -> list:
    """Page through every page (3 features each) and return the features' ids in order."""
    ids, n_pages = [], 0
    r = c.get(url, headers=h, params=dict(params, limit=3))
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        assert "numberMatched" not in body   # not counted when filtering
        ids += [f["id"] for f in body["features"]]
        n_pages += 1
        nxt = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
        if nxt is None:
            return ids
        r = c.get(nxt, headers=h)


GRID_FILTERS = [   # (cql2-text, pandas)
    ("households > 40 AND village_code = '330110001002'",
     lambda g: (g.households > 40) & (g.village_code == "330110001002")),
    ("households BETWEEN 20 AND 60 OR area_km2 < 0.7", lambda g: g.households.between(20, 60) | (g.area_km2 < 0.7)),
    ("grid_code LIKE '%01_' AND NOT households < 30", lambda g: g.grid_code.str.match(r"^.*01.$") & (g.households >= 30)),
    ("grid_code IN ('330110001001001', '330110001002005', 'none')",
     lambda g: g.grid_code.isin(["330110001001001", "330110001002005"])),
    ("S_INTERSECTS(geometry, BBOX(120.011, 30.005, 120.027, 30.013)) AND households > 10",
     lambda g: g.intersects(shapely.box(120.011, 30.005, 120.027, 30.013)) & (g.households > 10)),
]


@pytest.mark.parametrize("text,want", GRID_FILTERS, ids=[t for t, _ in GRID_FILTERS])
def test_filtered_pages_hold_the_features_pandas_selects(served, text, want):
    c, h, plans = served
    for prefix, (_jid, layers) in plans.items():   # the live WGS 84 plan and a GCJ-02 one (served converted)
        g = layers["grids"]
        expect = g.grid_code[want(g)].tolist()
        assert 0 < len(expect) < len(g), text
        assert _ids(c, f"/ogc/collections/{prefix}grids/items", h, {"filter": text}) == expect, (prefix, text)


def test_cql2_json_filter_crs_and_the_households_layer(served):
    c, h, plans = served
    _jid, layers = plans[""]
    hh = layers["households"]
    poly = shapely.Polygon([(120.005, 30.002), (120.03, 30.004), (120.02, 30.018)])
    want = [i + 1 for i in np.flatnonzero(hh.intersects(poly) & (hh.minutes < 20))]   # FIDs from 1
    assert 0 < len(want) < len(hh)
    doc = {"op": "and", "args": [{"op": "s_intersects", "args": [{"property": "geometry"}, shapely.geometry.mapping(poly)]},
                                 {"op": "<", "args": [{"property": "minutes"}, 20]}]}
    url = "/ogc/collections/households/items"
    assert _ids(c, url, h, {"filter": json.dumps(doc), "filter-lang": "cql2-json"}) == want
    lat_first = shapely.transform(poly, lambda xy: xy[:, ::-1])
    text = f"S_INTERSECTS(geometry, {lat_first.wkt}) AND minutes < 20"
    assert _ids(c, url, h, {"filter": text, "filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"}) == want
    # the ?name=value filter and the CQL2 filter combine
    assert _ids(c, url, h, {"filter": "minutes < 20", "station_id": "S2"}) == []


HOSTILE = [
    {"filter": "nope = 1"}, {"filter": "households = 'many'"}, {"filter": "evil(households) = 1"},
    {"filter": "households > 1 AND " * 2000 + "households > 1"}, {"filter": "(" * 500 + "households > 1" + ")" * 500},
    {"filter": '{"op": "not", "args": [' * 400 + "true" + "]}" * 400, "filter-lang": "cql2-json"},
    {"filter": "{'op': 1}", "filter-lang": "cql2-json"}, {"filter": "households > 1", "filter-lang": "sql"},
    {"filter": "households > 1", "filter-crs": "EPSG:3857"}, {"filter-lang": "cql2-text"},
    {"filter": "households > 1; DROP TABLE grids"}, {"filter": "\x00"}, {"filter": "S_INTERSECTS(geometry, BBOX(1,2))"},
]


@pytest.mark.parametrize("params", HOSTILE, ids=[str(p)[:50] for p in HOSTILE])
def test_hostile_filters_are_400_problems(served, params):
    c, h, _plans = served
    r = c.get("/ogc/collections/grids/items", headers=h, params=params)
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", r.text
    body = r.json()
    assert len(body["detail"]) < 400 and "Error" not in r.text and "/tmp" not in r.text and "/work" not in r.text
    if params.get("filter") == "nope = 1":
        assert "'nope'" in body["detail"] and "grid_code" in body["detail"]


def test_conformance_queryables_and_the_feature_models(served):
    c, h, plans = served
    conf = set(c.get("/ogc/conformance").json()["conformsTo"])
    assert {PART3 + "filter", PART3 + "features-filter", PART3 + "queryables", CQL2 + "basic-cql2",
            CQL2 + "cql2-text", CQL2 + "cql2-json"} <= conf
    q = c.get("/ogc/collections/households/queryables", headers=h).json()["properties"]
    assert q["minutes"]["type"] == "number" and q["id"]["type"] == "string" and "geometry" in q
    # the single feature is checked by the geojson-pydantic model, and says the same as the page
    code = plans[""][1]["grids"].grid_code[3]
    one = c.get(f"/ogc/collections/grids/items/{code}", headers=h).json()
    page = c.get("/ogc/collections/grids/items", headers=h, params={"filter": f"grid_code = '{code}'"}).json()
    assert one["geometry"] == page["features"][0]["geometry"] and one["properties"] == page["features"][0]["properties"]
    assert [lk["rel"] for lk in one["links"]] == ["self", "collection"] and "bbox" not in one
    # the OpenAPI definitions describe the items with the models, as GeoJSON
    doc = c.get("/openapi.json").json()
    ok = doc["paths"]["/ogc/collections/{collection_id}/items"]["get"]["responses"]["200"]["content"]
    assert ok["application/geo+json"]["schema"] == {"$ref": "#/components/schemas/OgcFeaturePage"}
    page_schema = doc["components"]["schemas"]["OgcFeaturePage"]
    assert {"numberReturned", "features", "links"} <= set(page_schema["required"]) | set(page_schema["properties"])
    params = {p["name"] for p in doc["paths"]["/ogc/collections/{collection_id}/items"]["get"]["parameters"]}
    assert {"filter", "filter-lang", "filter-crs"} <= params
