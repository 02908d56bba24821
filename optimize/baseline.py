"""Stable re-plans: keep last version's grids where they still hold, change the rest with the fewest households moved.

The baseline is a gridplan output directory or any grid layer (``load_baseline``). For each unit,
two answers are made from last version's grids (clipped to this year's unit outline) and the one
within the tolerance with the fewest households moved (a household moves when its grid code
changes) wins; the count is in the unit's notes and ``summary["baseline"]["units"]``:

- *repair* (``optimize.adopt``): merge or open grids to reach ``k = choose_k(H, target)``, then
  move boundary cells until every grid is within the band; untouched grids keep their polygon;
- *re-split*: a grid is kept — same code, same polygon — when it is still one Polygon and within
  ``tolerance`` of the new mean ``H / k``. What the kept grids leave is split again: the k − kept
  grids still to make are apportioned over its connected pieces by households, and each piece is
  split with a tolerance narrowed so that its grids stay within ``tolerance`` of the *unit's*
  mean. A piece that cannot hold whole grids within it releases the kept grid it borders most,
  and the apportionment starts again — so no sliver of households becomes a grid of its own.
  Pieces without households join the grid they border most (never an empty grid).

What still misses the tolerance is named in the unit's notes, grid by grid. New grids take the
unit's next never-used numbers (``optimize.codes``: the code registry travels with the plan in
``summary["code_registry"]``), so no old code ever changes meaning or comes back once retired.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from gridplan.geo.coords import geometries_to_wgs84
from gridplan.geo.grids import order_for_codes, polygon_parts
from gridplan.geo.grids_load import read_grids
from gridplan.geo.output import read_plan_dir
from gridplan.geo.problems import DataError, Problem
from gridplan.geo.summary import Summary
from gridplan.geo.vocabulary import OFFSET_COORD_SYSTEMS
from gridplan.optimize.adopt import moved_households, old_seq_of_points, repair_unit
from gridplan.optimize.codes import sequence_numbers
from gridplan.optimize.options import PlanOptions
from gridplan.optimize.partition import UnitPartition, choose_k, partition_unit

MIN_PIECE_M2 = 1.0   # pieces of leftover area smaller than this are slivers of clipping, not land


def load_baseline(path, crs) -> gpd.GeoDataFrame:
    """Return last version's grids (grid_code, village_code, seq, next_seq, geometry) in the metric ``crs``.

    ``path`` is a gridplan output directory (its grids layer and code registry) or a grid layer
    file from any tool (read through ``geo.grids_load``: ``grid_code`` and ``village_code``
    columns). ``seq`` is each grid's number (``optimize.codes.sequence_numbers``), ``next_seq``
    its unit's next never-used number; ``attrs["code_registry"]`` holds the registry.
    """
    p = Path(path)
    registry = {}
    if p.is_dir():
        layers, summary = read_plan_dir(p)
        if "grids" not in layers:
            raise ValueError(f"{path}: the baseline plan has no grids layer")
        grids = layers["grids"]
        oc = Summary.from_dict(summary).output_coords
        if oc in OFFSET_COORD_SYSTEMS:   # the old plan was written in web-map coordinates: undo the offset
            grids = grids.set_geometry(gpd.GeoSeries(geometries_to_wgs84(grids.geometry.values, oc), crs=4326))
        grids = grids.to_crs(crs)
        registry = summary.get("code_registry") if isinstance(summary.get("code_registry"), dict) else {}
    else:
        grids, problems = read_grids(p, crs, name=p.name)
        if any(q.fatal for q in problems) or not len(grids):
            raise DataError([q for q in problems if q.fatal] or
                            [Problem(p.name, None, "empty", f"{p.name}: the baseline grid layer has no grids", True)])
        grids = grids.rename(columns={"unit_code": "village_code"})
        grids = grids[grids["village_code"].notna()]
    grids["grid_code"] = grids["grid_code"].astype(str)
    grids["village_code"] = grids["village_code"].astype(str)
    seq, registry = sequence_numbers(grids, registry)
    out = grids[["grid_code", "village_code", "geometry"]].copy()
    out["seq"] = seq
    out["next_seq"] = out["village_code"].map(lambda u: registry[u]["last"] + 1)
    out = out[["grid_code", "village_code", "seq", "next_seq", "geometry"]]
    out.attrs["code_registry"] = registry
    return out


def replan_unit(geometry, xy: np.ndarray, households: np.ndarray, target: float, options: PlanOptions,
                old: gpd.GeoDataFrame) -> tuple[UnitPartition, list[int]] | None:
    """Re-plan one unit against its ``old`` grids. None when nothing of the old plan can be kept.

    Three answers are made — the old grids repaired by boundary moves (``optimize.adopt``), the
    still-balanced grids kept with the rest re-split, and a fresh partition whose grids take the
    old codes that keep most households — and the one within the tolerance with the fewest
    households moved (grid code changed) wins; its count is in the notes.
    """
    t0 = time.perf_counter()
    if len(old) == 0:
        return None
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    households = np.asarray(households, dtype=np.int64).reshape(-1)
    clipped = [shapely.make_valid(shapely.intersection(shapely.make_valid(g), geometry)) for g in old.geometry.values]
    seqs_old = [int(v) for v in old["seq"]]
    next_seq = _next_seq(old)
    was = old_seq_of_points(clipped, seqs_old, xy)
    answers, failed = [], []
    for make in (_resplit, _repaired, _fresh):
        try:
            res = make(geometry, xy, households, target, options, old, clipped, next_seq, t0)
        except Exception as e:  # one way failing leaves the other; the note says so
            res = None
            failed.append(f"the {make.__name__.strip('_')} answer failed ({type(e).__name__}: {e})")
        if res is not None:
            answers.append((res, moved_households(res[0].labels, households, res[1], was)))
    if not answers:
        if failed:
            raise RuntimeError("; ".join(failed))
        return None
    (part, seqs), moved = min(answers, key=lambda a: (a[0][0].balance not in ("within", "single"), a[1]))
    note = f"{moved} households moved to another grid code (the fewest of the answers tried)"
    return replace(part, notes=tuple(dict.fromkeys((*part.notes, note)))), seqs


def _fresh(geometry, xy, households, target, options, old, clipped, next_seq, t0):
    """Return a fresh partition of the unit, each grid coded with the old grid it keeps most households of.

    The matching maximises the households that keep their code (an assignment problem); grids left
    without an old code get the unit's next never-used numbers, in code order.
    """
    from scipy.optimize import linear_sum_assignment
    part = partition_unit(geometry, xy, households, target, options)
    seqs_old = [int(v) for v in old["seq"]]
    was = old_seq_of_points(clipped, seqs_old, xy)
    k, m = len(part.polygons), len(seqs_old)
    kept = np.zeros((k, m))
    for j, s in enumerate(seqs_old):
        on = was == s
        kept[:, j] = np.bincount(part.labels[on], weights=households[on], minlength=k)
    if not kept.any():
        return None                          # no old grid holds any of its households: nothing to keep
    rows, cols = linear_sum_assignment(-kept)
    seqs = [0] * k
    for r, c in zip(rows, cols):
        if kept[r, c] > 0:                   # an old code goes only to a grid that keeps some of its households
            seqs[r] = seqs_old[c]
    fresh = [i for i in range(k) if seqs[i] == 0]
    for n, i in enumerate(fresh):
        seqs[i] = next_seq + n
    if max(seqs) > 999:
        return None
    return replace(part, status="baseline+fresh", seconds=time.perf_counter() - t0), seqs


def _next_seq(old: gpd.GeoDataFrame) -> int:
    """Return the unit's next never-used sequence number (its code registry, else the layer's highest + 1)."""
    nxt = int(old["seq"].max()) + 1
    if "next_seq" in old.columns and len(old):
        nxt = max(nxt, int(old["next_seq"].max()))
    return nxt


def _repaired(geometry, xy, households, target, options, old, clipped, next_seq, t0):
    """Return the old grids repaired with few households moved (``optimize.adopt.repair_unit``), or None."""
    res = repair_unit(geometry, xy, households, target, float(options.tolerance), clipped,
                      [int(v) for v in old["seq"]], next_seq)
    if res is None:
        return None
    polys, labels, seqs, retired = res
    if max(seqs) > 999:
        return None
    return _partition(polys, labels, households, seqs, float(options.tolerance), "baseline+repair",
                      [f"{len(retired)} grid(s) merged into a neighbour"] if retired else [], t0, hh_rows=households)


def _partition(polys, labels, households, seqs, tol, status, notes, t0, hh_rows=None):
    """Build the unit's result from polygons and labels, counting the balance truly."""
    h = np.bincount(labels, weights=households, minlength=len(polys)) if len(labels) else np.zeros(len(polys))
    m = h.mean() if len(h) else 0.0
    dev = np.abs(h - m) / m if m > 0 else np.zeros(len(polys))
    misses = [f"grid {seqs[i]:03d}: {int(h[i])} households, {dev[i]:.1%} from the mean {m:.0f}"
              for i in np.flatnonzero(dev > tol + 1e-9)]
    notes = list(notes)
    if misses:
        notes.append(f"outside ±{tol:.0%} after the re-plan (the models missed in the re-split land): "
                     + "; ".join(misses))
    balance = "single" if len(polys) == 1 else ("miss" if misses else "within")
    part = UnitPartition(labels=labels, polygons=list(polys), k=len(polys), status=status,
                         max_abs_dev=float(dev.max()) if len(dev) else 0.0, seconds=time.perf_counter() - t0,
                         notes=tuple(dict.fromkeys(notes)), households=tuple(int(v) for v in h), balance=balance)
    return part, list(seqs)


