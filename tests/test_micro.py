"""Micro-grids: every household in exactly one micro-grid inside its grid; contiguous, tiling, coded."""
from __future__ import annotations

import geopandas as gpd
import pytest
import numpy as np
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gridplan.optimize.micro import micro_grids, split_grid


def _grid(seed: int, n: int, width: float, heavy: int):
    """A rectangular or L-shaped grid with ``n`` household rows (some doubled, ``heavy`` of them blocks of flats)."""
    rng = np.random.default_rng(seed)
    poly = shapely.box(0, 0, width, 300)
    if seed % 2:
        poly = poly.difference(shapely.box(width / 2, 150, width, 300))   # an L
    pts = []
    while len(pts) < n:
        x, y = rng.random(2) * [width, 300]
        if poly.contains(shapely.Point(x, y)):
            pts.append((x, y))
    xy = np.array(pts).reshape(-1, 2)
    if n > 3:
        xy[-1] = xy[-2] + [0.01, 0.0]     # a doubled row: one indivisible point
    if n > 6:
        xy[3] = xy[2] + [0.3, 0.05]       # two entrances of one block of flats, 0.3 m apart
    h = rng.integers(1, 4, n)
    heavy = min(heavy, n)
    h[:heavy] = rng.integers(80, 200, heavy)
    return poly, xy, h


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 120), width=st.floats(100, 800),
       heavy=st.integers(0, 2), target=st.sampled_from([10, 30, 50]))
@example(seed=1, n=4, width=100.0, heavy=2, target=10)
@example(seed=0, n=0, width=100.0, heavy=0, target=30)
@example(seed=0, n=2, width=100.9375, heavy=1, target=10)
def test_every_household_in_exactly_one_contiguous_micro_grid_inside_its_grid(seed, n, width, heavy, target):
    poly, xy, h = _grid(seed, n, width, heavy)
    res = split_grid(poly, xy, h, target)
    k = len(res.polygons)
    assert res.labels.shape == (n,) and (0 <= res.labels).all() and (res.labels < k).all()
    assert res.households.sum() == h.sum()
    polys = np.asarray(res.polygons, dtype=object)
    # tiling: the micro-grids cover the grid, inside it, without overlaps
    assert abs(shapely.area(polys).sum() - poly.area) <= poly.length * 1e-3
    snap = poly.length * 1e-3          # cells are snapped to a millimetre (geo.cells.GRID_SIZE)
    assert shapely.area(shapely.difference(shapely.union_all(polys), poly)) <= snap
    # exactly one micro-grid holds each household, the one it is labelled with
    pts = shapely.points(xy)
    for i in range(n):
        holders = np.flatnonzero(shapely.intersects(polys, pts[i]))
        assert holders.tolist() == [res.labels[i]]
    # contiguous: single polygons (the grid is one polygon)
    assert all(p.geom_type == "Polygon" for p in polys)
    # indivisible points stay whole: the shared-wall pair shares a micro-grid
    if n > 3:
        assert res.labels[-1] == res.labels[-2]
    if n > 6:                           # one building: one micro-grid
        assert res.labels[2] == res.labels[3]
    # about the target: none over the target by more than its heaviest point; none tiny unless alone
    if k > 1:
        assert res.households.min() >= 0.5 * target or res.households.min() == h.sum()
    # a block of flats heavier than the target is a micro-grid of its own, never split
    for i in range(heavy if n > heavy else 0):
        near = np.flatnonzero(np.hypot(*(xy - xy[i]).T) < 1.0)       # its building (points within 1 m)
        if h[i] >= 1.5 * target and len(near) == 1:
            same = np.flatnonzero(res.labels == res.labels[i])
            assert h[same].sum() <= h[i] + 1.5 * target
    again = split_grid(poly, xy, h, target)
    assert np.array_equal(again.labels, res.labels)


def test_layer_codes_and_households_from_grids():
    polys, rows = [], []
    for j, seed in enumerate((3, 4)):
        poly, xy, h = _grid(seed, 60, 400, 1)
        poly = shapely.affinity.translate(poly, xoff=1000 * j)
        xy = xy + [1000 * j, 0]
        polys.append(poly)
        rows += [(f"V1{j:03d}", x, y, c) for (x, y), c in zip(xy, h)]
    grids = gpd.GeoDataFrame({"grid_code": ["V1000", "V1001"], "village_code": ["V1", "V1"]},
                             geometry=polys, crs=32649)
    hh = gpd.GeoDataFrame({"grid_code": [r[0] for r in rows], "households": [r[3] for r in rows]},
                          geometry=shapely.points([(r[1], r[2]) for r in rows]), crs=32649)
    layer, codes = micro_grids(grids, hh, 30)
    assert list(layer.columns[:5]) == ["micro_grid_code", "grid_code", "village_code", "households", "area_km2"]
    assert all(c.startswith(g) and len(c) == len(g) + 3 for c, g in zip(codes, hh["grid_code"]))
    assert layer["micro_grid_code"].is_unique
    recount = hh.assign(m=codes).groupby("m")["households"].sum()
    assert (layer.set_index("micro_grid_code")["households"] == recount.reindex(layer["micro_grid_code"])).all()
    first = layer[layer["grid_code"] == "V1000"]
    assert first["micro_grid_code"].tolist() == [f"V1000{i:03d}" for i in range(1, len(first) + 1)]
    assert abs(first["area_km2"].sum() - polys[0].area / 1e6) < 1e-6


