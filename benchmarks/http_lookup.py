"""HTTP lookup speed against a real server process (one uvicorn process, loopback).

Builds a synthetic 20,000-grid plan as a succeeded job in a temporary data dir, starts
``python -m api.server`` on a free port, then measures:
  * single GET /v1/lookup at random points with 8 concurrent connections — wrk (Debian package)
    when installed, else an asyncio httpx load generator — requests/s and p50/p99 latency;
    baseline in the same run: GET /health (the framework's floor on this machine);
  * one POST /v1/lookup with 100,000 points — seconds end to end (request + JSON both ways).
Targets: >= 1,500 req/s with p99 < 20 ms; the 100,000-point batch < 1 s.
Same load tool, connections and duration for /health and /v1/lookup, in the same run.
Results: benchmarks/results/http_lookup-*.json (``benchmarks/record.py``).

    python benchmarks/http_lookup.py [--grids 20000] [--seconds 10]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.record import record  # noqa: E402

LUA = """
math.randomseed(%(seed)d)
request = function()
  local lon = %(x0)f + math.random() * %(w)f
  local lat = %(y0)f + math.random() * %(h)f
  return wrk.format("GET", string.format("/v1/lookup?lon=%%.6f&lat=%%.6f", lon, lat), {["X-API-Key"] = "%(key)s"})
