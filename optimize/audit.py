"""Audit an existing grid layer against every rule of the contract.

``audit(grids, boundaries, households)`` reads the three inputs through ``geo.io`` (hostile-upload
rules), recounts the households of every grid from the points, and lists each rule broken with
the grid (or unit) and a figure (``geo.audit_checks``):

- ``unknown_unit`` / ``crosses_units``: a grid naming no input unit, or reaching beyond its unit (m²);
- ``gap`` (per unit, m² and households there) and ``overlap`` (per pair of grids, m² and households);
- ``multipart``: a grid of several polygons; ``outside_grids``: households in a unit but in no grid;
- ``imbalance``: a grid more than ``tolerance`` from its unit's mean households per grid, when the
  unit's points *could* be split within the tolerance (or that is undecided). A miss that
  ``optimize.certify`` proves unavoidable for the unit's household points and grid count is not a
  violation: it is listed in ``certified`` with the best band possible;
- ``grid_count`` (with ``target_households``): a unit with other than round(households / target) grids;
- ``code_format`` (unit code + 3 digits), ``duplicate_code``, ``code_order`` (west→east,
  north→south inside a unit, for a first version: ``first_version=False`` skips it) and
  ``workers`` (1 or 2, when the layer has a workers column).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from gridplan.geo import audit_checks as C
from gridplan.geo.audit_checks import Finding
from gridplan.geo.crs import Reprojector
from gridplan.geo.grids_load import read_grids
from gridplan.geo.problems import DataError, Problem
from gridplan.optimize import certify
from gridplan.optimize.partition import choose_k

RULES = ("unknown_unit", "crosses_units", "gap", "overlap", "multipart", "outside_grids", "imbalance", "grid_count",
         "code_format", "duplicate_code", "code_order", "workers")


@dataclass
class AuditResult:
    """What the audit found.

    violations: every rule broken (``geo.audit_checks.Finding``); certified: grids outside the
    tolerance in units where no split of the points can meet it (proven); counts: violations per
    rule (every rule listed, 0 when clean); stats: what was checked; flagged / gaps / overlaps:
    layers (WGS 84) of the grids with a violation, the uncovered land and the overlaps.
    """

    violations: list[Finding]
    certified: list[Finding]
    stats: dict
    flagged: gpd.GeoDataFrame
    gaps: gpd.GeoDataFrame
    overlaps: gpd.GeoDataFrame
    problems: list[Problem] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Violations per rule (every rule, 0 when none)."""
        c = Counter(v.rule for v in self.violations)
        return {r: int(c.get(r, 0)) for r in RULES}

    @property
    def clean(self) -> bool:
        """True when no rule is broken (certified misses are not violations)."""
        return not self.violations

    def as_dict(self) -> dict:
        """Return the result as audit.json holds it."""
        return {"clean": self.clean, "counts": self.counts, "stats": self.stats,
                "violations": [v.as_dict() for v in self.violations],
                "certified": [v.as_dict() for v in self.certified],
                "problems": [p.as_dict() for p in self.problems]}

    def to_dir(self, path) -> Path:
        """Write ``audit.json``, ``audit.gpkg`` (flagged grids, gaps, overlaps) and ``audit.html`` into ``path``."""
        from gridplan.geo.audit_page import render_audit
        from gridplan.geo.output import write_layer
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "audit.json").write_text(json.dumps(self.as_dict(), ensure_ascii=False, indent=1, allow_nan=False,
                                                    default=str), encoding="utf-8")
        gpkg = path / "audit.gpkg"
        gpkg.unlink(missing_ok=True)
        for name, layer in (("flagged_grids", self.flagged), ("gaps", self.gaps), ("overlaps", self.overlaps)):
            write_layer(layer, gpkg, name)
        (path / "audit.html").write_text(render_audit(self), encoding="utf-8")
        return path


AUDIT_FIELDS = ("grid_code_field", "unit_field", "code_field", "first_version")
PLAN_FIELDS = ("target_households", "tolerance", "coords")


