"""Capacitated LSCP and MCLP with split assignment by cut-set decomposition (exact, large instances).

The direct model of ``optimize.siting_capacity`` carries one variable per (household, station) pair;
at 20,000 x 1,000 its LP alone takes minutes. With split assignment there is a much smaller exact
model over the stations only. By Hall's theorem (max-flow min-cut on the bipartite transport
network), a set of open stations can serve every household iff for every set ``S`` of households

    sum_{j within reach of S} C_j y_j >= w(S)                       (cut-set inequality)

and, when only a share ``z_r`` of each household row must be served, for every set ``S``

    sum_{j within reach of S} min(C_j, w(S)) y_j >= sum_{r in S} w_r z_r.

So the master is the uncapacitated covering model of ``optimize.siting_models`` over ``y`` and the
covered shares ``z`` (LSCP: fewest stations with ``sum w z >= target``; MCLP: ``p`` new stations,
most ``sum w z``) plus the cut-set rows found so far. Its open set is checked with a max flow
(integral households and capacities); if the flow serves what the master claims, the master's
optimum is the capacitated optimum (it is a relaxation). Otherwise the min cut's source side
(split into its connected parts) gives violated cut-set rows; repeat. "OPTIMAL" only when the last
master closed its tree at gap 0; the bound is the master's (a bound of the capacitated model). A
deterministic round limit stops the loop: the LSCP's open set is then repaired greedily, the MCLP
keeps its flow, both reported FEASIBLE with the master's bound.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order, connected_components, maximum_flow

from gridplan.optimize import siting_mip as mip
from gridplan.optimize.siting_capacity import CapacityInfeasible, CapResult, Sites, _expand, _merge

MAX_ROUNDS = 80


def integral(*arrays) -> bool:
    """Return whether every value is a finite integer below 2^31 (max-flow capacities)."""
    return all(np.all(np.isfinite(a)) and np.all(np.abs(a) < 2**31) and np.all(np.floor(a) == a) for a in arrays)


def _flow(cov: sparse.csr_matrix, w: np.ndarray, cap: np.ndarray, open_: np.ndarray):
    """Max flow households -> open stations; returns (served weight, flow csr n x m, source-side rows)."""
    n, m = cov.shape
    sub = cov[:, open_].tocoo()
    k = len(open_)
    N = n + k + 2
    s, t = n + k, n + k + 1
    big = int(min(w.sum(), 2**31 - 1))
    rows = np.r_[np.full(n, s), sub.row, n + np.arange(k)]
    cols = np.r_[np.arange(n), n + sub.col, np.full(k, t)]
    caps = np.r_[w.astype(np.int64), np.full(sub.nnz, big, np.int64), cap[open_].astype(np.int64)]
    g = sparse.csr_matrix((caps.astype(np.int32), (rows, cols)), shape=(N, N))
    res = maximum_flow(g, s, t)
    f = res.flow.tocsr()
    served = float(res.flow_value)
    # residual graph: capacity left forward, and the reverse of any flow (scipy's flow is antisymmetric)
    resid = (g.astype(np.int64) - f.astype(np.int64)).tocsr()
    resid.data = (resid.data > 0).astype(np.int8)
    resid.eliminate_zeros()
    order = breadth_first_order(resid, s, directed=True, return_predecessors=False)
    side = order[order < n]
    fl = f[:n][:, n:n + k].tocoo()
    keep = fl.data > 0
    flow = sparse.csr_matrix((fl.data[keep].astype(float), (fl.row[keep], open_[fl.col[keep]])), shape=(n, m))
    return served, flow, np.sort(side)


def _violated(cov: sparse.csr_matrix, wz: np.ndarray, cap: np.ndarray, side: np.ndarray, open_: np.ndarray):
    """Cut-set rows (coefficients over the stations, members of S) for the deficient parts of ``side``."""
    if not len(side):
        return []
    is_open = np.zeros(cov.shape[1], bool)
    is_open[open_] = True
    so = cov[side][:, np.flatnonzero(is_open)].astype(np.int8)
    ncomp, lab = connected_components((so @ so.T).tocsr(), directed=False)
    parts = [side[lab == c] for c in range(ncomp)] + ([side] if ncomp > 1 else [])
    out = []
    for members in parts:
        reach = np.flatnonzero(np.asarray(cov[members].sum(axis=0)).ravel() > 0)
        need = float(wz[members].sum())
        if cap[reach[is_open[reach]]].sum() < need - 1e-6:
            out.append((reach, members))
        if out and members is side:
            break
    return out


def _repair(cov, w, cap, open_, need):
    """Open stations greedily (most unserved weight in reach) until the flow serves ``need``."""
    open_ = np.asarray(open_, np.int64)
    while True:
        served, flow, side = _flow(cov, w, cap, open_)
        if served >= need - 0.5:
            return open_, flow, served
        gain = np.asarray(cov[side].T.astype(float) @ w[side]).ravel()
        gain[open_] = -1
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            raise CapacityInfeasible("capacitated lscp: the stations within reach cannot serve the households")
        open_ = np.sort(np.r_[open_, j])


class _Master:
    """The covering master over [y (m), z (rows)] with cut-set rows added round by round."""

    def __init__(self, cov, w, cap, kind, p, need, sites, node_limit):
        self.cov, self.w, self.cap, self.kind, self.sites = cov, w, cap, kind, sites
        self.node_limit = node_limit
        R, m = cov.shape
        self.R, self.m = R, m
        new = sites.new_mask(m)
        link = sparse.hstack([-cov.astype(float), sparse.identity(R)], format="csr")
        rows, lo, hi = [link], [np.full(R, -np.inf)], [np.zeros(R)]
        s = float(w.max()) if R else 1.0
        self.s = s
        if kind == "mclp":
            c, rhs = sites.count_row(m, p)
            rows.append(sparse.csr_matrix(np.r_[c, np.zeros(R)].reshape(1, -1)))
            lo.append([-np.inf]), hi.append([rhs])
        elif need is not None:
            rows.append(sparse.csr_matrix(np.r_[np.zeros(m), w / s].reshape(1, -1)))
            lo.append([need / s]), hi.append([np.inf])
        if sites.max_close is not None and len(sites.closable):
            c = np.zeros(m + R)
            c[sites.closable] = 1.0
            rows.append(sparse.csr_matrix(c.reshape(1, -1)))
            lo.append([float(len(sites.closable) - sites.max_close)]), hi.append([np.inf])
        tot = np.r_[cap, -w]                                  # total capacity >= served
        tot[:m] = np.where(np.isfinite(cap), cap, w.sum())
        rows.append(sparse.csr_matrix((tot / s).reshape(1, -1)))
        lo.append([0.0]), hi.append([np.inf])
        self.A, self.lo, self.hi = sparse.vstack(rows, format="csr"), np.concatenate(lo), np.concatenate(hi)
        if kind == "mclp":
            self.c = np.r_[np.zeros(m), w / s]
        else:
            self.c = np.r_[new.astype(float), np.zeros(R)]
            self.c[sites.closable] = 1.0 - sites.close_cost
        self.lb = np.zeros(m + R)
        self.lb[sites.forced] = 1.0
        if kind == "lscp" and need is None:
            self.lb[m:] = 1.0
        self.cuts = 0

    def add(self, reach: np.ndarray, members: np.ndarray) -> None:
        """Add the cut-set row of ``members`` (rows) reaching ``reach`` (stations)."""
        ws = float(self.w[members].sum())
        coef = np.zeros(self.m + self.R)
        coef[reach] = np.minimum(np.where(np.isfinite(self.cap[reach]), self.cap[reach], ws), ws)
        coef[self.m + members] = -self.w[members]
        self.A = sparse.vstack([self.A, sparse.csr_matrix((coef / ws).reshape(1, -1))], format="csr")
        self.lo, self.hi = np.r_[self.lo, 0.0], np.r_[self.hi, np.inf]
        self.cuts += 1

    def solve(self):
        """Solve the master (HiGHS, gap 0, node limit)."""
        return mip.solve(self.c, self.A, self.lo, self.hi, np.r_[np.ones(self.m), np.zeros(self.R)], self.lb,
                         np.ones(self.m + self.R), maximize=self.kind == "mclp",
                         node_limit=self.node_limit or mip.node_limit_for(self.A.nnz))


def _town_cuts(master: "_Master", cov: sparse.csr_matrix, finite: np.ndarray) -> None:
    """Add one cut-set row per connected part of the coverage graph (households and the stations reaching them)."""
    R, m = cov.shape
    if not finite.any() or R == 0:
        return
    graph = sparse.bmat([[None, cov.astype(np.int8)], [cov.T.astype(np.int8), None]], format="csr")
    ncomp, lab = connected_components(graph, directed=False)
    if ncomp <= 1:
        return
    rows_of = lab[:R]
    order = np.argsort(rows_of, kind="stable")
    bounds = np.searchsorted(rows_of[order], np.arange(ncomp + 1))
    for c in range(ncomp):
        members = order[bounds[c]:bounds[c + 1]]
        reach = np.flatnonzero(lab[R:] == c)
        if len(members) and len(reach) > 1 and finite[reach].all():
            master.add(reach, members)


@dataclass(frozen=True)
class Round:
    """What one master/flow round proved (``cut_capacitated``'s ``progress`` gets one after each round).

    ``seconds`` since the call started; ``served`` the weight the max flow of this round's open set
    serves (always feasible); ``bound`` this master's bound (a bound of the capacitated model: the
    master is a relaxation), both in the caller's weight units for the MCLP and in stations for the
    LSCP; ``best_served``/``best_bound`` the best of each so far; ``gap`` the MCLP's
    ``(best_bound - best_served) / best_bound`` (nan for the LSCP, whose open sets may fall short);
    ``cuts`` the cut-set rows in this round's master, ``nodes`` the master nodes so far.
    """

    round: int
    seconds: float
    served: float
    bound: float
    best_served: float
    best_bound: float
    gap: float
    cuts: int
    nodes: int
    master_status: str


def cut_capacitated(pairs, weights, capacity, kind: str = "lscp", p: int | None = None,
                    target_weight: float | None = None, sites: Sites | None = None,
                    node_limit: int | None = None, max_rounds: int = MAX_ROUNDS,
                    progress: Callable[[Round], None] | None = None) -> CapResult:
    """Capacitated LSCP or MCLP with split assignment, by cut-set rows (see the module docstring).

    Parameters
    ----------
    pairs : sparse matrix (household x candidate), a stored entry = within reach
    weights, capacity : integral households and capacities (``integral``; capacity may be inf)
    kind : "lscp" (fewest stations; all reachable households, or ``target_weight``) | "mclp" (``p``)
    sites : forced and closable columns (``siting_capacity.Sites``)
    node_limit : nodes per master MIP; max_rounds : master/flow rounds (both deterministic)
    progress : called with a ``Round`` after each round (the answer does not depend on it)

    Returns
    -------
    CapResult (the assignment is the final max flow's; for the MCLP the best round's flow, with the
    lowest master bound met)
    """
    t0 = time.perf_counter()
    cov0 = sparse.csr_matrix(pairs, dtype=bool)
    cov0.eliminate_zeros()
    w0 = np.asarray(weights, float)
    cap = np.asarray(capacity, float)
    n, m = cov0.shape
    sites = sites or Sites.of(m)
    live = np.flatnonzero((np.diff(cov0.indptr) > 0) & (w0 > 0))
    mg = _merge(cov0.astype(float), w0, live, by_cost=False, merge=True)
    cov = sparse.csr_matrix((np.ones(mg.pairs.nnz, bool), (mg.pairs.row, mg.pairs.col)), shape=mg.pairs.shape)
    w = mg.w
    need = None if target_weight is None else min(float(target_weight), float(w.sum()))
    master = _Master(cov, w, cap, kind, p, need, sites, node_limit)
    _town_cuts(master, cov, np.isfinite(cap))
    capf = np.where(np.isfinite(cap), cap, w.sum())
    st = _rounds(master, cov, w, capf, kind, max_rounds, progress, t0)
    if st.status != "OPTIMAL" and kind == "lscp" and not st.proved:
        st.open_, st.flow, st.served = _repair(cov, w, capf, st.open_, need if need is not None else float(w.sum()))
    return _cut_result(mg, st.flow, st.served, w0, cap, st.open_, sites, kind, st.status, st.bound, master,
                       st.nodes, t0)


@dataclass
class _State:
    """The loop's answer so far: the open set and flow kept, the bound kept, and the proof."""

    open_: np.ndarray | None = None
    flow: sparse.csr_matrix | None = None
    served: float = -np.inf
    bound: float = np.nan
    status: str = "FEASIBLE"
    proved: bool = False          # the LSCP's open set serves what its master asked
    nodes: int = 0


