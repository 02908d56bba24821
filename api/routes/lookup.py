"""GET /v1/lookup (one point) and POST /v1/lookup (a batch): which grid, workers and station.

The hot path touches no database: the index is the registry's current tuple, the answer is a
plain dict serialized once with orjson.

Station, minutes and covered come from the plan's own travel model (``geo.index``): along the
roads for a ``--network`` plan (its ``network_minutes.parquet``), else the straight-line chord the
plan measured with — at a household's point the answer is the households layer's.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from starlette.responses import Response, StreamingResponse

from gridplan.api.auth import check_key, reader
from gridplan.api.columnar import (
    ARROW,
    CSV,
    KIND_MEDIA,
    PARQUET,
    READERS,
    BodyError,
    answer_kind,
    arrow_stream,
    request_kind,
    with_ids,
    write_answer,
)
from gridplan.api.problems import ProblemError, error_item
from gridplan.api.routes.plans import DATE_PATTERN, parse_date
from gridplan.api.versions import in_effect
from gridplan.geo.coords import to_wgs84
from gridplan.geo.lookup_arrow import lookup_table
from gridplan.geo.vocabulary import COORD_SYSTEMS

router = APIRouter(prefix="/v1", tags=["lookup"])
COORDS = COORD_SYSTEMS
Coords = Literal[COORD_SYSTEMS]  # type: ignore[valid-type]


class Answer(BaseModel):
    """One point's answer: its grid and the grid's codes, workers, nearest station and coverage.

    ``plan`` names the version that answered (also the ``X-Gridplan-Plan`` header).
    """

    plan: Optional[str] = Field(None, description="the id of the plan version that answered")
    grid_code: Optional[str] = None
    village_code: Optional[str] = None
    township_code: Optional[str] = None
    county_code: Optional[str] = None
    workers: Optional[int] = Field(None, description="the grid's number of workers")
    worker_ids: list[str] = Field(default_factory=list, description="roster worker ids assigned to the grid")
    micro_grid_code: Optional[str] = Field(None, description="the micro-grid holding the point (only for plans "
                                           "made with micro_target)")
    station_id: Optional[str] = Field(None, description="the nearest station by the plan's travel model "
                                      "(along roads for a network plan); null if none is reachable")
    station_name: Optional[str] = None
    minutes: Optional[float] = Field(None, description="travel minutes to it, as the plan's households layer "
                                     "reports them (3 decimals)")
    covered: bool = Field(False, description="minutes <= the plan's service-area minutes (+1e-6, the plan's rule)")


class BatchIn(BaseModel):
    """A batch of points to look up, in one coordinate system."""

    plan: Optional[str] = Field(None, max_length=64, description="plan version (job) id; default the live plan: "
                                "the published version in effect today, else the newest succeeded job")
    as_of: Optional[str] = Field(None, pattern=DATE_PATTERN, description="ISO date: the published version in "
                                 "effect then (not with plan)")
    coords: Coords = "wgs84"
    points: list[tuple[float, float]] = Field(..., description="[[lon, lat], ...], up to 100,000 points")


class BatchOut(BaseModel):
    """The answers to a batch, in input order (null: outside every grid, or not a valid lon/lat)."""

    plan: Optional[str] = None
    results: list[Optional[Answer]]


async def _index(request: Request, plan: str | None, as_of: str | None = None, where: str = "query"):
    reg = request.app.state.ctx.indexes
    if as_of is not None:
        if plan is not None:
            raise ProblemError(422, "give plan or as_of, not both",
                               [error_item(where, "as_of", "as_of picks a version: leave plan out")],
                               kind="invalid-request")
        day = parse_date(as_of, f"{where}.as_of")
        plan = await run_in_threadpool(in_effect, request.app.state.ctx.store.engine, day)
        if plan is None:
            raise ProblemError(404, f"no published plan was in effect on {as_of}", kind="no-plan")
    got = reg.peek(plan)
    if got is None:  # not in memory: look the plan up and build its index off the event loop
        try:
            got = await run_in_threadpool(reg.get, plan)
        except LookupError as e:
            status, detail = e.args
            raise ProblemError(status, detail, kind="no-plan")
    if got is None:
        raise ProblemError(404, "no succeeded plan yet: submit a job and wait for it to succeed", kind="no-plan")
    return got


def _q(name: str, description: str, schema: dict, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_ONE_PARAMS = [_q("lon", "longitude", {"type": "number", "minimum": -180, "maximum": 180}, True),
               _q("lat", "latitude", {"type": "number", "minimum": -90, "maximum": 90}, True),
               _q("plan", "plan version (job) id; default the live plan (the published version in effect "
                  "today, else the newest succeeded job)", {"type": "string", "maxLength": 64}),
               _q("coords", "the system lon/lat are stated in", {"type": "string", "enum": list(COORDS),
                                                                  "default": "wgs84"}),
               _q("as_of", "ISO date: the published version in effect then (not with plan)",
                  {"type": "string", "pattern": DATE_PATTERN})]


def _number(q, name: str, limit: float, errs: list) -> float:
    text = q.get(name)
    if text is None:
        errs.append(error_item("query", name, "Field required"))
        return math.nan
    try:
        v = float(text)
    except ValueError:
        errs.append(error_item("query", name, "Input should be a valid number, unable to parse string as a number"))
        return math.nan
    if not -limit <= v <= limit:   # NaN fails too
        errs.append(error_item("query", name, f"Input should be a number from {-limit:g} to {limit:g}"))
    return v


def one_params(q) -> tuple[float, float, str | None, str]:
    """Read GET /v1/lookup's query (lon, lat, plan, coords) as its OpenAPI parameters state; 422 problems otherwise.

    Parsed by hand rather than by FastAPI's parameter machinery, which cost more than the lookup itself.
    """
    errs: list = []
    lon, lat = _number(q, "lon", 180.0, errs), _number(q, "lat", 90.0, errs)
    plan, coords = q.get("plan"), q.get("coords", "wgs84")
    if plan is not None and len(plan) > 64:
        errs.append(error_item("query", "plan", "String should have at most 64 characters"))
    if coords not in COORDS:
        errs.append(error_item("query", "coords", f"Input should be one of {', '.join(COORDS)}"))
    if errs:
        raise ProblemError(422, "the request is invalid: see errors", errs, kind="invalid-request")
    return lon, lat, plan, coords


@router.get("/lookup", response_model=Answer, summary="Which grid, workers and station serve this point",
            responses={404: {"description": "the point lies outside every grid (or there is no plan)"},
                       401: {"description": "no or unknown key"}, 422: {"description": "invalid query"}},
            openapi_extra={"parameters": _ONE_PARAMS, "security": [{"APIKeyHeader": []}]})
async def lookup_one(request: Request) -> Response:
    """Answer one point: its grid, the grid's workers, the nearest station and whether it is covered.

    Any key (``reader``) may ask: the key is checked first, as the ``reader`` dependency checks it.
    """
    ctx = request.app.state.ctx
    check_key(ctx.keys, request.headers.get("x-api-key"), "reader")
    lon, lat, plan, coords = one_params(request.query_params)
    got = ctx.indexes.peek(plan)
    as_of = request.query_params.get("as_of")
    if as_of is not None:
        plan_id, idx = await _index(request, plan, as_of)
    else:
        plan_id, idx = got if got is not None else await _index(request, plan)
    ans = idx.lookup_one(lon, lat, coords)
    ctx.metrics.lookup_points += 1
    if ans is None:
        raise ProblemError(404, f"the point ({lon}, {lat}) lies outside every grid of plan {plan_id}",
                           kind="outside-grids")
    return Response(orjson.dumps({"plan": plan_id, **ans}), media_type="application/json",
                    headers={"X-Gridplan-Plan": plan_id})


_BATCH_SCHEMA = BatchIn.model_json_schema()
_COLUMNAR_BODY = {"schema": {"type": "string", "format": "binary"},
                  "description": "columns lon, lat (float64) and optional id; plan and coords as query parameters"}


def _json_points(raw: bytes, cap: int):
    """Parse a JSON batch body: (plan, coords, n x 2 array); 422/413 problems name what is wrong."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ProblemError(422, "the body is not valid JSON", [error_item("body", None, str(e))], kind="invalid-request")
    errs = []
    if not isinstance(body, dict):
        raise ProblemError(422, "the body must be a JSON object", [error_item("body", None, "expected an object")],
                           kind="invalid-request")
    plan, coords, points = body.get("plan"), body.get("coords", "wgs84"), body.get("points")
    as_of = body.get("as_of")
    if plan is not None and (not isinstance(plan, str) or len(plan) > 64):
        errs.append(error_item("body", "plan", "plan must be a job id (a string of at most 64 characters)"))
    if as_of is not None and not isinstance(as_of, str):
        errs.append(error_item("body", "as_of", "as_of must be an ISO date (YYYY-MM-DD)"))
    if coords not in COORDS:
        errs.append(error_item("body", "coords", f"coords must be one of {', '.join(COORDS)}"))
    if not isinstance(points, list):
        errs.append(error_item("body", "points", "points must be a list of [lon, lat] pairs"))
    if errs:
        raise ProblemError(422, "the request is invalid: see errors", errs, kind="invalid-request")
    n = len(points)
    if n > cap:
        raise ProblemError(413, f"{n} points is more than the limit of {cap} per request", kind="batch-too-large")
    try:
        xy = np.array(points, dtype=float) if n else np.zeros((0, 2))
        if xy.shape != (n, 2):
            raise ValueError("shape")
    except (ValueError, TypeError):
        bad = next((k for k, p in enumerate(points) if not (isinstance(p, list) and len(p) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in p))), None)
        raise ProblemError(422, "points must be [lon, lat] pairs of numbers",
                           [error_item("body", f"points.{bad}", "expected [lon, lat], two numbers")],
                           kind="invalid-request")
    return plan, coords, xy, as_of


