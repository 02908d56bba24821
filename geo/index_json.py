"""Batch lookup answers serialized straight to JSON bytes, from pre-serialized per-grid fragments.

The answers are those of ``GridIndex.lookup_dicts`` (same keys, same order), built without a dict
per point: each grid's fields are serialized once, each station's once, and a point's answer is
the concatenation of its grid's, its micro-grid's (plans with micro-grids) and its station's pieces.
"""
from __future__ import annotations

import numpy as np
import orjson

from gridplan.geo import travel
from gridplan.geo.coords import check_system

_TAIL = b',"station_id":null,"station_name":null,"minutes":null,"covered":false}'
_ENDS = (b',"covered":false}', b',"covered":true}')


def _fragments(index) -> tuple[list[bytes], list[bytes]]:
    """Return (per grid '{"grid_code":...,"worker_ids":[..]', per station ',"station_id":..,"minutes":'), cached."""
    fr = getattr(index, "_grid_frags", None)
    if fr is None:
        fr = [orjson.dumps(a)[:-1] for a in index.grid_attrs]
        index._station_frags = [orjson.dumps({"station_id": i, "station_name": n})[1:-1].join((b",", b',"minutes":'))
                                for i, n in zip(index.station_ids, index.station_names)]
        index._grid_frags = fr
    return fr, index._station_frags


def lookup_json(index, lon, lat, coords: str = "wgs84") -> bytes:
    """Look points up with ``index`` (a ``GridIndex``) into a JSON array, ``null`` outside every grid.

    Parameters
    ----------
    index : GridIndex
        The plan's index.
    lon, lat : array-like
        The points, in ``coords``.
    coords : str
        What lon/lat mean.

    Returns
    -------
    bytes
        The answers in input order.
    """
    coords = check_system(coords)
    x, y = index._wgs(lon, lat, coords)
    x, y = x.ravel(), y.ravel()
    g = index.grid_of(x, y)
    items = [b"null"] * len(x)
    hit = np.flatnonzero(g >= 0)
    if len(hit) == 0:
        return b"[" + b",".join(items) + b"]"
    frags, sfrag = _fragments(index)
    s, minutes = index.nearest_station(x[hit], y[hit], grid=g[hit])
    cov = index.covered(minutes) & (s >= 0)
    mins = [orjson.dumps(m) for m in travel.round_minutes(minutes).tolist()]
    micro = index.micro_codes(x[hit], y[hit], g[hit])
    mfrag = [b""] * len(hit) if micro is None else [b',"micro_grid_code":' + orjson.dumps(m) for m in micro]
    for i, gi, si, m, c, mf in zip(hit.tolist(), g[hit].tolist(), s.tolist(), mins, cov.tolist(), mfrag):
        items[i] = frags[gi] + mf + (sfrag[si] + m + _ENDS[c] if si >= 0 else _TAIL)
    return b"[" + b",".join(items) + b"]"
