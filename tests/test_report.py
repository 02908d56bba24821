"""report.html: self-contained, faithful to the layers, bounded in size, safe against hostile text."""
from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import example, given, settings, strategies as st
from shapely.geometry import box

from gridplan.geo.report import layer_geojson, leaflet_assets, render_report, script_safe, svg_bars, svg_histogram
from tests.helpers.report_data import many_grids_layers, synthetic_layers


def embedded_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="gp-data">(.*?)</script>', html, re.S)
    assert m, "no embedded data block"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def small():
    layers, summary = synthetic_layers()
    return layers, summary, render_report(layers, summary, title="Test county")


def test_no_external_resources(small):
    _, _, html = small
    # nothing is fetched: no <script src>, no <link>, no <img>, no url(http…) in CSS
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=", html, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html, re.I)
    assert "sourceMappingURL" not in html
    js, css = leaflet_assets()
    assert script_safe(js) in html and css in html  # Leaflet itself is inlined
    assert "url(images/" not in css and "data:image/png;base64," in css


def test_embedded_layers_match_the_plan(small):
    layers, _, html = small
    data = embedded_data(html)
    grids = layers["grids"]
    feats = data["grids"]["features"]
    assert [f["properties"]["grid_code"] for f in feats] == grids["grid_code"].tolist()
    for f, (_, row) in zip(feats, grids.iterrows()):
        p = f["properties"]
        assert p["households"] == row["households"]
        assert p["workers"] == row["workers"]
        assert p["deviation"] == pytest.approx(row["deviation"], abs=1e-4)
        assert p["polsby_popper"] == pytest.approx(row["polsby_popper"], abs=1e-4)
        geom = shapely.geometry.shape(f["geometry"])
        assert geom.symmetric_difference(row.geometry).area < 1e-9
    assert {f["properties"]["station_id"] for f in data["stations"]["features"]} == {"S1", "S2"}
    assert len(data["service_areas"]["features"]) == 2
    assert len(data["units"]["features"]) == 2
    # unit labels sit inside their unit
    assert len(data["labels"]) == 2
    for lat, lon, _ in data["labels"]:
        assert layers["units"].contains(shapely.Point(lon, lat)).any()


def test_summary_tables_and_charts(small):
    layers, summary, html = small
    # headline and table figures come from the summary
    assert f"{summary['households']:,} households" in html
    assert f"{100 * summary['coverage']['share']:.1f}%" in html
    # balance histogram: one bar per bin, bars add up to the number of grids
    bal = re.search(r'<svg class="gp-balance".*?</svg>', html, re.S).group(0)
    counts = [int(c.replace(",", "")) for c in re.findall(r': ([\d,]+)</title></rect>', bal)]
    assert sum(counts) == len(layers["grids"])
    # coverage by unit: one bar per unit
    cov = re.search(r'<svg class="gp-coverage".*?</svg>', html, re.S).group(0)
    assert cov.count('class="bar"') == len(layers["units"])
    # travel time histogram weighted by households
    mins = re.search(r'<svg class="gp-minutes".*?</svg>', html, re.S).group(0)
    total = sum(int(c.replace(",", "")) for c in re.findall(r': ([\d,]+)</title></rect>', mins))
    assert total == layers["households"]["households"].sum()
    for stage in summary["runtime_s"]:
        assert f"<th>{stage}</th>" in html
    assert "households.csv, row 7" in html


def test_households_are_aggregated_not_embedded():
    la, sa = synthetic_layers(n_households=200, seed=1)
    lb, sb = synthetic_layers(n_households=20_000, seed=1)
    ha, hb = render_report(la, sa), render_report(lb, sb)
    # a hundred times the points: the file barely grows (figures and bar heights change, not the data)
    assert abs(len(hb) - len(ha)) < 5_000
    assert "20,000 household points are not drawn" in hb


def test_deviation_computed_when_missing():
    layers, summary = synthetic_layers()
    expected = layers["grids"]["deviation"].to_numpy()
    layers["grids"] = layers["grids"].drop(columns="deviation")
    data = embedded_data(render_report(layers, summary))
    got = [f["properties"]["deviation"] for f in data["grids"]["features"]]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_hostile_text_is_escaped():
    evil = '</script><script>alert("x")</script>'
    layers, summary = synthetic_layers(unit_name=evil)
    summary["problems"].append({"source": evil, "row": None, "kind": "x", "message": evil, "fatal": True})
    html = render_report(layers, summary, title=evil)
    assert evil not in html
    assert html.count("<script") == 3  # Leaflet, the data block, the page script
    data = embedded_data(html)   # still parses, and the name survives intact inside it
    assert any(lab[2] == evil for lab in data["labels"])


