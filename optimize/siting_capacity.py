"""Capacitated siting on sparse assignment pairs: capacitated LSCP, MCLP and p-median.

Each household (demand row) may be served only by a station within reach (a stored entry of the
demand x candidate matrix ``pairs``); a station serves at most its ``capacity`` in households. The
three models (names as in spopt, which builds them densely):

* ``kind="lscp"`` — CLSCP: the fewest new stations whose assignment serves all reachable demand
  (or, with ``target_weight``, at least that much of it);
* ``kind="mclp"`` — capacitated MCLP: at most ``p`` new stations, most demand assigned;
* ``kind="pmedian"`` — capacitated p-median: exactly ``p`` open stations (forced ones included, as
  spopt counts them), every reachable demand assigned, least weighted cost.

Assignment is split (fractions of a demand row may go to several stations) unless
``single_source``; with split assignment demand rows with the same reachable stations (and costs,
for the p-median) are merged first, their weights added. Variables are only created for stored
pairs — the sparse-coverage approach of ``optimize.siting_models``: a 20,000 x 1,000 instance with
a few dozen stations in reach of each household is a model of some 10^5 pairs, not 2 x 10^7.
Closures: ``closable`` columns (existing stations that may close) are free; the LSCP then counts
the stations in operation (new and kept alike) plus ``close_cost`` per closure, so a station closes
when the others can take its households (``max_close`` caps the closures).

The MIP is HiGHS through ``optimize.siting_mip`` (zero gaps, a node limit: deterministic); the
status is the solver's ("OPTIMAL" only when its tree closed), the bound and gap are its own, and the
loads are recounted from the returned assignment.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from gridplan.optimize import siting_mip as mip

KINDS = ("lscp", "mclp", "pmedian")
LINK_MAX_PAIRS = 3_000_000    # add the strong x_ij <= y_j rows up to this many pairs
CAP_TOL = 1e-7                # relative slack on a station's load (solver feasibility tolerance)


class CapacityInfeasible(ValueError):
    """No assignment respects the capacities (and the counts) asked for."""


@dataclass
class CapResult:
    """Hold a capacitated model's answer (weights in the caller's units).

    ``open`` are the open candidate columns, ``flow`` the assigned weight per stored pair (a
    ``csr_matrix`` of the demand x candidate shape), ``load`` the assigned weight per candidate,
    ``assigned_weight`` the total; ``objective``/``bound``/``gap``/``status``/``nodes`` the
    solver's proof (``objective`` in the model's terms: new stations, assigned weight or cost).
    """

    open: np.ndarray
    flow: sparse.csr_matrix
    load: np.ndarray
    capacity: np.ndarray
    assigned_weight: float
    total_weight: float
    objective: float
    bound: float
    gap: float
    status: str
    model: str
    closed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    nodes: int = 0
    time_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        """Assigned weight over all weight."""
        return self.assigned_weight / self.total_weight if self.total_weight > 0 else float("nan")

    @property
    def utilisation(self) -> np.ndarray:
        """Load over capacity of each open column (NaN where the capacity is infinite or 0)."""
        cap = self.capacity[self.open]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(np.isfinite(cap) & (cap > 0), self.load[self.open] / cap, np.nan)

    def main_station(self) -> np.ndarray:
        """Column serving the largest part of each demand row (-1 where nothing is assigned)."""
        out = np.full(self.flow.shape[0], -1, dtype=np.int64)
        f = self.flow.tocsr()
        for i in np.flatnonzero(np.diff(f.indptr)):
            lo, hi = f.indptr[i], f.indptr[i + 1]
            out[i] = f.indices[lo + int(np.argmax(f.data[lo:hi]))]
        return out


@dataclass
class _Merged:
    pairs: sparse.coo_matrix    # merged rows x candidates, data = cost
    w: np.ndarray
    rows: list                  # original rows of each merged row (row index arrays)


def _merge(pairs: sparse.csr_matrix, w: np.ndarray, live: np.ndarray, by_cost: bool, merge: bool) -> _Merged:
    """Merge live demand rows with identical reachable columns (and costs when ``by_cost``)."""
    sub = pairs[live]
    if not merge or not len(live):
        return _Merged(sub.tocoo(), w[live], [np.array([i]) for i in live])
    r = np.random.default_rng(11).random((sub.shape[1], 2))
    pat = (sub != 0).astype(float)
    h = np.column_stack([pat @ r[:, 0], (sub @ r[:, 1]) if by_cost else np.diff(sub.indptr)])
    _, first, inv = np.unique(np.round(h * 1e9).astype(np.int64), axis=0, return_index=True,
                              return_inverse=True)
    inv = inv.ravel()
    order = np.argsort(inv, kind="stable")
    groups = np.split(live[order], np.cumsum(np.bincount(inv, minlength=len(first)))[:-1])
    return _Merged(sub[first].tocoo(), np.bincount(inv, weights=w[live], minlength=len(first)), groups)


def _rows(mg: _Merged, cap: np.ndarray, m: int, link: bool):
    """Build the assignment, capacity and link rows over [y (m), x (pairs)] (capacity rows scaled by 1/C)."""
    P, n = mg.pairs.nnz, mg.pairs.shape[0]
    pr, pc = mg.pairs.row, mg.pairs.col
    assign = sparse.csr_matrix((np.ones(P), (pr, m + np.arange(P))), shape=(n, m + P))
    finite = np.isfinite(cap)
    k = np.flatnonzero(finite)
    idx = np.full(m, -1)
    idx[k] = np.arange(len(k))
    sel = finite[pc]
    capa = sparse.csr_matrix((np.r_[-np.ones(len(k)), mg.w[pr[sel]] / np.maximum(cap[pc[sel]], 1e-300)],
                              (np.r_[np.arange(len(k)), idx[pc[sel]]], np.r_[k, m + np.flatnonzero(sel)])),
                             shape=(len(k), m + P))
    blocks = [assign, capa]
    if link or not finite.all():
        lk = np.arange(P) if link else np.flatnonzero(~sel)
        blocks.append(sparse.csr_matrix((np.r_[-np.ones(len(lk)), np.ones(len(lk))],
                                         (np.r_[np.arange(len(lk)), np.arange(len(lk))], np.r_[pc[lk], m + lk])),
                                        shape=(len(lk), m + P)))
    return blocks, len(k)


@dataclass(frozen=True)
class Sites:
    """How the candidate columns may be used: forced open, closable (existing) and their costs."""

    forced: np.ndarray
    closable: np.ndarray
    close_cost: float = 1.0
    max_close: int | None = None
    moves: bool = False            # MCLP: each closure frees one new station (a relocation)

    @classmethod
    def of(cls, m: int, forced=(), closable=(), close_cost: float = 1.0, max_close: int | None = None,
           moves: bool = False) -> "Sites":
        """Build from index lists (a column both forced and closable is closable)."""
        cl = np.asarray(sorted(set(int(j) for j in closable)), dtype=np.int64)
        fo = np.asarray(sorted(set(int(j) for j in forced) - set(cl.tolist())), dtype=np.int64)
        return cls(fo, cl, float(close_cost), max_close, bool(moves))

    def count_row(self, m: int, p: int) -> tuple[np.ndarray, float]:
        """MCLP's station count: new ones <= p (+ kept closable <= their number, when moves free budget)."""
        c = self.new_mask(m).astype(float)
        if self.moves and len(self.closable):
            c[self.closable] = 1.0
            return c, float(p + len(self.closable))
        return c, float(p)

    def new_mask(self, m: int) -> np.ndarray:
        """Columns that are new sites (neither forced nor closable)."""
        new = np.ones(m, bool)
        new[self.forced] = False
        new[self.closable] = False
        return new