end
"""


def make_data_dir(d: Path, n_grids: int, households: int = 0):
    """A data dir holding one succeeded job: a synthetic ``n_grids`` plan (grids, stations and, when
    ``households`` > 0, a households layer of that many random points). Returns (reader key, extent)."""
    import geopandas as gpd

    from gridplan.api.auth import create_key
    from gridplan.api.settings import Settings
    from gridplan.api.store import Store
    from benchmarks.lookup_speed import synthetic_plan
    from gridplan.geo.output import write_plan_dir

    grids, stations, ext = synthetic_plan(n_grids)
    layers = {"grids": grids, "stations": stations}
    if households:
        rng = np.random.default_rng(3)
        xy = rng.uniform(ext[:2], ext[2:], (households, 2))
        layers["households"] = gpd.GeoDataFrame(
            {"id": [f"H{i:07d}" for i in range(households)],
             "grid_code": grids["grid_code"].to_numpy()[rng.integers(0, len(grids), households)],
             "station_id": stations["station_id"].to_numpy()[rng.integers(0, len(stations), households)],
             "minutes": rng.uniform(0, 40, households).round(2)},
            geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=4326)
    s = Settings(data_dir=str(d))
    st = Store(s)
    jid = st.new_id()
    st.create_job(jid, {}, {})
    summary = {"grids": len(grids), "coverage": {"minutes": 20, "mode": "walk", "speed_kmh": 4.0, "share": 0.9}}
    write_plan_dir(st.out_dir(jid), layers, summary, report=False)
    st.claim_next("bench")
    st.finish(jid, "succeeded", summary=summary)
    return create_key("reader", str(d)), ext


def wrk_run(port, key, ext, seconds, conns, path_lua: Path, url_path="/v1/lookup"):
    x0, y0, x1, y1 = ext
    path_lua.write_text(LUA % dict(seed=1, x0=x0, y0=y0, w=x1 - x0, h=y1 - y0, key=key))
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency"]
    if url_path == "/v1/lookup":
        cmd += ["-s", str(path_lua)]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}{url_path}"], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v, u = float(m.group(1)), m.group(2)
        return v / 1000 if u == "us" else v * 1000 if u == "s" else v
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, pct(50), pct(99), int(non2xx.group(1)) if non2xx else 0


async def httpx_run(port, key, ext, seconds, conns, url_path="/v1/lookup"):
    import httpx

    rng = np.random.default_rng(1)
    lat_ms, bad = [], 0
    deadline = time.perf_counter() + seconds

    async def client():
        nonlocal bad
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}) as c:
            while time.perf_counter() < deadline:
                x, y = rng.uniform(ext[0], ext[2]), rng.uniform(ext[1], ext[3])
                t0 = time.perf_counter()
                r = await c.get(url_path, params={"lon": x, "lat": y} if url_path == "/v1/lookup" else None)
                lat_ms.append((time.perf_counter() - t0) * 1e3)
                bad += r.status_code >= 300
    t0 = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(conns)])
    el = time.perf_counter() - t0
    a = np.array(lat_ms)
    return len(a) / el, float(np.percentile(a, 50)), float(np.percentile(a, 99)), bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grids", type=int, default=20000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--batch", type=int, default=100_000)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gridplan-bench-"))
    try:
        key, ext = make_data_dir(tmp / "data", a.grids)
        with running_server(tmp / "data", key, ext) as port:
            figures = measure_http(a, port, key, ext, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record("http_lookup", figures, notes="targets: >= 1,500 req/s with p99 < 20 ms; 100,000-point POST < 1 s; "
                                         "the load generator shares the machine's cores with the server")


@contextmanager
def running_server(data_dir: Path, key: str, ext, workers: int | None = None):
    """Start ``python -m gridplan.api.server`` on ``data_dir``, wait until its index answers; yield the port."""
    import httpx

    from tests.helpers.api import free_port, wait_healthy

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRIDPLAN_LOG_LEVEL="warning")
    proc = subprocess.Popen([sys.executable, "-m", "gridplan.api.server", "--port", str(port), "--data-dir",
                             str(data_dir)], cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_healthy(port, proc, timeout=120)
        t0 = time.perf_counter()
        while httpx.get(f"http://127.0.0.1:{port}/v1/lookup", params={"lon": (ext[0] + ext[2]) / 2,
                        "lat": (ext[1] + ext[3]) / 2}, headers={"X-API-Key": key},
                        timeout=120).status_code != 200:   # the first answer waits for the index build
            if time.perf_counter() - t0 > 120:
                raise TimeoutError("index did not load")
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure_http(a, port: int, key: str, ext, tmp: Path) -> dict:
    """The single-GET load runs (/health, then /v1/lookup) and the JSON batch, against the server on ``port``."""
    import httpx

    tool = "wrk" if shutil.which("wrk") else "httpx-asyncio"
    print(f"# {a.grids} grids, one server process (uvicorn), {a.conns} connections, {a.seconds} s each, load by {tool}")
    print(f"{'endpoint':40s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>8s}")
    figures = {"grids": a.grids, "connections": a.conns, "seconds": a.seconds, "tool": tool, "endpoints": []}
    for name, path in (("GET /health (framework floor)", "/health"), ("GET /v1/lookup (random points)", "/v1/lookup")):
        if tool == "wrk":
            r = wrk_run(port, key, ext, a.seconds, a.conns, tmp / "lookup.lua", path)
        else:
            r = asyncio.run(httpx_run(port, key, ext, a.seconds, a.conns, path))
        print(f"{name:40s} {r[0]:9,.0f} {r[1]:8.2f} {r[2]:8.2f} {r[3]:8d}")
        figures["endpoints"].append({"endpoint": name, "req_per_s": round(r[0], 1), "p50_ms": round(r[1], 3),
                                     "p99_ms": round(r[2], 3), "non_2xx": r[3]})
    h, lk = figures["endpoints"]
    figures["lookup_share_of_health"] = round(lk["req_per_s"] / h["req_per_s"], 3) if h["req_per_s"] else None
    print(f"GET /v1/lookup at {figures['lookup_share_of_health']:.0%} of the /health rate "
          "(target >= 45% with p99 < 10 ms)")
    rng = np.random.default_rng(2)
    pts = np.column_stack([rng.uniform(ext[0], ext[2], a.batch), rng.uniform(ext[1], ext[3], a.batch)]).tolist()
    import json
    body = json.dumps({"points": pts})
    times, parse = [], []
    import orjson
    with httpx.Client(headers={"X-API-Key": key, "content-type": "application/json"}, timeout=60) as c:
        for _ in range(3):
            t0 = time.perf_counter()
            r = c.post(f"http://127.0.0.1:{port}/v1/lookup", content=body)
            times.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            res = orjson.loads(r.content)["results"]
            parse.append(time.perf_counter() - t1)
            assert r.status_code == 200 and len(res) == a.batch
    print(f"POST /v1/lookup {a.batch:,} points: best {min(times):.3f} s, median {sorted(times)[1]:.3f} s "
          f"(request sent, answered, {len(r.content) / 1e6:.1f} MB received); the client's orjson parse "
          f"adds {min(parse):.3f} s")
    figures["post_batch"] = {"points": a.batch, "best_s": round(min(times), 3),
                             "median_s": round(sorted(times)[1], 3), "answer_mb": round(len(r.content) / 1e6, 1),
                             "client_parse_best_s": round(min(parse), 3)}
    return figures


if __name__ == "__main__":
    main()
