"""Siting inputs: the demand (household points and weights) and the candidate sites.

Candidates: the given facilities (existing ones forced open) plus generated ones — each unit's "seat"
(the household nearest the unit's household-weighted centre) and one point per occupied cell of a
square lattice of side ``radius / 2`` (the household nearest the cell's weighted centre, so a station
sits where people live). Households weigh by their ``households`` count.
"""
from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from gridplan.geo import travel


@dataclass(frozen=True)
class Demand:
    """Hold the household points of one siting problem.

    Household points in the plan's metric CRS: ``xy``, weight ``w`` (0 where unusable), ``finite``
    (has coordinates), ``unit`` (row of the unit holding it, -1 if none).
    """

    xy: np.ndarray
    w: np.ndarray
    finite: np.ndarray
    unit: np.ndarray

    @classmethod
    def from_households(cls, households: gpd.GeoDataFrame) -> "Demand":
        """Read points, ``households`` counts (default 1) and ``unit_idx`` (default -1)."""
        xy = travel.as_xy(households.geometry)
        w = (households["households"].to_numpy(float) if "households" in households
             else np.ones(len(households)))
        w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
        unit = (households["unit_idx"].to_numpy(np.int64) if "unit_idx" in households
                else np.full(len(households), -1))
        return cls(xy=xy, w=w, finite=travel.finite_rows(xy), unit=unit)

    @property
    def total(self) -> float:
        """Weight of the households with coordinates."""
        return float(self.w[self.finite].sum())


@dataclass(frozen=True)
class Candidates:
    """Hold the candidate sites of one siting problem.

    Candidate sites: the first ``n_facilities`` rows are the given facilities (ids, names,
    ``existing``), the rest generated (``kind`` "seat" | "cell").
    """

    xy: np.ndarray
    n_facilities: int
    fac_ids: list
    fac_names: list
    fac_existing: np.ndarray
    kind: np.ndarray
    notes: tuple = ()
    fac_capacity: np.ndarray | None = None    # households each facility can serve (NaN: not given)

    @property
    def forced(self) -> np.ndarray:
        """Candidate rows always open (existing facilities)."""
        return np.flatnonzero(self.fac_existing)

    def __len__(self) -> int:
        return len(self.xy)


def _nearest_member(xy: np.ndarray, groups: np.ndarray, w: np.ndarray) -> pd.DataFrame:
    """For each group: the index of the member nearest the group's weighted centre."""
    df = pd.DataFrame({"g": groups, "x": xy[:, 0] * w, "y": xy[:, 1] * w, "w": w})
    agg = df.groupby("g", sort=True)[["x", "y", "w"]].sum()
    cx = (agg.x / agg.w).reindex(groups).to_numpy()
    cy = (agg.y / agg.w).reindex(groups).to_numpy()
    d2 = (xy[:, 0] - cx) ** 2 + (xy[:, 1] - cy) ** 2
    best = pd.DataFrame({"g": groups, "d2": d2, "i": np.arange(len(groups))}).sort_values(["g", "d2", "i"])
    return best.drop_duplicates("g")[["g", "i"]]


def generate_candidates(hh_xy: np.ndarray, hh_w: np.ndarray, hh_unit: np.ndarray, cell_m: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Generate candidate points (x, y) and their kind ("seat" | "cell"), deduplicated, deterministic."""
    ok = travel.finite_rows(hh_xy) & (hh_w > 0)
    xy, w, unit = hh_xy[ok], hh_w[ok], hh_unit[ok]
    if not len(xy):
        return np.zeros((0, 2)), np.array([], dtype=object)
    seats = _nearest_member(xy, np.where(unit >= 0, unit, -1), w)
    seats = seats[seats.g >= 0]
    cx = np.floor(xy[:, 0] / cell_m).astype(np.int64)
    cy = np.floor(xy[:, 1] / cell_m).astype(np.int64)
    cells = _nearest_member(xy, cx * 10_000_019 + cy, w)
    pts = np.vstack([xy[seats.i.to_numpy()], xy[cells.i.to_numpy()]])
    kind = np.array(["seat"] * len(seats) + ["cell"] * len(cells), dtype=object)
    _, first = np.unique(np.round(pts, 1), axis=0, return_index=True)
    first = np.sort(first)
    return pts[first], kind[first]


def build_candidates(demand: Demand, facilities: gpd.GeoDataFrame | None, crs, radius_m: float) -> Candidates:
    """Build the candidate sites: facilities first, then generated ones.

    Facilities first (``existing`` ones forced; without the column all are existing), then the
    generated seats and lattice cells (side ``radius_m / 2``).
    """
    fac_xy, ids, names, exist, notes, capacity = np.zeros((0, 2)), [], [], np.zeros(0, bool), [], None
    if facilities is not None and len(facilities):
        fac = facilities.to_crs(crs) if facilities.crs is not None and facilities.crs != crs else facilities
        fac_xy = travel.as_xy(fac.geometry)
        good = travel.finite_rows(fac_xy)
        if (~good).any():
            notes.append(f"{int((~good).sum())} facility point(s) without coordinates ignored")
        fac, fac_xy = fac[good], fac_xy[good]
        ids = (fac["facility_id"].astype(str).tolist() if "facility_id" in fac
               else [f"F{i + 1}" for i in range(len(fac))])
        names = fac["name"].astype(str).tolist() if "name" in fac else list(ids)
        exist = (fac["existing"].fillna(False).astype(bool).to_numpy() if "existing" in fac
                 else np.ones(len(fac), bool))
        if "capacity" in fac:
            capacity = _capacities(fac["capacity"], ids, notes)
    gen_xy, gen_kind = generate_candidates(demand.xy, demand.w, demand.unit, cell_m=max(radius_m / 2.0, 1.0))
    xy = np.vstack([fac_xy, gen_xy]) if len(gen_xy) else fac_xy
    return Candidates(xy=xy, n_facilities=len(fac_xy), fac_ids=ids, fac_names=names, fac_existing=exist,
                      kind=gen_kind, notes=tuple(notes), fac_capacity=capacity)


def _capacities(col: pd.Series, ids: list, notes: list) -> np.ndarray:
    """Read the facilities' ``capacity`` column: households, >= 0; anything else is noted and left unset."""
    raw = col.to_numpy(object)
    cap = pd.to_numeric(col, errors="coerce").to_numpy(float, copy=True)
    bad = [i for i in range(len(cap)) if not (np.isfinite(cap[i]) and cap[i] >= 0) and not pd.isna(raw[i])]
    for i in bad[:5]:
        notes.append(f"facility {ids[i]!r}: capacity {str(raw[i])[:40]!r} is not a number of households >= 0; "
                     "the default capacity is used")
    if len(bad) > 5:
        notes.append(f"... and {len(bad) - 5} more facilities with an unusable capacity")
    cap[bad] = np.nan
    cap[~np.isfinite(cap)] = np.nan
    return cap
