"""One CP-SAT round of the cell model: the capacitated p-median assignment for fixed centers.

``cpsat_round`` builds the model of ``optimize.cellmodel``'s step 3 for one set of centers

  lexicographic min (D, Σ c_ij x_ij)
  s.t. Σ_j x_ij = 1;  x_cj,j = 1;  lo − D ≤ Σ_i h_i x_ij ≤ hi + D
       x_ij ≤ Σ_{l ∈ N(i), d_j(l) < d_j(i)} x_lj          (Zoltners–Sinha contiguity)

with x restricted to each node's ``CANDIDATES`` nearest centers along the graph, and solves it
in two phases (D exactly, then compactness within ``RELATIVE_GAP``) under a deterministic time
limit with one worker and a fixed seed.
"""
from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

# CP-SAT deterministic time units per second of options.time_limit_per_unit:
# max_deterministic_time = DTIME_PER_SECOND * options.time_limit_per_unit (over all rounds).
DTIME_PER_SECOND = 0.5
CANDIDATES = 5            # nearest centers (along the graph) a node may join
RELATIVE_GAP = 0.01       # stop a CP-SAT round within 1% of the proven bound


def _allowed_pairs(D: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Return the (k, n) mask of center-node pairs the model may use.

    Each node may join its ``CANDIDATES`` nearest centers and its hinted one, never a center it
    cannot reach.
    """
    k, n = D.shape
    finite = np.isfinite(D)
    m_cand = min(k, CANDIDATES)
    Dm = np.where(finite, D, np.inf)
    near = np.argsort(Dm, axis=0, kind="stable")[:m_cand]       # (m, n) nearest centers of each node
    allowed = np.zeros((k, n), dtype=bool)
    cols = np.arange(n)
    for r in range(m_cand):
        allowed[near[r], cols] = True
    allowed &= finite
    allowed[hint, cols] = True & finite[hint, cols]
    return allowed


def _assignment_vars(model, nbrs, centers, D: np.ndarray, allowed: np.ndarray) -> dict:
    """Create x[i, j] (node i in grid j) for allowed pairs, each needing a closer neighbour in j.

    Nodes are visited by distance from each center, so a node's predecessors exist before it;
    a node with no allowed predecessor gets no variable for that grid.
    """
    x: dict[tuple[int, int], cp_model.IntVar] = {}
    for j in range(len(centers)):
        order = np.argsort(D[j], kind="stable")
        for i in order:
            i = int(i)
            if not allowed[j, i]:
                continue
            if i == centers[j]:
                x[i, j] = model.NewBoolVar(f"x{i}_{j}")
                continue
            pred = [x[l, j] for l in nbrs[i] if D[j, l] < D[j, i] and (int(l), j) in x]
            if not pred:
                continue
            v = model.NewBoolVar(f"x{i}_{j}")
            x[i, j] = v
            model.Add(v <= sum(pred)) if len(pred) > 1 else model.AddImplication(v, pred[0])
    return x


def _add_balance(model, x: dict, hh: np.ndarray, k: int, lo: int, hi: int):
    """Bound each grid's households to [lo - dev, hi + dev] and return the excess ``dev``."""
    H = int(hh.sum())
    dev = model.NewIntVar(0, H, "dev")
    for j in range(k):
        terms = [(int(hh[i]), x[i, jj]) for (i, jj) in x if jj == j and hh[i] > 0]
        s = sum(c * v for c, v in terms) if terms else 0
        model.Add(s >= lo - dev)
        model.Add(s <= hi + dev)
    return dev


def _compactness(g, x: dict, centers, w: np.ndarray, L2: float):
    """Return the moment-of-inertia objective: weighted squared distance to the centers, scaled."""
    cen_xy = g.centroid[centers]
    scale = 1e6
    cost = {}
    for (i, j) in x:
        d2 = float(((g.centroid[i] - cen_xy[j]) ** 2).sum()) / L2
        cost[i, j] = int(round(scale * w[i] * d2))
    return sum(c * x[key] for key, c in cost.items() if c)


def _add_hint(model, x: dict, dev, hint: np.ndarray, hh: np.ndarray, k: int, lo: int, hi: int):
    """Hint the model with ``hint`` when every hinted pair exists; return the hint's excess or None."""
    n = len(hint)
    if not all((int(i), int(hint[i])) in x for i in range(n)):
        return None
    for (i, j), v in x.items():
        model.AddHint(v, int(hint[i] == j))
    gh = np.bincount(hint, weights=hh, minlength=k)
    hint_excess = int(max(0, np.max(np.maximum(lo - gh, gh - hi))))
    model.AddHint(dev, hint_excess)
    return hint_excess


def _solve_lexicographic(model, x: dict, dev, compact, hint_excess, dtime, seed):
    """Minimise ``dev`` exactly, then ``compact`` at that deviation, within ``dtime``.

    Phase 1 is skipped when the hint already has no excess. Returns (solver, status, spent
    deterministic time), or None when a phase found no solution.
    """
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.num_workers = 1
    p.random_seed = int(seed)
    p.max_time_in_seconds = 20.0 * float(dtime) / DTIME_PER_SECOND + 10.0    # a hung solver's net only
    spent = 0.0
    if hint_excess is None or hint_excess > 0:
        # phase 1: the smallest excess deviation (lexicographic first objective), solved exactly
        model.Minimize(dev)
        p.max_deterministic_time = float(dtime) / 2
        p.relative_gap_limit = 0.0
        st = solver.Solve(model)
        spent += solver.deterministic_time
        if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        best_dev = int(solver.Value(dev))
        model.ClearHints()
        for (i, j), v in x.items():
            model.AddHint(v, int(solver.BooleanValue(v)))
        model.Add(dev <= best_dev)
    # phase 2: the most compact assignment at that deviation
    model.Minimize(compact)
    p.max_deterministic_time = max(0.01, float(dtime) - spent)
    p.relative_gap_limit = RELATIVE_GAP
    st = solver.Solve(model)
    spent += solver.deterministic_time
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return solver, st, spent


def cpsat_round(g, nbrs, centers, D, w, L2, hh, lo, hi, hint, dtime, seed):
    """Run one CP-SAT assignment of the cell graph's nodes to fixed centers.

    Returns (labels, "optimal" | "feasible", deterministic time spent), or None when no
    solution was found.
    """
    n, k = g.n, len(centers)
    allowed = _allowed_pairs(D, hint)
    model = cp_model.CpModel()
    x = _assignment_vars(model, nbrs, centers, D, allowed)
    per_node: list[list] = [[] for _ in range(n)]
    for (i, j), v in x.items():
        per_node[i].append((j, v))
    if any(not p for p in per_node):
        return None
    for i in range(n):
        model.AddExactlyOne(v for _, v in per_node[i])
    for j, c in enumerate(centers):
        model.Add(x[int(c), j] == 1)
    dev = _add_balance(model, x, hh, k, lo, hi)
    compact = _compactness(g, x, centers, w, L2)
    hint_excess = _add_hint(model, x, dev, hint, hh, k, lo, hi)
    solved = _solve_lexicographic(model, x, dev, compact, hint_excess, dtime, seed)
    if solved is None:
        return None
    solver, st, spent = solved
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        for j, v in per_node[i]:
            if solver.BooleanValue(v):
                labels[i] = j
                break
    status = "optimal" if st == cp_model.OPTIMAL else "feasible"
    return labels, status, float(spent)
