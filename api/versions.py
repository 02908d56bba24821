"""Plan versions and publishing: which plan a lookup answers from, today or on a given date.

Every succeeded job's output is a plan version whose id is the job's id; an edit of a version is a
new version (a job row made already succeeded, see :func:`record_derived`) whose ``parent`` is the
version it was made from. The table ``gridplan_versions`` holds, per version, its ``source``
(``plan``, ``audit``, ``adopt``, ``edit``, ``merge``: a job's ``kind`` parameter, ``plan`` by
default), its ``parent`` (a job's ``parent`` parameter, when it gave one), when it was recorded and,
once published, ``effective_from`` (an ISO date) and ``published_at``.

Effective dates. The published versions, ordered by ``(effective_from, published_at)``, form the
history; each one is in effect from its ``effective_from`` up to (not including) the next one's
``effective_from`` — its derived ``effective_to`` (none for the last). Publishing with an earlier
date than the live version's is allowed: it inserts the version into the history. Two
publications with the same date: the later publication wins (the earlier one's interval is empty).
Publishing a version again moves it to its new date. A version that is or was published is never
purged (:func:`was_published`, asked by the purge route and the retention sweep).

The live plan (:func:`live_id`) is the published version in effect today (the server's local date,
:func:`today`); while none is in effect (nothing published yet, or only for later dates), it is
the newest succeeded job, as before publishing existed — an audit job excepted: its output is a
report on a layer, not a plan, so it is neither live by default nor publishable.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import weakref
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from gridplan.api.store import jobs

SOURCES = ("plan", "audit", "adopt", "edit", "merge")
NOT_PLANS = ("audit",)   # versions with no plan to look up: never live by default, never published

metadata = sa.MetaData()
versions = sa.Table(
    "gridplan_versions", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("source", sa.String(16), nullable=False, index=True),
    sa.Column("parent", sa.String(40), index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("effective_from", sa.String(10), index=True),   # ISO date; null: never published
    sa.Column("published_at", sa.Float),
)

_READY: weakref.WeakSet = weakref.WeakSet()   # engines whose table is made (weak: a disposed engine's id is reused)
_READY_LOCK = threading.Lock()


def today() -> dt.date:
    """Return the date that decides the live plan: the server's local date (set ``TZ`` to choose)."""
    return dt.date.today()


def ensure_ready(engine: sa.Engine) -> None:
    """Create the table once per engine and record a version for every succeeded job that lacks one.

    The back-fill covers jobs that succeeded before versions existed. Several processes sharing
    the database may do this at once: whichever makes the table or a row first wins, the others
    carry on.
    """
    if engine in _READY:
        return
    with _READY_LOCK:
        if engine in _READY:
            return
        try:
            metadata.create_all(engine)
        except sa.exc.DBAPIError:   # another server made it at the same moment
            if not sa.inspect(engine).has_table(versions.name):
                raise
        q = (sa.select(jobs.c.id, jobs.c.params, jobs.c.finished_at).select_from(
            jobs.outerjoin(versions, versions.c.id == jobs.c.id))
             .where(jobs.c.status == "succeeded", versions.c.id.is_(None)))
        with engine.connect() as c:
            missing = c.execute(q).all()
        for r in missing:
            try:
                with engine.begin() as c:
                    _insert_version(c, r.id, *_source_parent(r.params), r.finished_at or time.time())
            except sa.exc.IntegrityError:   # recorded by another process meanwhile
                pass
        _READY.add(engine)


def _source_parent(params_text: str | None) -> tuple[str, str | None]:
    """Return a job's version source and parent from its params (``kind``, ``parent``)."""
    try:
        p = json.loads(params_text or "{}")
    except ValueError:
        p = {}
    p = p if isinstance(p, dict) else {}
    kind = p.get("kind") if p.get("kind") in SOURCES else "plan"
    parent = p.get("parent") if isinstance(p.get("parent"), str) and len(p["parent"]) <= 40 else None
    return kind, parent


