"""Reading an existing grid layer (an official layer, another tool's output, or gridplan's own).

The file goes through the same allow-listed readers as the boundaries (``geo.read.read_input``:
formats sniffed, nothing in the file may open another file or a URL), and the same polygon checks
and CRS handling (``geo.units_load.prepare_units``): invalid polygons are repaired and named, the
file's CRS wins, lon/lat without a CRS mean ``coords``. Unlike the boundaries, nothing is merged
or resolved: overlapping grids, duplicate codes and multipart grids are kept as they are, for the
audit to report.
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gridplan.geo import validate as V
from gridplan.geo.columns import available_columns, find_column
from gridplan.geo.coords import check_system
from gridplan.geo.crs import WGS84
from gridplan.geo.crsread import parse_crs, transform_geoms
from gridplan.geo.formats import ReadLimits
from gridplan.geo.problems import Problem
from gridplan.geo.read import read_input
from gridplan.geo.units_load import prepare_units

GRID_LAYER_COLUMNS = ["grid_code", "unit_code", "workers", "src_row", "feature"]
# problems the audit reports itself, as violations with their figures
AUDITED_KINDS = {"duplicate_code"}


def _empty(crs) -> gpd.GeoDataFrame:
    df = pd.DataFrame({"grid_code": pd.Series(dtype=object), "unit_code": pd.Series(dtype=object),
                       "workers": pd.Series(dtype=float), "src_row": pd.Series(dtype=np.int64),
                       "feature": pd.Series(dtype=object)})
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _plan_dir_grids(src):
    """Return (path, layer): a gridplan output directory stands for its plan.gpkg's ``grids`` layer."""
    if isinstance(src, (str, Path)) and Path(src).is_dir() and (Path(src) / "plan.gpkg").is_file():
        return Path(src) / "plan.gpkg", "grids"
    return src, None


def read_grids(src, metric: CRS | None = None, *, grid_code_field: str = "grid_code",
               unit_field: str = "village_code", coords: str = "wgs84", crs=None,
               limits: ReadLimits | None = None, name: str | None = None, layer: str | None = None
               ) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    """Read a grid layer into a metric GeoDataFrame; never raises for bad data.

    Parameters
    ----------
    src : path or GeoDataFrame
        The grid layer (any vector format), or a gridplan output directory (its ``grids`` layer).
    metric : pyproj CRS, optional
        The CRS of the result (the boundaries' metric CRS); WGS 84 when None.
    grid_code_field, unit_field : str
        The columns holding the grid code and the code of the unit the grid belongs to.
    coords : str
        What lon/lat without a CRS mean (wgs84|gcj02|bd09|cgcs2000).
    crs : optional
        The file's CRS when it carries none.
    limits : ReadLimits, optional
        What reading may cost.
    name : str, optional
        The file name the client gave (problems name it).
    layer : str, optional
        The layer of a multi-layer file (default: the first polygon layer).

    Returns
    -------
    (GeoDataFrame, list of Problem)
        Columns ``grid_code`` (text, None when missing), ``unit_code`` (text, None when the
        column or value is missing), ``workers`` (float, NaN when absent), ``src_row`` (1-based
        feature number), ``feature`` (how problems name the row), geometry (Polygon or
        MultiPolygon, valid) in ``metric``. The problems are those of reading (a fatal one when
        the file cannot be used at all); duplicate codes are left to the audit.
    """
    coords = check_system(coords)
    metric = CRS.from_user_input(metric) if metric is not None else WGS84
    src, plan_layer = _plan_dir_grids(src)
    raw = read_input(src, "boundaries", layer=layer or plan_layer, limits=limits, name=name)
    problems = [p for p in raw.problems if p.kind != "layer_chosen" or plan_layer is None]
    if not raw.ok or raw.frame is None or not len(raw.frame):
        return _empty(metric), problems
    u = prepare_units(raw, grid_code_field, coords, parse_crs(crs) or None)
    problems += [_as_grid_problem(p) for p in u.problems if p.kind not in AUDITED_KINDS]
    f = raw.frame
    unit_col = find_column(f, unit_field)
    if unit_col is None:
        problems.append(V.file_problem(u.rows.source, "missing_column",
                                       f"{u.rows.source} has no '{unit_field}' column (the code of each grid's unit); "
                                       f"available columns: {available_columns(f)}. Name it with --unit-field"))
    idx = np.flatnonzero(u.alive)
    geoms = transform_geoms(u.geoms[idx], WGS84, metric) if len(idx) else np.zeros(0, object)
    if len(geoms):
        bad = ~shapely.is_valid(geoms)
        if bad.any():  # projection can break validity (a sub-millimetre self-touch): repair silently
            geoms[bad] = V.polygonal_part(shapely.make_valid(geoms[bad]))
    units = (V.to_text(f[unit_col]).to_numpy(dtype=object)[idx] if unit_col is not None
             else np.full(len(idx), None, object))
    wcol = find_column(f, "workers")
    workers = V.to_numeric(f[wcol])[0][idx] if wcol is not None else np.full(len(idx), np.nan)
    out = gpd.GeoDataFrame({"grid_code": u.attrs["unit_code"].to_numpy(dtype=object)[idx],
                            "unit_code": [None if pd.isna(v) else v for v in units],
                            "workers": np.asarray(workers, dtype=float),
                            "src_row": np.asarray(raw.src_row)[idx].astype(np.int64),
                            "feature": [u.rows.listing([i]) for i in idx]},
                           geometry=gpd.GeoSeries(geoms, crs=metric), crs=metric)
    out.attrs["has_workers"] = wcol is not None
    out.attrs["source"] = u.rows.source
    return out, problems


def _as_grid_problem(p: Problem) -> Problem:
    """Reword the boundaries' wording ("unit code", "--code-field") for a grid layer."""
    msg = p.message.replace("(the unit code)", "(the grid code)").replace("every unit needs one", "every grid needs one")
    msg = msg.replace("Name the code column with --code-field", "Name it with --grid-code-field")
    msg = msg.replace("boundaries must be polygons", "grids must be polygons")
    return Problem(p.source, p.row, p.kind, msg, p.fatal, p.count)