def _columnar_points(request: Request, kind: str, raw: bytes, cap: int):
    """Read a columnar body and the plan/coords query parameters: (plan, coords, n x 2 array, ids)."""
    q = request.query_params
    plan, coords = q.get("plan"), q.get("coords", "wgs84")
    if plan is not None and len(plan) > 64:
        raise ProblemError(422, "the request is invalid: see errors",
                           [error_item("query", "plan", "plan must be a job id of at most 64 characters")],
                           kind="invalid-request")
    if coords not in COORDS:
        raise ProblemError(422, "the request is invalid: see errors",
                           [error_item("query", "coords", f"coords must be one of {', '.join(COORDS)}")],
                           kind="invalid-request")
    try:
        lon, lat, ids = READERS[kind](raw, cap)
    except BodyError as e:
        raise ProblemError(e.status, e.detail, [error_item("body", e.field, e.detail)],
                           kind="batch-too-large" if e.status == 413 else "invalid-request")
    return plan, coords, np.column_stack([lon, lat]), ids


@router.post("/lookup", response_model=BatchOut, summary="Look up many points (results in input order)",
             responses={200: {"content": {ARROW: {}, PARQUET: {}, CSV: {}}},
                        406: {"description": "no acceptable answer type"},
                        413: {"description": "too many points"}, 422: {"description": "invalid body"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": _BATCH_SCHEMA}, ARROW: _COLUMNAR_BODY, PARQUET: _COLUMNAR_BODY,
                 CSV: _COLUMNAR_BODY}}})
