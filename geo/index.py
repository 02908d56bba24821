"""The point -> grid index: which grid, unit, township, county, workers and nearest station.

Built once from a plan (its ``grids``, ``stations`` and optional ``workers`` layers plus the
summary's travel settings) and then read-only, so one instance is shared by every request.

How a point is found (exact, not approximate):

* A uniform raster of square cells (``geo.gridraster``, whose docstring explains it) knows for each
  cell its grid, "outside every grid", or — for the *boundary* cells a ring passes through — the
  few candidate grids; the cells' answers come from exact STRtree lookups.
* A query point's cell comes from two multiplications and a floor. Points in labelled cells are
  answered from the raster alone; points in boundary cells test their cell's few candidate grids
  with ``shapely.intersects_xy`` on prepared polygons, the lowest grid index that contains the
  point (boundary included) wins — the same rule as a brute-force scan in layer order.

Nearest station — the plan's own travel model (``geo.travel``), so an answer at a household's point
is the households layer's figure:

* straight-line plans: ``travel.StationFinder`` over the stations' lon/lat — the chord on the WGS 84
  ellipsoid, the distance the plan computed its households' minutes with;
* road-network plans: the plan's ``network_minutes.parquet`` (road minutes from every road node to
  its nearest station, per county): the point joins its nearest road node of the county of its grid
  and walks the straight line to it (``travel.NodeMinutes``), exactly as the plan answered its households.

``minutes`` are rounded as the households layer rounds them; ``covered`` is the plan's rule
(minutes <= the service-area minutes + ``travel.EPS_MIN``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import shapely

from gridplan.geo import travel
from gridplan.geo.coords import check_system, geometries_to_wgs84, to_wgs84
from gridplan.geo.gridraster import build_raster
from gridplan.geo.index_micro import MICRO_FIELD, micro_lookup
from gridplan.geo.summary import Summary
from gridplan.geo.vocabulary import DEFAULT_SPEED_KMH, WGS84_ALIKE  # the speeds: only if a summary has none

GRID_FIELDS = ("grid_code", "village_code", "township_code", "county_code")
RESULT_FIELDS = GRID_FIELDS + ("workers", "worker_ids", "station_id", "station_name", "minutes", "covered")


def _clean_str(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    try:
        import pandas as pd
        if v is pd.NA:
            return None
    except Exception:  # pragma: no cover
        pass
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _to_wgs84(frame, coords: str):
    """Return a layer with its geometries from output coordinates ``coords`` back in WGS 84 (None stays None)."""
    if frame is None or not len(frame):
        return frame
    frame = frame.copy()
    frame.geometry = geometries_to_wgs84(frame.geometry.values, coords)
    return frame


class GridIndex:
    """An immutable point -> grid (+ station) index over one plan. See the module docstring.

    Parameters
    ----------
    grids, stations, workers : geopandas.GeoDataFrame
        The plan's layers (any CRS; stations and workers optional). Answers are rows of ``grids``.
    speed_kmh, minutes, mode : optional
        The plan's travel settings: speed (default: the mode's), service-area minutes (None: nothing
        is covered), travel mode.
    cells_per_grid : float
        About how many raster cells per grid (see ``geo.gridraster``).
    plan_id : str, optional
    road : dict, optional
        A network plan's road-minutes tables, ``{county_code or None: (NodeMinutes, station ids)}``
        as ``travel.read_network_minutes`` returns them; without it travel is straight-line.
    """

    def __init__(self, grids, stations=None, workers=None, *, speed_kmh: float | None = None,
                 minutes: float | None = None, mode: str | None = None, cells_per_grid: float = 256.0,
                 plan_id: str | None = None, road: dict | None = None, micro=None):
        self.plan_id = plan_id
        if micro is not None and micro.crs is not None and micro.crs.to_epsg() != 4326:
            micro = micro.to_crs(4326)
        self.micro = micro_lookup(micro)   # micro-grid answers (plans with --micro-target)
        if grids.crs is not None and grids.crs.to_epsg() != 4326:
            grids = grids.to_crs(4326)
        geoms = np.asarray(grids.geometry.values, dtype=object)
        keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
        grids = grids[keep]
        self.polys = np.asarray(grids.geometry.values, dtype=object)
        bad = ~shapely.is_valid(self.polys)
        if bad.any():
            self.polys[bad] = shapely.make_valid(self.polys[bad])
        shapely.prepare(self.polys)
        self.n = len(self.polys)
        self._tree = shapely.STRtree(self.polys)

        cols = {c: grids[c].tolist() if c in grids.columns else [None] * self.n for c in GRID_FIELDS}
        wcol = grids["workers"].tolist() if "workers" in grids.columns else [None] * self.n
        self.grid_attrs: list[dict] = []
        ids_by_grid: dict[str, list[str]] = {}
        if workers is not None and len(workers) and "grid_code" in workers.columns and "worker_id" in workers.columns:
            for g, w in zip(workers["grid_code"].tolist(), workers["worker_id"].tolist()):
                g, w = _clean_str(g), _clean_str(w)
                if g is not None and w is not None:
                    ids_by_grid.setdefault(g, []).append(w)
        for i in range(self.n):
            code = _clean_str(cols["grid_code"][i])
            wv = wcol[i]
            wv = None if wv is None or (isinstance(wv, float) and math.isnan(wv)) else int(wv)
            self.grid_attrs.append({
                "grid_code": code,
                "village_code": _clean_str(cols["village_code"][i]),
                "township_code": _clean_str(cols["township_code"][i]),
                "county_code": _clean_str(cols["county_code"][i]),
                "workers": wv,
                "worker_ids": sorted(ids_by_grid.get(code, [])) if code is not None else [],
            })

        # stations
        mode = mode or "walk"
        self.speed_kmh = float(speed_kmh) if speed_kmh else DEFAULT_SPEED_KMH.get(mode, 4.0)
        self.speed_m_per_min = travel.metres_per_minute(self.speed_kmh)
        self.minutes_limit = float(minutes) if minutes is not None else None
        self.mode = mode
        self._finder = None
        self.station_ids: list[str | None] = []
        self.station_names: list[str | None] = []
        if stations is not None and len(stations):
            if stations.crs is not None and stations.crs.to_epsg() != 4326:
                stations = stations.to_crs(4326)
            sg = np.asarray(stations.geometry.values, dtype=object)
            ok = ~(shapely.is_missing(sg) | shapely.is_empty(sg))
            stations = stations[ok]
            pts = shapely.get_coordinates(shapely.centroid(np.asarray(stations.geometry.values, dtype=object)))
            if len(pts):
                self._finder = travel.StationFinder(pts)
                n_st = len(pts)
                sid = stations["station_id"].tolist() if "station_id" in stations.columns else [None] * n_st
                snm = stations["name"].tolist() if "name" in stations.columns else [None] * n_st
                self.station_ids = [_clean_str(v) for v in sid]
                self.station_names = [_clean_str(v) for v in snm]
        self.travel = "straight_line"
        self._road: list[tuple[travel.NodeMinutes, np.ndarray]] = []
        self._grid_table = np.full(self.n + 1, -1, dtype=np.int64)   # per grid (+ "no grid"): road table
        if road is not None:
            self._set_road(road)
        self._raster = build_raster(self.polys, self._exact, cells_per_grid)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_plan_dir(cls, path, plan_id: str | None = None, **kwargs) -> "GridIndex":
        """Build the index of the plan in output directory ``path`` (plan.gpkg + summary.json).

        FileNotFoundError without plan.gpkg; ValueError without a grids layer, or for a road-network
        plan without its road table.
        """
        import pyogrio

        path = Path(path)
        gpkg = path / "plan.gpkg"
        if not gpkg.exists():
            raise FileNotFoundError(f"{gpkg}: no plan.gpkg here — is {path} a gridplan output directory?")
        names = {name for name, _ in pyogrio.list_layers(gpkg)}
        if "grids" not in names:
            raise ValueError(f"{gpkg}: has no 'grids' layer")
        grids = pyogrio.read_dataframe(gpkg, layer="grids")
        stations = pyogrio.read_dataframe(gpkg, layer="stations") if "stations" in names else None
        workers = pyogrio.read_dataframe(gpkg, layer="workers", read_geometry=False) if "workers" in names else None
        if "micro_grids" in names and "micro" not in kwargs:
            kwargs["micro"] = pyogrio.read_dataframe(gpkg, layer="micro_grids")
        sp = path / "summary.json"
        summary = json.loads(sp.read_text(encoding="utf-8")) if sp.exists() else {}
        if "road" not in kwargs:
            kwargs["road"] = read_road(path, summary)
        return cls.from_frames(grids, stations, workers, summary=summary, plan_id=plan_id, **kwargs)

    @classmethod
    def from_frames(cls, grids, stations=None, workers=None, summary: dict | None = None, **kwargs) -> "GridIndex":
        """Build from layer GeoDataFrames plus the plan summary (travel settings, output coordinates)."""
        s = summary if isinstance(summary, Summary) else Summary.from_dict(summary)
        cov = s.cov
        out_coords = check_system(s.output_coords)
        if out_coords not in WGS84_ALIKE:
            grids, stations = _to_wgs84(grids, out_coords), _to_wgs84(stations, out_coords)
            kwargs["micro"] = _to_wgs84(kwargs.get("micro"), out_coords)
        kwargs.setdefault("speed_kmh", cov.speed_kmh)
        kwargs.setdefault("minutes", cov.minutes)
        kwargs.setdefault("mode", cov.mode)
        return cls(grids, stations, workers, **kwargs)

    def _set_road(self, road: dict) -> None:
        """Attach road-minutes tables: each table's station ids become station rows of this index."""
        row_of = {sid: i for i, sid in enumerate(self.station_ids) if sid is not None}
        key_of = {}
        for key, (table, ids) in sorted(road.items(), key=lambda kv: (kv[0] is not None, kv[0] or "")):
            rows = np.array([row_of.get(str(i), -1) for i in ids] + [-1], dtype=np.int64)
            key_of[key] = len(self._road)
            self._road.append((table, rows))
        self.travel = "network"
        if None in key_of and len(key_of) == 1:
            self._grid_table[:] = key_of[None]          # one table for the whole plan
        else:
            for g, a in enumerate(self.grid_attrs):
                self._grid_table[g] = key_of.get(a["county_code"], -1)

    def _exact(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Lowest grid index whose polygon covers each point (-1 for none), by STRtree."""
        out = np.full(len(x), -1, dtype=np.int64)
        if len(x) == 0 or self.n == 0:
            return out
        pi, gi = self._tree.query(shapely.points(x, y), predicate="intersects")
        if len(pi):
            o = np.lexsort((gi, pi))
            pi, gi = pi[o], gi[o]
            u, f = np.unique(pi, return_index=True)
            out[u] = gi[f]
        return out

    # ------------------------------------------------------------------ queries
    def grid_of(self, lon, lat) -> np.ndarray:
        """Return the grid row (in the grids layer's order, -1 for none) of each WGS 84 lon/lat point."""
        x = np.asarray(lon, dtype=float).ravel()
        y = np.asarray(lat, dtype=float).ravel()
        r = self._raster
        out = np.full(len(x), -1, dtype=np.int64)
        if self.n == 0 or len(x) == 0:
            return out
        with np.errstate(invalid="ignore"):
            fx = (x - r.x0) * r.inv
            fy = (y - r.y0) * r.inv
            inside = (fx >= 0) & (fy >= 0) & (fx < r.nx) & (fy < r.ny)
        pts = np.flatnonzero(inside)
        cell = fy[pts].astype(np.int64) * r.nx + fx[pts].astype(np.int64)
        lab = r.label[cell]
        out[pts] = np.where(lab >= -1, lab, -1)
        bmask = lab <= -2
        if bmask.any():
            bp = pts[bmask]
            bk = -2 - lab[bmask].astype(np.int64)
            start = r.cand_ptr[bk]
            cnt = r.cand_ptr[bk + 1] - start
            rep = np.repeat(np.arange(len(bp)), cnt)
            offs = np.arange(len(rep)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            cand = r.cand_idx[np.repeat(start, cnt) + offs]
            hit = shapely.intersects_xy(self.polys[cand], x[bp[rep]], y[bp[rep]])
            hr, hc = rep[hit], cand[hit]
            if len(hr):
                u, f = np.unique(hr, return_index=True)  # candidates are ascending per cell
                out[bp[u]] = hc[f]
        return out

    def grid_of_one(self, lon: float, lat: float) -> int:
        """Return the grid row of one WGS 84 point (-1 for none): :meth:`grid_of` without arrays."""
        r = self._raster
        if self.n == 0 or not (math.isfinite(lon) and math.isfinite(lat)):
            return -1
        fx = (lon - r.x0) * r.inv
        fy = (lat - r.y0) * r.inv
        if not (0 <= fx < r.nx and 0 <= fy < r.ny):
            return -1
        lab = int(r.label[int(fy) * r.nx + int(fx)])
        if lab >= -1:
            return lab
        k = -2 - lab
        for g in r.cand_idx[r.cand_ptr[k]:r.cand_ptr[k + 1]]:
            if shapely.intersects_xy(self.polys[g], lon, lat):
                return int(g)
        return -1

    def nearest_station(self, lon, lat, grid=None) -> tuple[np.ndarray, np.ndarray]:
        """Find the nearest station of WGS 84 lon/lat points by the plan's travel model.

        Returns (station row or -1, unrounded minutes or NaN). ``grid``: the points' grid rows if
        already known (road plans pick the county's table by it; computed when not given).
        """
        lon = np.asarray(lon, dtype=float).ravel()
        lat = np.asarray(lat, dtype=float).ravel()
        ll = np.column_stack([lon, lat])
        if not self._road:
            if self._finder is None:
                return np.full(len(lon), -1, dtype=np.int64), np.full(len(lon), np.nan)
            return self._finder.nearest(ll, self.speed_m_per_min, workers=-1 if len(lon) > 50_000 else 1)
        idx = np.full(len(lon), -1, dtype=np.int64)
        mins = np.full(len(lon), np.nan)
        g = self.grid_of(lon, lat) if grid is None else np.asarray(grid, dtype=np.int64).ravel()
        which = self._grid_table[np.where(g >= 0, g, self.n)]
        for k, (table, rows) in enumerate(self._road):
            sel = np.flatnonzero(which == k)
            if len(sel):
                j, m = table.nearest_lonlat(ll[sel])
                idx[sel] = rows[j]            # j == -1 -> the trailing -1
                mins[sel] = np.where(j >= 0, m, np.nan)
        return idx, mins

    def covered(self, minutes) -> np.ndarray:
        """Apply the plan's coverage rule to minutes (False without a service-area limit or a station)."""
        m = np.asarray(minutes, dtype=float)
        if self.minutes_limit is None:
            return np.zeros(m.shape, dtype=bool)
        return travel.within_minutes(m, self.minutes_limit)

    @staticmethod
    def _wgs(lon, lat, coords: str):
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        if coords in WGS84_ALIKE:
            return lon, lat
        return to_wgs84(lon, lat, coords)

    def lookup(self, lon, lat, coords: str = "wgs84") -> dict[str, np.ndarray]:
        """Look points stated in ``coords`` up, vectorized.

        Returns a dict of arrays: ``grid`` (row index, -1 = outside every grid), the grid fields
        (object arrays, None where outside), ``workers`` (float, NaN outside), ``station`` (row
        index, -1 none), ``station_id``, ``minutes`` (unrounded) and ``covered`` (bool).
        """
        coords = check_system(coords)
        x, y = self._wgs(lon, lat, coords)
        x, y = x.ravel(), y.ravel()
        g = self.grid_of(x, y)
        s, minutes = self.nearest_station(x, y, grid=g)
        found = g >= 0
        out: dict[str, np.ndarray] = {"grid": g, "station": s, "minutes": minutes}
        for f in GRID_FIELDS:
            col = np.array([a[f] for a in self.grid_attrs] + [None], dtype=object)
            out[f] = col[np.where(found, g, -1)]
        wk = np.array([np.nan if a["workers"] is None else a["workers"] for a in self.grid_attrs] + [np.nan])
        out["workers"] = wk[np.where(found, g, -1)]
        if self.micro is not None:
            out[MICRO_FIELD] = self.micro.codes_of(x, y, out["grid_code"])
        sid = np.array(list(self.station_ids) + [None], dtype=object)
        out["station_id"] = sid[s]
        out["covered"] = self.covered(minutes)
        return out

    def _answer(self, g: int, s: int, minutes: float, micro: str | None = None) -> dict:
        d = dict(self.grid_attrs[g])
        d["worker_ids"] = list(d["worker_ids"])
        if self.micro is not None:
            d[MICRO_FIELD] = micro
        if s >= 0:
            d["station_id"] = self.station_ids[s]
            d["station_name"] = self.station_names[s]
            d["minutes"] = float(travel.round_minutes(minutes))
            d["covered"] = bool(self.covered(minutes))
        else:
            d["station_id"] = d["station_name"] = d["minutes"] = None
            d["covered"] = False
        return d

    def lookup_one(self, lon: float, lat: float, coords: str = "wgs84") -> dict | None:
        """Look one point up: a plain dict of RESULT_FIELDS, or None outside every grid."""
        coords = check_system(coords)
        lon, lat = float(lon), float(lat)
        if coords not in WGS84_ALIKE:
            a, b = to_wgs84(np.array([lon]), np.array([lat]), coords)
            lon, lat = float(a[0]), float(b[0])
        g = self.grid_of_one(lon, lat)
        if g < 0:
            return None
        micro = None if self.micro is None else self.micro.code_of_one(lon, lat, self.grid_attrs[g]["grid_code"])
        if self._finder is None and not self._road:
            return self._answer(g, -1, float("nan"), micro)
        s, m = self.nearest_station(np.array([lon]), np.array([lat]), grid=np.array([g]))
        return self._answer(g, int(s[0]), float(m[0]), micro)

    def lookup_dicts(self, lon, lat, coords: str = "wgs84") -> list[dict | None]:
        """Look points up as a list of answer dicts (None outside every grid), in input order."""
        coords = check_system(coords)
        x, y = self._wgs(lon, lat, coords)
        x, y = x.ravel(), y.ravel()
        g = self.grid_of(x, y)
        res: list[dict | None] = [None] * len(x)
        hit = np.flatnonzero(g >= 0)
        if len(hit) == 0:
            return res
        s, minutes = self.nearest_station(x[hit], y[hit], grid=g[hit])
        mins = travel.round_minutes(minutes).tolist()
        cov = self.covered(minutes).tolist()
        attrs = self.grid_attrs
        sids, snames = self.station_ids, self.station_names
        micro = self.micro_codes(x[hit], y[hit], g[hit])
        for k, (i, gi, si) in enumerate(zip(hit.tolist(), g[hit].tolist(), s.tolist())):
            d = attrs[gi].copy()
            d["worker_ids"] = list(d["worker_ids"])
            if micro is not None:
                d[MICRO_FIELD] = micro[k]
            if si >= 0:
                d["station_id"] = sids[si]
                d["station_name"] = snames[si]
                d["minutes"] = mins[k]
                d["covered"] = cov[k]
            else:
                d["station_id"] = d["station_name"] = d["minutes"] = None
                d["covered"] = False
            res[i] = d
        return res

    def lookup_json(self, lon, lat, coords: str = "wgs84") -> bytes:
        """Look points up, serialized straight to a JSON array (``null`` outside every grid).

        In input order; the same answers as :meth:`lookup_dicts` (``geo.index_json``).
        """
        from gridplan.geo.index_json import lookup_json
        return lookup_json(self, lon, lat, coords)

    def micro_codes(self, x, y, g) -> list | None:
        """Return the micro-grid codes of WGS 84 points in grid rows ``g`` (None: the plan has none)."""
        if self.micro is None:
            return None
        codes = np.array([a["grid_code"] for a in self.grid_attrs] + [None], dtype=object)
        return self.micro.codes_of(x, y, codes[np.where(np.asarray(g) >= 0, g, -1)]).tolist()

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        r = self._raster
        return (f"GridIndex({self.n} grids, {len(self.station_ids)} stations, raster {r.nx}x{r.ny}, "
                f"{len(r.cand_ptr) - 1} boundary cells, plan={self.plan_id!r})")


def read_road(path, summary: dict | None = None) -> dict | None:
    """Read the road-minutes tables of the plan in output directory ``path`` (None: straight-line plan).

    A network plan without its table (written before lookup answered along roads) is a ValueError:
    answering it in a straight line would contradict its households layer.
    """
    f = Path(path) / travel.NETWORK_MINUTES_FILE
    if f.exists():
        return travel.read_network_minutes(f)
    s = summary if isinstance(summary, Summary) else Summary.from_dict(summary)
    if s.cov.travel == "network":
        raise ValueError(f"{path}: a road-network plan without {travel.NETWORK_MINUTES_FILE}: re-run the plan "
                         "so lookup can answer along its roads")
    return None
