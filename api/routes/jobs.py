"""Jobs: POST (multipart upload, checked before it is queued), GET one, GET list, DELETE (cancel).

The key, the body size and the queue caps of a POST are checked by the front middleware
(:mod:`api.guard`) before any body is read; the uploads are checked by :mod:`api.submitcheck`
out of the serving process.
"""
from __future__ import annotations

import json
import re
import shutil
import threading
from typing import List, Literal, Optional

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from starlette.responses import Response

from gridplan.api import kinds
from gridplan.api.auth import planner, reader
from gridplan.api.mergekind import check_id_field_names, merge_layer_roles
from gridplan.api.problems import ProblemError, error_item, scrub
from gridplan.api.quota import check_queue, record_submitter
from gridplan.api.submitcheck import check_uploads
from gridplan.optimize.options import OptionsError, PlanOptions

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

ROLES = ("boundaries", "households", "facilities", "roster", "network", "barriers")
# options a client may set; execution settings (dask scheduler, server paths) stay server-side
FORBIDDEN_PARAMS = {"scheduler", "baseline", "jobs"}
_SUFFIX = re.compile(r"^(\.[a-z0-9]{1,10}){1,2}$")

_QUEUE_LOCK = threading.Lock()

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobCreated(BaseModel):
    """The answer to a submitted job: its id (also in the ``Location`` header) and status ``queued``."""

    id: str
    status: Status


class Job(BaseModel):
    """A job: its status, progress, and once it has succeeded its plan summary.

    Times are Unix seconds. ``stage`` names the step a running job is in; ``error`` says why a
    job failed; ``params`` are the plan options as submitted; ``attempts`` counts the runs started
    (a run whose server died is retried while attempts are left).
    """

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
    """One page of jobs, newest first, and ``total``: how many jobs match the filter."""

    jobs: list[Job]
    total: int


def job_view(j: dict) -> dict:
    """Return a job row as the API shows it (the error scrubbed of server paths)."""
    return {"id": j["id"], "status": j["status"], "progress": float(j.get("progress") or 0.0),
            "stage": j.get("stage"), "error": scrub(j.get("error")), "summary": j.get("summary"),
            "params": j.get("params"), "created_at": j.get("created_at"), "started_at": j.get("started_at"),
            "finished_at": j.get("finished_at"), "attempts": int(j.get("attempts") or 0)}


def _suffix(filename: str | None) -> str:
    name = (filename or "").lower()
    for double in (".osm.pbf", ".shp.zip", ".gpkg.zip"):
        if name.endswith(double):
            return double
    m = re.search(r"(\.[a-z0-9]{1,10})$", name)
    return m.group(1) if m and _SUFFIX.match(m.group(1)) else ".bin"


