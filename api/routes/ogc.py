"""OGC API – Features (Part 1 Core + GeoJSON, Part 2 CRS) under ``/ogc``: QGIS and GDAL as clients.

``/ogc`` (landing page), ``/ogc/conformance``, ``/ogc/collections``, ``/ogc/collections/{id}``,
``/ogc/collections/{id}/items`` (``bbox``, ``bbox-crs``, ``crs``, ``limit``, ``offset``,
``datetime`` and ``attribute=value`` filters; pages linked by ``next``) and
``/ogc/collections/{id}/items/{featureId}``. Collections are plan layers (:mod:`api.ogcplans`).
Items are streamed from the plan's GeoPackage a batch at a time (:mod:`geo.featurestream`), in
true WGS 84 / CGCS2000 whatever the plan's output coordinates. A reader key is needed, except
for the live plan's collections when the setting ``public_published`` is on; the landing page and
the conformance declaration are public.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gridplan.api import ogcplans as plans
from gridplan.api.auth import api_key_header, check_key
from gridplan.api.ogcmodels import OgcFeature, OgcFeaturePage, feature_document
from gridplan.api.ogcopenapi import openapi30
from gridplan.api.problems import ProblemError, error_item
from gridplan.geo.cql2 import GEOMETRY, FilterError, parse_filter
from gridplan.geo.featurestream import Query as FeatureQuery, feature_jsons, read_feature, read_pages
from gridplan.geo.vocabulary import WGS84_ALIKE

router = APIRouter(prefix="/ogc", tags=["OGC API – Features"])

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
CRS_LIST = [CRS84, EPSG4326, EPSG4490]
_CRS_ALIASES = {"crs84": CRS84, "ogc:crs84": CRS84, "epsg:4326": EPSG4326, "epsg:4490": EPSG4490,
                "[ogc:crs84]": CRS84, "[epsg:4326]": EPSG4326, "[epsg:4490]": EPSG4490}
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
]
GEOJSON = "application/geo+json"
OAS30 = "application/vnd.oai.openapi+json;version=3.0"
QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
_JSON_TYPES = {"int": "integer", "uint": "integer", "float": "number", "bool": "boolean"}
MAX_LIMIT = 10_000
_PARAMS = {"bbox", "bbox-crs", "crs", "limit", "offset", "datetime", "f", "filter", "filter-lang", "filter-crs"}


def _crs(text: str | None, name: str) -> str:
    """Return the CRS URI named by ``text`` (CRS84 when None); a 400 problem for one not offered."""
    if text is None or not text.strip():
        return CRS84
    t = text.strip().replace("https://", "http://")
    uri = t if t in CRS_LIST else _CRS_ALIASES.get(t.lower())
    if uri is None:
        raise _bad(name, f"{text!r} is not offered: use one of {', '.join(CRS_LIST)}")
    return uri


def _bad(name: str, msg: str) -> ProblemError:
    return ProblemError(400, f"the parameter {name} is invalid: {msg}", [error_item("query", name, msg)],
                        kind="invalid-parameter")


def _allow(request: Request, key: str | None, c: plans.Collection | None = None) -> None:
    """Let the request through: a reader key, or none for the live plan when ``public_published`` is on."""
    ctx = request.app.state.ctx
    if ctx.settings.public_published and (c is None or c.live) and not key:
        return
    check_key(ctx.keys, key, "reader")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


def _link(href: str, rel: str, type_: str, title: str | None = None) -> dict:
    d = {"href": href, "rel": rel, "type": type_}
    if title:
        d["title"] = title
    return d


@router.get("", summary="OGC API – Features landing page")
@router.get("/", include_in_schema=False)
def landing(request: Request) -> JSONResponse:
    """Return the landing page: links to the API definition, the conformance declaration and the collections."""
    b = _base(request)
    root = str(request.base_url).rstrip("/")
    return JSONResponse({
        "title": "gridplan plans", "description": "Grid-governance plans (grids, units, stations, service areas, "
                                                  "households, workers) as OGC API – Features collections.",
        "links": [_link(b, "self", "application/json", "this document"),
                  _link(b + "/api", "service-desc", OAS30, "this API's definition (OpenAPI 3.0)"),
                  _link(root + "/openapi.json", "service-desc", "application/vnd.oai.openapi+json;version=3.1",
                        "the whole service's definition (OpenAPI 3.1)"),
                  _link(root + "/docs", "service-doc", "text/html", "the API documentation"),
                  _link(b + "/conformance", "conformance", "application/json", "conformance classes"),
                  _link(b + "/collections", "data", "application/json", "the collections")]})


@router.get("/api", summary="The OGC API – Features definition (OpenAPI 3.0)",
            responses={200: {"content": {OAS30: {}}}})
def api_definition(request: Request) -> Response:
    """Return the ``/ogc`` paths as an OpenAPI 3.0 document (the rest of the service is in ``/openapi.json``)."""
    doc = getattr(request.app.state, "ogc_openapi30", None)
    if doc is None:
        doc = request.app.state.ogc_openapi30 = json.dumps(openapi30(request.app.openapi()), ensure_ascii=False)
    return Response(doc, media_type=OAS30)


@router.get("/conformance", summary="The conformance classes this API implements")
def conformance() -> JSONResponse:
    """Return the conformance declaration (Part 1 Core, GeoJSON and OpenAPI 3.0, Part 2 CRS)."""
    return JSONResponse({"conformsTo": CONFORMANCE})


def _collection_doc(request: Request, c: plans.Collection) -> dict:
    extent, _count, _fields = plans.layer_meta(c)
    b = f"{_base(request)}/collections/{c.id}"
    title = plans.TITLES.get(c.layer, c.layer) + (" (live plan)" if c.live else f" (plan {c.plan_id})")
    doc = {"id": c.id, "title": title, "description": f"layer {c.layer} of plan {c.plan_id}", "itemType": "feature",
           "crs": CRS_LIST,
           "links": [_link(b, "self", "application/json"),
                     _link(b + "/items", "items", GEOJSON, "the features"),
                     _link(b + "/queryables", QUERYABLES, "application/schema+json",
                           "the properties items can be filtered on (CQL2 filter, ?name=value)")],
           "extent": {"temporal": {"interval": [[plans.iso(c.finished_at), None]],
                                   "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}}}
    if extent is not None:
        doc["extent"]["spatial"] = {"bbox": [list(extent)], "crs": CRS84}
    if c.coords in WGS84_ALIKE:   # stored as lon/lat that need no conversion
        doc["storageCrs"] = CRS84
    return doc


@router.get("/collections", summary="The collections: the live plan's layers, then each plan's")
def list_collections(request: Request, key: str | None = Depends(api_key_header)) -> JSONResponse:
    """List the collections: the live plan's layers (``grids``…), then each listed plan's (``{plan}.{layer}``)."""
    public = request.app.state.ctx.settings.public_published and not key
    _allow(request, key, None)
    store = request.app.state.ctx.store
    b = _base(request)
    cols = []
    for c in plans.collections(store, public_only=public):
        try:
            cols.append(_collection_doc(request, c))
        except ProblemError:   # a plan purged while we listed
            continue
    return JSONResponse({"links": [_link(b + "/collections", "self", "application/json")], "collections": cols,
                         "crs": CRS_LIST})


@router.get("/collections/{collection_id}/queryables", summary="The properties items can be filtered on",
            responses={200: {"content": {"application/schema+json": {}}}})
def queryables(request: Request, collection_id: str, key: str | None = Depends(api_key_header)) -> Response:
    """Return the collection's queryables as a JSON Schema: its attributes with their types, and ``geometry``.

    Each attribute may filter items as ``?name=value`` (equality) and in a CQL2 ``filter``;
    ``geometry`` in ``S_INTERSECTS`` / ``BBOX`` (lon/lat, CRS84 unless ``filter-crs`` says otherwise).
    """
    c = _resolve(request, collection_id, key)
    _extent, _count, fields = plans.layer_meta(c)
    props = {name: {"title": name, "type": next((t for k, t in _JSON_TYPES.items() if dtype.startswith(k)), "string")}
             for name, dtype in fields.items()}
    props[GEOMETRY] = {"title": GEOMETRY, "format": "geometry-any"}
    doc = {"$schema": "https://json-schema.org/draft/2019-09/schema",
           "$id": f"{_base(request)}/collections/{c.id}/queryables", "type": "object", "title": c.id,
           "properties": props, "additionalProperties": False}
    return Response(json.dumps(doc, ensure_ascii=False), media_type="application/schema+json")


def _resolve(request: Request, cid: str, key: str | None) -> plans.Collection:
    store = request.app.state.ctx.store
    if not key and not request.app.state.ctx.settings.public_published:
        check_key(request.app.state.ctx.keys, key, "reader")   # 401 before revealing what exists
    c = plans.resolve(store, cid)
    _allow(request, key, c)
    return c


@router.get("/collections/{collection_id}", summary="One collection")
def get_collection(request: Request, collection_id: str, key: str | None = Depends(api_key_header)) -> JSONResponse:
    """One collection's description: extent, CRSs offered and its items link."""
    return JSONResponse(_collection_doc(request, _resolve(request, collection_id, key)))


