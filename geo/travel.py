"""Travel times between points, and service areas — one model for the plan and for lookup.

Two kinds of travel, one interface (the distance model itself is ``geo.distance``, the road table a
network plan saves is ``geo.roadtable``; both re-exported here):

* straight line (no network): minutes = metres / speed, where the metres between two points are
  the chord between them on the WGS 84 ellipsoid (``ecef``), computed from their lon/lat. The
  chord falls short of the geodesic by d^2 / (24 R^2) of the distance (2e-7 at 10 km, 3e-5 at
  100 km), closer than any map projection (CGCS2000 3-degree Gauss-Kruger: up to 3.4e-4; UTM:
  4e-4), and it needs no CRS, so the plan's households layer and ``geo.index`` (lookup) compute the
  same figure from the same lon/lat whatever metric CRS a county was planned in
  (``StationFinder``). The service area of a station is a circle of radius ``minutes * speed``.
  Coverage sets come from a ``scipy.spatial.cKDTree`` ball query, as a sparse matrix
  (demand x site) of minutes, never a dense one (any Euclidean coordinates: metric x/y or ECEF).
* road network (``RoadNetwork.from_pbf``): an OpenStreetMap extract read with pyrosm. Every length
  is the same chord: each edge (between consecutive vertices of a road line) is the chord between
  its ends, and a point joins the graph at its nearest road node by that distance, walking it
  (``NodeJoin``). Shortest paths with ``scipy.sparse.csgraph.dijkstra``.
  ``RoadNetwork.node_minutes`` runs one multi-source search from all stations and keeps, per road
  node, the minutes to its nearest station and which one (``NodeMinutes``): the plan answers its
  households from that table, from their lon/lat, and saves it with the plan
  (``network_minutes.parquet``), so lookup answers any point the same way — the same join and the
  same walk — without needing the plan's metric CRS.
  Road minutes are not clamped to the straight-line figure: every leg of a trip is a chord in the
  same Euclidean space, so by the triangle inequality a trip along roads is never shorter than the
  straight line; a road time below it would be a bug to see, not to hide. Service areas are
  isochrones, drawn in the metric CRS: the reachable road pieces (edges cut where the time runs
  out) buffered by a short walking margin.

Coordinates handed to ``RoadNetwork`` methods are metric (x, y) arrays in the network's CRS (turned
into lon/lat inside); speeds are metres per minute.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy import sparse
from scipy.spatial import cKDTree

# the distance model and the road table live in their own modules; re-exported here, the one
# interface the plan uses
from gridplan.geo.distance import (  # noqa: F401
    EPS_MIN,
    MINUTES_DECIMALS,
    StationFinder,
    as_xy,
    ecef,
    finite_rows,
    household_lonlat,
    lonlat_of,
    lonlat_of_xy,
    metres_per_minute,
    round_minutes,
    station_nearest,
    within_minutes,
)
from gridplan.geo.roadtable import (  # noqa: F401
    NETWORK_MINUTES_FILE,
    NodeJoin,
    NodeMinutes,
    read_network_minutes,
    write_network_minutes,
)
from gridplan.geo.vocabulary import Mode

PYROSM_NETWORK = {Mode.walk: "walking", Mode.bike: "cycling", Mode.ebike: "cycling", Mode.drive: "driving"}
ISO_MARGIN_M = {Mode.walk: 40.0, Mode.bike: 40.0, Mode.ebike: 40.0, Mode.drive: 60.0}


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
    """Return the minutes stored in a coverage matrix's ``data`` (undoing the storage offset)."""
    return cov.data - 1.0


def circles(site_xy: np.ndarray, radius_m: float, quad_segs: int = 16) -> np.ndarray:
    """Circle polygons (straight-line service areas) around each site."""
    pts = shapely.points(site_xy) if len(site_xy) else np.array([], dtype=object)
    return shapely.buffer(pts, radius_m, quad_segs=quad_segs)


