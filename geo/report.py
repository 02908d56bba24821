"""``report.html``: one self-contained file per plan — a map, the summary tables and charts.

Opens with no network at all: Leaflet (vendored in ``geo/static``, see its README) and its CSS are
inlined, the CSS images become ``data:`` URIs, there is no tile server (the county is drawn on a
plain background with unit outlines and labels as context) and the charts are inline SVG.

Size is bounded: grids, service areas and units are embedded as GeoJSON with coordinates rounded
to 6 decimals (~0.1 m) and simplified further when a layer has more vertices than its budget;
households are never embedded point by point (their counts are already in the grids, and their
travel times are summarised as a histogram). Whatever was simplified or capped is said in the page.

Public: ``render_report(layers, summary, title)``, ``leaflet_assets()`` (also used by ``/map``),
``layer_geojson(...)`` and the SVG chart helpers ``svg_histogram`` and ``svg_bars``.
"""
from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

STATIC = Path(__file__).with_name("static")

# vertex budgets per embedded layer (~20 bytes a vertex) and feature caps: a few MB at most
MAX_VERTICES = {"grids": 150_000, "service_areas": 40_000, "units": 40_000}
MAX_FEATURES = {"grids": 20_000, "service_areas": 3_000, "stations": 5_000, "units": 5_000}
# simplification tolerances tried in turn (degrees; 1e-5 deg ~ 1.1 m)
SIMPLIFY_STEPS = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)
MAX_LABELS = 120          # unit labels drawn on the map (more would be unreadable)
MAX_UNIT_BARS = 60        # units shown in the coverage chart (the lowest first)
MAX_PROBLEMS = 200        # problems listed in the page
CANVAS_ABOVE = 3_000      # grids: draw on a canvas instead of SVG above this many features

GRID_COLUMNS = ["grid_code", "village_code", "township_code", "households", "population", "workers",
                "area_km2", "polsby_popper", "deviation"]
STATION_COLUMNS = ["station_id", "name", "existing", "village_code", "households_covered"]
SERVICE_COLUMNS = ["station_id", "minutes", "mode"]


# --------------------------------------------------------------------------------------------
# assets
@lru_cache(maxsize=1)
def leaflet_assets() -> tuple[str, str]:
    """(leaflet.js, leaflet.css) as text ready to inline: no source-map comment, CSS images as data URIs."""
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


def script_safe(text: str) -> str:
    """Text that can sit inside <script>…</script> (JSON, JS): no '</' that would close the tag."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def json_script_safe(text: str) -> str:
    """JSON text that can sit inside <script type="application/json">: no '<', '>' or '&' at all
    (they only occur inside JSON strings, where \\u003c etc. mean the same)."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --------------------------------------------------------------------------------------------
# layers → compact GeoJSON
@dataclass
class EmbeddedLayer:
    geojson: str              # a FeatureCollection, as JSON text
    features: int             # features embedded
    total: int                # features in the layer
    vertices: int             # vertices embedded
    simplified_m: float       # simplification tolerance used (metres, approx.; 0 = none)


def _json_value(v):
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            return None
        return round(f, 4) if abs(f) >= 1e-3 or f == 0 else float(f"{f:.3g}")
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return str(v)


