"""Time to the first vector tiles on /map for a synthetic 10,000-grid plan, in headless Chromium.

One real server process (``benchmarks/http_lookup.make_data_dir`` + ``running_server``); Debian's
Chromium driven by Playwright (as tests/test_browser.py). Each run opens ``/map#key=…`` in a fresh
browser context (no HTTP cache) and reads, once the page marks itself ready (grids drawn from tiles):
  * ``navigation_to_tiles_ms``: from navigation start to the first grid tiles drawn;
  * ``tiles_after_plan_ms``: from the moment the page knew the plan (MapLibre loading, TileJSON, tiles);
  * the tile requests made, and whether the whole grids layer was ever requested (it must not be).
The first run ("cold") is the first page a fresh browser opens on a server just started (whose start-up
tile warm-up, ``tile_warm``, runs beside the lookup index build); later runs ("warm") meet the server's
tile cache filled by the earlier pages. Each run has its own browser context, so no HTTP cache.
Target: first tiles drawn in < 2 s. Results: benchmarks/results/map_tiles-*.json.

    python benchmarks/map_tiles.py [--grids 10000] [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.http_lookup import make_data_dir, running_server  # noqa: E402
from benchmarks.record import record  # noqa: E402

CHROMIUM = os.environ.get("GRIDPLAN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def one_run(browser, base: str, key: str) -> dict:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(f"{base}/map#key={key}")
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        got = page.evaluate("() => ({nav: window.gridplan.readyAt, tiles: window.gridplan.firstTilesMs,"
                            " renderer: window.gridplan.state.renderer, drawn: Number(document.body.dataset.tilesDrawn)})")
    finally:
        ctx.close()
    return {"navigation_to_tiles_ms": round(got["nav"], 1), "tiles_after_plan_ms": round(got["tiles"], 1),
            "renderer": got["renderer"], "grid_features_drawn": got["drawn"],
            "tile_requests": sum(1 for r in requests if r.endswith(".mvt")),
            "whole_layer_requested": any("/layers/grids" in r for r in requests)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grids", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="gridplan-bench-"))
    try:
        key, ext = make_data_dir(tmp / "data", a.grids)
        with running_server(tmp / "data", key, ext) as port, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                runs = [one_run(browser, f"http://127.0.0.1:{port}", key) for _ in range(a.runs)]
            finally:
                browser.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    warm = [r["navigation_to_tiles_ms"] for r in runs[1:]] or [runs[0]["navigation_to_tiles_ms"]]
    figures = {"grids": a.grids, "runs": runs, "cold_navigation_to_tiles_ms": runs[0]["navigation_to_tiles_ms"],
               "warm_best_navigation_to_tiles_ms": min(warm), "target": "first tiles drawn < 2000 ms",
               "met": runs[0]["navigation_to_tiles_ms"] < 2000 and not any(r["whole_layer_requested"] for r in runs)}
    record("map_tiles", figures, notes="headless Chromium (software WebGL) and the server share the machine's cores")


if __name__ == "__main__":
    main()
