"""Legacy grid layers (each department's own grids): read, label households, find the conflicts.

A legacy layer is a polygon file with one id per grid. It is read like the boundaries
(``geo.units_load.prepare_units``: every id present and unique, polygons repaired, the file's CRS
or ``coords`` to WGS 84) and brought into the dataset's metric CRS. Its id field is named, or is
the first column whose values are all present and unique.

Conflicts are reported, never fatal: a legacy grid lying in two or more units (more than
``CROSS_SHARE`` of its area outside its main unit), two grids of one layer overlapping (more than
``OVERLAP_M2``), households inside the units but in no grid of the layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gridplan.geo import validate as V
from gridplan.geo.columns import available_columns, data_columns, find_column
from gridplan.geo.crs import WGS84
from gridplan.geo.crsread import transform_geoms
from gridplan.geo.problems import DataError, Problem
from gridplan.geo.read import read_input
from gridplan.geo.units_load import prepare_units
from gridplan.optimize.consensus import LegacyUnit

CROSS_SHARE = 0.01     # a legacy grid "crosses units" when more than this share of its area is outside its main unit
OVERLAP_M2 = 1.0       # two grids of one layer "overlap" when they share more than this area (m²)


@dataclass(frozen=True)
class LegacyLayer:
    """One legacy layer in the dataset's metric CRS: grid ``ids`` (text) and ``geoms`` (index = grid index)."""

    name: str
    source: str
    id_field: str
    ids: np.ndarray
    geoms: np.ndarray


def first_unique_column(frame: pd.DataFrame):
    """Return the first data column whose values are all present and unique, or None."""
    for c in data_columns(frame):
        vals = V.to_text(frame[c])
        if len(vals) and vals.notna().all() and vals.is_unique:
            return c
    return None


def load_layer(name: str, src, metric, coords: str = "wgs84", id_field: str | None = None,
               file_name: str | None = None) -> tuple[LegacyLayer | None, list[Problem]]:
    """Read one legacy layer into the ``metric`` CRS; (None, problems) when it cannot be used.

    Parameters
    ----------
    name : str
        The layer's name (``police``).
    src : path or GeoDataFrame
        Polygons, one per legacy grid.
    metric : CRS
        The dataset's metric CRS.
    coords : str
        What lon/lat without a CRS mean (wgs84|gcj02|bd09|cgcs2000).
    id_field : str, optional
        The column of legacy grid ids (default: the first column with unique values).
    file_name : str, optional
        The client's name of the file, for messages.
    """
    raw = read_input(src, f"{name} layer", name=file_name)
    if not raw.ok:
        return None, list(raw.problems)
    f = raw.frame
    col = find_column(f, id_field) if id_field else first_unique_column(f)
    if col is None:
        what = f"no column '{id_field}'" if id_field else "no column whose values are all present and unique"
        return None, list(raw.problems) + [V.file_problem(
            raw.source, "missing_column", f"{raw.source} (layer {name}) has {what} to use as the legacy grid id; "
            f"available columns: {available_columns(f)}. Name it as --layer {name}=FILE:ID_FIELD", fatal=True)]
    u = prepare_units(raw, str(col), coords, None)
    problems = list(raw.problems) + list(u.problems)
    if any(p.fatal for p in problems):
        return None, problems
    idx = np.flatnonzero(u.alive)
    geoms = transform_geoms(u.geoms[idx], WGS84, CRS.from_user_input(metric)) if len(idx) else np.zeros(0, object)
    geoms = np.where(shapely.is_valid(geoms), geoms, shapely.make_valid(geoms)) if len(geoms) else geoms
    ids = V.to_text(f[col]).to_numpy(dtype=object)[idx]
    return LegacyLayer(name, raw.source, str(col), ids, geoms), problems


