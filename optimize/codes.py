"""Grid codes across versions: the per-unit code registry and the sequence numbers of an adopted layer.

A grid code is the unit code + a 3-digit sequence number. The registry of a plan —
``summary["code_registry"]`` = ``{unit: {"last": highest number ever used, "retired": [codes]}}`` —
travels with its versions: a re-plan against a baseline reads it, gives new grids numbers above
``last`` and adds the codes it drops to ``retired``, so a retired code never comes back with
another meaning. A layer from another tool has no registry: its own codes stand for it, and a
code that is not the unit code + 3 digits (or is used twice) gets the unit's next numbers
(west→east, north→south among such grids) and is listed as retired.
"""
from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd

from gridplan.geo.grids import order_for_codes


def _seq_of(code, unit) -> int | None:
    c, u = (None if pd.isna(code) else str(code)), (None if pd.isna(unit) else str(unit))
    if c is None or u is None or not re.fullmatch(re.escape(u) + r"\d{3}", c) or c.endswith("000"):
        return None
    return int(c[-3:])


def sequence_numbers(grids: gpd.GeoDataFrame, registry: dict | None = None) -> tuple[np.ndarray, dict]:
    """Return the sequence number of every grid and the registry including the codes replaced.

    Parameters
    ----------
    grids : GeoDataFrame
        ``grid_code``, ``village_code`` and geometry (metric CRS).
    registry : dict, optional
        The baseline's code registry.

    Returns
    -------
    (array of int, dict)
    """
    reg = {u: {"last": int(r.get("last", 0)), "retired": list(r.get("retired", []))}
           for u, r in (registry or {}).items() if isinstance(r, dict)}
    seq = np.zeros(len(grids), dtype=np.int64)
    for unit, idx in grids.groupby("village_code", sort=False).indices.items():
        u = str(unit)
        own = [_seq_of(c, u) for c in grids["grid_code"].to_numpy()[idx]]
        taken: set[int] = set()
        odd = []
        for i, s in zip(idx, own):
            if s is None or s in taken:
                odd.append(i)
            else:
                seq[i] = s
                taken.add(s)
        entry = reg.setdefault(u, {"last": 0, "retired": []})
        nxt = max([entry["last"], *taken]) + 1
        if odd:
            order = order_for_codes(grids.geometry.to_numpy()[odd])
            for j in order:
                seq[odd[j]] = nxt
                nxt += 1
            entry["retired"] += [str(c) for c in grids["grid_code"].to_numpy()[odd] if not pd.isna(c)]
        entry["last"] = nxt - 1
    return seq, reg


def code_registry(new_codes, baseline: gpd.GeoDataFrame) -> dict:
    """Return the registry of a re-plan: the baseline's, with this version's numbers and the codes it dropped."""
    reg = {u: {"last": int(r["last"]), "retired": list(r["retired"])}
           for u, r in baseline.attrs.get("code_registry", {}).items()}
    new = pd.Series(pd.unique(pd.Series(list(new_codes), dtype=object).dropna().astype(str)))
    for code in new:
        u, s = code[:-3], code[-3:]
        if s.isdigit():
            e = reg.setdefault(u, {"last": 0, "retired": []})
            e["last"] = max(e["last"], int(s))
    live = set(new)
    for code, unit in zip(baseline["grid_code"].astype(str), baseline["village_code"].astype(str)):
        e = reg.setdefault(unit, {"last": 0, "retired": []})
        if code not in live and code not in e["retired"]:
            e["retired"].append(code)
    for e in reg.values():
        e["retired"] = sorted(set(e["retired"]))
    return dict(sorted(reg.items()))
