"""Durable storage: jobs, API keys and metadata through SQLAlchemy; result layers per job.

Embedded default (no set-up): SQLite (WAL) at ``<data_dir>/gridplan.sqlite``, each job's files in
``<data_dir>/jobs/<id>/`` (``input/`` uploads, ``out/`` the output directory with plan.gpkg).
Production: ``postgresql://…`` — the same tables in PostgreSQL, and each finished job's layers also
copied into PostGIS tables ``gridplan_layers.j<id>_<layer>`` from which the layer routes read.

A job row is written (and committed) before the 202 is sent, and every state change is a single
conditional UPDATE, so a crash at any point leaves a row the next start can act on
(:meth:`Store.recover`).
"""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from api.settings import Settings

LAYERS = ("grids", "stations", "service_areas", "households", "units", "workers")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL = ("succeeded", "failed", "cancelled")
PG_SCHEMA = "gridplan_layers"

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
)
keys = sa.Table(
    "gridplan_keys", metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
)
meta = sa.Table(
    "gridplan_meta", metadata,
    sa.Column("k", sa.String(64), primary_key=True),
    sa.Column("v", sa.Text),
)

_ENGINES: dict[str, sa.Engine] = {}


def engine_for(settings: Settings) -> sa.Engine:
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
        _ENGINES[url] = eng
    return eng


def _row(r) -> dict:
    d = dict(r._mapping)
    for k in ("summary", "params", "inputs"):
        if d.get(k) is not None:
            try:
                d[k] = json.loads(d[k])
            except ValueError:
                pass
    return d