def audit_options(params: dict) -> dict:
    """Check an audit's options (CLI flags or HTTP ``params``); return them as ``audit()`` keywords.

    ``target_households``, ``tolerance`` and ``coords`` are checked as the plan checks them
    (``PlanOptions``); the field names must be non-empty text of at most 64 characters.

    Raises
    ------
    OptionsError
        Naming every refused option.
    """
    from gridplan.optimize.options import OptionsError, PlanOptions
    params = {k: v for k, v in dict(params).items() if v is not None}
    errors = [(k, f"unknown audit option {k!r}; known: {', '.join(AUDIT_FIELDS + PLAN_FIELDS)}")
              for k in params if k not in AUDIT_FIELDS + PLAN_FIELDS]
    for k in ("grid_code_field", "unit_field", "code_field"):
        v = params.get(k)
        if v is not None and not (isinstance(v, str) and 0 < len(v.strip()) <= 64):
            errors.append((k, "must be a column name (1 to 64 characters)"))
    if "first_version" in params and not isinstance(params["first_version"], bool):
        errors.append(("first_version", "must be true or false"))
    try:
        o = PlanOptions.from_mapping({k: params[k] for k in PLAN_FIELDS if k in params})
    except OptionsError as e:
        errors += list(e.errors)
    if errors:
        raise OptionsError(errors)
    out = {k: params[k] for k in AUDIT_FIELDS if k in params}
    out.update(tolerance=float(o.tolerance), coords=str(o.coords))
    if "target_households" in params:
        out["target_households"] = float(o.target_households)
    return out


def _jsonable_figure(f: Finding) -> Finding:
    if isinstance(f.figure, float) and not np.isfinite(f.figure):
        return Finding(f.rule, f.grid_code, f.unit_code, -1.0, f.unit, f.detail)
    return f


def audit(grids, boundaries, households, *, grid_code_field: str = "grid_code", unit_field: str = "village_code",
          target_households: float | None = None, tolerance: float = 0.10, coords: str = "wgs84",
          code_field: str = "village_code", first_version: bool = True, limits=None,
          names: dict | None = None) -> AuditResult:
    """Check a grid layer against the contract's rules (see the module docstring).

    Parameters
    ----------
    grids : path or GeoDataFrame
        The grid layer (any vector format, or a gridplan output directory).
    boundaries, households : path or GeoDataFrame
        The units and the household points, as for ``plan``.
    grid_code_field, unit_field : str
        The grid layer's code column and the column naming each grid's unit.
    target_households : float, optional
        When given, each unit's grid count is checked against round(households / target)
        (a unit's own ``target_households`` column wins).
    tolerance : float
        Allowed |households − unit mean| / unit mean.
    coords : str
        What lon/lat without a CRS mean in all three inputs.
    code_field : str
        The boundaries' unit code column.
    first_version : bool
        Check the west→east, north→south code order (later versions keep surviving codes).
    limits : geo.io.ReadLimits, optional
        Read limits.
    names : dict, optional
        role ("grids", "boundaries", "households") -> the file name the client gave.

    Returns
    -------
    AuditResult

    Raises
    ------
    DataError
        When an input cannot be used at all (every problem found is carried).
    """
    from gridplan.geo.io import load_dataset
    if not (0 < float(tolerance) < 1):
        raise ValueError(f"tolerance must be between 0 and 1, got {tolerance}")
    names = dict(names or {})
    ds = load_dataset(boundaries, households, coords=coords, code_field=code_field, limits=limits,
                      names={k: v for k, v in names.items() if k != "grids"})
    g, gprobs = read_grids(grids, ds.crs, grid_code_field=grid_code_field, unit_field=unit_field, coords=coords,
                           limits=limits, name=names.get("grids"))
    if any(p.fatal and p.kind != "missing_code" for p in gprobs) or not len(g):
        raise DataError(gprobs or [Problem(names.get("grids", "grids"), None, "empty", "the grid layer has no grids",
                                           True)])
    problems = [p for p in ds.problems + gprobs if not p.fatal]
    return _run(g, ds, gprobs, float(tolerance), target_households, first_version, problems)


