"""A 1,000,000-point Arrow IPC lookup batch end to end over HTTP vs GridIndex.lookup in process, same run.

Builds a synthetic 20,000-grid plan as a succeeded job (``benchmarks/http_lookup.make_data_dir``),
starts one real server process (uvicorn, loopback), and times on the same random points:
  * in process: ``GridIndex.lookup`` on the plan's own index (built from its output directory);
  * over HTTP: the client serializes lon/lat as an Arrow IPC stream, POSTs it to /v1/lookup
    (``Content-Type: application/vnd.apache.arrow.stream``), receives the Arrow answer and reads it
    into a pyarrow Table — everything the client waits for.
Both with one warm-up and best/median of ``--repeat`` runs (``benchmarks/timing.measure``).
Target: HTTP <= 1.5 x in process. Results: benchmarks/results/arrow_lookup-*.json.

    python benchmarks/arrow_lookup.py [--grids 20000] [--points 1000000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.http_lookup import make_data_dir, running_server  # noqa: E402
from benchmarks.record import record  # noqa: E402
from benchmarks.timing import measure  # noqa: E402

ARROW = "application/vnd.apache.arrow.stream"


def arrow_body(lon, lat) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    t = pa.table({"lon": lon, "lat": lat})
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return sink.getvalue().to_pybytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grids", type=int, default=20000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import httpx
    import pyarrow as pa

    from gridplan.geo.index import GridIndex

    tmp = Path(tempfile.mkdtemp(prefix="gridplan-bench-"))
    try:
        key, ext = make_data_dir(tmp / "data", a.grids)
        rng = np.random.default_rng(5)
        lon = rng.uniform(ext[0] - 0.05, ext[2] + 0.05, a.points)     # a few outside: null rows
        lat = rng.uniform(ext[1] - 0.05, ext[3] + 0.05, a.points)
        out_dir = next((tmp / "data").rglob("plan.gpkg")).parent
        idx = GridIndex.from_plan_dir(out_dir)
        inproc = measure(lambda: idx.lookup(lon, lat), repeat=a.repeat)
        with running_server(tmp / "data", key, ext) as port, \
                httpx.Client(headers={"X-API-Key": key}, timeout=300) as c:
            url = f"http://127.0.0.1:{port}/v1/lookup"

            def over_http():
                r = c.post(url, content=arrow_body(lon, lat), headers={"Content-Type": ARROW, "Accept": ARROW})
                assert r.status_code == 200, r.text[:300]
                return r, pa.ipc.open_stream(r.content).read_all()

            http = measure(over_http, repeat=a.repeat)
            inproc_after = measure(lambda: idx.lookup(lon, lat), repeat=a.repeat)   # same run, after: load drift
        r, table = http.result
        assert table.num_rows == a.points
        found = int(table.column("grid_code").null_count)
        assert found == int((inproc.result["grid"] < 0).sum()), "HTTP and in-process answers differ"
        base = min(inproc.best, inproc_after.best)
        figures = {"grids": a.grids, "points": a.points, "outside_points": found,
                   "request_mb": round(len(arrow_body(lon[:1000], lat[:1000])) * a.points / 1000 / 1e6, 1),
                   "answer_mb": round(len(r.content) / 1e6, 1),
                   "in_process_lookup": inproc.as_dict(), "in_process_lookup_after": inproc_after.as_dict(),
                   "http_arrow_end_to_end": http.as_dict(),
                   "ratio_best": round(http.best / base, 3),
                   "ratio_median": round(http.median / min(inproc.median, inproc_after.median), 3),
                   "target": "ratio <= 1.5"}
        figures["met"] = figures["ratio_best"] <= 1.5
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record("arrow_lookup", figures, notes="client and server share the machine's 2 cores")


if __name__ == "__main__":
    main()