def _resplit(geometry, xy, households, target, options, old, clipped, next_seq, t0):
    """Keep the still-balanced old grids and re-split what they leave; None when none can be kept."""
    total = float(households.sum())
    k_new = choose_k(total, target)
    mean = total / k_new
    tol = float(options.tolerance)
    keep, inside = _still_balanced(clipped, xy, households, mean, tol, total)
    released = 0
    while keep:
        layout = _layout_rest(geometry, xy, households, [clipped[j] for j in keep], [inside[j] for j in keep],
                              k_new, mean, tol)
        if isinstance(layout, list):
            break
        keep.remove(keep[layout])      # the kept grid this piece needs, released into it
        released += 1
    if not keep:
        return None
    pieces = layout
    labels = np.full(len(xy), -1, dtype=np.int64)
    for i, j in enumerate(keep):
        labels[inside[j]] = i
    kept_polys = [clipped[j] for j in keep]
    new_polys, notes = [], []
    if released:
        notes.append(f"{released} kept grid(s) re-split with land their neighbours could not fill alone")
    split = []
    for piece, sel, k_c in (p for p in pieces if p[2] > 0):
        opts = options.with_(tolerance=_piece_tolerance(float(households[sel].sum()) / k_c, mean, tol, k_c))
        part = partition_unit(piece, xy[sel], households[sel], float(households[sel].sum()) / k_c, opts)
        split.append((sel, part.labels + len(new_polys)))
        new_polys.extend(part.polygons)
        notes.extend(n for n in part.notes if "tolerance" not in n)
    if new_polys:                     # new grids numbered west→east, north→south among themselves
        order = order_for_codes(new_polys)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        new_polys = [new_polys[i] for i in order]
        for sel, lab in split:
            labels[sel] = len(keep) + rank[lab]
    polys = kept_polys + new_polys
    notes += _attach_empty(polys, [p[0] for p in pieces if p[2] == 0])
    left = np.flatnonzero(labels < 0)
    if len(left):   # households on borders or in slivers: the grid that holds (or is nearest to) them
        d = np.stack([shapely.distance(p, shapely.points(xy[left])) for p in polys], axis=1)
        labels[left] = d.argmin(axis=1)
    seqs = [int(old["seq"].iloc[j]) for j in keep] + list(range(next_seq, next_seq + len(new_polys)))
    if max(seqs) > 999:
        return None   # codes would overflow 3 digits: renumber the unit from scratch instead
    return _partition(polys, labels, households, seqs, tol, "baseline" if not new_polys else "baseline+resplit",
                      notes, t0)


