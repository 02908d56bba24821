"""Small synthetic plans to edit: a row of square units with random households, planned once per process."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

LON0, LAT0 = 109.5, 19.2          # Hainan: the county's metric CRS is a CGCS2000 3° zone
UNIT_W, UNIT_H = 0.006, 0.005     # degrees: ~630 m × 550 m


def unit_code(u: int) -> str:
    """Return the 12-digit code of the synthetic unit ``u``."""
    return f"46900100{u + 1:04d}"


def synthetic_inputs(seed: int = 0, units: int = 2, per_unit: int = 80):
    """Boundaries (square units side by side) and households (random points, 1–3 households each)."""
    import geopandas as gpd
    import shapely
    rng = np.random.default_rng(seed)
    boxes = [shapely.box(LON0 + u * UNIT_W, LAT0, LON0 + (u + 1) * UNIT_W, LAT0 + UNIT_H) for u in range(units)]
    b = gpd.GeoDataFrame({"village_code": [unit_code(u) for u in range(units)], "township_code": "469001001",
                          "county_code": "469001"}, geometry=boxes, crs=4326)
    xs = np.concatenate([rng.uniform(LON0 + u * UNIT_W + 2e-4, LON0 + (u + 1) * UNIT_W - 2e-4, per_unit)
                         for u in range(units)])
    ys = rng.uniform(LAT0 + 2e-4, LAT0 + UNIT_H - 2e-4, len(xs))
    hh = gpd.GeoDataFrame({"id": [f"h{i}" for i in range(len(xs))], "households": rng.integers(1, 4, len(xs)),
                           "population": rng.integers(1, 9, len(xs))},
                          geometry=gpd.points_from_xy(xs, ys), crs=4326)
    return b, hh


@lru_cache(maxsize=8)
def synthetic_plan(seed: int = 0, units: int = 2, per_unit: int = 80, target: int = 40):
    """Plan the synthetic inputs (no stations: coverage_target 0) — cached, so treat it as read-only."""
    from gridplan.optimize import plan
    b, hh = synthetic_inputs(seed, units, per_unit)
    return plan(b, hh, target_households=target, time_limit_per_unit=1.0, coverage_target=0)
