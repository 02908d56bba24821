"""Travel-cost siting models: p-median, and the p-median tiebreak after a covering model.

* ``p_median`` — exactly ``p`` open sites (forced ones among them) minimising the weighted travel cost
  of serving every demand from one open site (spopt's ``PMedian``).
* ``tiebreak`` — a lexicographic second stage after ``max_cover``/``min_cover``: no more new sites and
  no less covered weight than the first stage, then the least weighted travel of covered demand.
* ``mean_cost`` — weighted mean cost of serving each demand from its cheapest open site.

Both MIPs go through ``optimize.siting_mip`` (HiGHS, zero gaps, a node limit — deterministic), with
the objective divided by its largest coefficient (any weight or cost unit gives the same model).
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from gridplan.optimize import siting_mip as mip
from gridplan.optimize.siting_models import REL_EPS, CoverResult, Infeasible


def p_median(cost: np.ndarray, weights: np.ndarray, p: int, forced=(), node_limit: int = mip.NODE_LIMIT
             ) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Exact p-median on a dense cost matrix (small instances).

    Returns
    -------
    (open sites, assigned site of each demand, weighted mean cost, status)
        The mean is recomputed from the float costs of the assignment (each demand to its cheapest
        open site, ties to the lowest index).
    """
    cost = np.asarray(cost, float)
    w = np.asarray(weights, float)
    n, m = cost.shape
    forced = sorted(set(int(j) for j in forced))
    if p <= 0 or p > m or len(forced) > p:
        raise Infeasible(f"p-median needs max(1, forced) <= p <= {m} sites, got {p}")
    wc = (w[:, None] * cost).ravel()
    scale = float(np.abs(wc).max()) or 1.0
    nx = n * m                                              # x_ij at i*m + j, then y_j
    rows_assign = sparse.hstack([sparse.kron(sparse.identity(n), np.ones((1, m))), sparse.csr_matrix((n, m))])
    link = sparse.hstack([sparse.identity(nx), -sparse.kron(np.ones((n, 1)), sparse.identity(m))])
    count = sparse.hstack([sparse.csr_matrix((1, nx)), np.ones((1, m))])
    A = sparse.vstack([rows_assign, link, count], format="csr")
    lo = np.r_[np.ones(n), np.full(nx, -np.inf), p]
    hi = np.r_[np.ones(n), np.zeros(nx), p]
    lb = np.zeros(nx + m)
    lb[nx + np.asarray(forced, dtype=np.int64)] = 1.0
    sol = mip.solve(np.r_[wc / scale, np.zeros(m)], A, lo, hi, np.r_[np.zeros(nx), np.ones(m)], lb,
                    np.ones(nx + m), node_limit=node_limit)
    if sol.x is None:
        raise Infeasible(f"p-median: no solution ({sol.status})")
    open_ = np.flatnonzero(mip.binary(sol.x[nx:])).astype(np.int64)
    assign = open_[np.argmin(cost[:, open_], axis=1)]
    mean = float((w * cost[np.arange(n), assign]).sum() / w.sum())
    return open_, assign, mean, sol.status


def mean_cost(cost: np.ndarray, weights: np.ndarray, open_: np.ndarray) -> float:
    """Weighted mean cost of serving each demand from its cheapest open site."""
    c = np.asarray(cost, float)[:, np.asarray(open_)]
    w = np.asarray(weights, float)
    return float((w * c.min(axis=1)).sum() / w.sum())


def _merge_minutes(cm: sparse.csr_matrix, w: np.ndarray):
    """Demand rows with identical (site, minutes) rows merged: (rows, weights)."""
    r = np.random.default_rng(7).random((cm.shape[1], 2))
    q = cm.copy()
    q.data = np.round(q.data, 6)
    h = np.column_stack([(q @ r[:, 0]), (q != 0).astype(float) @ r[:, 1]])
    _, first_i, inv = np.unique(np.round(h * 1e9).astype(np.int64), axis=0, return_index=True,
                                return_inverse=True)
    return cm[first_i], np.bincount(inv.ravel(), weights=w, minlength=len(first_i))


def _travel_of(cm: sparse.csr_matrix, w: np.ndarray, open_: np.ndarray, radius: float) -> float:
    """Weighted minutes of covered demand to its nearest open site, uncovered demand at ``radius``."""
    best = np.full(cm.shape[0], float(radius))          # stored values are minutes + 1
    if len(open_):
        sub = cm[:, open_].tocoo()
        np.minimum.at(best, sub.row, sub.data - 1.0)
    return float((w * best).sum())


