"""Mapbox Vector Tiles of a plan's layers, cut on the web-mercator (``WebMercatorQuad``) tile grid.

A :class:`TileSource` holds a plan's map layers (grids, units, micro-grids, service areas, stations)
projected once to web mercator from true WGS 84 — a plan written in GCJ-02 or BD-09 output
coordinates is converted back first, so tiles line up with any WGS 84 basemap — each layer with its
own STRtree. :func:`render_tile` then cuts one tile: the features whose boxes meet the tile (plus a
small buffer, so polygon edges do not show at tile seams), simplified for the zoom (about a quarter
of a screen pixel; each zoom's simplification is computed once per layer and kept), clipped to the
buffered tile, snapped to the tile's integer grid and encoded with numpy (``geo.mvt``, on
``mapbox-vector-tile``'s protobuf schema).

Tile addressing (z, x, y, bounds, which tiles cover a box) is ``morecantile``'s WebMercatorQuad.
Everything here is pure: no I/O but :func:`read_tile_source`, which reads a plan's output directory.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import morecantile
import numpy as np
import shapely

from gridplan.geo.coords import check_system, geometries_to_wgs84
from gridplan.geo.embed import _json_value as json_value, wgs84_frame
from gridplan.geo.mvt import add_layer, new_tile
from gridplan.geo.summary import Summary

TILE_LAYERS = ("service_areas", "units", "grids", "micro_grids", "stations")   # drawing order: bottom first
EXTENT = 4096            # tile units per tile side (the MVT default)
BUFFER = 64              # tile units drawn beyond each edge
MAX_ZOOM = 22
SIMPLIFY_UNITS = 4.0     # simplification tolerance in tile units (half a pixel: MapLibre draws 8 units per pixel)
TMS = morecantile.tms.get("WebMercatorQuad")
_R = 6378137.0
_MAX_LAT = 85.0511287798066


def to_mercator(coords: np.ndarray) -> np.ndarray:
    """Project WGS 84 lon/lat coordinates (n x 2) to web-mercator metres (EPSG:3857)."""
    lon = coords[:, 0]
    lat = np.clip(coords[:, 1], -_MAX_LAT, _MAX_LAT)
    x = np.radians(lon) * _R
    y = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * _R
    return np.column_stack([x, y])


def _properties(df) -> list[dict]:
    """Return each row's attributes as JSON scalars (no geometry; None and NaN left out)."""
    cols = [c for c in df.columns if c != df.geometry.name]
    data = {c: df[c].tolist() for c in cols}
    out = []
    for i in range(len(df)):
        d = {}
        for c in cols:
            v = json_value(data[c][i])
            if v is not None:
                d[str(c)] = v
        out.append(d)
    return out


@dataclass
class TileLayer:
    """One layer of a :class:`TileSource`: mercator geometries, their attributes and an STRtree."""

    name: str
    geoms: np.ndarray
    props: list[dict]
    tree: shapely.STRtree
    _by_zoom: dict = field(default_factory=dict, repr=False)

    def simplified(self, z: int) -> np.ndarray:
        """Return the layer's geometries simplified for zoom ``z`` (computed once per zoom, then kept)."""
        got = self._by_zoom.get(z)
        if got is None:
            if shapely.get_type_id(self.geoms[:1]).tolist() in ([0], [4], []):   # points need no simplifying
                got = self.geoms
            else:
                got = shapely.simplify(self.geoms, tile_size(z) / EXTENT * SIMPLIFY_UNITS, preserve_topology=False)
            self._by_zoom[z] = got
        return got


@dataclass
class TileSource:
    """A plan's map layers ready to be cut into tiles (see the module docstring).

    Attributes
    ----------
    layers : dict[str, TileLayer]
        By layer name, in drawing order.
    bounds : tuple[float, float, float, float]
        The layers' WGS 84 extent (min lon, min lat, max lon, max lat); NaNs when empty.
    """

    layers: dict[str, TileLayer]
    bounds: tuple[float, float, float, float]

    def features(self) -> int:
        """Return how many features the source holds over all layers."""
        return sum(len(lay.geoms) for lay in self.layers.values())


def layer_fields(props: list[dict]) -> dict:
    """Return TileJSON ``fields`` of a layer's attributes: name -> "String", "Number" or "Boolean"."""
    out: dict = {}
    for p in props[:1000]:
        for k, v in p.items():
            out.setdefault(k, "Boolean" if isinstance(v, bool) else "Number" if isinstance(v, (int, float))
                           else "String")
    return out


def tile_size(z: int) -> float:
    """Return the side of a zoom-``z`` tile in web-mercator metres."""
    return 2 * math.pi * _R / (1 << z)