def load_layers(layers: dict, metric, coords: str = "wgs84") -> list[LegacyLayer]:
    """Read every legacy layer (``{name: src | (src, id_field)}``); raise ``DataError`` listing every fatal problem."""
    out, problems = [], []
    for name, spec in layers.items():
        src, id_field = spec if isinstance(spec, tuple) else (spec, None)
        layer, ps = load_layer(str(name), src, metric, coords, id_field)
        problems += ps
        if layer is not None:
            out.append(layer)
    if any(p.fatal for p in problems) or not out:
        raise DataError(problems or [Problem(source="layers", row=None, kind="no_layers", fatal=True,
                                             message="no legacy layer given (--layer NAME=FILE)")])
    return out


def household_labels(layer: LegacyLayer, xy: np.ndarray) -> np.ndarray:
    """Return the legacy grid index holding each point (the lowest index where grids overlap), -1 outside all."""
    out = np.full(len(xy), -1, dtype=np.int64)
    if not len(xy) or not len(layer.geoms):
        return out
    pi, gi = shapely.STRtree(layer.geoms).query(shapely.points(xy), predicate="intersects")
    order = np.lexsort((-gi, pi))          # per point, the lowest grid index written last
    out[pi[order]] = gi[order]
    return out


def legacy_units(units_geoms: np.ndarray, unit_idx: np.ndarray, labels: np.ndarray,
                 layers: list[LegacyLayer]) -> dict[int, LegacyUnit]:
    """Return the ``LegacyUnit`` of every unit with households: its rows' labels and the legacy grids clipped to it."""
    out = {}
    trees = [shapely.STRtree(lay.geoms) for lay in layers]
    for u in np.unique(unit_idx[unit_idx >= 0]):
        rows = np.flatnonzero(unit_idx == u)
        g = units_geoms[int(u)]
        polys = []
        for lay, tree in zip(layers, trees):
            hit = np.sort(tree.query(g, predicate="intersects"))
            clipped = shapely.intersection(lay.geoms[hit], g) if len(hit) else np.zeros(0, object)
            keep = ~shapely.is_empty(clipped) if len(hit) else np.zeros(0, bool)
            polys.append((np.asarray(clipped, dtype=object)[keep], hit[keep]))
        out[int(u)] = LegacyUnit(labels[rows], tuple(polys))
    return out


def conflicts(layers: list[LegacyLayer], units_geoms: np.ndarray, unit_codes: np.ndarray, labels: np.ndarray,
              inside: np.ndarray, households: np.ndarray) -> dict:
    """Return the legacy conflicts per layer: grids crossing units, overlapping grids, households outside."""
    out = {}
    utree = shapely.STRtree(units_geoms)
    for j, lay in enumerate(layers):
        crossing = []
        gi, ui = utree.query(lay.geoms, predicate="intersects")
        areas = shapely.area(shapely.intersection(lay.geoms[gi], units_geoms[ui])) if len(gi) else np.zeros(0)
        for g in np.unique(gi):
            a = areas[gi == g]
            if a.sum() > 0 and 1 - a.max() / a.sum() > CROSS_SHARE:
                us = ui[gi == g][np.argsort(-a)]
                crossing.append({"legacy_grid_id": str(lay.ids[g]), "units": [str(unit_codes[x]) for x in us],
                                 "outside_main_unit_share": round(float(1 - a.max() / a.sum()), 4)})
        a, b = shapely.STRtree(lay.geoms).query(lay.geoms, predicate="intersects")
        a, b = a[a < b], b[a < b]
        shared = shapely.area(shapely.intersection(lay.geoms[a], lay.geoms[b])) if len(a) else np.zeros(0)
        overlaps = [{"legacy_grid_ids": [str(lay.ids[x]), str(lay.ids[y])], "area_m2": round(float(s), 1)}
                    for x, y, s in zip(a, b, shared) if s > OVERLAP_M2]
        outside = inside & (labels[:, j] < 0)
        out[lay.name] = {"grids_crossing_units": crossing, "overlapping_grids": overlaps,
                         "households_outside_layer": int(households[outside].sum()),
                         "household_rows_outside_layer": int(outside.sum())}
    return out
