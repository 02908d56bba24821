"""``GET /map``: the newest plan on a map; click anywhere to look up its grid.

The page itself needs no key (it holds no data). Its data calls go to the public HTTP API with the
``X-API-Key`` header, so it must be told a key (a ``reader`` key is enough):

- ``/map#key=KEY`` — preferred: a URL fragment never reaches the server or its logs;
- ``/map?key=KEY`` — also accepted (the page then drops it from the address bar);
- otherwise the page asks for one. The key is kept in the tab's ``sessionStorage`` only.

``?plan=JOB_ID`` shows that job instead of the newest succeeded one.

The page reads ``GET /v1/jobs?status=succeeded`` (newest first by finish time), then
``GET /v1/jobs/{id}/layers/grids`` and ``…/stations``, and on a click calls
``GET /v1/lookup?lon=&lat=&plan={id}``. Leaflet (``geo/static``, vendored) is inlined, and a
Content-Security-Policy allows no other origin: the page works on an air-gapped network.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from geo.report import leaflet_assets, script_safe

router = APIRouter(tags=["map"])

PAGE = Path(__file__).resolve().parents[1] / "static" / "map.html"
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


@lru_cache(maxsize=1)
def map_page_html() -> str:
    """map.html with Leaflet's CSS and JS inlined (no request leaves the service's origin)."""
    js, css = leaflet_assets()
    text = PAGE.read_text(encoding="utf-8")
    return text.replace("/*%%LEAFLET_CSS%%*/", css, 1).replace("//%%LEAFLET_JS%%", script_safe(js), 1)


@router.get("/map", response_class=HTMLResponse, summary="The newest plan on a map; click to look up a grid",
            description=__doc__)
def map_page() -> HTMLResponse:
    return HTMLResponse(map_page_html(), headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP,
                                                  "Referrer-Policy": "no-referrer",
                                                  "X-Content-Type-Options": "nosniff"})
