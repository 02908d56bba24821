"""Durable storage: jobs, API keys and metadata through SQLAlchemy; result layers per job.

Embedded default (no set-up): SQLite (WAL) at ``<data_dir>/gridplan.sqlite``, each job's files in
``<data_dir>/jobs/<id>/`` (``input/`` uploads, ``out/`` the output directory with plan.gpkg).
Production: ``postgresql://…`` — the same tables in PostgreSQL, and each finished job's layers also
copied into PostGIS tables ``gridplan_layers.j<id>_<layer>`` from which the layer routes read
(:mod:`gridplan.api.layerstore`, whose methods are part of :class:`Store`).

A job row is written (and committed) before the 202 is sent, and every state change is a single
conditional UPDATE, so a crash at any point leaves a row the next start can act on
(:meth:`Store.recover`).

Several servers may share one database (and data directory). A running job belongs to one
server's dispatcher: the row records its ``owner`` (a server id), its ``attempts`` (the run
number) and ``lease_until``, which the owner renews by heartbeat (:meth:`Store.heartbeat`). Another
server re-queues (or fails, after the last attempt) only a job whose lease has expired — or whose
owner is a process on this host that no longer exists — and every write of a runner or reaper is
conditional on its own owner and attempt, so a superseded run can never overwrite a newer one.
"""
from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

# LAYERS and PG_SCHEMA are re-exported: callers import them from here
from gridplan.api.layerstore import LAYERS as LAYERS, PG_SCHEMA as PG_SCHEMA, LayerStore
from gridplan.api.owners import owner_gone
from gridplan.api.settings import Settings

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL = ("succeeded", "failed", "cancelled")
log = logging.getLogger("gridplan.store")

