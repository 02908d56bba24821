"""Result layers as GeoJSON, streamed: read in batches, written feature by feature.

Memory stays bounded by one batch whatever the layer's size. The bytes of a whole layer are
exactly those of ``GeoDataFrame.to_json(na="null", drop_id=True, ensure_ascii=False)`` on the
layer read at once (the batches are read with the same column types, and features are joined the
way ``json.dumps`` joins a list), so clients of the old answer see no change.

An optional window selects part of a layer, in the layer's stored order: ``bbox`` keeps the
features whose geometry intersects the WGS 84 box, then ``offset`` skips and ``limit`` caps.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass

import geopandas as gpd
import shapely

from gridplan.api.store import PG_SCHEMA, Store
from gridplan.geo.featurestream import page_frames

HEAD = b'{"type": "FeatureCollection", "features": ['
TAIL = b"]}"
BATCH = 4096


@dataclass(frozen=True)
class Window:
    """Which features of a layer to send (all by default)."""

    limit: int | None = None
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``"minlon,minlat,maxlon,maxlat"`` -> a tuple; ValueError naming the problem otherwise."""
    if text is None or not text.strip():
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError("bbox must be four numbers: minlon,minlat,maxlon,maxlat")
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError:
        raise ValueError("bbox must be four numbers: minlon,minlat,maxlon,maxlat") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError("bbox numbers must be finite")
    if x0 > x1 or y0 > y1:
        raise ValueError("bbox must be minlon,minlat,maxlon,maxlat with min <= max")
    return x0, y0, x1, y1


def stream_layer(store: Store, job_id: str, layer: str, window: Window = Window(),
                 batch: int = BATCH) -> Iterator[bytes]:
    """Yield the layer (or its window) as GeoJSON FeatureCollection bytes, one batch of features at a time."""
    frames = _pg_frames(store, job_id, layer, window, batch) if store.settings.is_postgres \
        else _gpkg_frames(store, job_id, layer, window, batch)
    yield HEAD
    first = True
    for gdf in frames:
        parts = [json.dumps(f, ensure_ascii=False) for f in gdf.iterfeatures(na="null", drop_id=True)]
        if not parts:
            continue
        chunk = ", ".join(parts)
        yield (chunk if first else ", " + chunk).encode("utf-8")
        first = False
    yield TAIL


def _wgs84(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        return gdf.to_crs(4326)
    return gdf


def _gpkg_frames(store: Store, job_id: str, layer: str, window: Window, batch: int) -> Iterator[gpd.GeoDataFrame]:
    """Batches of the GeoPackage layer in stored order, the window applied (bbox filter exact)."""
    import pyarrow as pa
    from pyogrio.raw import open_arrow

    path = store.out_dir(job_id) / "plan.gpkg"
    skip = window.offset if window.bbox is None else 0   # GDAL skips cheaply when nothing is filtered
    box = shapely.box(*window.bbox) if window.bbox else None
    if window.limit == 0:
        return

    def filtered() -> Iterator[gpd.GeoDataFrame]:
        with open_arrow(path, layer=layer, skip_features=skip, batch_size=batch, use_pyarrow=True) as (meta, reader):
            for rb in reader:
                gdf = gpd.GeoDataFrame.from_arrow(pa.Table.from_batches([rb]))
                if gdf.crs is None and meta.get("crs"):
                    gdf = gdf.set_crs(meta["crs"])
                gdf = _wgs84(gdf)
                yield gdf[gdf.intersects(box)] if box is not None else gdf
    yield from page_frames(filtered(), 0 if window.bbox is None else window.offset, window.limit)


def _pg_frames(store: Store, job_id: str, layer: str, window: Window, batch: int) -> Iterator[gpd.GeoDataFrame]:
    """Batches of the PostGIS layer table in stored order through a server-side cursor."""
    import pandas as pd
    import sqlalchemy as sa

    table = f'"{PG_SCHEMA}"."{store.layer_table(job_id, layer)}"'
    sql, args = f"SELECT * FROM {table}", {}
    if window.bbox is not None:
        sql += " WHERE ST_Intersects(geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))"
        args = dict(zip(("x0", "y0", "x1", "y1"), window.bbox))
    sql += " ORDER BY ctid"
    if window.limit is not None:
        sql += " LIMIT :limit"
        args["limit"] = int(window.limit)
    if window.offset:
        sql += " OFFSET :offset"
        args["offset"] = int(window.offset)
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, max_row_buffer=batch).execute(sa.text(sql), args)
        cols = list(result.keys())
        for rows in result.partitions(batch):
            df = pd.DataFrame.from_records(rows, columns=cols, coerce_float=True)
            geom = shapely.from_wkb(df.pop("geom").to_numpy())
            yield _wgs84(gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geom, crs=4326, index=df.index)))
