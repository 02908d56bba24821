"""spopt-style classes over gridplan's exact siting models, so spopt users move over easily.

Each class has spopt's constructors (``from_cost_matrix``, ``from_geodataframe``) and a ``solve()``
returning the object with the attributes spopt users read: ``fac2cli``/``cli2fac`` (lists of
indices), ``problem.objective.value()``, ``problem.status`` (1 when proven optimal, as pulp's
``LpStatusOptimal``), and per model ``mean_dist`` (p-median), ``perc_cov``/``n_cli_uncov`` (MCLP),
``backup_perc`` (LSCP-B). ``problem`` also carries what spopt does not say: ``status_word``
(OPTIMAL | FEASIBLE from HiGHS), ``bound`` and ``gap``. No solver argument: HiGHS with zero gaps
and a node limit is used throughout (deterministic). The models are built on sparse pairs within
reach, so instances far beyond a dense pulp model's reach solve in seconds.

    >>> from gridplan.optimize.siting_api import PCenter
    >>> PCenter.from_cost_matrix([[1.0, 4.0], [3.0, 1.0]], p_facilities=1).solve().problem.objective.value()
    3.0
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.spatial.distance import cdist

from gridplan.optimize import siting_capacity as sc, siting_center as ce, siting_models as sm

__all__ = ["LSCP", "MCLP", "PMedian", "PCenter", "LSCPB", "PDispersion"]


class _Value:
    def __init__(self, v: float):
        self._v = float(v)

    def value(self) -> float:
        """Return the objective's value (pulp's ``objective.value()``)."""
        return self._v


@dataclass
class Problem:
    """What the solve proved: ``objective.value()``, ``status`` (1 optimal, as pulp), ``status_word``, ``bound``, ``gap``."""

    objective: _Value
    status: int
    status_word: str
    bound: float
    gap: float


def _problem(obj: float, status: str, bound: float, gap: float) -> Problem:
    return Problem(_Value(obj), 1 if status in ("OPTIMAL", "TRIVIAL") else 0, status, float(bound), float(gap))


def _points(gdf, col: str) -> np.ndarray:
    geom = gdf[col]
    if not (geom.geom_type == "Point").all():
        geom = geom.centroid
    return np.column_stack([geom.x.to_numpy(), geom.y.to_numpy()])


def _geo_cost(gdf_demand, gdf_fac, demand_col, facility_col, metric) -> np.ndarray:
    if gdf_demand.crs != gdf_fac.crs:
        raise ValueError(f"Geodataframes crs are different: gdf_demand-{gdf_demand.crs}, gdf_fac-{gdf_fac.crs}")
    return cdist(_points(gdf_demand, demand_col), _points(gdf_fac, facility_col), metric)


def _predefined(arr, m: int) -> np.ndarray:
    """Read spopt's predefined facilities: indices, or a 0/1 array of one entry per facility."""
    if arr is None:
        return np.zeros(0, np.int64)
    a = np.asarray(arr).squeeze()
    if a.ndim == 1 and len(a) == m and set(np.unique(a).tolist()) <= {0, 1}:
        return np.flatnonzero(a).astype(np.int64)
    return np.asarray(a, np.int64).ravel()


class _Base:
    """Common results: ``fac2cli`` from a facility→client relation, ``cli2fac`` its transpose."""

    def __init__(self, name: str, cost: np.ndarray):
        self.name = name
        self.cost = np.asarray(cost, float)
        self.aij = self.cost

    def _set_lists(self, rel: sparse.spmatrix, results: bool) -> None:
        if not results:
            return
        rel = sparse.csc_matrix(rel, dtype=bool)
        rel.eliminate_zeros()
        self.fac2cli = [rel.indices[rel.indptr[j]:rel.indptr[j + 1]].tolist() for j in range(rel.shape[1])]
        csr = rel.tocsr()
        self.cli2fac = [csr.indices[csr.indptr[i]:csr.indptr[i + 1]].tolist() for i in range(rel.shape[0])]


