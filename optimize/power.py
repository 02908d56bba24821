"""Balanced grids as a capacity-constrained power diagram: exact balance, straight edges, convex pieces.

The model (one unit, k grids, merged household points x_i with counts h_i):

    min  Σ_ij f_ij · |x_i − c_j|²        (moment of inertia: compactness)
    s.t. Σ_j f_ij = h_i                  (every household assigned)
         lo ≤ Σ_i f_ij ≤ hi              (balance band around the unit mean)

is a transportation problem, solved exactly by OR-Tools' min-cost flow. Its optimal dual
potentials make the assignment a *power diagram*: point i goes to argmin_j |x_i − c_j|² − w_j.
So the grids are the power cells of the centers clipped to the unit — polygons with straight
edges, convex in a convex unit — and every household lies in the cell of its grid. Centers then
move Lloyd-style to a blend of their households' centroid and their cell's area centroid (so grids
spread over empty land instead of fanning out from a town), and the flow is solved again.

A basic optimal flow splits at most k − 1 points between two grids; each split point goes to the
grid that got most of it, and the power weights are re-derived for those labels (a system of
difference constraints, solved by Bellman–Ford on the k centers) so that every point lies
strictly inside its grid's cell. Pieces of a cell cut off by a concave unit outline join the
neighbouring grid they share most border with. If a grid still comes out in several pieces or
out of balance, the caller falls back to the CP-SAT cell model (``optimize.partition``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from ortools.graph.python import min_cost_flow

from gridplan.geo.grids import assign_points, polygon_parts, repair_transformed

ROUNDS = 14              # capacitated Lloyd rounds per start
STARTS = 3               # seeded k-means++ starts; the most compact balanced result is kept
MORE_STARTS = 12         # starts allowed while indivisible points keep the best out of tolerance
AREA_BLEND = 0.35        # weight of the cell's area centroid in the center update
BAND = 0.6               # the flow's band is BAND·tolerance; the rest absorbs split points
MARGINS = (0.5, 0.05, 0.005, 0.0005, 0.0)  # m: households lie at least this far inside their grid (first
# feasible; Bellman–Ford's weights are extremal, so at 0 the binding household sits exactly on an edge)
NEAREST = 10             # candidate centers per point in the flow (all of them when k <= NEAREST)


@dataclass(frozen=True)
class PowerResult:
    """The power-diagram model's grids for one unit.

    labels: grid of each merged point; polygons: k Polygons tiling the unit; centers, weights:
    the power diagram's sites and weights; pp_mean: mean Polsby-Popper compactness; max_dev:
    largest |households - mean| / mean.
    """

    labels: np.ndarray       # grid of each merged point
    polygons: list           # k Polygons tiling the unit
    centers: np.ndarray
    weights: np.ndarray
    pp_mean: float
    max_dev: float


def _kmeanspp(xy: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    p = w / w.sum()
    centers = [xy[rng.choice(len(xy), p=p)]]
    d2 = ((xy - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        q = w * d2
        s = q.sum()
        i = rng.choice(len(xy), p=q / s) if s > 0 else rng.choice(len(xy), p=p)
        centers.append(xy[i])
        d2 = np.minimum(d2, ((xy - xy[i]) ** 2).sum(1))
    return np.array(centers, dtype=float)


def balanced_flow(xy: np.ndarray, h: np.ndarray, centers: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  scale: float) -> list[np.ndarray]:
    """Balanced labelings: optimal transportation of the households to the centers within [lo, hi].

    A basic optimal flow splits at most k − 1 points between grids; the first labeling gives each
    split point to the grid that got most of it. When a split point is big (a tower block), a
    second labeling pins the split points so and solves the rest again with the bands less what
    is pinned, so the houses around a block balance it. (The second is not always a power diagram
    of the same centers; the caller keeps whichever labeling is valid and better.)
    """
    m, k = len(xy), len(centers)
    first, split = _flow(xy, h, centers, lo, hi, scale)
    out = [first]
    if not split.any() or h[split].max() <= 3:
        return out
    labels = np.full(m, -1, dtype=np.int64)
    pinned = np.zeros(k, dtype=np.int64)
    free = np.arange(m)
    lab = first
    for _ in range(4):
        fix = free[split]
        labels[fix] = lab[split]
        pinned += np.bincount(lab[split], weights=h[fix], minlength=k).astype(np.int64)
        free = free[~split]
        if not len(free):
            break
        lab, split = _flow(xy[free], h[free], centers, np.maximum(lo - pinned, 0),
                           np.maximum(hi - pinned, 0), scale)
        if not split.any():
            break
    if len(free):
        labels[free] = lab
    out.append(labels)
    return out


def _flow(xy: np.ndarray, h: np.ndarray, centers: np.ndarray, lo: np.ndarray, hi: np.ndarray,
          scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Majority label of each point and whether its households were split between grids."""
    H = int(h.sum())
    if lo.sum() > H:                     # pinned points overfilled some grids: keep what bands can
        lo = np.zeros_like(lo)
    if hi.sum() < H:
        hi = hi + (H - hi.sum() + len(hi) - 1) // len(hi)
    m, k = len(xy), len(centers)
    d2 = ((xy[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    if k > NEAREST:
        cand = np.argpartition(d2, NEAREST, axis=1)[:, :NEAREST]
    else:
        cand = np.broadcast_to(np.arange(k), (m, k))
    for attempt in range(2):
        smcf = min_cost_flow.SimpleMinCostFlow()
        tails = np.repeat(np.arange(m), cand.shape[1])
        heads = m + cand.reshape(-1)
        cost = np.rint(np.take_along_axis(d2, cand, 1).reshape(-1) / scale).astype(np.int64)
        caps = np.repeat(h, cand.shape[1]).astype(np.int64)
        arcs = smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, cost)
        sink = m + k
        smcf.add_arcs_with_capacity_and_unit_cost(np.arange(m, m + k), np.full(k, sink),
                                                  (hi - lo).astype(np.int64), np.zeros(k, np.int64))
        supplies = np.concatenate([h, -lo, [-(h.sum() - lo.sum())]]).astype(np.int64)
        smcf.set_nodes_supplies(np.arange(m + k + 1), supplies)
        if smcf.solve() == smcf.OPTIMAL:
            flow = smcf.flows(arcs).reshape(m, cand.shape[1])
            lab = np.take_along_axis(cand, flow.argmax(1)[:, None], 1)[:, 0].astype(np.int64)
            return lab, flow.max(1) < h
        cand = np.broadcast_to(np.arange(k), (m, k))   # too few candidate arcs: use them all
    raise RuntimeError("balanced assignment infeasible")


def power_weights(xy: np.ndarray, labels: np.ndarray, centers: np.ndarray, margin: float) -> np.ndarray | None:
    """Weights putting every point of grid j at least ``margin`` metres inside j's power cell.

    The edge between cells j and l is the line where |x − c_j|² − w_j = |x − c_l|² − w_l; a point
    lies δ metres on j's side of it when (d_il − w_l) − (d_ij − w_j) ≥ 2·|c_l − c_j|·δ. So:
    difference constraints w_l − w_j ≤ min_i(d_il − d_ij) − 2·|c_l − c_j|·margin, solved by
    Bellman–Ford over the k centers. None when no such weights exist (a negative cycle).
    """
    k = len(centers)
    d2 = ((xy[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    gap = 2.0 * np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(-1)) * margin
    C = np.full((k, k), np.inf)
    order = np.argsort(labels, kind="stable")
    lab = labels[order]
    diff = d2[order] - d2[order, lab][:, None]          # d_il − d_ij of each point i of grid j
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    js = lab[starts]
    C[js] = np.minimum.reduceat(diff, starts, axis=0) - gap[js]
    np.fill_diagonal(C, 0.0)
    w = np.zeros(k)
    for _ in range(k + 1):
        nw = np.minimum(w, (w[:, None] + C).min(0))
        if np.array_equal(nw, w):
            return w - w.mean()
        w = nw
    return None


def _clip(poly: np.ndarray, n: np.ndarray, b: float) -> np.ndarray:
    """Sutherland–Hodgman: the convex polygon ``poly`` (ring without closing vertex) ∩ {x: n·x ≤ b}."""
    s = poly @ n - b
    inside = s <= 0
    if inside.all():
        return poly
    if not inside.any():
        return poly[:0]
    nxt = np.roll(np.arange(len(poly)), -1)
    cross = inside != inside[nxt]            # the edge i → i+1 crosses the line: keep the crossing point
    pts = np.empty((len(poly), 2, 2))
    pts[:, 0] = poly
    with np.errstate(divide="ignore", invalid="ignore"):
        t = s / (s - s[nxt])                 # inf/nan only on rows that do not cross (dropped)
        pts[:, 1] = poly + t[:, None] * (poly[nxt] - poly)
    return pts[np.column_stack([inside, cross])]


def power_cells(geometry, centers: np.ndarray, weights: np.ndarray) -> list:
    """Each center's power cell clipped to ``geometry``.

    The cell of j is the convex polygon {x : 2x·(c_l − c_j) ≤ |c_l|² − |c_j|² − w_l + w_j, ∀ l},
    cut from a box around the unit by half-planes in numpy (only those that cut it), then
    intersected once with the unit.
    """
    k = len(centers)
    minx, miny, maxx, maxy = geometry.bounds
    pad = max(maxx - minx, maxy - miny, 1.0)
    box = np.array([[minx - pad, miny - pad], [maxx + pad, miny - pad], [maxx + pad, maxy + pad],
                    [minx - pad, maxy + pad]])
    sq = (centers ** 2).sum(1)
    out = []
    for j in range(k):
        poly = box
        # nearest centers first: they cut the most, so later half-planes rarely cut at all
        for l in np.argsort(((centers - centers[j]) ** 2).sum(1)):
            if l == j:
                continue
            n = centers[l] - centers[j]
            if not n.any():
                continue
            poly = _clip(poly, n, (sq[l] - sq[j] - weights[l] + weights[j]) / 2.0)
            if len(poly) < 3:
                break
        out.append(shapely.Polygon(poly) if len(poly) >= 3 else shapely.Polygon())
    cells = np.asarray(out, dtype=object)
    full = ~shapely.is_empty(cells)
    cells[full] = shapely.intersection(cells[full], geometry)     # one call for all cells
    return list(cells)


def repair_fragments(cells: list, xy: np.ndarray, h: np.ndarray) -> list | None:
    """Pieces of a grid cut off by a concave outline join the neighbour sharing most border with them.

    Returns k single Polygons, or None when a piece touches no other grid (an island).
    """
    k = len(cells)
    mains, frags = [], []
    for j, c in enumerate(cells):
        parts = polygon_parts(c)
        if not parts:
            return None
        if len(parts) == 1:
            mains.append(parts[0])
            continue
        hh = [float(h[shapely.contains_xy(p, xy[:, 0], xy[:, 1])].sum()) if len(xy) else 0.0 for p in parts]
        best = max(range(len(parts)), key=lambda i: (hh[i], parts[i].area))
        mains.append(parts[best])
        frags.extend(parts[i] for i in range(len(parts)) if i != best)
    # the smallest pieces first, so a piece may join a grid that grew by an earlier one
    for f in sorted(frags, key=lambda p: p.area):
        shared = [(mains[j].intersection(f.boundary).length, j) for j in range(k)]
        length, j = max(shared)
        if length <= 0:
            return None
        merged = shapely.union_all([mains[j], f])
        if merged.geom_type != "Polygon":
            merged = shapely.make_valid(merged)
            if merged.geom_type != "Polygon":
                return None
        mains[j] = merged
    return mains


def _pp(polys) -> np.ndarray:
    a = shapely.area(np.asarray(polys, dtype=object))
    p = shapely.length(np.asarray(polys, dtype=object))
    return 4 * np.pi * a / np.maximum(p * p, 1e-12)


def _bands(h: np.ndarray, k: int, tolerance: float) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Return the mean, the accepted slack and the flow's [lo, hi] households per grid.

    The flow's band is BAND·tolerance, widened to [floor(mean), ceil(mean)] when that band holds
    no integer solution.
    """
    H = int(h.sum())
    mean = H / k
    slack = max(tolerance * mean, 0.5 * float(h.max()))
    band = BAND * tolerance
    lo = np.full(k, math.ceil(mean * (1 - band)), dtype=np.int64)
    hi = np.full(k, math.floor(mean * (1 + band)), dtype=np.int64)
    if (hi < lo).any() or lo.sum() > H or hi.sum() < H:
        lo = np.full(k, math.floor(mean), dtype=np.int64)
        hi = np.full(k, math.ceil(mean), dtype=np.int64)
    return mean, slack, lo, hi


class _Best:
    """The best balanced result so far: least excess over the tolerance, then most compact."""

    def __init__(self) -> None:
        self.res: PowerResult | None = None
        self.rank = None

    def offer(self, res: PowerResult, rank) -> None:
        """Keep ``res`` when its rank beats the best so far."""
        if self.res is None or rank < self.rank:
            self.res, self.rank = res, rank


def _tile(geometry, xy, h, centers, labelings, k, mean, slack, tolerance, best: _Best):
    """Turn each balanced labeling into power cells and repaired grids; offer balanced ones to ``best``.

    Returns the first labeling's power cells (None when no labeling had power weights) and
    (labels, grids) of the first labeling that tiled the unit (or None).
    """
    cells = None
    repaired = None          # (labels, grids) of the first labeling that tiled the unit
    for cand in labelings:
        w = next((w for w in (power_weights(xy, cand, centers, mg) for mg in MARGINS)
                  if w is not None), None)
        if w is None:
            continue
        c_cells = power_cells(geometry, centers, w)
        if cells is None:
            cells = c_cells
        polys = repair_fragments(c_cells, xy, h)
        if polys is None:
            continue
        lab = assign_points(polys, xy)
        if repaired is None:
            repaired = (lab, polys)
        gh = np.bincount(lab, weights=h, minlength=k)
        dev = np.abs(gh - mean)
        if dev.max() <= slack + 1e-9 and (np.bincount(lab, minlength=k) > 0).all():
            pp = float(_pp(polys).mean())
            res = PowerResult(lab, polys, centers.copy(), w, pp, float(dev.max() / mean))
            # balance first (what exceeds the tolerance, in households), then compactness
            best.offer(res, (round(max(dev.max() - tolerance * mean, 0.0)), -pp))
    return cells, repaired


def _lloyd_step(xy, wf, labels, cells, centers, k) -> np.ndarray:
    """Move each center to a blend of its households' centroid and its cell's area centroid."""
    new = centers.copy()
    for j in range(k):
        sel = labels == j
        if sel.any():
            hc = (xy[sel] * wf[sel, None]).sum(0) / wf[sel].sum()
            c = cells[j]
            ac = np.array(c.centroid.coords[0]) if not c.is_empty else hc
            new[j] = (1 - AREA_BLEND) * hc + AREA_BLEND * ac
    return new


def power_partition(geometry, xy: np.ndarray, h: np.ndarray, k: int, tolerance: float, seed: int = 0,
                    rounds: int = ROUNDS, starts: int = STARTS) -> PowerResult | None:
    """Split merged points into k balanced, compact grids, or return None if none was found.

    Balanced means every grid within ±tolerance of the mean, or within half the largest
    indivisible point (a tower block cannot be split). Each of the seeded k-means++ starts runs
    capacitated Lloyd rounds; the best balanced result over all starts is kept.
    """
    m = len(xy)
    if k < 2 or m < k:
        return None
    h = np.asarray(h, dtype=np.int64)
    mean, slack, lo, hi = _bands(h, k, tolerance)
    origin = np.array(geometry.centroid.coords[0])
    xy = np.asarray(xy, dtype=float) - origin          # local coordinates: well-conditioned squares
    geometry = shapely.transform(geometry, lambda c: c - origin)
    area = float(geometry.area)
    scale = max(area / k / 1e6, 1e-9)          # costs in units of (cell area)/1e6: integer resolution
    wf = h.astype(float)
    best = _Best()
    rng = np.random.default_rng(seed)
    for start in range(max(starts, MORE_STARTS)):
        if start >= starts and (best.rank is not None and best.rank[0] == 0 or float(h.max()) <= 3):
            break   # balanced already (or nothing indivisible to work around): no more starts
        centers = _kmeanspp(xy, wf, k, rng)
        for _ in range(rounds):
            try:
                labelings = balanced_flow(xy, h, centers, lo, hi, scale)
            except RuntimeError:
                break
            labels = labelings[0]
            cells, repaired = _tile(geometry, xy, h, centers, labelings, k, mean, slack, tolerance, best)
            if cells is None:
                break
            # Lloyd step: blend of household centroid and the cell's area centroid, taken over the
            # grids as repaired (a fragment across a notch moved to a neighbour moves its centre too)
            if repaired is not None:
                labels, cells = repaired
            new = _lloyd_step(xy, wf, labels, cells, centers, k)
            moved = float(np.abs(new - centers).max())
            centers = new
            if moved < 0.5:
                break
    if best.res is None:
        return None
    b = best.res
    # shifting back rounds the coordinates: a vertex on a hairline spike can cross its edge (an
    # invalid ring, found by the random partition run); such a ring is rebuilt without the spike
    back = list(repair_transformed([shapely.transform(p, lambda c: c + origin) for p in b.polygons]))
    if any(p.geom_type != "Polygon" for p in back):
        return None
    return PowerResult(b.labels, back, b.centers + origin, b.weights, b.pp_mean, b.max_dev)
