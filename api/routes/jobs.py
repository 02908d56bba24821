"""Jobs: POST (multipart upload, validated synchronously), GET one, GET list, DELETE (cancel)."""
from __future__ import annotations

import json
import re
import shutil
from typing import Literal, Optional

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from starlette.responses import Response

from api.auth import planner, reader
from api.problems import ProblemError, error_item, from_problems
from optimize.options import OptionsError, PlanOptions

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

ROLES = ("boundaries", "households", "facilities", "roster", "network", "barriers")
# options a client may set; execution settings (dask scheduler, server paths) stay server-side
FORBIDDEN_PARAMS = {"scheduler", "baseline", "jobs"}
_SUFFIX = re.compile(r"^(\.[a-z0-9]{1,10}){1,2}$")

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobCreated(BaseModel):
    id: str
    status: Status


class Job(BaseModel):
    id: str
    status: Status
    progress: float
    stage: Optional[str] = None
    error: Optional[str] = None
    summary: Optional[dict] = None
    params: Optional[dict] = None
    created_at: Optional[float] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    attempts: int = 0


class JobList(BaseModel):
    jobs: list[Job]
    total: int


def job_view(j: dict) -> dict:
    return {"id": j["id"], "status": j["status"], "progress": float(j.get("progress") or 0.0),
            "stage": j.get("stage"), "error": j.get("error"), "summary": j.get("summary"),
            "params": j.get("params"), "created_at": j.get("created_at"), "started_at": j.get("started_at"),
            "finished_at": j.get("finished_at"), "attempts": int(j.get("attempts") or 0)}


def _suffix(filename: str | None) -> str:
    name = (filename or "").lower()
    for double in (".osm.pbf", ".shp.zip", ".gpkg.zip"):
        if name.endswith(double):
            return double
    m = re.search(r"(\.[a-z0-9]{1,10})$", name)
    return m.group(1) if m and _SUFFIX.match(m.group(1)) else ".bin"


def parse_params(raw: str | None) -> dict:
    """The ``params`` form field -> the client's options, checked against the plan options schema.

    Every refused value is a 422 problem+json whose ``errors`` name the option (``source`` "params",
    ``row`` the option); server-side settings (``FORBIDDEN_PARAMS``) are refused too.
    Returns the options as sent (the runner builds ``PlanOptions`` from them again).
    """
    if raw is None or not raw.strip():
        return {}
    try:
        params = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ProblemError(422, "params is not valid JSON", [error_item("params", None, str(e))], kind="invalid-params")
    if not isinstance(params, dict):
        raise ProblemError(422, "params must be a JSON object of plan options",
                           [error_item("params", None, f"expected an object, got {type(params).__name__}")],
                           kind="invalid-params")
    try:
        PlanOptions.from_mapping(params, exclude=FORBIDDEN_PARAMS)
    except OptionsError as e:
        raise ProblemError(422, "params has invalid options: " + ", ".join(e.fields),
                           [error_item("params", name, f"{name}: {msg}") for name, msg in e.errors],
                           kind="invalid-params")
    return params


#: The JSON schema of ``params`` (derived from the plan options), shown in the OpenAPI document.
PARAMS_DESCRIPTION = ("JSON object of plan options (any subset; the rest take their defaults). Schema: "
                      + json.dumps(PlanOptions.json_schema(exclude=FORBIDDEN_PARAMS)["properties"],
                                   separators=(",", ":")))


def _validate_inputs(paths: dict, params: dict, names: dict) -> list[dict]:
    """geo.io.validate on the saved uploads -> the contract's errors (fatal problems only)."""
    try:
        from geo.io import validate
    except ImportError:  # the validator is not there: the run will report problems instead
        return []
    try:
        problems = validate(str(paths["boundaries"]), str(paths["households"]),
                            str(paths["facilities"]) if "facilities" in paths else None,
                            str(paths["roster"]) if "roster" in paths else None,
                            coords=params.get("coords", "wgs84"), code_field=params.get("code_field", "village_code"))
        if "barriers" in paths:
            from geo.io import load_lines
            problems += load_lines(str(paths["barriers"]), "EPSG:4326", coords=params.get("coords", "wgs84"))[1]
    except ValueError as e:
        return [error_item("params", None, str(e))]
    except Exception as e:  # noqa: BLE001 — an unreadable file is an input error, never a 500
        return [error_item("upload", None, f"could not read the uploaded files: {type(e).__name__}: {e}")]
    fatal = [p for p in problems if p.fatal]
    items = from_problems(fatal)
    # name the client's file, not our saved copy
    for it in items:
        for role, saved in paths.items():
            if it["source"] in (saved.name, str(saved), role):
                it["source"] = names.get(role) or role
    return items


@router.post("", status_code=202, response_model=JobCreated, summary="Submit a plan job",
             responses={202: {"headers": {"Location": {"schema": {"type": "string"}}}},
                        413: {"description": "upload too large"}, 422: {"description": "invalid input"}})
