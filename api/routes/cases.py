"""POST /v1/cases/route: cases into grids (事事入格), with the workload per grid and worker.

Two ways in, one answer per case (the same lookup as ``/v1/lookup``, ``geo.index.GridIndex``):

- JSON ``{"plan"?, "coords"?, "period_from"?, "period_to"?, "cases": [{"id", "time", "kind", "lon",
  "lat"}, ...]}`` (up to ``max_batch_points`` cases) → ``{"plan", "results": [...], "workload": [...],
  "problems": [...]}``, results in input order;
- multipart with a file ``cases`` (CSV or any table ``gridplan route`` reads) and the same fields
  as form fields → the routed cases as CSV (``want=workload``: the JSON workload instead). The file
  is spooled to disk as it arrives and read under the service's read limits.

Which plan answers (``resolver_for``): the plan named, for every case; else the published version in effect
on the case's day, and the live plan for a case without a time or from before the first publication.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from gridplan.api.auth import reader
from gridplan.api.problems import ProblemError, error_item, from_problems
from gridplan.api.routes.lookup import COORDS, _index
from gridplan.geo.problems import DataError
from gridplan.optimize import casework
from gridplan.optimize.cases import Resolver, fixed_plan, read_cases, route_cases

router = APIRouter(prefix="/v1", tags=["cases"])
RESULT_FIELDS = ["id", "time", "kind", "plan", "grid_code", "village_code", "township_code", "county_code",
                 "worker_ids", "station_id", "minutes", "covered"]


def resolver_for(request: Request, plan_id: str, index, named: bool = False) -> Resolver:
    """Return the ``plan_for_time`` of a request: ``t -> (plan id, GridIndex)``.

    A plan named in the request routes every case. Otherwise each case goes to the published
    version in effect on its day (``api.versions.in_effect``), and a case with no time or from
    before the first publication to the live plan.
    """
    if named:
        return fixed_plan(plan_id, index)
    from gridplan.api.versions import in_effect
    engine = request.app.state.ctx.store.engine
    reg = request.app.state.ctx.indexes

    def plan_for_time(t):
        vid = in_effect(engine, t.date()) if t is not None else None
        if vid is None or vid == plan_id:
            return plan_id, index
        got = reg.get(vid)
        return (plan_id, index) if got is None else got
    return plan_for_time


def _options(get) -> tuple[str | None, str, tuple]:
    """Read plan, coords and period from a body/form getter; 422 naming each bad field."""
    plan, coords = get("plan"), get("coords") or "wgs84"
    period = (get("period_from") or None, get("period_to") or None)
    errs = []
    if plan is not None and (not isinstance(plan, str) or len(plan) > 64):
        errs.append(error_item("body", "plan", "plan must be a job id (a string of at most 64 characters)"))
    if coords not in COORDS:
        errs.append(error_item("body", "coords", f"coords must be one of {', '.join(COORDS)}"))
    for name, v in zip(("period_from", "period_to"), period):
        try:
            if v is not None:
                pd.Timestamp(v)
        except (ValueError, TypeError):
            errs.append(error_item("body", name, f"{name} must be an ISO 8601 date (e.g. 2026-03-01)"))
    if errs:
        raise ProblemError(422, "the request is invalid: see errors", errs, kind="invalid-request")
    return plan, coords, period


def _route(request: Request, frame_or_path, name: str, coords: str, plan_id: str, idx, period, limits=None,
           named: bool = False):
    """Read, route and count (in a worker thread); DataError becomes a 422 naming the rows."""
    try:
        cases = read_cases(frame_or_path, name=name, limits=limits)
    except DataError as e:
        raise ProblemError(422, f"the cases cannot be routed: {len(e.problems)} problem(s), see errors",
                           from_problems(e.problems), kind="invalid-data")
    routed = route_cases(cases.frame, resolver_for(request, plan_id, idx, named), coords)
    store = request.app.state.ctx.store
    grids = store.read_layer(plan_id, "grids")
    workers = store.read_layer(plan_id, "workers") if store.has_layer(plan_id, "workers") else None
    return cases, routed, casework.workload_table(routed, grids, workers, period)


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _json_results(routed: pd.DataFrame) -> list[dict]:
    out = routed.copy()
    out["time"] = out["time_text"] if "time_text" in out else out["time"].astype(str)
    out["worker_ids"] = [[] if w is None or w != w else str(w).split(";") for w in out["worker_ids"].astype(object)]
    fields = RESULT_FIELDS if "micro_grid_code" not in out else (
        RESULT_FIELDS[:5] + ["micro_grid_code"] + RESULT_FIELDS[5:])   # plans with micro-grids
    return _records(out[fields])


@router.post("/cases/route", summary="Route cases into grids; workload per grid and worker",
             responses={413: {"description": "too many cases"}, 422: {"description": "invalid body or data"}})
async def route_cases_endpoint(request: Request, _role: str = Depends(reader)) -> Response:
    """Route each case to its grid, unit, workers and station; count the workload over the period.

    JSON body or a multipart CSV upload (see the module docstring).
    """
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _upload(request)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as e:
        raise ProblemError(422, "the body is not valid JSON", [error_item("body", None, str(e))], kind="invalid-request")
    if not isinstance(body, dict):
        raise ProblemError(422, "the body must be a JSON object", [error_item("body", None, "expected an object")],
                           kind="invalid-request")
    plan, coords, period = _options(body.get)
    cases = body.get("cases")
    if not isinstance(cases, list):
        raise ProblemError(422, "cases must be a list of objects", [error_item("body", "cases", "expected a list")],
                           kind="invalid-request")
    cap = request.app.state.ctx.settings.max_batch_points
    if len(cases) > cap:
        raise ProblemError(413, f"{len(cases)} cases is more than the limit of {cap} per request (upload a CSV "
                           "file as multipart instead)", kind="batch-too-large")
    bad = next((k for k, c in enumerate(cases) if not isinstance(c, dict)), None)
    if bad is not None:
        raise ProblemError(422, "each case must be an object", [error_item("body", f"cases.{bad}", "expected "
                                                                           "{id, time, kind, lon, lat}")],
                           kind="invalid-request")
    if not cases:
        plan_id, _ = await _index(request, plan)
        return Response(orjson.dumps({"plan": plan_id, "results": [], "workload": [], "problems": []}),
                        media_type="application/json", headers={"X-Gridplan-Plan": plan_id})
    frame = pd.DataFrame.from_records(cases)
    for c in ("lon", "lat"):
        if c in frame:
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
    plan_id, idx = await _index(request, plan)
    got, routed, table = await run_in_threadpool(_route, request, frame, "cases", coords, plan_id, idx, period,
                                                 None, plan is not None)
    request.app.state.ctx.metrics.lookup_points += len(routed)
    body = {"plan": plan_id, "results": _json_results(routed), "workload": _records(table),
            "problems": from_problems(got.problems)}
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json",
                    headers={"X-Gridplan-Plan": plan_id})


async def _upload(request: Request) -> Response:
    """Route the multipart ``cases`` file: spooled to disk, read under the read limits, answered as CSV."""
    from gridplan.geo.formats import ReadLimits
    form = await request.form()
    up = form.get("cases")
    if up is None or isinstance(up, str):
        raise ProblemError(422, "no cases file: send it as the multipart file 'cases'",
                           [error_item("cases", None, "missing file")], kind="invalid-request")
    plan, coords, period = _options(lambda k: form.get(k) if isinstance(form.get(k), str) else None)
    want = form.get("want") or "cases"
    plan_id, idx = await _index(request, plan)
    s = request.app.state.ctx.settings
    limits = ReadLimits(max_bytes=s.read_max_bytes, max_ratio=s.read_max_ratio, max_rows=s.read_max_rows,
                        max_vertices=s.read_max_vertices, max_json_bytes=s.read_max_json_bytes)
    name = Path(str(up.filename or "cases.csv")).name
    with tempfile.TemporaryDirectory(prefix="gridplan-cases-") as tmp:
        dest = Path(tmp) / ("cases" + (Path(name).suffix.lower()[:12] or ".csv"))
        with open(dest, "wb") as fh:
            await run_in_threadpool(shutil.copyfileobj, up.file, fh, 1 << 20)
        got, routed, table = await run_in_threadpool(_route, request, dest, name, coords, plan_id, idx, period,
                                                     limits, plan is not None)
    request.app.state.ctx.metrics.lookup_points += len(routed)
    if want == "workload":
        body = {"plan": plan_id, "workload": _records(table), "problems": from_problems(got.problems)}
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
    out = routed.drop(columns=["time"]).rename(columns={"time_text": "time"}) if "time_text" in routed else routed
    csv = out.to_csv(index=False).encode("utf-8")
    return Response(csv, media_type="text/csv", headers={"X-Gridplan-Plan": plan_id,
                                                         "X-Gridplan-Routed": str(int(np.sum(routed.grid_code.notna())))})
