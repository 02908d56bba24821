"""Merge legacy grid layers (多格合一): one balanced grid layer that follows them where they agree.

``merge_layers`` reads the boundaries, households and each department's legacy grid layer
(``optimize.legacy``), labels every household with its legacy grid per layer, and plans as
``plan()`` does with one change: each unit is partitioned by ``optimize.consensus`` (the
households most layers put together stay together, grid edges run along the legacy lines most
layers draw, and the balance band is kept — certified as every plan's is). Staffing, siting and
the output layers are the plan's own.

The ``MergeReport`` says how far the result agrees with each layer (``optimize.agreement``:
adjusted Rand index of household labels, share of legacy boundary length reused), gives the
crosswalk from every legacy grid to the new grids, and lists the legacy conflicts (grids crossing
units, overlapping grids, households outside a layer). ``write_merge`` writes the plan directory
plus ``crosswalk.csv``, the ``crosswalk`` layer in plan.gpkg and ``merge.json``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridplan.geo.validate import polygonal_part
from gridplan.optimize import agreement
from gridplan.optimize.consensus import ConsensusSolver
from gridplan.optimize.legacy import conflicts, household_labels, legacy_units, load_layers
from gridplan.optimize.options import PlanOptions
from gridplan.optimize.result import Plan

CROSSWALK_COLUMNS = ["layer", "legacy_grid_id", "grid_code", "households", "share_of_legacy", "share_of_new"]


@dataclass
class MergeReport:
    """What a merge did: per-layer agreement, the crosswalk (table and WGS 84 layer), the conflicts."""

    layers: list[dict]
    crosswalk: pd.DataFrame
    crosswalk_layer: gpd.GeoDataFrame
    conflicts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return merge.json's content: ``layers`` (agreement figures) and ``conflicts``."""
        return {"layers": self.layers, "conflicts": self.conflicts,
                "crosswalk_rows": int(len(self.crosswalk)),
                "measures": {"ari": "adjusted Rand index of household labels (households weighted), legacy vs new",
                             "boundary_reused_share": f"share of the legacy grid boundaries inside the units within "
                                                      f"{agreement.REUSE_M:g} m of a new grid boundary"}}


def _spec(src):
    """Split ``path:ID_FIELD`` (a string) into (path, id field); other values pass through."""
    if isinstance(src, str) and ":" in src and not Path(src).exists():
        path, _, fld = src.rpartition(":")
        return (path, fld or None) if path else (src, None)
    return src


def merge_layers(layers: dict, boundaries, households, facilities=None, roster=None, *,
                 options: PlanOptions | None = None, progress=None, **kwargs) -> tuple[Plan, MergeReport]:
    """Merge legacy grid layers into one balanced grid layer.

    Parameters
    ----------
    layers : dict
        ``{name: source}``; a source is a GeoDataFrame, a path, ``"path:ID_FIELD"`` or a
        ``(source, id_field)`` tuple. The id field defaults to the layer's first unique column.
    boundaries, households, facilities, roster :
        As for ``plan()``.
    options : PlanOptions, optional
        Plan options; ``kwargs`` are ``PlanOptions`` fields (``target_households``, ``tolerance``...).
    progress : callable, optional
        Called with (stage, fraction) as ``plan()`` calls it.

    Returns
    -------
    (Plan, MergeReport)
        The plan (its summary gains ``merge``: the ARI per layer) and the report.

    Raises
    ------
    geo.problems.DataError
        Listing every fatal problem of the inputs or of a legacy layer.
    """
    from gridplan.geo.io import load_dataset
    from gridplan.optimize.pipeline import options_from, plan_dataset
    opts = options_from(options, kwargs)
    t0 = time.perf_counter()
    ds = load_dataset(boundaries, households, facilities, roster, None, coords=opts.coords,
                      code_field=opts.code_field)
    legacy = load_layers({k: _spec(v) for k, v in layers.items()}, ds.crs, opts.coords)
    hh = ds.households
    xy = np.column_stack([hh.geometry.x.to_numpy(), hh.geometry.y.to_numpy()])
    labels = np.column_stack([household_labels(lay, xy) for lay in legacy])
    unit_idx = hh["unit_idx"].to_numpy()
    ugeoms = np.asarray(ds.units.geometry.values, dtype=object)
    solver = ConsensusSolver(legacy_units(ugeoms, unit_idx, labels, legacy), ds.crs)
    load_s = time.perf_counter() - t0
    result = plan_dataset(ds, opts, progress=progress, runtime={"load": load_s}, solve=solver)
    t = time.perf_counter()
    report = _report(result, legacy, labels, unit_idx, ugeoms, ds)
    result.summary["merge"] = {lay["layer"]: {"ari": lay["ari"], "boundary_reused_share": lay["boundary_reused_share"]}
                               for lay in report.layers}
    result.summary["runtime_s"]["merge_report"] = round(time.perf_counter() - t, 3)
    return result, report


