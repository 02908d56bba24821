"""``report.html``: one self-contained file per plan — a map, the summary tables and charts.

Opens with no network at all: Leaflet (vendored in ``geo/static``, see its README) and its CSS are
inlined, the CSS images become ``data:`` URIs, there is no tile server (the county is drawn on a
plain background with unit outlines and labels as context) and the charts are inline SVG.

Size is bounded: grids, service areas and units are embedded as GeoJSON with coordinates rounded
to 6 decimals (~0.1 m) and simplified further when a layer has more vertices than its budget;
households are never embedded point by point (their counts are already in the grids, and their
travel times are summarised as a histogram). Whatever was simplified or capped is said in the page.

The page is ``geo/templates/report.html.j2`` rendered through ``geo.pages``. Public: ``render_report``,
``layer_geojson`` (from ``geo.embed``) and the SVG chart helpers ``svg_histogram`` and ``svg_bars``.
"""
from __future__ import annotations

import json
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from markupsafe import Markup

from gridplan.geo.embed import EmbeddedLayer, layer_geojson, wgs84_frame
from gridplan.geo.pages import (
    TEMPLATES,
    environment,
    json_script_safe,
    leaflet_assets,
    maplibre_assets,
    render,
    script_safe,
)
from gridplan.geo.summary import Summary, fmt_num, fmt_pct

# vertex budgets per embedded layer (~20 bytes a vertex) and feature caps: a few MB at most
MAX_VERTICES = {"grids": 150_000, "service_areas": 40_000, "units": 40_000, "micro_grids": 100_000}
MAX_FEATURES = {"grids": 20_000, "service_areas": 3_000, "stations": 5_000, "units": 5_000, "micro_grids": 30_000}
MAX_LABELS = 120          # unit labels drawn on the map (more would be unreadable)
MAX_UNIT_BARS = 60        # units shown in the coverage chart (the lowest first)
MAX_PROBLEMS = 200        # problems listed in the page
CANVAS_ABOVE = 3_000      # grids: draw on a canvas instead of SVG above this many features
MAPLIBRE_ABOVE = 3_000    # grids: draw with MapLibre GL JS (vector tiles cut in the browser) above this many

GRID_COLUMNS = ["grid_code", "village_code", "township_code", "households", "population", "workers",
                "area_km2", "polsby_popper", "deviation"]
STATION_COLUMNS = ["station_id", "name", "existing", "village_code", "households_covered"]
MICRO_COLUMNS = ["micro_grid_code", "grid_code", "households"]
SERVICE_COLUMNS = ["station_id", "minutes", "mode"]


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


def unit_code_column(units: gpd.GeoDataFrame, summary) -> str | None:
    """Return the unit code column of the units layer (``village_code`` or the input's code field)."""
    s = summary if isinstance(summary, Summary) else Summary.from_dict(summary)
    for c in (s.option("code_field"), "village_code", "unit_code"):
        if c and c in units.columns:
            return c
    for c in units.columns:
        if c != units.geometry.name and str(c).endswith("code"):
            return c
    return None


_fmt = fmt_num    # the one rule for figures, shared with the CLI (geo.summary)
_pct = fmt_pct


def _charts():
    return environment().get_template("charts.svg.j2").module