def _run(g: gpd.GeoDataFrame, ds, gprobs, tol: float, target, first_version: bool, problems) -> AuditResult:
    codes = g["grid_code"].to_numpy(dtype=object)
    units = g["unit_code"].to_numpy(dtype=object)
    polys = np.asarray(g.geometry.values, dtype=object)
    unit_geom = dict(zip(ds.units["unit_code"].astype(str), ds.units.geometry.values))
    hh = ds.households[ds.households["unit_idx"] >= 0]
    xy = np.column_stack([hh.geometry.x.to_numpy(), hh.geometry.y.to_numpy()]) if len(hh) else np.zeros((0, 2))
    w = hh["households"].to_numpy(np.int64)
    unit_of_hh = ds.units["unit_code"].astype(str).to_numpy()[hh["unit_idx"].to_numpy()] if len(hh) else np.zeros(0)
    hit = C.point_grid(polys, xy)
    counts = np.bincount(hit[hit >= 0], weights=w[hit >= 0], minlength=len(g)).astype(np.int64)

    found: list[Finding] = []
    found += [_missing_codes(p) for p in gprobs if p.kind == "missing_code"]
    found += C.outside_unit(codes, units, polys, unit_geom)
    gap_f, gap_shapes = C.gaps(codes, units, polys, unit_geom, xy, w)
    ov_f, ov_shapes = C.overlaps(codes, units, polys, xy, w)
    found += gap_f + ov_f + C.multipart(codes, units, polys)
    found += _outside_grids(hit, w, unit_of_hh)
    imb, cert = _imbalance(codes, units, counts, w, unit_of_hh, hit, tol)
    found += imb
    if target is not None:
        found += _grid_count(ds, units, w, unit_of_hh, float(target))
    found += C.code_format(codes, units) + C.duplicates(codes, units)
    if first_version:
        found += _order(ds, codes, units, polys)
    if g.attrs.get("has_workers"):
        found += C.workers(codes, units, g["workers"].to_numpy(float))
    found = [_jsonable_figure(f) for f in found]
    stats = {"grids": int(len(g)), "units": int(len(ds.units)), "households": int(w.sum()),
             "households_in_grids": int(counts.sum()), "tolerance": tol, "target_households": target,
             "first_version": first_version, "certified_misses": len(cert)}
    return AuditResult(violations=found, certified=cert, stats=stats, flagged=_flagged(g, found, counts, ov_shapes),
                       gaps=_shapes(gap_shapes, "unit_code", ds.crs), overlaps=_shapes(ov_shapes, "grid_codes", ds.crs),
                       problems=problems)


def _missing_codes(p: Problem) -> Finding:
    return Finding("code_format", None, None, int(p.count), "grids", p.message)


def _outside_grids(hit: np.ndarray, w: np.ndarray, unit_of_hh: np.ndarray) -> list[Finding]:
    """Households inside a unit but inside no grid, one finding per unit."""
    out = []
    miss = hit < 0
    if not miss.any():
        return out
    per = pd.Series(w[miss]).groupby(unit_of_hh[miss]).agg(["sum", "size"])
    for unit, r in per.iterrows():
        out.append(Finding("outside_grids", None, str(unit), int(r["sum"]), "households",
                           f"{int(r['sum']):,} households ({int(r['size']):,} points) of unit {unit} lie in no grid"))
    return out


def _imbalance(codes, units, counts, w, unit_of_hh, hit, tol: float) -> tuple[list[Finding], list[Finding]]:
    """Grids beyond ``tol`` of their unit's mean: violations, and the misses a certificate proves unavoidable."""
    bad, proven = [], []
    units_t = np.asarray([C._text(u) for u in units], dtype=object)
    for unit in pd.unique(units_t[pd.notna(units_t)]):
        mine = np.flatnonzero(units_t == unit)
        h = counts[mine].astype(float)
        mean = h.mean()
        if len(mine) < 2 or mean <= 0:
            continue
        dev = np.abs(h - mean) / mean
        miss = np.flatnonzero(dev > tol + 1e-9)
        if not len(miss):
            continue
        sizes = w[(unit_of_hh == unit) & np.isin(hit, mine)]
        cert = certify.certify(sizes, len(mine), tol)
        for i in miss:
            gi = mine[i]
            text = (f"grid {codes[gi]}: {int(h[i]):,} households, {dev[i]:.1%} from the unit mean {mean:,.0f} "
                    f"(±{tol:.0%} allowed)")
            if cert.reachable is False:
                best = f"{cert.best_band:.1%}" if cert.best_band is not None else f"≥ {cert.band_bound:.1%}"
                proven.append(Finding("imbalance", C._text(codes[gi]), unit, round(float(dev[i]), 4), "share",
                                      text + f"; certified unreachable: no split of the unit's points into "
                                      f"{len(mine)} grids is within ±{tol:.0%} (best possible {best})"))
            else:
                why = ("uncertified: the unit's points could be split within the tolerance" if cert.reachable
                       else "uncertified: whether the tolerance is reachable was not decided within the limit")
                bad.append(Finding("imbalance", C._text(codes[gi]), unit, round(float(dev[i]), 4), "share",
                                   f"{text}; {why}"))
    return bad, proven


