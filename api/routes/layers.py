"""A finished job's results: layers as streamed GeoJSON FeatureCollections, the output directory as a zip."""
from __future__ import annotations

import os
import tempfile
import zipfile
from enum import Enum
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import FileResponse, Response, StreamingResponse

from gridplan.api.auth import reader
from gridplan.api.layerstream import Window, parse_bbox, stream_layer
from gridplan.api.problems import ProblemError, error_item
from gridplan.api.routes.jobs import get_job_or_404

router = APIRouter(prefix="/v1/jobs", tags=["results"])


class Layer(str, Enum):
    """The result layers of a plan (``workers``, ``micro_grids`` and ``crosswalk`` only where they apply).

    ``workers`` needs a roster, ``micro_grids`` a micro target; ``crosswalk`` comes from a merge
    (legacy grid x new grid, with households and shares).
    """

    grids = "grids"
    stations = "stations"
    service_areas = "service_areas"
    households = "households"
    units = "units"
    workers = "workers"
    micro_grids = "micro_grids"
    crosswalk = "crosswalk"


def _succeeded(request: Request, job_id: str) -> dict:
    j = get_job_or_404(request, job_id)
    if j["status"] != "succeeded":
        raise ProblemError(409, f"job {job_id} is {j['status']}: results exist once it has succeeded",
                           kind="not-ready")
    return j


@router.get("/{job_id}/layers/{layer}", summary="One result layer as GeoJSON (streamed; optionally a window)",
            responses={200: {"content": {"application/geo+json": {}}}, 409: {"description": "job not finished"}})
def get_layer(request: Request, job_id: str, layer: Layer,
              limit: int | None = Query(None, ge=0, le=10**9, description="at most this many features"),
              offset: int = Query(0, ge=0, le=10**9, description="skip this many features first"),
              bbox: str | None = Query(None, max_length=200, description="minlon,minlat,maxlon,maxlat (WGS 84): "
                                          "only features intersecting the box; applied before offset/limit"),
              _role: str = Depends(reader)) -> Response:
    """Stream one result layer of a succeeded job as a GeoJSON FeatureCollection (WGS 84).

    ``bbox`` keeps the features that intersect the box, then ``offset`` and ``limit`` page them,
    in the layer's stored order. A job not yet succeeded is a 409.
    """
    return layer_response(request, job_id, layer, limit, offset, bbox)


def layer_response(request: Request, job_id: str, layer: Layer, limit: int | None, offset: int,
                   bbox: str | None) -> Response:
    """Stream a succeeded job's (a plan version's) ``layer``; the body of the layer routes of jobs and plans."""
    store = request.app.state.ctx.store
    try:
        box = parse_bbox(bbox)
    except ValueError as e:
        raise ProblemError(422, "the request is invalid: see errors", [error_item("query", "bbox", str(e))],
                           kind="invalid-request")
    _succeeded(request, job_id)
    if not store.has_layer(job_id, layer.value):
        raise ProblemError(404, f"job {job_id} has no {layer.value} layer"
                           + (" (no roster was given)" if layer is Layer.workers else ""), kind="not-found")
    body = stream_layer(store, job_id, layer.value, Window(limit=limit, offset=offset, bbox=box))
    return StreamingResponse(body, media_type="application/geo+json")


@router.get("/{job_id}/download", summary="The output directory as a zip",
            responses={200: {"content": {"application/zip": {}}}, 409: {"description": "job not finished"}})
def download(request: Request, job_id: str, _role: str = Depends(reader)) -> Response:
    """Download the whole output directory of a succeeded job (the files the CLI writes) as a zip."""
    return download_response(request, job_id)


def download_response(request: Request, job_id: str) -> Response:
    """Zip a succeeded job's (a plan version's) output directory; the body of the download routes."""
    store = request.app.state.ctx.store
    _succeeded(request, job_id)
    out = store.out_dir(job_id)
    if not out.is_dir():
        raise ProblemError(404, f"the output files of job {job_id} are missing on this server", kind="not-found")
    zpath = store.job_dir(job_id) / f"gridplan-{job_id}.zip"
    if not zpath.exists():
        fd, tmp = tempfile.mkstemp(dir=store.job_dir(job_id), suffix=".zip.part")
        os.close(fd)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(Path(out).rglob("*")):
                if p.is_file():
                    zf.write(p, p.relative_to(out).as_posix())
        os.replace(tmp, zpath)
    return FileResponse(zpath, media_type="application/zip", filename=f"gridplan-{job_id}.zip")