def svg_histogram(values, bins, *, band: tuple[float, float] | None = None, weights=None, xlabel: str = "",
                  ylabel: str = "count", pct_axis: bool = False, css_class: str = "gp-hist",
                  width: int = 520, height: int = 220) -> Markup:
    """Draw an inline SVG histogram (one ``<rect class="bar">`` per bin); ``band`` shades an x interval."""
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

    shade = None
    if band is not None:
        b0, b1 = max(band[0], lo), min(band[1], hi)
        if b1 > b0:
            shade = {"x": x(b0), "w": x(b1) - x(b0)}
    bars = []
    for c, e0, e1 in zip(counts, edges[:-1], edges[1:]):
        bh = ph * float(c) / top
        lab = (f"{100 * e0:.0f}% to {100 * e1:.0f}%" if pct_axis else f"{e0:g} to {e1:g}") + f": {float(c):,.0f}"
        bars.append({"x": x(e0) + 0.5, "y": mt + ph - bh, "w": max(x(e1) - x(e0) - 1, 0.5), "h": bh, "label": lab})
    chart = {"css_class": css_class, "width": width, "height": height, "ml": ml, "mt": mt, "pw": pw, "ph": ph,
             "band": shade, "bars": bars, "xlabel": xlabel, "ylabel": ylabel,
             "xticks": [{"x": x(t), "label": f"{100 * t:+.0f}%" if pct_axis else f"{t:g}"}
                        for t in np.linspace(lo, hi, 5)],
             "yticks": [{"y": mt + ph - frac * ph + 3, "label": _fmt(top * frac, 0)} for frac in (0, 0.5, 1)]}
    return Markup(_charts().histogram(chart))


def svg_bars(labels, values, *, threshold: float | None = None, css_class: str = "gp-bars", width: int = 520,
             vmax: float = 1.0, as_pct: bool = True) -> Markup:
    """Draw an inline SVG horizontal bar chart (one ``<rect class="bar">`` per label), optional threshold line."""
    labels = [str(v) for v in labels]
    values = [float(v) if v is not None and math.isfinite(float(v)) else 0.0 for v in values]
    row, ml, mr, mt, mb = 16, 150, 50, 6, 22
    height = mt + mb + row * max(len(labels), 1)
    pw = width - ml - mr

    def x(v):
        return ml + max(min(v / vmax, 1.0), 0.0) * pw

    bars = []
    for i, (lab, v) in enumerate(zip(labels, values)):
        txt = f"{100 * v:.1f}%" if as_pct else _fmt(v)
        bars.append({"y": mt + i * row, "w": x(v) - ml, "tx": x(v) + 3, "text": txt, "label": lab,
                     "short": lab if len(lab) <= 22 else lab[:21] + "…",
                     "colour": "#2a9d8f" if threshold is None or v >= threshold else "#e76f51"})
    base = mt + row * max(len(labels), 1)
    line = None
    if threshold is not None:
        line = {"x": x(threshold), "label": _pct(threshold) if as_pct else threshold}
    chart = {"css_class": css_class, "width": width, "height": height, "ml": ml, "mt": mt, "row": row,
             "base": base, "bars": bars, "threshold": line,
             "xticks": [{"x": x(t * vmax), "label": f"{100 * t * vmax:.0f}%" if as_pct else _fmt(t * vmax, 0)}
                        for t in (0, 0.25, 0.5, 0.75, 1.0)]}
    return Markup(_charts().bars(chart))


# --------------------------------------------------------------------------------------------
# the page's tables (plain text: the template escapes)
def _level_rows(s: Summary) -> list[tuple[str, str]]:
    """Return the five levels (county, township, village, grid, micro-grid) and the micro-grid sizes, when known."""
    levels, micro = s.extra.get("levels"), s.extra.get("micro_grids")
    rows = []
    if isinstance(levels, dict):
        names = (("counties", "counties"), ("townships", "townships"), ("villages", "villages"), ("grids", "grids"),
                 ("micro_grids", "micro-grids"))
        rows.append(("Levels", " · ".join(f"{_fmt(levels.get(k))} {label}" for k, label in names
                                          if levels.get(k) is not None)))
    if isinstance(micro, dict):
        rows.append(("Micro-grids", f"{_fmt(micro.get('count'))} of about {_fmt(micro.get('target'))} households "
                                    f"(median {_fmt(micro.get('households_median'))}, 90th percentile "
                                    f"{_fmt(micro.get('households_p90'))})"))
    return rows


