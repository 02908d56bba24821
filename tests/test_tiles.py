"""Vector tiles (geo.tiles): decoded tiles give back the plan's features, in true WGS 84, clipped per tile."""
from __future__ import annotations

import math

import geopandas as gpd
import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
import shapely
from shapely.geometry import box

from gridplan.geo.coords import geometries_from_wgs84
from gridplan.geo.tiles import BUFFER, EXTENT, TMS, check_tile, render_tile, tile_source, tiles_covering
from tests.helpers.api import tiny_layers

R = 6378137.0


def decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True}) if data else {}


def to_lonlat(geom, z, x, y):
    """A decoded feature's geometry (tile units, y down) back to WGS 84 lon/lat."""
    b = TMS.xy_bounds(morecantile.Tile(x, y, z))
    s = (b.right - b.left) / EXTENT

    def f(c):
        mx, my = b.left + c[:, 0] * s, b.top - c[:, 1] * s
        return np.column_stack([np.degrees(mx / R), np.degrees(2 * np.arctan(np.exp(my / R)) - math.pi / 2)])
    return shapely.transform(shapely.geometry.shape(geom), f)


def tile_at(lon, lat, z):
    t = TMS.tile(lon, lat, z)
    return t.z, t.x, t.y


@pytest.fixture(scope="module")
def layers():
    return tiny_layers()[0]


def test_a_tile_gives_back_every_grid_with_its_attributes_and_shape(layers):
    z, x, y = tile_at(120.02, 30.01, 12)            # one z12 tile (~9 km) holds the whole tiny plan
    got = decode(render_tile(tile_source(layers), z, x, y))
    assert set(got) == {"grids", "units", "service_areas", "stations"}   # households / workers are not map layers
    feats = got["grids"]["features"]
    grids = layers["grids"].set_index("grid_code")
    assert sorted(f["properties"]["grid_code"] for f in feats) == sorted(grids.index)
    for f in feats:
        p, want = f["properties"], grids.loc[f["properties"]["grid_code"]]
        assert p["workers"] == want["workers"] and p["village_code"] == want["village_code"]
        g = to_lonlat(f["geometry"], z, x, y)
        assert g.geom_type == "Polygon" and g.is_valid
        inter = shapely.intersection(g, want.geometry).area
        assert inter / shapely.union(g, want.geometry).area > 0.99   # the same square, to the tile's precision
    st = {f["properties"]["station_id"]: to_lonlat(f["geometry"], z, x, y) for f in got["stations"]["features"]}
    for sid, pt in zip(layers["stations"].station_id, layers["stations"].geometry):
        assert st[sid].distance(pt) < 1e-4


def test_offset_output_coordinates_are_drawn_in_true_wgs84(layers):
    """A plan written in GCJ-02 (or BD-09) gives the same tiles as the same plan written in WGS 84."""
    z, x, y = tile_at(120.02, 30.01, 14)
    want = decode(render_tile(tile_source(layers), z, x, y))
    for system in ("gcj02", "bd09"):
        shifted = {n: g.set_geometry(geometries_from_wgs84(g.geometry.values, system)) for n, g in layers.items()}
        assert decode(render_tile(tile_source(shifted, system), z, x, y)) == want
        naive = decode(render_tile(tile_source(shifted), z, x, y))   # read as if WGS 84: offset by ~500 m
        assert naive != want


def test_features_are_clipped_to_the_tile_and_its_buffer(layers):
    z = 16                                            # tiles of ~600 m: each grid (~1 km) spans several
    w, s, e, n = 120.0, 30.0, 120.04, 30.02
    src = tile_source(layers)
    seen = set()
    total = 0.0
    for z_, x, y in tiles_covering((w, s, e, n), z, z):
        got = decode(render_tile(src, z_, x, y))
        for f in got.get("grids", {}).get("features", []):
            xy = shapely.get_coordinates(shapely.geometry.shape(f["geometry"]))
            assert xy.min() >= -BUFFER and xy.max() <= EXTENT + BUFFER
            seen.add(f["properties"]["grid_code"])
            g = to_lonlat(f["geometry"], z_, x, y)
            total += shapely.intersection(g, box(*TMS.bounds(morecantile.Tile(x, y, z_)))).area
    assert seen == set(layers["grids"].grid_code)
    assert total == pytest.approx(shapely.area(layers["grids"].geometry.values).sum(), rel=0.01)  # the pieces (minus buffers) tile the grids