def _wgs84(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        return gdf.to_crs(4326)
    return gdf


def layer_geojson(gdf: gpd.GeoDataFrame | None, columns: list[str], max_vertices: int | None = None,
                  max_features: int | None = None, precision: int = 6) -> EmbeddedLayer:
    """A layer as compact GeoJSON: the given columns (those present), WGS 84, coordinates rounded to
    ``precision`` decimals, simplified until at most ``max_vertices`` and capped at ``max_features``."""
    if gdf is None or len(gdf) == 0 or gdf.geometry.name not in gdf.columns:
        return EmbeddedLayer('{"type":"FeatureCollection","features":[]}', 0, 0, 0, 0.0)
    gdf = _wgs84(gdf)
    total = len(gdf)
    geoms = gdf.geometry.values
    keep = ~(shapely.is_missing(np.asarray(geoms)) | shapely.is_empty(np.asarray(geoms)))
    gdf = gdf[keep]
    if max_features is not None and len(gdf) > max_features:
        gdf = gdf.iloc[:max_features]
    geoms = np.asarray(gdf.geometry.values)
    n_vertices = int(shapely.get_num_coordinates(geoms).sum()) if len(geoms) else 0
    simplified = 0.0
    if max_vertices is not None and n_vertices > max_vertices:
        for tol in SIMPLIFY_STEPS:
            cand = shapely.simplify(geoms, tol, preserve_topology=True)
            n = int(shapely.get_num_coordinates(cand).sum())
            geoms, simplified, n_vertices = cand, tol * 111_000, n
            if n <= max_vertices:
                break
    geoms = shapely.transform(geoms, lambda c: np.round(c, precision))
    geo_texts = shapely.to_geojson(geoms)
    cols = [c for c in columns if c in gdf.columns]
    records = gdf[cols].to_dict("records") if cols else [{}] * len(gdf)
    parts = []
    for rec, g in zip(records, geo_texts):
        props = json.dumps({k: _json_value(v) for k, v in rec.items()}, ensure_ascii=False, separators=(",", ":"))
        parts.append('{"type":"Feature","properties":' + props + ',"geometry":' + g + "}")
    text = '{"type":"FeatureCollection","features":[' + ",".join(parts) + "]}"
    return EmbeddedLayer(text, len(parts), total, n_vertices, simplified)


# --------------------------------------------------------------------------------------------
# figures
def grid_deviation(grids: gpd.GeoDataFrame) -> np.ndarray:
    """Signed deviation of each grid from its unit's mean households per grid: (h - mean) / mean."""
    if "deviation" in grids.columns:
        return pd.to_numeric(grids["deviation"], errors="coerce").to_numpy(float)
    if not {"households", "village_code"} <= set(grids.columns):
        return np.full(len(grids), np.nan)
    h = pd.to_numeric(grids["households"], errors="coerce").astype(float)
    mean = h.groupby(grids["village_code"]).transform("mean")
    return ((h - mean) / mean.where(mean > 0)).to_numpy(float)


def unit_code_column(units: gpd.GeoDataFrame, summary: dict) -> str | None:
    """The unit code column of the units layer (``village_code`` or the input's code field)."""
    opts = summary.get("options") or {}
    for c in (opts.get("code_field"), "village_code", "unit_code"):
        if c and c in units.columns:
            return c
    for c in units.columns:
        if c != units.geometry.name and str(c).endswith("code"):
            return c
    return None


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            return "—"
        if f == int(f) and abs(f) < 1e15:
            return f"{int(f):,}"
        return f"{f:,.{digits}f}"
    return str(v)


def _pct(v) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if not math.isfinite(f) else f"{100 * f:.1f}%"


def _e(s) -> str:
    return html.escape("" if s is None else str(s), quote=True)


def svg_histogram(values, bins, *, band: tuple[float, float] | None = None, weights=None, xlabel: str = "",
                  ylabel: str = "count", pct_axis: bool = False, css_class: str = "gp-hist",
                  width: int = 520, height: int = 220) -> str:
    """An inline SVG histogram (one <rect class="bar"> per bin); ``band`` shades an x interval."""
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values)
    values = values[ok]
    w = None if weights is None else np.asarray(weights, dtype=float)[ok]
    bins = np.asarray(bins, dtype=float)
    counts, edges = np.histogram(np.clip(values, bins[0], bins[-1]), bins=bins, weights=w)
    ml, mr, mt, mb = 48, 12, 10, 38
    pw, ph = width - ml - mr, height - mt - mb
    lo, hi = float(edges[0]), float(edges[-1])
    top = float(counts.max()) if len(counts) and counts.max() > 0 else 1.0

    def x(v):
        return ml + (v - lo) / (hi - lo) * pw

    out = [f'<svg class="{_e(css_class)}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img">']
    if band is not None:
        b0, b1 = max(band[0], lo), min(band[1], hi)
        if b1 > b0:
            out.append(f'<rect class="band" x="{x(b0):.1f}" y="{mt}" width="{x(b1) - x(b0):.1f}" height="{ph}" '
                       f'fill="#e9f5ec"><title>tolerance</title></rect>')
    for c, e0, e1 in zip(counts, edges[:-1], edges[1:]):
        bh = ph * float(c) / top
        lab = (f"{100 * e0:.0f}% to {100 * e1:.0f}%" if pct_axis else f"{e0:g} to {e1:g}") + f": {float(c):,.0f}"
        out.append(f'<rect class="bar" x="{x(e0) + 0.5:.1f}" y="{mt + ph - bh:.1f}" width="{max(x(e1) - x(e0) - 1, 0.5):.1f}" '
                   f'height="{bh:.1f}" fill="#457b9d"><title>{_e(lab)}</title></rect>')
    # axes
    out.append(f'<line x1="{ml}" y1="{mt + ph}" x2="{ml + pw}" y2="{mt + ph}" stroke="#333"/>')
    out.append(f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{mt + ph}" stroke="#333"/>')
    for t in np.linspace(lo, hi, 5):
        lab = f"{100 * t:+.0f}%" if pct_axis else f"{t:g}"
        out.append(f'<text x="{x(t):.1f}" y="{mt + ph + 14}" font-size="10" text-anchor="middle">{_e(lab)}</text>')
    for frac in (0, 0.5, 1):
        out.append(f'<text x="{ml - 4}" y="{mt + ph - frac * ph + 3:.1f}" font-size="10" text-anchor="end">'
                   f'{_e(_fmt(top * frac, 0))}</text>')
    out.append(f'<text x="{ml + pw / 2:.1f}" y="{height - 4}" font-size="11" text-anchor="middle">{_e(xlabel)}</text>')
    out.append(f'<text x="12" y="{mt + ph / 2:.1f}" font-size="11" text-anchor="middle" '
               f'transform="rotate(-90 12 {mt + ph / 2:.1f})">{_e(ylabel)}</text>')
    out.append("</svg>")
    return "".join(out)


def svg_bars(labels, values, *, threshold: float | None = None, css_class: str = "gp-bars", width: int = 520,
             vmax: float = 1.0, as_pct: bool = True) -> str:
    """An inline SVG horizontal bar chart (one <rect class="bar"> per label), optional threshold line."""
    labels = [str(v) for v in labels]
    values = [float(v) if v is not None and math.isfinite(float(v)) else 0.0 for v in values]
    row, ml, mr, mt, mb = 16, 150, 50, 6, 22
    height = mt + mb + row * max(len(labels), 1)
    pw = width - ml - mr

    def x(v):
        return ml + max(min(v / vmax, 1.0), 0.0) * pw

    out = [f'<svg class="{_e(css_class)}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img">']
    for i, (lab, v) in enumerate(zip(labels, values)):
        y = mt + i * row
        colour = "#2a9d8f" if threshold is None or v >= threshold else "#e76f51"
        txt = f"{100 * v:.1f}%" if as_pct else _fmt(v)
        short = lab if len(lab) <= 22 else lab[:21] + "…"
        out.append(f'<text x="{ml - 4}" y="{y + 12}" font-size="10" text-anchor="end">{_e(short)}</text>')
        out.append(f'<rect class="bar" x="{ml}" y="{y + 2}" width="{x(v) - ml:.1f}" height="{row - 4}" fill="{colour}">'
                   f'<title>{_e(lab)}: {_e(txt)}</title></rect>')
        out.append(f'<text x="{x(v) + 3:.1f}" y="{y + 12}" font-size="10">{_e(txt)}</text>')
    base = mt + row * max(len(labels), 1)
    out.append(f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{base}" stroke="#333"/>')
    if threshold is not None:
        out.append(f'<line class="threshold" x1="{x(threshold):.1f}" y1="{mt}" x2="{x(threshold):.1f}" y2="{base}" '
                   f'stroke="#333" stroke-dasharray="4 3"><title>target {_e(_pct(threshold) if as_pct else threshold)}'
                   f'</title></line>')
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        lab = f"{100 * t * vmax:.0f}%" if as_pct else _fmt(t * vmax, 0)
        out.append(f'<text x="{x(t * vmax):.1f}" y="{base + 14}" font-size="10" text-anchor="middle">{lab}</text>')
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# the page
def _table(rows: list[tuple[str, str]], css_class: str = "kv") -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="{css_class}">{body}</table>'


def _summary_rows(summary: dict) -> list[tuple[str, str]]:
    cov = summary.get("coverage") or {}
    bal = summary.get("balance") or {}
    comp = summary.get("compactness") or {}
    rows = [
        ("Households", _e(_fmt(summary.get("households")))),
        ("Units", _e(_fmt(summary.get("units")))),
        ("Grids", _e(_fmt(summary.get("grids")))),
        ("Grid workers", _e(_fmt(summary.get("workers")))),
        ("Stations", _e(_fmt(summary.get("stations")))),
    ]
    if cov:
        rows.append(("Coverage", _e(f"{_pct(cov.get('share'))} of households within {_fmt(cov.get('minutes'))} min "
                                    f"({cov.get('mode', '?')})")))
    if bal:
        tol = bal.get("tolerance")
        rows += [("Balance: max |deviation|", _e(_pct(bal.get("max_abs_dev")))),
                 ("Balance: 95th percentile |deviation|", _e(_pct(bal.get("p95_abs_dev")))),
                 ("Grids within tolerance" + (f" (±{_pct(tol)})" if tol is not None else ""),
                  _e(_pct(bal.get("within_tolerance_share"))))]
        if "within_granular_tolerance_share" in bal:
            rows.append(("Grids within tolerance, allowing for indivisible blocks",
                         _e(_pct(bal.get("within_granular_tolerance_share")))))
    if comp.get("polsby_popper_mean") is not None:
        rows.append(("Compactness (mean Polsby-Popper)", _e(_fmt(comp.get("polsby_popper_mean")))))
    for key, label in (("contiguous_share", "Contiguous grids"),):
        if key in summary:
            rows.append((label, _e(_pct(summary[key]))))
    for key, label in (("gap_area_m2", "Gap area (m²)"), ("overlap_area_m2", "Overlap area (m²)"),
                       ("unassigned_households", "Households outside every unit")):
        if key in summary:
            rows.append((label, _e(_fmt(summary[key], 1))))
    return rows


def _problems_html(problems) -> str:
    problems = list(problems or [])
    if not problems:
        return "<p>No data problems found.</p>"
    items = []
    for p in problems[:MAX_PROBLEMS]:
        if isinstance(p, dict):
            level = "ERROR" if p.get("fatal") else "warning"
            where = ", ".join(str(x) for x in (p.get("source"), p.get("row")) if x)
            count = p.get("count") or 1
            more = f" (×{count})" if count and count > 1 else ""
            items.append(f'<li class="{"fatal" if p.get("fatal") else "warn"}"><b>{_e(level)}</b> '
                         f'{_e(where)}: {_e(p.get("message") or p.get("kind"))}{_e(more)}</li>')
        else:
            items.append(f"<li>{_e(p)}</li>")
    extra = (f"<p>… and {len(problems) - MAX_PROBLEMS} more (see summary.json).</p>"
             if len(problems) > MAX_PROBLEMS else "")
    return f'<ul class="problems">{"".join(items)}</ul>{extra}'


def _runtime_html(runtime: dict) -> str:
    if not runtime:
        return "<p>—</p>"
    rows = [(str(k), _e(f"{float(v):.2f} s") if isinstance(v, (int, float)) else _e(v)) for k, v in runtime.items()]
    return _table(rows, "kv runtime")


def _units_table(units: gpd.GeoDataFrame, code_col: str | None) -> str:
    if units is None or len(units) == 0:
        return "<p>No units.</p>"
    cols = [c for c in (code_col, "village_name", "households", "grids", "workers", "coverage")
            if c and c in units.columns]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = []
    for rec in units[cols].to_dict("records"):
        cells = []
        for c in cols:
            v = rec[c]
            cells.append(f"<td>{_e(_pct(v) if c == 'coverage' else _fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="units sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _minutes_chart(households: gpd.GeoDataFrame | None, minutes_target) -> str:
    if households is None or len(households) == 0 or "minutes" not in households.columns:
        return ""
    m = pd.to_numeric(households["minutes"], errors="coerce").to_numpy(float)
    w = (pd.to_numeric(households["households"], errors="coerce").fillna(1).to_numpy(float)
         if "households" in households.columns else None)
    if not np.isfinite(m).any():
        return ""
    target = float(minutes_target) if minutes_target else float(np.nanmax(m))
    top = max(target * 2, 5.0)
    bins = np.linspace(0, top, 21)
    svg = svg_histogram(m, bins, band=(0, target), weights=w, xlabel="minutes to the nearest station "
                        f"(values above {top:g} drawn in the last bar)", ylabel="households", css_class="gp-minutes")
    return f"<h3>Travel time to the nearest station</h3>{svg}"


def render_report(layers: dict[str, gpd.GeoDataFrame], summary: dict, title: str = "gridplan") -> str:
    """The report.html text for a plan: self-contained (no network), a few MB at most.

    ``layers``: "grids", "stations", "service_areas", "households", "units", "workers" — WGS 84
    GeoDataFrames with the contract's columns (any may be missing or empty). ``summary``: as
    summary.json.
    """
    summary = dict(summary or {})
    grids = layers.get("grids")
    stations = layers.get("stations")
    service = layers.get("service_areas")
    units = layers.get("units")
    households = layers.get("households")
    workers = layers.get("workers")
    notes: list[str] = []

    if grids is not None and len(grids):
        grids = grids.copy()
        grids["deviation"] = grid_deviation(grids)
    g = layer_geojson(grids, GRID_COLUMNS, MAX_VERTICES["grids"], MAX_FEATURES["grids"])
    s = layer_geojson(stations, STATION_COLUMNS, None, MAX_FEATURES["stations"])
    sa = layer_geojson(service, SERVICE_COLUMNS, MAX_VERTICES["service_areas"], MAX_FEATURES["service_areas"])
    code_col = unit_code_column(units, summary) if units is not None and len(units) else None
    unit_cols = [c for c in (code_col, "village_name") if c]
    u = layer_geojson(units, unit_cols, MAX_VERTICES["units"], MAX_FEATURES["units"])
    for name, lay in (("grids", g), ("stations", s), ("service areas", sa), ("unit outlines", u)):
        if lay.features < lay.total:
            notes.append(f"Only the first {lay.features:,} of {lay.total:,} {name} are drawn, to keep this file small.")
        if lay.simplified_m > 0:
            notes.append(f"{name.capitalize()} are drawn simplified (to about {lay.simplified_m:,.0f} m) to keep "
                         f"this file small; plan.gpkg has the exact geometry.")
    if households is not None and len(households):
        notes.append(f"The {len(households):,} household points are not drawn one by one; their counts are in "
                     f"the grids and their travel times in the chart below.")

    # unit labels at a point inside each unit
    labels = []
    if units is not None and len(units) and len(units) <= MAX_LABELS:
        uw = _wgs84(units)
        pts = shapely.point_on_surface(np.asarray(uw.geometry.values))
        names = (uw["village_name"] if "village_name" in uw.columns else pd.Series([None] * len(uw), index=uw.index))
        codes = uw[code_col] if code_col else pd.Series([""] * len(uw), index=uw.index)
        for p, n, c in zip(pts, names, codes):
            if p is None or shapely.is_empty(p):
                continue
            text = n if isinstance(n, str) and n.strip() else str(c)
            labels.append([round(p.y, 6), round(p.x, 6), text])
    elif units is not None and len(units) > MAX_LABELS:
        notes.append(f"Unit labels are left off the map ({len(units):,} units); click a grid to see its unit.")

    cov = summary.get("coverage") or {}
    bal = summary.get("balance") or {}
    tol = bal.get("tolerance", (summary.get("options") or {}).get("tolerance", 0.10))
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        tol = 0.10

    # charts
    charts = []
    dev = grid_deviation(grids) if grids is not None and len(grids) else np.zeros(0)
    if len(dev):
        span = max(0.3, min(1.0, math.ceil(np.nanmax(np.abs(dev)) * 20) / 20 if np.isfinite(dev).any() else 0.3))
        bins = np.linspace(-span, span, 25)
        charts.append("<h3>Balance: grids by deviation from their unit's mean households per grid</h3>"
                      + svg_histogram(dev, bins, band=(-tol, tol), xlabel=f"deviation (shaded: ±{100 * tol:.0f}% tolerance)",
                                      ylabel="grids", pct_axis=True, css_class="gp-balance"))
    if units is not None and len(units) and "coverage" in units.columns:
        ut = units.copy()
        ut["_cov"] = pd.to_numeric(ut["coverage"], errors="coerce")
        ut = ut[ut["_cov"].notna()].sort_values("_cov")
        shown = ut.iloc[:MAX_UNIT_BARS]
        labs = []
        for _, r in shown.iterrows():
            n = r.get("village_name")
            c = r.get(code_col) if code_col else ""
            labs.append(f"{n} ({c})" if isinstance(n, str) and n else str(c))
        target = cov.get("target", (summary.get("options") or {}).get("coverage_target"))
        more = (f" — the {MAX_UNIT_BARS} lowest of {len(ut):,} units" if len(ut) > MAX_UNIT_BARS else "")
        if len(shown):
            charts.append(f"<h3>Coverage by unit (share of households within {_fmt(cov.get('minutes'))} min){more}</h3>"
                          + svg_bars(labs, shown["_cov"].tolist(), threshold=target, css_class="gp-coverage"))
    charts.append(_minutes_chart(households, cov.get("minutes")))

    stat_rows = _summary_rows(summary)
    if workers is not None and len(workers) and "role" in workers.columns:
        roles = workers["role"].value_counts().to_dict()
        stat_rows.append(("Roster", _e(", ".join(f"{v} {k}" for k, v in roles.items()))))

    data = {
        "grids": "__GRIDS__", "stations": "__STATIONS__", "service_areas": "__SA__", "units": "__UNITS__",
        "labels": labels, "tolerance": tol, "canvas": g.features > CANVAS_ABOVE,
        "minutes": cov.get("minutes"), "mode": cov.get("mode"),
    }
    data_text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for key, lay in (("__GRIDS__", g), ("__STATIONS__", s), ("__SA__", sa), ("__UNITS__", u)):
        data_text = data_text.replace(f'"{key}"', lay.geojson, 1)

    js, css = leaflet_assets()
    notes_html = "".join(f"<li>{_e(n)}</li>" for n in notes)
    headline = (f"{_fmt(summary.get('households'))} households · {_fmt(summary.get('units'))} units · "
                f"{_fmt(summary.get('grids'))} grids · {_fmt(summary.get('workers'))} workers · "
                f"{_fmt(summary.get('stations'))} stations · coverage {_pct(cov.get('share'))}")
    parts = {
        "TITLE": _e(title), "HEADLINE": _e(headline), "LEAFLET_CSS": css, "SUMMARY": _table(stat_rows),
        "RUNTIME": _runtime_html(summary.get("runtime_s") or {}), "CHARTS": "".join(charts),
        "UNITS": _units_table(units, code_col), "PROBLEMS": _problems_html(summary.get("problems")),
        "NOTES": f"<ul class='notes'>{notes_html}</ul>" if notes else "",
        "LEAFLET_JS": script_safe(js), "DATA": json_script_safe(data_text),
    }
    # one pass, so text from the data can never be taken for a placeholder
    return re.sub(r"%%([A-Z_]+)%%", lambda m: parts[m.group(1)], PAGE)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%%TITLE%% — grid plan report</title>
<style>%%LEAFLET_CSS%%</style>
<style>
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", "Noto Sans", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 0; color: #222; background: #fafafa; }
header { padding: 10px 16px; background: #1d3557; color: #fff; }
header h1 { margin: 0; font-size: 20px; } header p { margin: 2px 0 0; opacity: .9; }
main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(320px, 2fr); gap: 12px; padding: 12px; }
#map { height: 72vh; min-height: 420px; background: #eef1f4; border: 1px solid #ccc; }
section { background: #fff; border: 1px solid #ddd; padding: 8px 12px; margin-bottom: 12px; }
h2 { font-size: 16px; margin: 4px 0 8px; } h3 { font-size: 13px; margin: 12px 0 4px; }
table { border-collapse: collapse; font-size: 13px; }
table.kv th { text-align: left; font-weight: normal; color: #555; padding: 2px 12px 2px 0; }
table.kv td { font-weight: 600; }
table.units { width: 100%; } table.units th, table.units td { border-bottom: 1px solid #eee; padding: 2px 6px; text-align: right; }
table.units th:first-child, table.units td:first-child { text-align: left; }
table.units th { cursor: pointer; background: #f3f3f3; position: sticky; top: 0; }
.scroll { max-height: 420px; overflow: auto; }
.problems li.fatal { color: #b00020; } .notes { color: #555; font-size: 12px; }
.gp-label { background: none; border: none; color: #1d3557; font-size: 11px; font-weight: 600;
            text-shadow: 0 0 3px #fff, 0 0 3px #fff; white-space: nowrap; text-align: center; }
.legend { background: #fff; padding: 6px 8px; border: 1px solid #bbb; font-size: 12px; line-height: 1.3; }
.legend .ramp { width: 160px; height: 10px; }
.gp-popup table th { text-align: left; font-weight: normal; color: #555; padding-right: 8px; }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header><h1>%%TITLE%%</h1><p>%%HEADLINE%%</p></header>
<main>
<div>
  <div id="map"></div>
  %%NOTES%%
  <section><h2>Coverage by unit</h2><div class="scroll">%%UNITS%%</div></section>
</div>
<div>
  <section><h2>Summary</h2>%%SUMMARY%%</section>
  <section><h2>Charts</h2>%%CHARTS%%</section>
  <section><h2>Runtime per stage</h2>%%RUNTIME%%</section>
  <section><h2>Data problems</h2>%%PROBLEMS%%</section>
</div>
</main>
<script>%%LEAFLET_JS%%</script>
<script type="application/json" id="gp-data">%%DATA%%</script>
<script>
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("gp-data").textContent);
  var tol = D.tolerance || 0.1, span = Math.max(0.3, 3 * tol);
  function esc(s) { return String(s == null ? "—" : s).replace(/[&<>"']/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]; }); }
  function lerp(a, b, t) { return Math.round(a + (b - a) * t); }
  function mix(c1, c2, t) { return "rgb(" + lerp(c1[0], c2[0], t) + "," + lerp(c1[1], c2[1], t) + "," + lerp(c1[2], c2[2], t) + ")"; }
  var BLUE = [49, 104, 180], WHITE = [247, 247, 247], RED = [200, 40, 40];
  function devColour(d) {           // blue: fewer households than the unit mean; red: more
    if (d == null || isNaN(d)) return "#bbbbbb";
    var t = Math.max(-1, Math.min(1, d / span));
    return t < 0 ? mix(WHITE, BLUE, -t) : mix(WHITE, RED, t);
  }
  function pct(v, signed) { return v == null ? "—" : (signed && v > 0 ? "+" : "") + (100 * v).toFixed(1) + "%"; }
  function num(v, d) { return v == null ? "—" : (d == null ? Number(v).toLocaleString() : Number(v).toFixed(d)); }
  function gridPopup(p) {
    return '<div class="gp-popup"><b class="code">' + esc(p.grid_code) + '</b><table>' +
      '<tr><th>unit</th><td>' + esc(p.village_code) + '</td></tr>' +
      '<tr><th>households</th><td>' + num(p.households) + '</td></tr>' +
      '<tr><th>population</th><td>' + num(p.population, 0) + '</td></tr>' +
      '<tr><th>workers</th><td>' + num(p.workers) + '</td></tr>' +
      '<tr><th>deviation</th><td>' + pct(p.deviation, true) + '</td></tr>' +
      '<tr><th>area</th><td>' + num(p.area_km2, 3) + ' km²</td></tr>' +
      '<tr><th>Polsby-Popper</th><td>' + num(p.polsby_popper, 3) + '</td></tr></table></div>';
  }
  var map = L.map("map", {preferCanvas: !!D.canvas, zoomSnap: 0.25, attributionControl: false});
  var units = L.geoJSON(D.units, {interactive: false,
    style: {color: "#1d3557", weight: 1.6, fill: false, dashArray: "5 3", className: "gp-unit"}});
  var grids = L.geoJSON(D.grids, {
    style: function (f) { return {color: "#444", weight: 0.7, fillColor: devColour(f.properties.deviation),
                                  fillOpacity: 0.8, className: "gp-grid"}; },
    onEachFeature: function (f, layer) {
      layer.bindPopup(gridPopup(f.properties));
      layer.on("mouseover", function () { layer.setStyle({weight: 2.5, color: "#000"}); });
      layer.on("mouseout", function () { grids.resetStyle(layer); });
    }
  });
  var service = L.geoJSON(D.service_areas, {interactive: false,
    style: {color: "#2a9d8f", weight: 1, dashArray: "3 3", fillColor: "#2a9d8f", fillOpacity: 0.06, className: "gp-service"}});
  var stations = L.geoJSON(D.stations, {
    pointToLayer: function (f, ll) {
      var ex = f.properties.existing === true || f.properties.existing === "true" || f.properties.existing === 1;
      return L.circleMarker(ll, {radius: 6, weight: 2, color: "#fff", fillColor: ex ? "#6a040f" : "#e63946",
                                 fillOpacity: 1, className: "gp-station"});
    },
    onEachFeature: function (f, layer) {
      var p = f.properties;
      layer.bindPopup('<div class="gp-popup"><b>station ' + esc(p.station_id) + '</b><br>' + esc(p.name) +
        '<br>' + (p.existing ? "existing" : "proposed") + ' · unit ' + esc(p.village_code) +
        '<br>households within ' + esc(D.minutes) + ' min: ' + num(p.households_covered) + '</div>');
    }
  });
  var labels = L.layerGroup(D.labels.map(function (l) {
    return L.marker([l[0], l[1]], {interactive: false, keyboard: false,
      icon: L.divIcon({className: "gp-label", html: esc(l[2]), iconSize: [120, 14], iconAnchor: [60, 7]})});
  }));
  grids.addTo(map); service.addTo(map); units.addTo(map); labels.addTo(map); stations.addTo(map);
  L.control.layers(null, {"grids (colour: deviation)": grids, "service areas": service, "unit outlines": units,
                          "unit labels": labels, "stations": stations}, {collapsed: false}).addTo(map);
  L.control.scale({imperial: false}).addTo(map);
  var legend = L.control({position: "bottomright"});
  legend.onAdd = function () {
    var div = L.DomUtil.create("div", "legend");
    div.innerHTML = "<b>households vs unit mean</b><br>" +
      '<svg class="ramp" viewBox="0 0 160 10"><defs><linearGradient id="gpramp"><stop offset="0" stop-color="' +
      devColour(-span) + '"/><stop offset="0.5" stop-color="' + devColour(0) + '"/><stop offset="1" stop-color="' +
      devColour(span) + '"/></linearGradient></defs><rect width="160" height="10" fill="url(#gpramp)"/></svg><br>' +
      pct(-span, true) + " &nbsp; 0 &nbsp; " + pct(span, true) + "<br>tolerance ±" + (100 * tol).toFixed(0) + "%" +
      '<br><span style="color:#e63946">●</span> proposed station <span style="color:#6a040f">●</span> existing';
    return div;
  };
  legend.addTo(map);
  // find a grid by its code (or the start of it): zoom to it and open its figures
  var byCode = {};
  grids.eachLayer(function (l) { byCode[l.feature.properties.grid_code] = l; });
  var finder = L.control({position: "topleft"});
  finder.onAdd = function () {
    var div = L.DomUtil.create("div", "legend gp-find");
    div.innerHTML = '<input type="search" placeholder="grid code…" size="17" aria-label="find a grid by code">';
    L.DomEvent.disableClickPropagation(div);
    var input = div.querySelector("input");
    input.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter") return;
      var q = input.value.trim(), hit = byCode[q];
      if (!hit && q) {
        var codes = Object.keys(byCode).filter(function (c) { return c.indexOf(q) === 0; });
        if (codes.length) hit = byCode[codes.sort()[0]];
      }
      input.style.background = hit ? "" : "#fde2e2";
      if (hit) { map.fitBounds(hit.getBounds(), {maxZoom: 16}); hit.openPopup(); }
    });
    return div;
  };
  finder.addTo(map);
  var b = grids.getBounds();
  if (!b.isValid()) b = units.getBounds();
  if (!b.isValid()) b = stations.getBounds();
  if (b.isValid()) map.fitBounds(b, {padding: [10, 10]}); else map.setView([35, 105], 4);
  window.gridplan = {map: map, grids: grids, stations: stations, units: units, service: service};
  // sortable units table
  document.querySelectorAll("table.sortable th").forEach(function (th, i) {
    th.addEventListener("click", function () {
      var tbody = th.closest("table").tBodies[0], rows = Array.prototype.slice.call(tbody.rows);
      var asc = th.dataset.asc !== "1"; th.dataset.asc = asc ? "1" : "0";
      function key(r) { var t = r.cells[i].textContent.replace(/[,%]/g, ""); var n = parseFloat(t); return isNaN(n) ? t : n; }
      rows.sort(function (a, c) { var x = key(a), y = key(c); return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1); });
      rows.forEach(function (r) { tbody.appendChild(r); });
    });
  });
})();
</script>
</body>
</html>
"""

__all__ = ["render_report", "leaflet_assets", "layer_geojson", "EmbeddedLayer", "svg_histogram", "svg_bars",
           "grid_deviation", "script_safe", "json_script_safe"]
