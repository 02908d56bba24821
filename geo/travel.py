"""Travel times between points, and service areas.

Two kinds of travel, one interface:

* straight line (no network): minutes = metres / speed; the service area of a station is a circle of
  radius ``minutes * speed``. Coverage sets come from a ``scipy.spatial.cKDTree`` ball query, as a
  sparse matrix (demand x site) of minutes, never a dense one.
* road network (``RoadNetwork.from_pbf``): an OpenStreetMap extract read with pyrosm, edges weighted by
  their length measured in the metric CRS; a point joins the graph at its nearest road node (the
  straight walk to it counts); shortest paths with ``scipy.sparse.csgraph.dijkstra`` and a cutoff.
  Because an edge's polyline is never shorter than the chord between its nodes, and the walk to and
  from the graph is straight, minutes along roads are never below straight-line minutes (we also take
  the max with the straight-line figure to be safe against float noise). Service areas are isochrones:
  the reachable road pieces (edges cut where the time runs out) buffered by a short walking margin.

All coordinates are metric (x, y) arrays in the plan's metric CRS; speeds are metres per minute.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy import sparse
from scipy.spatial import cKDTree

from geo.vocabulary import Mode

EPS_MIN = 1e-6          # minutes of slack on "within minutes" (matches the plan checker)
PYROSM_NETWORK = {Mode.walk: "walking", Mode.bike: "cycling", Mode.ebike: "cycling", Mode.drive: "driving"}
ISO_MARGIN_M = {Mode.walk: 40.0, Mode.bike: 40.0, Mode.ebike: 40.0, Mode.drive: 60.0}


def as_xy(geoms_or_xy) -> np.ndarray:
    """(n, 2) float array from a GeoSeries / array of points / (n, 2) array; empty points -> NaN."""
    if isinstance(geoms_or_xy, np.ndarray) and geoms_or_xy.ndim == 2:
        return np.asarray(geoms_or_xy, dtype=float)
    g = np.asarray(getattr(geoms_or_xy, "values", geoms_or_xy))
    if len(g) == 0:
        return np.zeros((0, 2))
    out = np.full((len(g), 2), np.nan)
    ok = ~(shapely.is_missing(g) | shapely.is_empty(g))
    if ok.any():
        out[ok, 0] = shapely.get_x(g[ok])
        out[ok, 1] = shapely.get_y(g[ok])
    return out


def finite_rows(xy: np.ndarray) -> np.ndarray:
    return np.isfinite(xy).all(axis=1) if len(xy) else np.zeros(0, bool)


# --------------------------------------------------------------------------- straight line
def straight_nearest(demand_xy: np.ndarray, site_xy: np.ndarray, speed_m_per_min: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest site of each demand point: (site index or -1, minutes or NaN)."""
    n = len(demand_xy)
    idx = np.full(n, -1, dtype=np.int64)
    mins = np.full(n, np.nan)
    ok = finite_rows(demand_xy)
    if len(site_xy) == 0 or not ok.any():
        return idx, mins
    d, j = cKDTree(site_xy).query(demand_xy[ok], k=1)
    idx[ok] = j
    mins[ok] = d / speed_m_per_min
    return idx, mins


def straight_coverage(demand_xy: np.ndarray, site_xy: np.ndarray, speed_m_per_min: float,
                      minutes: float) -> sparse.csr_matrix:
    """Sparse (demand x site) matrix of straight-line minutes for pairs within ``minutes``.

    Stored values are minutes + a tiny offset so that a site at distance 0 is still a stored entry;
    use ``coverage_minutes`` to read them back.
    """
    n, m = len(demand_xy), len(site_xy)
    if n == 0 or m == 0:
        return sparse.csr_matrix((n, m))
    ok = np.flatnonzero(finite_rows(demand_xy))
    r = (minutes + EPS_MIN) * speed_m_per_min
    site_tree = cKDTree(site_xy)
    dem_tree = cKDTree(demand_xy[ok])
    # sparse_distance_matrix returns only pairs within r, as a dok/coo matrix
    coo = dem_tree.sparse_distance_matrix(site_tree, r, output_type="coo_matrix")
    rows = ok[coo.row]
    vals = coo.data / speed_m_per_min
    return _pairs_to_csr(rows, coo.col, vals, (n, m))


def _pairs_to_csr(rows, cols, minutes, shape) -> sparse.csr_matrix:
    # +1 offset: a zero distance must not vanish from the sparse structure
    mat = sparse.csr_matrix((np.asarray(minutes, float) + 1.0, (rows, cols)), shape=shape)
    mat.sum_duplicates()
    mat.sort_indices()
    return mat


def coverage_minutes(cov: sparse.csr_matrix) -> np.ndarray:
    """The minutes stored in a coverage matrix's ``data`` (undoing the storage offset)."""
    return cov.data - 1.0


def circles(site_xy: np.ndarray, radius_m: float, quad_segs: int = 16) -> np.ndarray:
    """Circle polygons (straight-line service areas) around each site."""
    pts = shapely.points(site_xy) if len(site_xy) else np.array([], dtype=object)
    return shapely.buffer(pts, radius_m, quad_segs=quad_segs)


