"""Hostile clients at the HTTP front: pay before you upload (401/403 before the body is read),
upload timeouts (408), 413 for chunked bodies, queue caps (429 + Retry-After), the upload check out
of the serving process under limits (413 naming the limit), a garbage network file (422 naming it),
no server paths or class names in errors, /docs and /redoc with no outside URL, /metrics behind a key.
"""
from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gridplan.api.app import create_app
from gridplan.api.auth import create_key
from gridplan.api.settings import Settings
from tests.helpers.api import free_port, write_inputs

RUNNER = "tests.helpers.api:fake_runner"
CAP = 2 * 1024 * 1024
PBF = Path(__import__("pyrosm").__file__).parent / "data" / "test.osm.pbf"
BOUNDARY = "gp-test-boundary"


def _settings(d: Path, **kw) -> Settings:
    base = {"data_dir": str(d / "data"), "runner": RUNNER, "poll_interval_s": 0.05, "max_upload_bytes": CAP,
            "upload_idle_timeout_s": 1.0, "job_workers": 0}
    base.update(kw)
    return Settings(**base)


def _keys(s: Settings) -> dict:
    return {"planner": create_key("planner", s.data_dir), "reader": create_key("reader", s.data_dir),
            "planner2": create_key("planner", s.data_dir), "planner3": create_key("planner", s.data_dir)}


@contextlib.contextmanager
def _server(s: Settings):
    """A real uvicorn server (h11 or httptools, as ``gridplan serve`` picks) on an ephemeral port."""
    import uvicorn

    from gridplan.api.server import _loop_and_http

    port = free_port()
    _, http = _loop_and_http()
    srv = uvicorn.Server(uvicorn.Config(create_app(s), host="127.0.0.1", port=port, http=http, log_level="warning",
                                        access_log=False))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    t0 = time.monotonic()
    while not srv.started:
        assert t.is_alive() and time.monotonic() - t0 < 30, "the server did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        srv.should_exit = True
        t.join(30)


def _head(port: int, key: str | None, length: int | None = None, chunked: bool = False) -> bytes:
    lines = ["POST /v1/jobs HTTP/1.1", f"Host: 127.0.0.1:{port}",
             f"Content-Type: multipart/form-data; boundary={BOUNDARY}"]
    if key is not None:
        lines.append(f"X-API-Key: {key}")
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _part_start() -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"households\"; filename=\"h.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\nid,lon,lat\r\n").encode()


def _read_response(sock: socket.socket, timeout: float = 30.0) -> tuple[int, dict, bytes]:
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = sock.recv(65536)
        assert got, f"the connection closed without an answer: {buf!r}"
        buf += got
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        got = sock.recv(65536)
        if not got:
            break
        body += got
    return status, headers, body[:n]


def _assert_problem(status: int, headers: dict, body: bytes, want: int) -> dict:
    assert status == want, body
    assert headers["content-type"].startswith("application/problem+json")
    doc = json.loads(body)
    assert doc["status"] == want and {"type", "title", "detail"} <= set(doc)
    return doc


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    d = tmp_path_factory.mktemp("guard_live")
    s = _settings(d)
    keys = _keys(s)
    with _server(s) as port:
        yield port, keys


# ---------------------------------------------------------------------------------- pay before you upload
@pytest.mark.parametrize("who,want", [(None, 401), ("gp_nope_nope", 401), ("reader", 403)])
def test_no_unknown_or_reader_key_is_refused_before_the_body(live, who, want):
    """The client declares 1.5 MB, sends 64 KB and waits: the answer comes without the rest."""
    port, keys = live
    key = keys.get(who, who)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_head(port, key, length=CAP - 512 * 1024))
        sock.sendall(_part_start() + b"1,120.01,30.01\r\n" * (65536 // 16))
        status, headers, body = _read_response(sock)
    doc = _assert_problem(status, headers, body, want)
    assert ("planner" in doc["detail"]) if want == 403 else ("key" in doc["detail"])


def test_no_key_pulls_at_most_a_megabyte_from_receive(tmp_path):
    """ASGI level: count the body bytes the app pulls from ``receive`` for a 64 MB upload."""
    s = _settings(tmp_path, max_upload_bytes=512 * 1024 * 1024)
    keys = _keys(s)
    app = create_app(s)
    with TestClient(app) as c:
        for key, want in [(None, 401), ("gp_nope_nope", 401), (keys["reader"], 403)]:
            pulled, sent = [0], []

            async def receive(pulled=pulled):
                pulled[0] += 65536
                return {"type": "http.request", "body": b"x" * 65536, "more_body": pulled[0] < 64 * 1024 * 1024}

            async def send(msg, sent=sent):
                sent.append(msg)

            headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
                       (b"content-length", str(64 * 1024 * 1024).encode())]
            if key:
                headers.append((b"x-api-key", key.encode()))
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": "/v1/jobs", "raw_path": b"/v1/jobs", "query_string": b"",
                     "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
            c.portal.call(app, scope, receive, send)
            assert sent[0]["status"] == want
            assert pulled[0] <= 1024 * 1024


def test_a_stalled_upload_is_408(live):
    port, keys = live
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_head(port, keys["planner"], length=1024 * 1024))
        sock.sendall(_part_start() + b"1,120.01,30.01\r\n" * 100)  # then nothing more
        status, headers, body = _read_response(sock)
    doc = _assert_problem(status, headers, body, 408)
    assert "upload_idle_timeout_s" in doc["detail"]


