"""Which plans the OGC API – Features service shows, as collections, and what each one holds.

A collection is one layer of one plan. The live plan's layers are the collections named by the
layer alone (``grids``, ``stations``, …); every succeeded plan's layers are also collections named
``{plan_id}.{layer}``. Which plan is live is decided in ONE place, :func:`live_plan_id` (the
published version in effect today, else the newest succeeded job, as for lookups), and
whether a plan answers a ``datetime`` query in :func:`plan_in_interval` (its effective period as a
published version).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from gridplan.api.problems import ProblemError
from gridplan.geo.featurestream import count_features, layer_extent, layer_fields

LAYERS = ("grids", "units", "stations", "service_areas", "households", "workers")
MAX_LISTED_PLANS = 100        # /collections lists the newest this many plans (any plan is reachable by id)
TITLES = {"grids": "Grids", "units": "Units (villages/communities)", "stations": "Service stations",
          "service_areas": "Station service areas", "households": "Households", "workers": "Grid workers"}


def shown(text: str, n: int = 80) -> str:
    """Return ``text`` quoted for an error message, cut to ``n`` characters."""
    return repr(text if len(text) <= n else text[:n] + "…")


def live_plan_id(store) -> str | None:
    """Return the id of the live plan (the one the unprefixed collections show), None when there is none.

    The plan the lookup answers from (``api.versions.live_id``): the published version in effect
    today, else, until one is published, the newest succeeded plan.
    """
    from gridplan.api.versions import live_id
    return live_id(store.engine)


def plan_in_interval(store, plan_id: str, interval: tuple[float | None, float | None] | None) -> bool:
    """Tell whether version ``plan_id`` was in effect at some time of ``interval`` (epoch seconds, open ends None).

    A version is in effect from its publication's ``effective_from`` up to the next published
    version's (``api.versions.timeline``, dates at 00:00 UTC); a version never published answers no
    ``datetime`` query. No interval: every version answers.
    """
    if interval is None:
        return True
    from gridplan.api.versions import timeline

    def ts(day: str | None) -> float | None:
        return None if day is None else datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp()

    start, end = interval
    for vid, frm, to in timeline(store.engine):
        if vid != plan_id:
            continue
        a, b = ts(frm), ts(to)
        if (end is None or a <= end) and (b is None or start is None or start < b):
            return True
    return False


@dataclass(frozen=True)
class Collection:
    """One collection: a layer of a plan, where it is stored and in which coordinates."""

    id: str
    plan_id: str
    layer: str
    live: bool
    gpkg: Path
    coords: str
    finished_at: float | None


def _plan_coords(store, job: dict) -> str:
    """Return the coordinate system the plan's layers were written in (summary.json's ``output_coords``)."""
    from gridplan.geo.summary import Summary

    summary = job.get("summary")
    if not isinstance(summary, dict):
        p = store.out_dir(job["id"]) / "summary.json"
        try:
            summary = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {}
    return Summary.from_dict(summary).output_coords


@functools.lru_cache(maxsize=1024)
def _layers_of(path: str, mtime_ns: int) -> tuple[str, ...]:
    import pyogrio

    return tuple(str(n) for n, _ in pyogrio.list_layers(path) if n in LAYERS)


def plan_layers(gpkg: Path) -> tuple[str, ...]:
    """Return the result layers present in a plan's GeoPackage (cached per file version)."""
    try:
        st = gpkg.stat()
    except OSError:
        return ()
    return _layers_of(str(gpkg), st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _meta(path: str, mtime_ns: int, layer: str, coords: str) -> tuple:
    return layer_extent(Path(path), layer, coords), count_features(Path(path), layer), layer_fields(Path(path), layer)


def layer_meta(c: Collection) -> tuple:
    """Return ``(WGS 84 extent or None, feature count, {field: dtype})`` of a collection (cached).

    A 404 problem when the plan's files are gone (purged meanwhile).
    """
    try:
        return _meta(str(c.gpkg), c.gpkg.stat().st_mtime_ns, c.layer, c.coords)
    except OSError:
        raise ProblemError(404, f"no collection {shown(c.id)}: its plan was removed", kind="not-found") from None


def _collection(store, job: dict, layer: str, live: bool) -> Collection:
    cid = layer if live else f"{job['id']}.{layer}"
    return Collection(cid, job["id"], layer, live, store.out_dir(job["id"]) / "plan.gpkg", _plan_coords(store, job),
                      job.get("finished_at"))


def resolve(store, cid: str) -> Collection:
    """Return the collection named ``cid``; a 404 problem when there is none."""
    plan_id, _, layer = cid.rpartition(".")
    live = not plan_id
    if live:
        plan_id = live_plan_id(store)
    job = store.get_job(plan_id) if plan_id and len(plan_id) <= 64 else None
    if job is None or job["status"] != "succeeded" or layer not in LAYERS:
        raise ProblemError(404, f"no collection {shown(cid)}", kind="not-found")
    c = _collection(store, job, layer, live)
    if layer not in plan_layers(c.gpkg):
        raise ProblemError(404, f"no collection {shown(cid)}", kind="not-found")
    return c


def collections(store, public_only: bool = False) -> list[Collection]:
    """Return the live plan's collections, then (unless ``public_only``) each listed plan's, newest first."""
    out = []
    live = live_plan_id(store)
    jobs = store.list_jobs(status="succeeded", limit=MAX_LISTED_PLANS)
    if live is not None:
        job = next((j for j in jobs if j["id"] == live), None) or store.get_job(live)
        if job is not None:
            c0 = _collection(store, job, "grids", True)
            out += [_collection(store, job, n, True) for n in LAYERS if n in plan_layers(c0.gpkg)]
    if public_only:
        return out
    for job in jobs:
        gpkg = store.out_dir(job["id"]) / "plan.gpkg"
        out += [_collection(store, job, n, False) for n in LAYERS if n in plan_layers(gpkg)]
    return out


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> RFC 3339 UTC text (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def parse_datetime(text: str | None) -> tuple[float | None, float | None] | None:
    """Parse an OGC ``datetime`` (an RFC 3339 instant or ``start/end`` with ``..`` or empty open ends).

    Returns ``(start, end)`` in epoch seconds (None for an open end), None when ``text`` is None.
    Raises ValueError naming the problem.
    """
    if text is None:
        return None

    def one(s: str) -> float | None:
        s = s.strip()
        if s in ("", ".."):
            return None
        try:
            d = datetime.fromisoformat(s.replace("z", "Z"))
        except ValueError:
            raise ValueError(f"{s!r} is not an RFC 3339 date-time") from None
        if d.tzinfo is None:
            d = d.replace(tzinfo=timezone.utc)
        return d.timestamp()

    parts = text.split("/")
    if len(parts) == 1:
        t = one(parts[0])
        if t is None:
            raise ValueError("datetime must be an instant or an interval start/end")
        return t, t
    if len(parts) != 2:
        raise ValueError("datetime must be an instant or an interval start/end")
    start, end = one(parts[0]), one(parts[1])
    if start is not None and end is not None and start > end:
        raise ValueError("datetime interval ends before it starts")
    return start, end