# --------------------------------------------------------------------------- road network
@dataclass
class RoadNetwork:
    """An undirected road graph in a metric CRS. ``graph`` is a CSR matrix of edge metres."""
    node_xy: np.ndarray                 # (N, 2)
    graph: sparse.csr_matrix            # (N, N) symmetric, metres
    edge_uv: np.ndarray                 # (E, 2) node indices of each edge
    edge_geom: np.ndarray               # (E,) LineStrings (metric), oriented u -> v
    edge_len: np.ndarray                # (E,) metres
    source: str = ""

    # ---------------------------------------------------------------- building
    @classmethod
    def from_pbf(cls, path: str, crs, mode: str = "walk", bbox=None) -> "RoadNetwork":
        """Read the ``mode``'s road network from an .osm.pbf with pyrosm and project it to ``crs``."""
        try:
            from pyrosm import OSM
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("road-network travel needs pyrosm: pip install 'gridplan[network]'") from exc
        import os
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: network file not found")
        try:
            osm = OSM(str(path), bounding_box=list(bbox) if bbox is not None else None)
            edges = osm.get_network(network_type=PYROSM_NETWORK.get(mode, "walking"))
        except Exception as exc:
            raise ValueError(f"{path}: cannot read the OpenStreetMap road network ({exc})") from exc
        if edges is None or len(edges) == 0:
            raise ValueError(f"{path}: the file holds no roads usable for {mode}")
        edges = edges[["geometry"]].explode(index_parts=False)
        edges = edges[~edges.geometry.is_empty].to_crs(crs)
        return cls.from_lines(np.asarray(edges.geometry.values), source=str(path))

    @classmethod
    def from_lines(cls, lines, source: str = "", snap_m: float = 0.01) -> "RoadNetwork":
        """A graph from LineStrings: their end points are nodes (ends closer than ``snap_m`` merge);
        every line's interior vertices also split it so crossings that share a vertex connect."""
        lines = np.asarray(lines)
        lines = lines[shapely.get_type_id(lines) == 1]
        # split every line at each of its vertices: segments between consecutive vertices
        coords, line_idx = shapely.get_coordinates(lines, return_index=True)
        same = line_idx[1:] == line_idx[:-1]
        a = coords[:-1][same]
        b = coords[1:][same]
        keep = np.any(a != b, axis=1)
        a, b = a[keep], b[keep]
        pts = np.vstack([a, b])
        key = np.round(pts / snap_m).astype(np.int64)
        _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inv = inv.ravel()
        node_xy = pts[first]
        u, v = inv[: len(a)], inv[len(a):]
        ok = u != v
        u, v, a, b = u[ok], v[ok], a[ok], b[ok]
        length = np.hypot(*(b - a).T)
        geom = shapely.linestrings(np.stack([a, b], axis=1))
        n = len(node_xy)
        # parallel segments: keep the shortest (a plain csr build would sum them)
        g = _min_duplicates(np.r_[u, v], np.r_[v, u], np.r_[length, length], n)
        net = cls(node_xy=node_xy, graph=g, edge_uv=np.column_stack([u, v]), edge_geom=geom,
                  edge_len=length, source=source)
        net._seg_a, net._seg_b = a, b
        return net

    # ---------------------------------------------------------------- queries
    def snap(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest node of each point and the straight metres to it (-1 / inf for non-finite points)."""
        xy = np.asarray(xy, float)
        node = np.full(len(xy), -1, dtype=np.int64)
        dist = np.full(len(xy), np.inf)
        ok = finite_rows(xy)
        if ok.any() and len(self.node_xy):
            d, j = self._tree().query(xy[ok])
            node[ok], dist[ok] = j, d
        return node, dist

    def _tree(self) -> cKDTree:
        if getattr(self, "_kd", None) is None:
            self._kd = cKDTree(self.node_xy)
        return self._kd

    def coverage(self, demand_xy: np.ndarray, site_xy: np.ndarray, speed_m_per_min: float,
                 minutes: float, batch: int = 64) -> sparse.csr_matrix:
        """Sparse (demand x site) minutes along roads for pairs within ``minutes``."""
        n, m = len(demand_xy), len(site_xy)
        if n == 0 or m == 0:
            return sparse.csr_matrix((n, m))
        budget = (minutes + EPS_MIN) * speed_m_per_min
        d_node, d_off = self.snap(demand_xy)
        s_node, s_off = self.snap(site_xy)
        # demand sorted by node, so the demands at a node are one slice
        order = np.argsort(d_node, kind="stable")
        sorted_nodes = d_node[order]
        rows, cols, vals = [], [], []
        from scipy.sparse.csgraph import dijkstra
        live = np.flatnonzero(s_off <= budget)
        for start in range(0, len(live), batch):
            js = live[start:start + batch]
            dist = dijkstra(self.graph, directed=False, indices=s_node[js], limit=budget)
            for k, j in enumerate(js):
                reach = np.flatnonzero(dist[k] + s_off[j] <= budget)
                if not len(reach):
                    continue
                lo = np.searchsorted(sorted_nodes, reach, side="left")
                hi = np.searchsorted(sorted_nodes, reach, side="right")
                has = hi > lo
                if not has.any():
                    continue
                cnt = hi[has] - lo[has]
                idx = np.concatenate([order[a:b] for a, b in zip(lo[has], hi[has])])
                base = np.repeat(dist[k][reach[has]] + s_off[j], cnt)
                total = base + d_off[idx]
                straight = np.hypot(*(demand_xy[idx] - site_xy[j]).T)
                total = np.maximum(total, straight)
                ok = total <= budget
                rows.append(idx[ok]); cols.append(np.full(int(ok.sum()), j)); vals.append(total[ok] / speed_m_per_min)
        if not rows:
            return sparse.csr_matrix((n, m))
        return _pairs_to_csr(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), (n, m))

    def nearest(self, demand_xy: np.ndarray, site_xy: np.ndarray, speed_m_per_min: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest site along roads of each demand point: (site index or -1, minutes or NaN)."""
        n = len(demand_xy)
        idx = np.full(n, -1, dtype=np.int64)
        mins = np.full(n, np.nan)
        if n == 0 or len(site_xy) == 0:
            return idx, mins
        from scipy.sparse.csgraph import dijkstra
        s_node, s_off = self.snap(site_xy)
        d_node, d_off = self.snap(demand_xy)
        N, m = self.graph.shape[0], len(site_xy)
        # one virtual node per site, joined to its road node by the straight walk to it
        g = sparse.bmat([[self.graph, None], [None, sparse.csr_matrix((m, m))]]).tolil()
        off = np.maximum(s_off, 1e-9)
        g[N + np.arange(m), s_node] = off
        g = g.tocsr()
        dist, _, src = dijkstra(g, directed=False, indices=N + np.arange(m), min_only=True,
                                return_predecessors=True)
        ok = d_node >= 0
        total = dist[d_node[ok]] + d_off[ok]
        j = src[d_node[ok]] - N
        reach = np.isfinite(total) & (j >= 0)
        straight = np.hypot(*(demand_xy[ok] - site_xy[np.where(j >= 0, j, 0)]).T)
        total = np.maximum(total, straight)
        okidx = np.flatnonzero(ok)
        idx[okidx[reach]] = j[reach]
        mins[okidx[reach]] = total[reach] / speed_m_per_min
        return idx, mins

    def isochrones(self, site_xy: np.ndarray, speed_m_per_min: float, minutes: float,
                   margin_m: float = 40.0) -> np.ndarray:
        """Service-area polygons: road pieces reachable within ``minutes``, buffered by ``margin_m``.

        Each site's polygon also holds the straight walk from the site to its road node. A site whose
        walk to the graph alone exceeds the budget gets the circle it can reach on foot.
        """
        from scipy.sparse.csgraph import dijkstra
        budget = minutes * speed_m_per_min
        s_node, s_off = self.snap(site_xy)
        out = np.empty(len(site_xy), dtype=object)
        u, v = self.edge_uv[:, 0], self.edge_uv[:, 1]
        for j in range(len(site_xy)):
            rem0 = budget - s_off[j]
            site_pt = shapely.Point(site_xy[j])
            if rem0 <= 0 or s_node[j] < 0:
                out[j] = shapely.make_valid(site_pt.buffer(max(budget, 1.0)))
                continue
            dist = dijkstra(self.graph, directed=False, indices=int(s_node[j]), limit=rem0)
            du, dv = dist[u], dist[v]
            touched = np.isfinite(du) | np.isfinite(dv)
            pieces = [shapely.LineString([site_xy[j], self.node_xy[s_node[j]]])] if s_off[j] > 0 else []
            full = touched & (np.minimum(du, dv) + self.edge_len <= rem0 + 1e-9)
            pieces.extend(self.edge_geom[full])
            part = np.flatnonzero(touched & ~full)
            if len(part):
                # edges are straight two-point segments: cut them by linear interpolation
                a, b, L = self._seg_a[part], self._seg_b[part], self.edge_len[part]
                for dd, from_a in ((du[part], True), (dv[part], False)):
                    ok = np.isfinite(dd) & (dd < rem0)
                    if not ok.any():
                        continue
                    t = np.clip((rem0 - dd[ok]) / np.maximum(L[ok], 1e-12), 0.0, 1.0)[:, None]
                    start = a[ok] if from_a else b[ok]
                    end = b[ok] if from_a else a[ok]
                    stop = start + (end - start) * t
                    pieces.extend(shapely.linestrings(np.stack([start, stop], axis=1)))
            if not pieces:
                out[j] = site_pt.buffer(margin_m)
                continue
            merged = shapely.line_merge(shapely.union_all(np.asarray(pieces, dtype=object)))
            poly = shapely.union_all(shapely.buffer(shapely.get_parts(merged), margin_m, quad_segs=4))
            out[j] = shapely.make_valid(poly)
        return out


def _min_duplicates(rows, cols, vals, n) -> sparse.csr_matrix:
    order = np.lexsort((vals, cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = np.r_[True, (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])]
    return sparse.csr_matrix((vals[first], (rows[first], cols[first])), shape=(n, n))