def test_a_chunked_upload_over_the_cap_is_413(live):
    port, keys = live
    chunk = b"1,120.01,30.01\r\n" * 4096  # 64 KB
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_head(port, keys["planner"], chunked=True))
        first = _part_start()
        sock.sendall(b"%x\r\n%s\r\n" % (len(first), first))
        for _ in range(CAP // len(chunk) + 1):  # the last chunk crosses the cap
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")
        status, headers, body = _read_response(sock)
    doc = _assert_problem(status, headers, body, 413)
    assert str(CAP) in doc["detail"] and "max_upload_bytes" in doc["detail"]


# ---------------------------------------------------------------------------------- in-process client tests
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("guard")
    s = _settings(d, max_upload_bytes=8 * 1024 * 1024)
    keys = _keys(s)
    inputs = write_inputs(d / "in")
    with TestClient(create_app(s)) as c:
        yield c, keys, inputs, d


def _files(inputs, **extra):
    files = {r: (p.name, p.read_bytes()) for r, p in inputs.items()}
    files.update(extra)
    return files


def _post(c, keys, who, files, params=None):
    return c.post("/v1/jobs", files=files, data={"params": json.dumps(params or {})},
                  headers={"X-API-Key": keys[who]})


def test_a_garbage_network_file_is_422_naming_it(env):
    c, keys, inputs, _ = env
    r = _post(c, keys, "planner3", _files(inputs, network=("roads.osm.pbf", b"this is no pbf" * 100)))
    assert r.status_code == 422, r.text
    assert any(e["source"] == "roads.osm.pbf" and "network" in e["problem"] for e in r.json()["errors"])
    r = _post(c, keys, "planner3", _files(inputs, network=("roads.osm.pbf", b"\x00\x00\x00\x0d\x0a\x09OSMData" + b"\0" * 64)))
    assert r.status_code == 422, r.text
    from gridplan.geo.formats import check_network
    assert check_network(PBF) == []


def test_a_file_over_a_read_limit_is_413_naming_the_limit(tmp_path):
    # the service's read_* settings reach the submit-time check: 30 households over read_max_rows = 10
    s = _settings(tmp_path, read_max_rows=10)
    keys = _keys(s)
    inputs = write_inputs(tmp_path / "in")
    rows = "lon,lat\n" + "".join(f"116.{i:03d},39.001\n" for i in range(30))
    with TestClient(create_app(s)) as c:
        files = _files(inputs, households=("homes.csv", rows.encode(), "text/csv"))
        r = c.post("/v1/jobs", files=files, headers={"X-API-Key": keys["planner"]})
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["type"].endswith("too-large") and any("max_rows" in e["problem"] and e["source"] == "homes.csv"
                                                      for e in body["errors"])


def test_a_real_pbf_network_is_accepted_and_queue_caps_are_429(env, tmp_path):
    _, _, inputs, _ = env
    s = _settings(tmp_path, max_upload_bytes=8 * 1024 * 1024, max_queued_jobs=3, max_queued_jobs_per_key=2,
                  queue_retry_after_s=7)  # job_workers=0: nothing leaves the queue
    keys = _keys(s)
    with TestClient(create_app(s)) as c:
        r = _post(c, keys, "planner", _files(inputs, network=("roads.osm.pbf", PBF.read_bytes())))
        assert r.status_code == 202, r.text
        assert _post(c, keys, "planner", _files(inputs)).status_code == 202
        r = _post(c, keys, "planner", _files(inputs))  # this key's share (2) is full
        assert r.status_code == 429 and r.headers["retry-after"] == "7", r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "max_queued_jobs_per_key" in r.json()["detail"]
        assert _post(c, keys, "planner2", _files(inputs)).status_code == 202
        r = _post(c, keys, "planner2", _files(inputs))  # the whole queue (3) is full
        assert r.status_code == 429 and r.headers["retry-after"] == "7", r.text
        assert "max_queued_jobs " in r.json()["detail"]
        assert c.get("/v1/jobs?status=queued", headers={"X-API-Key": keys["reader"]}).json()["total"] == 3


def _zip(members: dict) -> bytes:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


LEAKS = re.compile(r"/vsi|/tmp/|/work/|jobs/[0-9a-f]{16}|input/|\b\w+(?:Error|Exception)\b|CPLE_|ERROR \d")


@pytest.mark.parametrize("files", [
    {"boundaries": ("b.zip", b"PK\x03\x04 truncated zip")},
    {"boundaries": ("../../etc/b.zip", _zip({"readme.txt": b"no layer here"}))},
    {"boundaries": ("b.gpkg", b"SQLite for")},
    {"households": ("/etc/passwd.parquet", b"PAR1" + b"\0" * 100 + b"PAR1")},
    {"facilities": ("f.geojson", b"null")},
    {"boundaries": ("noext", b"\x00\x01\x02")},
])
def test_errors_never_show_server_paths_or_class_names(env, files):
    c, keys, inputs, d = env
    r = _post(c, keys, "planner3", _files(inputs, **files), {"coords": "wgs84"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    text = r.text
    assert str(d) not in text and not LEAKS.search(text), text
    body = r.json()
    assert body["errors"] and all(e["problem"] for e in body["errors"])
    (role, (given, _)), = files.items()
    assert any(e["source"] == Path(given).name for e in body["errors"]), body  # the client's name for its file
    saved = {"b.zip": "boundaries.zip", "b.gpkg": "boundaries.gpkg", "f.geojson": "facilities.geojson",
             "noext": "boundaries.bin"}.get(Path(given).name, role + Path(given).suffix)
    assert saved not in text  # not our name for the saved copy
    assert "DRIVER" not in text  # nor GDAL's advice on opening files by driver prefix


def test_scrub_removes_paths_class_names_and_gdal_prefixes():
    from gridplan.api.problems import scrub
    for raw, gone, kept in [
        ("'/vsizip//srv/data/jobs/0123456789abcdef/input/boundaries.zip/a.shp' not recognized", "/vsizip", "a.shp"),
        ("DataSourceError: /srv/gp/jobs/x/input/households.csv: No such file", "DataSourceError", "households.csv"),
        ("pyogrio.errors.DataLayerError: bad", "pyogrio", "bad"),
        ("TopologyException: Input geom 1 is invalid", "TopologyException", "Input geom 1 is invalid"),
        ("ERROR 1: CPLE_AppDefined in OGR_G_CreateFromWkb: corrupt", "CPLE", "corrupt"),
        ("see /vsicurl/http://evil.example/x.csv", "evil.example", "x.csv"),
    ]:
        out = scrub(raw)
        assert gone not in out and kept in out, out
    assert scrub("coords must be one of wgs84/gcj02/bd09") == "coords must be one of wgs84/gcj02/bd09"


def test_the_upload_check_runs_under_a_memory_limit_named_in_the_413(env, tmp_path):
    _, _, inputs, _ = env
    s = _settings(tmp_path, submit_check_memory_mb=64)
    keys = _keys(s)
    with TestClient(create_app(s)) as c:
        r = _post(c, keys, "planner", _files(inputs))
        assert r.status_code == 413, r.text
        assert "submit_check_memory_mb" in r.json()["detail"] and "64 MB" in r.json()["detail"]
        assert c.get("/v1/jobs", headers={"X-API-Key": keys["reader"]}).json()["total"] == 0


# ---------------------------------------------------------------------------------- docs and metrics
def test_docs_and_redoc_load_nothing_from_another_origin(env):
    c, _, _, _ = env
    for page in ("/docs", "/redoc"):
        r = c.get(page)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        urls = re.findall(r"https?://[^\s\"'<>)]+", r.text)
        assert not urls, (page, urls)
        for src in re.findall(r"(?:src|href)=\"([^\"]+)\"", r.text):
            assert src.startswith("/"), src
            assert c.get(src).status_code == 200, src
    assert c.get("/openapi.json").status_code == 200


def test_metrics_needs_a_key_unless_opened(env, tmp_path):
    c, keys, _, _ = env
    r = c.get("/metrics")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    assert c.get("/metrics", headers={"X-API-Key": "gp_nope_nope"}).status_code == 401
    r = c.get("/metrics", headers={"X-API-Key": keys["reader"]})
    assert r.status_code == 200 and "gridplan_http_requests_total" in r.text
    with TestClient(create_app(_settings(tmp_path, metrics_public=True))) as c2:
        assert c2.get("/metrics").status_code == 200


def test_upload_checks_run_one_at_a_time_and_the_server_keeps_answering(env, tmp_path, monkeypatch):
    """With ``submit_check_concurrency=1`` a second and third upload wait for the first check, and
    the server answers other requests meanwhile (the check runs off the event loop)."""
    import gridplan.api.submitcheck as sc

    _, _, inputs, _ = env
    s = _settings(tmp_path, max_upload_bytes=8 * 1024 * 1024, submit_check_concurrency=1)
    keys = _keys(s)
    gate, lock = threading.Event(), threading.Lock()
    seen = {"active": 0, "most": 0, "arrived": 0}
    real_sem = sc._semaphore

    def counting_sem(settings):
        with lock:
            seen["arrived"] += 1
        return real_sem(settings)

    def held_child(req, settings):
        with lock:
            seen["active"] += 1
            seen["most"] = max(seen["most"], seen["active"])
        gate.wait(30)
        with lock:
            seen["active"] -= 1
        return {"items": []}, 0, False

    monkeypatch.setattr(sc, "_semaphore", counting_sem)
    monkeypatch.setattr(sc, "_run_child", held_child)
    with TestClient(create_app(s)) as c:
        codes = []
        threads = [threading.Thread(target=lambda: codes.append(_post(c, keys, "planner", _files(inputs)).status_code))
                   for _ in range(3)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        while (seen["arrived"] < 3 or seen["active"] < 1) and time.monotonic() - t0 < 30:
            time.sleep(0.02)
        assert seen["arrived"] == 3 and seen["active"] == 1
        assert c.get("/health").status_code == 200  # answered while a check is running
        assert seen["most"] == 1
        gate.set()
        for t in threads:
            t.join(30)
    assert codes == [202, 202, 202] and seen["most"] == 1


@pytest.mark.browser
def test_docs_render_in_a_browser_from_the_vendored_assets(tmp_path):
    """Swagger UI and ReDoc render under their Content-Security-Policy; the only outside URL either
    page tries (ReDoc's footer logo, hard-wired in its bundle) is blocked by the browser."""
    chromium = Path(__import__("os").environ.get("GRIDPLAN_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.exists():
        pytest.skip(f"{chromium} not found")
    sync_api = pytest.importorskip("playwright.sync_api")
    with _server(_settings(tmp_path)) as port, sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(chromium), args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = b.new_page()
            outside, answered = [], []
            page.on("request", lambda r: outside.append(r.url)
                    if not r.url.startswith((f"http://127.0.0.1:{port}/", "data:", "blob:")) else None)
            page.on("response", lambda r: answered.append(r.url))
            for path, sel in (("/docs", ".opblock"), ("/redoc", "[data-section-id]")):
                page.goto(f"http://127.0.0.1:{port}{path}")
                page.wait_for_selector(sel, timeout=30000)
                assert page.locator(sel).count() > 3
        finally:
            b.close()
    assert set(outside) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}, outside
    assert not set(outside) & set(answered)  # blocked, never fetched


@pytest.mark.parametrize("params", [{"coords": "/vsizip//etc/passwd"}, {"mode": "/etc/shadow"},
                                    {"code_field": "/vsicurl/http://127.0.0.1:9/x"}])
def test_hostile_params_are_422_without_paths(env, params):
    c, keys, inputs, d = env
    r = _post(c, keys, "planner3", _files(inputs), params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert str(d) not in r.text and not LEAKS.search(r.text) and "/etc/" not in r.text, r.text
