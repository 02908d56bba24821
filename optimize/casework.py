"""Workload from routed cases: per grid and per worker over a period, per household for the next plan.

- ``workload_table``: one row per grid and per worker (``level``) and per case kind (``kind``;
  ``all`` sums them): cases in the period, the households served, cases per 1,000 households.
  A grid's households are the plan's grids layer figure; a worker's are the households of the
  grid(s) the workers layer assigns them, shared equally with the grid's other workers (and so
  are the grid's cases).
- ``case_workload_layer``: the grids with their cases (all and per kind) for the map.
- ``household_cases``: cases per household point of the plan's households layer (each case counted
  at the nearest household point that lies in a grid), keyed by the households layer's id — a CSV
  the next plan's ``--workload "households + 0.5*cases"`` can join.
- ``render_cases_report``: a small self-contained HTML page of those tables (``geo.pages``).
"""
from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from gridplan.geo.coords import to_wgs84
from gridplan.geo.distance import ecef
from gridplan.geo.vocabulary import WGS84_ALIKE

WORKLOAD_COLUMNS = ["level", "grid_code", "worker_id", "kind", "cases", "households", "cases_per_1000_households",
                    "period_from", "period_to"]


def in_period(times: pd.Series, start=None, end=None) -> np.ndarray:
    """Return the mask of cases whose time lies in [start, end] (dates: whole days; None: open)."""
    t = times
    keep = np.ones(len(t), dtype=bool)
    if start is None and end is None:
        return keep
    keep &= t.notna().to_numpy()
    if start is not None:
        keep &= (t >= _ts(start)).fillna(False).to_numpy()
    if end is not None:
        e = _ts(end)
        if e == e.normalize() and not (isinstance(end, str) and "T" in end):
            e = e + pd.Timedelta(days=1) - pd.Timedelta(nanoseconds=1)   # a date ends at the day's end
        keep &= (t <= e).fillna(False).to_numpy()
    return keep