def _bbox(text: str | None, crs: str) -> tuple[float, float, float, float] | None:
    """Return the ``bbox`` parameter as a lon/lat WGS 84 box (4 or 6 numbers, axis order of ``bbox-crs``)."""
    if text is None or not text.strip():
        return None
    try:
        v = [float(p) for p in text.split(",")]
    except ValueError:
        raise _bad("bbox", "bbox must be 4 (or 6) comma-separated numbers") from None
    if len(v) not in (4, 6):
        raise _bad("bbox", "bbox must be 4 (or 6) comma-separated numbers")
    if len(v) == 6:
        v = [v[0], v[1], v[3], v[4]]
    if not all(math.isfinite(x) for x in v):
        raise _bad("bbox", "bbox numbers must be finite")
    if crs != CRS84:   # EPSG:4326 and EPSG:4490 list latitude first
        v = [v[1], v[0], v[3], v[2]]
    v = [min(max(v[0], -180.0), 180.0), min(max(v[1], -90.0), 90.0),   # nothing lies outside the globe
         min(max(v[2], -180.0), 180.0), min(max(v[3], -90.0), 90.0)]
    if v[1] > v[3]:
        raise _bad("bbox", "the box's lower latitude is above its upper one")
    if v[0] > v[2]:
        raise _bad("bbox", "boxes crossing the antimeridian are not supported")
    return v[0], v[1], v[2], v[3]


