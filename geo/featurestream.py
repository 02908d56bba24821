"""A plan layer's features, streamed page by page as true WGS 84 GeoJSON with bounded memory.

The OGC API – Features routes read a plan's ``plan.gpkg`` through this module. A layer is read in
Arrow batches (GDAL's GeoPackage driver, its R-tree when a box is given), converted to true WGS 84
when the plan was written in GCJ-02 or BD-09 output coordinates (``summary.json``'s
``output_coords``), filtered exactly (box intersection, attribute equality, a CQL2 filter), then paged by
``offset``/``limit`` in the layer's stored order. Features are written as JSON bytes a batch at a
time: no page and no layer is ever built whole in memory.

CGCS2000 (EPSG:4490) lon/lat agree with WGS 84 to a few centimetres (:mod:`gridplan.geo.coords`),
so the same numbers serve both; ``lat_lon=True`` writes them in the latitude-first axis order of
EPSG:4326 / EPSG:4490.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridplan.geo.coords import check_system, geometries_from_wgs84, geometries_to_wgs84
from gridplan.geo.cql2 import Filter, filter_mask
from gridplan.geo.vocabulary import WGS84_ALIKE

BATCH = 4096
# the attribute that names a feature of a layer (others are named by their GeoPackage FID)
ID_FIELDS = {"grids": "grid_code", "stations": "station_id", "workers": "worker_id"}
_BOX_MARGIN = 1e-3   # degrees added around a converted box before the exact test (GCJ-02/BD-09 plans)


@dataclass(frozen=True)
class Query:
    """Which features of a layer to read, in stored order.

    Parameters
    ----------
    bbox : tuple of float, optional
        ``(minlon, minlat, maxlon, maxlat)`` in true WGS 84: keep features intersecting it.
    equals : dict
        Attribute name -> value text: keep features whose attribute equals the value.
    offset : int
        Skip this many matching features first.
    limit : int, optional
        Read at most this many features (after ``offset``).
    where : Filter, optional
        A checked CQL2 filter (:func:`gridplan.geo.cql2.parse_filter`): keep features it holds true for.
    """

    bbox: tuple[float, float, float, float] | None = None
    equals: dict = field(default_factory=dict)
    offset: int = 0
    limit: int | None = None
    where: Filter | None = None

    @property
    def filtered(self) -> bool:
        """Tell whether features are selected by box, attribute or filter (not just paged)."""
        return self.bbox is not None or bool(self.equals) or self.where is not None


def layer_fields(gpkg: Path, layer: str) -> dict[str, str]:
    """Return the attribute names of ``layer`` with their numpy dtype names (no geometry)."""
    import pyogrio

    info = pyogrio.read_info(gpkg, layer=layer)
    return dict(zip((str(f) for f in info["fields"]), (str(d) for d in info["dtypes"])))


def layer_extent(gpkg: Path, layer: str, coords: str = "wgs84") -> tuple[float, float, float, float] | None:
    """Return the WGS 84 bounding box of ``layer`` (None when it is empty or has none).

    The box comes from the GeoPackage's stored extent; a GCJ-02/BD-09 box is converted corner by
    corner and widened by a small margin (the offsets vary by well under that across a county).
    """
    import pyogrio

    info = pyogrio.read_info(gpkg, layer=layer)
    b = info.get("total_bounds")
    if b is None or info.get("features", 0) == 0 or not all(math.isfinite(v) for v in b):
        return None
    system = check_system(coords)
    if system in WGS84_ALIKE:
        return tuple(float(v) for v in b)
    corners = geometries_to_wgs84(shapely.points([[b[0], b[1]], [b[2], b[3]]]), system)
    x0, y0, x1, y1 = shapely.total_bounds(corners)
    m = _BOX_MARGIN
    return float(x0 - m), float(y0 - m), float(x1 + m), float(y1 + m)


def count_features(gpkg: Path, layer: str) -> int:
    """Return how many features ``layer`` holds (the GeoPackage's count, no scan)."""
    import pyogrio

    return int(pyogrio.read_info(gpkg, layer=layer, force_feature_count=True)["features"])


def _stored_box(bbox, system: str):
    """Return the WGS 84 box as a box in the layer's stored coordinates, widened to hold every candidate."""
    if system in WGS84_ALIKE:
        return bbox
    ring = shapely.segmentize(shapely.box(*bbox).exterior, max(bbox[2] - bbox[0], bbox[3] - bbox[1], 1e-9) / 16)
    x0, y0, x1, y1 = shapely.total_bounds(geometries_from_wgs84([ring], system))
    return x0 - _BOX_MARGIN, y0 - _BOX_MARGIN, x1 + _BOX_MARGIN, y1 + _BOX_MARGIN


def _matches(df: pd.DataFrame, name: str, value: str) -> np.ndarray:
    """Mask of rows whose attribute ``name`` equals the text ``value`` read as the column's type."""
    col = df[name]
    if pd.api.types.is_bool_dtype(col):
        low = value.strip().lower()
        if low not in ("true", "false", "1", "0"):
            return np.zeros(len(df), bool)
        return (col == (low in ("true", "1"))).fillna(False).to_numpy(bool)
    if pd.api.types.is_numeric_dtype(col):
        try:
            v = float(value)
        except ValueError:
            return np.zeros(len(df), bool)
        return (col.astype(float) == v).fillna(False).to_numpy(bool)
    return (col.astype("string") == value).fillna(False).to_numpy(bool)


def _batches(gpkg: Path, layer: str, q: Query, system: str, batch: int) -> Iterator[gpd.GeoDataFrame]:
    """Stored-order batches as WGS 84 GeoDataFrames indexed by FID, filtered (not yet paged)."""
    import pyarrow as pa
    from pyogrio.raw import open_arrow

    skip = 0 if q.filtered else q.offset   # GDAL skips cheaply when nothing is filtered
    # the R-tree narrows by the bbox parameter, else by the box of an S_INTERSECTS the filter requires
    hint = q.bbox if q.bbox is not None else (q.where.bounds if q.where is not None else None)
    kw = {"bbox": _stored_box(hint, system)} if hint is not None else {}
    box = shapely.box(*q.bbox) if q.bbox is not None else None
    with open_arrow(gpkg, layer=layer, skip_features=skip, batch_size=batch, use_pyarrow=True,
                    return_fids=True, **kw) as (meta, reader):
        for rb in reader:
            gdf = gpd.GeoDataFrame.from_arrow(pa.Table.from_batches([rb]))
            gdf.index = pd.Index(gdf.pop(meta.get("fid_column") or "OGC_FID").to_numpy(), name="fid")
            if gdf.crs is None and meta.get("crs"):
                gdf = gdf.set_crs(meta["crs"])
            if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
                gdf = gdf.to_crs(4326)
            if system not in WGS84_ALIKE:
                gdf = gdf.set_geometry(gpd.GeoSeries(geometries_to_wgs84(gdf.geometry.values, system),
                                                     index=gdf.index, crs=4326))
            keep = np.ones(len(gdf), bool)
            if box is not None:
                keep &= gdf.intersects(box).to_numpy(bool)
            for name, value in q.equals.items():
                keep &= _matches(gdf, name, value)
            if q.where is not None and keep.any():
                keep &= filter_mask(gdf, q.where)
            yield gdf if keep.all() else gdf[keep]


def read_pages(gpkg: Path, layer: str, q: Query = Query(), coords: str = "wgs84",
               batch: int = BATCH) -> Iterator[gpd.GeoDataFrame]:
    """Yield the features ``q`` selects, in stored order, as WGS 84 GeoDataFrames indexed by FID.

    Parameters
    ----------
    gpkg : Path
        The plan's GeoPackage.
    layer : str
        The layer's name.
    q : Query
        Box, attribute equality, offset and limit.
    coords : str
        The coordinate system the layer was written in (the plan's ``output_coords``).
    batch : int
        Features read at once: memory is bounded by one batch.

    Yields
    ------
    geopandas.GeoDataFrame
        Non-empty batches; together exactly the selected features.
    """
    if q.limit == 0:
        return
    yield from page_frames(_batches(gpkg, layer, q, check_system(coords), batch), q.offset if q.filtered else 0,
                           q.limit)


def page_frames(frames: Iterator[pd.DataFrame], skip: int = 0, limit: int | None = None) -> Iterator[pd.DataFrame]:
    """Yield the frames of ``frames`` without their first ``skip`` rows in all, and at most ``limit`` rows.

    Stops reading (and closes ``frames``) as soon as ``limit`` rows went out; empty frames are dropped.
    """
    left = limit
    try:
        for gdf in frames:
            if skip:
                n = min(skip, len(gdf))
                gdf, skip = gdf.iloc[n:], skip - n
            if left is not None:
                gdf = gdf.iloc[:left]
                left -= len(gdf)
            if len(gdf):
                yield gdf
            if left is not None and left <= 0:
                return
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


def read_feature(gpkg: Path, layer: str, feature_id: str, coords: str = "wgs84") -> gpd.GeoDataFrame:
    """Return the one feature named ``feature_id`` (its id attribute, else its FID) as a WGS 84 frame.

    The frame is empty when there is no such feature.
    """
    import pyogrio
    from pyogrio.errors import FeatureError

    none = gpd.GeoDataFrame(geometry=[], crs=4326)
    id_field = ID_FIELDS.get(layer)
    if id_field is not None:
        if not feature_id.isprintable():   # no NUL or control characters reach the SQL text
            return none
        literal = "'" + feature_id.replace("'", "''") + "'"
        gdf = pyogrio.read_dataframe(gpkg, layer=layer, where=f'"{id_field}" = {literal}', fid_as_index=True)
    elif feature_id.isascii() and feature_id.isdigit() and len(feature_id) < 19:
        try:
            gdf = pyogrio.read_dataframe(gpkg, layer=layer, fids=[int(feature_id)], fid_as_index=True)
        except FeatureError:   # no feature with that FID
            return none
    else:
        return none
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    system = check_system(coords)
    if system not in WGS84_ALIKE and len(gdf):
        gdf = gdf.set_geometry(gpd.GeoSeries(geometries_to_wgs84(gdf.geometry.values, system),
                                             index=gdf.index, crs=4326))
    return gdf.iloc[:1]


def _plain(v):
    """Return a JSON-ready scalar: numpy scalars made plain, NaN/NaT/NA as None."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    return v


def feature_jsons(gdf: gpd.GeoDataFrame, layer: str, lat_lon: bool = False) -> list[bytes]:
    """Return each feature of ``gdf`` as GeoJSON Feature bytes (UTF-8) with its ``id``.

    The id is the layer's id attribute (``grid_code``, ``station_id``, ``worker_id``), else the
    GeoPackage FID (the frame's index). ``lat_lon`` swaps every coordinate pair (EPSG:4326 / 4490
    axis order). Missing values (None, NaN, NA) are written as null.
    """
    import orjson

    geoms = np.asarray(gdf.geometry.values, dtype=object)
    if lat_lon:
        geoms = shapely.transform(geoms, lambda c: c[:, ::-1])
    gj = shapely.to_geojson(geoms)
    props = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    id_field = ID_FIELDS.get(layer)
    ids = props[id_field].tolist() if id_field in props.columns else gdf.index.tolist()
    opt = orjson.OPT_SERIALIZE_NUMPY

    def dump(v) -> bytes:
        return orjson.dumps(v, default=_plain, option=opt)

    return [b'{"type": "Feature", "id": ' + dump(fid) + b', "geometry": ' + (g.encode() if g else b"null")
            + b', "properties": ' + dump(row) + b"}"
            for fid, g, row in zip(ids, gj, props.to_dict("records"))]
