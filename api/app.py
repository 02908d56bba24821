"""The FastAPI application: ``create_app(settings) -> FastAPI``.

Everything shared lives on ``app.state.ctx`` (:class:`Context`): the store, the key cache, the
lookup index registry, the job dispatcher and the request metrics. One pure-ASGI middleware caps
request bodies (413), times requests out (504), counts them for ``/metrics`` and writes one JSON
log line per request (lookups and probes only when they fail or are slow, to keep the hot path
cheap). Every error leaves as ``application/problem+json``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import KeyCache
from api.indexes import IndexRegistry
from api.problems import ProblemError, error_item, problem, problem_body
from api.settings import Settings
from api.store import Store
from api.worker import Dispatcher

log = logging.getLogger("gridplan.http")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_ROUTE_RX = [(re.compile(r"^/v1/jobs/[^/]+/layers/[^/]+$"), "/v1/jobs/{id}/layers/{layer}"),
             (re.compile(r"^/v1/jobs/[^/]+/download$"), "/v1/jobs/{id}/download"),
             (re.compile(r"^/v1/jobs/[^/]+$"), "/v1/jobs/{id}")]
_KNOWN = {"/health", "/metrics", "/v1/jobs", "/v1/lookup", "/openapi.json", "/docs", "/redoc", "/"}
_QUIET = {"/v1/lookup", "/health", "/metrics"}


class JsonFormatter(logging.Formatter):
    _skip = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        d = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
             "msg": record.getMessage()}
        d.update({k: v for k, v in record.__dict__.items() if k not in self._skip})
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, default=str, ensure_ascii=False)


def setup_logging(level: str = "info") -> None:
    root = logging.getLogger("gridplan")
    if not any(getattr(h, "_gridplan", False) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(JsonFormatter())
        h._gridplan = True  # type: ignore[attr-defined]
        root.addHandler(h)
        root.propagate = False
    root.setLevel(level.upper())


@dataclass
class Metrics:
    requests: dict = field(default_factory=dict)     # (method, route, status) -> count
    hist: dict = field(default_factory=dict)         # route -> [bucket counts..., +Inf, sum]
    lookup_points: int = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        k = (method, route, status)
        self.requests[k] = self.requests.get(k, 0) + 1
        h = self.hist.get(route)
        if h is None:
            h = self.hist[route] = [0] * (len(BUCKETS) + 1) + [0.0]
        for i, b in enumerate(BUCKETS):
            if seconds <= b:
                h[i] += 1
                break
        else:
            h[len(BUCKETS)] += 1
        h[-1] += seconds


@dataclass
class Context:
    settings: Settings
    store: Store
    keys: KeyCache
    indexes: IndexRegistry
    dispatcher: Dispatcher
    metrics: Metrics
    started: float


def route_of(path: str) -> str:
    if path in _KNOWN:
        return path
    for rx, name in _ROUTE_RX:
        if rx.match(path):
            return name
    return "other"


class GuardMiddleware:
    """Body-size caps, request timeouts, metrics and access logs, as plain ASGI (no per-request task
    unless a timeout applies)."""

    def __init__(self, app, settings: Settings, metrics: Metrics):
        self.app, self.s, self.m = app, settings, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        path, method = scope["path"], scope["method"]
        route = route_of(path)
        upload = method == "POST" and route == "/v1/jobs"
        cap = self.s.max_upload_bytes if upload else self.s.max_json_bytes
        state = {"status": 500, "started": False}

        async def send_w(msg):
            if msg["type"] == "http.response.start":
                state["status"] = msg["status"]
                state["started"] = True
            await send(msg)

        async def reply(status: int, detail: str):
            body = json.dumps(problem_body(status, detail)).encode()
            await send_w({"type": "http.response.start", "status": status,
                          "headers": [(b"content-type", b"application/problem+json"),
                                      (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
            await send_w({"type": "http.response.body", "body": body})

        too_big = f"the request body is larger than the limit of {cap} bytes"
        try:
            if method in ("POST", "PUT", "PATCH"):
                clen = None
                for k, v in scope["headers"]:
                    if k == b"content-length":
                        try:
                            clen = int(v)
                        except ValueError:
                            clen = -1
                if clen is not None and (clen > cap):
                    await reply(413, too_big)
                    return
                seen = 0

                async def receive_w():
                    nonlocal seen
                    msg = await receive()
                    if msg["type"] == "http.request":
                        seen += len(msg.get("body", b""))
                        if seen > cap:
                            raise _TooLarge()
                    return msg

                inner_receive = receive_w
            else:
                inner_receive = receive
            timeout = None if (upload or route == "/v1/jobs/{id}/download") else self.s.request_timeout_s
            try:
                if timeout:
                    await asyncio.wait_for(self.app(scope, inner_receive, send_w), timeout)
                else:
                    await self.app(scope, inner_receive, send_w)
            except _TooLarge:
                if not state["started"]:
                    await reply(413, too_big)
            except asyncio.TimeoutError:
                if not state["started"]:
                    await reply(504, f"the request took longer than {self.s.request_timeout_s:g} s")
        finally:
            dt = time.perf_counter() - t0
            st = state["status"]
            self.m.observe(method, route, st, dt)
            if route not in _QUIET or st >= 400 or dt > 0.5:
                log.info("request", extra={"method": method, "path": path, "status": st, "ms": round(dt * 1e3, 2)})


class _TooLarge(Exception):
    pass


def _validation_errors(exc: RequestValidationError) -> list[dict]:
    out = []
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ())]
        source = loc[0] if loc else "request"
        where = ".".join(loc[1:]) or None
        out.append(error_item(source, where, str(e.get("msg", "invalid value"))))
    return out


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    setup_logging(settings.log_level)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = Store(settings)
        indexes = IndexRegistry(store, settings.index_cache)
        dispatcher = Dispatcher(settings, store, on_success=lambda _id: indexes.refresh_async())
        app.state.ctx = Context(settings, store, KeyCache(store.engine), indexes, dispatcher, metrics, time.time())
        dispatcher.start()
        indexes.refresh_async()  # load the newest plan's index in the background; lookups wait for it
        log.info("server started", extra={"data_dir": str(settings.data_path), "db": settings.db_url.split("@")[-1]})
        try:
            yield
        finally:
            dispatcher.stop()

    app = FastAPI(
        title="gridplan", version="0.1.0", lifespan=lifespan,
        description="Grid-governance plans as a service: submit partition jobs, watch them run, fetch the "
                    "result layers, and look up which grid, worker and station serve a coordinate.",
    )

    @app.exception_handler(ProblemError)
    async def _problem(_req, exc: ProblemError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req, exc: RequestValidationError):
        return problem(422, "the request is invalid: see errors", errors=_validation_errors(exc),
                       kind="invalid-request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req, exc: StarletteHTTPException):
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(_req, exc: Exception):
        log.exception("unhandled error")
        return problem(500, f"internal error: {type(exc).__name__}")

    from api.routes import health, jobs, layers, lookup
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(layers.router)
    app.include_router(lookup.router)
    try:
        from api.routes import map as map_routes  # the report engineer's map page, when present
        app.include_router(map_routes.router)
    except ImportError:
        pass
    app.add_middleware(GuardMiddleware, settings=settings, metrics=metrics)
    return app
