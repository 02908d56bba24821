"""Writing a plan's output directory: plan.gpkg, summary.json, report.html (CONTRACT.md).

The directory is written next to its final place and renamed into it only when complete, so a
crash or a bad plan never leaves a half-written directory nor destroys the previous one.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from gridplan.geo.coords import geometries_from_wgs84
from gridplan.geo.grids import repair_transformed

# geometry type written for an empty layer (GeoPackage needs one)
EMPTY_GEOMETRY_TYPE = {"grids": "Polygon", "stations": "Point", "service_areas": "MultiPolygon",
                       "households": "Point", "workers": "Point", "units": "MultiPolygon"}


def _jsonable(obj):
    """summary.json must be plain JSON: numpy scalars -> Python, NaN/inf -> null."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


def summary_json(summary: dict) -> str:
    """Serialise the summary as indented JSON (numpy values made plain, NaN and inf as null)."""
    return json.dumps(_jsonable(summary), ensure_ascii=False, indent=2, allow_nan=False)


def to_output_coords(gdf: gpd.GeoDataFrame, output_coords: str) -> gpd.GeoDataFrame:
    """Convert a WGS 84 layer to the requested output system (GCJ-02/BD-09 keep the EPSG:4326 tag, as web maps do)."""
    gdf = gdf.to_crs(4326) if gdf.crs is not None and gdf.crs.to_epsg() != 4326 else gdf
    if output_coords in (None, "wgs84") or len(gdf) == 0:
        return gdf
    out = gdf.copy()
    moved = repair_transformed(geometries_from_wgs84(gdf.geometry.values, output_coords))
    out.geometry = gpd.GeoSeries(moved, index=gdf.index, crs=4326)
    return out


def write_layer(gdf: gpd.GeoDataFrame, path: Path, name: str) -> None:
    """Write ``gdf`` as layer ``name`` of the GeoPackage at ``path`` (EPSG:4326 when untagged)."""
    df = gdf.copy()
    for col in df.columns:
        if col != df.geometry.name and df[col].dtype == object:
            # mixed None/str columns: keep them as nullable strings
            df[col] = df[col].astype("string")
    if df.crs is None:
        df = df.set_crs(4326)
    kwargs = {}
    if len(df) == 0:
        kwargs["geometry_type"] = EMPTY_GEOMETRY_TYPE.get(name, "Unknown")
    else:
        types = set(df.geom_type.dropna())
        if len(types) > 1:
            kwargs["promote_to_multi"] = True
    pyogrio.write_dataframe(df, path, layer=name, driver="GPKG", **kwargs)


def write_plan_dir(path, layers: dict[str, gpd.GeoDataFrame], summary: dict, output_coords: str = "wgs84",
                   report: bool = True, title: str | None = None, network_minutes=None) -> Path:
    """Write plan.gpkg (every layer), summary.json and report.html atomically into ``path``.

    A network plan also gets network_minutes.parquet (road minutes per node, which lookup answers from).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        out_layers = {name: to_output_coords(gdf, output_coords) for name, gdf in layers.items()}
        gpkg = tmp / "plan.gpkg"
        for name, gdf in out_layers.items():
            write_layer(gdf, gpkg, name)
        (tmp / "summary.json").write_text(summary_json(summary), encoding="utf-8")
        if network_minutes is not None:
            from gridplan.geo.travel import NETWORK_MINUTES_FILE, write_network_minutes
            write_network_minutes(network_minutes, tmp / NETWORK_MINUTES_FILE)
        if report:
            from gridplan.geo.report import render_report
            # the report draws in WGS 84 whatever the output coordinates, so it overlays true positions
            wgs = {name: (gdf.to_crs(4326) if gdf.crs is not None else gdf) for name, gdf in layers.items()}
            html = render_report(wgs, _jsonable(summary), title=title or "gridplan")
            (tmp / "report.html").write_text(html, encoding="utf-8")
        os.chmod(tmp, 0o755)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.rename(path, old / "x")
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_plan_dir(path) -> tuple[dict[str, gpd.GeoDataFrame], dict]:
    """Read an output directory back: (layers, summary)."""
    path = Path(path)
    gpkg = path / "plan.gpkg"
    if not gpkg.exists():
        raise FileNotFoundError(f"{gpkg}: no plan.gpkg here — is {path} a gridplan output directory?")
    layers = {name: gpd.read_file(gpkg, layer=name) for name, _ in pyogrio.list_layers(gpkg)}
    summary_p = path / "summary.json"
    summary = json.loads(summary_p.read_text(encoding="utf-8")) if summary_p.exists() else {}
    return layers, summary


def empty_frame(columns: list[str], crs=4326) -> gpd.GeoDataFrame:
    """Return an empty GeoDataFrame with ``columns`` and no rows, in ``crs``."""
    return gpd.GeoDataFrame(pd.DataFrame({c: pd.Series(dtype=object) for c in columns}),
                            geometry=gpd.GeoSeries([], crs=crs), crs=crs)
