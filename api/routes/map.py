"""``GET /map``: the live plan on a map; click anywhere to look up its grid.

The page itself needs no key (it holds no data). Its data calls go to the public HTTP API with the
``X-API-Key`` header, so it must be told a key (a ``reader`` key is enough):

- ``/map#key=KEY`` — preferred: a URL fragment never reaches the server or its logs;
- ``/map?key=KEY`` — also accepted (the page then drops it from the address bar);
- otherwise the page asks for one. The key is kept in the tab's ``sessionStorage`` only.

``?plan=JOB_ID`` shows that version instead of the live plan (the published version in effect
today, else the newest succeeded job); ``?as_of=YYYY-MM-DD`` the published version in effect then.

The page reads ``GET /v1/plans/live`` (``?as_of=``) and the job of that version, then
``GET /v1/jobs/{id}/layers/grids`` and ``…/stations``, and on a click calls
``GET /v1/lookup?lon=&lat=&plan={id}``. A plan of more than ``LARGE_PLAN_GRIDS`` grids (or any plan
with ``?tiles=1``; ``?tiles=0`` forces the whole layers) is drawn instead from its vector tiles
(``/tiles/{id}/{z}/{x}/{y}.mvt``) by MapLibre GL JS, vendored in ``geo/static`` and served from
``/static/maplibre/``: only the tiles in view are fetched, so a province plan opens and pans smoothly. The page is the Jinja2 template ``api/templates/map.html.j2``
rendered through ``geo.pages`` (autoescape, the same inlined assets as report.html: vendored Leaflet and the
shared ``gridmap.js``), and a Content-Security-Policy allows no other origin: the page works on an
air-gapped network.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from starlette.responses import Response

from gridplan.api.problems import ProblemError
from gridplan.geo.pages import maplibre_assets, render, script_safe

router = APIRouter(tags=["map"])

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
# 'self' scripts and styles: the vendored MapLibre GL JS (large plans); blob: workers: MapLibre's tile workers
CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; worker-src blob:; child-src blob:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")
LARGE_PLAN_GRIDS = 3000     # a plan with more grids is drawn from vector tiles (MapLibre), not whole layers
MAPLIBRE = {"maplibre-gl.js": "text/javascript; charset=utf-8", "maplibre-gl.css": "text/css; charset=utf-8"}


@lru_cache(maxsize=1)
def map_page_html() -> str:
    """Render the map page once, Leaflet and the shared map scripts inlined (no request leaves the origin)."""
    tilemap = (TEMPLATES / "tilemap.js").read_text(encoding="utf-8")
    return render("map.html.j2", TEMPLATES, large_plan_grids=LARGE_PLAN_GRIDS, tilemap_js=Markup(script_safe(tilemap)))


@lru_cache(maxsize=2)
def _maplibre(name: str) -> bytes:
    js, css = maplibre_assets()     # no source-map comment: no request for the absent map
    return (js if name.endswith(".js") else css).encode("utf-8")


@router.get("/static/maplibre/{name}", include_in_schema=False)
def maplibre_asset(name: str) -> Response:
    """Serve the vendored MapLibre GL JS script and stylesheet (``geo/static``; see its README)."""
    if name not in MAPLIBRE:
        raise ProblemError(404, "no such file", kind="not-found")
    return Response(_maplibre(name), media_type=MAPLIBRE[name],
                    headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})


@router.get("/map", response_class=HTMLResponse, summary="The newest plan on a map; click to look up a grid",
            description=__doc__)
def map_page() -> HTMLResponse:
    """Serve the map page with a Content-Security-Policy that allows no other origin."""
    return HTMLResponse(map_page_html(), headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP,
                                                  "Referrer-Policy": "no-referrer",
                                                  "X-Content-Type-Options": "nosniff"})