class LSCP(_Base):
    """Location set covering, capacitated (CLSCP) when capacities are given (split assignment)."""

    @classmethod
    def from_cost_matrix(cls, cost_matrix, service_radius: float, predefined_facilities_arr=None,
                         demand_quantity_arr=None, facility_capacity_arr=None, single_source: bool = False,
                         name: str = "lscp") -> "LSCP":
        """Build from a (client x facility) cost matrix, as spopt's ``LSCP.from_cost_matrix``."""
        self = cls(name, cost_matrix)
        m = self.cost.shape[1]
        if demand_quantity_arr is not None and facility_capacity_arr is None:
            raise ValueError("Demand quantities supplied with no facility capacities.")
        self.within = self.cost <= service_radius
        self.demand = (np.ones(len(self.cost)) if demand_quantity_arr is None
                       else np.asarray(demand_quantity_arr, float))
        self.capacity = None if facility_capacity_arr is None else np.asarray(facility_capacity_arr, float)
        if self.capacity is not None and self.demand.sum() > self.capacity.sum():
            raise ValueError(f"Infeasible model. Demand greater than capacity "
                             f"({self.demand.sum()} > {self.capacity.sum()}).")
        self.forced = _predefined(predefined_facilities_arr, m)
        self.single_source = single_source
        return self

    @classmethod
    def from_geodataframe(cls, gdf_demand, gdf_fac, demand_col: str, facility_col: str, service_radius: float,
                          predefined_facility_col: str | None = None, demand_quantity_col: str | None = None,
                          facility_capacity_col: str | None = None, distance_metric: str = "euclidean",
                          name: str = "lscp") -> "LSCP":
        """Build from demand and facility points (euclidean or another ``cdist`` metric)."""
        return cls.from_cost_matrix(
            _geo_cost(gdf_demand, gdf_fac, demand_col, facility_col, distance_metric), service_radius,
            gdf_fac[predefined_facility_col].to_numpy() if predefined_facility_col else None,
            gdf_demand[demand_quantity_col].to_numpy() if demand_quantity_col else None,
            gdf_fac[facility_capacity_col].to_numpy() if facility_capacity_col else None, name=name)

    def solve(self, results: bool = True) -> "LSCP":
        """Solve exactly; raises ``ValueError`` subclasses when infeasible."""
        cov = sparse.csr_matrix(self.within)
        unreached = int(((np.diff(cov.indptr) == 0) & (self.demand > 0)).sum())
        if unreached:
            raise sm.Infeasible(f"set covering is infeasible: {unreached} client(s) have no facility within reach")
        if self.capacity is None:
            r = sm.min_cover(cov, np.ones(cov.shape[0]), forced=self.forced)
            self.problem = _problem(len(r.open), r.status, r.bound + len(self.forced), r.gap)
            self.assignment = None
        else:
            r = sc.capacitated(sparse.csr_matrix(np.where(self.within, self.cost + 1.0, 0.0)), self.demand,
                               self.capacity, kind="lscp", sites=sc.Sites.of(cov.shape[1], forced=self.forced),
                               single_source=self.single_source)
            self.problem = _problem(len(r.open), r.status, r.bound + len(self.forced), r.gap)
            self.assignment = r.flow
        self.open = r.open
        self._set_lists(cov.multiply(np.isin(np.arange(cov.shape[1]), r.open)[None, :]), results)
        return self


class MCLP(_Base):
    """Maximal covering (``p_facilities`` sites), capacitated when capacities are given (split assignment)."""

    @classmethod
    def from_cost_matrix(cls, cost_matrix, weights, service_radius: float, p_facilities: int,
                         predefined_facilities_arr=None, facility_capacity_arr=None, single_source: bool = False,
                         name: str = "mclp") -> "MCLP":
        """Build from a cost matrix and client weights, as spopt's ``MCLP.from_cost_matrix``."""
        self = cls(name, cost_matrix)
        self.within, self.w = self.cost <= service_radius, np.asarray(weights, float).ravel()
        self.p, self.forced = int(p_facilities), _predefined(predefined_facilities_arr, self.cost.shape[1])
        self.capacity = None if facility_capacity_arr is None else np.asarray(facility_capacity_arr, float)
        self.single_source = single_source
        return self

    def solve(self, results: bool = True) -> "MCLP":
        """Solve exactly; ``perc_cov``/``n_cli_uncov`` count clients covered (assigned, when capacitated)."""
        cov = sparse.csr_matrix(self.within)
        p_new = self.p - len(self.forced)
        if self.capacity is None:
            r = sm.max_cover(cov, self.w, p_new, forced=self.forced)
            self.problem, hit = _problem(r.objective, r.status, r.bound, r.gap), None
        else:
            r = sc.capacitated(sparse.csr_matrix(np.where(self.within, self.cost + 1.0, 0.0)), self.w,
                               self.capacity, kind="mclp", p=p_new, sites=sc.Sites.of(cov.shape[1], forced=self.forced),
                               single_source=self.single_source)
            self.problem, hit = _problem(r.objective, r.status, r.bound, r.gap), r.flow
        self.open = r.open
        rel = cov.multiply(np.isin(np.arange(cov.shape[1]), r.open)[None, :]) if hit is None else hit
        self._set_lists(rel, results)
        served = np.asarray(sparse.csr_matrix(rel).sum(axis=1)).ravel() > 0
        self.n_cli_uncov = int((~served).sum())
        self.perc_cov = (1 - self.n_cli_uncov / len(served)) * 100.0
        return self


