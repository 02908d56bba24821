"""Hostile uploads against a real server (issue "Hostile uploads"): what they cost the service, measured.

    python benchmarks/hostile_uploads.py                     # every part, the issue's sizes
    python benchmarks/hostile_uploads.py --body-mb 2 --bomb-mb 5 --lookup-seconds 3 --layer-households 20000
                                                             # a quick dry run

One ``python -m api.server`` on 127.0.0.1 (a fresh temporary data dir holding one succeeded synthetic
plan, ``GRIDPLAN_JOB_WORKERS=0`` so that an accepted upload is only queued, never planned); every
byte goes to loopback and every loop is bounded (sizes, counts, deadlines). Parts (``--parts``):

a  ``POST /v1/jobs`` with no key and with a reader key, a ``--body-mb`` multipart body streamed
   from a raw socket, once with Content-Length and once chunked: the status, the seconds to the
   first byte of the answer, and how many bytes the client had sent by then. Target: 401/403 in
   < 1 s having sent little of the body. Also a stalled upload (headers and 1 KB, then silence):
   when (within ``--stall-seconds``) the server answers or hangs up — the target is a 408.
b  a zip bomb — a ``households.zip`` (~146 KB) holding a >= ``--bomb-mb`` MB (50) CSV, 340:1 —
   submitted with a planner key: status (expect 413/422), seconds to the answer (target < 10 s),
   server RSS growth including its children (peak minus before, psutil, sampled every 50 ms;
   target < 300 MB).
c  ``GET /v1/lookup`` latency (p50/p99, req/s; wrk when installed, else an asyncio httpx client)
   for ``--lookup-seconds`` with no uploads, then the same with three clients re-submitting the zip
   bomb throughout, same run, same server. Target: p99 < 20 ms while uploads are checked.
d  ``GET /v1/jobs/{id}/layers/households`` of a ``--layer-households`` point layer (600k): seconds,
   bytes, server RSS growth (target < 200 MB).

Today's server misses several targets; the script reports what happens. Results:
benchmarks/results/hostile_uploads-*.json (``benchmarks/record.py``).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.record import record  # noqa: E402  (imported first: load average before)
from benchmarks.raw_upload import HOST, stalled_upload, streamed_upload  # noqa: E402
TARGETS = {"auth_answer_s": 1.0, "bomb_answer_s": 10.0, "bomb_rss_growth_mb": 300.0, "lookup_p99_ms": 20.0,
           "layer_rss_growth_mb": 200.0}


# --------------------------------------------------------------------------- server
class Server:
    """``python -m api.server`` on a free loopback port over ``data_dir``; stopped by ``stop()``."""

    def __init__(self, data_dir: Path, log: Path, env_extra: dict | None = None, timeout: float = 120.0):
        from tests.helpers.api import free_port, wait_healthy

        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT), GRIDPLAN_LOG_LEVEL="warning", GRIDPLAN_JOB_WORKERS="0")
        env.update(env_extra or {})
        self.log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "gridplan.api.server", "--host", HOST, "--port", str(self.port),
                                      "--data-dir", str(data_dir)], cwd=str(ROOT), env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            wait_healthy(self.port, self.proc, timeout=timeout)
        except (RuntimeError, TimeoutError):
            self.stop()
            raise
        self.url = f"http://{HOST}:{self.port}"

    def rss(self) -> int:
        """Resident bytes of the server and all its descendants now."""
        import psutil
        try:
            p = psutil.Process(self.proc.pid)
            procs = [p] + p.children(recursive=True)
        except psutil.Error:
            return 0
        total = 0
        for q in procs:
            try:
                total += q.memory_info().rss
            except psutil.Error:
                pass
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()    # our own child, by its pid
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class PeakRSS:
    """Samples ``server.rss()`` every ``interval`` s in a thread: ``before``, ``peak``, growth in MB.

    A safety net for a shared machine: past ``limit_gb`` the server (our own child) is stopped and
    the figures say so."""

    def __init__(self, server: Server, interval: float = 0.05, limit_gb: float = 8.0):
        self.server, self.interval, self.limit = server, interval, limit_gb * 2**30
        self.before = server.rss()
        self.peak = self.before
        self.aborted = False
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss())
            if self.peak > self.limit and not self.aborted:
                self.aborted = True
                self.server.proc.kill()
            self._stop.wait(self.interval)

    def stop(self) -> dict:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.server.rss())
        out = {"rss_before_mb": round(self.before / 2**20, 1), "rss_peak_mb": round(self.peak / 2**20, 1),
               "rss_growth_mb": round((self.peak - self.before) / 2**20, 1)}
        if self.aborted:
            out["aborted"] = f"server RSS passed {self.limit / 2**30:g} GB: server stopped"
        return out


# --------------------------------------------------------------------------- inputs
def tiny_boundaries() -> bytes:
    """The test suite's two villages (tests/helpers/api.py) as GeoJSON bytes."""
    from tests.helpers.api import write_inputs
    with tempfile.TemporaryDirectory() as d:
        paths = write_inputs(Path(d), n_households=10)
        return paths["boundaries"].read_bytes()


