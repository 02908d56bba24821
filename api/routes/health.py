"""GET /health (no key) and GET /metrics (Prometheus text format).

``/metrics`` needs any valid key, or none when the ``metrics_public`` setting opens it to a
scraper that cannot send headers.
"""
from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from starlette.responses import PlainTextResponse, Response

from gridplan.api.app import BUCKETS
from gridplan.api.auth import api_key_header, check_key

router = APIRouter(tags=["health"])
_OK = b'{"status":"ok"}'


@router.get("/health", summary="Liveness probe", responses={200: {"content": {"application/json": {
    "example": {"status": "ok"}}}}})
async def health() -> Response:
    """Answer ``{"status": "ok"}`` while the server is up (no key needed)."""
    return Response(_OK, media_type="application/json")


def _esc(v) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse,
            responses={401: {"description": "no or unknown key (unless metrics_public is set)"}})
def metrics(request: Request, key: str | None = Depends(api_key_header)) -> PlainTextResponse:
    """Return the server's metrics in the Prometheus text format.

    Requests by method, route and status; latency histograms by route; points looked up; jobs by
    status; this server's running jobs; the current lookup index; uptime. Needs any valid key
    unless the server sets ``metrics_public``.
    """
    ctx = request.app.state.ctx
    if not ctx.settings.metrics_public:
        check_key(ctx.keys, key, "reader")
    m = ctx.metrics
    out = ["# HELP gridplan_http_requests_total HTTP requests by method, route and status.",
           "# TYPE gridplan_http_requests_total counter"]
    for (method, route, status), n in sorted(m.requests.items()):
        out.append(f'gridplan_http_requests_total{{method="{method}",route="{_esc(route)}",status="{status}"}} {n}')
    out += ["# HELP gridplan_http_request_duration_seconds Request latency by route.",
            "# TYPE gridplan_http_request_duration_seconds histogram"]
    for route, h in sorted(m.hist.items()):
        cum = 0
        for b, c in zip(BUCKETS, h):
            cum += c
            out.append(f'gridplan_http_request_duration_seconds_bucket{{route="{_esc(route)}",le="{b}"}} {cum}')
        cum += h[len(BUCKETS)]
        out.append(f'gridplan_http_request_duration_seconds_bucket{{route="{_esc(route)}",le="+Inf"}} {cum}')
        out.append(f'gridplan_http_request_duration_seconds_sum{{route="{_esc(route)}"}} {h[-1]:.6f}')
        out.append(f'gridplan_http_request_duration_seconds_count{{route="{_esc(route)}"}} {cum}')
    out += ["# HELP gridplan_lookup_points_total Points answered by lookups.",
            "# TYPE gridplan_lookup_points_total counter", f"gridplan_lookup_points_total {m.lookup_points}"]
    out += ["# HELP gridplan_jobs Jobs by status.", "# TYPE gridplan_jobs gauge"]
    for status, n in ctx.store.status_counts().items():
        out.append(f'gridplan_jobs{{status="{status}"}} {n}')
    out += ["# HELP gridplan_jobs_running_local Runner processes of this server.",
            "# TYPE gridplan_jobs_running_local gauge", f"gridplan_jobs_running_local {len(ctx.dispatcher.procs)}"]
    cur = ctx.indexes.current
    out += ["# HELP gridplan_index_grids Grids in the current lookup index.", "# TYPE gridplan_index_grids gauge",
            f'gridplan_index_grids{{plan="{_esc(cur[0]) if cur else ""}"}} {len(cur[1]) if cur else 0}',
            "# HELP gridplan_index_swaps_total Lookup index swaps since start.",
            "# TYPE gridplan_index_swaps_total counter", f"gridplan_index_swaps_total {ctx.indexes.swaps}",
            "# HELP gridplan_uptime_seconds Seconds since the server started.", "# TYPE gridplan_uptime_seconds gauge",
            f"gridplan_uptime_seconds {time.time() - ctx.started:.1f}"]
    return PlainTextResponse("\n".join(out) + "\n", media_type="text/plain; version=0.0.4")
