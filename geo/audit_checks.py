"""The geometric and code rules of the contract, checked on any grid layer (``optimize.audit`` runs them).

Every check takes plain data — grid polygons and codes in one metric CRS, the units, household
points — and returns ``Finding`` records: the rule, the grid (and unit) it concerns, one figure
(m², households, parts, grids …) and a plain sentence. Nothing here decides what is fatal.

Thresholds follow the contract's independent checker (``check_plan.py``): a unit's uncovered land
counts when it exceeds 1e-3 of the unit's area, an overlap or a grid's land outside its unit when
it exceeds 1e-4 (and at least ``MIN_M2``) — slivers of reprojection and rounding are not defects.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import shapely

from gridplan.geo.grids import order_for_codes

GAP_SHARE = 1e-3       # a unit's uncovered land counts above this share of its area
OVERLAP_SHARE = 1e-4   # an overlap / land outside the unit counts above this share of the unit (grid) area
MIN_M2 = 1.0           # and above this many m²


@dataclass(frozen=True)
class Finding:
    """One rule broken (or, for ``imbalance`` with a certificate, proven unavoidable).

    rule: the rule's name; grid_code / unit_code: where (None when it concerns no single one);
    figure: the size of the defect in the unit ``unit`` names; detail: one plain sentence.
    """

    rule: str
    grid_code: str | None
    unit_code: str | None
    figure: float
    unit: str
    detail: str

    def as_dict(self) -> dict:
        """Return the finding as a plain dict."""
        return asdict(self)


def _text(v) -> str | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)


def point_grid(polys: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Return the first grid (in layer order) holding each point, -1 when none does."""
    out = np.full(len(xy), -1, dtype=np.int64)
    if not len(xy) or not len(polys):
        return out
    pi, gi = shapely.STRtree(polys).query(shapely.points(xy), predicate="intersects")
    order = np.lexsort((gi, pi))
    pi, gi = pi[order], gi[order]
    first = np.r_[True, pi[1:] != pi[:-1]] if len(pi) else np.zeros(0, bool)
    out[pi[first]] = gi[first]
    return out


def _op(fn, *args):
    """Run a shapely overlay; on a topology error retry snapped to 1 mm (hostile layers never crash the audit)."""
    try:
        return fn(*args)
    except shapely.errors.GEOSException:
        valid = [shapely.make_valid(a) if isinstance(a, (shapely.Geometry, np.ndarray)) else a for a in args]
        for size in (1e-3, 1e-2, 1e-1):
            try:
                return fn(*valid, grid_size=size)
            except shapely.errors.GEOSException:
                continue
        raise


def multipart(codes, units, polys) -> list[Finding]:
    """Grids made of more than one polygon (not contiguous); parts under ``MIN_M2`` are slivers, not parts."""
    out = []
    for i in np.flatnonzero(shapely.get_type_id(polys) == 6):
        n = int((shapely.area(shapely.get_parts(polys[i])) > MIN_M2).sum())
        if n > 1:
            out.append(Finding("multipart", _text(codes[i]), _text(units[i]), n, "parts",
                               f"grid {codes[i]} is {n} separate polygons, not one contiguous grid"))
    return out


def outside_unit(codes, units, polys, unit_geom: dict) -> list[Finding]:
    """Grids whose unit is unknown, or that reach beyond their unit into other land (m² outside)."""
    out = []
    all_units = shapely.STRtree(list(unit_geom.values())) if unit_geom else None
    names = list(unit_geom)
    for i, (code, unit, g) in enumerate(zip(codes, units, polys)):
        u = unit_geom.get(_text(unit)) if unit is not None else None
        if u is None:
            out.append(Finding("unknown_unit", _text(code), _text(unit), round(float(shapely.area(g)), 1), "m2",
                               f"grid {code} names unit {unit!r}, which is not in the boundaries"))
            continue
        beyond = _op(shapely.difference, g, u)
        area = float(shapely.area(beyond))
        if area > max(MIN_M2, OVERLAP_SHARE * float(shapely.area(g))):
            hit = all_units.query(beyond, predicate="intersects") if all_units is not None else []
            other = sorted({names[j] for j in hit if names[j] != _text(unit)
                            and shapely.area(_op(shapely.intersection, beyond, unit_geom[names[j]])) > MIN_M2})
            where = f"into unit(s) {', '.join(other[:5])}" if other else "outside every unit"
            out.append(Finding("crosses_units", _text(code), _text(unit), round(area, 1), "m2",
                               f"grid {code} reaches {area:,.0f} m² beyond its unit {unit}, {where}"))
    return out