def zip_bomb(csv_mb: float) -> tuple[bytes, int, int]:
    """A households.zip whose households.csv is >= ``csv_mb`` MB of valid rows inside the tiny villages.

    Three points repeat, so deflate reaches ~340:1 (50 MB -> ~146 KB, the issue's 124 KB -> 51 MB
    had 411:1). Returns (zip bytes, CSV bytes, CSV rows)."""
    cycle = ["120.0123,30.0123,1\n", "120.0311,30.0101,2\n", "120.0211,30.0151,1\n"]
    block = ("".join(cycle) * 2000).encode()
    target = int(csv_mb * 1e6)
    buf = io.BytesIO()
    size = rows = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("households.csv", "w", force_zip64=True) as fh:
            head = b"lon,lat,households\n"
            fh.write(head)
            size += len(head)
            while size < target:
                fh.write(block)
                size += len(block)
                rows += 3 * 2000
    return buf.getvalue(), size, rows


# --------------------------------------------------------------------------- part a
def part_a(server: Server, keys: dict, body_mb: float, stall_s: float) -> dict:
    out = {"body_mb": body_mb, "cases": []}
    for who, key in (("no key", None), ("reader key", keys["reader"])):
        for chunked in (False, True):
            r = streamed_upload(server.port, key, int(body_mb * 1e6), chunked)
            r.update(case=f"{who}, {'chunked' if chunked else 'Content-Length'}")
            r["met"] = bool(r["status"] in (401, 403) and r["answer_s"] is not None
                            and r["answer_s"] < TARGETS["auth_answer_s"])
            out["cases"].append(r)
            print(f"  a) {r['case']:30s} status {r['status']} in {r['answer_s']} s, "
                  f"{r['body_bytes_sent_before_answer'] / 1e6:.1f} MB of {r['body_bytes'] / 1e6:.1f} MB sent",
                  flush=True)
    if stall_s > 0:
        out["stalled_no_key"] = stalled_upload(server.port, None, stall_s)
        out["stalled_planner_key"] = stalled_upload(server.port, keys["planner"], stall_s)
        print(f"  a) stalled upload: no key {out['stalled_no_key']}, planner key {out['stalled_planner_key']}",
              flush=True)
    return out


# --------------------------------------------------------------------------- part b
def submit_bomb(url: str, key: str, boundaries: bytes, bomb: bytes, timeout: float = 180.0) -> dict:
    import httpx

    files = {"boundaries": ("boundaries.geojson", boundaries, "application/geo+json"),
             "households": ("households.zip", bomb, "application/zip")}
    t0 = time.perf_counter()
    try:
        r = httpx.post(f"{url}/v1/jobs", files=files, data={"params": "{}"}, headers={"X-API-Key": key},
                       timeout=timeout)
    except httpx.HTTPError as e:
        return {"status": None, "seconds": round(time.perf_counter() - t0, 3), "error": type(e).__name__}
    secs = time.perf_counter() - t0
    res = {"status": r.status_code, "seconds": round(secs, 3), "answer_excerpt": r.text[:300]}
    if r.status_code == 202:   # accepted: cancel it so that nothing ever plans it
        try:
            jid = r.json()["id"]
            httpx.delete(f"{url}/v1/jobs/{jid}", headers={"X-API-Key": key}, timeout=30)
            res["job_cancelled"] = jid
        except (httpx.HTTPError, ValueError, KeyError):
            pass
    return res