def _ts(v) -> pd.Timestamp:
    t = pd.Timestamp(v)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _per_1000(cases, households) -> np.ndarray:
    h = np.asarray(households, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(h > 0, np.round(1000.0 * np.asarray(cases, float) / h, 3), np.nan)


def workload_table(routed: pd.DataFrame, grids: pd.DataFrame, workers: pd.DataFrame | None,
                   period: tuple = (None, None), mask: np.ndarray | None = None) -> pd.DataFrame:
    """Return the workload rows (``WORKLOAD_COLUMNS``) of the routed cases in ``period``.

    Parameters
    ----------
    routed : DataFrame
        ``route_cases`` output (grid_code, kind, time).
    grids : DataFrame
        The plan's grids layer (grid_code, households).
    workers : DataFrame, optional
        The plan's workers layer (worker_id, grid_code).
    period : (start, end)
        Dates or timestamps, inclusive; None: open.
    mask : (n,) bool, optional
        ``in_period(routed["time"], *period)`` when the caller has it already.
    """
    mask = (in_period(routed["time"], *period) if mask is None else mask) & routed["grid_code"].notna().to_numpy()
    codes, code_names = pd.factorize(routed["grid_code"][mask])
    kinds_i, kind_names = pd.factorize(routed["kind"][mask], sort=True)
    code_names, kind_names = [str(c) for c in code_names], [str(k) for k in kind_names]
    counts = np.bincount(codes * max(len(kind_names), 1) + kinds_i,
                         minlength=len(code_names) * len(kind_names)).reshape(len(code_names), len(kind_names))
    g = grids[["grid_code", "households"]].drop_duplicates("grid_code").set_index("grid_code")
    g = g.reindex(g.index.append(pd.Index(sorted(set(code_names) - set(g.index)))))  # older versions' codes
    table = pd.DataFrame(counts, index=pd.Index(code_names), columns=list(kind_names)).reindex(g.index, fill_value=0)
    table["all"] = table.sum(axis=1)
    rows = [_long(table, g["households"], "grid", table.index, None)]
    if workers is not None and len(workers):
        w = workers[["worker_id", "grid_code"]].dropna()
        share = 1.0 / w.groupby("grid_code")["worker_id"].transform("count")
        per = table.reindex(w["grid_code"]).fillna(0).mul(share.to_numpy(), axis=0)
        per.index = w["worker_id"].to_numpy()
        per = per.groupby(level=0).sum()
        hh = pd.Series(g["households"].reindex(w["grid_code"]).fillna(0).to_numpy() * share.to_numpy(),
                       index=w["worker_id"].to_numpy()).groupby(level=0).sum()
        wg = w.groupby("worker_id")["grid_code"].agg(lambda s: ";".join(sorted(map(str, s))))
        rows.append(_long(per.round(3), hh.reindex(per.index), "worker", wg.reindex(per.index), per.index))
    out = pd.concat(rows, ignore_index=True)
    out["period_from"] = None if period[0] is None else str(period[0])
    out["period_to"] = None if period[1] is None else str(period[1])
    return out[WORKLOAD_COLUMNS]


def _long(table: pd.DataFrame, households: pd.Series, level: str, grid_codes, worker_ids) -> pd.DataFrame:
    """Turn a (key × kind) count table into long rows with households and the rate."""
    parts = []
    for kind in ["all"] + [c for c in table.columns if c != "all"]:
        cases = table[kind].to_numpy()
        hh = households.reindex(table.index).to_numpy(dtype=float)
        parts.append(pd.DataFrame({"level": level, "grid_code": np.asarray(grid_codes, dtype=object),
                                   "worker_id": None if worker_ids is None else np.asarray(worker_ids, dtype=object),
                                   "kind": kind, "cases": cases, "households": hh,
                                   "cases_per_1000_households": _per_1000(cases, hh)}))
    return pd.concat(parts, ignore_index=True)


def _column_name(kind: str) -> str:
    return "cases_" + (re.sub(r"\W+", "_", kind.strip().lower()).strip("_") or "unknown")


def case_workload_layer(table: pd.DataFrame, grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return the grids (geometry) with cases, households and cases per 1,000 households, and one column per kind."""
    g = table[table["level"] == "grid"]
    wide = g.pivot_table(index="grid_code", columns="kind", values="cases", aggfunc="sum", fill_value=0)
    out = grids[["grid_code", "village_code", "households", "geometry"]].copy()
    out["cases"] = wide["all"].reindex(out["grid_code"]).fillna(0).to_numpy() if "all" in wide else 0
    out["cases_per_1000_households"] = _per_1000(out["cases"], out["households"])
    for k in [c for c in wide.columns if c != "all"]:
        out[_column_name(str(k))] = wide[k].reindex(out["grid_code"]).fillna(0).to_numpy()
    return gpd.GeoDataFrame(out, geometry="geometry", crs=grids.crs)


def household_cases(routed: pd.DataFrame, households: gpd.GeoDataFrame, id_col: str,
                    period: tuple = (None, None), coords: str = "wgs84", mask: np.ndarray | None = None
                    ) -> pd.DataFrame:
    """Count cases per household point (the nearest household point in a grid); ``id_col``, cases, per kind."""
    hh = households[households["grid_code"].notna()]
    out = pd.DataFrame({id_col: hh[id_col].to_numpy(), "cases": 0})
    mask = (in_period(routed["time"], *period) if mask is None else mask) & routed["grid_code"].notna().to_numpy()
    if not mask.any() or not len(hh):
        return out
    hxyz = ecef(np.column_stack([hh.geometry.x.to_numpy(), hh.geometry.y.to_numpy()]))
    lon, lat = routed["lon"].to_numpy(float)[mask], routed["lat"].to_numpy(float)[mask]
    if coords not in WGS84_ALIKE:
        lon, lat = to_wgs84(lon, lat, coords)
    near = cKDTree(hxyz).query(ecef(np.column_stack([lon, lat])), workers=-1)[1].astype(np.int64)
    kind_i, kind_names = pd.factorize(routed["kind"][mask], sort=True)
    ok = near >= 0
    out["cases"] = np.bincount(near[ok], minlength=len(hh))
    for i, k in enumerate(kind_names):
        m = ok & (kind_i == i)
        out[_column_name(str(k))] = np.bincount(near[m], minlength=len(hh))
    return out


def render_cases_report(table: pd.DataFrame, meta: dict) -> str:
    """Render the self-contained HTML report of a workload table (no map, no outside resources)."""
    from gridplan.geo.pages import render

    def rows(level: str) -> list[dict]:
        t = table[(table["level"] == level) & (table["kind"] == "all")].sort_values("cases", ascending=False)
        return t.head(500).replace({np.nan: None}).to_dict("records")

    kinds = (table[table["level"] == "grid"].groupby("kind")["cases"].sum().sort_values(ascending=False)
             .reset_index().to_dict("records"))
    return render("cases_report.html.j2", title=meta.get("title", "Cases by grid"), meta=meta, kinds=kinds,
                  grids=rows("grid"), workers=rows("worker"))
