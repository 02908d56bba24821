"""Travel times between points, and service areas — one model for the plan and for lookup.

Two kinds of travel, one interface:

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

EPS_MIN = 1e-6          # minutes of slack on "within minutes" (matches the plan checker)
PYROSM_NETWORK = {"walk": "walking", "bike": "cycling", "ebike": "cycling", "drive": "driving"}
ISO_MARGIN_M = {"walk": 40.0, "bike": 40.0, "ebike": 40.0, "drive": 60.0}


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


# --------------------------------------------------------------------------- the distance model
WGS84_A = 6378137.0                      # semi-major axis (m)
WGS84_F = 1.0 / 298.257223563            # flattening
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)     # first eccentricity squared


MINUTES_DECIMALS = 3   # minutes as the households layer and lookup report them


def round_minutes(minutes) -> np.ndarray:
    """Minutes rounded as reported (households layer, lookup): ``np.round`` to MINUTES_DECIMALS."""
    return np.round(np.asarray(minutes, dtype=float), MINUTES_DECIMALS)


def within_minutes(minutes, limit: float) -> np.ndarray:
    """The coverage rule: minutes <= limit + EPS_MIN (NaN -> False)."""
    m = np.asarray(minutes, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(m) & (m <= float(limit) + EPS_MIN)


def speed_m_per_min(speed_kmh: float) -> float:
    """km/h -> metres per minute (the one expression plan and lookup both use)."""
    return float(speed_kmh) * 1000.0 / 60.0


def ecef(lonlat) -> np.ndarray:
    """(n, 3) earth-centred coordinates (metres) of WGS 84 lon/lat points on the ellipsoid surface.

    Parameters
    ----------
    lonlat : (n, 2) array of degrees; non-finite rows give NaN rows.

    Returns
    -------
    numpy.ndarray
        (n, 3) float; the Euclidean distance between two rows is the straight-line distance of the
        model (see the module docstring).
    """
    ll = np.asarray(lonlat, dtype=float).reshape(-1, 2)
    lo, la = np.radians(ll[:, 0]), np.radians(ll[:, 1])
    sla, cla = np.sin(la), np.cos(la)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sla * sla)
    return np.column_stack([n * cla * np.cos(lo), n * cla * np.sin(lo), n * (1.0 - WGS84_E2) * sla])


def lonlat_of(frame) -> np.ndarray:
    """(n, 2) WGS 84 lon/lat of a point GeoDataFrame/GeoSeries (via ``to_crs(4326)``, as the plan's
    layers are written); NaN for missing points."""
    g = frame.geometry if hasattr(frame, "geometry") else frame
    if g.crs is not None and g.crs.to_epsg() != 4326:
        g = g.to_crs(4326)
    return as_xy(g)


def lonlat_of_xy(xy, crs) -> np.ndarray:
    """(n, 2) WGS 84 lon/lat of metric points in ``crs``, through ``to_crs(4326)`` exactly as a
    layer of them is written (so a station's lon/lat here is its lon/lat in the stations layer)."""
    import geopandas as gpd
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if not len(xy):
        return np.zeros((0, 2))
    return lonlat_of(gpd.GeoSeries(shapely.points(xy), crs=crs))


def household_lonlat(households) -> np.ndarray:
    """(n, 2) WGS 84 lon/lat of the households: their ``lon``/``lat`` columns when present (the
    values the households layer is written from), else their points through ``to_crs(4326)``."""
    if "lon" in households and "lat" in households:
        ll = np.column_stack([households["lon"].to_numpy(float), households["lat"].to_numpy(float)])
        if hasattr(households, "geometry"):      # a household without a point has no position
            ll[~finite_rows(as_xy(households.geometry))] = np.nan
        return ll
    return lonlat_of(households)


class StationFinder:
    """Nearest station in a straight line, by the one distance model (``ecef`` chords).

    Built once over the stations' WGS 84 lon/lat; ``nearest`` answers demand lon/lat. The plan's
    households layer and ``geo.index.GridIndex`` both answer through this class, so they agree to
    the bit for the same lon/lat.
    """

    def __init__(self, site_lonlat):
        xyz = ecef(site_lonlat)
        self.ok = finite_rows(xyz)
        self.rows = np.flatnonzero(self.ok)
        self.tree = cKDTree(xyz[self.ok]) if self.ok.any() else None

    def __len__(self) -> int:
        return len(self.rows)

    def nearest(self, lonlat, speed_m_per_min: float, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(site row or -1, minutes or NaN) of each demand lon/lat."""
        xyz = ecef(lonlat)
        n = len(xyz)
        idx = np.full(n, -1, dtype=np.int64)
        mins = np.full(n, np.nan)
        ok = finite_rows(xyz)
        if self.tree is None or not ok.any():
            return idx, mins
        d, j = self.tree.query(xyz[ok], k=1, workers=workers)
        idx[ok] = self.rows[j]
        mins[ok] = d / speed_m_per_min
        return idx, mins


def station_nearest(demand_lonlat, site_lonlat, speed_m_per_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Nearest site of each demand point in a straight line, both given as WGS 84 lon/lat:
    (site row or -1, minutes or NaN). The plan's figure for its households layer."""
    return StationFinder(site_lonlat).nearest(demand_lonlat, speed_m_per_min)


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
        """A graph from LineStrings: their end points are nodes (ends closer than ``snap_m`` merge);
        every line's interior vertices also split it so crossings that share a vertex connect.
        ``lonlat_lines``: the same lines in WGS 84 (vertex for vertex); lengths are then ellipsoid chords."""
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



# --------------------------------------------------------------------------- per-node road minutes
NETWORK_MINUTES_FILE = "network_minutes.parquet"
_META_KEY = b"gridplan.network_minutes"


class NodeJoin:
    """How a point joins a road graph: its nearest node and the straight walk to it, by the model's
    distance (``ecef`` chords of lon/lat when ``geodetic``, else planar x/y). One rule for the plan's
    siting, its households and lookup."""

    def __init__(self, node_coords: np.ndarray, geodetic: bool = True):
        self.coords = np.asarray(node_coords, dtype=float).reshape(-1, 2)
        self.geodetic = bool(geodetic)
        self.tree = cKDTree(ecef(self.coords) if self.geodetic else self.coords) if len(self.coords) else None

    def join(self, pts) -> tuple[np.ndarray, np.ndarray]:
        """(nearest node or -1, metres to it or inf) of each point (lon/lat when geodetic)."""
        pts = np.asarray(pts, dtype=float).reshape(-1, 2)
        q = ecef(pts) if self.geodetic else pts
        node = np.full(len(pts), -1, dtype=np.int64)
        dist = np.full(len(pts), np.inf)
        ok = np.flatnonzero(finite_rows(q))
        if len(ok) and self.tree is not None:
            d, j = self.tree.query(q[ok])
            node[ok], dist[ok] = j, d
        return node, dist


@dataclass
class NodeMinutes:
    """Road minutes from each node of a network to its nearest station (see ``RoadNetwork.node_minutes``).

    A point is answered by joining the graph (``NodeJoin``: nearest node, straight walk to it):
    minutes = ``minutes[node]`` + walk metres / speed. The plan answers its households with
    ``nearest_lonlat`` on this table and saves it; lookup reads it back and answers the same way, so
    both agree to the bit.
    """
    join: NodeJoin                # node coordinates (lon/lat when geodetic) and the joining rule
    minutes: np.ndarray           # (N,) minutes from the node to its nearest site (inf: none reachable)
    site: np.ndarray              # (N,) index of that site (-1: none)
    speed_m_per_min: float

    def nearest_lonlat(self, lonlat) -> tuple[np.ndarray, np.ndarray]:
        """(site index or -1, minutes or NaN) of WGS 84 points (or planar x/y for a planar table)."""
        node, off = self.join.join(lonlat)
        n = len(node)
        idx = np.full(n, -1, dtype=np.int64)
        mins = np.full(n, np.nan)
        ok = np.flatnonzero(node >= 0)
        if not len(ok):
            return idx, mins
        nd = node[ok]
        j = self.site[nd]
        reach = (j >= 0) & np.isfinite(self.minutes[nd])
        idx[ok[reach]] = j[reach]
        mins[ok[reach]] = self.minutes[nd[reach]] + off[ok[reach]] / self.speed_m_per_min
        return idx, mins

    def to_frame(self, site_ids, county_code=None):
        """The table as a DataFrame: ``county_code``, ``lon``, ``lat`` (the node; planar x/y for a
        planar table), ``minutes`` (NaN: unreachable), ``station_id`` (None: unreachable),
        ``speed_m_per_min``, ``geodetic``."""
        import pandas as pd
        ids = np.asarray(list(site_ids) + [None], dtype=object)
        c = self.join.coords
        return pd.DataFrame({
            "county_code": pd.Series([county_code] * len(c), dtype="string"),
            "lon": c[:, 0], "lat": c[:, 1],
            "minutes": np.where(np.isfinite(self.minutes), self.minutes, np.nan),
            "station_id": pd.Series(ids[self.site], dtype="string"),
        }).assign(speed_m_per_min=self.speed_m_per_min, geodetic=self.join.geodetic)


def write_network_minutes(frame, path) -> None:
    """Write a network plan's road-minutes table (``NodeMinutes.to_frame`` rows, one block per county)
    as Parquet: ``county_code, lon, lat, minutes, station_id``; speed and joining rule per county in
    the file's metadata."""
    import json
    import pyarrow as pa
    import pyarrow.parquet as pq
    meta = {}
    for code, sub in frame.groupby(frame["county_code"].fillna(""), sort=True):
        meta[str(code)] = {"speed_m_per_min": float(sub["speed_m_per_min"].iloc[0]),
                           "geodetic": bool(sub["geodetic"].iloc[0])}
    cols = frame[["county_code", "lon", "lat", "minutes", "station_id"]]
    table = pa.Table.from_pandas(cols, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[_META_KEY] = json.dumps({"version": 1, "counties": meta}).encode()
    pq.write_table(table.replace_schema_metadata(md), path, compression="zstd")


def read_network_minutes(path) -> dict[str | None, tuple[NodeMinutes, list]]:
    """Read ``network_minutes.parquet``: {county_code or None: (NodeMinutes, station ids)}.
    ``NodeMinutes.site`` indexes the returned station-id list."""
    import json
    import pyarrow.parquet as pq
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise ValueError(f"{path}: not a gridplan road-minutes table (no {_META_KEY.decode()} metadata)")
    meta = json.loads(raw)["counties"]
    df = table.to_pandas()
    out: dict[str | None, tuple[NodeMinutes, list]] = {}
    for code, sub in df.groupby(df["county_code"].fillna(""), sort=True):
        m = meta[str(code)]
        has = sub["station_id"].notna().to_numpy()
        sid = sub["station_id"].astype(object).to_numpy(dtype=object)
        ids, inv = np.unique(sid[has].astype(str), return_inverse=True)
        site = np.full(len(sub), -1, dtype=np.int64)
        site[has] = inv.ravel()
        minutes = sub["minutes"].to_numpy(float)
        nm = NodeMinutes(join=NodeJoin(sub[["lon", "lat"]].to_numpy(float), geodetic=m["geodetic"]),
                         minutes=np.where(np.isnan(minutes), np.inf, minutes), site=site,
                         speed_m_per_min=float(m["speed_m_per_min"]))
        out[str(code) if code != "" else None] = (nm, ids.tolist())
    return out