def _still_balanced(clipped, xy, households, mean, tol, total):
    """Old grids still one Polygon and within ``tol`` of ``mean``: (indices, households inside each)."""
    taken = np.zeros(len(xy), dtype=bool)
    keep, inside = [], {}
    for j, g in enumerate(clipped):
        if g.is_empty or g.geom_type != "Polygon":
            continue
        sel = shapely.contains_xy(g, xy[:, 0], xy[:, 1]) & ~taken if len(xy) else np.zeros(0, bool)
        h = float(households[sel].sum())
        if (abs(h - mean) <= tol * mean + 1e-9) if mean > 0 else (total == 0):
            keep.append(j)
            inside[j] = np.flatnonzero(sel)
            taken |= sel
    return keep, inside


def _piece_tolerance(m_c: float, mean: float, tol: float, k_c: int) -> float:
    """Return the tolerance around a piece's own mean ``m_c`` that keeps its grids within ``tol`` of ``mean``."""
    if k_c <= 1:
        return tol
    return float(min((1 + tol) * mean / m_c - 1, 1 - (1 - tol) * mean / m_c))


def _layout_rest(geometry, xy, households, kept_polys, kept_inside, k_new, mean, tol):
    """Return the land the kept grids leave, as [(piece, household rows, grids)].

    Returns instead the index of the kept grid to release when some piece cannot hold whole
    grids within the tolerance of ``mean``.
    """
    rest = shapely.difference(geometry, shapely.union_all(kept_polys))
    parts = polygon_parts(rest)
    taken = np.zeros(len(xy), dtype=bool)
    for sel in kept_inside:
        taken[sel] = True
    free = np.flatnonzero(~taken)
    pieces = []
    for piece in parts:
        sel = free[shapely.contains_xy(piece, xy[free, 0], xy[free, 1])] if len(free) else free
        pieces.append([piece, sel, 0, float(households[sel].sum())])
    k_rest = k_new - len(kept_polys)
    live = [i for i, p in enumerate(pieces) if p[3] > 0]
    kept_h = [float(households[s].sum()) for s in kept_inside]
    if k_rest < 0:                    # more kept grids than the unit now needs: free the smallest
        return int(np.argmin(kept_h))
    if not live:                      # grids still to make but nobody left for them: free the fullest
        return [tuple(p[:3]) for p in pieces] if k_rest == 0 else int(np.argmax(kept_h))
    if k_rest < len(live):            # a piece without a grid of its own: the smallest joins a neighbour
        worst = min(live, key=lambda i: pieces[i][3])
        return _neighbour(kept_polys, pieces[worst][0])
    q = np.array([pieces[i][3] for i in live]) / mean
    k_c = np.maximum(1, np.floor(q)).astype(int)
    while k_c.sum() > k_rest:
        cand = np.flatnonzero(k_c > 1)
        k_c[cand[np.argmin((q - k_c)[cand])]] -= 1
    while k_c.sum() < k_rest:
        k_c[int(np.argmax(q - k_c))] += 1
    slack = []
    for i, kc in zip(live, k_c):
        pieces[i][2] = int(kc)
        m_c = pieces[i][3] / kc
        ok = abs(m_c - mean) <= tol * mean + 1e-9 if kc == 1 else _piece_tolerance(m_c, mean, tol, kc) >= tol / 2
        slack.append((ok, abs(m_c - mean), i))
    bad = [i for ok, _, i in sorted(slack, key=lambda t: -t[1]) if not ok]
    if bad:
        return _neighbour(kept_polys, pieces[bad[0]][0])
    return [tuple(p[:3]) for p in pieces]