def _client_name(filename: str | None, role: str) -> str:
    """Return the last part of the name the client gave its file (no directories), or the field name."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:200] if name and name not in (".", "..") else role


def parse_params(raw: str | None) -> dict:
    """Parse the ``params`` form field into the client's options, checked against the plan options schema.

    Every refused value is a 422 problem+json whose ``errors`` name the option (``source`` "params",
    ``row`` the option); server-side settings (``FORBIDDEN_PARAMS``) are refused too.
    Returns the options as sent (the runner builds ``PlanOptions`` from them again).
    """
    return check_plan_params(_params_object(raw))


def check_plan_params(params: dict) -> dict:
    """Check a dict of plan options as :func:`parse_params` does (422 naming the option); return it."""
    try:
        PlanOptions.from_mapping(params, exclude=FORBIDDEN_PARAMS)
    except OptionsError as e:
        raise ProblemError(422, "params has invalid options: " + ", ".join(e.fields),
                           [error_item("params", name, f"{name}: {msg}") for name, msg in e.errors],
                           kind="invalid-params")
    return params


def _params_object(raw: str | None) -> dict:
    """Return the ``params`` field as a JSON object (422 naming ``params`` when it is not one)."""
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
    return params


LAYERS_DESCRIPTION = ("kind merge: the legacy grid layers, one polygon file per department (repeat the field; "
                      "at most max_merge_layers, 8 by default); each is checked like the other uploads")
LAYER_NAMES_DESCRIPTION = ("kind merge: the layers' names in the order of the layers files, as a JSON list or "
                           "comma-separated (letters, digits, _ . -; default: each file's stem). Their id fields go "
                           "in params as layer_id_fields {name: field} (default: the first unique column)")

#: The JSON schema of ``params`` (derived from the plan options), shown in the OpenAPI document.
PARAMS_DESCRIPTION = ("JSON object of plan options (any subset; the rest take their defaults). Kind merge also takes "
                      "layer_id_fields: {layer name: id field of that layers file}. Schema: "
                      + json.dumps(PlanOptions.json_schema(exclude=FORBIDDEN_PARAMS)["properties"],
                                   separators=(",", ":")))


@router.post("", status_code=202, response_model=JobCreated, summary="Submit a plan job",
             responses={202: {"headers": {"Location": {"schema": {"type": "string"}}}},
                        401: {"description": "no or unknown key (answered before the body is read)"},
                        403: {"description": "not a planner key (answered before the body is read)"},
                        408: {"description": "the upload stalled or took too long"},
                        413: {"description": "upload too large, or too large to check within the limits"},
                        422: {"description": "invalid input"},
                        429: {"description": "the queue (or this key's share of it) is full; see Retry-After"}})
async def submit(request: Request, boundaries: UploadFile = File(..., description="unit polygons"),
                 households: UploadFile = File(..., description="household points"),
                 facilities: Optional[UploadFile] = File(None), roster: Optional[UploadFile] = File(None),
                 network: Optional[UploadFile] = File(None),
                 barriers: Optional[UploadFile] = File(None, description="lines no grid may straddle"),
                 grids: Optional[UploadFile] = File(None, description="an existing grid layer (kind audit, adopt)"),
                 baseline: Optional[UploadFile] = File(None, description="last plan's grid layer to keep (kind plan)"),
                 params: Optional[str] = Form(None, description=PARAMS_DESCRIPTION),
                 layers: Optional[List[UploadFile]] = File(None, description=LAYERS_DESCRIPTION),
                 layer_names: Optional[str] = Form(None, description=LAYER_NAMES_DESCRIPTION),
                 kind: Optional[str] = Form(None, description="plan (default), audit, adopt or merge"),
                 _role: str = Depends(planner)) -> Response:
    """Upload the input files and options of a plan; the job is queued once the files pass the checks.

    Needs a planner key. ``boundaries`` and ``households`` are required; ``facilities``,
    ``roster``, ``network`` and ``barriers`` are optional. The key and the queue caps are checked
    before the body is read; the files are then checked as ``gridplan validate`` does, under
    memory and time limits (a file too large to check is a 413). Every fatal problem comes back in
    one 422 naming the file (as you named it), the row and the problem.
    ``kind`` picks what is computed: ``plan``; ``audit`` or ``adopt`` of an uploaded ``grids``
    layer; ``merge`` of the legacy grid layers sent as the repeated ``layers`` field (named by
    ``layer_names``; one is enough), whose result is a plan with a crosswalk per layer.
    Poll ``GET /v1/jobs/{id}`` (the ``Location`` header) for progress.
    """
    ctx = request.app.state.ctx
    job_kind = kinds.get_kind(kind)
    opts = kinds.parse_kind_params(job_kind, _params_object(params), check_plan_params)
    files = {"boundaries": boundaries, "households": households, "facilities": facilities, "roster": roster,
             "network": network, "barriers": barriers, "grids": grids, "baseline": baseline}
    files = {k: (v, _client_name(v.filename, k)) for k, v in files.items() if v is not None and not isinstance(v, str)}
    layer_files = [u for u in (layers or []) if u is not None and not isinstance(u, str)]
    kinds.check_files(job_kind, set(files) | ({"layers"} if layer_files else set()))
    roles = merge_layer_roles(job_kind.name, layer_files, layer_names, ctx.settings.max_merge_layers, _client_name)
    check_id_field_names(opts, [r for r, _, _ in roles])
    taken = [g for _, g in files.values()]
    for j, (role, up, given) in enumerate(roles):   # a file name two uploads share is told apart by its place
        files[role] = (up, given if taken.count(given) + [g for _, _, g in roles].count(given) == 1
                       else f"layers[{j}] {given}")
    stems = {role: f"layer{j}" for j, (role, _, _) in enumerate(roles)}   # the names are the client's: not in paths
    store = ctx.store
    job_id = store.new_id()
    idir = store.input_dir(job_id)
    idir.mkdir(parents=True, exist_ok=True)
    paths, names = {}, {}
    try:
        for role, (up, given) in files.items():
            dest = idir / f"{stems.get(role, role)}{_suffix(up.filename)}"
            with open(dest, "wb") as fh:
                await run_in_threadpool(shutil.copyfileobj, up.file, fh, 1 << 20)
            if dest.stat().st_size == 0:
                what = f"layers file of layer {role[6:]}" if role.startswith("layer:") else f"{role} file"
                raise ProblemError(422, f"the {what} is empty", [error_item(given, None, "the file is empty")],
                                   kind="invalid-upload")
            paths[role], names[role] = dest, given
        errors = await check_uploads(paths, opts, names, ctx.settings)
        if errors:
            raise ProblemError(422, f"the input data has {len(errors)} fatal problem(s): see errors", errors,
                               kind="invalid-data")
        key = request.headers.get("x-api-key", "")
        await run_in_threadpool(_queue_and_create, ctx, key, job_id, opts, {r: p.name for r, p in paths.items()})
    except BaseException:
        shutil.rmtree(store.job_dir(job_id), ignore_errors=True)
        raise
    ctx.dispatcher.wake()
    body = json.dumps({"id": job_id, "status": "queued"}).encode()
    return Response(body, status_code=202, media_type="application/json", headers={"Location": f"/v1/jobs/{job_id}"})


def _queue_and_create(ctx, key: str, job_id: str, opts: dict, inputs: dict) -> None:
    """Check the queue caps once more, then write the job row and who submitted it.

    Other uploads may have filled the queue while this one was checked.
    """
    with _QUEUE_LOCK:
        check_queue(ctx.store.engine, ctx.settings, key)
        record_submitter(ctx.store.engine, job_id, key)
        ctx.store.create_job(job_id, opts, inputs)


@router.get("", response_model=JobList, summary="List jobs, newest first")
def list_jobs(request: Request, status: Optional[Status] = Query(None), limit: int = Query(100, ge=1, le=1000),
              offset: int = Query(0, ge=0, le=10**9), _role: str = Depends(reader)) -> dict:
    """List jobs, newest first, optionally only those with ``status``; ``limit`` and ``offset`` page."""
    store = request.app.state.ctx.store
    return {"jobs": [job_view(j) for j in store.list_jobs(status, limit, offset)], "total": store.count_jobs(status)}


def get_job_or_404(request: Request, job_id: str) -> dict:
    """Return the job row of ``job_id``; a 404 problem when there is none."""
    j = request.app.state.ctx.store.get_job(job_id) if len(job_id) <= 64 else None
    if j is None:
        raise ProblemError(404, f"no job {job_id!r}", kind="not-found")
    return j


@router.get("/{job_id}", response_model=Job, summary="A job's status, progress and summary")
def get_job(request: Request, job_id: str, _role: str = Depends(reader)) -> dict:
    """Return a job's status, progress, error, and summary once it has succeeded."""
    return job_view(get_job_or_404(request, job_id))


@router.delete("/{job_id}", response_model=Job, summary="Cancel a job, or purge it with its files",
               responses={204: {"description": "purged: the job, its inputs, outputs and cached zip are gone"},
                          409: {"description": "without purge: the job has already finished; with purge: the "
                                               "plan is or was published"}})
def cancel_job(request: Request, job_id: str,
               purge: bool = Query(False, description="remove the job with its uploads and results "
                                                      "(cancelling it first if it is queued or running)"),
               _role: str = Depends(planner)) -> Response | dict:
    """Cancel a queued or running job; with ``purge=true`` remove the job and its files instead.

    Needs a planner key. Cancelling a finished job is a 409. Purging works on any job (cancelling
    it first), except a plan that is or was published (409), and answers 204.
    """
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
    from gridplan.api.lifecycle import purge_job

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
