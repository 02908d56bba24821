"""The front guard: one pure-ASGI middleware between the server and the routes.

For every request it caps the body (413), times requests out (504), counts them for ``/metrics``
and writes one JSON log line (lookups and probes only when they fail or are slow). For an upload
(``POST /v1/jobs``) it also makes the client pay before it uploads:

- the ``X-API-Key`` header is checked *before any body is read*: no or an unknown key → 401, a
  reader key → 403 (the same problem+json as the route dependencies give);
- a declared ``Content-Length`` over the cap → 413, and the queue caps → 429 with ``Retry-After``,
  also before the body;
- while the body streams, bytes are counted as they arrive, so a chunked body over the cap is a
  413 too; a body that stalls for ``upload_idle_timeout_s`` or takes longer than
  ``upload_timeout_s`` in all → 408.

A cases file sent as multipart to ``POST /v1/cases/route`` is streamed like an upload too (the
upload cap and read timeouts; no queue check: routing is a reader's request).

A limit hit while the route is reading the body replaces whatever the route answers (the form
parser turns any receive error into a 400), and the connection is closed after it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time

from anyio import to_thread

from gridplan.api.auth import check_key
from gridplan.api.problems import ProblemError, problem_body
from gridplan.api.quota import check_queue
from gridplan.api.settings import Settings

log = logging.getLogger("gridplan.http")

_ROUTE_RX = [(re.compile(r"^/v1/jobs/[^/]+/layers/[^/]+$"), "/v1/jobs/{id}/layers/{layer}"),
             (re.compile(r"^/v1/jobs/[^/]+/download$"), "/v1/jobs/{id}/download"),
             (re.compile(r"^/v1/jobs/[^/]+$"), "/v1/jobs/{id}")]
_KNOWN = {"/health", "/metrics", "/v1/jobs", "/v1/lookup", "/v1/cases/route", "/openapi.json", "/docs", "/redoc", "/"}
_QUIET = {"/v1/lookup", "/health", "/metrics"}


def route_of(path: str) -> str:
    """Return the route template of ``path`` (for metrics labels), "other" when it is none of ours."""
    if path in _KNOWN:
        return path
    for rx, name in _ROUTE_RX:
        if rx.match(path):
            return name
    return "other"


class _BodyLimit(Exception):
    """A limit hit while the body was read; the middleware answers with its status."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def _header(scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None