def _rounds(master, cov, w, capf, kind, max_rounds, progress, t0) -> _State:
    """Master / max-flow / cut rounds; keeps the MCLP's best flow and lowest bound (the LSCP's last)."""
    m, mclp, st = cov.shape[1], kind == "mclp", _State()
    for k in range(max_rounds):
        sol = master.solve()
        st.nodes += sol.nodes
        if sol.x is None:
            raise CapacityInfeasible(f"capacitated {kind}: the stations within reach cannot serve the households "
                                     f"asked for ({sol.status})")
        open_ = np.flatnonzero(mip.binary(sol.x[:m])).astype(np.int64)
        wz = w * np.clip(sol.x[m:], 0, 1)
        served, flow, side = _flow(cov, w, capf, open_)
        done = served >= wz.sum() - 0.5
        if not mclp or served > st.served or done:
            st.open_, st.flow, st.served = open_, flow, served
        if mclp:
            st.bound = sol.bound if not np.isfinite(st.bound) else min(st.bound, sol.bound)
        else:
            st.bound = sol.bound if not np.isfinite(st.bound) else max(st.bound, sol.bound)
        cuts = [] if done else _violated(cov, wz, capf, side, open_)
        if progress is not None:
            progress(_round(k, t0, served, sol, st, master, mclp))
        if done:
            st.status, st.proved = sol.status, True
            break
        if not cuts:
            break
        for reach, members in cuts:
            master.add(reach, members)
    return st


