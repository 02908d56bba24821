"""One MIP call for the siting models: HiGHS (through ``scipy.optimize.milp``), exact and deterministic.

Why HiGHS here, and how it is set:

* **exact** — the relative and the absolute MIP gap are both set to 0, so "optimal" means the search
  tree is closed: the solver's dual bound equals the incumbent. The bound and the gap we report are
  HiGHS's own (``mip_dual_bound``, ``mip_gap``), never a figure derived from the status word. (CBC
  through OR-Tools stopped at its default 1e-4 relative gap and still said OPTIMAL.)
* **float weights** — the models take weights as they are (no scaling to integers); the callers
  divide the objective by its largest coefficient so that the solver's absolute tolerances mean the
  same thing whatever the weights' unit (×1e-8 … ×1e3 give the same model up to rounding).
* **deterministic** — HiGHS's branch and bound is deterministic for a fixed input, seed and thread
  count; the only limit is a node count (``node_limit``), never wall-clock time, so the answer does
  not depend on the machine's load (``node_limit_for``: fewer nodes for larger models, so a node
  budget is roughly a work budget). When the node limit stops the search, the incumbent is returned
  with status FEASIBLE and the solver's bound and gap.

scipy passes options it does not know (``mip_abs_gap``, ``random_seed``, ...) to HiGHS verbatim, with
a RuntimeWarning that we silence.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

NODE_LIMIT = 50_000          # most branch-and-bound nodes per model (deterministic)
WORK_LIMIT = 20_000_000      # nodes x nonzeros of the model: larger models get fewer nodes


def node_limit_for(nnz: int) -> int:
    """Return the node limit for a model with ``nnz`` nonzeros.

    The node limit for a model with ``nnz`` nonzeros: ``WORK_LIMIT / nnz`` within [10, NODE_LIMIT]
    — a budget of work that depends on the input only, never on the machine's speed or load.
    """
    return int(max(10, min(NODE_LIMIT, WORK_LIMIT // max(int(nnz), 1))))


@dataclass(frozen=True)
class MipSolution:
    """Hold what one solve proved.

    What one solve proved: the incumbent ``x`` (None if none), its objective and the solver's
    dual bound in the caller's sense (maximisation or minimisation), the solver's relative gap, the
    status (OPTIMAL | FEASIBLE | INFEASIBLE | NO_SOLUTION) and the nodes explored.
    """

    x: np.ndarray | None
    objective: float
    bound: float
    gap: float
    status: str
    nodes: int


def solve(c: np.ndarray, A: sparse.spmatrix, row_lb: np.ndarray, row_ub: np.ndarray,
          integrality: np.ndarray, lb: np.ndarray, ub: np.ndarray, maximize: bool = False,
          node_limit: int = NODE_LIMIT) -> MipSolution:
    """Solve ``min/max c·x`` subject to ``row_lb <= A x <= row_ub``, ``lb <= x <= ub``.

    Parameters
    ----------
    c, A, row_lb, row_ub, integrality, lb, ub
        The model, as ``scipy.optimize.milp`` takes it (``integrality`` 1 for integer variables).
    maximize
        Maximise ``c·x`` (the objective and bound are returned in that sense).
    node_limit
        Branch-and-bound nodes before the search stops (a deterministic limit).

    Returns
    -------
    MipSolution
    """
    c = np.asarray(c, float)
    sign = -1.0 if maximize else 1.0
    cons = [LinearConstraint(sparse.csr_matrix(A), row_lb, row_ub)] if A.shape[0] else []
    opts = {"disp": False, "node_limit": int(node_limit), "mip_rel_gap": 0.0, "mip_abs_gap": 0.0,
            "random_seed": 0, "presolve": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = milp(sign * c, integrality=np.asarray(integrality), bounds=Bounds(lb, ub), constraints=cons,
                   options=opts)
    nodes = int(res.get("mip_node_count") or 0)
    if res.status == 2:
        return MipSolution(None, float("nan"), float("nan"), float("inf"), "INFEASIBLE", nodes)
    dual = res.get("mip_dual_bound")
    bound = sign * float(dual) if dual is not None and np.isfinite(dual) else sign * -np.inf
    if res.x is None:
        return MipSolution(None, float("nan"), bound, float("inf"), "NO_SOLUTION", nodes)
    obj = sign * float(res.fun)
    gap = float(res.get("mip_gap") if res.get("mip_gap") is not None else np.inf)
    status = "OPTIMAL" if res.status == 0 else "FEASIBLE"
    if status == "OPTIMAL":
        gap = max(gap, 0.0)
    return MipSolution(np.asarray(res.x, float), obj, bound, gap, status, nodes)


def binary(x: np.ndarray) -> np.ndarray:
    """Return a solver's values of 0/1 variables as booleans (integrality tolerance aside)."""
    return np.asarray(x) > 0.5