class GuardMiddleware:
    """Guard every HTTP request as plain ASGI middleware.

    Pay-before-upload auth, body caps and read timeouts, request timeouts, metrics and access
    logs (no per-request task unless a timeout applies).
    """

    def __init__(self, app, settings: Settings, metrics):
        self.app, self.s, self.m = app, settings, metrics

    async def __call__(self, scope, receive, send):
        """Serve one ASGI request through the guard (other scope types pass straight through)."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        path, method = scope["path"], scope["method"]
        route = route_of(path)
        state = {"status": 500, "started": False, "limit": None, "replaced": False}

        async def send_w(msg):
            if state["replaced"]:
                return
            if msg["type"] == "http.response.start":
                if state["limit"] is not None:  # the route answered a body we refused: ours wins
                    state["replaced"] = True
                    await reply(state["limit"].status, state["limit"].detail)
                    return
                state["status"] = msg["status"]
                state["started"] = True
            await send(msg)

        async def reply(status: int, detail: str, headers: dict | None = None, kind: str | None = None):
            body = json.dumps(problem_body(status, detail, kind=kind)).encode()
            hs = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()),
                  (b"connection", b"close")]
            hs += [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in (headers or {}).items()]
            state["status"], state["started"] = status, True
            await send({"type": "http.response.start", "status": status, "headers": hs})
            await send({"type": "http.response.body", "body": body})

        try:
            await self._guarded(scope, receive, send_w, reply, state, route)
        finally:
            self._record(method, path, route, state["status"], time.perf_counter() - t0)

    async def _guarded(self, scope, receive, send_w, reply, state: dict, route: str) -> None:
        """Run the app behind the upload checks, the body cap and the request timeout."""
        method = scope["method"]
        upload = method == "POST" and route == "/v1/jobs"
        # a cases file (multipart) streams like an upload: its cap and read timeouts, no queue check
        stream = upload or (method == "POST" and route == "/v1/cases/route"
                            and (_header(scope, b"content-type") or "").startswith("multipart/"))
        if upload:
            refusal = await self._before_upload(scope)
            if refusal is not None:
                await reply(refusal.status, refusal.detail, refusal.headers, refusal.kind)
                return
        inner_receive = receive
        if method in ("POST", "PUT", "PATCH"):
            cap = self.s.max_upload_bytes if stream else self.s.max_json_bytes
            columnar = route == "/v1/lookup" and _is_columnar(_header(scope, b"content-type"))
            if columnar:   # Arrow / Parquet / CSV lookup batches have their own cap
                cap = self.s.max_columnar_bytes
            clen = _header(scope, b"content-length")
            if clen is not None and (not clen.isdigit() or int(clen) > cap):
                await reply(413, _too_big(cap, stream, columnar))
                return
            inner_receive = self._counting_receive(receive, state, cap, stream, columnar)
        timeout = None if (stream or route == "/v1/jobs/{id}/download") else self.s.request_timeout_s
        try:
            if timeout:
                await asyncio.wait_for(self.app(scope, inner_receive, send_w), timeout)
            else:
                await self.app(scope, inner_receive, send_w)
        except _BodyLimit:
            pass
        except TimeoutError:
            if not state["started"]:
                await reply(504, f"the request took longer than {self.s.request_timeout_s:g} s")
        if state["limit"] is not None and not state["started"]:
            await reply(state["limit"].status, state["limit"].detail)

    def _record(self, method: str, path: str, route: str, status: int, dt: float) -> None:
        """Count the request for ``/metrics`` and log it (quiet routes only when failed or slow)."""
        self.m.observe(method, route, status, dt)
        if route not in _QUIET or status >= 400 or dt > 0.5:
            log.info("request", extra={"method": method, "path": path, "status": status, "ms": round(dt * 1e3, 2)})

    async def _before_upload(self, scope) -> ProblemError | None:
        """Check an upload's key and the queue caps from its headers alone (None: go on)."""
        ctx = getattr(getattr(scope.get("app"), "state", None), "ctx", None)
        if ctx is None:  # not started (no lifespan): the route dependencies will answer
            return None
        key = _header(scope, b"x-api-key")
        try:
            await to_thread.run_sync(check_key, ctx.keys, key, "planner")
            await to_thread.run_sync(check_queue, ctx.store.engine, self.s, key)
        except ProblemError as e:
            return e
        return None

    def _counting_receive(self, receive, state: dict, cap: int, upload: bool, columnar: bool = False):
        """Wrap ``receive`` to count body bytes against ``cap``.

        For uploads it also applies the idle and total read timeouts; once the body is complete
        it is ``receive`` itself (waiting for a disconnect must not time out).
        """
        seen, done = 0, False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.s.upload_timeout_s
        idle = self.s.upload_idle_timeout_s

        def fail(status: int, detail: str):
            state["limit"] = _BodyLimit(status, detail)
            raise state["limit"]

        async def receive_w():
            nonlocal seen, done
            if done or not upload:
                msg = await receive()
            else:
                wait = min(idle, deadline - loop.time())
                try:
                    msg = await asyncio.wait_for(receive(), max(wait, 0.0))
                except TimeoutError:
                    if wait < idle:
                        fail(408, f"the upload took longer than the limit of {self.s.upload_timeout_s:g} s "
                                  "(upload_timeout_s)")
                    fail(408, f"the upload stalled: nothing arrived for {idle:g} s (upload_idle_timeout_s)")
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > cap:
                    fail(413, _too_big(cap, upload, columnar))
                if not msg.get("more_body", False):
                    done = True
            return msg

        return receive_w


def _is_columnar(content_type: str | None) -> bool:
    """Tell whether a lookup body is columnar (Arrow IPC, Parquet or CSV: ``api.columnar``)."""
    from gridplan.api.columnar import request_kind
    return request_kind(content_type) in ("arrow", "parquet", "csv")


def _too_big(cap: int, upload: bool, columnar: bool = False) -> str:
    setting = "max_upload_bytes" if upload else "max_columnar_bytes" if columnar else "max_json_bytes"
    return f"the request body is larger than the limit of {cap} bytes ({setting})"
