"""Equity and robustness models: p-center, backup coverage (LSCP-B) and p-dispersion.

* ``p_center`` — at most ``p`` open sites (forced ones included) minimising the worst cost
  (optionally weight x cost) of any demand to its nearest open site. The classic exact method: the
  optimum is one of the distinct pair values, and "can ``p`` sites serve everyone within ``r``?" is
  a set-covering question, monotone in ``r`` — so a binary search over the sorted distinct values,
  each step answered by the greedy (a yes) or the covering MIP of ``optimize.siting_models`` (the
  solver's proof of the fewest sites; a no only when its bound exceeds ``p``).
* ``backup_cover`` — LSCP-B (spopt's ``LSCPB``): with the LSCP's fewest sites (all coverable demand
  covered once), the most demand covered twice.
* ``p_dispersion`` — ``p`` sites (forced ones included) as far from each other as possible: the
  largest ``D`` with ``p`` sites pairwise at least ``D`` apart, by the same binary search over the
  distinct inter-site distances, each step a maximum independent set MIP on the "closer than D" graph.

All MIPs are HiGHS with zero gaps and node limits (``optimize.siting_mip``): deterministic, and a
step the solver could not decide within its nodes makes the answer "FEASIBLE" with the proven bound.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from gridplan.optimize import siting_mip as mip, siting_models as sm


@dataclass
class SearchResult:
    """Hold a binary-search model's answer: open sites, objective, the proven bound, status, steps."""

    open: np.ndarray
    objective: float
    bound: float
    status: str
    model: str
    steps: int = 0
    nodes: int = 0
    time_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def gap(self) -> float:
        """Relative gap between the objective and the proven bound (0 when proven optimal)."""
        if self.status == "OPTIMAL":
            return 0.0
        return abs(self.objective - self.bound) / max(abs(self.objective), 1e-300)


def _forced(forced) -> np.ndarray:
    return np.asarray(sorted(set(int(j) for j in forced)), dtype=np.int64)


def _cover_within(vals: sparse.csr_matrix, r: float) -> sparse.csr_matrix:
    """Keep the pairs whose value is at most ``r`` (a boolean coverage matrix)."""
    coo = vals.tocoo()
    sel = coo.data <= r
    return sparse.csr_matrix((np.ones(int(sel.sum()), bool), (coo.row[sel], coo.col[sel])), shape=vals.shape)


def _fits(vals: sparse.csr_matrix, r: float, p_new: int, forced: np.ndarray, node_limit):
    """Decide whether ``p_new`` new sites (with the forced ones) serve every row within ``r``.

    Returns (answer True/False/None for undecided, sites, nodes).
    """
    cov = _cover_within(vals, r)
    if (np.diff(cov.indptr) == 0).any():
        return False, None, 0
    red = sm.reduce(cov, np.ones(cov.shape[0]), forced)
    pick = sm.greedy(red, target=float(red.w.sum()))
    if len(pick) <= p_new:
        return True, np.unique(np.r_[forced, red.cols[np.asarray(pick, np.int64)]]).astype(np.int64), 0
    res = sm.min_cover(cov, np.ones(cov.shape[0]), forced=forced, node_limit=node_limit)
    if res.objective <= p_new:
        return True, res.open, res.nodes
    if res.bound > p_new:
        return False, None, res.nodes
    return None, None, res.nodes


