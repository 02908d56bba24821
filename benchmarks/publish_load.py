"""Lookup latency while plan versions are published, against a real server process (loopback).

Builds three synthetic plan versions (``--grids`` grids each, different shapes; every grid code
starts with its version's letter) as succeeded jobs in a temporary data dir, starts
``python -m gridplan.api.server``, then runs GET /v1/lookup at random points with ``--conns``
concurrent connections for ``--seconds`` — by wrk (Debian package; its Lua ``response`` hook checks
every answer) when installed, else an asyncio httpx client (whose own overhead inflates latency):

  1. quiet: nothing published (the baseline on this machine);
  2. publishing: meanwhile ``POST /v1/plans/{id}/publish`` every ``--every`` seconds, round robin over
     the versions, each with a later effective date, so the live plan changes at every publish.

Every answer is checked: its grid code must belong to the version the answer names (``plan``) —
an answer from a half-swapped index would break that. Reports req/s, p50/p99/max latency per phase,
publishes made, and mismatches (must be 0). Target: p99 < 20 ms while publishing.
Results: benchmarks/results/publish_load-*.json (``benchmarks/record.py``). About a minute.

    python benchmarks/publish_load.py [--grids 5000] [--seconds 15] [--conns 8] [--every 0.5] [--httpx]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.record import record  # noqa: E402

LETTERS = "ABC"
WRK_LUA = """
local threads = {}
function setup(thread) thread:set("id", #threads + 1); table.insert(threads, thread) end
function init(args) math.randomseed(%(seed)d + id); checked = 0; mismatched = 0 end
local letters = {%(letters)s}
request = function()
  local lon = %(x0)f + math.random() * %(w)f
  local lat = %(y0)f + math.random() * %(h)f
  return wrk.format("GET", string.format("/v1/lookup?lon=%%.6f&lat=%%.6f", lon, lat), {["X-API-Key"] = "%(key)s"})
end
response = function(status, headers, body)
  if status ~= 200 then return end
  checked = checked + 1
  local plan = body:match('"plan":"(%%w+)"')
  local code = body:match('"grid_code":"(%%w)')
  local named = headers["x-gridplan-plan"] or headers["X-Gridplan-Plan"]
  if plan == nil or letters[plan] ~= code or named ~= plan then mismatched = mismatched + 1 end
end
done = function(summary, latency, requests)
  local c, m = 0, 0
  for _, t in ipairs(threads) do c = c + t:get("checked"); m = m + t:get("mismatched") end
  io.write(string.format("CHECKED %%d MISMATCHED %%d\\n", c, m))
end
"""


def make_versions(d: Path, n_grids: int) -> tuple[list[str], str, str, tuple]:
    """Three succeeded versions of a synthetic plan; returns (ids, planner key, reader key, extent)."""
    from benchmarks.lookup_speed import synthetic_plan
    from gridplan.api.auth import create_key
    from gridplan.api.settings import Settings
    from gridplan.api.store import Store
    from gridplan.geo.output import write_plan_dir

    st = Store(Settings(data_dir=str(d)))
    ids, ext = [], None
    for k, letter in enumerate(LETTERS):
        grids, stations, ext = synthetic_plan(n_grids, seed=k)
        grids["grid_code"] = letter + grids["grid_code"].str[1:]
        jid = st.new_id()
        st.create_job(jid, {}, {})
        summary = {"grids": len(grids), "coverage": {"minutes": 20, "mode": "walk", "speed_kmh": 4.0, "share": 0.9}}
        write_plan_dir(st.out_dir(jid), {"grids": grids, "stations": stations}, summary, report=False)
        assert st.finish(jid, "succeeded", summary=summary, only_if=("queued",))
        ids.append(jid)
    return ids, create_key("planner", str(d)), create_key("reader", str(d)), ext


async def load(port: int, key: str, ext, seconds: float, conns: int, letter_of: dict) -> dict:
    """GET /v1/lookup at random points for ``seconds``; latency figures and answer checks."""
    import httpx

    rng = np.random.default_rng(1)
    lat_ms, bad, mismatched, plans = [], 0, 0, set()
    deadline = time.perf_counter() + seconds

    async def client():
        nonlocal bad, mismatched
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}) as c:
            while time.perf_counter() < deadline:
                x, y = rng.uniform(ext[0], ext[2]), rng.uniform(ext[1], ext[3])
                t0 = time.perf_counter()
                r = await c.get("/v1/lookup", params={"lon": x, "lat": y})
                lat_ms.append((time.perf_counter() - t0) * 1e3)
                if r.status_code != 200:
                    bad += 1
                    continue
                a = r.json()
                plans.add(a["plan"])
                mismatched += a["grid_code"][0] != letter_of.get(a["plan"]) or r.headers["x-gridplan-plan"] != a["plan"]

    t0 = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(conns)])
    el = time.perf_counter() - t0
    a = np.array(lat_ms)
    return {"requests": len(a), "req_per_s": round(len(a) / el, 1), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3), "non_200": bad,
            "mismatched_answers": int(mismatched), "plans_answering": len(plans)}


def wrk_load(port: int, key: str, ext, seconds: float, conns: int, letter_of: dict, script: Path) -> dict:
    """The same load by wrk, every answer checked in its Lua ``response`` hook."""
    import re

    x0, y0, x1, y1 = ext
    letters = ", ".join(f'["{k}"] = "{v}"' for k, v in letter_of.items())
    script.write_text(WRK_LUA % dict(seed=1, x0=x0, y0=y0, w=x1 - x0, h=y1 - y0, key=key, letters=letters))
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{int(seconds)}s", "--latency", "-s", str(script),
                          f"http://127.0.0.1:{port}/v1/lookup"], capture_output=True, text=True).stdout

    def ms(text: str) -> float:
        v, u = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
        return float(v) / 1000 if u == "us" else float(v) * 1000 if u == "s" else float(v)

    n = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    checked, mism = map(int, re.search(r"CHECKED (\d+) MISMATCHED (\d+)", out).groups())
    return {"requests": n, "req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
            "p99_ms": ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
            "max_ms": ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1)),
            "non_200": int(non2xx.group(1)) if non2xx else 0, "checked": checked, "mismatched_answers": mism}


def publisher(port: int, key: str, ids: list[str], every: float, stop: threading.Event, out: dict) -> None:
    """Publish the versions round robin, each from a later date, until ``stop``; count and time them."""
    import httpx

    day, n, ms = dt.date(2020, 1, 1), 0, []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=60) as c:
        while not stop.is_set():
            vid = ids[n % len(ids)]
            t0 = time.perf_counter()
            r = c.post(f"/v1/plans/{vid}/publish", json={"effective_from": (day + dt.timedelta(days=n)).isoformat()})
            ms.append((time.perf_counter() - t0) * 1e3)
            assert r.status_code == 200 and r.json()["live"], r.text
            n += 1
            stop.wait(every)
    out.update(publishes=n, publish_ms_median=round(float(np.median(ms)), 1), publish_ms_max=round(max(ms), 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grids", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--every", type=float, default=0.5)
    ap.add_argument("--httpx", action="store_true", help="load by the asyncio httpx client even if wrk is installed")
    a = ap.parse_args()
    import httpx

    from tests.helpers.api import free_port, wait_healthy

    tmp = Path(tempfile.mkdtemp(prefix="gridplan-bench-"))
    proc = None
    try:
        ids, planner, reader, ext = make_versions(tmp / "data", a.grids)
        letter_of = dict(zip(ids, LETTERS))
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT), GRIDPLAN_LOG_LEVEL="warning")
        proc = subprocess.Popen([sys.executable, "-m", "gridplan.api.server", "--port", str(port), "--data-dir",
                                 str(tmp / "data")], cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_healthy(port, proc, timeout=120)
        mid = {"lon": (ext[0] + ext[2]) / 2, "lat": (ext[1] + ext[3]) / 2}
        for vid in ids:   # warm: every version's index built once (the first lookup of each waits for it)
            assert httpx.get(f"http://127.0.0.1:{port}/v1/lookup", params={**mid, "plan": vid},
                             headers={"X-API-Key": reader}, timeout=120).status_code == 200
        print(f"# {a.grids} grids x {len(ids)} versions, one server process, {a.conns} connections, "
              f"{a.seconds:g} s a phase, a publish every {a.every:g} s in phase 2, load by "
              f"{'wrk' if shutil.which('wrk') and not a.httpx else 'httpx-asyncio'}")
        tool = "wrk" if shutil.which("wrk") and not a.httpx else "httpx-asyncio"

        def run_load() -> dict:
            if tool == "wrk":
                return wrk_load(port, reader, ext, a.seconds, a.conns, letter_of, tmp / "load.lua")
            return asyncio.run(load(port, reader, ext, a.seconds, a.conns, letter_of))

        quiet = run_load()
        pub: dict = {}
        stop = threading.Event()
        t = threading.Thread(target=publisher, args=(port, planner, ids, a.every, stop, pub))
        t.start()
        try:
            busy = run_load()
        finally:
            stop.set()
            t.join()
        busy.update(pub)
        for name, r in (("quiet", quiet), ("publishing", busy)):
            print(f"{name:11s} {r['req_per_s']:8,.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
                  f"max {r['max_ms']:7.2f} ms  non-200 {r['non_200']}  mismatched {r['mismatched_answers']}")
        print(f"publishes: {pub['publishes']} (median {pub['publish_ms_median']} ms each)")
        figures = {"grids": a.grids, "versions": len(ids), "connections": a.conns, "seconds": a.seconds, "tool": tool,
                   "publish_every_s": a.every, "quiet": quiet, "publishing": busy,
                   "target_p99_ms": 20.0, "p99_target_met": busy["p99_ms"] < 20.0,
                   "never_half_swapped": busy["mismatched_answers"] == 0 and quiet["mismatched_answers"] == 0}
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    record("publish_load", figures, notes="the load generator and the publisher share the machine's cores with "
                                          "the server; each answer's grid is checked against the version it names")


if __name__ == "__main__":
    main()