class PMedian(_Base):
    """p-median; capacitated when ``facility_capacities`` are given (single-sourced, as spopt's)."""

    @classmethod
    def from_cost_matrix(cls, cost_matrix, weights, p_facilities: int, predefined_facilities_arr=None,
                         facility_capacities=None, fulfill_predefined_fac: bool = False,
                         single_source: bool = True, name: str = "p-median") -> "PMedian":
        """Build from a cost matrix and weights, as spopt's ``PMedian.from_cost_matrix``."""
        self = cls(name, cost_matrix)
        self.w, self.p = np.asarray(weights, float).ravel(), int(p_facilities)
        self.forced = _predefined(predefined_facilities_arr, self.cost.shape[1])
        self.capacity = None if facility_capacities is None else np.asarray(facility_capacities, float)
        if fulfill_predefined_fac and self.capacity is None:
            raise ValueError("Data on the capacity of the facility is missing, so the model cannot be calculated.")
        if self.capacity is not None and np.sort(self.capacity)[-max(self.p, 1):].sum() < self.w.sum():
            raise ValueError("Problem is infeasible. The highest possible capacity of the p sites is smaller "
                             f"than the total demand {self.w.sum()}.")
        self.fill, self.single_source = fulfill_predefined_fac, single_source
        return self

    @classmethod
    def from_geodataframe(cls, gdf_demand, gdf_fac, demand_col: str, facility_col: str, weights_cols: str,
                          p_facilities: int, facility_capacity_col: str | None = None,
                          predefined_facility_col: str | None = None, fulfill_predefined_fac: bool = False,
                          distance_metric: str = "euclidean", name: str = "p-median") -> "PMedian":
        """Build from demand and facility points."""
        return cls.from_cost_matrix(
            _geo_cost(gdf_demand, gdf_fac, demand_col, facility_col, distance_metric),
            gdf_demand[weights_cols].to_numpy(), p_facilities,
            gdf_fac[predefined_facility_col].to_numpy() if predefined_facility_col else None,
            gdf_fac[facility_capacity_col].to_numpy() if facility_capacity_col else None,
            fulfill_predefined_fac, name=name)

    def solve(self, results: bool = True) -> "PMedian":
        """Solve exactly; ``mean_dist`` is the weighted mean cost of the assignment."""
        n, m = self.cost.shape
        cap = np.full(m, np.inf) if self.capacity is None else self.capacity
        r = sc.capacitated(sparse.csr_matrix(self.cost + 1.0), self.w, cap, kind="pmedian", p=self.p,
                           sites=sc.Sites.of(m, forced=self.forced), fill_forced=self.fill,
                           single_source=self.single_source or self.capacity is None)
        f = r.flow.tocoo()
        total = float((f.data * self.cost[f.row, f.col]).sum())
        bound = r.bound - float(self.w.sum()) if np.isfinite(r.bound) else r.bound   # costs were shifted by 1
        self.problem, self.open, self.assignment = _problem(total, r.status, min(bound, total), r.gap), r.open, r.flow
        self.mean_dist = total / float(self.w.sum())
        self._set_lists(r.flow, results)
        return self


