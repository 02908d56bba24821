"""The /map page's large-plan mode in a real headless Chromium: a synthetic 10,000-grid plan is drawn from
vector tiles (MapLibre GL JS, served from the same origin) without loading the whole grids layer, and a
click is answered by /v1/lookup. Skips like tests/test_browser.py when Chromium is absent. The time to the
first drawn tiles is measured by benchmarks/map_tiles.py, not here."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from tests import test_browser
from tests.helpers.api import ROOT, free_port, start_server

browser = test_browser.browser     # the shared Chromium fixture (skips without Chromium)
shoot = test_browser.shoot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def big_plan(tmp_path_factory):
    sys.path.insert(0, str(ROOT))
    from benchmarks.http_lookup import make_data_dir

    d = tmp_path_factory.mktemp("bigmap")
    key, ext = make_data_dir(d, 10_000)
    port = free_port()
    proc = start_server(d, port, log=d / "server.log")
    try:
        yield f"http://127.0.0.1:{port}", key, ext
    finally:
        proc.kill()
        proc.wait(10)


def test_a_10000_grid_plan_is_drawn_from_vector_tiles(browser, big_plan):
    base, key, ext = big_plan
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(f"{base}/map#key={key}")
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        state = page.evaluate("() => ({renderer: window.gridplan.state.renderer,"
                              " drawn: Number(document.body.dataset.tilesDrawn)})")
        assert state["renderer"] == "tiles" and state["drawn"] > 0
        assert not errors, errors
        assert all(r.startswith((base, "data:", "blob:")) for r in requests)       # nothing off the origin
        tiles = [r for r in requests if "/tiles/" in r and r.endswith(".mvt")]
        assert tiles and not any("/layers/grids" in r for r in requests)           # tiles, never the whole layer
        # a click anywhere on the map is answered by the lookup API and highlighted
        lon, lat = (ext[0] + ext[2]) / 2, (ext[1] + ext[3]) / 2
        xy = page.evaluate("([lon, lat]) => { const p = window.gridplan.map.project([lon, lat]); return [p.x, p.y]; }",
                           [lon, lat])
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
        page.wait_for_function("() => (document.getElementById('answer').dataset.gridCode || '').length > 0",
                               timeout=15_000)
        code = page.evaluate("() => document.getElementById('answer').dataset.gridCode")
        import httpx
        want = httpx.get(f"{base}/v1/lookup", params={"lon": lon, "lat": lat},
                         headers={"X-API-Key": key}, timeout=10).json()["grid_code"]
        assert code == want
        assert page.locator(".maplibregl-popup").count() == 1
        shoot(page, "map-tiles.png")
    finally:
        page.close()


def test_small_plans_keep_the_whole_layer_map():
    from gridplan.api.routes.map import LARGE_PLAN_GRIDS, map_page_html
    html = map_page_html()
    assert f"var LARGE = {LARGE_PLAN_GRIDS};" in html and 1000 <= LARGE_PLAN_GRIDS < 10_000
    assert np.isfinite(LARGE_PLAN_GRIDS)


def test_a_large_report_is_drawn_by_maplibre_offline(browser, tmp_path):
    """report.html of a 4,000-grid plan: MapLibre (inlined) draws it with no network, and a click names the grid."""
    import shapely

    from benchmarks.lookup_speed import synthetic_plan
    from gridplan.geo.report import render_report

    grids, stations, ext = synthetic_plan(4000)
    grids["households"] = 300
    html = render_report({"grids": grids, "stations": stations}, {"grids": len(grids)}, title="big")
    assert "maplibregl" in html and "<script src" not in html
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        leaked = test_browser.open_offline(page, path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        assert page.evaluate("() => window.gridplan.renderer") == "maplibre"
        assert not leaked and not errors, (leaked, errors)
        g = grids.iloc[len(grids) // 2]
        p = shapely.point_on_surface(g.geometry)
        xy = page.evaluate("([lon, lat]) => { const q = window.gridplan.map.project([lon, lat]); return [q.x, q.y]; }",
                           [p.x, p.y])
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
        page.wait_for_selector(".maplibregl-popup", timeout=10_000)
        assert g.grid_code in page.locator(".maplibregl-popup").inner_text()
        shoot(page, "report-maplibre.png")
    finally:
        page.close()