def tiebreak(cov_minutes: sparse.csr_matrix, weights: np.ndarray, first: CoverResult, forced=(),
             radius: float = 1.0, max_pairs: int = 10_000, node_limit: int = 200
             ) -> tuple[CoverResult, str]:
    """Solve the second stage: least weighted travel, keeping the first stage's coverage.

    Second stage: at most the first stage's new sites, covered weight >= the first stage's, least
    weighted travel of covered demand (uncovered demand counts as ``radius``).

    ``cov_minutes`` stores minutes + 1 for pairs within reach (``geo.travel`` convention). Returns
    (result, note); the first stage is kept (the note says why) when the model would be too large,
    or when the node limit leaves no better solution.
    """
    cm = sparse.csr_matrix(cov_minutes)
    forced = np.asarray(sorted(set(int(j) for j in forced)), dtype=np.int64)
    w = np.asarray(weights, float)
    rows = np.flatnonzero((np.diff(cm.indptr) > 0) & (w > 0))
    if cm[rows].nnz > max_pairs:
        return first, f"p-median tiebreak skipped: {cm[rows].nnz} household-station pairs (limit {max_pairs})"
    sub, wm = _merge_minutes(cm[rows], w[rows])
    k = len(np.setdiff1d(first.open, forced))
    cols = np.union1d(np.flatnonzero(np.asarray((sub != 0).sum(axis=0)).ravel() > 0), forced)
    sub = sub[:, cols].tocsr().tocoo()
    nc, npairs, nr = len(cols), sub.nnz, sub.shape[0]
    # variables: y (one per column), x (one per pair)
    free = ~np.isin(cols, forced)
    one = sparse.hstack([sparse.csr_matrix((nr, nc)), sparse.csr_matrix((np.ones(npairs), (sub.row, np.arange(npairs))),
                                                                         shape=(nr, npairs))])
    link = sparse.hstack([-sparse.csr_matrix((np.ones(npairs), (np.arange(npairs), sub.col)), shape=(npairs, nc)),
                          sparse.identity(npairs)])
    cnt = sparse.hstack([sparse.csr_matrix(free.astype(float).reshape(1, -1)), sparse.csr_matrix((1, npairs))])
    s = float(wm.max()) if len(wm) else 1.0
    covc = sparse.hstack([sparse.csr_matrix((1, nc)), sparse.csr_matrix(wm[sub.row].reshape(1, -1) / s)])
    A = sparse.vstack([one, link, cnt, covc], format="csr")
    need = first.covered_weight / s                          # all of it lies in `rows`
    lo = np.r_[np.full(nr, -np.inf), np.full(npairs, -np.inf), -np.inf, need - REL_EPS * first.total_weight / s]
    hi = np.r_[np.ones(nr), np.zeros(npairs), k, np.inf]
    gain = wm[sub.row] * (radius + 2.0 - sub.data)           # data = minutes + 1
    lb = np.zeros(nc + npairs)
    lb[np.flatnonzero(~free)] = 1.0
    sol = mip.solve(np.r_[np.zeros(nc), gain / gain.max() if len(gain) else gain], A, lo, hi,
                    np.r_[np.ones(nc), np.zeros(npairs)], lb, np.ones(nc + npairs), maximize=True,
                    node_limit=node_limit)
    if sol.x is None:
        return first, f"p-median tiebreak found no solution within {node_limit} nodes; first stage kept"
    open_ = np.sort(cols[mip.binary(sol.x[:nc])]).astype(np.int64)
    hit = np.asarray((cm[:, open_] != 0).sum(axis=1)).ravel() > 0 if len(open_) else np.zeros(cm.shape[0], bool)
    covered = float(w[hit].sum())
    if covered < first.covered_weight - REL_EPS * first.total_weight or len(np.setdiff1d(open_, forced)) > k:
        return first, "p-median tiebreak lost coverage; kept the first stage"
    if _travel_of(cm, w, open_, radius) > _travel_of(cm, w, first.open, radius):
        return first, "p-median tiebreak found no shorter travel; kept the first stage"
    out = CoverResult(open=open_, covered_weight=covered, total_weight=first.total_weight,
                      coverable_weight=first.coverable_weight,
                      objective=covered if first.model == "max_cover" else first.objective, bound=first.bound,
                      gap=first.gap, status=first.status, model=first.model, time_s=first.time_s,
                      nodes=first.nodes, notes=list(first.notes))
    how = "optimal" if sol.status == "OPTIMAL" else f"not proven within {node_limit} nodes (gap {sol.gap:.2%})"
    return out, f"p-median tiebreak {how}"