def _int(text: str | None, name: str, default: int, low: int) -> int:
    if text is None or text == "":
        return default
    try:
        n = int(text)
    except ValueError:
        raise _bad(name, f"{name} must be a whole number") from None
    if n < low or n > 10**9:
        raise _bad(name, f"{name} must be between {low} and 1000000000")
    return n


def _equals(request: Request, fields: dict) -> dict:
    """Return the ``attribute=value`` filters of the query (each a field of the layer); 400 for anything else."""
    out = {}
    for name in request.query_params.keys():
        if name in _PARAMS:
            continue
        if name not in fields:
            raise _bad(name, f"unknown parameter {name!r}: not a standard parameter nor an attribute of the layer")
        values = request.query_params.getlist(name)
        if len(values) != 1:
            raise _bad(name, "give an attribute filter once")
        out[name] = values[0]
    return out


def _filter(text: str | None, lang: str | None, crs: str | None, fields: dict):
    """Return the checked CQL2 filter of the query (None without one); a 400 problem naming what is wrong."""
    if text is None:
        if lang is not None or crs is not None:
            raise _bad("filter-lang" if lang is not None else "filter-crs", "given without a filter")
        return None
    lat_lon = _crs(crs, "filter-crs") != CRS84
    try:
        return parse_filter(text, lang, fields, lat_lon)
    except FilterError as e:
        raise _bad("filter-lang" if str(e).startswith("filter-lang") else "filter", str(e)) from None