def _neighbour(polys, piece) -> int:
    """Return the polygon sharing the longest border with ``piece`` (the nearest when none touches it)."""
    border = [shapely.length(shapely.intersection(p.boundary, piece.boundary)) for p in polys]
    if max(border) > 0:
        return int(np.argmax(border))
    return int(np.argmin([shapely.distance(p, piece) for p in polys]))


def _attach_empty(polys: list, empty: list) -> list[str]:
    """Pieces without households join the grid they border most (in place); never a grid of their own."""
    notes = []
    for piece in sorted(empty, key=lambda p: -p.area):
        i = _neighbour(polys, piece)
        merged = shapely.union_all([polys[i], piece])
        if merged.geom_type == "Polygon" or piece.area >= MIN_PIECE_M2:
            if merged.geom_type != "Polygon":
                notes.append(f"land without households ({piece.area:.0f} m²) touches no grid along an edge: "
                             "joined the nearest grid, which becomes a MultiPolygon")
            polys[i] = merged
    return notes


def changed_households(hh_xy: np.ndarray, hh_w: np.ndarray, new_codes: np.ndarray, old: gpd.GeoDataFrame) -> dict:
    """How many households now lie in a grid whose code differs from the old grid they lay in."""
    tree = shapely.STRtree(old.geometry.values)
    pts = shapely.points(hh_xy)
    pi, gi = tree.query(pts, predicate="intersects")
    old_code = np.full(len(hh_xy), None, dtype=object)
    first = np.unique(pi, return_index=True)[1]
    old_code[pi[first]] = old["grid_code"].to_numpy()[gi[first]]
    changed = np.array([a != b for a, b in zip(old_code, new_codes)], dtype=bool)
    total = float(hh_w.sum())
    return {"changed_households": int(hh_w[changed].sum()),
            "changed_share": round(float(hh_w[changed].sum()) / total, 4) if total else 0.0,
            "units": _per_unit(old_code, np.asarray(new_codes, dtype=object), hh_w, old)}


def _per_unit(old_code: np.ndarray, new_code: np.ndarray, w: np.ndarray, old: gpd.GeoDataFrame) -> list[dict]:
    """Per unit: households moved (an old grid's household now under another code), codes kept, created, retired."""
    had = np.array([c is not None for c in old_code], dtype=bool)
    moved = had & np.array([a != b for a, b in zip(old_code, new_code)], dtype=bool)
    unit_of_old = dict(zip(old["grid_code"].astype(str), old["village_code"].astype(str)))
    unit = np.array([unit_of_old.get(a) if a is not None else (str(b)[:-3] if b is not None else None)
                     for a, b in zip(old_code, new_code)], dtype=object)
    out = []
    for u in sorted({x for x in unit if x is not None}):
        mine = unit == u
        before = set(old.loc[old["village_code"].astype(str) == u, "grid_code"].astype(str))
        after = {str(c) for c in new_code[mine] if c is not None}
        out.append({"unit": u, "households_moved": int(w[mine & moved].sum()),
                    "households_with_old_grid": int(w[mine & had].sum()), "kept_codes": len(before & after),
                    "created": sorted(after - before), "retired": sorted(before - after)})
    return out

