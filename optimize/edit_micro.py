"""Micro-grids after an edit: the touched grids are split again, the others keep theirs.

A plan made with ``--micro-target`` carries a ``micro_grids`` layer and each household's
``micro_grid_code``. An edit that reshapes, creates or retires grids would leave micro-grids
crossing the new edges; here the micro-grids of those grids are dropped and the grids that
remain are split again (``optimize.micro.micro_grids``, in a local metric CRS), so every household
stays in exactly one micro-grid inside its grid.
"""
from __future__ import annotations

import pandas as pd


def refresh_micro(base_micro, grids, households, summary: dict, touched: set[str]):
    """Return (micro_grids layer, households) after an edit that touched the grids ``touched``.

    ``base_micro`` is the plan's layer before the edit (None: the plan has no micro-grids, nothing
    to do); ``grids`` and ``households`` are the edited layers (lon/lat).
    """
    if base_micro is None or not touched:
        return base_micro, households
    from gridplan.optimize.micro import micro_grids
    target = float((summary.get("micro_grids") or {}).get("target") or 0) or None
    keep = base_micro[~base_micro["grid_code"].astype(str).isin(touched)]
    live = grids[grids["grid_code"].astype(str).isin(touched)]
    households = households.copy()
    if target is None or not len(live):
        return keep.reset_index(drop=True), households
    crs = live.estimate_utm_crs()
    rows = households["grid_code"].astype(str).isin(set(live["grid_code"].astype(str)))
    layer, codes = micro_grids(live.to_crs(crs), households[rows].to_crs(crs), target)
    households.loc[rows, "micro_grid_code"] = codes
    layer = layer.to_crs(base_micro.crs)
    out = pd.concat([keep, layer[keep.columns.intersection(layer.columns)]], ignore_index=True)
    out = out.sort_values("micro_grid_code", kind="stable").reset_index(drop=True)
    if isinstance(summary.get("micro_grids"), dict):
        summary["micro_grids"]["count"] = int(len(out))
    return out, households