class PCenter(_Base):
    """p-center: the least worst cost (optionally weighted) with ``p_facilities`` sites."""

    @classmethod
    def from_cost_matrix(cls, cost_matrix, p_facilities: int, predefined_facilities_arr=None, weights=None,
                         name: str = "p-center") -> "PCenter":
        """Build from a cost matrix, as spopt's ``PCenter.from_cost_matrix`` (``weights``: gridplan's addition)."""
        self = cls(name, cost_matrix)
        self.p, self.w = int(p_facilities), None if weights is None else np.asarray(weights, float)
        self.forced = _predefined(predefined_facilities_arr, self.cost.shape[1])
        return self

    @classmethod
    def from_geodataframe(cls, gdf_demand, gdf_fac, demand_col: str, facility_col: str, p_facilities: int,
                          predefined_facility_col: str | None = None, distance_metric: str = "euclidean",
                          name: str = "p-center") -> "PCenter":
        """Build from demand and facility points."""
        return cls.from_cost_matrix(_geo_cost(gdf_demand, gdf_fac, demand_col, facility_col, distance_metric),
                                    p_facilities, gdf_fac[predefined_facility_col].to_numpy()
                                    if predefined_facility_col else None, name=name)

    def solve(self, results: bool = True) -> "PCenter":
        """Solve exactly (binary search over the distinct costs)."""
        r = ce.p_center(self.cost, self.p, weights=self.w, forced=self.forced)
        self.problem, self.open = _problem(r.objective, r.status, r.bound, r.gap), r.open
        near = ce.nearest_assignment(self.cost if self.w is None else self.cost * self.w[:, None], r.open)
        n, m = self.cost.shape
        self._set_lists(sparse.csr_matrix((np.ones(n), (np.arange(n), near)), shape=(n, m)), results)
        return self


class LSCPB(_Base):
    """Backup coverage: the LSCP's fewest sites, then the most clients covered twice."""

    @classmethod
    def from_cost_matrix(cls, cost_matrix, service_radius: float, solver=None, predefined_facilities_arr=None,
                         name: str = "lscp-b") -> "LSCPB":
        """Build as spopt's ``LSCPB.from_cost_matrix`` (``solver`` accepted and ignored: HiGHS is used)."""
        self = cls(name, cost_matrix)
        self.within = self.cost <= service_radius
        self.forced = _predefined(predefined_facilities_arr, self.cost.shape[1])
        return self

    def solve(self, results: bool = True) -> "LSCPB":
        """Solve exactly. ``backup_perc`` is spopt's figure, ``double_perc`` the share truly covered twice.

        spopt's LSCP-B leaves a client only one site reaches free in its objective, so such clients
        count as backed up in its ``backup_perc``; ``double_perc`` counts only clients two open
        sites reach. The sites are the same (the difference is a constant).
        """
        cov = sparse.csr_matrix(self.within)
        r, double = ce.backup_cover(cov, forced=self.forced)
        n = cov.shape[0]
        single_reach = float((np.diff(cov.indptr) == 1).sum())
        self.problem, self.open = _problem(double + single_reach, r.status, r.bound + single_reach, r.gap), r.open
        self.backup_perc = (double + single_reach) / n * 100.0
        self.double_perc = double / n * 100.0
        self._set_lists(cov.multiply(np.isin(np.arange(cov.shape[1]), r.open)[None, :]), results)
        return self


class PDispersion:
    """p-dispersion: ``p_facilities`` sites as far from one another as possible."""

    def __init__(self, name: str, cost: np.ndarray, p: int, forced: np.ndarray):
        self.name, self.cost, self.p_facilities, self.forced = name, np.asarray(cost, float), int(p), forced

    @classmethod
    def from_cost_matrix(cls, cost_matrix, p_facilities: int, predefined_facilities_arr=None,
                         name: str = "p-dispersion") -> "PDispersion":
        """Build from a facility x facility cost matrix, as spopt's ``PDispersion.from_cost_matrix``."""
        c = np.asarray(cost_matrix, float)
        return cls(name, c, p_facilities, _predefined(predefined_facilities_arr, c.shape[1]))

    @classmethod
    def from_geodataframe(cls, gdf_fac, facility_col: str, p_facilities: int,
                          predefined_facility_col: str | None = None, distance_metric: str = "euclidean",
                          name: str = "p-dispersion") -> "PDispersion":
        """Build from facility points."""
        xy = _points(gdf_fac, facility_col)
        return cls.from_cost_matrix(cdist(xy, xy, distance_metric), p_facilities,
                                    gdf_fac[predefined_facility_col].to_numpy() if predefined_facility_col else None,
                                    name=name)

    def solve(self) -> "PDispersion":
        """Solve exactly (binary search over the distinct distances); ``open`` lists the chosen sites."""
        r = ce.p_dispersion(self.cost, self.p_facilities, forced=self.forced)
        self.problem, self.open = _problem(r.objective, r.status, r.bound, r.gap), r.open
        return self