def write_version_file(out_dir, vid: str, source: str, parent: str | None) -> None:
    """Write an output directory's ``version.json`` (owner-only, like the rest of the data dir)."""
    from gridplan.geo.versionfile import write_version

    os.chmod(write_version(out_dir, vid, source, parent), 0o600)


def _insert_version(conn, vid: str, source: str, parent: str | None, created: float) -> None:
    """Insert a version row unless there is one (first writer wins)."""
    have = conn.execute(sa.select(versions.c.id).where(versions.c.id == vid)).first()
    if have is None:
        conn.execute(versions.insert().values(id=vid, source=source, parent=parent, created_at=created))


def record_job_version(conn, job_id: str) -> tuple[str, str | None]:
    """Record the version of a job that has just succeeded, in the caller's transaction ``conn``.

    Called by :meth:`gridplan.api.store.Store.finish` (which makes sure of the table first, outside
    the transaction, and writes the ``version.json`` after it); source and parent come from the
    job's params. Returns (source, parent).
    """
    params = conn.execute(sa.select(jobs.c.params).where(jobs.c.id == job_id)).scalar_one_or_none()
    source, parent = _source_parent(params)
    _insert_version(conn, job_id, source, parent, time.time())
    return source, parent


def record_derived(engine: sa.Engine, vid: str, parent: str, source: str, summary: dict, params: dict) -> None:
    """Record a version made on the spot from another (an edit): a succeeded job row and its version row.

    Its files must already be in place (the job's output directory, and its PostGIS layers).
    """
    ensure_ready(engine)
    now = time.time()
    with engine.begin() as c:
        c.execute(jobs.insert().values(
            id=vid, status="succeeded", progress=1.0, stage="succeeded", params=json.dumps(params),
            inputs="{}", summary=json.dumps(summary, allow_nan=False, default=str), created_at=now,
            updated_at=now, started_at=now, finished_at=now, attempts=1))
        _insert_version(c, vid, source, parent, now)


@dataclass(frozen=True)
class Version:
    """One plan version as ``GET /v1/plans`` shows it (dates are ISO strings, times Unix seconds)."""

    id: str
    source: str
    parent: str | None
    created: float
    effective_from: str | None = None
    effective_to: str | None = None
    published_at: float | None = None
    live: bool = False
    households: float | None = None
    grids: int | None = None
    within_tolerance_share: float | None = None
    coverage_share: float | None = None

    def as_dict(self) -> dict:
        """Return the version as a JSON-able dict."""
        return asdict(self)


def _headline(summary_text: str | None) -> dict:
    """Return the headline figures of a summary: households, grids, within-tolerance and coverage shares."""
    try:
        s = json.loads(summary_text or "{}")
    except ValueError:
        s = {}
    s = s if isinstance(s, dict) else {}
    bal = s.get("balance") if isinstance(s.get("balance"), dict) else {}
    cov = s.get("coverage") if isinstance(s.get("coverage"), dict) else {}
    return {"households": s.get("households"), "grids": s.get("grids"),
            "within_tolerance_share": bal.get("within_tolerance_share"), "coverage_share": cov.get("share")}


def _joined():
    """Versions of succeeded jobs (a purged job's version is gone with it)."""
    return (sa.select(versions, jobs.c.summary)
            .select_from(versions.join(jobs, jobs.c.id == versions.c.id))
            .where(jobs.c.status == "succeeded"))


def timeline(engine: sa.Engine) -> list[tuple[str, str, str | None]]:
    """Return the publication history as ``[(version id, effective_from, effective_to)]``, oldest first."""
    ensure_ready(engine)
    q = (sa.select(versions.c.id, versions.c.effective_from)
         .select_from(versions.join(jobs, jobs.c.id == versions.c.id))
         .where(jobs.c.status == "succeeded", versions.c.effective_from.is_not(None))
         .order_by(versions.c.effective_from, versions.c.published_at, versions.c.id))
    with engine.connect() as c:
        rows = c.execute(q).all()
    return [(r.id, r.effective_from, rows[k + 1].effective_from if k + 1 < len(rows) else None)
            for k, r in enumerate(rows)]


