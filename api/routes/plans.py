"""Plan versions: list, show, layers, download, publish, edit, diff (``/v1/plans``).

A version is a succeeded job's output (its id is the job's) or an edit of a version. Publishing
makes a version the live plan from a date (:mod:`gridplan.api.versions` explains the history and
how ``effective_to`` is derived); lookups and the map page answer from the live plan.
"""
from __future__ import annotations

import datetime as dt
from typing import Literal, Optional

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import HTMLResponse, Response

from gridplan.api import versions
from gridplan.api.auth import planner, reader
from gridplan.api.problems import ProblemError, error_item
from gridplan.api.routes.layers import Layer, download_response, layer_response

router = APIRouter(prefix="/v1/plans", tags=["plans"])
Source = Literal[versions.SOURCES]  # type: ignore[valid-type]
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


class VersionOut(BaseModel):
    """A plan version: how it was made, from which parent, when, its effective dates and headline figures.

    ``created``: when the version came to be (Unix seconds: its job's success, or the edit).
    ``effective_to`` is the next published version's ``effective_from`` (exclusive; null for the
    last one and for a version never published). ``live``: lookups answer from it today.
    """

    id: str
    source: str
    parent: Optional[str] = None
    created: float
    effective_from: Optional[str] = None
    effective_to: Optional[str] = None
    published_at: Optional[float] = None
    live: bool = False
    households: Optional[float] = None
    grids: Optional[int] = None
    within_tolerance_share: Optional[float] = None
    coverage_share: Optional[float] = None


class VersionList(BaseModel):
    """One page of versions, newest first; ``total`` matches the filters; ``live`` is the live plan's id."""

    plans: list[VersionOut]
    total: int
    live: Optional[str] = None


class PublishIn(BaseModel):
    """When the version takes effect: an ISO date (``YYYY-MM-DD``)."""

    effective_from: str = Field(..., pattern=DATE_PATTERN, description="ISO date the version takes effect")


class EditsIn(BaseModel):
    """The edits to apply, in order (see ``gridplan.optimize.edit.apply_edits``)."""

    edits: list[dict] = Field(..., min_length=1, max_length=1000)


def parse_date(text: str, where: str) -> dt.date:
    """Parse an ISO date for the API; a 422 problem naming ``where`` when it is not one."""
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ProblemError(422, "the request is invalid: see errors",
                           [error_item(where.split(".")[0], where.split(".", 1)[-1],
                                       f"{text!r} is not a date (YYYY-MM-DD)")], kind="invalid-request")


def version_or_404(request: Request, vid: str) -> versions.Version:
    """Return version ``vid``; a 404 problem when there is no such succeeded version."""
    v = versions.get_version(request.app.state.ctx.store.engine, vid)
    if v is None:
        raise ProblemError(404, f"no plan version {vid!r} (a version is a succeeded job or an edit)",
                           kind="not-found")
    return v


@router.get("", response_model=VersionList, summary="List plan versions, newest first")
def list_plans(request: Request, source: Optional[Source] = Query(None),
               published: Optional[bool] = Query(None, description="only published (true) / unpublished (false)"),
               parent: Optional[str] = Query(None, max_length=40), limit: int = Query(100, ge=1, le=1000),
               offset: int = Query(0, ge=0, le=10**9), _role: str = Depends(reader)) -> dict:
    """List versions with source, parent, created, effective dates and headline figures."""
    eng = request.app.state.ctx.store.engine
    rows, total = versions.list_versions(eng, source, published, parent, limit, offset)
    return {"plans": [v.as_dict() for v in rows], "total": total, "live": versions.live_id(eng)}


@router.get("/live", response_model=VersionOut, summary="The live version (or the one in effect on a date)")
def live_plan(request: Request, as_of: Optional[str] = Query(None, pattern=DATE_PATTERN),
              _role: str = Depends(reader)) -> dict:
    """Return the version lookups answer from today, or with ``as_of`` the published version in effect then."""
    eng = request.app.state.ctx.store.engine
    vid = versions.live_id(eng) if as_of is None else versions.in_effect(eng, parse_date(as_of, "query.as_of"))
    if vid is None:
        raise ProblemError(404, "no plan yet: submit a job (POST /v1/jobs) and wait for it to succeed"
                           if as_of is None else f"no published plan was in effect on {as_of}", kind="no-plan")
    return version_or_404(request, vid).as_dict()


@router.get("/{vid}", response_model=VersionOut, summary="One plan version")
def get_plan(request: Request, vid: str, _role: str = Depends(reader)) -> dict:
    """Return one version: source, parent, created, effective dates, headline figures."""
    return version_or_404(request, vid).as_dict()


@router.get("/{vid}/layers/{layer}", summary="One layer of a version as GeoJSON (streamed; optionally a window)",
            responses={200: {"content": {"application/geo+json": {}}}})
def get_plan_layer(request: Request, vid: str, layer: Layer,
                   limit: int | None = Query(None, ge=0, le=10**9), offset: int = Query(0, ge=0, le=10**9),
                   bbox: str | None = Query(None, max_length=200), _role: str = Depends(reader)) -> Response:
    """Stream a version's layer, as ``GET /v1/jobs/{id}/layers/{layer}`` does for jobs."""
    version_or_404(request, vid)
    return layer_response(request, vid, layer, limit, offset, bbox)