def _objective(kind: str, mg: _Merged, m: int, new: np.ndarray, sites: Sites) -> tuple[np.ndarray, float]:
    """Objective over [y, x] (before scaling) and its constant term."""
    P = mg.pairs.nnz
    if kind == "lscp":
        c = np.r_[new.astype(float), np.zeros(P)]
        c[sites.closable] = 1.0 - sites.close_cost     # kept: 1 each; closed: close_cost each
        return c, sites.close_cost * len(sites.closable)
    if kind == "mclp":
        return np.r_[np.zeros(m), mg.w[mg.pairs.row]], 0.0
    return np.r_[np.zeros(m), mg.w[mg.pairs.row] * mg.pairs.data], 0.0


def _count_rows(kind: str, m: int, P: int, new: np.ndarray, sites: Sites, p: int | None, target, mg, total):
    """Build the counting rows: new sites <= p (mclp), all sites == p (pmedian), closures, the target."""
    rows, lo, hi = [], [], []
    if kind == "mclp" and p is not None:
        c, rhs = sites.count_row(m, p)
        rows.append(np.r_[c, np.zeros(P)]), lo.append(-np.inf), hi.append(rhs)
    if kind == "pmedian":
        rows.append(np.r_[np.ones(m), np.zeros(P)]), lo.append(float(p)), hi.append(float(p))
    if sites.max_close is not None and len(sites.closable):
        c = np.zeros(m + P)
        c[sites.closable] = 1.0
        rows.append(c), lo.append(float(len(sites.closable) - sites.max_close)), hi.append(np.inf)
    if target is not None:
        s = float(mg.w.max()) if len(mg.w) else 1.0
        rows.append(np.r_[np.zeros(m), mg.w[mg.pairs.row] / s]), lo.append(target / s), hi.append(np.inf)
    if not rows:
        return sparse.csr_matrix((0, m + P)), np.zeros(0), np.zeros(0)
    return sparse.csr_matrix(np.vstack(rows)), np.asarray(lo), np.asarray(hi)