@pytest.fixture(scope="module")
def micro_plan_dir(sample_small, tmp_path_factory):
    from gridplan import plan
    p = plan(sample_small["boundaries"], sample_small["households"], sample_small["facilities"],
             micro_target=30, time_limit_per_unit=2.0)
    return p, p.to_dir(tmp_path_factory.mktemp("micro") / "out")


def test_plan_writes_micro_grids_and_the_five_levels(micro_plan_dir):
    from gridplan import read_plan
    p, out = micro_plan_dir
    levels = p.summary["levels"]
    assert levels == {"counties": 1, "townships": 1, "villages": len(p.units), "grids": len(p.grids),
                      "micro_grids": len(p.micro_grids)}
    assert p.summary["micro_grids"]["count"] == len(p.micro_grids) > len(p.grids)
    back = read_plan(out)
    assert back.micro_grids["micro_grid_code"].tolist() == p.micro_grids["micro_grid_code"].tolist()
    hh = back.households
    assert all(str(m).startswith(str(g)) for m, g in zip(hh["micro_grid_code"], hh["grid_code"]))
    per_grid = back.micro_grids.groupby("grid_code")["households"].sum()
    assert (per_grid.reindex(back.grids["grid_code"]).to_numpy() == back.grids["households"].to_numpy()).all()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Micro-grids" in html


def test_lookup_answers_the_micro_grid_of_the_households_layer(micro_plan_dir, small_plan_dir):
    import orjson

    from gridplan.geo.index import GridIndex
    p, out = micro_plan_dir
    idx = GridIndex.from_plan_dir(out)
    hh = p.households
    x, y = hh.geometry.x.to_numpy(), hh.geometry.y.to_numpy()
    assert (idx.lookup(x, y)["micro_grid_code"] == hh["micro_grid_code"].to_numpy()).all()
    dicts = idx.lookup_dicts(x, y)
    assert orjson.loads(idx.lookup_json(x, y)) == dicts
    assert idx.lookup_one(x[3], y[3]) == dicts[3] and dicts[3]["micro_grid_code"] == hh["micro_grid_code"].iloc[3]
    plain = GridIndex.from_plan_dir(small_plan_dir)          # a plan without micro-grids: no such key
    assert "micro_grid_code" not in plain.lookup_one(x[3], y[3])


def test_http_job_with_micro_grids_answers_them_in_lookup_and_layers(sample_small, tmp_path):
    import json

    from fastapi.testclient import TestClient

    from gridplan.api.app import create_app
    from gridplan.api.auth import create_key
    from gridplan.api.settings import Settings
    from tests.helpers.api import wait_job
    s = Settings(data_dir=str(tmp_path / "data"), poll_interval_s=0.05)
    planner, reader = create_key("planner", s.data_dir), create_key("reader", s.data_dir)
    files = {r: (sample_small[r].name, sample_small[r].read_bytes()) for r in ("boundaries", "households")}
    params = {"micro_target": 30, "coverage_target": 0, "time_limit_per_unit": 2.0}
    with TestClient(create_app(s)) as c:
        r = c.post("/v1/jobs", files=files, data={"params": json.dumps(params)}, headers={"X-API-Key": planner})
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        h = {"X-API-Key": reader}
        assert wait_job(lambda u: c.get(u, headers=h), jid, timeout=300)["status"] == "succeeded"
        layer = c.get(f"/v1/jobs/{jid}/layers/micro_grids", headers=h)
        assert layer.status_code == 200
        feats = layer.json()["features"]
        hh = c.get(f"/v1/jobs/{jid}/layers/households", headers=h).json()["features"][:20]
        pts = [f["geometry"]["coordinates"] for f in hh]
        one = c.get("/v1/lookup", params={"lon": pts[0][0], "lat": pts[0][1], "plan": jid}, headers=h).json()
        assert one["micro_grid_code"] == hh[0]["properties"]["micro_grid_code"]
        batch = c.post("/v1/lookup", json={"plan": jid, "points": pts}, headers=h).json()["results"]
        assert [a["micro_grid_code"] for a in batch] == [f["properties"]["micro_grid_code"] for f in hh]
        assert {f["properties"]["micro_grid_code"] for f in hh} <= {f["properties"]["micro_grid_code"] for f in feats}
