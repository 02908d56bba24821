"""Layers as compact GeoJSON for the self-contained pages (``report.html``).

A layer is embedded in WGS 84 with the properties a page needs, coordinates rounded (6 decimals:
~0.1 m), features capped and geometries simplified — always from the original, so the errors of
successive passes do not add up — until the vertex budget holds. ``EmbeddedLayer`` says what was kept,
so the page can say what was simplified or capped.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

# simplification tolerances tried in turn (degrees; 1e-5 deg ~ 1.1 m)
SIMPLIFY_STEPS = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)


@dataclass
class EmbeddedLayer:
    """A layer embedded in a page: its GeoJSON text and what was kept of it."""

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


def wgs84_frame(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return ``gdf`` in WGS 84 (unchanged when it already is, or has no CRS)."""
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        return gdf.to_crs(4326)
    return gdf


def layer_geojson(gdf: gpd.GeoDataFrame | None, columns: list[str], max_vertices: int | None = None,
                  max_features: int | None = None, precision: int = 6) -> EmbeddedLayer:
    """Embed a layer as compact GeoJSON (an :class:`EmbeddedLayer`; empty for None or no rows).

    The given ``columns`` (those present), WGS 84, coordinates rounded to ``precision`` decimals,
    simplified until at most ``max_vertices`` and capped at ``max_features``.
    """
    if gdf is None or len(gdf) == 0 or gdf.geometry.name not in gdf.columns:
        return EmbeddedLayer('{"type":"FeatureCollection","features":[]}', 0, 0, 0, 0.0)
    gdf = wgs84_frame(gdf)
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
        original = geoms   # always simplify the original: errors of successive passes would add up
        for tol in SIMPLIFY_STEPS:
            cand = shapely.simplify(original, tol, preserve_topology=True)
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