def _report(result: Plan, legacy, labels: np.ndarray, unit_idx: np.ndarray, ugeoms: np.ndarray, ds) -> MergeReport:
    """Agreement, crosswalk and conflicts of the merged plan against each legacy layer."""
    codes = result.households["grid_code"].to_numpy(dtype=object)
    h = ds.households["households"].to_numpy(np.int64)
    inside = (unit_idx >= 0) & pd.notna(codes)
    grids_m = result.grids.to_crs(ds.crs)
    gcode = grids_m["grid_code"].to_numpy(dtype=object)
    gpos = {c: i for i, c in enumerate(gcode)}
    rows, walk, shapes = [], [], []
    for j, lay in enumerate(legacy):
        ok = inside & (labels[:, j] >= 0)
        ari = agreement.adjusted_rand_index(labels[ok, j], codes[ok], h[ok]) if ok.any() else None
        share, length = agreement.boundary_reuse(lay.geoms, grids_m.geometry.values, ugeoms)
        cw = agreement.crosswalk(lay.name, lay.ids, labels[:, j], np.where(inside, codes, None), h)
        walk.append(cw)
        pos = {v: i for i, v in enumerate(lay.ids)}
        shapes.append(shapely.intersection(lay.geoms[[pos[v] for v in cw["legacy_grid_id"]]],
                                           grids_m.geometry.values[[gpos[c] for c in cw["grid_code"]]]))
        rows.append({"layer": lay.name, "source": lay.source, "id_field": lay.id_field, "legacy_grids": len(lay.ids),
                     "ari": None if ari is None else round(ari, 6),
                     "boundary_reused_share": None if share is None else round(share, 4),
                     "legacy_inner_boundary_m": round(length, 1),
                     "households_compared": int(h[ok].sum())})
    table = pd.concat(walk, ignore_index=True) if walk else pd.DataFrame(columns=CROSSWALK_COLUMNS)
    geoms = polygonal_part(np.concatenate(shapes)) if shapes else np.zeros(0, object)   # no stray edges or points
    layer = gpd.GeoDataFrame(table[CROSSWALK_COLUMNS].copy(), geometry=gpd.GeoSeries(geoms, crs=ds.crs),
                             crs=ds.crs).to_crs(4326)
    found = conflicts(legacy, ugeoms, ds.units["unit_code"].to_numpy(dtype=object), labels, unit_idx >= 0, h)
    return MergeReport(rows, table[CROSSWALK_COLUMNS], layer, found)


def write_merge(result: Plan, report: MergeReport, out_dir, report_html: bool = True) -> Path:
    """Write the plan directory, then ``crosswalk.csv``, the ``crosswalk`` layer and ``merge.json`` into it."""
    from gridplan.geo.output import to_output_coords, write_layer
    out = result.to_dir(out_dir, report=report_html)
    report.crosswalk.to_csv(out / "crosswalk.csv", index=False, encoding="utf-8")
    oc = getattr(result.options, "output_coords", "wgs84")
    write_layer(to_output_coords(report.crosswalk_layer, oc), out / "plan.gpkg", "crosswalk")
    (out / "merge.json").write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    return out


def run_merge(inputs: dict[str, Path], params: dict, out_dir: Path, progress) -> dict:
    """Run a merge job (the HTTP job ``kind=merge``), as ``api.worker.run_plan`` runs a plan job.

    ``inputs``: ``boundaries``, ``households`` (optional ``facilities``, ``roster``) and one
    ``layer:NAME`` file per legacy layer; ``params``: plan options plus ``layer_id_fields``
    (``{name: id field}``, optional). Returns the summary (with ``merge``).
    """
    params = dict(params or {})
    id_fields = dict(params.pop("layer_id_fields", None) or {})
    layers = {k.split(":", 1)[1]: (Path(v), id_fields.get(k.split(":", 1)[1]))
              for k, v in inputs.items() if k.startswith("layer:")}
    result, report = merge_layers(layers, inputs["boundaries"], inputs["households"], inputs.get("facilities"),
                                  inputs.get("roster"), progress=progress, **params)
    write_merge(result, report, out_dir)
    return dict(result.summary)
