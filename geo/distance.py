"""The one distance model of gridplan: plan, siting, households layer and lookup measure with it.

The straight-line metres between two points are the chord between them on the WGS 84 ellipsoid
(``ecef``), computed from their lon/lat. The chord falls short of the geodesic by d^2 / (24 R^2)
of the distance (2e-7 at 10 km, 3e-5 at 100 km) — closer than any map projection (CGCS2000
3-degree Gauss-Kruger: up to 3.4e-4; UTM: 4e-4) — and it needs no CRS, so a figure is the same
whatever metric CRS a county was planned in. Minutes = metres / speed; a household is covered when
its minutes <= the service-area minutes + ``EPS_MIN``; minutes are reported to ``MINUTES_DECIMALS``.
``StationFinder`` answers nearest station + minutes for the plan's households and for lookup alike.
"""
from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import cKDTree

EPS_MIN = 1e-6          # minutes of slack on "within minutes" (matches the plan checker)


def as_xy(geoms_or_xy) -> np.ndarray:
    """Return the (n, 2) float x/y of a GeoSeries, an array of points or an (n, 2) array; NaN for empty points."""
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
    """Return a boolean mask of the rows of ``xy`` whose every coordinate is finite."""
    return np.isfinite(xy).all(axis=1) if len(xy) else np.zeros(0, bool)


WGS84_A = 6378137.0                      # semi-major axis (m)
WGS84_F = 1.0 / 298.257223563            # flattening
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)     # first eccentricity squared


MINUTES_DECIMALS = 3   # minutes as the households layer and lookup report them


def round_minutes(minutes) -> np.ndarray:
    """Round minutes as they are reported (households layer, lookup): ``np.round`` to MINUTES_DECIMALS."""
    return np.round(np.asarray(minutes, dtype=float), MINUTES_DECIMALS)


def within_minutes(minutes, limit: float) -> np.ndarray:
    """Apply the coverage rule: ``minutes <= limit + EPS_MIN`` (NaN -> False)."""
    m = np.asarray(minutes, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(m) & (m <= float(limit) + EPS_MIN)


def metres_per_minute(speed_kmh: float) -> float:
    """Convert km/h to metres per minute (the one expression plan and lookup both use)."""
    return float(speed_kmh) * 1000.0 / 60.0


def ecef(lonlat) -> np.ndarray:
    """Return the earth-centred coordinates (metres) of WGS 84 lon/lat points on the ellipsoid surface.

    Parameters
    ----------
    lonlat : array_like
        (n, 2) degrees; non-finite rows give NaN rows.

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
    """Return the (n, 2) WGS 84 lon/lat of a point GeoDataFrame or GeoSeries.

    Converted by ``to_crs(4326)``, as the plan's layers are written; NaN for missing points.
    """
    g = frame.geometry if hasattr(frame, "geometry") else frame
    if g.crs is not None and g.crs.to_epsg() != 4326:
        g = g.to_crs(4326)
    return as_xy(g)


def lonlat_of_xy(xy, crs) -> np.ndarray:
    """Return the (n, 2) WGS 84 lon/lat of metric points ``xy`` in ``crs``.

    Converted through ``to_crs(4326)`` exactly as a layer of them is written, so a station's lon/lat
    here is its lon/lat in the stations layer.
    """
    import geopandas as gpd
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if not len(xy):
        return np.zeros((0, 2))
    return lonlat_of(gpd.GeoSeries(shapely.points(xy), crs=crs))


def household_lonlat(households) -> np.ndarray:
    """Return the (n, 2) WGS 84 lon/lat of the households.

    Their ``lon``/``lat`` columns when present (the values the households layer is written from),
    else their points through ``to_crs(4326)``; NaN for a household without a point.
    """
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
        """Find the nearest site of each demand point.

        Parameters
        ----------
        lonlat : array_like
            (n, 2) WGS 84 lon/lat of the demand points.
        speed_m_per_min : float
            Travel speed, metres per minute.
        workers : int
            Threads for the k-d tree query.

        Returns
        -------
        site : numpy.ndarray
            Row of the nearest site, -1 where there is none or the point is not finite.
        minutes : numpy.ndarray
            Straight-line minutes to it, NaN where there is none.
        """
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
    """Find the nearest site of each demand point in a straight line, both given as WGS 84 lon/lat.

    The plan's figure for its households layer; returns (site row or -1, minutes or NaN) as
    :meth:`StationFinder.nearest`.
    """
    return StationFinder(site_lonlat).nearest(demand_lonlat, speed_m_per_min)
