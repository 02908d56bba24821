"""Find the columns an input means: lon/lat, ids, counts, names, geometries.

Names match case-insensitively, and also by the 10-character names Shapefiles truncate to;
geometries come from a spatial frame or a WKT column.
"""
from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridplan.geo.source import Raw

LON_NAMES = ("lon", "lng", "long", "longitude", "x", "point_x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "point_y", "纬度")
WKT_NAMES = ("geometry", "wkt", "geom", "the_geom")
HH_ID_NAMES = ("id", "hh_id", "household_id")
HH_COUNT_NAMES = ("households", "household", "hh", "户数")
POPULATION_NAMES = ("population", "pop", "人口")
WEIGHT_NAMES = ("weight", "权重")
UNIT_NAME_NAMES = ("village_name", "name", "村名", "名称")
FACILITY_ID_NAMES = ("facility_id", "station_id", "id")
NAME_NAMES = ("name", "名称", "姓名")
EXISTING_NAMES = ("existing", "is_existing", "现有")
WORKER_ID_NAMES = ("worker_id", "id")
ROLE_NAMES = ("role", "岗位")
# CSV columns read with type inference; every other CSV column is read as text (codes keep leading zeros)
NUMERIC_NAMES = set(LON_NAMES + LAT_NAMES + HH_COUNT_NAMES + POPULATION_NAMES + WEIGHT_NAMES
                    + ("target_households",))


def data_columns(frame: pd.DataFrame) -> list:
    """Return the frame's columns other than its geometry column."""
    geom = frame._geometry_column_name if isinstance(frame, gpd.GeoDataFrame) else None
    return [c for c in frame.columns if c != geom]


def find_column(frame: pd.DataFrame, *names) -> Any:
    """Return the first column matching one of ``names``, or None.

    Matching is case-insensitive and also accepts the 10-character names Shapefiles truncate to.
    """
    low: dict[str, Any] = {}
    for c in data_columns(frame):
        low.setdefault(str(c).strip().lower(), c)
    for n in names:
        if not n:
            continue
        k = str(n).strip().lower()
        if k in low:
            return low[k]
        if len(k) > 10 and k[:10] in low:
            return low[k[:10]]
    return None


def available_columns(frame: pd.DataFrame) -> str:
    """Return the frame's column names for a message (the first 40)."""
    cols = [str(c) for c in data_columns(frame)]
    return ", ".join(cols[:40]) + (f", … ({len(cols)} columns)" if len(cols) > 40 else "") if cols else "(none)"


def geometries_of(raw: Raw) -> np.ndarray | None:
    """Shapely geometries of a spatial frame, or parsed from a WKT column of a table."""
    f = raw.frame
    if isinstance(f, gpd.GeoDataFrame) and f._geometry_column_name in f.columns:
        return np.asarray(f.geometry.array, dtype=object)
    col = find_column(f, *WKT_NAMES)
    if col is None:
        return None
    vals = f[col].to_numpy(dtype=object)
    present = pd.notna(vals)
    if all(isinstance(v, str) for v in vals[present][:1000]):
        text = np.where(present, vals, None)
        return np.asarray(shapely.from_wkt(text, on_invalid="ignore"), dtype=object)
    if shapely.is_geometry(vals[present]).all():
        return np.where(present, vals, None)
    return None
