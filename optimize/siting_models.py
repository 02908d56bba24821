"""Exact facility-location models on sparse coverage matrices, solved with OR-Tools.

The models (names as in the location-science literature and in spopt):

* ``max_cover``  — MCLP: open at most ``p`` new sites (forced sites stay open) to maximise covered weight.
* ``min_cover``  — LSCP with partial coverage: the fewest new sites whose covered weight reaches a target
                   (the target = all coverable weight gives the classic LSCP).
* ``p_median``   — the weighted mean cost of serving every demand from its assigned open site.
* ``tiebreak``   — a lexicographic second stage: keep the first stage's number of sites and covered
                   weight, then minimise covered demand's weighted travel (p-median within the radius).

Inputs are a sparse boolean-like matrix ``cov`` (demand x candidate; a stored entry means "within
reach") and integer-like weights. Before modelling we drop demand already covered by forced sites,
demand no candidate reaches, and candidates that reach nothing; then merge demand rows with identical
candidate sets (their weights add up). A lazy greedy gives a solution and the solver's hint; the solver
proves optimality or reports its bound and the gap.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse



@dataclass
class CoverResult:
    open: np.ndarray            # sorted candidate indices open (forced ones included)
    covered_weight: float       # weight within reach of an open site
    total_weight: float         # all weight given
    coverable_weight: float     # weight within reach of some candidate
    objective: float            # the model's objective (covered weight, or number of sites)
    bound: float                # proven bound on that objective
    gap: float                  # relative gap |objective - bound| / max(1, |objective|)
    status: str                 # OPTIMAL | FEASIBLE | GREEDY | INFEASIBLE | TRIVIAL
    model: str
    time_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.covered_weight / self.total_weight if self.total_weight > 0 else float("nan")


class Infeasible(ValueError):
    """The model has no solution (e.g. some demand no candidate reaches, in a full set cover)."""


# --------------------------------------------------------------------------- preprocessing
def _int_weights(w: np.ndarray) -> tuple[np.ndarray, float]:
    """Integer weights for CP-SAT: as they are when integral, else scaled by 1000 and rounded."""
    w = np.asarray(w, float)
    if np.allclose(w, np.round(w)):
        return np.round(w).astype(np.int64), 1.0
    return np.round(w * 1000.0).astype(np.int64), 1000.0


@dataclass
class Reduced:
    cov: sparse.csr_matrix      # merged demand x kept candidates (bool)
    w: np.ndarray               # int64 weights of merged rows
    cols: np.ndarray            # kept candidate index -> original candidate index
    base: float                 # weight already covered by forced sites
    coverable: float            # weight within reach of some candidate (forced ones included)
    total: float
    scale: float


def reduce(cov: sparse.spmatrix, weights: np.ndarray, forced=()) -> Reduced:
    cov = sparse.csr_matrix(cov, dtype=bool)
    cov.eliminate_zeros()
    w = np.asarray(weights, float)
    n, m = cov.shape
    forced = np.asarray(sorted(set(int(j) for j in forced)), dtype=np.int64)
    total = float(w.sum())
    reach = np.diff(cov.indptr) > 0
    coverable = float(w[reach].sum())
    by_forced = np.zeros(n, bool)
    if len(forced):
        by_forced = np.asarray(cov[:, forced].sum(axis=1)).ravel() > 0
    base = float(w[by_forced].sum())
    live_rows = np.flatnonzero(reach & ~by_forced & (w > 0))
    free = np.ones(m, bool)
    free[forced] = False
    sub = cov[live_rows][:, np.flatnonzero(free)]
    colkeep = np.asarray(sub.sum(axis=0)).ravel() > 0
    cols = np.flatnonzero(free)[colkeep]
    sub = sub[:, np.flatnonzero(colkeep)].tocsr()
    wi, scale = _int_weights(w[live_rows])
    # merge identical rows: two random projections + the count make a collision-proof key in practice
    if sub.shape[0]:
        rng = np.random.default_rng(12345)
        r = rng.random((sub.shape[1], 2))
        h = sub.astype(float) @ r
        key = np.column_stack([np.round(h * 1e9).astype(np.int64), np.diff(sub.indptr)])
        _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inv = inv.ravel()
        wm = np.bincount(inv, weights=wi, minlength=len(first)).astype(np.int64)
        sub = sub[first]
    else:
        wm = np.zeros(0, np.int64)
    return Reduced(cov=sub.tocsr(), w=wm, cols=cols, base=base, coverable=coverable, total=total,
                   scale=scale)


# --------------------------------------------------------------------------- greedy
def greedy(red: Reduced, p: int | None = None, target: float | None = None) -> list[int]:
    """Lazy greedy on the reduced problem: pick the column with the largest uncovered weight until
    ``p`` picks, or until the covered weight (reduced units, scaled) reaches ``target``."""
    csc = red.cov.tocsc()
    csr = red.cov
    w = red.w.astype(float)
    covered = np.zeros(len(w), bool)
    gains = np.asarray(csc.T @ w).ravel() if len(w) else np.zeros(csc.shape[1])
    heap = [(-g, j) for j, g in enumerate(gains) if g > 0]
    heapq.heapify(heap)
    picked: list[int] = []
    got = 0.0
    while heap:
        if p is not None and len(picked) >= p:
            break
        if target is not None and got >= target - 1e-9:
            break
        g, j = heapq.heappop(heap)
        rows = csc.indices[csc.indptr[j]:csc.indptr[j + 1]]
        real = float(w[rows[~covered[rows]]].sum())
        if real <= 0:
            continue
        if heap and real < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-real, j))
            continue
        picked.append(j)
        got += real
        covered[rows] = True
    del csr
    return picked


def _covered_weight(red: Reduced, picked) -> float:
    if not len(picked) or not len(red.w):
        return 0.0
    hit = np.asarray(red.cov[:, np.asarray(picked)].sum(axis=1)).ravel() > 0
    return float(red.w[hit].sum())


# --------------------------------------------------------------------------- MIP (OR-Tools)
BACKENDS = ("CBC", "SCIP")


def _mip(backend: str | None, time_limit: float):
    from ortools.linear_solver import pywraplp
    for name in ([backend] if backend else []) + list(BACKENDS):
        s = pywraplp.Solver.CreateSolver(name)
        if s is not None:
            s.SetTimeLimit(int(max(time_limit, 0.1) * 1000))
            return s, pywraplp
    raise RuntimeError("OR-Tools was built without a MIP backend (CBC or SCIP)")


def _status(st, pl) -> str:
    return {pl.Solver.OPTIMAL: "OPTIMAL", pl.Solver.FEASIBLE: "FEASIBLE", pl.Solver.INFEASIBLE: "INFEASIBLE",
            pl.Solver.NOT_SOLVED: "UNKNOWN"}.get(st, "UNKNOWN")


def _cover_mip(red: Reduced, backend, time_limit):
    """y_j in {0,1} per kept candidate, 0 <= z_i <= 1 per merged demand row, z_i <= sum_{j covers i} y_j.
    (z may stay continuous: with y integral, an optimum sets z_i = min(1, sum y) anyway.)"""
    s, pl = _mip(backend, time_limit)
    y = [s.BoolVar(f"y{j}") for j in range(red.cov.shape[1])]
    z = [s.NumVar(0.0, 1.0, f"z{i}") for i in range(red.cov.shape[0])]
    ind, ptr = red.cov.indices, red.cov.indptr
    for i in range(len(z)):
        c = s.Constraint(-s.infinity(), 0.0)
        c.SetCoefficient(z[i], 1.0)
        for j in ind[ptr[i]:ptr[i + 1]]:
            c.SetCoefficient(y[j], -1.0)
    return s, pl, y, z


def _hint(s, y, pick):
    ps = set(int(j) for j in pick)
    s.SetHint(y, [1.0 if j in ps else 0.0 for j in range(len(y))])


def _picked(y) -> list[int]:
    return [j for j, v in enumerate(y) if v.solution_value() > 0.5]


def max_cover(cov, weights, p: int, forced=(), time_limit: float = 30.0, seed: int = 0,
              workers: int = 1, backend: str | None = None) -> CoverResult:
    """MCLP: at most ``p`` sites besides the forced ones, maximal covered weight."""
    t0 = time.perf_counter()
    red = reduce(cov, weights, forced)
    forced = np.asarray(sorted(set(int(j) for j in forced)), dtype=np.int64)
    pick = greedy(red, p=p)
    g_cov = _covered_weight(red, pick)
    total_red = float(red.w.sum())
    res_pick, status, obj, bound = pick, "GREEDY", g_cov, total_red
    if p <= 0 or not len(red.w):
        status, bound = "TRIVIAL", g_cov
    elif len(pick) < p or g_cov >= total_red:
        status, bound = "OPTIMAL", g_cov       # greedy covered everything coverable
    else:
        s, pl, y, z = _cover_mip(red, backend, time_limit)
        c = s.Constraint(0.0, float(p))
        for v in y:
            c.SetCoefficient(v, 1.0)
        o = s.Objective()
        for wi, zi in zip(red.w, z):
            o.SetCoefficient(zi, float(wi))
        o.SetMaximization()
        _hint(s, y, pick)
        st = s.Solve()
        status = _status(st, pl)
        if status in ("OPTIMAL", "FEASIBLE"):
            sol = _picked(y)
            val = _covered_weight(red, sol)
            if val >= g_cov:
                res_pick, obj = sol, val
            bound = min(float(o.BestBound()), total_red)
            if status == "OPTIMAL":
                bound = max(obj, min(bound, obj + 0.5))   # integral weights: the optimum is obj
        else:
            status = "GREEDY"
    open_ = np.unique(np.r_[forced, red.cols[np.asarray(res_pick, dtype=np.int64)]]).astype(np.int64)
    covered = red.base + obj / red.scale
    bound_w = red.base + max(bound, obj) / red.scale
    return CoverResult(open=open_, covered_weight=covered, total_weight=red.total,
                       coverable_weight=red.coverable, objective=covered, bound=bound_w,
                       gap=abs(bound_w - covered) / max(1.0, abs(covered)), status=status, model="max_cover",
                       time_s=time.perf_counter() - t0)


def min_cover(cov, weights, target_weight: float | None = None, forced=(), time_limit: float = 30.0,
              seed: int = 0, workers: int = 1, max_sites: int | None = None,
              backend: str | None = None) -> CoverResult:
    """Fewest sites besides the forced ones whose covered weight reaches ``target_weight``
    (None: every demand — the classic LSCP, which raises ``Infeasible`` when some demand has no
    candidate within reach). A target above the coverable weight is lowered to it, with a note."""
    t0 = time.perf_counter()
    red = reduce(cov, weights, forced)
    forced = np.asarray(sorted(set(int(j) for j in forced)), dtype=np.int64)
    notes = []
    if target_weight is None:
        if red.coverable < red.total - 1e-9:
            n_out = int((np.diff(sparse.csr_matrix(cov).indptr) == 0).sum())
            raise Infeasible(f"set covering is infeasible: {n_out} demand point(s) have no candidate within reach")
        target_weight = red.total
    if target_weight > red.coverable + 1e-9:
        notes.append(f"the target ({target_weight:g} households) exceeds what all candidates together cover "
                     f"({red.coverable:g}); aiming at that instead")
        target_weight = red.coverable
    need_raw = target_weight - red.base
    need = int(np.ceil(need_raw * red.scale - 1e-6)) if need_raw > 0 else 0
    if need <= 0:
        return CoverResult(open=forced, covered_weight=red.base, total_weight=red.total,
                           coverable_weight=red.coverable, objective=0, bound=0, gap=0.0, status="TRIVIAL",
                           model="min_cover", time_s=time.perf_counter() - t0, notes=notes)
    pick = greedy(red, target=need)
    s, pl, y, z = _cover_mip(red, backend, time_limit)
    c = s.Constraint(float(need), s.infinity())
    for wi, zi in zip(red.w, z):
        c.SetCoefficient(zi, float(wi))
    if max_sites is not None:
        c2 = s.Constraint(0.0, float(max_sites))
        for v in y:
            c2.SetCoefficient(v, 1.0)
    o = s.Objective()
    for v in y:
        o.SetCoefficient(v, 1.0)
    o.SetMinimization()
    _hint(s, y, pick)
    st = s.Solve()
    status = _status(st, pl)
    res_pick, obj, bound = pick, float(len(pick)), 1.0
    if status in ("OPTIMAL", "FEASIBLE"):
        sol = _picked(y)
        if len(sol) <= len(pick) or (max_sites is not None and len(pick) > max_sites):
            res_pick, obj = sol, float(len(sol))
        bound = float(np.ceil(o.BestBound() - 1e-6))
        if status == "OPTIMAL":
            bound = obj
    elif status == "INFEASIBLE":
        raise Infeasible(f"no set of at most {max_sites} new sites reaches the target")
    else:
        status = "GREEDY"
    if max_sites is not None and len(res_pick) > max_sites:
        raise Infeasible(f"no set of at most {max_sites} new sites found reaching the target")
    covered = red.base + _covered_weight(red, res_pick) / red.scale
    open_ = np.unique(np.r_[forced, red.cols[np.asarray(res_pick, dtype=np.int64)]]).astype(np.int64)
    bound = min(bound, obj)
    return CoverResult(open=open_, covered_weight=covered, total_weight=red.total, coverable_weight=red.coverable,
                       objective=obj, bound=bound, gap=abs(obj - bound) / max(1.0, obj), status=status,
                       model="min_cover", time_s=time.perf_counter() - t0, notes=notes)


def p_median(cost: np.ndarray, weights: np.ndarray, p: int, forced=(), time_limit: float = 60.0,
             seed: int = 0, workers: int = 2) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Exact p-median on a dense cost matrix (small instances): (open sites, assigned site of each
    demand, weighted mean cost, status). Solved as a MIP with OR-Tools' SCIP backend (its LP bound
    closes p-median at once, where CP-SAT's search is slow to prove); the mean is recomputed from the
    float costs of the optimal assignment."""
    from ortools.linear_solver import pywraplp
    cost = np.asarray(cost, float)
    w = np.asarray(weights, float)
    n, m_ = cost.shape
    if p <= 0 or p > m_:
        raise Infeasible(f"p-median needs 1 <= p <= {m_} sites, got {p}")
    s = pywraplp.Solver.CreateSolver("SCIP") or pywraplp.Solver.CreateSolver("CBC")
    s.SetTimeLimit(int(time_limit * 1000))
    y = [s.BoolVar(f"y{j}") for j in range(m_)]
    x = [[s.NumVar(0.0, 1.0, f"x{i}_{j}") for j in range(m_)] for i in range(n)]
    for i in range(n):
        s.Add(sum(x[i]) == 1)
        for j in range(m_):
            s.Add(x[i][j] <= y[j])
    s.Add(sum(y) == p)
    for j in forced:
        s.Add(y[int(j)] == 1)
    s.Minimize(sum(float(w[i] * cost[i, j]) * x[i][j] for i in range(n) for j in range(m_)))
    st = s.Solve()
    if st not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        raise Infeasible(f"p-median: no solution (MIP status {st})")
    open_ = np.array([j for j in range(m_) if y[j].solution_value() > 0.5], dtype=np.int64)
    # with y fixed, each demand goes to its cheapest open site (ties: lowest index)
    assign = open_[np.argmin(cost[:, open_], axis=1)]
    mean = float((w * cost[np.arange(n), assign]).sum() / w.sum())
    return open_, assign, mean, "OPTIMAL" if st == pywraplp.Solver.OPTIMAL else "FEASIBLE"


