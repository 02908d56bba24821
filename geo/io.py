"""Reading inputs into a clean, validated, metric ``Dataset`` — the public entry points.

The work is split by concern:

- ``geo.formats`` recognises a file by its content (an allow-list), holds the read limits
  (``ReadLimits``; over a limit: a fatal ``too_large`` problem naming it) and checks an OSM PBF
  network file (``check_network``, cheap enough for submit time); ``geo.unzip`` unpacks a zip
  within those limits; ``geo.read`` dispatches to one reader per format (``geo.readers``,
  ``geo.gpkg``, ``geo.csvread``) — nothing in a file can make a reader open another file or a
  URL; only Shapefile and FlatGeobuf reach GDAL, under ``geo.gdal_guard``'s thread-local lock-down;
- ``geo.columns`` finds the columns an input means; ``geo.crsread`` handles CRSs;
- ``geo.units_load`` / ``geo.points_load`` turn boundaries and points into WGS 84 then metric
  geometries; ``geo.validate`` holds the checks, run as their own pass;
- ``geo.dataset`` assembles the ``Dataset``; ``geo.lines`` reads barrier lines.

Coordinates: ``coords`` (wgs84|gcj02|bd09|cgcs2000) says what geographic lon/lat in the inputs
mean; the offsets of ``geo.coords`` turn them into WGS 84. A file with a projected CRS is
transformed with pyproj (its CRS wins; no offsets). A file without a CRS whose coordinates look
geographic is taken as lon/lat in ``coords``; one whose coordinates look like metres is fatal unless
``crs=`` names its CRS. Everything ends in one metric CRS (``geo.crs.choose_metric_crs`` on the
boundaries' WGS 84 extent); households keep their WGS 84 ``lon``/``lat``.
"""
from __future__ import annotations

from gridplan.geo.dataset import load_dataset, validate
from gridplan.geo.formats import DEFAULT_LIMITS, ReadLimits, check_network, sniff
from gridplan.geo.lines import LINE_TYPES, POLYGON_TYPES, load_lines
from gridplan.geo.read import ROLES, read_table

__all__ = ["DEFAULT_LIMITS", "LINE_TYPES", "POLYGON_TYPES", "ROLES", "ReadLimits", "check_network", "load_dataset",
           "load_lines", "read_table", "sniff", "validate"]