def _grid_count(ds, units, w, unit_of_hh, target: float) -> list[Finding]:
    """Units whose grid count is not round(households / target) (their own target column wins)."""
    out = []
    have = Counter(C._text(u) for u in units)
    totals = pd.Series(w).groupby(unit_of_hh).sum() if len(w) else pd.Series(dtype=float)
    for _, r in ds.units.iterrows():
        code = str(r["unit_code"])
        t = r["target_households"] if pd.notna(r["target_households"]) and r["target_households"] > 0 else target
        want = choose_k(float(totals.get(code, 0)), float(t))
        if have.get(code, 0) and have[code] != want:
            out.append(Finding("grid_count", None, code, int(have[code]), "grids",
                               f"unit {code} has {have[code]} grids; {int(totals.get(code, 0)):,} households at "
                               f"{t:g} per grid make {want}"))
    return out


def _order(ds, codes, units, polys) -> list[Finding]:
    """Code order per unit, measured in the unit's own metric CRS (as the planner numbers grids)."""
    from gridplan.optimize.pipeline import unit_crs
    crs_of = dict(zip(ds.units["unit_code"].astype(str), unit_crs(ds)))
    ok = {f.grid_code for f in C.code_format(codes, units)}
    dup = {f.grid_code for f in C.duplicates(codes, units)}
    out = []
    units_t = np.asarray([C._text(u) for u in units], dtype=object)
    for unit in pd.unique(units_t[pd.notna(units_t)]):
        mine = [i for i in np.flatnonzero(units_t == unit) if C._text(codes[i]) not in ok | dup]
        if unit not in crs_of or len(mine) < 2:
            continue
        rp = Reprojector(ds.crs, crs_of[unit])
        f = C.code_order(unit, [codes[i] for i in mine], np.asarray([rp.geom(polys[i]) for i in mine], dtype=object))
        if f is not None:
            out.append(f)
    return out


def _flagged(g: gpd.GeoDataFrame, found: list[Finding], counts: np.ndarray, pairs: list) -> gpd.GeoDataFrame:
    """Return the grids a violation names (by code), with their rules and recounted households, in WGS 84."""
    rules: dict[str, list[str]] = {}
    for f in found:
        if f.grid_code is not None:
            rules.setdefault(f.grid_code, []).append(f.rule)
    for pair in pairs:   # an overlap's finding names its first grid; the second is flagged too
        if pair[4] is not None:
            rules.setdefault(pair[4], []).append("overlap")
    codes = g["grid_code"].astype(object).where(g["grid_code"].notna(), None)
    sel = codes.isin(list(rules)).to_numpy()
    out = gpd.GeoDataFrame({"grid_code": codes[sel].astype(str).to_numpy(),
                            "unit_code": g["unit_code"][sel].astype(object).to_numpy(),
                            "households": counts[sel],
                            "rules": [", ".join(dict.fromkeys(rules[c])) for c in codes[sel]]},
                           geometry=g.geometry[sel].values, crs=g.crs)
    return out.to_crs(4326)


def _shapes(rows: list, key: str, crs) -> gpd.GeoDataFrame:
    df = pd.DataFrame({key: [r[0] for r in rows], "area_m2": [round(float(r[1].area), 1) for r in rows],
                       "households": [int(r[2]) for r in rows]})
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([r[1] for r in rows], crs=crs), crs=crs).to_crs(4326)