def tiebreak(cov_minutes: sparse.csr_matrix, weights: np.ndarray, first: CoverResult, forced=(),
             radius: float = 1.0, time_limit: float = 20.0, seed: int = 0, workers: int = 1,
             max_pairs: int = 60_000, backend: str | None = None) -> tuple[CoverResult, str]:
    """Second stage: at most the first stage's number of new sites, covered weight >= the first
    stage's, least weighted travel of covered demand (each demand served by one open site within
    reach; uncovered demand counts as ``radius``). Returns (result, note); skipped (the note says why)
    when the model would be too large. Demand rows with identical (site, minutes) rows are merged."""
    cm = sparse.csr_matrix(cov_minutes)
    n, mc = cm.shape
    forced = np.asarray(sorted(set(int(j) for j in forced)), dtype=np.int64)
    fset = set(forced.tolist())
    w = np.asarray(weights, float)
    rows = np.flatnonzero((np.diff(cm.indptr) > 0) & (w > 0))
    sub = cm[rows]
    if sub.nnz > max_pairs:
        return first, f"p-median tiebreak skipped: {sub.nnz} household-station pairs (limit {max_pairs})"
    # merge rows with identical sites and (rounded) minutes
    rng = np.random.default_rng(7)
    r = rng.random((mc, 2))
    q = sub.copy()
    q.data = np.round(q.data, 3)
    h = np.column_stack([(q @ r[:, 0]), (q != 0).astype(float) @ r[:, 1]])
    _, first_i, inv = np.unique(np.round(h * 1e9).astype(np.int64), axis=0, return_index=True, return_inverse=True)
    wm = np.bincount(inv.ravel(), weights=w[rows], minlength=len(first_i))
    sub = sub[first_i]
    new_first = np.setdiff1d(first.open, forced)
    k = len(new_first)
    cols = np.union1d(np.flatnonzero(np.asarray((sub != 0).sum(axis=0)).ravel() > 0), forced)
    colpos = {int(c): t for t, c in enumerate(cols)}
    s, pl = _mip(backend, time_limit)
    y = [s.BoolVar(f"y{c}") for c in cols]
    for c in forced:
        y[colpos[int(c)]].SetLb(1.0)
    cnt = s.Constraint(0.0, float(k))
    for c in cols:
        if int(c) not in fset:
            cnt.SetCoefficient(y[colpos[int(c)]], 1.0)
    covc = s.Constraint(float(first.covered_weight) - 1e-6, s.infinity())
    o = s.Objective()
    ind, ptr, dat = sub.indices, sub.indptr, sub.data
    for i in range(sub.shape[0]):
        one = s.Constraint(-s.infinity(), 1.0)
        for j, mm in zip(ind[ptr[i]:ptr[i + 1]], dat[ptr[i]:ptr[i + 1]] - 1.0):
            x = s.NumVar(0.0, 1.0, "")
            one.SetCoefficient(x, 1.0)
            link = s.Constraint(-s.infinity(), 0.0)
            link.SetCoefficient(x, 1.0)
            link.SetCoefficient(y[colpos[int(j)]], -1.0)
            covc.SetCoefficient(x, float(wm[i]))
            o.SetCoefficient(x, float(wm[i]) * (float(radius) + 1.0 - float(mm)))
    o.SetMaximization()
    open_set = set(first.open.tolist())
    s.SetHint(y, [1.0 if int(c) in open_set else 0.0 for c in cols])
    st = s.Solve()
    status = _status(st, pl)
    if status != "OPTIMAL":
        # a time-limited incumbent would depend on the machine's speed: keep the first stage (deterministic)
        return first, f"p-median tiebreak not proven within {time_limit:g}s ({status}); first stage kept"
    open_ = np.array(sorted(int(c) for c in cols if y[colpos[int(c)]].solution_value() > 0.5), dtype=np.int64)
    hit = np.asarray((cm[:, open_] != 0).sum(axis=1)).ravel() > 0 if len(open_) else np.zeros(n, bool)
    covered = float(w[hit].sum())
    if covered + 1e-6 < first.covered_weight or len(np.setdiff1d(open_, forced)) > k:
        return first, "p-median tiebreak lost coverage; kept the first stage"
    out = CoverResult(open=open_, covered_weight=covered, total_weight=first.total_weight,
                      coverable_weight=first.coverable_weight, objective=first.objective, bound=first.bound,
                      gap=first.gap, status=first.status, model=first.model, time_s=first.time_s,
                      notes=list(first.notes))
    return out, f"p-median tiebreak {status.lower()}"


def mean_cost(cost: np.ndarray, weights: np.ndarray, open_: np.ndarray) -> float:
    """Weighted mean cost of serving each demand from its cheapest open site."""
    c = np.asarray(cost, float)[:, np.asarray(open_)]
    w = np.asarray(weights, float)
    return float((w * c.min(axis=1)).sum() / w.sum())