def p_center(cost, p: int, weights=None, forced=(), node_limit: int | None = None) -> SearchResult:
    """Minimise the worst (weighted) cost of serving every demand from its nearest open site.

    Parameters
    ----------
    cost : dense array (demand x candidate) or sparse matrix whose stored entries are the allowed
        pairs with their cost (an unstored pair cannot serve)
    p : most open sites, forced ones included
    weights : optional demand weights: minimise the largest ``weight * cost``
    forced : candidate indices always open
    node_limit : nodes per covering MIP (deterministic)

    Returns
    -------
    SearchResult
        ``objective`` the worst (weighted) cost, ``bound`` the proven lower bound.
    """
    t0 = time.perf_counter()
    vals = _values(cost, weights)
    forced = _forced(forced)
    if p < max(len(forced), 1) or (np.diff(vals.indptr) == 0).any():
        raise sm.Infeasible(f"p-center needs every demand reachable and max(1, forced) <= p, got p={p}")
    ub, best = _heuristic(vals, p, forced)
    if np.isfinite(ub):
        vals = _cover_within_values(vals, ub)      # no pair above a known solution's worst value matters
    levels = np.unique(vals.data)
    lo = int(np.searchsorted(levels, _row_min(vals).max()))   # each row needs some site: a lower bound
    hi, nodes, steps, undecided, proven = len(levels) - 1, 0, 0, [], lo
    if best is None:
        ok, best, k = _fits(vals, levels[hi], p - len(forced), forced, node_limit)
        nodes += k
        if not ok:
            raise sm.Infeasible(f"p-center: {p} sites cannot serve every demand")
    while lo < hi:
        mid = (lo + hi) // 2
        ok, sites, k = _fits(vals, levels[mid], p - len(forced), forced, node_limit)
        nodes, steps = nodes + k, steps + 1
        if ok:
            hi, best = mid, sites
        else:
            if ok is None:
                undecided.append(float(levels[mid]))
            else:
                proven = max(proven, mid + 1)     # no p sites serve everyone within levels[mid]
            lo = mid + 1
    obj = _worst(vals, best)
    bound = min(float(levels[proven]), obj) if undecided else obj
    status = "OPTIMAL" if not undecided else "FEASIBLE"
    notes = [f"{len(undecided)} radius step(s) undecided within the node limit"] if undecided else []
    return SearchResult(best, obj, bound, status, "p_center", steps, nodes,
                        time.perf_counter() - t0, notes)


def _cover_within_values(vals: sparse.csr_matrix, r: float) -> sparse.csr_matrix:
    """Keep the pairs whose value is at most ``r``, with their values."""
    coo = vals.tocoo()
    sel = coo.data <= r
    return sparse.csr_matrix((coo.data[sel], (coo.row[sel], coo.col[sel])), shape=vals.shape)


def _heuristic(vals: sparse.csr_matrix, p: int, forced: np.ndarray) -> tuple[float, np.ndarray | None]:
    """Find a first solution: open the cheapest site of the worst-served demand, ``p`` times.

    Returns its worst value (inf and None when some demand stays unserved).
    """
    n, m = vals.shape
    csc = vals.tocsc()
    best = np.full(n, np.inf)
    open_ = [int(j) for j in forced]

    def add(j):
        lo, hi = csc.indptr[j], csc.indptr[j + 1]
        rows = csc.indices[lo:hi]
        best[rows] = np.minimum(best[rows], csc.data[lo:hi])

    for j in open_:
        add(j)
    while len(open_) < p:
        i = int(np.argmax(best))
        lo, hi = vals.indptr[i], vals.indptr[i + 1]
        cols, data = vals.indices[lo:hi], vals.data[lo:hi].copy()
        data[np.isin(cols, open_)] = np.inf
        if not len(cols) or not np.isfinite(data.min()):
            break
        j = int(cols[int(np.argmin(data))])
        open_.append(j)
        add(j)
    worst = float(best.max()) if n else 0.0
    return (worst, np.asarray(sorted(open_), dtype=np.int64)) if np.isfinite(worst) else (np.inf, None)


def _values(cost, weights) -> sparse.csr_matrix:
    """Return the pair values (cost, or weight x cost) as a csr matrix of the allowed pairs."""
    if sparse.issparse(cost):
        v = sparse.csr_matrix(cost, dtype=float, copy=True)
        v.sort_indices()
        if weights is not None:
            v = sparse.csr_matrix(sparse.diags(np.asarray(weights, float)) @ v)
        return v
    c = np.asarray(cost, float)
    if weights is not None:
        c = c * np.asarray(weights, float)[:, None]
    ok = np.isfinite(c)
    r, j = np.nonzero(ok)
    return sparse.csr_matrix((c[r, j], (r, j)), shape=c.shape)