def _round(k, t0, served, sol, st, master, mclp) -> Round:
    """Return the ``Round`` record of round ``k`` (MCLP bounds in weight units, LSCP bounds in stations)."""
    s = master.s if mclp else 1.0
    best, bnd = (st.served, st.bound * s) if mclp else (np.nan, st.bound)
    gap = max(bnd - best, 0.0) / bnd if mclp and bnd > 0 else (0.0 if mclp else np.nan)
    return Round(round=k + 1, seconds=time.perf_counter() - t0, served=served, bound=sol.bound * s,
                 best_served=best, best_bound=bnd, gap=gap, cuts=master.cuts, nodes=st.nodes,
                 master_status=sol.status)


def _cut_result(mg, flow, served, w0, cap, open_, sites, kind, status, bound, master, nodes, t0) -> CapResult:
    """Spread the merged rows' flow back over the households and state the proof."""
    n, m = len(w0), len(cap)
    f = flow.tocoo()
    x = np.zeros(mg.pairs.nnz)
    key = {(int(r), int(c)): k for k, (r, c) in enumerate(zip(mg.pairs.row, mg.pairs.col))}
    for r, c, v in zip(f.row, f.col, f.data):
        x[key[(int(r), int(c))]] = v / mg.w[r]
    full = _expand(mg, x, w0, n, m)
    load = np.asarray(full.sum(axis=0)).ravel()
    y = np.zeros(m, bool)
    y[open_] = True
    kept = y[sites.closable]
    if kind == "lscp":
        obj = float(y[sites.new_mask(m)].sum()) + float(kept.sum()) + sites.close_cost * float((~kept).sum())
        bnd = float(np.ceil(bound - 1e-6)) if np.isfinite(bound) else np.nan
        bnd = obj if status == "OPTIMAL" else min(obj, bnd)
    else:
        obj = float(load.sum())
        bnd = obj if status == "OPTIMAL" else max(obj, float(bound) * master.s)
    gap = 0.0 if status == "OPTIMAL" else abs(bnd - obj) / max(abs(obj), 1.0)
    return CapResult(open=open_, flow=full, load=load, capacity=cap, assigned_weight=float(load.sum()),
                     total_weight=float(w0[w0 > 0].sum()), objective=obj, bound=bnd, gap=gap, status=status,
                     model=f"capacitated_{kind}", closed=np.setdiff1d(sites.closable, open_).astype(np.int64),
                     nodes=nodes, time_s=time.perf_counter() - t0, notes=[f"{master.cuts} cut-set row(s)"])