metadata = sa.MetaData()
jobs = sa.Table(
    "gridplan_jobs", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("stage", sa.String(200)),
    sa.Column("error", sa.Text),
    sa.Column("summary", sa.Text),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("runner_pid", sa.Integer),
    sa.Column("owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
)
keys = sa.Table(
    "gridplan_keys", metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
    sa.Column("last_used", sa.Float),
)
meta = sa.Table(
    "gridplan_meta", metadata,
    sa.Column("k", sa.String(64), primary_key=True),
    sa.Column("v", sa.Text),
)

_ENGINES: dict[str, sa.Engine] = {}


def engine_for(settings: Settings) -> sa.Engine:
    """Return the engine of the settings' database, created once per URL with its tables.

    SQLite runs in WAL mode with full sync and a 30 s busy timeout, its files owner-only;
    PostgreSQL connections are checked before use. Columns added since a database was made are
    added to it.
    """
    url = settings.db_url
    eng = _ENGINES.get(url)
    if eng is None:
        if url.startswith("sqlite"):
            settings.data_path.mkdir(parents=True, exist_ok=True)
            eng = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

            @sa.event.listens_for(eng, "connect")
            def _pragmas(dbapi_conn, _rec):  # durable, concurrent readers + one writer
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()
        else:
            eng = sa.create_engine(url, pool_pre_ping=True)
        metadata.create_all(eng)
        _add_missing_columns(eng)
        if url.startswith("sqlite"):
            secure_path(settings.data_path, directory=True)
            db_file = Path(eng.url.database or "")
            for f in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")):
                secure_path(f)
        _ENGINES[url] = eng
    return eng


def _add_missing_columns(eng: sa.Engine) -> None:
    """Bring a database made by an older release up to the current tables (new nullable columns only)."""
    insp = sa.inspect(eng)
    for table in (jobs, keys):
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            ddl = f'ALTER TABLE {table.name} ADD COLUMN {col.name} {col.type.compile(eng.dialect)}'
            try:
                with eng.begin() as c:
                    c.execute(sa.text(ddl))
            except sa.exc.DBAPIError:  # another server added it at the same moment
                if col.name not in {c["name"] for c in sa.inspect(eng).get_columns(table.name)}:
                    raise


def secure_path(path: Path, directory: bool = False) -> None:
    """Owner-only access: 0700 for a directory, 0600 for a file (missing paths are skipped).

    A shared sticky directory (``/tmp`` given as the data dir, say) is left alone with a warning.
    """
    try:
        if directory and os.stat(path).st_mode & 0o1000:
            log.warning("the data directory is a shared sticky directory: use a directory of its own",
                        extra={"path": str(path)})
            return
        os.chmod(path, 0o700 if directory else 0o600)
    except FileNotFoundError:
        pass
    except OSError as e:  # e.g. a file owned by someone else: say so, keep serving
        log.warning("could not restrict permissions", extra={"path": str(path), "error": str(e)})


def secure_tree(root: Path) -> None:
    """:func:`secure_path` over a whole tree (writers such as ``write_plan_dir`` may open it up)."""
    secure_path(root, directory=True)
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            secure_path(Path(dirpath) / d, directory=True)
        for f in files:
            secure_path(Path(dirpath) / f)


def _row(r) -> dict:
    d = dict(r._mapping)
    for k in ("summary", "params", "inputs"):
        if d.get(k) is not None:
            try:
                d[k] = json.loads(d[k])
            except ValueError:
                pass
    return d


class Store(LayerStore):
    """The service's jobs, metadata and result layers, and each job's files under the data dir.

    Every state change of a job is one conditional UPDATE (see the module docstring).
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = engine_for(settings)
        self.root = settings.data_path
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.root / "jobs").mkdir(exist_ok=True, mode=0o700)
        secure_path(self.root, directory=True)
        secure_path(self.root / "jobs", directory=True)

    # ------------------------------------------------------------------ paths
    def job_dir(self, job_id: str) -> Path:
        """Return the directory of a job's files."""
        return self.root / "jobs" / job_id

    def input_dir(self, job_id: str) -> Path:
        """Return the directory of a job's saved uploads."""
        return self.job_dir(job_id) / "input"

    def out_dir(self, job_id: str) -> Path:
        """Return a job's output directory (``plan.gpkg`` and the rest the CLI writes)."""
        return self.job_dir(job_id) / "out"

    # ------------------------------------------------------------------ jobs
    @staticmethod
    def new_id() -> str:
        """Return a new random job id (16 hex digits)."""
        return uuid.uuid4().hex[:16]

    def create_job(self, job_id: str, params: dict, inputs: dict) -> dict:
        """Write a queued job row (committed before the client hears of it) and return it."""
        now = time.time()
        with self.engine.begin() as c:
            c.execute(jobs.insert().values(id=job_id, status="queued", progress=0.0, stage="queued",
                                           params=json.dumps(params), inputs=json.dumps(inputs),
                                           created_at=now, updated_at=now, attempts=0))
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> dict | None:
        """Return the job row of ``job_id`` (JSON columns decoded), None when there is none."""
        with self.engine.connect() as c:
            r = c.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return _row(r) if r else None

    def list_jobs(self, status: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        """Return job rows, newest first, optionally only those with ``status``."""
        q = sa.select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit).offset(offset)
        if status:
            q = q.where(jobs.c.status == status)
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(q)]

    def count_jobs(self, status: str | None = None) -> int:
        """Return how many jobs there are (with ``status``, when given)."""
        q = sa.select(sa.func.count()).select_from(jobs)
        if status:
            q = q.where(jobs.c.status == status)
        with self.engine.connect() as c:
            return int(c.execute(q).scalar_one())

    def status_counts(self) -> dict[str, int]:
        """Return the number of jobs in each status (every status present, zeros too)."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()
        return {s: 0 for s in STATUSES} | {r[0]: int(r[1]) for r in rows}

    def newest_succeeded(self) -> dict | None:
        """Return the id and finish time of the newest succeeded job, None when there is none."""
        from gridplan.api.kinds import NO_PLAN_PARAMS
        q = sa.select(jobs.c.id, jobs.c.finished_at).where(jobs.c.status == "succeeded")
        for pattern in NO_PLAN_PARAMS:   # an audit job's output is no plan to look up
            q = q.where(~jobs.c.params.like(pattern))
        q = q.order_by(jobs.c.finished_at.desc(), jobs.c.id.desc()).limit(1)
        with self.engine.connect() as c:
            r = c.execute(q).first()
        return dict(r._mapping) if r else None

    def claim_next(self, owner: str, lease_s: float | None = None) -> dict | None:
        """Atomically move the oldest queued job to running under ``owner`` and return it.

        The run gets a lease of ``lease_s`` seconds (the setting when None). None when the queue
        is empty.
        """
        lease_s = self.settings.lease_s if lease_s is None else lease_s
        with self.engine.connect() as c:
            cands = c.execute(sa.select(jobs.c.id).where(jobs.c.status == "queued")
                              .order_by(jobs.c.created_at, jobs.c.id).limit(5)).scalars().all()
        for job_id in cands:
            now = time.time()
            with self.engine.begin() as c:
                n = c.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "queued").values(
                    status="running", stage="starting", started_at=now, updated_at=now, owner=owner,
                    lease_until=now + lease_s, attempts=jobs.c.attempts + 1, error=None)).rowcount
            if n == 1:
                return self.get_job(job_id)
        return None

    def set_pid(self, job_id: str, pid: int | None) -> None:
        """Record the process id of a job's runner (None: no runner)."""
        with self.engine.begin() as c:
            c.execute(jobs.update().where(jobs.c.id == job_id).values(runner_pid=pid))

    @staticmethod
    def _run_is(job_id: str, owner: str | None, attempt: int | None):
        """WHERE clause: this job, and (when given) still this owner's run number ``attempt``."""
        cond = [jobs.c.id == job_id]
        if owner is not None:
            cond.append(jobs.c.owner == owner)
        if attempt is not None:
            cond.append(jobs.c.attempts == attempt)
        return sa.and_(*cond)

    def progress(self, job_id: str, stage: str, progress: float, attempt: int | None = None) -> bool:
        """Record progress of a running job; False when that run is over.

        Over means no longer running (e.g. cancelled) or, with ``attempt``, superseded (re-queued
        after its lease expired).
        """
        p = float(min(max(progress, 0.0), 1.0)) if progress == progress else 0.0
        with self.engine.begin() as c:
            n = c.execute(jobs.update().where(self._run_is(job_id, None, attempt), jobs.c.status == "running")
                          .values(stage=str(stage)[:200], progress=p, updated_at=time.time())).rowcount
        return n == 1

    def finish(self, job_id: str, status: str, error: str | None = None, summary: dict | None = None,
               only_if: tuple[str, ...] = ("running",), owner: str | None = None,
               attempt: int | None = None) -> bool:
        """Move a job to a final status if it is in ``only_if``; True when this call made the change.

        With ``owner`` / ``attempt`` it must also still be that run.
        """
        assert status in FINAL
        now = time.time()
        vals = dict(status=status, error=error, updated_at=now, finished_at=now, runner_pid=None,
                    stage=status, lease_until=None)
        if status == "succeeded":
            vals["progress"] = 1.0
        if summary is not None:
            vals["summary"] = json.dumps(summary, allow_nan=False, default=str)
        from gridplan.api import versions  # a succeeded job's output is a plan version
        versions.ensure_ready(self.engine)
        with self.engine.begin() as c:
            n = c.execute(jobs.update().where(self._run_is(job_id, owner, attempt), jobs.c.status.in_(only_if))
                          .values(**vals)).rowcount
            made = versions.record_job_version(c, job_id) if n == 1 and status == "succeeded" else None
        if made is not None and self.out_dir(job_id).is_dir():   # the output says which version it is
            versions.write_version_file(self.out_dir(job_id), job_id, *made)
        return n == 1

    def requeue(self, job_id: str, reason: str, owner: str | None = None, attempt: int | None = None) -> bool:
        """Put a running job back in the queue (only if still ``owner``'s run ``attempt``, when given)."""
        with self.engine.begin() as c:
            n = c.execute(jobs.update().where(self._run_is(job_id, owner, attempt), jobs.c.status == "running")
                          .values(status="queued", stage="queued", progress=0.0, error=reason, runner_pid=None,
                                  owner=None, lease_until=None, updated_at=time.time())).rowcount
        return n == 1

    def heartbeat(self, owner: str, runs: dict[str, int], lease_s: float | None = None) -> set[str]:
        """Renew the lease of ``owner``'s running jobs ``{job_id: attempt}``; return the ids renewed.

        A job missing from the answer is no longer this owner's running run.
        """
        lease_s = self.settings.lease_s if lease_s is None else lease_s
        kept = set()
        if not runs:
            return kept
        until = time.time() + lease_s
        with self.engine.begin() as c:
            for job_id, attempt in runs.items():
                n = c.execute(jobs.update().where(self._run_is(job_id, owner, attempt), jobs.c.status == "running")
                              .values(lease_until=until)).rowcount
                if n == 1:
                    kept.add(job_id)
        return kept

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; True when this call cancelled it."""
        return self.finish(job_id, "cancelled", error="cancelled by request", only_if=("queued", "running"))

    def recover(self, owner: str, max_attempts: int, live: set[str] | frozenset = frozenset()) -> list[tuple[str, str]]:
        """Re-queue or fail every running job whose run is dead; return [(job_id, new status)].

        A run is dead when its lease has expired, or its owner is a process on this host that is
        gone. Such a job is re-queued while it has attempts left, else failed, with the reason.
        Jobs of ``owner`` listed in ``live`` (its own runners) are left alone; a live runner of
        another server is never touched.
        """
        with self.engine.connect() as c:
            running = [_row(r) for r in c.execute(sa.select(jobs).where(jobs.c.status == "running"))]
        now, done = time.time(), []
        for j in running:
            if j.get("owner") == owner and j["id"] in live:
                continue
            lease = j.get("lease_until")
            if lease is not None and lease >= now and not (j.get("owner") != owner and owner_gone(j.get("owner"))):
                continue
            who, att = j.get("owner"), j["attempts"]
            cond = sa.and_(jobs.c.id == j["id"], jobs.c.status == "running", jobs.c.attempts == att,
                           jobs.c.owner.is_(None) if who is None else jobs.c.owner == who)
            if att < max_attempts:
                vals = dict(status="queued", stage="queued", progress=0.0, runner_pid=None, owner=None,
                            lease_until=None, error=f"interrupted: the server running the job stopped "
                                                    f"(attempt {att}); re-queued")
                new = "queued"
            else:
                vals = dict(status="failed", stage="failed", runner_pid=None, lease_until=None, finished_at=now,
                            error=f"interrupted: the server running the job stopped, {att} time(s); not retried")
                new = "failed"
            with self.engine.begin() as c:
                if c.execute(jobs.update().where(cond).values(updated_at=now, **vals)).rowcount == 1:
                    done.append((j["id"], new))
        return done

    def was_published(self, job_id: str) -> bool:
        """Whether the job's plan is or ever was published (then it must never be purged).

        Answered from the versions table (:func:`gridplan.api.versions.was_published`); the purge
        route and the retention sweep ask it and refuse (409 / skip) on True.
        """
        from gridplan.api import versions
        return versions.was_published(self.engine, job_id)

    def delete_job_row(self, job_id: str) -> bool:
        """Delete a job's row; True when there was one."""
        with self.engine.begin() as c:
            return c.execute(jobs.delete().where(jobs.c.id == job_id)).rowcount == 1

    def finished_before(self, cutoff: float) -> list[str]:
        """Ids of finished jobs (succeeded, failed, cancelled) that finished before ``cutoff``."""
        q = sa.select(jobs.c.id).where(jobs.c.status.in_(FINAL), jobs.c.finished_at < cutoff)
        with self.engine.connect() as c:
            return list(c.execute(q).scalars())

    def job_ids(self) -> set[str]:
        """Return the ids of all jobs."""
        with self.engine.connect() as c:
            return set(c.execute(sa.select(jobs.c.id)).scalars())

    # ------------------------------------------------------------------ meta
    def get_meta(self, k: str) -> str | None:
        """Return the metadata value of ``k``, None when unset."""
        with self.engine.connect() as c:
            return c.execute(sa.select(meta.c.v).where(meta.c.k == k)).scalar_one_or_none()

    def set_meta(self, k: str, v: str) -> None:
        """Set the metadata value of ``k``."""
        with self.engine.begin() as c:
            if c.execute(meta.update().where(meta.c.k == k).values(v=v)).rowcount == 0:
                c.execute(meta.insert().values(k=k, v=v))