def _page(request: Request, c: plans.Collection, q: FeatureQuery, lat_lon: bool, in_effect: bool, total):
    """Yield the items page as GeoJSON bytes: features a batch at a time, then counts and links."""
    yield b'{"type": "FeatureCollection", "features": ['
    n, more = 0, False
    frames = read_pages(c.gpkg, c.layer, replace(q, limit=q.limit + 1), c.coords) if in_effect else ()
    for gdf in frames:
        if n + len(gdf) > q.limit:
            gdf, more = gdf.iloc[:q.limit - n], True
        parts = feature_jsons(gdf, c.layer, lat_lon) if len(gdf) else []
        if parts:
            yield (b", " if n else b"") + b", ".join(parts)
        n += len(parts)
    links = [_link(str(request.url), "self", GEOJSON, "this page"),
             _link(f"{_base(request)}/collections/{c.id}", "collection", "application/json")]
    if more:
        links.append(_link(str(request.url.include_query_params(offset=q.offset + n, limit=q.limit)), "next",
                           GEOJSON, "the next page"))
    if q.offset:
        links.append(_link(str(request.url.include_query_params(offset=max(0, q.offset - q.limit), limit=q.limit)),
                           "prev", GEOJSON, "the previous page"))
    tail = {"numberReturned": n, "timeStamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "links": links}
    if total is not None:
        tail["numberMatched"] = total
    yield ("], " + json.dumps(tail, ensure_ascii=False)[1:]).encode("utf-8")


class GeoJSONResponse(JSONResponse):
    """GeoJSON (the media type under which the OpenAPI definitions put the feature models)."""

    media_type = GEOJSON


@router.get("/collections/{collection_id}/items", summary="The features of a collection (GeoJSON, paged)",
            response_class=GeoJSONResponse, responses={200: {"model": OgcFeaturePage}})
def items(request: Request, collection_id: str,
          bbox: str | None = Query(None, max_length=300, description="minx,miny,maxx,maxy in bbox-crs "
                                   "(CRS84 lon/lat by default): features intersecting the box"),
          bbox_crs: str | None = Query(None, alias="bbox-crs", max_length=200, description="the CRS of bbox"),
          crs: str | None = Query(None, max_length=200, description="the CRS of the answer's geometries"),
          limit: str | None = Query(None, max_length=20, description=f"features per page: default 10, maximum "
                                    f"{MAX_LIMIT} (larger values are taken as the maximum)"),
          offset: str | None = Query(None, max_length=20, description="skip this many features first"),
          datetime_: str | None = Query(None, alias="datetime", max_length=100,
                                        description="an RFC 3339 instant or interval: the plan in effect then"),
          f: str | None = Query(None, max_length=20, description="format: json (GeoJSON, the only one)"),
          filter_: str | None = Query(None, alias="filter", description="a CQL2 filter on the queryables, e.g. "
                                      "households > 250 AND village_code LIKE '330110%'"),
          filter_lang: str | None = Query(None, alias="filter-lang", max_length=20,
                                          description="cql2-text (the default) or cql2-json"),
          filter_crs: str | None = Query(None, alias="filter-crs", max_length=200,
                                         description="the CRS of the filter's geometry literals (CRS84 by default)"),
          key: str | None = Depends(api_key_header)) -> Response:
    """Stream one page of a collection's features; ``next`` links the following page.

    ``filter`` keeps the features a CQL2 expression holds true for (comparisons, AND/OR/NOT, IN,
    BETWEEN, LIKE, IS NULL, S_INTERSECTS with a geometry or BBOX literal; see ``/queryables``).
    Other query parameters named like an attribute of the layer keep the features whose attribute
    equals the value (``?village_code=330110001001``).
    """
    c = _resolve(request, collection_id, key)
    out_crs = _crs(crs, "crs")
    box = _bbox(bbox, _crs(bbox_crs, "bbox-crs"))
    lim = min(_int(limit, "limit", 10, 1), MAX_LIMIT)
    off = _int(offset, "offset", 0, 0)
    try:
        interval = plans.parse_datetime(datetime_)
    except ValueError as e:
        raise _bad("datetime", str(e)) from None
    if f not in (None, "", "json", "geojson"):
        raise _bad("f", "the only format offered is json (GeoJSON)")
    _extent, count, fields = plans.layer_meta(c)
    where = _filter(filter_, filter_lang, filter_crs, fields)
    q = FeatureQuery(box, _equals(request, fields), off, lim, where)
    in_effect = plans.plan_in_interval(request.app.state.ctx.store, c.plan_id, interval)
    total = (count if in_effect else 0) if not q.filtered else None
    body = _page(request, c, q, out_crs != CRS84, in_effect, total)
    return StreamingResponse(body, media_type=GEOJSON, headers={"Content-Crs": f"<{out_crs}>"})


@router.get("/collections/{collection_id}/items/{feature_id}", summary="One feature (grids: by grid_code)",
            response_class=GeoJSONResponse, responses={200: {"model": OgcFeature}})
def item(request: Request, collection_id: str, feature_id: str,
         crs: str | None = Query(None, max_length=200, description="the CRS of the answer's geometry"),
         key: str | None = Depends(api_key_header)) -> Response:
    """One feature: grids by ``grid_code``, stations by ``station_id``, workers by ``worker_id``, others by FID."""
    c = _resolve(request, collection_id, key)
    out_crs = _crs(crs, "crs")
    gdf = read_feature(c.gpkg, c.layer, feature_id, c.coords) if len(feature_id) <= 200 else ()
    if len(gdf) == 0:
        raise ProblemError(404, f"collection {plans.shown(collection_id)} has no feature {plans.shown(feature_id)}",
                           kind="not-found")
    doc = json.loads(feature_jsons(gdf, c.layer, out_crs != CRS84)[0])
    b = f"{_base(request)}/collections/{c.id}"
    doc["links"] = [_link(str(request.url), "self", GEOJSON), _link(b, "collection", "application/json")]
    return Response(feature_document(doc), media_type=GEOJSON, headers={"Content-Crs": f"<{out_crs}>"})
