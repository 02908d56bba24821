"""``audit.html``: a self-contained map of the grids an audit flagged, the gaps and overlaps, and the findings.

Rendered through ``geo.pages`` (one Jinja2 environment, autoescape on, inlined Leaflet and the
shared ``gridmap.js``); layers are embedded by ``geo.embed.layer_geojson`` as in ``report.html``.
"""
from __future__ import annotations

import json

from gridplan.geo.embed import layer_geojson
from gridplan.geo.pages import render

MAX_VERTICES = 200_000
MAX_ROWS = 2000        # findings listed on the page (audit.json has them all)


def render_audit(result, title: str = "gridplan audit") -> str:
    """Render the audit page of an ``optimize.audit.AuditResult`` (duck-typed: geo knows nothing of optimize).

    Parameters
    ----------
    result : AuditResult
        Its ``violations``, ``certified``, ``counts``, ``stats``, ``flagged``, ``gaps`` and ``overlaps``.
    title : str
        The page's title.

    Returns
    -------
    str
        The HTML page (template ``geo/templates/audit.html.j2``).
    """
    layers = {"flagged": layer_geojson(result.flagged, ["grid_code", "unit_code", "households", "rules"],
                                       MAX_VERTICES),
              "gaps": layer_geojson(result.gaps, ["unit_code", "area_m2", "households"], MAX_VERTICES),
              "overlaps": layer_geojson(result.overlaps, ["grid_codes", "area_m2", "households"], MAX_VERTICES)}
    notes = [f"{name.capitalize()} drawn simplified (about {lay.simplified_m:,.0f} m); audit.gpkg has the exact "
             "geometry." for name, lay in layers.items() if lay.simplified_m > 0]
    rows = [v.as_dict() for v in list(result.violations)[:MAX_ROWS]]
    certified = [v.as_dict() for v in result.certified][:MAX_ROWS]
    s = result.stats
    headline = (f"{s.get('grids', 0):,} grids · {s.get('units', 0):,} units · {s.get('households', 0):,} households · "
                + ("clean: no rule broken" if result.clean else f"{len(result.violations):,} violation(s)"))
    data = {name: json.loads(lay.geojson) for name, lay in layers.items()}
    return render("audit.html.j2", title=title, headline=headline, counts=[(k, v) for k, v in result.counts.items()],
                  rows=rows, more=max(len(result.violations) - MAX_ROWS, 0), certified=certified, notes=notes,
                  data=data, clean=result.clean)
