"""The ``Plan``: the output layers as WGS 84 GeoDataFrames plus the summary dict.

Layer columns follow ../shared/CONTRACT.md exactly (extra columns may follow the contract's):
  grids         grid_code, village_code, township_code, county_code, households, population,
                workers, area_km2, polsby_popper, deviation            (Polygon)
  stations      station_id, name, existing, village_code, households_covered      (Point)
  service_areas station_id, minutes, mode                               (Polygon/MultiPolygon)
  households    <input id>, grid_code, station_id, minutes, village_code, households  (Point)
  workers       worker_id, grid_code, role (+ name, travel_m)           (Point: home)
  units         <code field>, households, grids, workers, coverage (+ names, codes)  (Polygon)
  micro_grids   micro_grid_code, grid_code, village_code, households, area_km2  (with --micro-target)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd

LAYER_NAMES = ("grids", "stations", "service_areas", "households", "workers", "units")


@dataclass
class Plan:
    """A finished plan: its output layers as WGS 84 GeoDataFrames, the summary and the options."""

    grids: gpd.GeoDataFrame
    stations: gpd.GeoDataFrame
    service_areas: gpd.GeoDataFrame
    households: gpd.GeoDataFrame
    units: gpd.GeoDataFrame
    workers: gpd.GeoDataFrame
    summary: dict = field(default_factory=dict)
    options: object = None  # the PlanOptions it was made with
    network_minutes: object = None  # network plans: road minutes per node, saved for lookup (geo.travel)
    changes: list = field(default_factory=list)  # edits made to it (optimize.edit_state.Change), changes.json
    micro_grids: gpd.GeoDataFrame | None = None  # with --micro-target (optimize.micro)

    def layers(self) -> dict[str, gpd.GeoDataFrame]:
        """Return the output layers by their contract names (and ``micro_grids`` when the plan has them)."""
        out = {name: getattr(self, name) for name in LAYER_NAMES}
        if self.micro_grids is not None:
            out["micro_grids"] = self.micro_grids
        return out

    def to_dir(self, path: str | Path, report: bool = True) -> Path:
        """Write plan.gpkg, summary.json and report.html into ``path`` (created if needed)."""
        from gridplan.geo.output import write_plan_dir
        oc = getattr(self.options, "output_coords", "wgs84")
        out = write_plan_dir(path, self.layers(), self.summary, output_coords=oc, report=report,
                             network_minutes=self.network_minutes)
        if self.changes:
            from gridplan.optimize.edit_io import write_changes
            write_changes(out, self.changes)
        return out

    # --- edits (optimize.edit, optimize.edit_split): each returns a new Plan -------------------
    def lock(self, codes, unlock: bool = False) -> "Plan":
        """Return a new plan with the grids ``codes`` locked (``unlock=True``: unlocked); see optimize.edit."""
        from gridplan.optimize.edit import lock
        return lock(self, codes, unlock=unlock)

    def move(self, points_or_polygon, to: str, force: bool = False) -> "Plan":
        """Return a new plan where the households (ids, or all inside a GeoJSON/shapely polygon) join grid ``to``."""
        from gridplan.optimize.edit import move
        if isinstance(points_or_polygon, dict) or hasattr(points_or_polygon, "geom_type"):
            return move(self, polygon=points_or_polygon, to=to, force=force)
        if isinstance(points_or_polygon, (str, int)):       # one household id
            points_or_polygon = [points_or_polygon]
        return move(self, points=points_or_polygon, to=to, force=force)

    def merge_grids(self, a: str, b: str, force: bool = False) -> "Plan":
        """Return a new plan where grid ``b`` is merged into grid ``a`` (``b``'s code retires)."""
        from gridplan.optimize.edit import merge_grids
        return merge_grids(self, a, b, force=force)

    def split(self, code: str, k: int = 2, force: bool = False) -> "Plan":
        """Return a new plan where grid ``code`` is split into ``k`` grids (new codes for the new parts)."""
        from gridplan.optimize.edit_split import split
        return split(self, code, k=k, force=force)

    def rebalance(self, unit: str, k: int | None = None, force: bool = False) -> "Plan":
        """Return a new plan where ``unit``'s unlocked grids are re-partitioned around its locked ones."""
        from gridplan.optimize.edit_split import rebalance
        return rebalance(self, unit, k=k, force=force)

    def explore(self, **kwargs):
        """Return an interactive folium map of grids (coloured by deviation), stations and service areas."""
        m = self.grids.explore(column="deviation", cmap="RdYlBu_r", tooltip=list(self.grids.columns[:9]),
                               name="grids", **kwargs)
        if len(self.service_areas):
            self.service_areas.explore(m=m, color="#2a9d8f", style_kwds={"fillOpacity": 0.08, "weight": 1},
                                       name="service areas")
        if len(self.stations):
            self.stations.explore(m=m, color="#e63946", marker_kwds={"radius": 5}, name="stations")
        return m

    def __repr__(self) -> str:
        s = self.summary
        return (f"Plan({s.get('units', len(self.units))} units, {s.get('grids', len(self.grids))} grids, "
                f"{s.get('households', '?')} households, {s.get('stations', len(self.stations))} stations, "
                f"coverage {s.get('coverage', {}).get('share', float('nan')):.3f})")


def read_plan(path: str | Path) -> Plan:
    """Read a gridplan output directory (``plan.gpkg`` + ``summary.json``) back into a :class:`Plan`.

    Parameters
    ----------
    path : str or Path
        An output directory written by ``Plan.to_dir``, ``gridplan plan`` or a job's download.

    Returns
    -------
    Plan
        The layers as GeoDataFrames (a layer the directory lacks is empty) and the summary dict.
    """
    import pandas as pd

    from gridplan.geo.output import empty_frame, read_plan_dir
    from gridplan.geo.roadtable import NETWORK_MINUTES_FILE
    layers, summary = read_plan_dir(path)
    frames = {name: layers.get(name, empty_frame([])) for name in LAYER_NAMES}
    table = Path(path) / NETWORK_MINUTES_FILE   # a network plan's road minutes, written back as they were
    network_minutes = pd.read_parquet(table) if table.is_file() else None
    from gridplan.optimize.edit_io import read_changes
    return Plan(**frames, summary=summary, network_minutes=network_minutes, changes=read_changes(path),
                micro_grids=layers.get("micro_grids"))