def part_b(server: Server, keys: dict, boundaries: bytes, bomb: tuple[bytes, int, int]) -> dict:
    data, csv_bytes, rows = bomb
    mon = PeakRSS(server)
    r = submit_bomb(server.url, keys["planner"], boundaries, data)
    r.update(mon.stop())
    r.update(zip_bytes=len(data), csv_bytes=csv_bytes, csv_rows=rows, ratio=round(csv_bytes / len(data), 1))
    r["met"] = {"refused_4xx": r["status"] in (413, 422), "answer_lt_10s": r["seconds"] < TARGETS["bomb_answer_s"],
                "rss_growth_lt_300mb": r["rss_growth_mb"] < TARGETS["bomb_rss_growth_mb"]}
    print(f"  b) zip bomb {len(data) / 1e3:.0f} KB -> {csv_bytes / 1e6:.0f} MB: status {r['status']} in "
          f"{r['seconds']} s, server RSS +{r['rss_growth_mb']} MB", flush=True)
    return r


# --------------------------------------------------------------------------- part c
def lookup_load(server: Server, key: str, ext, seconds: float, conns: int, work: Path) -> dict:
    from benchmarks.http_lookup import httpx_run, wrk_run

    if shutil.which("wrk"):
        rps, p50, p99, bad = wrk_run(server.port, key, ext, int(seconds), conns, work / "lookup.lua")
        tool = "wrk"
    else:
        rps, p50, p99, bad = asyncio.run(httpx_run(server.port, key, ext, seconds, conns))
        tool = "httpx-asyncio"
    return {"tool": tool, "connections": conns, "seconds": seconds, "req_per_s": round(rps, 1),
            "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "non_2xx": bad}


def part_c(server: Server, keys: dict, ext, boundaries: bytes, bomb: bytes, seconds: float, conns: int,
           work: Path, uploaders: int = 3, max_uploads_each: int = 50) -> dict:
    quiet = lookup_load(server, keys["reader"], ext, seconds, conns, work)
    print(f"  c) lookups, no uploads:        p50 {quiet['p50_ms']} ms, p99 {quiet['p99_ms']} ms, "
          f"{quiet['req_per_s']:.0f} req/s", flush=True)
    stop = threading.Event()
    results: list[dict] = []
    lock = threading.Lock()

    def uploader():
        for _ in range(max_uploads_each):
            if stop.is_set():
                return
            r = submit_bomb(server.url, keys["planner"], boundaries, bomb)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=uploader, daemon=True) for _ in range(uploaders)]
    mon = PeakRSS(server)
    for t in threads:
        t.start()
    time.sleep(1.0)                    # the bodies are in; the server is checking them
    busy = lookup_load(server, keys["reader"], ext, seconds, conns, work)
    stop.set()
    for t in threads:
        t.join(timeout=240)
    rss = mon.stop()
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    print(f"  c) lookups, {uploaders} uploads checked: p50 {busy['p50_ms']} ms, p99 {busy['p99_ms']} ms, "
          f"{busy['req_per_s']:.0f} req/s; uploads {statuses}", flush=True)
    return {"no_uploads": quiet, "with_uploads": busy, "uploaders": uploaders, "uploads_finished": len(results),
            "upload_statuses": statuses, "upload_seconds": sorted(r["seconds"] for r in results),
            "uploads_still_running_at_end": sum(t.is_alive() for t in threads), "server_rss": rss,
            "p99_ratio": round(busy["p99_ms"] / quiet["p99_ms"], 2) if quiet["p99_ms"] else None,
            "met": busy["p99_ms"] < TARGETS["lookup_p99_ms"]}


# --------------------------------------------------------------------------- part d
def part_d(server: Server, keys: dict, job_id: str, n: int) -> dict:
    import httpx

    mon = PeakRSS(server)
    t0 = time.perf_counter()
    first, nbytes, status = None, 0, None
    try:
        with httpx.stream("GET", f"{server.url}/v1/jobs/{job_id}/layers/households",
                          headers={"X-API-Key": keys["reader"]}, timeout=300) as r:
            status = r.status_code
            for chunk in r.iter_raw(1 << 20):
                if first is None:
                    first = time.perf_counter() - t0
                nbytes += len(chunk)
    except httpx.HTTPError as e:
        status = f"error {type(e).__name__}"
    secs = time.perf_counter() - t0
    res = {"households": n, "status": status, "seconds": round(secs, 2),
           "first_byte_s": None if first is None else round(first, 3), "bytes": nbytes, **mon.stop()}
    res["met"] = res["rss_growth_mb"] < TARGETS["layer_rss_growth_mb"]
    print(f"  d) households layer, {n:,} points: status {status}, {secs:.1f} s, {nbytes / 1e6:.0f} MB, "
          f"server RSS +{res['rss_growth_mb']} MB", flush=True)
    return res


