"""Streaming a big result layer: server RSS growth and time for GET /v1/jobs/{id}/layers/households.

Builds a succeeded job whose plan.gpkg holds N household points (default 600,000) plus the tiny
plan's other layers in a temporary data dir, starts ``python -m api.server`` on a free port, warms
it up (a one-feature request), then reads the whole layer as a client would (discarding the bytes)
while sampling the server's VmRSS every 20 ms. Target (issue "Hostile uploads"): RSS growth
< 200 MB for 600k households.

    python benchmarks/layer_stream.py [--households 600000] [--page 10000]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def make_job(data: Path, n: int) -> str:
    import geopandas as gpd
    import pyogrio
    import shapely

    from gridplan.api.settings import Settings
    from gridplan.api.store import Store
    from tests.helpers.api import write_tiny_plan

    store = Store(Settings(data_dir=str(data)))
    jid = store.new_id()
    store.create_job(jid, {}, {})
    out = store.out_dir(jid)
    write_tiny_plan(out)
    rng = np.random.default_rng(0)
    xy = rng.uniform([119.5, 29.5], [120.5, 30.5], (n, 2))
    hh = gpd.GeoDataFrame({"id": np.char.add("h", np.arange(n).astype(str)).astype(object),
                           "grid_code": "330110001001001", "station_id": "S1",
                           "minutes": rng.uniform(0, 30, n).round(2)}, geometry=shapely.points(xy), crs=4326)
    pyogrio.write_dataframe(hh, out / "plan.gpkg", layer="households", driver="GPKG")
    store.claim_next("bench", 3600)
    store.finish(jid, "succeeded", summary={"households": n})
    return jid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--households", type=int, default=600_000)
    ap.add_argument("--page", type=int, default=10_000, help="also time one ?limit=PAGE&offset=N/2 page")
    a = ap.parse_args()
    import httpx

    from gridplan.api.auth import create_key
    from tests.helpers.api import free_port, start_server

    tmp = Path(tempfile.mkdtemp(prefix="gridplan-layer-bench-"))
    try:
        data = tmp / "data"
        t0 = time.perf_counter()
        jid = make_job(data, a.households)
        print(f"made a {a.households:,}-household plan in {time.perf_counter() - t0:.1f} s")
        key = create_key("reader", str(data))
        port = free_port()
        proc = start_server(data, port, log=tmp / "server.log")
        try:
            url = f"http://127.0.0.1:{port}/v1/jobs/{jid}/layers/households"
            h = {"X-API-Key": key}
            with httpx.Client(timeout=600, headers=h) as c:
                assert len(c.get(url, params={"limit": 1}).json()["features"]) == 1
                time.sleep(2.0)  # let the start-up index build settle
                base = rss_mb(proc.pid)
                peak = [base]
                done = threading.Event()

                def sample():
                    while not done.is_set():
                        peak[0] = max(peak[0], rss_mb(proc.pid))
                        time.sleep(0.02)

                th = threading.Thread(target=sample, daemon=True)
                th.start()
                t0 = time.perf_counter()
                nbytes, first = 0, None
                with c.stream("GET", url) as r:
                    assert r.status_code == 200, r.read()
                    for chunk in r.iter_bytes():
                        if first is None:
                            first = time.perf_counter() - t0
                        nbytes += len(chunk)
                dt = time.perf_counter() - t0
                done.set()
                th.join()
                t1 = time.perf_counter()
                page = c.get(url, params={"limit": a.page, "offset": a.households // 2})
                dp = time.perf_counter() - t1
                n_page = len(page.json()["features"])
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        growth = peak[0] - base
        print(json.dumps({"households": a.households, "bytes": nbytes, "seconds": round(dt, 2),
                          "first_byte_s": round(first or 0.0, 3), "rss_base_mb": round(base, 1),
                          "rss_peak_mb": round(peak[0], 1), "rss_growth_mb": round(growth, 1),
                          "page_features": n_page, "page_seconds": round(dp, 3)}))
        print(f"target: RSS growth < 200 MB: {'HOLDS' if growth < 200 else 'MISSED'} ({growth:.0f} MB)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
