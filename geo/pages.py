"""Pages as Jinja2 templates: one environment (autoescape on), the inlined assets, the shared map script.

``report.html`` (``geo/templates/report.html.j2``) and the service's ``/map`` page
(``api/templates/map.html.j2``) are both rendered through :func:`environment`: every value is
escaped by the template engine, data travels in ``<script type="application/json">`` islands through
the ``tojson`` filter, and the vendored assets (Leaflet from ``geo/static``, see its README, and
``gridmap.js``, the one copy of the map helpers both pages use) are inlined so that no page ever
fetches anything from another origin.
"""
from __future__ import annotations

import base64
import re
from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup

STATIC = Path(__file__).with_name("static")
TEMPLATES = Path(__file__).with_name("templates")


def script_safe(text: str) -> str:
    """Make text safe inside ``<script>…</script>`` (JS): no ``</`` or ``<!--`` left to end the tag."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def json_script_safe(text: str) -> str:
    r"""Make JSON text safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``.

    They only occur inside JSON strings, where ``\u003c`` etc. mean the same.
    """
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@lru_cache(maxsize=1)
def leaflet_assets() -> tuple[str, str]:
    """Return (leaflet.js, leaflet.css) as text ready to inline: no source-map comment, CSS images as data URIs."""
    js = (STATIC / "leaflet.js").read_text(encoding="utf-8")
    js = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", js)
    css = (STATIC / "leaflet.css").read_text(encoding="utf-8")

    def data_uri(m: re.Match) -> str:
        p = STATIC / m.group(1)
        if not p.exists():
            return "url()"
        return "url(data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii") + ")"

    css = re.sub(r"url\(images/([\w.\-]+)\)", data_uri, css)
    return js, css


@lru_cache(maxsize=1)
def maplibre_assets() -> tuple[str, str]:
    """Return (maplibre-gl.js, maplibre-gl.css) as text ready to inline or serve (no source-map comment)."""
    js = (STATIC / "maplibre-gl.js").read_text(encoding="utf-8")
    js = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", js)
    return js, (STATIC / "maplibre-gl.css").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def gridmap_js() -> str:
    """Return the shared map helpers' script (``window.GP``: escaping, formatting, deviation colours, grid popups)."""
    return (STATIC / "gridmap.js").read_text(encoding="utf-8")


def inline_assets() -> dict[str, Markup]:
    """Return the template variables of the inlined assets: ``leaflet_css``, ``leaflet_js``, ``gridmap_js``."""
    js, css = leaflet_assets()
    return {"leaflet_css": Markup(css.replace("</", "<\\/")), "leaflet_js": Markup(script_safe(js)),
            "gridmap_js": Markup(script_safe(gridmap_js()))}


@lru_cache(maxsize=None)
def environment(template_dir: str | Path = TEMPLATES) -> jinja2.Environment:
    """Return the Jinja2 environment over ``template_dir``: autoescape on, strict undefined, compact ``tojson``."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir)),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}
    return env


def render(name: str, template_dir: str | Path = TEMPLATES, **context) -> str:
    """Render template ``name`` from ``template_dir`` with ``context`` (plus the inlined assets)."""
    return environment(str(template_dir)).get_template(name).render(**inline_assets(), **context)


__all__ = ["environment", "render", "inline_assets", "leaflet_assets", "maplibre_assets", "gridmap_js", "script_safe",
           "json_script_safe"]