def _validate(kind, n, m, cap, p):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if cap.shape != (m,):
        raise ValueError(f"capacity must have one value per candidate ({m}), got {cap.shape}")
    if np.any(np.isnan(cap)) or np.any(cap < 0):
        raise ValueError("capacity must be >= 0 (inf: unlimited)")
    if kind in ("mclp", "pmedian") and p is None:
        raise ValueError(f"{kind} needs p")


def capacitated(pairs, weights, capacity, kind: str = "lscp", p: int | None = None,
                target_weight: float | None = None, sites: Sites | None = None, single_source: bool = False,
                fill_forced: bool = False, node_limit: int | None = None) -> CapResult:
    """Solve a capacitated siting model exactly (see the module docstring).

    Parameters
    ----------
    pairs : sparse matrix (demand x candidate); a stored entry = may be served, its value the cost
        (travel minutes + 1 in the pipeline; any positive number otherwise; used by the p-median)
    weights : demand (households) per row, floats
    capacity : per candidate (``inf``: unlimited)
    kind : "lscp" | "mclp" | "pmedian"
    p : new stations (mclp) or all open stations (pmedian)
    target_weight : lscp only: assigned weight to reach (None: all reachable demand)
    sites : forced and closable columns (``Sites.of``)
    single_source : each demand row served by one station
    fill_forced : forced stations serve exactly their capacity (spopt's ``fulfill_predefined_fac``)
    node_limit : branch-and-bound nodes (deterministic; None: ``siting_mip.node_limit_for`` the model)

    Returns
    -------
    CapResult

    Raises
    ------
    CapacityInfeasible
        When the solver proves the model infeasible (e.g. capacity short of the demand).
    """
    t0 = time.perf_counter()
    pairs = sparse.csr_matrix(pairs, dtype=float)
    pairs.eliminate_zeros()
    w = np.asarray(weights, float)
    n, m = pairs.shape
    cap = np.asarray(capacity, float)
    _validate(kind, n, m, cap, p)
    sites = sites or Sites.of(m)
    live = np.flatnonzero((np.diff(pairs.indptr) > 0) & (w > 0))
    mg = _merge(pairs, w, live, by_cost=kind == "pmedian", merge=not single_source)
    P, nr = mg.pairs.nnz, mg.pairs.shape[0]
    new = sites.new_mask(m)
    blocks, _ = _rows(mg, cap, m, link=P <= LINK_MAX_PAIRS)
    A_cnt, lo_cnt, hi_cnt = _count_rows(kind, m, P, new, sites, p, target_weight, mg, float(w.sum()))
    full = kind == "pmedian" or (kind == "lscp" and target_weight is None)
    nrow = [b.shape[0] for b in blocks]
    lo = np.r_[np.ones(nr) if full else np.zeros(nr), np.full(nrow[1], -np.inf),
               np.full(sum(nrow[2:]), -np.inf), lo_cnt]
    hi = np.r_[np.ones(nr), np.zeros(nrow[1]), np.zeros(sum(nrow[2:])), hi_cnt]
    A = sparse.vstack(blocks + [A_cnt], format="csr")
    if fill_forced and len(sites.forced):
        A, lo, hi = _fill_rows(A, lo, hi, mg, cap, sites.forced, m)
    lb, ub = np.zeros(m + P), np.ones(m + P)
    lb[sites.forced] = 1.0
    integ = np.r_[np.ones(m), np.full(P, 1 if single_source else 0)]
    c, const = _objective(kind, mg, m, new, sites)
    scale = float(np.abs(c).max()) or 1.0
    sol = mip.solve(c / scale, A, lo, hi, integ, lb, ub, maximize=kind == "mclp",
                    node_limit=node_limit or mip.node_limit_for(A.nnz))
    if sol.x is None:
        if sol.status == "INFEASIBLE":
            raise CapacityInfeasible(f"capacitated {kind}: no assignment respects the capacities and counts "
                                     "(the solver proved the model infeasible)")
        raise CapacityInfeasible(f"capacitated {kind}: no solution found within the node limit ({sol.status})")
    return _result(sol, kind, mg, pairs, w, cap, sites, scale, const, m, t0)


