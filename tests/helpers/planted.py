"""A small grid layer with planted defects, one kind per unit, and the counts an audit must report.

Nine units (0.01° squares near 120° E, 30° N, 0.01° apart), each tiled by four quadrant grids
(unit 7: two halves) holding ten one-household points each, away from the planted strips:

1. an overlap: grid 002 reaches 0.001° over grid 001 (no households there);
2. a gap: grid 004 loses a 0.001° strip with 3 households in it (also 3 households outside grids);
3. a multipart grid: 001 also holds a square cut out of 004;
4. codes: 002 repeats 001's code, 003 is badly formed, 004 has 3 workers;
5. code order: 001 and 002 swapped;
6. imbalance: grid 001 holds 40 households (mean 17.5; all four grids miss ±10%, a split exists);
7. a certified miss: one point of 50 households and one of 10 in two grids (no split within ±10%);
8. a grid reaching 0.002° beyond its unit into land of no unit;
9. four grids where 40 households at a target of 20 make two (grid count);
plus one grid naming a unit that is not in the boundaries.
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import box

X0, Y0, S = 120.0, 30.0, 0.01
EXPECTED = {"unknown_unit": 1, "crosses_units": 1, "gap": 1, "overlap": 1, "multipart": 1, "outside_grids": 1,
            "imbalance": 4, "grid_count": 1, "code_format": 1, "duplicate_code": 1, "code_order": 1, "workers": 1}
TARGETS = {6: 17.5, 7: 30.0, 9: 20.0}


def unit_code(u: int) -> str:
    """Return the 12-digit code of planted unit ``u`` (1..9)."""
    return f"4690000010{u:02d}"


def _quadrants(u: int) -> list:
    x, y, h = X0 + 2 * S * (u - 1), Y0, S / 2
    return [box(x, y + h, x + h, y + S), box(x + h, y + h, x + S, y + S), box(x, y, x + h, y + h),
            box(x + h, y, x + S, y + h)]


def _points_in(g, n: int, rng, margin: float = 0.0012) -> np.ndarray:
    x0, y0, x1, y1 = g.bounds
    return rng.uniform([x0 + margin, y0 + margin], [x1 - margin, y1 - margin], (n, 2))


def build(d: Path) -> dict[str, Path]:
    """Write boundaries.geojson, households.csv and grids.geojson into ``d``; return their paths."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    units, grids, pts = [], [], []
    for u in range(1, 10):
        x = X0 + 2 * S * (u - 1)
        units.append({"village_code": unit_code(u), "target_households": TARGETS.get(u, 10.0),
                      "geometry": box(x, Y0, x + S, Y0 + S)})
        q = _quadrants(u) if u != 7 else [box(x, Y0, x + S / 2, Y0 + S), box(x + S / 2, Y0, x + S, Y0 + S)]
        rows = [{"grid_code": unit_code(u) + f"{i + 1:03d}", "village_code": unit_code(u), "workers": 1,
                 "geometry": g} for i, g in enumerate(q)]
        for i, g in enumerate(q):
            if u == 7:
                c = g.centroid
                pts.append((c.x, c.y, 50 if i == 0 else 10))
            else:
                n = 40 if (u == 6 and i == 0) else 10
                pts += [(px, py, 1) for px, py in _points_in(g, n, rng)]
        _plant(u, rows, pts)
        grids += rows
    grids.append({"grid_code": "469000000999001", "village_code": "469000000999", "workers": 1,
                  "geometry": box(X0, Y0 + 0.05, X0 + S, Y0 + 0.06)})
    paths = {"boundaries": d / "boundaries.geojson", "households": d / "households.csv", "grids": d / "grids.geojson"}
    gpd.GeoDataFrame(units, crs=4326).to_file(paths["boundaries"], driver="GeoJSON")
    gpd.GeoDataFrame(grids, crs=4326).to_file(paths["grids"], driver="GeoJSON")
    pd.DataFrame({"id": np.arange(1, len(pts) + 1), "lon": [p[0] for p in pts], "lat": [p[1] for p in pts],
                  "households": [p[2] for p in pts]}).to_csv(paths["households"], index=False)
    return paths


def _plant(u: int, rows: list, pts: list) -> None:
    """Plant unit ``u``'s defect in its grid rows (and points) in place."""
    g = [r["geometry"] for r in rows]
    x0, y0, x1, y1 = (X0 + 2 * S * (u - 1), Y0, X0 + 2 * S * (u - 1) + S, Y0 + S)
    if u == 1:
        rows[1]["geometry"] = shapely.union(g[1], box(x0 + S / 2 - 0.001, y0 + S / 2, x0 + S / 2, y1))
    elif u == 2:
        strip = box(x1 - 0.001, y0, x1, y0 + S / 2)
        rows[3]["geometry"] = shapely.difference(g[3], strip)
        pts += [(x1 - 0.0005, y0 + 0.001 + 0.001 * k, 1) for k in range(3)]
    elif u == 3:
        sq = box(x1 - 0.001, y0, x1, y0 + 0.001)
        rows[0]["geometry"] = shapely.union(g[0], sq)
        rows[3]["geometry"] = shapely.difference(g[3], sq)
    elif u == 4:
        rows[1]["grid_code"] = rows[0]["grid_code"]
        rows[2]["grid_code"] = "G-" + unit_code(u) + "-3"
        rows[3]["workers"] = 3
    elif u == 5:
        rows[0]["grid_code"], rows[1]["grid_code"] = rows[1]["grid_code"], rows[0]["grid_code"]
    elif u == 8:
        rows[3]["geometry"] = shapely.union(g[3], box(x1, y0, x1 + 0.002, y0 + S / 2))