def check_tile(z: int, x: int, y: int) -> None:
    """Raise ValueError naming the problem when (z, x, y) is not a tile of the WebMercatorQuad grid."""
    if not 0 <= z <= MAX_ZOOM:
        raise ValueError(f"zoom {z} is outside 0..{MAX_ZOOM}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise ValueError(f"tile {z}/{x}/{y} does not exist: x and y must be in 0..{n - 1} at zoom {z}")


def tile_source(frames: dict, output_coords: str = "wgs84") -> TileSource:
    """Build a :class:`TileSource` from layer GeoDataFrames stated in ``output_coords``.

    Parameters
    ----------
    frames : dict[str, geopandas.GeoDataFrame]
        Layers by name; those not in ``TILE_LAYERS`` are ignored. Geometries are lon/lat (a CRS
        other than EPSG:4326 is reprojected to it).
    output_coords : str
        The system the lon/lat are stated in (``wgs84``, ``cgcs2000``, ``gcj02``, ``bd09``): offset
        systems are converted back to true WGS 84.
    """
    system = check_system(output_coords)
    layers, boxes = {}, []
    for name in TILE_LAYERS:
        gdf = frames.get(name)
        if gdf is None:
            continue
        gdf = wgs84_frame(gdf)
        geoms = np.asarray(gdf.geometry.values, dtype=object)
        keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        gdf, geoms = gdf[keep], geoms[keep]
        wgs = geometries_to_wgs84(geoms, system)
        if len(wgs):
            boxes.append(shapely.total_bounds(wgs))
        merc = shapely.transform(wgs, to_mercator)
        layers[name] = TileLayer(name, merc, _properties(gdf), shapely.STRtree(merc))
    if boxes:
        b = np.array(boxes)
        bounds = (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max()))
    else:
        bounds = (math.nan,) * 4
    return TileSource(layers, bounds)


def read_tile_source(plan_dir, layers=TILE_LAYERS) -> TileSource:
    """Read the map layers of the plan in output directory ``plan_dir`` (plan.gpkg + summary.json).

    Raises FileNotFoundError when there is no plan.gpkg.
    """
    import pyogrio

    path = Path(plan_dir)
    gpkg = path / "plan.gpkg"
    if not gpkg.exists():
        raise FileNotFoundError(f"{gpkg}: no plan.gpkg here — is {path} a gridplan output directory?")
    names = {n for n, _ in pyogrio.list_layers(gpkg)}
    frames = {n: pyogrio.read_dataframe(gpkg, layer=n) for n in layers if n in names}
    sp = path / "summary.json"
    summary = json.loads(sp.read_text(encoding="utf-8")) if sp.exists() else {}
    return tile_source(frames, Summary.from_dict(summary).output_coords)


def _cut(layer: TileLayer, z: int, box: tuple, origin: tuple, scale: float) -> tuple[np.ndarray, list[dict]]:
    """Return the layer's features within ``box`` (mercator), clipped, in integer tile units (y down)."""
    idx = layer.tree.query(shapely.box(*box))
    if len(idx) == 0:
        return np.zeros(0, dtype=object), []
    idx = np.sort(idx)
    geoms = layer.simplified(z)[idx]
    poly = shapely.get_dimensions(geoms) > 0
    if poly.any():
        geoms = geoms.copy()
        geoms[poly] = shapely.clip_by_rect(geoms[poly], *box)
    x0, y0 = origin
    tiled = shapely.transform(geoms, lambda c: np.rint(np.column_stack([(c[:, 0] - x0) * scale,
                                                                          (y0 - c[:, 1]) * scale])))
    dims = shapely.get_dimensions(tiled)
    keep = ~shapely.is_empty(tiled) & ((dims < 2) | (shapely.area(tiled) > 0))
    tiled[dims == 2] = shapely.orient_polygons(tiled[dims == 2])   # y is down: shapely's ccw is the screen's cw
    props = layer.props
    return tiled[keep], [props[i] for i in idx[keep].tolist()]


def render_tile(src: TileSource, z: int, x: int, y: int) -> bytes:
    """Encode tile ``z/x/y`` of ``src`` as a Mapbox Vector Tile (empty layers left out; b"" when empty).

    Raises ValueError for a tile outside the grid (:func:`check_tile`).
    """
    check_tile(z, x, y)
    b = TMS.xy_bounds(morecantile.Tile(x, y, z))
    size = b.right - b.left
    pad = size * BUFFER / EXTENT
    box = (b.left - pad, b.bottom - pad, b.right + pad, b.top + pad)
    scale = EXTENT / size
    tile, n = new_tile(), 0
    for name, layer in src.layers.items():
        geoms, props = _cut(layer, z, box, (b.left, b.top), scale)
        if len(geoms):
            n += add_layer(tile, name, geoms, props, EXTENT)
    return tile.SerializeToString() if n else b""


def tiles_covering(bounds, min_zoom: int, max_zoom: int):
    """Yield the (z, x, y) tiles that cover WGS 84 ``bounds`` at zooms ``min_zoom``..``max_zoom``."""
    w, s, e, n = bounds
    if any(math.isnan(v) for v in bounds):
        return
    for t in TMS.tiles(w, max(s, -_MAX_LAT), e, min(n, _MAX_LAT), list(range(min_zoom, max_zoom + 1))):
        yield t.z, t.x, t.y
