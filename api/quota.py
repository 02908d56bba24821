"""Queue caps: how many jobs may wait in the queue, in all and per API key (429 past them).

Which key submitted a job is kept in a table of its own, ``gridplan_job_keys`` (job id -> key id),
so the jobs table and its readers stay as they are. A key's id is the ``<id>`` of ``gp_<id>_<secret>``
(the key is only trusted after :class:`api.auth.KeyCache` has matched its hash).

The caps are checked twice: on the headers, before any body is read (so a client over its cap pays
nothing for its upload), and again just before the job row is written (uploads checked at the same
time may have filled the queue meanwhile).
"""
from __future__ import annotations

import hashlib

import sqlalchemy as sa

from gridplan.api.problems import ProblemError
from gridplan.api.settings import Settings
from gridplan.api.store import jobs, metadata

job_keys = sa.Table(
    "gridplan_job_keys", metadata,
    sa.Column("job_id", sa.String(40), primary_key=True),
    sa.Column("key_id", sa.String(64), nullable=False, index=True),
)
_ready: set[int] = set()


def key_id(key: str) -> str:
    """Return the id part of a ``gp_<id>_<secret>`` key (a hash prefix for any other shape)."""
    parts = key.split("_")
    if len(parts) >= 3 and parts[0] == "gp" and 0 < len(parts[1]) <= 16:
        return parts[1]
    return "h" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _ensure(engine: sa.Engine) -> None:
    if id(engine) not in _ready:
        job_keys.create(engine, checkfirst=True)
        _ready.add(id(engine))


def queued_counts(engine: sa.Engine, kid: str) -> tuple[int, int]:
    """(queued jobs in all, queued jobs submitted with key id ``kid``)."""
    _ensure(engine)
    with engine.connect() as c:
        total = c.execute(sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status == "queued")).scalar()
        mine = c.execute(sa.select(sa.func.count()).select_from(jobs.join(job_keys, jobs.c.id == job_keys.c.job_id))
                         .where(jobs.c.status == "queued", job_keys.c.key_id == kid)).scalar()
    return int(total or 0), int(mine or 0)


def check_queue(engine: sa.Engine, settings: Settings, key: str) -> None:
    """Raise a 429 :class:`ProblemError` (with ``Retry-After``) when the queue or this key's share is full.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The service database.
    settings : Settings
        ``max_queued_jobs``, ``max_queued_jobs_per_key`` and ``queue_retry_after_s``.
    key : str
        The (already authenticated) API key of the request.
    """
    total, mine = queued_counts(engine, key_id(key))
    headers = {"Retry-After": str(int(settings.queue_retry_after_s))}
    if mine >= settings.max_queued_jobs_per_key:
        raise ProblemError(429, f"this key already has {mine} queued job(s), the limit per key "
                                f"(max_queued_jobs_per_key = {settings.max_queued_jobs_per_key}); "
                                "try again when some have started", kind="queue-full", headers=headers)
    if total >= settings.max_queued_jobs:
        raise ProblemError(429, f"the job queue is full: {total} queued job(s), the limit "
                                f"(max_queued_jobs = {settings.max_queued_jobs}); try again later",
                           kind="queue-full", headers=headers)


def record_submitter(engine: sa.Engine, job_id: str, key: str) -> None:
    """Remember that ``key`` submitted ``job_id`` (for the per-key cap)."""
    _ensure(engine)
    with engine.begin() as c:
        c.execute(job_keys.insert().values(job_id=job_id, key_id=key_id(key)))
