"""The clean, validated, metric-projected data model every later stage works on.

``Dataset`` is what ``geo.io.load_dataset`` returns. All geometries are in ``Dataset.crs``, a
local metric CRS (see ``geo.crs``); original WGS 84 lon/lat of the households are kept in
``lon``/``lat`` for outputs.

Canonical columns (internal names; outputs map them to the contract's names):

units (GeoDataFrame, RangeIndex, Polygon/MultiPolygon, valid):
    unit_code (str), village_name (str|None), township_code (str), county_code (str),
    kind ("urban"|"rural"|None), target_households (float, NaN = use the global target)
households (GeoDataFrame, RangeIndex, Point):
    hh_id (str: the input id, or the 1-based row number), households (int >= 1),
    population (float), weight (float >= 0), unit_idx (int: row in units, -1 when outside every
    unit), lon, lat (WGS 84), src_row (int: 1-based row / feature number in the source)
facilities (GeoDataFrame or None, Point): facility_id (str), name (str), existing (bool)
roster (GeoDataFrame or None, Point = home): worker_id (str), name (str), role ("full"|"part")
"""
from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
from pyproj import CRS

from gridplan.geo.problems import Problem

UNIT_COLUMNS = ["unit_code", "village_name", "township_code", "county_code", "kind", "target_households"]
HOUSEHOLD_COLUMNS = ["hh_id", "households", "population", "weight", "unit_idx", "lon", "lat", "src_row"]
FACILITY_COLUMNS = ["facility_id", "name", "existing"]
ROSTER_COLUMNS = ["worker_id", "name", "role"]


@dataclass
class Dataset:
    """The loaded inputs: units, households and the optional layers, in one metric CRS (see the module docstring).

    ``problems`` lists what loading found (warnings and fatal ones); ``sources`` maps each role
    (``"boundaries"``, ``"households"``, ...) to the file name the client gave.
    """

    units: gpd.GeoDataFrame
    households: gpd.GeoDataFrame
    crs: CRS
    problems: list[Problem] = field(default_factory=list)
    facilities: gpd.GeoDataFrame | None = None
    roster: gpd.GeoDataFrame | None = None
    network: str | None = None          # path of an .osm.pbf file, when travel follows roads
    code_field: str = "village_code"    # the input's name for the unit code (kept in outputs)
    id_field: str | None = None         # the input's household id column, if it had one
    sources: dict[str, str] = field(default_factory=dict)  # role -> file name

    @property
    def fatal(self) -> list[Problem]:
        """The problems that stop the plan."""
        return [p for p in self.problems if p.fatal]
