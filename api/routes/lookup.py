"""GET /v1/lookup (one point) and POST /v1/lookup (a batch): which grid, workers and station.

The hot path touches no database: the index is the registry's current tuple, the answer is a
plain dict serialized once with orjson.

Station, minutes and covered come from the plan's own travel model (``geo.index``): along the
roads for a ``--network`` plan (its ``network_minutes.parquet``), else the straight-line chord the
plan measured with — at a household's point the answer is the households layer's.
"""
from __future__ import annotations

from typing import Literal, Optional

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from starlette.responses import Response

from gridplan.api.auth import reader
from gridplan.api.problems import ProblemError, error_item
from gridplan.geo.vocabulary import COORD_SYSTEMS

router = APIRouter(prefix="/v1", tags=["lookup"])
COORDS = COORD_SYSTEMS
Coords = Literal[COORD_SYSTEMS]  # type: ignore[valid-type]


class Answer(BaseModel):
    """One point's answer: its grid and the grid's codes, workers, nearest station and coverage."""

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

    plan: Optional[str] = Field(None, max_length=64, description="job id; default the newest succeeded job")
    coords: Coords = "wgs84"
    points: list[tuple[float, float]] = Field(..., description="[[lon, lat], ...], up to 100,000 points")


class BatchOut(BaseModel):
    """The answers to a batch, in input order (null: outside every grid, or not a valid lon/lat)."""

    plan: Optional[str] = None
    results: list[Optional[Answer]]


async def _index(request: Request, plan: str | None):
    reg = request.app.state.ctx.indexes
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


@router.get("/lookup", response_model=Answer, summary="Which grid, workers and station serve this point",
            responses={404: {"description": "the point lies outside every grid (or there is no plan)"}})
async def lookup_one(request: Request,
               lon: float = Query(..., ge=-180, le=180), lat: float = Query(..., ge=-90, le=90),
               plan: Optional[str] = Query(None, max_length=64), coords: Coords = Query("wgs84"),
               _role: str = Depends(reader)) -> Response:
    """Answer one point: its grid, the grid's workers, the nearest station and whether it is covered."""
    plan_id, idx = await _index(request, plan)
    ans = idx.lookup_one(lon, lat, coords)
    request.app.state.ctx.metrics.lookup_points += 1
    if ans is None:
        raise ProblemError(404, f"the point ({lon}, {lat}) lies outside every grid of plan {plan_id}",
                           kind="outside-grids")
    return Response(orjson.dumps(ans), media_type="application/json", headers={"X-Gridplan-Plan": plan_id})


_BATCH_SCHEMA = BatchIn.model_json_schema()


@router.post("/lookup", response_model=BatchOut, summary="Look up many points (results in input order)",
             responses={413: {"description": "too many points"}, 422: {"description": "invalid body"}},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": _BATCH_SCHEMA}}}})
async def lookup_batch(request: Request, _role: str = Depends(reader)) -> Response:
    """Answer many points at once, in input order (null outside every grid or for an invalid lon/lat).

    The body is parsed with orjson and numpy rather than pydantic (100,000 points in milliseconds);
    its schema is ``BatchIn``.
    """
    ctx = request.app.state.ctx
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ProblemError(422, "the body is not valid JSON", [error_item("body", None, str(e))], kind="invalid-request")
    errs = []
    if not isinstance(body, dict):
        raise ProblemError(422, "the body must be a JSON object", [error_item("body", None, "expected an object")],
                           kind="invalid-request")
    plan, coords, points = body.get("plan"), body.get("coords", "wgs84"), body.get("points")
    if plan is not None and (not isinstance(plan, str) or len(plan) > 64):
        errs.append(error_item("body", "plan", "plan must be a job id (a string of at most 64 characters)"))
    if coords not in COORDS:
        errs.append(error_item("body", "coords", f"coords must be one of {', '.join(COORDS)}"))
    if not isinstance(points, list):
        errs.append(error_item("body", "points", "points must be a list of [lon, lat] pairs"))
    if errs:
        raise ProblemError(422, "the request is invalid: see errors", errs, kind="invalid-request")
    n = len(points)
    cap = ctx.settings.max_batch_points
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
    plan_id, idx = await _index(request, plan)
    ok = (np.abs(xy[:, 0]) <= 180) & (np.abs(xy[:, 1]) <= 90)  # NaN and out-of-range -> null
    xy[~ok] = np.nan
    arr = await run_in_threadpool(idx.lookup_json, xy[:, 0], xy[:, 1], coords) if n > 1000 else \
        idx.lookup_json(xy[:, 0], xy[:, 1], coords)
    ctx.metrics.lookup_points += n
    return Response(b'{"plan":' + orjson.dumps(plan_id) + b',"results":' + arr + b"}", media_type="application/json")