async def lookup_batch(request: Request, _role: str = Depends(reader)) -> Response:
    """Answer many points at once, in input order (null outside every grid or for an invalid lon/lat).

    A JSON body (``BatchIn``) is parsed with orjson and numpy rather than pydantic (100,000 points
    in milliseconds). An Arrow IPC stream, (Geo)Parquet or CSV body (by ``Content-Type``; columns
    ``lon``, ``lat``, optional ``id``; ``plan`` and ``coords`` as query parameters) may hold up to
    ``lookup_max_points_columnar`` points. The answer's type follows ``Accept`` — by default the
    request's own — and a columnar answer has one row per point with the answer fields as columns
    (``geo.lookup_arrow``), all null outside every grid.
    """
    ctx = request.app.state.ctx
    kind = request_kind(request.headers.get("content-type")) or "json"
    out = answer_kind(request.headers.get("accept"), kind)
    if out is None:
        raise ProblemError(406, "no acceptable answer type: this answers application/json, "
                           f"{ARROW}, {PARQUET} or text/csv", kind="not-acceptable")
    raw = await request.body()
    ids = None
    if kind == "json":
        plan, coords, xy, as_of = _json_points(raw, ctx.settings.max_batch_points)
    else:
        plan, coords, xy, ids = await run_in_threadpool(_columnar_points, request, kind, raw,
                                                        ctx.settings.lookup_max_points_columnar)
        as_of = request.query_params.get("as_of")
    n = len(xy)
    if out == "json" and n > ctx.settings.max_batch_points:
        raise ProblemError(413, f"{n} points is more than the limit of {ctx.settings.max_batch_points} per JSON "
                           "answer: ask for a columnar answer (Accept)", kind="batch-too-large")
    plan_id, idx = await _index(request, plan, as_of, where="body" if kind == "json" else "query")
    ok = (np.abs(xy[:, 0]) <= 180) & (np.abs(xy[:, 1]) <= 90)  # NaN and out-of-range -> null
    xy[~ok] = np.nan
    ctx.metrics.lookup_points += n
    if out == "arrow":   # streamed in chunks: the first rows leave while the rest are looked up
        return StreamingResponse(_arrow_chunks(idx, xy, coords, ids), media_type=ARROW,
                                 headers={"X-Gridplan-Plan": plan_id})
    if out != "json":
        body = await run_in_threadpool(_columnar_answer, idx, xy, coords, ids, out)
        return Response(body, media_type=KIND_MEDIA[out], headers={"X-Gridplan-Plan": plan_id})
    arr = await run_in_threadpool(idx.lookup_json, xy[:, 0], xy[:, 1], coords) if n > 1000 else \
        idx.lookup_json(xy[:, 0], xy[:, 1], coords)
    return Response(b'{"plan":' + orjson.dumps(plan_id) + b',"results":' + arr + b"}", media_type="application/json")


CHUNK = 1 << 18   # points per streamed Arrow record batch


def _arrow_chunks(idx, xy, coords: str, ids):
    """Yield the Arrow answer as IPC stream pieces, ``CHUNK`` points a record batch.

    A sync generator: StreamingResponse computes each piece in the thread pool.
    """
    def tables():
        for i in range(0, max(len(xy), 1), CHUNK):
            t = lookup_table(idx, xy[i:i + CHUNK, 0], xy[i:i + CHUNK, 1], coords)
            yield with_ids(t, None if ids is None else ids.slice(i, CHUNK))
    schema = with_ids(lookup_table(idx, xy[:0, 0], xy[:0, 1], coords), None if ids is None else ids.slice(0, 0)).schema
    return arrow_stream(tables(), schema)


def _columnar_answer(idx, xy, coords: str, ids, out: str) -> bytes:
    """Look the points up and serialize the answer table as ``out`` (GeoParquet points in WGS 84)."""
    table = with_ids(lookup_table(idx, xy[:, 0], xy[:, 1], coords), ids)
    lon, lat = (to_wgs84(xy[:, 0], xy[:, 1], coords) if out == "parquet" else (None, None))
    return write_answer(table, out, lon, lat)