def gaps(codes, units, polys, unit_geom: dict, hh_xy: np.ndarray, hh_w: np.ndarray) -> tuple[list[Finding], list]:
    """Land of each unit that no grid of it covers: (findings, gap geometries with their unit code)."""
    found, shapes = [], []
    units = np.asarray([_text(u) for u in units], dtype=object)
    for code, u in unit_geom.items():
        mine = polys[units == code]
        rest = _op(shapely.difference, u, _op(shapely.union_all, mine)) if len(mine) else u
        area = float(shapely.area(rest))
        if area <= max(MIN_M2, GAP_SHARE * float(shapely.area(u))):
            continue
        hh = float(hh_w[shapely.contains_xy(rest, hh_xy[:, 0], hh_xy[:, 1])].sum()) if len(hh_xy) else 0.0
        what = "has no grid at all" if not len(mine) else f"has {area:,.0f} m² that no grid covers"
        found.append(Finding("gap", None, code, round(area, 1), "m2",
                             f"unit {code} {what} ({int(hh):,} households there)"))
        shapes.append((code, rest, int(hh)))
    return found, shapes


def overlaps(codes, units, polys, hh_xy: np.ndarray, hh_w: np.ndarray) -> tuple[list[Finding], list]:
    """Pairs of grids that overlap: (findings, [(label, overlap geometry, households, code a, code b)])."""
    found, shapes = [], []
    if len(polys) < 2:
        return found, shapes
    a, b = shapely.STRtree(polys).query(polys, predicate="intersects")
    keep = a < b
    for i, j in zip(a[keep], b[keep]):
        inter = _op(shapely.intersection, polys[i], polys[j])
        area = float(shapely.area(inter))
        small = min(float(shapely.area(polys[i])), float(shapely.area(polys[j])))
        if area <= max(MIN_M2, OVERLAP_SHARE * small):
            continue
        hh = float(hh_w[shapely.contains_xy(inter, hh_xy[:, 0], hh_xy[:, 1])].sum()) if len(hh_xy) else 0.0
        found.append(Finding("overlap", _text(codes[i]), _text(units[i]), round(area, 1), "m2",
                             f"grids {codes[i]} and {codes[j]} overlap by {area:,.0f} m² ({int(hh):,} households "
                             "there)"))
        shapes.append((f"{codes[i]}|{codes[j]}", inter, int(hh), _text(codes[i]), _text(codes[j])))
    return found, shapes


def code_format(codes, units) -> list[Finding]:
    """Codes that are not the unit code followed by 3 digits (001–999), or missing."""
    out = []
    for code, unit in zip(codes, units):
        c, u = _text(code), _text(unit)
        ok = c is not None and u is not None and re.fullmatch(re.escape(u) + r"\d{3}", c) and c[-3:] != "000"
        if not ok:
            want = f"{u} + 3 digits" if u is not None else "the unit code + 3 digits"
            out.append(Finding("code_format", c, u, 1, "grids", f"grid code {c!r} is not {want}"))
    return out


def duplicates(codes, units) -> list[Finding]:
    """Codes given to more than one grid (one finding per code; figure: how many grids share it)."""
    s = pd.Series([_text(c) for c in codes], dtype=object).dropna()
    counts = s.value_counts()
    first_unit = {}
    for c, u in zip(codes, units):
        first_unit.setdefault(_text(c), _text(u))
    return [Finding("duplicate_code", c, first_unit.get(c), int(n), "grids", f"grid code {c} is used by {n} grids")
            for c, n in counts[counts > 1].sort_index().items()]


def code_order(unit: str, codes, polys) -> Finding | None:
    """Return a finding when a unit's codes do not run west→east, north→south (``geo.grids.order_for_codes``).

    Only codes in the right format take part; the figure is the number of grids out of place.
    """
    seq = np.array([int(str(c)[-3:]) for c in codes])
    if len(seq) < 2:
        return None
    order = order_for_codes(polys)
    want = np.sort(seq)
    have = seq[order]
    wrong = int((have != want).sum())
    if not wrong:
        return None
    shown = ", ".join(str(codes[i]) for i in order[:6])
    return Finding("code_order", None, unit, wrong, "grids",
                   f"unit {unit}: {wrong} of {len(seq)} grid codes are out of the west→east, north→south order "
                   f"(in that order the grids are {shown}{' …' if len(seq) > 6 else ''})")


def workers(codes, units, values) -> list[Finding]:
    """Grids whose worker count is not 1 or 2."""
    v = np.asarray(values, dtype=float)
    bad = ~np.isin(v, (1.0, 2.0))
    return [Finding("workers", _text(codes[i]), _text(units[i]), float(v[i]) if np.isfinite(v[i]) else float("nan"),
                    "workers", f"grid {codes[i]} has {'no' if not np.isfinite(v[i]) else f'{v[i]:g}'} workers "
                    "(1 or 2 expected)")
            for i in np.flatnonzero(bad)]
