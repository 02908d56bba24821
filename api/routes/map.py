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
``GET /v1/lookup?lon=&lat=&plan={id}``. The page is the Jinja2 template ``api/templates/map.html.j2``
rendered through ``geo.pages`` (autoescape, the same inlined assets as report.html: vendored Leaflet and the
shared ``gridmap.js``), and a Content-Security-Policy allows no other origin: the page works on an
air-gapped network.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gridplan.geo.pages import render

router = APIRouter(tags=["map"])

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


@lru_cache(maxsize=1)
def map_page_html() -> str:
    """Render the map page once, Leaflet and the shared map script inlined (no request leaves the origin)."""
    return render("map.html.j2", TEMPLATES)


@router.get("/map", response_class=HTMLResponse, summary="The newest plan on a map; click to look up a grid",
            description=__doc__)
def map_page() -> HTMLResponse:
    """Serve the map page with a Content-Security-Policy that allows no other origin."""
    return HTMLResponse(map_page_html(), headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP,
                                                  "Referrer-Policy": "no-referrer",
                                                  "X-Content-Type-Options": "nosniff"})
