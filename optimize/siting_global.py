"""The province-wide covering model over the counties' reduced problems: a true bound.

Each county hands back its reduced covering problem (demand rows merged, forced sites' coverage
taken out — ``siting_models.reduce``). Side by side they form one block-diagonal covering model; one
coverage row couples them: the fewest new sites whose covered weight, with every county's forced
(existing) sites, reaches the province's target. HiGHS solves it with zero gaps and a node limit
(``siting_models.min_cover``); its dual bound is a bound on the province's fewest stations whether
or not the search closes — the sum of county bounds is not (counties could trade coverage).

The answer is also an allocation: the weight it covers in each county becomes that county's target;
re-solving each county exactly for it gives at most as many stations (used by ``optimize.regions``
when it beats the county-by-county allocation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from gridplan.optimize import siting_models as sm

MAX_NNZ = 150_000        # reduced (row, site) pairs over all counties for the province-wide model


@dataclass(frozen=True)
class ProvinceCover:
    """Hold the province-wide model's answer.

    The province-wide model's answer: new sites in its solution, the solver's bound on the fewest
    new sites, status, and each county's covered weight (forced sites' coverage included).
    """

    new_sites: int
    bound: int
    status: str
    county_cover: dict
    nodes: int


def province_cover(reds: dict, target_weight: float, total_weight: float,
                   node_limit: int | None = None) -> ProvinceCover | None:
    """Solve for the fewest new sites province-wide.

    Fewest new sites over all counties reaching ``target_weight`` (None when the model is larger
    than ``MAX_NNZ`` pairs). ``reds`` maps county code → ``siting_models.Reduced``.
    """
    codes = sorted(reds)
    if sum(reds[c].cov.nnz for c in codes) > MAX_NNZ:
        return None
    base = {c: reds[c].base for c in codes}
    need = target_weight - sum(base.values())
    if need <= sm.REL_EPS * total_weight:
        return ProvinceCover(0, 0, "TRIVIAL", base, 0)
    cov = sparse.block_diag([reds[c].cov.astype(float) for c in codes], format="csr")
    w = np.concatenate([reds[c].w for c in codes]) if codes else np.zeros(0)
    # the slack on the target is the province's, not that of the blocks' weight
    need = max(need - sm.REL_EPS * total_weight, 0.0)
    try:
        r = sm.min_cover(cov, w, target_weight=need, node_limit=node_limit)
    except sm.Infeasible:
        return None
    if r.covered_weight < need:          # the target lies beyond what the candidates reach
        return None
    offsets = np.cumsum([0] + [reds[c].cov.shape[1] for c in codes])
    cover = {}
    for k, c in enumerate(codes):
        mine = r.open[(r.open >= offsets[k]) & (r.open < offsets[k + 1])] - offsets[k]
        cover[c] = base[c] + sm.covered_weight(reds[c], mine)
    return ProvinceCover(int(r.objective), int(r.bound), r.status, cover, r.nodes)