async def submit(request: Request, boundaries: UploadFile = File(..., description="unit polygons"),
                 households: UploadFile = File(..., description="household points"),
                 facilities: Optional[UploadFile] = File(None), roster: Optional[UploadFile] = File(None),
                 network: Optional[UploadFile] = File(None),
                 barriers: Optional[UploadFile] = File(None, description="lines no grid may straddle"),
                 params: Optional[str] = Form(None, description=PARAMS_DESCRIPTION),
                 _role: str = Depends(planner)) -> Response:
    ctx = request.app.state.ctx
    opts = parse_params(params)
    files = {"boundaries": boundaries, "households": households, "facilities": facilities, "roster": roster,
             "network": network, "barriers": barriers}
    files = {k: v for k, v in files.items() if v is not None and not isinstance(v, str)}
    store = ctx.store
    job_id = store.new_id()
    idir = store.input_dir(job_id)
    idir.mkdir(parents=True, exist_ok=True)
    paths, names = {}, {}
    try:
        for role, up in files.items():
            dest = idir / f"{role}{_suffix(up.filename)}"
            with open(dest, "wb") as fh:
                await run_in_threadpool(shutil.copyfileobj, up.file, fh, 1 << 20)
            if dest.stat().st_size == 0:
                raise ProblemError(422, f"the {role} file is empty", [error_item(up.filename or role, None,
                                                                                 "the file is empty")],
                                   kind="invalid-upload")
            paths[role], names[role] = dest, up.filename or role
        errors = await run_in_threadpool(_validate_inputs, paths, opts, names)
        if errors:
            raise ProblemError(422, f"the input data has {len(errors)} fatal problem(s): see errors", errors,
                               kind="invalid-data")
        store.create_job(job_id, opts, {r: p.name for r, p in paths.items()})
    except BaseException:
        shutil.rmtree(store.job_dir(job_id), ignore_errors=True)
        raise
    ctx.dispatcher.wake()
    body = json.dumps({"id": job_id, "status": "queued"}).encode()
    return Response(body, status_code=202, media_type="application/json", headers={"Location": f"/v1/jobs/{job_id}"})


@router.get("", response_model=JobList, summary="List jobs, newest first")
def list_jobs(request: Request, status: Optional[Status] = Query(None), limit: int = Query(100, ge=1, le=1000),
              offset: int = Query(0, ge=0, le=10**9), _role: str = Depends(reader)) -> dict:
    store = request.app.state.ctx.store
    return {"jobs": [job_view(j) for j in store.list_jobs(status, limit, offset)], "total": store.count_jobs(status)}


def get_job_or_404(request: Request, job_id: str) -> dict:
    j = request.app.state.ctx.store.get_job(job_id) if len(job_id) <= 64 else None
    if j is None:
        raise ProblemError(404, f"no job {job_id!r}", kind="not-found")
    return j


@router.get("/{job_id}", response_model=Job, summary="A job's status, progress and summary")
def get_job(request: Request, job_id: str, _role: str = Depends(reader)) -> dict:
    return job_view(get_job_or_404(request, job_id))


@router.delete("/{job_id}", response_model=Job, summary="Cancel a job, or purge it with its files",
               responses={204: {"description": "purged: the job, its inputs, outputs and cached zip are gone"},
                          409: {"description": "without purge: the job has already finished; with purge: the "
                                               "plan is or was published"}})
def cancel_job(request: Request, job_id: str,
               purge: bool = Query(False, description="remove the job with its uploads and results "
                                                      "(cancelling it first if it is queued or running)"),
               _role: str = Depends(planner)) -> Response | dict:
    ctx = request.app.state.ctx
    j = get_job_or_404(request, job_id)
    if purge:
        return _purge(ctx, job_id)
    if not ctx.store.cancel(job_id):
        j = ctx.store.get_job(job_id)
        raise ProblemError(409, f"job {job_id} is {j['status']}: only a queued or running job can be cancelled",
                           kind="conflict")
    ctx.dispatcher.cancel(job_id)
    return job_view(ctx.store.get_job(job_id))


def _purge(ctx, job_id: str) -> Response:
    """DELETE ?purge=true: a published plan stays (409); anything else goes, running or not."""
    from api.lifecycle import purge_job

    if ctx.store.was_published(job_id):
        raise ProblemError(409, f"job {job_id} is or was a published plan: published plans are kept",
                           kind="conflict")
    ctx.store.cancel(job_id)          # a queued or running job stops first (no-op when finished)
    ctx.dispatcher.cancel(job_id)     # our runner, if we have it; another server's reaper sees the row go
    purge_job(ctx.store, job_id)
    forget = getattr(ctx.indexes, "forget", None)
    if forget is not None:
        forget(job_id)
    return Response(status_code=204)
