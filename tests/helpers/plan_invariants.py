"""Reusable checks of a plan's rules (CONTRACT.md): tiling, contiguity, nesting, true counts, codes.

``check_plan_invariants(plan)`` raises AssertionError naming the first broken rule; ``CodeHistory``
follows a sequence of plans (edits) and checks that retired codes never come back and locked grids
never change. Areas are measured in a metric CRS chosen for the plan. A unit's gap, overlap or
overreach may not exceed max(``AREA_EPS_M2``, ``AREA_EPS_REL`` × its area): grids stored in lon/lat
tile exactly in lon/lat, but a vertex inserted into a long straight edge (a cell edge meeting the
unit outline) bends that edge by the projection's curvature once projected vertex by vertex —
half a millimetre on a 600 m edge. ``shared/tools/check_plan.py`` allows 1e-3 (gaps) and 1e-4
(overlaps) of the total area; these bounds are 100 and 10 times stricter, per unit.
"""
from __future__ import annotations

import re

import numpy as np
import shapely

AREA_EPS_M2 = 0.5
AREA_EPS_REL = 1e-5


def _metric(plan):
    from gridplan.geo.regrid import metric_reprojectors
    bounds = plan.units.total_bounds if len(plan.units) else plan.grids.total_bounds
    return metric_reprojectors(tuple(bounds))[0]


def check_tiling(plan) -> None:
    """Grids of each unit cover it fully, never overlap, and lie inside it (nesting)."""
    rp = _metric(plan)
    units = plan.units
    ucode = units["village_code"].astype(str).to_numpy()
    # validity is checked in the plan's own coordinates (check_contiguity); a vertex-by-vertex
    # reprojection can make a valid ring self-touch, which would only trip the overlays below
    ugeom = shapely.make_valid(rp.geom(units.geometry.values))
    ggeom = shapely.make_valid(rp.geom(plan.grids.geometry.values))
    gunit = plan.grids["village_code"].astype(str).to_numpy()
    assert set(gunit) <= set(ucode), f"grids name units not in the plan: {sorted(set(gunit) - set(ucode))[:5]}"
    for code, ug in zip(ucode, ugeom):
        mine = ggeom[gunit == code]
        assert len(mine), f"unit {code} has no grid"
        # 1 mm precision: exact overlays of edges reprojected vertex by vertex can make GEOS give up
        union = shapely.union_all(mine, grid_size=1e-3)
        gap = shapely.area(shapely.difference(ug, union, grid_size=1e-3))
        overlap = float(shapely.area(mine).sum()) - shapely.area(union)
        outside = shapely.area(shapely.difference(union, ug, grid_size=1e-3))
        eps = max(AREA_EPS_M2, AREA_EPS_REL * shapely.area(ug))
        assert gap <= eps, f"unit {code}: {gap:.3f} m² not covered by its grids"
        assert overlap <= eps, f"unit {code}: grids overlap by {overlap:.3f} m²"
        assert outside <= eps, f"unit {code}: grids reach {outside:.3f} m² outside the unit"


def check_contiguity(plan) -> None:
    """Every grid is one non-empty, valid Polygon."""
    g = plan.grids
    bad = g.loc[(g.geom_type != "Polygon") | ~g.is_valid | g.is_empty, "grid_code"].tolist()
    assert not bad, f"grids not a single valid Polygon: {bad[:5]}"


