"""Seeded cases (hotline work orders, disputes, patrol findings) over a plan's area, for routing benchmarks and tests.

``make_cases(grids, n, seed)``: ``n`` cases, 95% at random points inside the grids (uniform over
their bounding box, kept when inside), 5% anywhere in the bounding box (some outside every grid),
ISO 8601 times over 2026 (a few invalid), kinds from ``KINDS``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

KINDS = ("hotline", "dispute", "patrol", "elderly_visit")


def make_cases(grids, n: int, seed: int = 0, bad_times: int = 3) -> pd.DataFrame:
    """Return ``n`` cases (id, time, kind, lon, lat) over the WGS 84 ``grids``."""
    rng = np.random.default_rng(seed)
    g = grids.to_crs(4326) if grids.crs is not None else grids
    x0, y0, x1, y1 = g.total_bounds
    union = shapely.union_all(g.geometry.values)
    shapely.prepare(union)
    n_in = int(round(0.95 * n))
    pts = np.zeros((0, 2))
    while len(pts) < n_in:
        cand = np.column_stack([rng.uniform(x0, x1, 2 * n_in), rng.uniform(y0, y1, 2 * n_in)])
        pts = np.vstack([pts, cand[shapely.contains_xy(union, cand[:, 0], cand[:, 1])]])
    anywhere = np.column_stack([rng.uniform(x0, x1, n - n_in), rng.uniform(y0, y1, n - n_in)])
    xy = np.vstack([pts[:n_in], anywhere])[rng.permutation(n)]
    t0 = np.datetime64("2026-01-01T00:00:00")
    secs = rng.integers(0, 365 * 86400, n)
    times = np.datetime_as_string(t0 + secs.astype("timedelta64[s]"), unit="s").astype(object) + "+08:00"
    times[rng.choice(n, size=min(bad_times, n), replace=False)] = "not a time"
    return pd.DataFrame({"id": [f"C{i:07d}" for i in range(n)], "time": times,
                         "kind": np.array(KINDS, dtype=object)[rng.integers(0, len(KINDS), n)],
                         "lon": np.round(xy[:, 0], 7), "lat": np.round(xy[:, 1], 7)})