# --------------------------------------------------------------------------- main
def newest_job(data_dir: Path) -> str:
    from gridplan.api.settings import Settings
    from gridplan.api.store import Store
    jobs = Store(Settings(data_dir=str(data_dir))).list_jobs(None, 1, 0)
    return jobs[0]["id"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="abcd", help="which parts to run (letters a-d)")
    ap.add_argument("--body-mb", type=float, default=200.0, help="a: streamed body size")
    ap.add_argument("--stall-seconds", type=float, default=15.0, help="a: how long to wait on a stalled upload")
    ap.add_argument("--bomb-mb", type=float, default=50.0, help="b, c: decompressed CSV size")
    ap.add_argument("--grids", type=int, default=2000, help="c: grids of the synthetic plan looked up")
    ap.add_argument("--lookup-seconds", type=float, default=10.0, help="c: seconds per latency measure")
    ap.add_argument("--conns", type=int, default=8, help="c: concurrent lookup connections")
    ap.add_argument("--layer-households", type=int, default=600_000, help="d: points in the households layer")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dir (its path is printed)")
    a = ap.parse_args(argv)
    parts = set(a.parts.lower())

    from gridplan.api.auth import create_key
    from benchmarks.http_lookup import make_data_dir

    tmp = Path(tempfile.mkdtemp(prefix="gridplan-hostile-"))
    server = None
    figures: dict = {"targets": TARGETS, "parts": "".join(sorted(parts))}
    try:
        data = tmp / "data"
        t = time.perf_counter()
        reader, ext = make_data_dir(data, a.grids, households=a.layer_households if "d" in parts else 0)
        keys = {"reader": reader, "planner": create_key("planner", str(data))}
        job_id = newest_job(data)
        figures["setup_s"] = round(time.perf_counter() - t, 1)
        boundaries = tiny_boundaries()
        bomb = zip_bomb(a.bomb_mb) if parts & {"b", "c"} else None
        try:
            server = Server(data, tmp / "server.log")
            figures["job_runner"] = "none (GRIDPLAN_JOB_WORKERS=0: accepted uploads stay queued, then cancelled)"
        except RuntimeError:           # a server that refuses 0 job workers: a stand-in runner that plans nothing
            server = Server(data, tmp / "server.log", {"GRIDPLAN_JOB_WORKERS": "1",
                                                       "GRIDPLAN_RUNNER": "tests.helpers.api:fake_runner"})
            figures["job_runner"] = "tests.helpers.api:fake_runner (the server refused GRIDPLAN_JOB_WORKERS=0)"
        import httpx
        t0 = time.perf_counter()   # the first lookup waits for the index to load
        while httpx.get(f"{server.url}/v1/lookup", params={"lon": (ext[0] + ext[2]) / 2, "lat": (ext[1] + ext[3]) / 2},
                        headers={"X-API-Key": reader}, timeout=120).status_code != 200:
            if time.perf_counter() - t0 > 120:
                raise TimeoutError("the lookup index did not load in 120 s")
            time.sleep(0.2)
        figures["server_rss_idle_mb"] = round(server.rss() / 2**20, 1)
        print(f"# server on {server.url}, data {data}, plan {a.grids} grids; idle RSS "
              f"{figures['server_rss_idle_mb']} MB", flush=True)
        if "a" in parts:
            figures["a_auth_before_body"] = part_a(server, keys, a.body_mb, a.stall_seconds)
        if "b" in parts:
            figures["b_zip_bomb"] = part_b(server, keys, boundaries, bomb)
        if "c" in parts:
            figures["c_lookup_under_uploads"] = part_c(server, keys, ext, boundaries, bomb[0], a.lookup_seconds,
                                                       a.conns, tmp)
        if "d" in parts:
            figures["d_layer_stream"] = part_d(server, keys, job_id, a.layer_households)
        figures["server_alive_at_end"] = server.proc.poll() is None
    finally:
        if server is not None:
            server.stop()
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    record("hostile_uploads", figures,
           notes=["targets (issue 'Hostile uploads'): 401/403 in < 1 s without reading the body; zip bomb refused "
                  "in < 10 s with server RSS growth < 300 MB; lookup p99 < 20 ms while three uploads are "
                  "checked; 600k-household layer with RSS growth < 200 MB",
                  "server RSS = the server process and all its descendants (psutil), peak minus before"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
