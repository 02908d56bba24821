"""End to end in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

(a) report.html opened from file:// with every network request blocked: the grids render as map
    paths, and clicking inside a grid opens a popup naming that grid.
(b) /map against a real uvicorn server (``gridplan serve``) holding a small plan made through the
    HTTP API: the grids render, and clicking a grid answers with that grid's code from /v1/lookup.

Screenshots go to test-artifacts/ (gitignored). Skips with the reason when Chromium is absent —
run .ci/browser.sh as root to install it; ``playwright install`` is never needed.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import shapely

from tests.helpers.report_data import synthetic_layers

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("GRIDPLAN_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: run .ci/browser.sh as root (apt-get install chromium) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.errors = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    yield pg
    ctx.close()


def shoot(pg, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    pg.wait_for_timeout(400)   # let popups finish fading in
    pg.screenshot(path=str(path), full_page=True)
    return path


def click_lonlat(pg, lon: float, lat: float) -> None:
    """Click the map where (lon, lat) is drawn, as a user would."""
    x, y = pg.evaluate("([lat, lon]) => { const p = window.gridplan.map.latLngToContainerPoint([lat, lon]);"
                       " return [p.x, p.y]; }", [lat, lon])
    box = pg.locator("#map").bounding_box()
    assert 0 < x < box["width"] and 0 < y < box["height"], "the point is not on screen"
    pg.evaluate("() => window.gridplan.map.closePopup()")   # an open popup could cover the point
    pg.wait_for_function("() => !document.querySelector('.leaflet-popup')")
    pg.mouse.click(box["x"] + x, box["y"] + y)


def clickable_points(grids, stations, min_gap_deg: float = 0.0008):
    """(code, lon, lat) inside each grid, away from any station marker drawn on top of it."""
    st = np.asarray(stations.geometry.values) if stations is not None and len(stations) else np.array([])
    out = []
    for code, geom in zip(grids["grid_code"], grids.geometry):
        p = shapely.point_on_surface(geom)
        if len(st) and float(shapely.distance(p, st).min()) < min_gap_deg:
            continue
        out.append((code, p.x, p.y))
    return out


def open_offline(pg, url: str) -> list[str]:
    """Open url with every request other than file:/data: aborted; returns what was attempted."""
    leaked: list[str] = []

    def guard(route):
        u = route.request.url
        if u.startswith(("file:", "data:", "blob:")):
            return route.continue_()
        leaked.append(u)
        return route.abort()

    pg.route("**/*", guard)
    pg.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:")) else leaked.append(r.url))
    pg.goto(url)
    pg.wait_for_function("() => window.gridplan && window.gridplan.map")
    return leaked


def check_report(pg, report: Path, grids, stations, shot: str) -> None:
    leaked = open_offline(pg, report.as_uri())
    # the grids are drawn: one path each (SVG renderer below the canvas threshold)
    n_paths = pg.locator("path.gp-grid").count()
    assert n_paths == len(grids)
    assert pg.locator("path.gp-station").count() == len(stations)
    pts = clickable_points(grids, stations)
    assert pts, "no grid to click"
    for code, lon, lat in pts[:3]:
        click_lonlat(pg, lon, lat)
        popup = pg.locator(".leaflet-popup-content")
        popup.wait_for(state="visible", timeout=5000)
        assert code in popup.inner_text()
    # the finder: type a grid code, its figures open
    code = str(grids["grid_code"].iloc[-1])
    pg.evaluate("() => window.gridplan.map.closePopup()")
    pg.fill(".gp-find input", code)
    pg.press(".gp-find input", "Enter")
    pg.wait_for_function("(c) => [...document.querySelectorAll('.leaflet-popup-content')]"
                         ".some(e => e.textContent.includes(c))", arg=code, timeout=5000)
    assert pg.locator("svg.gp-balance rect.bar").count() > 0
    shoot(pg, shot)
    assert leaked == [], f"the report tried to reach the network: {leaked[:5]}"
    assert pg.errors == [], pg.errors


def test_report_offline_renders_and_answers_clicks(page, tmp_path):
    from gridplan.geo.report import render_report
    layers, summary = synthetic_layers()
    report = tmp_path / "report.html"
    report.write_text(render_report(layers, summary, title="synthetic"), encoding="utf-8")
    check_report(page, report, layers["grids"], layers["stations"], "report-synthetic.png")


def test_sample_plan_report_offline(page, small_plan_dir, small_plan):
    """The report the pipeline writes for the bundled small sample (as `gridplan demo` does)."""
    report = Path(small_plan_dir) / "report.html"
    assert report.exists()
    check_report(page, report, small_plan.grids, small_plan.stations, "report-sample-small.png")
    # the unit outlines are drawn as context
    assert page.locator("path.gp-unit").count() == len(small_plan.units)


# ------------------------------------------------------------------------------------------------
# /map against a real server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_small_inputs(d: Path) -> tuple[Path, Path]:
    layers, _ = synthetic_layers(n_households=300, seed=3)
    b = d / "boundaries.geojson"
    layers["units"][["village_code", "village_name", "township_code", "county_code", "geometry"]].to_file(b)
    hh = layers["households"]
    h = d / "households.csv"
    hh.assign(lon=hh.geometry.x.round(6), lat=hh.geometry.y.round(6), population=hh["households"] * 3)[
        ["id", "lon", "lat", "households", "population"]].to_csv(h, index=False)
    return b, h


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("gridplan.api.app", reason="the HTTP service (api/app.py) is not there")
    httpx = pytest.importorskip("httpx")
    from gridplan.api.auth import create_key
    d = tmp_path_factory.mktemp("serve")
    data_dir = d / "data"
    data_dir.mkdir()
    planner = create_key("planner", data_dir=str(data_dir))
    reader = create_key("reader", data_dir=str(data_dir))
    port = free_port()
    log = open(d / "server.log", "w")
    code = "import sys; from gridplan.api.cli import main; sys.argv[0] = 'gridplan'; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", "--port", str(port), "--data-dir", str(data_dir)],
                            cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"the server exited: {(d / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)
        b, h = write_small_inputs(d)
        with open(b, "rb") as fb, open(h, "rb") as fh:
            r = httpx.post(base + "/v1/jobs", headers={"X-API-Key": planner},
                           files={"boundaries": ("boundaries.geojson", fb), "households": ("households.csv", fh)},
                           data={"params": json.dumps({"target_households": 100})}, timeout=30)
        assert r.status_code == 202, r.text
        job = r.json()["id"]
        for _ in range(1200):
            st = httpx.get(f"{base}/v1/jobs/{job}", headers={"X-API-Key": reader}, timeout=10).json()
            if st["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.1)
        assert st["status"] == "succeeded", st
        grids = httpx.get(f"{base}/v1/jobs/{job}/layers/grids", headers={"X-API-Key": reader}, timeout=30).json()
        stations = httpx.get(f"{base}/v1/jobs/{job}/layers/stations", headers={"X-API-Key": reader}, timeout=30).json()
        yield {"base": base, "reader": reader, "job": job, "grids": grids, "stations": stations, "log": d / "server.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_map_page_shows_newest_plan_and_looks_up_clicks(page, server):
    import geopandas as gpd
    base = server["base"]
    grids = gpd.GeoDataFrame.from_features(server["grids"]["features"], crs=4326)
    stations = gpd.GeoDataFrame.from_features(server["stations"]["features"], crs=4326) \
        if server["stations"]["features"] else None
    off_origin: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((base, "data:")) else off_origin.append(r.url))
    page.goto(f"{base}/map#key={server['reader']}")
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    assert "key=" not in page.url                      # the key is dropped from the address bar
    assert page.locator("path.gp-grid").count() == len(grids)
    assert server["job"] in page.inner_text("#plan")
    pts = clickable_points(grids, stations)
    for code, lon, lat in pts[:3]:
        click_lonlat(page, lon, lat)
        page.wait_for_function("(c) => document.getElementById('answer').dataset.gridCode === c", arg=code,
                               timeout=10_000)
        assert code in page.locator(".leaflet-popup-content").inner_text()
    shoot(page, "map-page.png")
    # a click outside every grid says so (the 404 of the lookup)
    minx, miny, maxx, maxy = grids.total_bounds
    page.evaluate("([lat, lon]) => window.gridplan.map.setView([lat, lon], window.gridplan.map.getZoom() - 1,"
                  " {animate: false})", [(miny + maxy) / 2, (minx + maxx) / 2])
    click_lonlat(page, minx - (maxx - minx) * 0.02, (miny + maxy) / 2)
    page.wait_for_function("() => document.getElementById('answer').textContent.includes('outside every grid')",
                           timeout=10_000)
    assert off_origin == [], f"the map page reached beyond its server: {off_origin[:5]}"
    assert page.errors == [] or all("404" in e for e in page.errors), page.errors


def test_map_page_asks_for_a_key(page, server):
    page.goto(f"{server['base']}/map")
    page.wait_for_selector("#keyform input", state="visible", timeout=10_000)
    page.fill("#keyinput", "not-a-key")
    page.click("#keyform button")
    page.wait_for_function("() => document.getElementById('keyerr').textContent.includes('refused')", timeout=10_000)
    page.fill("#keyinput", server["reader"])
    page.click("#keyform button")
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    assert page.locator("path.gp-grid").count() == len(server["grids"]["features"])