class Store:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = engine_for(settings)
        self.root = settings.data_path
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ paths
    def job_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def input_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "input"

    def out_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "out"

    # ------------------------------------------------------------------ jobs
    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex[:16]

    def create_job(self, job_id: str, params: dict, inputs: dict) -> dict:
        now = time.time()
        with self.engine.begin() as c:
            c.execute(jobs.insert().values(id=job_id, status="queued", progress=0.0, stage="queued",
                                           params=json.dumps(params), inputs=json.dumps(inputs),
                                           created_at=now, updated_at=now, attempts=0))
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> dict | None:
        with self.engine.connect() as c:
            r = c.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return _row(r) if r else None

    def list_jobs(self, status: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        q = sa.select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit).offset(offset)
        if status:
            q = q.where(jobs.c.status == status)
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(q)]

    def count_jobs(self, status: str | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(jobs)
        if status:
            q = q.where(jobs.c.status == status)
        with self.engine.connect() as c:
            return int(c.execute(q).scalar_one())

    def status_counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()
        return {s: 0 for s in STATUSES} | {r[0]: int(r[1]) for r in rows}

    def newest_succeeded(self) -> dict | None:
        q = (sa.select(jobs.c.id, jobs.c.finished_at).where(jobs.c.status == "succeeded")
             .order_by(jobs.c.finished_at.desc(), jobs.c.id.desc()).limit(1))
        with self.engine.connect() as c:
            r = c.execute(q).first()
        return dict(r._mapping) if r else None

    def claim_next(self, owner: str) -> dict | None:
        """Atomically move the oldest queued job to running (None when the queue is empty)."""
        with self.engine.connect() as c:
            cands = c.execute(sa.select(jobs.c.id).where(jobs.c.status == "queued")
                              .order_by(jobs.c.created_at, jobs.c.id).limit(5)).scalars().all()
        for job_id in cands:
            now = time.time()
            with self.engine.begin() as c:
                n = c.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "queued").values(
                    status="running", stage="starting", started_at=now, updated_at=now, owner=owner,
                    attempts=jobs.c.attempts + 1, error=None)).rowcount
            if n == 1:
                return self.get_job(job_id)
        return None

    def set_pid(self, job_id: str, pid: int | None) -> None:
        with self.engine.begin() as c:
            c.execute(jobs.update().where(jobs.c.id == job_id).values(runner_pid=pid))

    def progress(self, job_id: str, stage: str, progress: float) -> bool:
        """Record progress of a running job; False when it is no longer running (e.g. cancelled)."""
        p = float(min(max(progress, 0.0), 1.0)) if progress == progress else 0.0
        with self.engine.begin() as c:
            n = c.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "running").values(
                stage=str(stage)[:200], progress=p, updated_at=time.time())).rowcount
        return n == 1

    def finish(self, job_id: str, status: str, error: str | None = None, summary: dict | None = None,
               only_if: tuple[str, ...] = ("running",)) -> bool:
        assert status in FINAL
        now = time.time()
        vals = dict(status=status, error=error, updated_at=now, finished_at=now, runner_pid=None,
                    stage=status)
        if status == "succeeded":
            vals["progress"] = 1.0
        if summary is not None:
            vals["summary"] = json.dumps(summary, allow_nan=False, default=str)
        with self.engine.begin() as c:
            n = c.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status.in_(only_if)).values(**vals)).rowcount
        return n == 1

    def requeue(self, job_id: str, reason: str) -> bool:
        with self.engine.begin() as c:
            n = c.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "running").values(
                status="queued", stage="queued", progress=0.0, error=reason, runner_pid=None, owner=None,
                updated_at=time.time())).rowcount
        return n == 1

    def cancel(self, job_id: str) -> bool:
        return self.finish(job_id, "cancelled", error="cancelled by request", only_if=("queued", "running"))

    def recover(self, owner: str, max_attempts: int, only_owner: str | None = None) -> list[tuple[str, str]]:
        """At start-up: every job left 'running' by a dead process is re-queued (while it has attempts
        left) or failed with the reason. Returns [(job_id, new status)]."""
        q = sa.select(jobs).where(jobs.c.status == "running")
        if only_owner is not None:
            q = q.where(jobs.c.owner == only_owner)
        with self.engine.connect() as c:
            stale = [_row(r) for r in c.execute(q)]
        done = []
        for j in stale:
            if j.get("owner") == owner:
                continue  # ours and alive
            _kill_stale_runner(j.get("runner_pid"), j["id"])
            if j["attempts"] < max_attempts:
                if self.requeue(j["id"], f"interrupted: the server stopped while the job ran "
                                         f"(attempt {j['attempts']}); re-queued"):
                    done.append((j["id"], "queued"))
            elif self.finish(j["id"], "failed", error=f"interrupted: the server stopped while the job ran, "
                                                      f"{j['attempts']} time(s); not retried"):
                done.append((j["id"], "failed"))
        return done

    # ------------------------------------------------------------------ meta
    def get_meta(self, k: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(meta.c.v).where(meta.c.k == k)).scalar_one_or_none()

    def set_meta(self, k: str, v: str) -> None:
        with self.engine.begin() as c:
            if c.execute(meta.update().where(meta.c.k == k).values(v=v)).rowcount == 0:
                c.execute(meta.insert().values(k=k, v=v))

    # ------------------------------------------------------------------ layers
    def layer_table(self, job_id: str, layer: str) -> str:
        return f"j{job_id}_{layer}"

    def publish_layers(self, job_id: str) -> None:
        """PostgreSQL: copy the finished job's plan.gpkg layers into PostGIS tables (no-op for SQLite)."""
        if not self.settings.is_postgres:
            return
        import pyogrio

        gpkg = self.out_dir(job_id) / "plan.gpkg"
        with self.engine.begin() as c:
            c.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
            c.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"'))
        for name, _ in pyogrio.list_layers(gpkg):
            if name not in LAYERS:
                continue
            gdf = pyogrio.read_dataframe(gpkg, layer=name)
            gdf = gdf.rename_geometry("geom") if gdf.geometry.name != "geom" else gdf
            gdf.to_postgis(self.layer_table(job_id, name), self.engine, schema=PG_SCHEMA, if_exists="replace",
                           index=False)

    def has_layer(self, job_id: str, layer: str) -> bool:
        if self.settings.is_postgres:
            insp = sa.inspect(self.engine)
            return insp.has_table(self.layer_table(job_id, layer), schema=PG_SCHEMA)
        import pyogrio

        gpkg = self.out_dir(job_id) / "plan.gpkg"
        return gpkg.exists() and layer in {n for n, _ in pyogrio.list_layers(gpkg)}

    def read_layer(self, job_id: str, layer: str):
        """The layer as a WGS 84 GeoDataFrame."""
        if self.settings.is_postgres:
            import geopandas as gpd

            return gpd.read_postgis(sa.text(f'SELECT * FROM "{PG_SCHEMA}"."{self.layer_table(job_id, layer)}"'),
                                    self.engine, geom_col="geom")
        import pyogrio

        return pyogrio.read_dataframe(self.out_dir(job_id) / "plan.gpkg", layer=layer)

    def drop_layers(self, job_id: str) -> None:
        if not self.settings.is_postgres:
            return
        with self.engine.begin() as c:
            for name in LAYERS:
                c.execute(sa.text(f'DROP TABLE IF EXISTS "{PG_SCHEMA}"."{self.layer_table(job_id, name)}"'))


def _kill_stale_runner(pid: int | None, job_id: str) -> None:
    """Stop a runner orphaned by a crashed server — only if that pid is still our runner for this job."""
    if not pid:
        return
    try:
        cmd = Path(f"/proc/{int(pid)}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if b"api.worker" in cmd and job_id.encode() in cmd:
        try:
            os.kill(int(pid), 9)
        except OSError:
            pass