def _fill_rows(A, lo, hi, mg, cap, forced, m):
    """Rows: each forced station's load equals its capacity."""
    P = mg.pairs.nnz
    sel = np.isin(mg.pairs.col, forced)
    idx = {int(j): k for k, j in enumerate(forced)}
    r = np.array([idx[int(j)] for j in mg.pairs.col[sel]], dtype=np.int64)
    F = sparse.csr_matrix((mg.w[mg.pairs.row[sel]] / cap[mg.pairs.col[sel]], (r, m + np.flatnonzero(sel))),
                          shape=(len(forced), m + P))
    return sparse.vstack([A, F], format="csr"), np.r_[lo, np.ones(len(forced))], np.r_[hi, np.ones(len(forced))]


def _result(sol, kind, mg, pairs, w, cap, sites, scale, const, m, t0) -> CapResult:
    """Recount the loads and the objective from the solver's assignment."""
    n = pairs.shape[0]
    y = mip.binary(sol.x[:m])
    x = np.clip(sol.x[m:], 0.0, 1.0)
    x = np.where(x > 1e-9, x, 0.0)
    flow = _expand(mg, x, w, n, m)
    load = np.asarray(flow.sum(axis=0)).ravel()
    over = np.isfinite(cap) & (load > cap * (1 + CAP_TOL) + CAP_TOL)
    notes = [f"{int(over.sum())} station(s) above capacity by solver tolerance"] if over.any() else []
    open_ = np.flatnonzero(y).astype(np.int64)
    closed = np.setdiff1d(sites.closable, open_).astype(np.int64)
    obj, bound = _recount(kind, sol, mg, x, y, sites, flow, pairs, scale, const)
    gap = 0.0 if sol.status == "OPTIMAL" else float(sol.gap)
    return CapResult(open=open_, flow=flow, load=load, capacity=cap, assigned_weight=float(load.sum()),
                     total_weight=float(w[w > 0].sum()), objective=obj, bound=bound, gap=gap, status=sol.status,
                     model=f"capacitated_{kind}", closed=closed, nodes=sol.nodes,
                     time_s=time.perf_counter() - t0, notes=notes)


def _expand(mg: _Merged, x: np.ndarray, w: np.ndarray, n: int, m: int) -> sparse.csr_matrix:
    """Flows of the merged rows' pairs spread back over their member rows (weight x fraction)."""
    k = np.flatnonzero(x > 0)
    if not len(k):
        return sparse.csr_matrix((n, m))
    sizes = np.fromiter((len(g) for g in mg.rows), dtype=np.int64, count=len(mg.rows))
    members = np.concatenate(mg.rows)
    start = np.r_[0, np.cumsum(sizes)[:-1]]
    r = mg.pairs.row[k]
    reps = sizes[r]
    pos = np.repeat(start[r] - np.r_[0, np.cumsum(reps)[:-1]], reps) + np.arange(reps.sum())
    rows = members[pos]
    return sparse.csr_matrix((np.repeat(x[k], reps) * w[rows], (rows, np.repeat(mg.pairs.col[k], reps))),
                             shape=(n, m))


def _recount(kind, sol, mg, x, y, sites, flow, pairs, scale, const):
    """Recount the objective in the caller's units, and the solver's bound in the same units."""
    bound = sol.bound * scale + const if np.isfinite(sol.bound) else float("nan")
    if kind == "lscp":
        new = sites.new_mask(len(y))
        kept = y[sites.closable]
        obj = float(y[new].sum()) + float(kept.sum()) + sites.close_cost * float((~kept).sum())
        if (sites.close_cost == 0 or not len(sites.closable)) and np.isfinite(bound):
            bound = float(np.ceil(bound - 1e-6))           # counts stations: an integer
    elif kind == "mclp":
        obj = float(flow.sum())
    else:
        f = flow.tocoo()
        obj = float((f.data * np.asarray(pairs[f.row, f.col]).ravel()).sum())
    if sol.status == "OPTIMAL":
        bound = obj
    return obj, bound
