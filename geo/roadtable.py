"""A network plan's road minutes per road node, and how a point joins the road graph.

``NodeJoin``: a point's nearest road node and the straight walk to it (the distance model of
``geo.distance``). ``NodeMinutes``: minutes from every node to its nearest station and which one,
from one multi-source search (``geo.travel.RoadNetwork.node_minutes``). The plan answers its
households from this table and saves it in its output directory (``network_minutes.parquet``), so
``geo.index`` (lookup) answers any point exactly as the households layer does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from gridplan.geo.distance import ecef, finite_rows

NETWORK_MINUTES_FILE = "network_minutes.parquet"
_META_KEY = b"gridplan.network_minutes"


class NodeJoin:
    """How a point joins a road graph: its nearest node and the straight walk to it.

    The walk is measured by the model's distance: ``ecef`` chords of lon/lat when ``geodetic``, else
    planar x/y. One rule for the plan's siting, its households and lookup.

    Parameters
    ----------
    node_coords : array_like
        (N, 2) node coordinates, lon/lat when ``geodetic``, else metric x/y.
    geodetic : bool
        Whether the coordinates are lon/lat.
    """

    def __init__(self, node_coords: np.ndarray, geodetic: bool = True):
        self.coords = np.asarray(node_coords, dtype=float).reshape(-1, 2)
        self.geodetic = bool(geodetic)
        self.tree = cKDTree(ecef(self.coords) if self.geodetic else self.coords) if len(self.coords) else None

    def join(self, pts) -> tuple[np.ndarray, np.ndarray]:
        """Join points to the graph: (nearest node or -1, metres to it or inf) of each point (lon/lat when geodetic)."""
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
        """Answer points: (site index or -1, minutes or NaN) of WGS 84 lon/lat (planar x/y for a planar table)."""
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
        """Return the table as a DataFrame, one row per node.

        Columns: ``county_code``, ``lon``, ``lat`` (the node; planar x/y for a planar table),
        ``minutes`` (NaN: unreachable), ``station_id`` (None: unreachable; from ``site_ids``, which
        ``site`` indexes), ``speed_m_per_min``, ``geodetic``.
        """
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
    """Write a network plan's road-minutes table as Parquet.

    ``frame`` holds ``NodeMinutes.to_frame`` rows, one block per county. The file holds
    ``county_code, lon, lat, minutes, station_id``; the speed and joining rule of each county go
    into the file's metadata.
    """
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
    """Read a road-minutes table written by :func:`write_network_minutes`.

    Returns
    -------
    dict
        ``{county_code or None: (NodeMinutes, station ids)}``; ``NodeMinutes.site`` indexes the
        station-id list.

    Raises
    ------
    ValueError
        When the file lacks gridplan's road-table metadata.
    """
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
