"""The FastAPI application: ``create_app(settings) -> FastAPI``.

Everything shared lives on ``app.state.ctx`` (:class:`Context`): the store, the key cache, the
lookup index registry, the job dispatcher and the request metrics. One pure-ASGI middleware
(:mod:`api.guard`) checks an upload's key before its body, caps request bodies (413), times
uploads (408) and requests (504) out, counts requests for ``/metrics`` and writes one JSON log line
per request. Every error leaves as ``application/problem+json`` with no server path or exception
class name in it (:func:`api.problems.scrub`). ``/docs`` and ``/redoc`` use vendored assets
(``api/static/docs``): the pages load nothing from another origin.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from gridplan.api.auth import KeyCache
from gridplan.api.guard import GuardMiddleware, route_of  # noqa: F401 — route_of is re-exported
from gridplan.api.indexes import IndexRegistry
from gridplan.api.problems import ProblemError, error_item, hide_prefix, problem
from gridplan.api.settings import Settings
from gridplan.api.store import Store
from gridplan.api.worker import Dispatcher

log = logging.getLogger("gridplan.http")
DOCS_ASSETS = Path(__file__).resolve().parent / "static" / "docs"
_CSP_DOCS = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' data:; worker-src 'self' blob:; font-src 'self' data:; connect-src 'self'")

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class JsonFormatter(logging.Formatter):
    """Format log records as one JSON object a line, with the record's extra fields."""

    _skip = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        """Return ``record`` as a JSON line (time, level, logger, message, extras, traceback)."""
        d = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
             "msg": record.getMessage()}
        d.update({k: v for k, v in record.__dict__.items() if k not in self._skip})
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, default=str, ensure_ascii=False)


def setup_logging(level: str = "info") -> None:
    """Send the ``gridplan`` loggers to stderr as JSON lines at ``level`` (once per process)."""
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
    """Request counts and latency histograms by route, kept in memory for ``/metrics``."""

    requests: dict = field(default_factory=dict)     # (method, route, status) -> count
    hist: dict = field(default_factory=dict)         # route -> [bucket counts..., +Inf, sum]
    lookup_points: int = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and add its duration to the route's histogram."""
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
    """What the routes share: settings, store, key cache, lookup indexes, dispatcher, metrics."""

    settings: Settings
    store: Store
    keys: KeyCache
    indexes: IndexRegistry
    dispatcher: Dispatcher
    metrics: Metrics
    started: float


def _validation_errors(exc: RequestValidationError) -> list[dict]:
    out = []
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ())]
        source = loc[0] if loc else "request"
        where = ".".join(loc[1:]) or None
        out.append(error_item(source, where, str(e.get("msg", "invalid value"))))
    return out


def _docs_routes(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from the vendored assets under ``/static/docs``."""
    app.mount("/static/docs", StaticFiles(directory=str(DOCS_ASSETS)), name="docs-assets")

    def _csp(r: HTMLResponse) -> HTMLResponse:
        r.headers["Content-Security-Policy"] = _CSP_DOCS
        return r

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return _csp(get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} - API docs",
            swagger_js_url="/static/docs/swagger-ui-bundle.js", swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None}))

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _csp(get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} - API reference",
                                   redoc_js_url="/static/docs/redoc.standalone.js",
                                   redoc_favicon_url="/static/docs/favicon-32x32.png", with_google_fonts=False))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI application for ``settings`` (read from the environment when None).

    The lifespan opens the store, starts the job dispatcher and loads the newest plan's lookup
    index in the background; errors become application/problem+json and every request passes
    the front guard (:class:`~gridplan.api.guard.GuardMiddleware`).
    """
    settings = settings or Settings.from_env()
    setup_logging(settings.log_level)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        hide_prefix(str(settings.data_path))
        hide_prefix(str(settings.data_path.resolve()))
        store = Store(settings)
        indexes = IndexRegistry(store, settings.index_cache)
        from gridplan.api.routes.tiles import warm_in_background

        def on_success(job_id: str) -> None:
            indexes.refresh_async()
            warm_in_background(app, job_id)    # the new live plan's first map does not wait for its tiles
        dispatcher = Dispatcher(settings, store, on_success=on_success)
        app.state.ctx = Context(settings, store, KeyCache(store.engine), indexes, dispatcher, metrics, time.time())
        dispatcher.start()
        indexes.refresh_async()  # load the newest plan's index in the background; lookups wait for it
        warm_in_background(app)
        log.info("server started", extra={"data_dir": str(settings.data_path), "db": settings.db_url.split("@")[-1]})
        try:
            yield
        finally:
            dispatcher.stop()

    app = FastAPI(
        title="gridplan", version="0.1.0", lifespan=lifespan,
        description="Grid-governance plans as a service: submit partition jobs, watch them run, fetch the "
                    "result layers, and look up which grid, worker and station serve a coordinate.",
        docs_url=None, redoc_url=None,
    )
    _docs_routes(app)

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
        return problem(500, "internal error: the server failed to answer; the operator can find it in the log")

    from gridplan.api.routes import cases, health, jobs, layers, lookup, ogc, plans, tiles
    app.include_router(lookup.router)   # first: the hot path is matched before every other route
    app.include_router(cases.router)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(layers.router)
    app.include_router(ogc.router)
    app.include_router(plans.router)
    app.include_router(tiles.router)
    try:
        from gridplan.api.routes import (
            map as map_routes,  # the report engineer's map page, when present
        )
        app.include_router(map_routes.router)
    except ImportError:
        pass
    app.add_middleware(GuardMiddleware, settings=settings, metrics=metrics)
    return app