def test_placeholders_in_data_are_not_substituted():
    layers, summary = synthetic_layers(unit_name="%%DATA%%")
    html = render_report(layers, summary, title="%%LEAFLET_JS%%")
    assert "<title>%%LEAFLET_JS%% — grid plan report</title>" in html
    assert html.count(leaflet_assets()[0][:300]) == 1
    assert embedded_data(html)["labels"][0][2] == "%%DATA%%"


def test_big_plan_is_bounded_and_says_so():
    layers = many_grids_layers(n_side=60, vertices=256)
    n_vertices = int(shapely.get_num_coordinates(np.asarray(layers["grids"].geometry.values)).sum())
    assert n_vertices > 500_000
    html = render_report(layers, {})
    assert len(html) < 6_000_000
    assert "drawn simplified" in html
    data = embedded_data(html)
    assert len(data["grids"]["features"]) == 3600   # every grid still drawn
    assert data["canvas"] is True                    # and on a canvas, not 3,600 SVG paths


def test_empty_and_missing_layers_do_not_crash():
    empty = gpd.GeoDataFrame({"grid_code": []}, geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    html = render_report({"grids": empty}, {})
    data = embedded_data(html)
    assert data["grids"]["features"] == [] and data["units"]["features"] == []
    assert "No data problems found" in html
    render_report({}, {"problems": ["a plain string problem"]})


def test_projected_layers_are_drawn_in_wgs84():
    layers, summary = synthetic_layers()
    projected = {k: (v.to_crs(32650) if isinstance(v, gpd.GeoDataFrame) else v) for k, v in layers.items()}
    data = embedded_data(render_report(projected, summary))
    x, y = data["grids"]["features"][0]["geometry"]["coordinates"][0][0]
    assert 115.9 < x < 116.1 and 38.9 < y < 39.1


# ---------------------------------------------------------------------------------------------
# properties of the building blocks
rect = st.tuples(st.floats(100, 120), st.floats(20, 40), st.floats(1e-4, 0.05), st.floats(1e-4, 0.05))


@settings(max_examples=40, deadline=None)
@given(st.lists(rect, min_size=1, max_size=20), st.integers(8, 400), st.integers(4, 96))
# simplifying the already simplified outline step after step let the errors add up (found on a fresh clone)
@example(rects=[(110.0, 30.0, 0.036354760353173796, 0.036354760353173796)], per_ring=24, budget_per_feature=5)
def test_layer_geojson_rounds_caps_and_meets_the_vertex_budget(rects, per_ring, budget_per_feature):
    polys = [shapely.buffer(box(x, y, x + w, y + h).centroid, min(w, h) / 2, quad_segs=max(per_ring // 4, 1))
             for x, y, w, h in rects]
    gdf = gpd.GeoDataFrame({"grid_code": [str(i) for i in range(len(polys))]}, geometry=polys, crs=4326)
    budget = budget_per_feature * len(polys)
    lay = layer_geojson(gdf, ["grid_code", "missing_column"], max_vertices=budget, max_features=15)
    fc = json.loads(lay.geojson)
    assert lay.features == len(fc["features"]) == min(len(polys), 15)
    assert [f["properties"] for f in fc["features"]] == [{"grid_code": str(i)} for i in range(lay.features)]
    coords = np.concatenate([np.asarray(f["geometry"]["coordinates"][0]) for f in fc["features"]])
    assert np.allclose(coords, np.round(coords, 6), atol=1e-12, rtol=0)
    # a ring can always come down to 4 points, so the budget is met whenever it allows that
    if budget >= 5 * len(polys):
        assert lay.vertices <= budget
    # simplification never moves the outline by more than its tolerance (plus rounding)
    for f, p in zip(fc["features"], polys):
        g = shapely.geometry.shape(f["geometry"])
        assert g.hausdorff_distance(p) <= lay.simplified_m / 111_000 + 1e-5


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.floats(-2, 2), st.just(float("nan"))), max_size=200), st.integers(2, 30))
def test_histogram_bars_count_every_finite_value(values, n_bins):
    svg = svg_histogram(values, np.linspace(-0.5, 0.5, n_bins + 1))
    counts = [float(c.replace(",", "")) for c in re.findall(r': ([\d,]+)</title></rect>', svg)]
    assert len(counts) == n_bins
    assert sum(counts) == sum(1 for v in values if v == v)   # values outside the range land in the end bars


def test_bars_mark_units_below_target():
    svg = svg_bars(["a", "b", "c"], [0.95, 0.5, None], threshold=0.9)
    assert svg.count('class="bar"') == 3
    assert svg.count("#e76f51") == 2 and svg.count("#2a9d8f") == 1
    assert 'class="threshold"' in svg
