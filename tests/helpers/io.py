"""Builders for small input files used by tests/test_io.py and tests/test_validate.py.

Import it: ``from tests.helpers.io import ...``.
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from gridplan.geo.problems import Problem

# a 2 x 2 block of 0.01° villages just west of Haikou (lon 110.0-110.02, lat 19.5-19.52)
X0, Y0, STEP = 110.0, 19.5, 0.01


def grid_units(nx: int = 2, ny: int = 2, x0: float = X0, y0: float = Y0, step: float = STEP,
               crs=4326, prefix: str = "460106100") -> gpd.GeoDataFrame:
    """Adjacent square units with 12-digit codes: code = prefix + 3 digits, numbered column-major."""
    boxes, codes = [], []
    for i in range(nx):
        for j in range(ny):
            boxes.append(shapely.box(x0 + i * step, y0 + j * step, x0 + (i + 1) * step, y0 + (j + 1) * step))
            codes.append(f"{prefix}{i * ny + j + 200:03d}")
    return gpd.GeoDataFrame({"village_code": codes, "village_name": [f"村{c[-3:]}" for c in codes]},
                            geometry=boxes, crs=crs)


def inside_points(n: int, seed: int = 0, nx: int = 2, ny: int = 2, x0=X0, y0=Y0, step=STEP):
    """n random lon/lat strictly inside the grid_units block (kept off the borders), and the
    index of the unit (in grid_units order) containing each."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, nx, n)
    j = rng.integers(0, ny, n)
    lon = x0 + (i + rng.uniform(0.05, 0.95, n)) * step
    lat = y0 + (j + rng.uniform(0.05, 0.95, n)) * step
    return lon, lat, i * ny + j


def households_csv(path: Path, lon, lat, ids=None, sep=",", encoding="utf-8", names=("lon", "lat"),
                   **columns) -> Path:
    df = pd.DataFrame({names[0]: lon, names[1]: lat})
    if ids is not None:
        df.insert(0, "id", ids)
    for k, v in columns.items():
        df[k] = v
    df.to_csv(path, index=False, sep=sep, encoding=encoding)
    return path


def points_frame(lon, lat, crs=4326, **columns) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(dict(columns), geometry=gpd.points_from_xy(lon, lat), crs=crs)


def of_kind(problems: list[Problem], kind: str) -> list[Problem]:
    return [p for p in problems if p.kind == kind]


def one(problems: list[Problem], kind: str) -> Problem:
    found = of_kind(problems, kind)
    assert len(found) == 1, f"expected one {kind!r} problem, got {found} among {problems}"
    return found[0]


def kinds(problems: list[Problem]) -> set[str]:
    return {p.kind for p in problems}


def metric_xy(lon, lat, crs):
    return Transformer.from_crs(4326, crs, always_xy=True).transform(np.asarray(lon), np.asarray(lat))


def assert_households_at(ds, lon, lat, unit_rows, tol_deg=1e-9):
    """Households keep WGS 84 lon/lat; geometry is the metric projection; unit_idx points at the unit."""
    hh = ds.households
    np.testing.assert_allclose(hh["lon"], lon, atol=tol_deg)
    np.testing.assert_allclose(hh["lat"], lat, atol=tol_deg)
    mx, my = metric_xy(lon, lat, ds.crs)
    np.testing.assert_allclose(hh.geometry.x, mx, atol=max(tol_deg * 1.2e5, 1e-3))
    np.testing.assert_allclose(hh.geometry.y, my, atol=max(tol_deg * 1.2e5, 1e-3))
    codes = grid_units()["village_code"].to_numpy()
    assert list(ds.units["unit_code"].to_numpy()[hh["unit_idx"]]) == list(codes[unit_rows])