def _measure_rows(bal) -> list[tuple[str, str]]:
    """Return what the balance is measured in, and the spread of the measures it does not balance."""
    extra = bal.extra if bal is not None else {}
    measure = extra.get("measure")
    if not measure or measure == "households" and "secondary" not in extra:
        return []
    rows = [("Balanced measure", str(measure) + (f" = {extra['workload']}" if measure == "workload" else ""))]
    for key, label in (("households_spread", "households"), ("workload_spread", "workload")):
        if isinstance(extra.get(key), dict):
            rows.append((f"Spread of {label} (not balanced)", f"{_pct(extra[key].get('within_tolerance_share'))} "
                         f"of grids within tolerance, max |deviation| {_pct(extra[key].get('max_abs_dev'))}"))
    sec = extra.get("secondary")
    if isinstance(sec, dict):
        rows.append((f"Secondary balance: {sec.get('measure')} (±{_pct(sec.get('tolerance'))})",
                     f"{_pct(sec.get('within_tolerance_share'))} of grids within, max |deviation| "
                     f"{_pct(sec.get('max_abs_dev'))}"))
    return rows


def _summary_rows(s: Summary) -> list[tuple[str, str]]:
    cov, bal, comp = s.coverage, s.balance, s.compactness
    rows = [("Households", _fmt(s.households)), ("Units", _fmt(s.units)),
            ("Grids", _fmt(s.grids)), ("Grid workers", _fmt(s.workers)),
            ("Stations", _fmt(s.stations))] + _level_rows(s)
    if cov is not None:
        rows.append(("Coverage", f"{_pct(cov.share)} of households within {_fmt(cov.minutes)} min "
                                 f"({_fmt(cov.mode)})"))
    extra = cov.extra if cov is not None else {}
    for key, label, fmt in (("worst_minutes", "Worst travel time (min)", lambda v: _fmt(v, 1)),
                            ("double_coverage_share", "Households within reach of two stations", _pct),
                            ("utilisation_max", "Station utilisation: highest", _pct),
                            ("utilisation_mean", "Station utilisation: mean", _pct)):
        if isinstance(extra.get(key), (int, float)):
            rows.append((label, fmt(extra[key])))
    if bal is not None:
        tol = bal.tolerance
        rows += [("Grids within tolerance" + (f" (±{_pct(tol)})" if tol is not None else ""),
                  _pct(bal.within_tolerance_share)),
                 ("Balance: max |deviation|", _pct(bal.max_abs_dev)),
                 ("Balance: 95th percentile |deviation|", _pct(bal.p95_abs_dev))]
        if "within_granular_tolerance_share" in (bal.keys or ()):
            rows.append(("Grids within tolerance, allowing for indivisible blocks (secondary)",
                         _pct(bal.within_granular_tolerance_share)))
        rows += _measure_rows(bal)
    if comp is not None and comp.polsby_popper_mean is not None:
        rows.append(("Compactness (mean Polsby-Popper)", _fmt(comp.polsby_popper_mean)))
    given = s.keys or ()
    if "contiguous_share" in given:
        rows.append(("Contiguous grids", _pct(s.contiguous_share)))
    for key, label in (("gap_area_m2", "Gap area (m²)"), ("overlap_area_m2", "Overlap area (m²)"),
                       ("unassigned_households", "Households outside every unit")):
        if key in given:
            rows.append((label, _fmt(getattr(s, key), 1)))
    return rows


def _problem_items(problems) -> list[dict]:
    items = []
    for p in list(problems or [])[:MAX_PROBLEMS]:
        if p.text is None:
            items.append({"level": "ERROR" if p.is_fatal else "warning",
                          "css": "fatal" if p.is_fatal else "warn",
                          "where": ", ".join(str(x) for x in (p.source, p.row) if x),
                          "message": p.message or p.kind,
                          "more": f" (×{p.shown_count})" if p.shown_count > 1 else ""})
        else:
            items.append({"level": None, "message": p.text})
    return items