# --------------------------------------------------------------------------- road network
@dataclass
class RoadNetwork:
    """An undirected road graph. ``graph`` is a CSR matrix of edge metres.

    Built from an OSM extract (``from_pbf``), every length is the model's straight-line distance
    (``ecef`` chords from the lon/lat of the segment ends): edges, and the walks between a point and
    its road node — the nearest node by the same chord (``node_lonlat``). Geometry (isochrones) is
    drawn in the metric CRS (``node_xy``, ``crs``). Built from planar lines alone (``from_lines``
    without lon/lat) lengths are planar.
    """

    node_xy: np.ndarray                 # (N, 2) metric
    graph: sparse.csr_matrix            # (N, N) symmetric, metres
    edge_uv: np.ndarray                 # (E, 2) node indices of each edge
    edge_geom: np.ndarray               # (E,) LineStrings (metric), oriented u -> v
    edge_len: np.ndarray                # (E,) metres
    source: str = ""
    crs: object = None                  # the metric CRS of node_xy (pyproj CRS), when known
    node_lonlat: np.ndarray | None = None   # (N, 2) WGS 84, when known: lengths are ellipsoid chords

    # ---------------------------------------------------------------- building
    @classmethod
    def from_pbf(cls, path: str, crs, mode: str = "walk", bbox=None) -> "RoadNetwork":
        """Read the ``mode``'s road network from an .osm.pbf with pyrosm; geometry projected to ``crs``."""
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
        edges = edges[~edges.geometry.is_empty]
        if edges.crs is None:
            edges = edges.set_crs(4326)
        ll = edges.to_crs(4326)
        projected = ll.to_crs(crs)
        net = cls.from_lines(np.asarray(projected.geometry.values), source=str(path),
                             lonlat_lines=np.asarray(ll.geometry.values))
        net.crs = projected.crs
        return net

    @classmethod
    def from_lines(cls, lines, source: str = "", snap_m: float = 0.01, lonlat_lines=None) -> "RoadNetwork":
        """Build a graph from LineStrings.

        Their end points are nodes (ends closer than ``snap_m`` merge); every line's interior vertices
        also split it, so crossings that share a vertex connect.

        Parameters
        ----------
        lines : array_like
            Metric LineStrings (other geometry types are skipped).
        source : str
            Where the lines came from, kept on the network.
        snap_m : float
            Distance under which two vertices are one node.
        lonlat_lines : array_like, optional
            The same lines in WGS 84, vertex for vertex; lengths are then ellipsoid chords.
        """
        lines = np.asarray(lines)
        line_ok = shapely.get_type_id(lines) == 1
        lines = lines[line_ok]
        # split every line at each of its vertices: segments between consecutive vertices
        coords, line_idx = shapely.get_coordinates(lines, return_index=True)
        if lonlat_lines is not None:
            ll = shapely.get_coordinates(np.asarray(lonlat_lines)[line_ok])
            if ll.shape != coords.shape:
                raise ValueError("lonlat_lines must hold the same vertices as lines")
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
        node_ll = None
        if lonlat_lines is not None:
            all_ll = np.vstack([ll[:-1][same][keep], ll[1:][same][keep]])
            node_ll = all_ll[first]
            # edge length: the chord between its two nodes, so a path is a sum of chords
            length = np.linalg.norm(ecef(node_ll[v]) - ecef(node_ll[u]), axis=1)
        else:
            length = np.hypot(*(b - a).T)
        geom = shapely.linestrings(np.stack([a, b], axis=1))
        n = len(node_xy)
        # parallel segments: keep the shortest (a plain csr build would sum them)
        g = _min_duplicates(np.r_[u, v], np.r_[v, u], np.r_[length, length], n)
        net = cls(node_xy=node_xy, graph=g, edge_uv=np.column_stack([u, v]), edge_geom=geom,
                  edge_len=length, source=source, node_lonlat=node_ll)
        net._seg_a, net._seg_b = a, b
        return net

    # ---------------------------------------------------------------- queries
    def _joiner(self) -> "NodeJoin":
        if getattr(self, "_join", None) is None:
            self._join = NodeJoin(self.node_xy if self.node_lonlat is None else self.node_lonlat,
                                  geodetic=self.node_lonlat is not None)
        return self._join

    def to_lonlat(self, xy) -> np.ndarray:
        """Metric x/y of this network's CRS -> (n, 2) WGS 84 lon/lat."""
        from pyproj import CRS, Transformer
        xy = np.asarray(xy, float).reshape(-1, 2)
        t = getattr(self, "_to_ll", None)
        if t is None:
            t = self._to_ll = Transformer.from_crs(CRS.from_user_input(self.crs), CRS.from_epsg(4326), always_xy=True)
        lon, lat = t.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([np.asarray(lon, float), np.asarray(lat, float)])

    def _points(self, xy) -> np.ndarray:
        """Metric points as the joiner takes them (lon/lat for a geodetic network)."""
        xy = np.asarray(xy, float).reshape(-1, 2)
        return self.to_lonlat(xy) if self.node_lonlat is not None else xy

    def snap(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest node of each (metric) point and the straight metres to it (-1 / inf for non-finite points)."""
        return self._joiner().join(self._points(xy))

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
                total = base + d_off[idx]   # no clamp to the straight line: see the module docstring
                ok = total <= budget
                rows.append(idx[ok]); cols.append(np.full(int(ok.sum()), j)); vals.append(total[ok] / speed_m_per_min)
        if not rows:
            return sparse.csr_matrix((n, m))
        return _pairs_to_csr(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), (n, m))

    def node_minutes(self, site_xy: np.ndarray, speed_m_per_min: float) -> "NodeMinutes":
        """Minutes from every road node to its nearest site along roads, and which site.

        One multi-source Dijkstra: a virtual node per site joined to the site's road node by the
        straight walk to it. Unreachable nodes get ``inf`` minutes and site -1.
        """
        from scipy.sparse.csgraph import dijkstra
        N, m = self.graph.shape[0], len(site_xy)
        metres = np.full(N, np.inf)
        site = np.full(N, -1, dtype=np.int64)
        s_node, s_off = self.snap(site_xy) if m else (np.zeros(0, np.int64), np.zeros(0))
        live = np.flatnonzero(s_node >= 0)
        if N and len(live):
            # one virtual node per site; a zero-length walk still needs a stored edge
            off = np.maximum(s_off[live], 1e-9)
            virt = sparse.csr_matrix((off, (np.arange(len(live)), s_node[live])), shape=(len(live), N))
            g = sparse.bmat([[self.graph, virt.T], [virt, None]], format="csr")
            dist, _, src = dijkstra(g, directed=False, indices=N + np.arange(len(live)), min_only=True,
                                    return_predecessors=True)
            reach = np.isfinite(dist[:N]) & (src[:N] >= N)
            metres[reach] = dist[:N][reach]
            site[reach] = live[src[:N][reach] - N]
        return NodeMinutes(join=self._joiner(), minutes=metres / speed_m_per_min, site=site,
                           speed_m_per_min=float(speed_m_per_min))

    def nearest(self, demand_xy: np.ndarray, site_xy: np.ndarray, speed_m_per_min: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest site along roads of each demand point: (site index or -1, minutes or NaN)."""
        n = len(demand_xy)
        if n == 0 or len(site_xy) == 0:
            return np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
        return self.node_minutes(site_xy, speed_m_per_min).nearest_lonlat(self._points(demand_xy))

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