@router.get("/{vid}/download", summary="A version's output directory as a zip",
            responses={200: {"content": {"application/zip": {}}}})
def download_plan(request: Request, vid: str, _role: str = Depends(reader)) -> Response:
    """Download a version's output directory as a zip."""
    version_or_404(request, vid)
    return download_response(request, vid)


@router.post("/{vid}/publish", response_model=VersionOut, summary="Publish a version from a date (planner)")
def publish_plan(request: Request, vid: str, body: PublishIn, _role: str = Depends(planner)) -> dict:
    """Make ``vid`` the published plan from ``effective_from`` (an earlier date inserts it into the history).

    This server swaps its lookup index before answering; other servers sharing the database
    follow within about a second. (A plain function: FastAPI runs it in its thread pool, so the
    database work never holds up the event loop that answers lookups.)
    """
    ctx = request.app.state.ctx
    day = parse_date(body.effective_from, "body.effective_from")
    v = version_or_404(request, vid)
    if v.source in versions.NOT_PLANS:
        raise ProblemError(409, f"version {vid} is an {v.source}: it has no plan to publish", kind="conflict")
    try:   # its index first: a version lookups could not answer from is never published
        ctx.indexes.get(vid)
    except LookupError as e:
        raise ProblemError(e.args[0], e.args[1], kind="no-plan")
    if not versions.publish(ctx.store.engine, vid, day):
        raise ProblemError(404, f"no plan version {vid!r} to publish", kind="not-found")
    ctx.indexes.refresh()   # the swap, before the answer
    return version_or_404(request, vid).as_dict()


@router.post("/{vid}/edits", status_code=201, response_model=VersionOut,
             summary="Apply edits to a version: a new version (planner)",
             responses={501: {"description": "editing is not available in this build"}})
def edit_plan(request: Request, vid: str, body: EditsIn = Body(...), _role: str = Depends(planner)) -> dict:
    """Apply ``edits`` to version ``vid`` and record the result as a new version (source ``edit``, parent ``vid``)."""
    version_or_404(request, vid)
    new = _edit(request.app.state.ctx.store, vid, body.edits, _apply_edits())
    return version_or_404(request, new).as_dict()


def _apply_edits():
    """Return ``apply_edits`` (``optimize.edit_apply``, or re-exported by ``optimize.edit``); 501 without it."""
    import importlib

    for mod in ("gridplan.optimize.edit_apply", "gridplan.optimize.edit"):
        try:
            return importlib.import_module(mod).apply_edits
        except (ImportError, AttributeError):
            continue
    raise ProblemError(501, "editing plans is not available in this build", kind="not-implemented")


def _edit(store, vid: str, edits: list[dict], apply_edits) -> str:
    """Read version ``vid``, apply the edits, write and record the new version; return its id."""
    from gridplan.api.store import secure_tree
    from gridplan.optimize.result import read_plan

    src = store.out_dir(vid)
    if not (src / "plan.gpkg").is_file():
        raise ProblemError(409, f"the output files of version {vid} are missing on this server", kind="conflict")
    try:
        new_plan = apply_edits(read_plan(src), edits)
    except ValueError as e:  # invalid edits (fields named) or an edit refused, with its reason
        pairs = getattr(e, "errors", None) or [(getattr(e, "field", None) or "edits", str(e))]
        raise ProblemError(422, f"the edits were refused: {e}",
                           [error_item("body", f, m) for f, m in pairs], kind="edit-refused")
    new = store.new_id()
    out = store.out_dir(new)
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    new_plan.to_dir(out)
    versions.write_version_file(out, new, "edit", vid)
    secure_tree(store.job_dir(new))
    store.publish_layers(new)
    versions.record_derived(store.engine, new, vid, "edit", dict(new_plan.summary),
                            {"kind": "edit", "parent": vid, "edits": edits})
    return new


@router.get("/{a}/diff/{b}", summary="What changed from version a to version b",
            responses={200: {"content": {"application/json": {}, "text/html": {}}}})
def diff_plans_route(request: Request, a: str, b: str, format: Literal["json", "html"] = Query("json"),
                     _role: str = Depends(reader)) -> Response:
    """Diff two versions: grids kept/reshaped/created/retired, household transitions, workers, stations.

    ``format=html`` answers the self-contained page (both plans, changes highlighted).
    """
    store = request.app.state.ctx.store
    for v in (a, b):
        version_or_404(request, v)
        if not (store.out_dir(v) / "plan.gpkg").is_file():
            raise ProblemError(409, f"the output files of version {v} are missing on this server", kind="conflict")
    d = _diff(store, a, b)
    if format == "html":
        from gridplan.optimize.diff import diff_html
        return HTMLResponse(diff_html(d), headers={"Content-Security-Policy": "default-src 'none'; script-src "
                                                   "'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"})
    import orjson
    return Response(orjson.dumps(d.to_dict()), media_type="application/json")


def _diff(store, a: str, b: str):
    from gridplan.optimize.diff import diff_plans
    from gridplan.optimize.result import read_plan

    return diff_plans(read_plan(store.out_dir(a)), read_plan(store.out_dir(b)), old_id=a, new_id=b)