def _row_min(vals: sparse.csr_matrix) -> np.ndarray:
    return np.minimum.reduceat(vals.data, vals.indptr[:-1]) if vals.nnz else np.zeros(vals.shape[0])


def _worst(vals: sparse.csr_matrix, open_: np.ndarray) -> float:
    """Return the largest value of a row's best open pair."""
    sub = vals[:, open_].tocsr()
    if (np.diff(sub.indptr) == 0).any():
        return float("inf")
    return float(_row_min(sub).max())


def nearest_assignment(cost: np.ndarray, open_: np.ndarray) -> np.ndarray:
    """Each demand's cheapest open site in a dense cost matrix (ties to the lowest index)."""
    sub = np.asarray(cost, float)[:, np.asarray(open_)]
    return np.asarray(open_)[np.argmin(sub, axis=1)]


# --------------------------------------------------------------------------- backup coverage
def backup_cover(cov, weights=None, forced=(), n_sites: int | None = None, node_limit: int | None = None
                 ) -> tuple[sm.CoverResult, float]:
    """LSCP-B: the LSCP's fewest sites covering all coverable demand, then the most demand covered twice.

    Parameters
    ----------
    cov : sparse or dense 0/1 (demand x candidate): within reach
    weights : demand weights (default 1 each, as spopt counts clients)
    forced : candidate indices always open
    n_sites : open sites in total (default: the LSCP's fewest, proven by its own MIP)
    node_limit : nodes per MIP (deterministic)

    Returns
    -------
    (CoverResult, double-covered weight)
        The result's ``objective``/``bound`` are the double-covered weight (the solver's proof);
        its ``covered_weight`` the single coverage (all coverable demand).
    """
    cov = sparse.csr_matrix(cov, dtype=bool)
    n, m = cov.shape
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    forced = _forced(forced)
    first = sm.min_cover(cov, w, forced=forced, node_limit=node_limit)
    k = int(n_sites if n_sites is not None else len(first.open))
    live = np.flatnonzero((np.diff(cov.indptr) > 0) & (w > 0))
    sub = cov[live].astype(float).tocsr()
    nr = len(live)
    two = np.diff(sub.indptr) >= 2                     # only these can be covered twice
    # variables [y (m), u (nr)]: sum_j a_ij y_j - u_i >= 1; sum y == k; u_i <= 1 (0 if one site reaches i)
    A = sparse.vstack([sparse.hstack([sub, -sparse.identity(nr)]),
                       sparse.hstack([sparse.csr_matrix(np.ones((1, m))), sparse.csr_matrix((1, nr))])],
                      format="csr")
    lo, hi = np.r_[np.ones(nr), k], np.r_[np.full(nr, np.inf), k]
    lb, ub = np.zeros(m + nr), np.r_[np.ones(m), two.astype(float)]
    lb[forced] = 1.0
    s = float(w[live].max()) if nr else 1.0
    sol = mip.solve(np.r_[np.zeros(m), w[live] / s], A, lo, hi, np.r_[np.ones(m), np.zeros(nr)], lb, ub,
                    maximize=True, node_limit=node_limit or mip.node_limit_for(A.nnz))
    if sol.x is None:
        who = f"{k} sites ({len(forced)} existing + {k - len(forced)} new)" if len(forced) else f"{k} sites"
        raise sm.Infeasible(f"backup coverage: no {who} cover every coverable demand ({sol.status})")
    open_ = np.flatnonzero(mip.binary(sol.x[:m])).astype(np.int64)
    count = np.asarray(cov[:, open_].sum(axis=1)).ravel()
    double = float(w[count >= 2].sum())
    bound = double if sol.status == "OPTIMAL" else float(sol.bound * s)
    res = sm.CoverResult(open=open_, covered_weight=float(w[count >= 1].sum()), total_weight=float(w.sum()),
                         coverable_weight=first.coverable_weight, objective=double, bound=bound,
                         gap=0.0 if sol.status == "OPTIMAL" else float(sol.gap), status=sol.status,
                         model="backup", nodes=sol.nodes, notes=list(first.notes))
    return res, double


