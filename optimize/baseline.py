"""Stable re-plans: keep last year's grids that are still balanced, re-split only the rest.

For each unit, last plan's grids (clipped to this year's unit outline) are refilled with this
year's households. With ``k = choose_k(H, target)`` and mean ``H / k``, a grid is kept — same
code, same polygon — when it is still one Polygon and within ``tolerance`` of that mean. What the
kept grids leave (their failing neighbours, new land) is split again, each connected piece on its
own with ``k_c = round(H_c / mean)`` grids, and the new grids take the next free sequence numbers
of the unit (west→east among themselves), so no old code ever changes meaning.
"""
from __future__ import annotations

import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from geo.coords import geometries_to_wgs84
from geo.grids import order_for_codes, polygon_parts
from geo.output import read_plan_dir
from geo.vocabulary import OFFSET_COORD_SYSTEMS
from optimize.options import PlanOptions
from optimize.partition import UnitPartition, choose_k, partition_unit

MIN_PIECE_M2 = 1.0   # pieces of leftover area smaller than this are slivers of clipping, not land


def load_baseline(path, crs) -> gpd.GeoDataFrame:
    """Last plan's grids (grid_code, village_code, seq, geometry) in the metric ``crs``."""
    layers, summary = read_plan_dir(Path(path))
    if "grids" not in layers:
        raise ValueError(f"{path}: the baseline plan has no grids layer")
    grids = layers["grids"]
    oc = (summary.get("options") or {}).get("output_coords", "wgs84")
    if oc in OFFSET_COORD_SYSTEMS:   # the old plan was written in web-map coordinates: undo the offset
        grids = grids.set_geometry(gpd.GeoSeries(geometries_to_wgs84(grids.geometry.values, oc), crs=4326))
    grids = grids.to_crs(crs)
    grids["grid_code"] = grids["grid_code"].astype(str)
    grids["village_code"] = grids["village_code"].astype(str)
    grids["seq"] = grids["grid_code"].str[-3:].astype(int)
    return grids[["grid_code", "village_code", "seq", "geometry"]]


def replan_unit(geometry, xy: np.ndarray, households: np.ndarray, target: float, options: PlanOptions,
                old: gpd.GeoDataFrame) -> tuple[UnitPartition, list[int]] | None:
    """Re-plan one unit against its ``old`` grids. None when nothing of the old plan can be kept."""
    t0 = time.perf_counter()
    if len(old) == 0:
        return None
    n = len(xy)
    total = float(households.sum())
    k_new = choose_k(total, target)
    mean = total / k_new if k_new else 0.0
    clipped = [shapely.make_valid(shapely.intersection(g, geometry)) for g in old.geometry.values]
    labels = np.full(n, -1, dtype=np.int64)
    keep: list[int] = []
    kept_h: list[float] = []
    for j, g in enumerate(clipped):
        if g.is_empty or g.geom_type != "Polygon":
            continue
        inside = shapely.contains_xy(g, xy[:, 0], xy[:, 1]) & (labels < 0) if n else np.zeros(0, bool)
        h = float(households[inside].sum()) if n else 0.0
        ok = (abs(h - mean) <= options.tolerance * mean) if mean > 0 else (total == 0)
        if ok:
            labels[inside] = len(keep)
            keep.append(j)
            kept_h.append(h)
    if not keep:
        return None
    kept_polys = [clipped[j] for j in keep]
    seqs = [int(old["seq"].iloc[j]) for j in keep]
    rest = shapely.difference(geometry, shapely.union_all(kept_polys))
    pieces = [p for p in polygon_parts(rest) if p.area >= MIN_PIECE_M2]
    free = np.flatnonzero(labels < 0)
    new_polys: list = []
    new_labels_for: list[tuple[np.ndarray, np.ndarray]] = []
    notes: list[str] = []
    for piece in pieces:
        sel = free[shapely.contains_xy(piece, xy[free, 0], xy[free, 1])] if len(free) else free
        h_c = float(households[sel].sum())
        if h_c == 0:
            # land with nobody on it joins the kept grid it shares the longest border with
            best = max(range(len(kept_polys)), key=lambda i: kept_polys[i].intersection(piece.boundary).length)
            merged = shapely.union_all([kept_polys[best], piece])
            if merged.geom_type == "Polygon":
                kept_polys[best] = merged
                continue
            new_polys.append(piece)   # an isolated empty piece: its own (empty) grid rather than a MultiPolygon
            new_labels_for.append((sel, np.zeros(0, dtype=np.int64)))
            notes.append("an empty piece left by the kept grids became its own grid")
            continue
        k_c = max(1, int(round(h_c / mean))) if mean > 0 else 1
        part = partition_unit(piece, xy[sel], households[sel], h_c / k_c, options)
        base = len(new_polys)
        new_polys.extend(part.polygons)
        new_labels_for.append((sel, part.labels + base))
        notes.extend(part.notes)
    # households on borders or in slivers that no piece took: nearest kept or new grid
    if new_polys:
        order = order_for_codes(new_polys)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        new_polys = [new_polys[i] for i in order]
        for sel, lab in new_labels_for:
            if len(lab):
                labels[sel] = len(keep) + rank[lab]
    polys = kept_polys + new_polys
    left = np.flatnonzero(labels < 0)
    if len(left):
        d = np.stack([shapely.distance(p, shapely.points(xy[left])) for p in polys], axis=1)
        labels[left] = d.argmin(axis=1)
    next_seq = int(old["seq"].max()) + 1
    seqs = seqs + list(range(next_seq, next_seq + len(new_polys)))
    if max(seqs) > 999:
        return None   # codes would overflow 3 digits: renumber the unit from scratch instead
    h = np.bincount(labels, weights=households, minlength=len(polys)) if n else np.zeros(len(polys))
    m = h.mean() if len(h) else 0.0
    dev = float(np.max(np.abs(h - m)) / m) if m > 0 else 0.0
    status = "baseline" if not new_polys else "baseline+resplit"
    part = UnitPartition(labels=labels, polygons=polys, k=len(polys), status=status, max_abs_dev=dev,
                         seconds=time.perf_counter() - t0, notes=tuple(dict.fromkeys(notes)))
    return part, seqs


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
            "changed_share": round(float(hh_w[changed].sum()) / total, 4) if total else 0.0}