def check_counts(plan) -> None:
    """Households per grid equal a recount of the households layer; each household lies in its grid."""
    g, hh = plan.grids, plan.households
    labelled = hh[hh["grid_code"].notna()]
    recount = labelled.groupby(labelled["grid_code"].astype(str))["households"].sum()
    codes = g["grid_code"].astype(str)
    mine = codes.map(recount).fillna(0).astype(int).to_numpy()
    diff = np.flatnonzero(mine != g["households"].astype(int).to_numpy())
    assert not len(diff), f"grid {codes.iloc[diff[0]]}: {g['households'].iloc[diff[0]]} households, recount {mine[diff[0]]}"
    if "population" in hh.columns:
        pop = labelled.groupby(labelled["grid_code"].astype(str))["population"].sum()
        want = np.rint(codes.map(pop).fillna(0).to_numpy(float)).astype(int)
        bad = np.flatnonzero(want != g["population"].astype(int).to_numpy())
        assert not len(bad), f"grid {codes.iloc[bad[0]]}: population {g['population'].iloc[bad[0]]}, recount {want[bad[0]]}"
    unknown = set(labelled["grid_code"].astype(str)) - set(codes)
    assert not unknown, f"households labelled with grids not in the plan: {sorted(unknown)[:5]}"
    poly = dict(zip(codes, g.geometry.values))
    geoms = np.array([poly[c] for c in labelled["grid_code"].astype(str)], dtype=object)
    inside = shapely.covers(geoms, labelled.geometry.values)
    assert inside.all(), f"{int((~inside).sum())} household(s) outside the grid they are labelled with"
    unit_of = dict(zip(codes, g["village_code"].astype(str)))
    same = labelled["village_code"].astype(str).to_numpy() == np.array([unit_of[c] for c in labelled["grid_code"].astype(str)])
    assert same.all(), "a household's unit differs from its grid's unit"
    mean = g.groupby("village_code")["households"].transform("mean").astype(float).to_numpy()
    dev = np.where(mean > 0, (g["households"].astype(float).to_numpy() - mean) / np.where(mean > 0, mean, 1), 0.0)
    assert np.allclose(dev, g["deviation"].astype(float).to_numpy(), atol=1e-9), "deviation is not (h - mean) / mean"


def check_codes(plan) -> None:
    """Codes unique, unit code + 3 digits, within the unit's registry; units layer and summary agree."""
    g = plan.grids
    codes = g["grid_code"].astype(str)
    assert codes.is_unique, f"duplicate grid codes: {codes[codes.duplicated()].tolist()[:5]}"
    for c, u in zip(codes, g["village_code"].astype(str)):
        assert re.fullmatch(re.escape(u) + r"\d{3}", c), f"grid code {c} is not unit {u} + 3 digits"
    reg = plan.summary.get("code_registry") or {}
    for c, u in zip(codes, g["village_code"].astype(str)):
        if u in reg:
            last = reg[u]["last"] if isinstance(reg[u], dict) else reg[u]
            assert int(c[-3:]) <= int(last), f"grid {c} beyond the registry's highest number {last}"
            assert c not in (reg[u].get("retired", []) if isinstance(reg[u], dict) else []), f"grid {c} is retired"
    assert plan.summary.get("grids", len(g)) == len(g), "summary grids differs from the grids layer"
    n = g.groupby(g["village_code"].astype(str)).size()
    u = plan.units
    got = u["village_code"].astype(str).map(n).fillna(0).astype(int).to_numpy()
    assert (got == u["grids"].astype(int).to_numpy()).all(), "units layer grid counts differ from the grids layer"


def check_plan_invariants(plan) -> None:
    """Run every check: tiling and nesting, contiguity, counts, codes."""
    check_contiguity(plan)
    check_tiling(plan)
    check_counts(plan)
    check_codes(plan)


class CodeHistory:
    """Follows plans of one edit sequence: retired codes never return, locked grids never change."""

    def __init__(self, plan):
        self.seen = set(plan.grids["grid_code"].astype(str))
        self.retired: set[str] = set()
        self.last = plan

    def step(self, plan) -> None:
        """Check ``plan`` (the next in the sequence) against everything seen before."""
        codes = set(plan.grids["grid_code"].astype(str))
        back = codes & self.retired
        assert not back, f"retired codes reused: {sorted(back)}"
        self.retired |= self.seen - codes
        self.seen |= codes
        old = dict(zip(self.last.grids["grid_code"].astype(str), self.last.grids.geometry.values))
        new = dict(zip(plan.grids["grid_code"].astype(str), plan.grids.geometry.values))
        for c in self.last.summary.get("locked") or []:
            assert c in new, f"locked grid {c} disappeared"
            assert shapely.equals_exact(old[c], new[c], 0.0), f"locked grid {c} changed shape"
        self.last = plan