def test_an_empty_tile_is_empty_and_bad_tiles_are_refused(layers):
    src = tile_source(layers)
    assert render_tile(src, 12, *TMS.tile(0.0, 0.0, 12)[:2]) == b""
    for bad in ((23, 0, 0), (3, 8, 0), (3, 0, -1), (-1, 0, 0)):
        with pytest.raises(ValueError, match="zoom|does not exist"):
            check_tile(*bad)


def test_micro_grids_are_a_layer_when_the_plan_has_them(layers):
    g = layers["grids"]
    micro = gpd.GeoDataFrame({"micro_grid_code": [c + "01" for c in g.grid_code], "grid_code": g.grid_code},
                             geometry=[shapely.affinity.scale(p, 0.5, 0.5) for p in g.geometry], crs=4326)
    z, x, y = tile_at(120.02, 30.01, 12)
    got = decode(render_tile(tile_source({**layers, "micro_grids": micro}), z, x, y))
    assert sorted(f["properties"]["micro_grid_code"] for f in got["micro_grids"]["features"]) == \
        sorted(micro.micro_grid_code)


def test_low_zooms_simplify_and_still_cover_the_plan():
    rng = np.random.default_rng(0)
    pts = rng.uniform([110, 30], [111, 31], (400, 2))
    polys = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box(110, 30, 111, 31)))
    polys = shapely.segmentize(shapely.intersection(polys, box(110, 30, 111, 31)), 0.0005)
    grids = gpd.GeoDataFrame({"grid_code": [f"G{i}" for i in range(len(polys))]}, geometry=polys, crs=4326)
    src = tile_source({"grids": grids})
    z, x, y = tile_at(110.5, 30.5, 6)
    feats = decode(render_tile(src, z, x, y))["grids"]["features"]
    vertices = sum(len(shapely.get_coordinates(shapely.geometry.shape(f["geometry"]))) for f in feats)
    assert vertices < shapely.get_num_coordinates(polys).sum() / 5     # simplified for the zoom
    assert len(feats) > 0.9 * len(polys)


@pytest.mark.parametrize("z", [8, 12, 15])
def test_the_numpy_encoder_matches_mapbox_vector_tile_feature_for_feature(z):
    """geo.mvt against the library's own encoder on the same clipped features: the decoded tiles are equal."""
    from gridplan.geo.tiles import _cut
    layers = province_like()
    src = tile_source(layers)
    for zz, x, y in list(tiles_covering((110.2, 30.2, 110.8, 30.8), z, z))[:4]:
        b = TMS.xy_bounds(morecantile.Tile(x, y, zz))
        size = b.right - b.left
        pad = size * BUFFER / EXTENT
        feats = []
        for name, lay in src.layers.items():
            geoms, props = _cut(lay, zz, (b.left - pad, b.bottom - pad, b.right + pad, b.top + pad),
                                (b.left, b.top), EXTENT / size)
            if len(geoms):
                feats.append({"name": name, "features": [{"geometry": g, "properties": p}
                                                         for g, p in zip(geoms.tolist(), props)]})
        want = mapbox_vector_tile.encode(feats, default_options={"y_coord_down": True, "check_winding_order": False})
        assert decode(render_tile(src, zz, x, y)) == decode(want)


def province_like():
    rng = np.random.default_rng(7)
    pts = rng.uniform([110, 30], [111, 31], (600, 2))
    polys = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=box(110, 30, 111, 31)))
    polys = shapely.segmentize(shapely.intersection(polys, box(110, 30, 111, 31)), 0.001)
    holed = shapely.difference(polys[:50], shapely.buffer(shapely.centroid(polys[:50]), 0.003))   # rings with holes
    polys = np.concatenate([holed, polys[50:]])
    grids = gpd.GeoDataFrame({"grid_code": [f"G{i}" for i in range(len(polys))], "workers": rng.integers(0, 3, len(polys)),
                              "deviation": rng.normal(0, 0.1, len(polys)), "flag": rng.random(len(polys)) > 0.5},
                             geometry=polys, crs=4326)
    st = gpd.GeoDataFrame({"station_id": [f"S{i}" for i in range(40)]},
                          geometry=shapely.points(rng.uniform([110, 30], [111, 31], (40, 2))), crs=4326)
    return {"grids": grids, "stations": st}