def in_effect(engine: sa.Engine, day: dt.date) -> str | None:
    """Return the id of the published version in effect on ``day``, None when none was."""
    ensure_ready(engine)
    q = (sa.select(versions.c.id).select_from(versions.join(jobs, jobs.c.id == versions.c.id))
         .where(jobs.c.status == "succeeded", versions.c.effective_from <= day.isoformat())
         .order_by(versions.c.effective_from.desc(), versions.c.published_at.desc(), versions.c.id.desc())
         .limit(1))
    with engine.connect() as c:
        return c.execute(q).scalar_one_or_none()


def live_id(engine: sa.Engine, day: dt.date | None = None) -> str | None:
    """Return the live plan's id: the published version in effect ``day`` (today), else the newest succeeded job.

    An audit job (no plan in its output) is never the newest plan.
    """
    vid = in_effect(engine, day or today())
    if vid is not None:
        return vid
    q = (sa.select(jobs.c.id).select_from(jobs.join(versions, versions.c.id == jobs.c.id))
         .where(jobs.c.status == "succeeded", versions.c.source.not_in(NOT_PLANS))
         .order_by(jobs.c.finished_at.desc(), jobs.c.id.desc()).limit(1))
    with engine.connect() as c:
        return c.execute(q).scalar_one_or_none()


def publish(engine: sa.Engine, vid: str, effective_from: dt.date) -> bool:
    """Publish version ``vid`` from ``effective_from``; False when there is no such succeeded version."""
    ensure_ready(engine)
    with engine.begin() as c:
        ok = c.execute(sa.select(jobs.c.id).where(jobs.c.id == vid, jobs.c.status == "succeeded")).first()
        if ok is None:
            return False
        _insert_version(c, vid, "plan", None, time.time())
        c.execute(versions.update().where(versions.c.id == vid)
                  .values(effective_from=effective_from.isoformat(), published_at=time.time()))
    return True


def was_published(engine: sa.Engine, vid: str) -> bool:
    """Whether version ``vid`` is or ever was published (then it must never be purged)."""
    ensure_ready(engine)
    q = sa.select(versions.c.id).where(versions.c.id == vid, versions.c.effective_from.is_not(None))
    with engine.connect() as c:
        return c.execute(q).first() is not None


def _version(row, dates: dict, live: str | None) -> Version:
    eff = dates.get(row.id)
    return Version(id=row.id, source=row.source, parent=row.parent, created=row.created_at,
                   effective_from=row.effective_from, effective_to=eff[1] if eff else None,
                   published_at=row.published_at, live=row.id == live, **_headline(row.summary))


def list_versions(engine: sa.Engine, source: str | None = None, published: bool | None = None,
                  parent: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[Version], int]:
    """Return one page of versions, newest first, and how many match the filters.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The service's database.
    source, parent : str, optional
        Keep versions of this source / made from this parent.
    published : bool, optional
        Keep only published (True) or never-published (False) versions.
    limit, offset : int
        The page.
    """
    ensure_ready(engine)
    q = _joined()
    if source:
        q = q.where(versions.c.source == source)
    if parent:
        q = q.where(versions.c.parent == parent)
    if published is not None:
        col = versions.c.effective_from
        q = q.where(col.is_not(None) if published else col.is_(None))
    total_q = sa.select(sa.func.count()).select_from(q.subquery())
    q = q.order_by(versions.c.created_at.desc(), versions.c.id.desc()).limit(limit).offset(offset)
    with engine.connect() as c:
        rows, total = c.execute(q).all(), int(c.execute(total_q).scalar_one())
    dates = {vid: (f, t) for vid, f, t in timeline(engine)}
    live = live_id(engine)
    return [_version(r, dates, live) for r in rows], total


def get_version(engine: sa.Engine, vid: str) -> Version | None:
    """Return version ``vid`` (a succeeded job's), None when there is none."""
    ensure_ready(engine)
    if len(vid) > 40:
        return None
    with engine.connect() as c:
        row = c.execute(_joined().where(versions.c.id == vid)).first()
    if row is None:
        return None
    return _version(row, {v: (f, t) for v, f, t in timeline(engine)}, live_id(engine))


