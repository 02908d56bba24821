"""Exact covering models on sparse coverage matrices: MCLP and LSCP (with partial coverage).

The models (names as in the location-science literature and in spopt):

* ``max_cover`` — MCLP: open at most ``p`` new sites (forced sites stay open) to maximise covered weight.
* ``min_cover`` — LSCP with partial coverage: the fewest new sites whose covered weight reaches a target
                  (no target: every demand of positive weight — the classic LSCP).
* ``p_median``, ``tiebreak``, ``mean_cost`` — travel-cost models, in ``optimize.siting_median``.

Inputs are a sparse matrix ``cov`` (demand x candidate; a stored entry means "within reach") and
float weights, taken as they are: no rounding to integers, and the models give the same sites for the
weights multiplied by any positive factor (the objective is divided by its largest coefficient before
the solver sees it). Before modelling we drop demand already covered by forced sites, demand no
candidate reaches and candidates that reach nothing, then merge demand rows with identical candidate
sets (their weights add up). The MIP is HiGHS with zero gaps and a node limit (``optimize.siting_mip``):
"OPTIMAL" is the solver's proof; otherwise the incumbent (or the greedy answer, if better) is kept with
the solver's bound and gap. Covered weight is always recounted from the chosen sites in the original
weights.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from gridplan.optimize import siting_mip as mip

REL_EPS = 1e-12        # relative float slack on "covered weight reaches the target"


@dataclass
class CoverResult:
    """One covering model's answer (weights in the caller's units)."""

    open: np.ndarray            # sorted candidate indices open (forced ones included)
    covered_weight: float       # weight within reach of an open site (recounted)
    total_weight: float         # all weight given
    coverable_weight: float     # weight within reach of some candidate
    objective: float            # the model's objective (covered weight, or number of new sites)
    bound: float                # the solver's proven bound on that objective
    gap: float                  # the solver's relative gap (0 when proven optimal)
    status: str                 # OPTIMAL | FEASIBLE | GREEDY | TRIVIAL
    model: str
    time_s: float = 0.0
    nodes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        """Covered weight over all weight."""
        return self.covered_weight / self.total_weight if self.total_weight > 0 else float("nan")


class Infeasible(ValueError):
    """The model has no solution (e.g. some demand no candidate reaches, in a full set cover)."""


# --------------------------------------------------------------------------- preprocessing
@dataclass
class Reduced:
    """The covering problem after dropping what is decided and merging identical demand rows."""

    cov: sparse.csr_matrix      # merged demand x kept candidates (bool)
    w: np.ndarray               # float weights of merged rows
    cols: np.ndarray            # kept candidate index -> original candidate index
    base: float                 # weight already covered by forced sites
    coverable: float            # weight within reach of some candidate (forced ones included)
    total: float


def _forced(forced) -> np.ndarray:
    return np.asarray(sorted(set(int(j) for j in forced)), dtype=np.int64)


def reduce(cov: sparse.spmatrix, weights: np.ndarray, forced=()) -> Reduced:
    """Reduce a covering problem to the rows and columns that matter.

    Drop demand covered by forced sites or by no candidate, candidates reaching nothing; merge
    demand rows with identical candidate sets.
    """
    cov = sparse.csr_matrix(cov, dtype=bool)
    cov.eliminate_zeros()
    w = np.asarray(weights, float)
    n, m = cov.shape
    forced = _forced(forced)
    reach = np.diff(cov.indptr) > 0
    by_forced = np.zeros(n, bool)
    if len(forced):
        by_forced = np.asarray(cov[:, forced].sum(axis=1)).ravel() > 0
    live_rows = np.flatnonzero(reach & ~by_forced & (w > 0))
    free = np.ones(m, bool)
    free[forced] = False
    sub = cov[live_rows][:, np.flatnonzero(free)]
    colkeep = np.asarray(sub.sum(axis=0)).ravel() > 0
    cols = np.flatnonzero(free)[colkeep]
    sub = sub[:, np.flatnonzero(colkeep)].tocsr()
    wm = np.zeros(0)
    if sub.shape[0]:
        # merge identical rows: two random projections + the count make a collision-proof key in practice
        r = np.random.default_rng(12345).random((sub.shape[1], 2))
        key = np.column_stack([np.round((sub.astype(float) @ r) * 1e9).astype(np.int64), np.diff(sub.indptr)])
        _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
        wm = np.bincount(inv.ravel(), weights=w[live_rows], minlength=len(first))
        sub = sub[first]
    return Reduced(cov=sub.tocsr(), w=wm, cols=cols, base=float(w[by_forced].sum()),
                   coverable=float(w[reach].sum()), total=float(w.sum()))


# --------------------------------------------------------------------------- greedy
def greedy_gains(red: Reduced, p: int | None = None, target: float | None = None
                 ) -> tuple[list[int], list[float]]:
    """Pick columns greedily, returning the picks and their marginal gains.

    Lazy greedy on the reduced problem: pick the column with the largest uncovered weight until
    ``p`` picks, or until the covered weight (reduced rows) reaches ``target``. Returns the picks and
    each pick's marginal gain (non-increasing: coverage is submodular).
    """
    csc = red.cov.tocsc()
    w = red.w
    covered = np.zeros(len(w), bool)
    gains = np.asarray(csc.T @ w).ravel() if len(w) else np.zeros(csc.shape[1])
    heap = [(-g, j) for j, g in enumerate(gains) if g > 0]
    heapq.heapify(heap)
    picked: list[int] = []
    got: list[float] = []
    total = 0.0
    while heap:
        if (p is not None and len(picked) >= p) or (target is not None and total >= target):
            break
        g, j = heapq.heappop(heap)
        rows = csc.indices[csc.indptr[j]:csc.indptr[j + 1]]
        real = float(w[rows[~covered[rows]]].sum())
        if real <= 0:
            continue
        if heap and real < -heap[0][0]:
            heapq.heappush(heap, (-real, j))
            continue
        picked.append(j)
        got.append(real)
        total += real
        covered[rows] = True
    return picked, got


def greedy(red: Reduced, p: int | None = None, target: float | None = None) -> list[int]:
    """Return the picks of ``greedy_gains``."""
    return greedy_gains(red, p, target)[0]


def covered_weight(red: Reduced, picked) -> float:
    """Weight of the reduced rows within reach of the picked (reduced) columns."""
    if not len(picked) or not len(red.w):
        return 0.0
    hit = np.asarray(red.cov[:, np.asarray(picked)].sum(axis=1)).ravel() > 0
    return float(red.w[hit].sum())


# --------------------------------------------------------------------------- the covering MIP
def _cover_model(red: Reduced, extra_rows: list[tuple[np.ndarray, float, float]]):
    """Build the covering model's variables and rows.

    Variables [y_0..y_m-1 (binary), z_0..z_n-1 (continuous in [0, 1])]; rows z_i - sum_{j∋i} y_j <= 0
    (with y integral an optimum sets z_i = min(1, sum y), so z may stay continuous), plus extra rows
    given as (coefficients over all variables, lower, upper).
    """
    n, m = red.cov.shape
    link = sparse.hstack([-red.cov.astype(float), sparse.identity(n, format="csr")], format="csr")
    rows = [link] + [sparse.csr_matrix(c.reshape(1, -1)) for c, _, _ in extra_rows]
    A = sparse.vstack(rows, format="csr")
    lo = np.r_[np.full(n, -np.inf), [lo for _, lo, _ in extra_rows]]
    hi = np.r_[np.zeros(n), [hi for _, _, hi in extra_rows]]
    integ = np.r_[np.ones(m), np.zeros(n)]
    return A, lo, hi, integ, np.zeros(m + n), np.ones(m + n)


def max_cover(cov, weights, p: int, forced=(), node_limit: int | None = None) -> CoverResult:
    """MCLP: at most ``p`` sites besides the forced ones, maximal covered weight.

    Parameters
    ----------
    cov : sparse matrix (demand x candidate), a stored entry = within reach
    weights : demand weights (floats, any positive scale)
    p : new sites allowed besides ``forced``
    forced : candidate indices always open
    node_limit : branch-and-bound nodes (deterministic; None: ``siting_mip.node_limit_for`` the model)

    Returns
    -------
    CoverResult with ``objective``/``bound`` in covered weight (forced sites' coverage included).
    """
    t0 = time.perf_counter()
    red = reduce(cov, weights, forced)
    n, m = red.cov.shape
    pick = greedy(red, p=p)
    g_cov = covered_weight(red, pick)
    live = float(red.w.sum())
    res_pick, status, obj, bound, gap, nodes = pick, "GREEDY", g_cov, live, np.inf, 0
    if p <= 0 or not n:
        status, bound, gap = "TRIVIAL", g_cov, 0.0
    elif len(pick) < p or g_cov >= live:
        status, bound, gap = "OPTIMAL", g_cov, 0.0     # greedy covered everything coverable
    else:
        s = float(red.w.max())
        A, lo, hi, integ, lb, ub = _cover_model(red, [(np.r_[np.ones(m), np.zeros(n)], 0.0, float(p))])
        sol = mip.solve(np.r_[np.zeros(m), red.w / s], A, lo, hi, integ, lb, ub, maximize=True,
                        node_limit=node_limit or mip.node_limit_for(A.nnz))
        nodes = sol.nodes
        bound = min(sol.bound * s, live) if np.isfinite(sol.bound) else live
        if sol.x is not None:
            mine = list(np.flatnonzero(mip.binary(sol.x[:m])))
            val = covered_weight(red, mine)
            if val >= g_cov:
                res_pick, obj = mine, val
            status, gap = sol.status, (0.0 if sol.status == "OPTIMAL" else sol.gap)
        if status == "OPTIMAL":
            bound = obj
        elif gap == np.inf:
            gap = (bound - obj) / max(abs(obj), 1e-300)
    open_ = np.unique(np.r_[_forced(forced), red.cols[np.asarray(res_pick, dtype=np.int64)]]).astype(np.int64)
    return CoverResult(open=open_, covered_weight=red.base + obj, total_weight=red.total,
                       coverable_weight=red.coverable, objective=red.base + obj, bound=red.base + bound,
                       gap=float(gap), status=status, model="max_cover", time_s=time.perf_counter() - t0,
                       nodes=nodes)


def _lscp_target(red: Reduced, cov, weights, target_weight, notes) -> float:
    if target_weight is None:
        w = np.asarray(weights, float)
        unreached = int(((np.diff(sparse.csr_matrix(cov).indptr) == 0) & (w > 0)).sum())
        if unreached:
            raise Infeasible(f"set covering is infeasible: {unreached} demand point(s) have no candidate "
                             "within reach")
        return red.coverable
    if target_weight > red.coverable * (1 + REL_EPS):
        notes.append(f"the target ({target_weight:g} households) exceeds what all candidates together cover "
                     f"({red.coverable:g}); aiming at that instead")
        return red.coverable
    return float(target_weight)


def min_cover(cov, weights, target_weight: float | None = None, forced=(), max_sites: int | None = None,
              node_limit: int | None = None) -> CoverResult:
    """Fewest sites besides the forced ones whose covered weight reaches ``target_weight``.

    ``target_weight`` None: every demand of positive weight (the classic LSCP; raises ``Infeasible``
    when one has no candidate within reach). A target above the coverable weight is lowered to it,
    with a note. ``max_sites`` caps the new sites (``Infeasible`` when no such set reaches the
    target). The objective and bound count new sites; a target is met when the recounted covered
    weight reaches it up to ``REL_EPS`` of the total weight (float summation order).
    """
    t0 = time.perf_counter()
    red = reduce(cov, weights, forced)
    forced = _forced(forced)
    notes: list[str] = []
    target = _lscp_target(red, cov, weights, target_weight, notes)
    slack = REL_EPS * max(red.total, 0.0)
    need = target - red.base
    if need <= slack:
        return CoverResult(open=forced, covered_weight=red.base, total_weight=red.total,
                           coverable_weight=red.coverable, objective=0, bound=0, gap=0.0, status="TRIVIAL",
                           model="min_cover", time_s=time.perf_counter() - t0, notes=notes)
    n, m = red.cov.shape
    pick = greedy(red, target=need - slack)
    s = float(red.w.max())
    extra = [(np.r_[np.zeros(m), red.w / s], (need - slack) / s, np.inf)]
    if max_sites is not None:
        extra.append((np.r_[np.ones(m), np.zeros(n)], 0.0, float(max_sites)))
    A, lo, hi, integ, lb, ub = _cover_model(red, extra)
    sol = mip.solve(np.r_[np.ones(m), np.zeros(n)], A, lo, hi, integ, lb, ub,
                    node_limit=node_limit or mip.node_limit_for(A.nnz))
    if sol.status == "INFEASIBLE":
        raise Infeasible(f"no set of at most {max_sites} new sites reaches the target")
    res_pick, status, bound = pick, "GREEDY", 1.0
    if sol.x is not None:
        mine = list(np.flatnonzero(mip.binary(sol.x[:m])))
        if covered_weight(red, mine) >= need - slack and (len(mine) <= len(pick) or
                                                          (max_sites is not None and len(pick) > max_sites)):
            res_pick = mine
        status = sol.status
    if np.isfinite(sol.bound):
        bound = float(np.ceil(sol.bound - 1e-6))          # the objective counts sites: an integer
    if max_sites is not None and len(res_pick) > max_sites:
        raise Infeasible(f"no set of at most {max_sites} new sites found reaching the target")
    obj = float(len(res_pick))
    if status == "OPTIMAL":
        bound = obj
    bound = min(bound, obj)
    open_ = np.unique(np.r_[forced, red.cols[np.asarray(res_pick, dtype=np.int64)]]).astype(np.int64)
    return CoverResult(open=open_, covered_weight=red.base + covered_weight(red, res_pick),
                       total_weight=red.total, coverable_weight=red.coverable, objective=obj, bound=bound,
                       gap=(obj - bound) / max(1.0, obj), status=status, model="min_cover",
                       time_s=time.perf_counter() - t0, nodes=sol.nodes, notes=notes)


from gridplan.optimize.siting_median import mean_cost, p_median, tiebreak

__all__ = ["CoverResult", "Infeasible", "Reduced", "reduce", "greedy", "greedy_gains", "covered_weight", "max_cover",
           "min_cover", "p_median", "tiebreak", "mean_cost"]