def _runtime_rows(runtime: dict) -> list[tuple[str, str]]:
    return [(str(k), f"{float(v):.2f} s" if isinstance(v, (int, float)) else str(v)) for k, v in (runtime or {}).items()]


def _units_table(units: gpd.GeoDataFrame | None, code_col: str | None) -> dict:
    if units is None or len(units) == 0:
        return {"columns": [], "rows": []}
    cols = [c for c in (code_col, "village_name", "households", "grids", "workers", "coverage")
            if c and c in units.columns]
    rows = [[_pct(rec[c]) if c == "coverage" else _fmt(rec[c]) for c in cols] for rec in units[cols].to_dict("records")]
    return {"columns": cols, "rows": rows}


def _minutes_chart(households: gpd.GeoDataFrame | None, minutes_target) -> dict | None:
    if households is None or len(households) == 0 or "minutes" not in households.columns:
        return None
    m = pd.to_numeric(households["minutes"], errors="coerce").to_numpy(float)
    w = (pd.to_numeric(households["households"], errors="coerce").fillna(1).to_numpy(float)
         if "households" in households.columns else None)
    if not np.isfinite(m).any():
        return None
    target = float(minutes_target) if minutes_target else float(np.nanmax(m))
    top = max(target * 2, 5.0)
    bins = np.linspace(0, top, 21)
    svg = svg_histogram(m, bins, band=(0, target), weights=w, xlabel="minutes to the nearest station "
                        f"(values above {top:g} drawn in the last bar)", ylabel="households", css_class="gp-minutes")
    return {"title": "Travel time to the nearest station", "svg": svg}


def _embedded_layers(layers: dict, code_col: str | None, notes: list[str]) -> dict:
    """Return the map's layers as compact GeoJSON (parsed), noting whatever was capped or simplified."""
    grids = layers.get("grids")
    if grids is not None and len(grids):
        grids = grids.copy()
        grids["deviation"] = grid_deviation(grids)
    units = layers.get("units")
    embedded = {"grids": layer_geojson(grids, GRID_COLUMNS, MAX_VERTICES["grids"], MAX_FEATURES["grids"]),
                "stations": layer_geojson(layers.get("stations"), STATION_COLUMNS, None, MAX_FEATURES["stations"]),
                "service_areas": layer_geojson(layers.get("service_areas"), SERVICE_COLUMNS,
                                               MAX_VERTICES["service_areas"], MAX_FEATURES["service_areas"]),
                "units": layer_geojson(units, [c for c in (code_col, "village_name") if c], MAX_VERTICES["units"],
                                       MAX_FEATURES["units"]),
                "micro_grids": layer_geojson(layers.get("micro_grids"), MICRO_COLUMNS, MAX_VERTICES["micro_grids"],
                                             MAX_FEATURES["micro_grids"])}
    for name, lay in zip(("grids", "stations", "service areas", "unit outlines", "micro-grids"), embedded.values()):
        if lay.features < lay.total:
            notes.append(f"Only the first {lay.features:,} of {lay.total:,} {name} are drawn, to keep this file small.")
        if lay.simplified_m > 0:
            notes.append(f"{name.capitalize()} are drawn simplified (to about {lay.simplified_m:,.0f} m) to keep "
                         f"this file small; plan.gpkg has the exact geometry.")
    households = layers.get("households")
    if households is not None and len(households):
        notes.append(f"The {len(households):,} household points are not drawn one by one; their counts are in "
                     f"the grids and their travel times in the chart below.")
    return embedded


