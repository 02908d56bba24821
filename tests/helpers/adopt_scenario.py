"""The adopt scenario of issue 12: +15% households in a third of the villages, then a re-plan against the old plan.

``grow`` adds the households; ``keep_share`` measures the target: of the households whose old grid
still lies within the tolerance of its unit's new mean, the share that keep their grid code.
Shared by ``tests/test_adopt.py`` and ``benchmarks/adopt.py``.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely


def grow(households: pd.DataFrame, boundaries: gpd.GeoDataFrame, *, share_units: float = 1 / 3,
         growth: float = 0.15, seed: int = 0, code_field: str = "village_code") -> tuple[pd.DataFrame, list[str]]:
    """Return the households with ``growth`` more in ``share_units`` of the units (new points near old ones)."""
    rng = np.random.default_rng(seed)
    b = boundaries.to_crs(4326)
    pts = gpd.GeoDataFrame(households, geometry=gpd.points_from_xy(households["lon"], households["lat"]), crs=4326)
    unit = gpd.sjoin(pts, b[[code_field, "geometry"]], how="left", predicate="within")[code_field]
    unit = unit[~unit.index.duplicated()].reindex(pts.index)
    codes = sorted(unit.dropna().unique())
    chosen = sorted(rng.choice(codes, size=max(1, round(len(codes) * share_units)), replace=False).tolist())
    w = households["households"] if "households" in households.columns else pd.Series(1, index=households.index)
    extra = []
    for c in chosen:
        rows = households[unit == c]
        want = int(round(growth * float(w[unit == c].sum())))
        pick = rows.sample(n=want, replace=True, random_state=int(rng.integers(1 << 31)))
        new = pick.copy()
        new["lon"] = new["lon"] + rng.normal(0, 2e-5, len(new))
        new["lat"] = new["lat"] + rng.normal(0, 2e-5, len(new))
        if "households" in new.columns:
            new["households"] = 1
        extra.append(new)
    out = pd.concat([households, *extra], ignore_index=True)
    if "id" in out.columns:
        out["id"] = np.arange(1, len(out) + 1)
    return out, chosen


def _grid_of(grids: gpd.GeoDataFrame, xy: np.ndarray) -> np.ndarray:
    out = np.full(len(xy), None, dtype=object)
    pi, gi = shapely.STRtree(grids.geometry.values).query(shapely.points(xy), predicate="intersects")
    first = np.unique(pi, return_index=True)[1]
    out[pi[first]] = grids["grid_code"].to_numpy()[gi[first]]
    return out


def keep_share(old_grids: gpd.GeoDataFrame, new_grids: gpd.GeoDataFrame, households: pd.DataFrame,
               tolerance: float = 0.10) -> dict:
    """Return the keep-share figures: households whose old grid is still within tolerance, and how many keep its code."""
    xy = households[["lon", "lat"]].to_numpy(float)
    w = (households["households"] if "households" in households.columns else pd.Series(1, index=households.index)
         ).to_numpy(float)
    old = _grid_of(old_grids.to_crs(4326), xy)
    new = _grid_of(new_grids.to_crs(4326), xy)
    old_unit = dict(zip(old_grids["grid_code"], old_grids["village_code"]))
    h_old = pd.Series(w).groupby(pd.Series(old)).sum()               # old grids recounted with the new points
    k_new = new_grids.groupby("village_code").size()
    h_unit = pd.Series(w).groupby(pd.Series([old_unit.get(c) for c in old])).sum()
    ok = {}
    for code, h in h_old.items():
        u = old_unit.get(code)
        if u in k_new.index and u in h_unit.index:
            mean = h_unit[u] / k_new[u]
            ok[code] = abs(h - mean) <= tolerance * mean + 1e-9
    eligible = np.array([c is not None and ok.get(c, False) for c in old])
    kept = eligible & (old == new)
    return {"eligible_households": int(w[eligible].sum()), "kept_households": int(w[kept].sum()),
            "keep_share": round(float(w[kept].sum() / w[eligible].sum()), 4) if eligible.any() else 1.0,
            "moved_households": int(w[(old != None) & (old != new)].sum()),  # noqa: E711 - elementwise
            "households": int(w.sum())}
