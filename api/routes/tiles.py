"""Vector tiles of a plan: ``GET /tiles/{plan}/{z}/{x}/{y}.mvt`` and its TileJSON ``GET /tiles/{plan}/tiles.json``.

``plan`` is a succeeded job id or ``live`` (the live plan: the one lookups answer from).
A tile is a Mapbox Vector Tile (``application/vnd.mapbox-vector-tile``) on the WebMercatorQuad
grid with the layers ``service_areas``, ``units``, ``grids``, ``micro_grids`` and ``stations``
(those the plan has), in true WGS 84 whatever output coordinates the plan was written in, with the
layers' attributes. A tile with no feature is an empty body. Any key (``reader``) may read tiles.

Tiles are cached per plan version (``api.tilecache``); the ETag names the plan version and the
tile, so ``If-None-Match`` answers 304 without rendering. A job id's tiles never change
(``immutable``); ``live`` tiles are re-validated after a minute.
"""
from __future__ import annotations

import threading

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from gridplan.api.auth import reader
from gridplan.api.problems import ProblemError
from gridplan.api.tilecache import TileCache
from gridplan.geo.tiles import MAX_ZOOM, TILE_LAYERS, check_tile, layer_fields

router = APIRouter(prefix="/tiles", tags=["tiles"])
MVT = "application/vnd.mapbox-vector-tile"
TILES_VERSION = "1"      # bump when the tile contents change for the same plan (ETags then change)
LIVE = "live"


_create_lock = threading.Lock()


def app_tile_cache(app) -> TileCache:
    """Return the server's tile cache, created on first use from the settings."""
    state = app.state
    cache = getattr(state, "tiles", None)
    if cache is None:
        with _create_lock:
            cache = getattr(state, "tiles", None)
            if cache is None:
                ctx = state.ctx
                cache = TileCache(ctx.store, sources=ctx.settings.index_cache,
                                  max_bytes=int(ctx.settings.tile_cache_mb * 1024 * 1024))
                state.tiles = cache
    return cache


def tile_cache(request: Request) -> TileCache:
    """Return the tile cache of the request's server."""
    return app_tile_cache(request.app)


def warm_in_background(app, plan_id: str | None = None) -> None:
    """Build the tile source and overview tiles of ``plan_id`` (None: the live plan) in a thread.

    Called when a plan becomes the live one, so the first map of it does not wait for them
    (the ``tile_warm`` setting turns it off).
    """
    ctx = getattr(app.state, "ctx", None)
    if ctx is None or not ctx.settings.tile_warm:
        return

    def run():
        from gridplan.api.versions import live_id
        pid = plan_id if plan_id is not None else live_id(ctx.store.engine)
        if pid is not None:
            app_tile_cache(app).warm(pid)
    threading.Thread(target=run, name="gridplan-tile-warm", daemon=True).start()


def resolve_plan(request: Request, plan: str) -> str:
    """Return the job id that ``plan`` names (``live``: the live plan, as lookups use); 404/409 problems otherwise."""
    ctx = request.app.state.ctx
    if plan == LIVE:
        cur = ctx.indexes.current
        if cur is not None:
            return cur[0]
        from gridplan.api.versions import live_id
        pid = live_id(ctx.store.engine)
        if pid is None:
            raise ProblemError(404, "no succeeded plan yet: submit a job and wait for it to succeed", kind="no-plan")
        return pid
    if len(plan) > 64:
        raise ProblemError(404, "no such plan: a plan is a job id or 'live'", kind="no-plan")
    job = ctx.store.get_job(plan)
    if job is None:
        raise ProblemError(404, f"no job {plan!r}", kind="no-plan")
    if job["status"] != "succeeded":
        raise ProblemError(409, f"job {plan!r} is {job['status']}: only a succeeded job has tiles", kind="not-ready")
    return plan


def _headers(plan: str, etag: str) -> dict:
    cc = "private, max-age=60, must-revalidate" if plan == LIVE else "private, max-age=31536000, immutable"
    return {"ETag": etag, "Cache-Control": cc}


@router.get("/{plan}/{z}/{x}/{y}.mvt", summary="One vector tile of a plan (Mapbox Vector Tile)",
            responses={200: {"content": {MVT: {}}}, 304: {"description": "not modified (If-None-Match)"},
                       404: {"description": "no such plan or tile"}})
async def get_tile(request: Request, plan: str, z: int, x: int, y: int, _role: str = Depends(reader)) -> Response:
    """Return tile ``z/x/y`` of ``plan`` (a job id or ``live``) with ETag and Cache-Control."""
    try:
        check_tile(z, x, y)
    except ValueError as e:
        raise ProblemError(404, str(e), kind="not-found")
    plan_id = await run_in_threadpool(resolve_plan, request, plan)
    etag = f'"{plan_id}-{z}-{x}-{y}-v{TILES_VERSION}"'
    headers = _headers(plan, etag)
    if plan_id != plan:
        headers["X-Gridplan-Plan"] = plan_id
    inm = request.headers.get("if-none-match")
    if inm and etag in [t.strip().removeprefix("W/") for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    data = await run_in_threadpool(tile_cache(request).tile, plan_id, z, x, y)
    return Response(data, media_type=MVT, headers=headers)


@router.get("/{plan}/tiles.json", summary="TileJSON 3.0 of a plan's vector tiles (bounds, layers, tile URL)")
async def tilejson(request: Request, plan: str, _role: str = Depends(reader)) -> Response:
    """Describe ``plan``'s tiles as TileJSON: the URL template, zooms, WGS 84 bounds and layers."""
    import orjson

    plan_id = await run_in_threadpool(resolve_plan, request, plan)
    src = await run_in_threadpool(tile_cache(request).source, plan_id)
    w, s, e, n = src.bounds
    body = {"tilejson": "3.0.0", "name": f"gridplan {plan_id}", "scheme": "xyz",
            "tiles": [f"{request.base_url}tiles/{plan_id}/{{z}}/{{x}}/{{y}}.mvt"],
            "minzoom": 0, "maxzoom": MAX_ZOOM, "plan": plan_id,
            "bounds": [w, s, e, n] if w == w else None,
            "center": [(w + e) / 2, (s + n) / 2, 10] if w == w else None,
            "vector_layers": [{"id": name, "fields": layer_fields(src.layers[name].props),
                               "features": len(src.layers[name].geoms)}
                              for name in TILE_LAYERS if name in src.layers]}
    return Response(orjson.dumps(body), media_type="application/json",
                    headers={"Cache-Control": "private, max-age=60"})

