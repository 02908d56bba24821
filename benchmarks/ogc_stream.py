"""OGC API – Features items of a big layer, streamed: server RSS growth and time, page after page.

Builds a succeeded job whose plan.gpkg holds N household points (default 600,000; the same
synthetic plan as ``layer_stream.py``) in a temporary data dir, starts ``python -m api.server`` on
a free port, warms it up (a one-feature page), then reads every item of the live plan's
``households`` collection through ``/ogc/collections/households/items?limit=PAGE``, following the
``next`` links as GDAL and QGIS do, while sampling the server's VmRSS every 20 ms. It checks that
the pages together hold every feature once. Target (issue 14): RSS growth < 100 MB for 600k
households.

    python benchmarks/ogc_stream.py [--households 600000] [--page 10000]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.layer_stream import make_job, rss_mb  # noqa: E402
from benchmarks.record import begin, record  # noqa: E402


def read_all(c, url: str, page: int) -> tuple[int, int, set, int]:
    """Follow ``next`` links from the first page; return (features, bytes, distinct ids, pages)."""
    n = nbytes = pages = 0
    ids: set = set()
    params = {"limit": page}
    while url:
        r = c.get(url, params=params)
        assert r.status_code == 200, r.text[:500]
        nbytes += len(r.content)
        body = r.json()
        n += len(body["features"])
        ids.update(f["id"] for f in body["features"])
        pages += 1
        url = next((lk["href"] for lk in body["links"] if lk["rel"] == "next"), None)
        params = None
    return n, nbytes, ids, pages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--households", type=int, default=600_000)
    ap.add_argument("--page", type=int, default=10_000, help="features per items page (the server's maximum)")
    a = ap.parse_args()
    import httpx

    from gridplan.api.auth import create_key
    from tests.helpers.api import free_port, start_server

    tmp = Path(tempfile.mkdtemp(prefix="gridplan-ogc-bench-"))
    try:
        data = tmp / "data"
        t0 = time.perf_counter()
        make_job(data, a.households)
        print(f"made a {a.households:,}-household plan in {time.perf_counter() - t0:.1f} s")
        key = create_key("reader", str(data))
        port = free_port()
        proc = start_server(data, port, log=tmp / "server.log")
        try:
            url = f"http://127.0.0.1:{port}/ogc/collections/households/items"
            with httpx.Client(timeout=600, headers={"X-API-Key": key}) as c:
                first = c.get(url, params={"limit": 1}).json()
                assert len(first["features"]) == 1 and first["numberMatched"] == a.households
                time.sleep(2.0)  # let the start-up index build settle
                run = begin()
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
                n, nbytes, ids, pages = read_all(c, url, a.page)
                dt = time.perf_counter() - t0
                done.set()
                th.join()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        assert n == a.households and len(ids) == a.households, (n, len(ids))
        growth = peak[0] - base
        record("ogc_stream", {"households": a.households, "page": a.page, "pages": pages, "features": n,
                              "bytes": nbytes, "seconds": round(dt, 2),
                              "features_per_s": round(n / dt), "rss_base_mb": round(base, 1),
                              "rss_peak_mb": round(peak[0], 1), "rss_growth_mb": round(growth, 1),
                              "target_rss_growth_mb": 100, "target_holds": bool(growth < 100)}, run=run,
               notes="server RSS sampled every 20 ms while a client follows next links over the whole layer")
        print(f"target: RSS growth < 100 MB: {'HOLDS' if growth < 100 else 'MISSED'} ({growth:.0f} MB)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