def _unit_labels(units: gpd.GeoDataFrame | None, code_col: str | None, notes: list[str]) -> list[list]:
    """[lat, lon, text] at a point inside each unit (none above MAX_LABELS units, with a note)."""
    labels: list[list] = []
    if units is None or len(units) == 0:
        return labels
    if len(units) > MAX_LABELS:
        notes.append(f"Unit labels are left off the map ({len(units):,} units); click a grid to see its unit.")
        return labels
    uw = wgs84_frame(units)
    pts = shapely.point_on_surface(np.asarray(uw.geometry.values))
    names = (uw["village_name"] if "village_name" in uw.columns else pd.Series([None] * len(uw), index=uw.index))
    codes = uw[code_col] if code_col else pd.Series([""] * len(uw), index=uw.index)
    for p, n, c in zip(pts, names, codes):
        if p is None or shapely.is_empty(p):
            continue
        text = n if isinstance(n, str) and n.strip() else str(c)
        labels.append([round(p.y, 6), round(p.x, 6), text])
    return labels


def _utilisation_chart(stations: gpd.GeoDataFrame | None) -> dict | None:
    """Bars of the stations' utilisation (households assigned / capacity), the fullest first."""
    if stations is None or not len(stations) or "utilisation" not in stations.columns:
        return None
    st = stations.assign(_u=pd.to_numeric(stations["utilisation"], errors="coerce"))
    st = st[st["_u"].notna()].sort_values(["_u", "station_id"], ascending=[False, True])
    if not len(st):
        return None
    shown = st.iloc[:MAX_UNIT_BARS]
    labs = [f"{r.station_id} {r['name']}" if isinstance(r.get("name"), str) else str(r.station_id)
            for _, r in shown.iterrows()]
    more = f" — the {MAX_UNIT_BARS} fullest of {len(st):,}" if len(st) > MAX_UNIT_BARS else ""
    return {"title": f"Station utilisation (households assigned / capacity; 100% = full){more}",
            "svg": svg_bars(labs, shown["_u"].tolist(), css_class="gp-utilisation",
                            vmax=max(1.0, float(shown["_u"].max())))}


def _coverage_chart(units: gpd.GeoDataFrame | None, code_col: str | None, s: Summary) -> dict | None:
    """Bars of the units' coverage, the lowest first, against the coverage target."""
    if units is None or len(units) == 0 or "coverage" not in units.columns:
        return None
    cov = s.cov
    ut = units.copy()
    ut["_cov"] = pd.to_numeric(ut["coverage"], errors="coerce")
    ut = ut[ut["_cov"].notna()].sort_values("_cov")
    shown = ut.iloc[:MAX_UNIT_BARS]
    if not len(shown):
        return None
    labs = []
    for _, r in shown.iterrows():
        n = r.get("village_name")
        c = r.get(code_col) if code_col else ""
        labs.append(f"{n} ({c})" if isinstance(n, str) and n else str(c))
    target = cov.target if cov.target is not None or "target" in (cov.keys or ()) else s.option("coverage_target")
    target = target if isinstance(target, (int, float)) and not isinstance(target, bool) else None
    more = (f" — the {MAX_UNIT_BARS} lowest of {len(ut):,} units" if len(ut) > MAX_UNIT_BARS else "")
    return {"title": f"Coverage by unit (share of households within {_fmt(cov.minutes)} min){more}",
            "svg": svg_bars(labs, shown["_cov"].tolist(), threshold=target, css_class="gp-coverage")}


def _balance_chart(grids: gpd.GeoDataFrame | None, tol: float, measure: str = "households") -> dict | None:
    """Histogram of the grids' signed deviations with the tolerance band shaded."""
    dev = grid_deviation(grids) if grids is not None and len(grids) else np.zeros(0)
    if not len(dev):
        return None
    span = max(0.3, min(1.0, math.ceil(np.nanmax(np.abs(dev)) * 20) / 20 if np.isfinite(dev).any() else 0.3))
    return {"title": f"Balance: grids by deviation from their unit's mean {measure} per grid",
            "svg": svg_histogram(dev, np.linspace(-span, span, 25), band=(-tol, tol),
                                 xlabel=f"deviation (shaded: ±{100 * tol:.0f}% tolerance)",
                                 ylabel="grids", pct_axis=True, css_class="gp-balance")}


