"""Micro-grid answers for lookup: which micro-grid (``micro_grid_code``) of the point's grid holds it.

A plan made with ``--micro-target`` has a ``micro_grids`` layer (``optimize.micro``). Its polygons
are indexed like grids (a ``geo.index.GridIndex`` over them, so the same exact raster and the same
lowest-row rule on shared edges), and an answer is kept only when the micro-grid lies in the grid
the point was found in (a point on the very edge of a grid never gets another grid's micro-grid).
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

MICRO_FIELD = "micro_grid_code"


class MicroLookup:
    """Point -> micro-grid code over a plan's ``micro_grids`` layer (WGS 84).

    Parameters
    ----------
    micro : GeoDataFrame
        ``micro_grid_code``, ``grid_code`` and polygons.
    """

    def __init__(self, micro):
        from gridplan.geo.index import GridIndex  # lazily: geo.index imports this module
        frame = gpd.GeoDataFrame({"grid_code": micro[MICRO_FIELD].astype(str).to_numpy(),
                                  "village_code": micro["grid_code"].astype(str).to_numpy()},
                                 geometry=micro.geometry.values, crs=micro.crs)
        self.index = GridIndex(frame)
        self.codes = np.array([a["grid_code"] for a in self.index.grid_attrs] + [None], dtype=object)
        self.parents = np.array([a["village_code"] for a in self.index.grid_attrs] + [None], dtype=object)

    def codes_of(self, lon, lat, grid_codes) -> np.ndarray:
        """Return the micro-grid code of each WGS 84 point whose grid is ``grid_codes`` (None elsewhere)."""
        m = self.index.grid_of(lon, lat)
        code, parent = self.codes[m], self.parents[m]
        grid_codes = np.asarray(grid_codes, dtype=object).ravel()
        same = pd.Series(parent).eq(pd.Series(grid_codes)).to_numpy() & (m >= 0)
        return np.where(same, code, None)

    def code_of_one(self, lon: float, lat: float, grid_code: str | None) -> str | None:
        """Return the micro-grid code of one WGS 84 point in grid ``grid_code`` (None if none)."""
        m = self.index.grid_of_one(lon, lat)
        return str(self.codes[m]) if m >= 0 and self.parents[m] == grid_code else None


def micro_lookup(micro) -> MicroLookup | None:
    """Build the micro-grid lookup of a layer (None when there is none, or it is empty)."""
    if micro is None or not len(micro) or MICRO_FIELD not in micro.columns:
        return None
    return MicroLookup(micro)
