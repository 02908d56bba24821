"""The plan's siting beyond coverage: capacities, closures and moves, p-center, backup coverage.

``site_stations`` (``optimize.siting``) hands the model stage here when the options ask for more
than the covering models: a ``siting_model`` (lscp | mclp | pmedian | pcenter | backup), station
capacities (a facilities ``capacity`` column, or ``default_capacity`` for every station without
one), or closures (``allow_close``, ``max_close``, ``max_move``). The models:

* capacitated LSCP/MCLP, split assignment with integral households: cut-set decomposition
  (``optimize.siting_capcuts``); single-sourced or fractional weights, and every p-median: the pair
  model (``optimize.siting_capacity``);
* uncapacitated LSCP/MCLP with closures: the same cut-set master with unlimited capacities (a
  covering model whose existing stations may close);
* p-center and backup coverage: ``optimize.siting_center``.

Every answer carries the solver's status, bound and gap (deterministic node and round limits).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from gridplan.optimize import siting_capacity as sc, siting_capcuts as cc, siting_center as ce, siting_models as sm

PCENTER_HORIZON = 4.0        # p-center: stations up to this many times the service minutes may serve


@dataclass
class Extended:
    """Hold what the extended model stage decided.

    ``open``/``closed`` candidate rows, ``assign`` each household's serving candidate row (-1 none;
    None when households go to their nearest station), ``load`` and ``capacity`` per candidate row,
    ``moves`` (closed row, new row) pairs, the solver's ``status``/``bound``/``gap``/``nodes``.
    """

    open: np.ndarray
    model: str
    status: str
    bound: float | None
    gap: float
    nodes: int
    capacity: np.ndarray
    assign: np.ndarray | None = None
    load: np.ndarray | None = None
    closed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    moves: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    objective: float | None = None
    served: np.ndarray | None = None      # households served per household point (capacitated)


def capacities(cands, options) -> np.ndarray | None:
    """Capacity per candidate row (inf: unlimited), or None when the siting is not capacitated."""
    given = cands.fac_capacity is not None and np.isfinite(cands.fac_capacity).any()
    if options.default_capacity is None and not given:
        return None
    default = float(options.default_capacity) if options.default_capacity is not None else np.inf
    cap = np.full(len(cands), default)
    if cands.fac_capacity is not None:
        fc = cands.fac_capacity
        cap[:len(fc)] = np.where(np.isfinite(fc), fc, default)
    return cap


def wants_extended(options, cands) -> bool:
    """Return whether the options ask for more than the covering models (see the module docstring)."""
    closing = options.allow_close or options.max_close is not None or options.max_move is not None
    return (options.siting_model in ("pmedian", "pcenter", "backup") or capacities(cands, options) is not None
            or closing)


def _sites(cands, options, notes: list) -> sc.Sites:
    """Return the forced (existing, kept) and closable (existing, may close) candidate rows."""
    m, existing = len(cands), cands.forced
    closing = options.allow_close or options.max_close is not None or options.max_move is not None
    if not closing:
        return sc.Sites.of(m, forced=existing)
    cap = None
    if options.max_close is not None or options.max_move is not None:
        cap = int(options.max_close or 0) + int(options.max_move or 0)
    return sc.Sites.of(m, closable=existing, close_cost=float(options.close_cost), max_close=cap,
                       moves=options.max_move is not None and options.max_move > 0)


def _model_name(options) -> str:
    if options.siting_model:
        return options.siting_model
    return "mclp" if options.max_stations is not None and options.coverage_target is None else "lscp"


def solve_extended(cov: sparse.csr_matrix, w: np.ndarray, cands, options, node_limit: int | None = None,
                   far: sparse.csr_matrix | None = None) -> Extended:
    """Run the model the options ask for on the coverage pairs (minutes + 1 stored).

    Parameters
    ----------
    cov : household x candidate, minutes + 1 for pairs within ``options.minutes``
    w : households per row (0 where unusable)
    cands : ``siting_candidates.Candidates``
    options : ``PlanOptions``
    node_limit : branch-and-bound nodes per MIP (deterministic)
    far : p-center only: pairs within ``PCENTER_HORIZON`` x the minutes (default ``cov``)

    Returns
    -------
    Extended
    """
    notes: list[str] = []
    model, cap = _model_name(options), capacities(cands, options)
    m = len(cands)
    P = options.max_stations
    if model == "pcenter":
        return _pcenter(far if far is not None else cov, w, cands, options, node_limit, notes)
    if model == "backup":
        return _backup(cov, w, cands, options, node_limit, notes)
    sites = _sites(cands, options, notes)
    capx = cap if cap is not None else np.full(m, np.inf)
    if model in ("mclp", "pmedian") and P is None:
        raise sm.Infeasible(f"the {model} model needs max_stations (the new stations allowed)")
    if model == "pmedian":
        r = sc.capacitated(cov, w, capx, kind="pmedian", p=int(P) + len(cands.forced), sites=sites,
                           single_source=options.single_source or cap is None, node_limit=node_limit)
    else:
        kind = "mclp" if model == "mclp" else "lscp"
        target = None if kind == "mclp" or options.coverage_target is None else options.coverage_target * w.sum()
        use_cuts = not options.single_source and cc.integral(w, capx[np.isfinite(capx)])
        solve = cc.cut_capacitated if use_cuts else sc.capacitated
        extra = {} if use_cuts else {"single_source": options.single_source}
        r = solve(cov, w, capx, kind=kind, p=None if P is None else int(P), target_weight=target, sites=sites,
                  node_limit=node_limit, **extra)
    notes += r.notes
    moves = _moves(cands, r.open, r.closed, options.max_move)
    bound = float(r.bound) + (len(sites.forced) if model == "lscp" else 0)   # lscp: stations in all
    return Extended(open=r.open, model=r.model if cap is not None else model, status=r.status,
                    bound=bound, gap=float(r.gap), nodes=int(r.nodes), capacity=capx,
                    assign=r.main_station() if cap is not None or model == "pmedian" else None, load=r.load,
                    closed=r.closed, moves=moves, notes=notes, objective=float(r.objective),
                    served=np.asarray(r.flow.sum(axis=1)).ravel() if cap is not None else None)


def _moves(cands, open_, closed, max_move) -> list[tuple[int, int]]:
    """Pair closed stations with the nearest new ones (relocations), at most ``max_move``."""
    if not max_move or not len(closed):
        return []
    new = [int(j) for j in open_ if j >= cands.n_facilities or not cands.fac_existing[j]]
    pairs = []
    for c in closed:
        if len(pairs) >= max_move or not new:
            break
        d = np.hypot(*(cands.xy[new] - cands.xy[c]).T)
        k = int(np.argmin(d))
        pairs.append((int(c), new.pop(k)))
    return pairs


def _pcenter(cov, w, cands, options, node_limit, notes) -> Extended:
    """p-center over the households some candidate reaches within the horizon."""
    if options.max_stations is None:
        raise sm.Infeasible("the pcenter model needs max_stations (the new stations allowed)")
    cov = sparse.csr_matrix(cov)
    rows = np.flatnonzero((np.diff(cov.indptr) > 0) & (w > 0))
    if len(rows) < int((w > 0).sum()):
        notes.append(f"p-center: {int((w > 0).sum()) - len(rows)} household point(s) beyond "
                     f"{PCENTER_HORIZON:g} x {options.minutes:g} min of every candidate left out")
    vals = cov[rows].copy()
    vals.data = vals.data - 1.0                                      # minutes
    p = int(options.max_stations) + len(cands.forced)
    r = ce.p_center(vals, p, weights=w[rows] if options.center_weighted else None, forced=cands.forced,
                    node_limit=node_limit)
    notes += r.notes
    return Extended(open=r.open, model="pcenter", status=r.status, bound=r.bound, gap=r.gap, nodes=r.nodes,
                    capacity=np.full(len(cands), np.inf), notes=notes, objective=r.objective)


def _backup(cov, w, cands, options, node_limit, notes) -> Extended:
    """LSCP-B: fewest stations covering every coverable household, then the most covered twice."""
    n_sites = None if options.max_stations is None else int(options.max_stations) + len(cands.forced)
    r, double = ce.backup_cover(cov, w, forced=cands.forced, n_sites=n_sites, node_limit=node_limit)
    notes += r.notes
    return Extended(open=r.open, model="backup", status=r.status, bound=r.bound, gap=r.gap, nodes=r.nodes,
                    capacity=np.full(len(cands), np.inf), notes=notes, objective=double)