# --------------------------------------------------------------------------- p-dispersion
def _independent(close: sparse.coo_matrix, m: int, forced: np.ndarray, p: int, node_limit):
    """At least ``p`` sites, forced included, no two joined in ``close``? (answer, sites, nodes)."""
    edges = [(int(a), int(b)) for a, b in zip(close.row, close.col) if a < b]
    if any(a in set(forced.tolist()) and b in set(forced.tolist()) for a, b in edges):
        return False, None, 0
    if not edges:
        return True, np.r_[forced, np.setdiff1d(np.arange(m), forced)[:p - len(forced)]].astype(np.int64), 0
    e = np.asarray(edges)
    A = sparse.csr_matrix((np.ones(2 * len(e)), (np.r_[np.arange(len(e)), np.arange(len(e))], np.r_[e[:, 0], e[:, 1]])),
                          shape=(len(e), m))
    lb = np.zeros(m)
    lb[forced] = 1.0
    sol = mip.solve(np.ones(m), A, np.full(len(e), -np.inf), np.ones(len(e)), np.ones(m), lb, np.ones(m),
                    maximize=True, node_limit=node_limit or mip.NODE_LIMIT)
    if sol.x is None:
        return (False if sol.status == "INFEASIBLE" else None), None, sol.nodes
    pick = np.flatnonzero(mip.binary(sol.x))
    if len(pick) >= p:
        keep = np.r_[forced, np.setdiff1d(pick, forced)[:p - len(forced)]]
        return True, np.sort(keep).astype(np.int64), sol.nodes
    return (False if sol.status == "OPTIMAL" or sol.bound < p else None), None, sol.nodes


def p_dispersion(dist, p: int, forced=(), node_limit: int | None = None) -> SearchResult:
    """Choose ``p`` sites (forced included) maximising the smallest distance between two of them.

    Parameters
    ----------
    dist : square array (site x site); as spopt reads it, ``dist[i, j]`` for ``i < j`` (the first
        ``dist.shape[1]`` rows when it is taller)
    p : sites to choose
    forced : site indices always chosen
    node_limit : nodes per independent-set MIP (deterministic)

    Returns
    -------
    SearchResult
        ``objective`` the smallest pairwise distance among the chosen sites.
    """
    t0 = time.perf_counter()
    d = np.asarray(dist, float)
    m = d.shape[1]
    d = np.triu(d[:m, :m], 1)
    forced = _forced(forced)
    if p > m or p < max(2, len(forced)):
        raise sm.Infeasible(f"p-dispersion needs max(2, forced) <= p <= {m}, got {p}")
    iu = np.triu_indices(m, 1)
    levels = np.unique(d[iu])
    lo, hi, best, nodes, steps, undecided = 0, len(levels) - 1, None, 0, 0, []
    while lo <= hi:                                   # the largest level D with a feasible set
        mid = (lo + hi) // 2
        close = sparse.coo_matrix(np.where((d < levels[mid]) & np.triu(np.ones((m, m), bool), 1), 1, 0))
        ok, sites, k = _independent(close, m, forced, p, node_limit)
        nodes, steps = nodes + k, steps + 1
        if ok:
            lo, best = mid + 1, sites
        else:
            if ok is None:
                undecided.append(mid)
            hi = mid - 1
    if best is None:
        raise sm.Infeasible("p-dispersion: no feasible set of sites")
    sub = d[np.ix_(best, best)]
    obj = float(sub[np.triu_indices(len(best), 1)].min())
    status = "OPTIMAL" if not undecided else "FEASIBLE"
    bound = obj if not undecided else float(levels[max(undecided)])
    return SearchResult(best, obj, bound, status, "p_dispersion", steps, nodes, time.perf_counter() - t0)