def _tolerance(s: Summary) -> float:
    """Return the tolerance band drawn on the balance chart (10% when the summary does not say)."""
    tol = s.tolerance
    return 0.10 if tol is None else tol


def render_report(layers: dict[str, gpd.GeoDataFrame], summary: dict, title: str = "gridplan") -> str:
    """Render the report.html text for a plan: self-contained (no network), a few MB at most.

    Parameters
    ----------
    layers : dict of GeoDataFrame
        "grids", "stations", "service_areas", "households", "units", "workers" — WGS 84 GeoDataFrames
        with the contract's columns (any may be missing or empty).
    summary : dict or Summary
        As summary.json (read through ``geo.summary.Summary``).
    title : str
        The page's title.

    Returns
    -------
    str
        The HTML page (template ``geo/templates/report.html.j2``).
    """
    s = summary if isinstance(summary, Summary) else Summary.from_dict(summary)
    units, workers = layers.get("units"), layers.get("workers")
    notes: list[str] = []
    code_col = unit_code_column(units, s) if units is not None and len(units) else None
    embedded = _embedded_layers(layers, code_col, notes)
    labels = _unit_labels(units, code_col, notes)
    cov, bal, tol = s.cov, s.bal, _tolerance(s)
    measure = str(bal.extra.get("measure") or "households")
    charts = [c for c in (_balance_chart(layers.get("grids"), tol, measure), _coverage_chart(units, code_col, s),
                          _minutes_chart(layers.get("households"), cov.minutes),
                          _utilisation_chart(layers.get("stations"))) if c]
    stat_rows = _summary_rows(s)
    if workers is not None and len(workers) and "role" in workers.columns:
        roles = workers["role"].value_counts().to_dict()
        stat_rows.append(("Roster", ", ".join(f"{v} {k}" for k, v in roles.items())))
    data = {name: json.loads(lay.geojson) for name, lay in embedded.items()}
    large = embedded["grids"].features > MAPLIBRE_ABOVE
    data.update(labels=labels, tolerance=tol, canvas=embedded["grids"].features > CANVAS_ABOVE,
                minutes=cov.minutes, mode=cov.mode, renderer="maplibre" if large else "leaflet")
    headline = (f"{_fmt(s.households)} households · {_fmt(s.units)} units · "
                f"{_fmt(s.grids)} grids ({_pct(bal.within_tolerance_share)} within "
                f"±{100 * tol:.0f}%) · {_fmt(s.workers)} workers · "
                f"{_fmt(s.stations)} stations · coverage {_pct(cov.share)}")
    problems = list(s.problem_list)
    return render("report.html.j2", title=title, headline=headline, notes=notes, summary_rows=stat_rows,
                  runtime_rows=_runtime_rows(s.runtime_s or {}), charts=charts,
                  units_table=_units_table(units, code_col), problems=_problem_items(problems),
                  problems_more=max(len(problems) - MAX_PROBLEMS, 0), data=data, **_maplibre_context(large))


def _maplibre_context(large: bool) -> dict:
    """Return the inlined MapLibre GL JS assets for a large plan's map (empty strings otherwise)."""
    if not large:
        return {"maplibre_js": "", "maplibre_css": "", "report_maplibre_js": ""}
    js, css = maplibre_assets()
    own = (TEMPLATES / "report_maplibre.js").read_text(encoding="utf-8")
    return {"maplibre_js": Markup(script_safe(js)), "maplibre_css": Markup(css.replace("</", "<\\/")),
            "report_maplibre_js": Markup(script_safe(own))}


__all__ = ["render_report", "leaflet_assets", "layer_geojson", "EmbeddedLayer", "svg_histogram", "svg_bars",
           "grid_deviation", "script_safe", "json_script_safe"]   # the asset helpers live in geo.pages
