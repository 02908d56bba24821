"""Server settings: one frozen dataclass, filled from arguments or ``GRIDPLAN_*`` environment variables."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _env(name: str, default, cast=str):
    v = os.environ.get(f"GRIDPLAN_{name}")
    return default if v in (None, "") else cast(v)


@dataclass(frozen=True)
class Settings:
    data_dir: str = "gridplan-data"
    database_url: str | None = None          # None: SQLite at <data_dir>/gridplan.sqlite
    max_upload_bytes: int = 512 * 1024 * 1024  # whole multipart body of POST /v1/jobs (413 above)
    max_json_bytes: int = 16 * 1024 * 1024     # JSON bodies (POST /v1/lookup)
    max_batch_points: int = 100_000
    request_timeout_s: float = 60.0          # every request but uploads and downloads (504 past it)
    job_workers: int = 1                     # job runner processes at once
    max_attempts: int = 2                    # runs of one job before a crash marks it failed
    runner: str = "api.worker:run_plan"      # "module:function" that computes a plan (tests swap it)
    job_timeout_s: float | None = None       # wall-clock cap for one job run (None: none)
    index_cache: int = 4                     # lookup indexes kept in memory (newest plan + recent others)
    poll_interval_s: float = 0.5             # dispatcher polling of the job queue
    log_level: str = "info"
    lease_s: float = 30.0                    # a running job's lease; its server renews it every lease_s/3
    retention_days: float = 0.0              # finished jobs older than this are purged (0: keep all)
    sweep_interval_s: float = 600.0          # how often the retention sweep runs
    orphan_grace_s: float = 3600.0           # job dirs without a row / temp files older than this are removed
    zip_cache_s: float = 86400.0             # a cached download zip older than this is removed (0: keep)
    extra: dict = field(default_factory=dict)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def db_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.data_path / 'gridplan.sqlite').resolve()}"

    @property
    def is_postgres(self) -> bool:
        return self.db_url.startswith("postgresql")

    def with_(self, **kw) -> "Settings":
        return replace(self, **kw)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        s = cls(
            data_dir=_env("DATA_DIR", cls.data_dir),
            database_url=_env("DATABASE_URL", None),
            max_upload_bytes=_env("MAX_UPLOAD_BYTES", cls.max_upload_bytes, int),
            max_json_bytes=_env("MAX_JSON_BYTES", cls.max_json_bytes, int),
            max_batch_points=_env("MAX_BATCH_POINTS", cls.max_batch_points, int),
            request_timeout_s=_env("REQUEST_TIMEOUT_S", cls.request_timeout_s, float),
            job_workers=_env("JOB_WORKERS", cls.job_workers, int),
            max_attempts=_env("MAX_ATTEMPTS", cls.max_attempts, int),
            runner=_env("RUNNER", cls.runner),
            job_timeout_s=_env("JOB_TIMEOUT_S", None, float),
            log_level=_env("LOG_LEVEL", cls.log_level),
            lease_s=_env("LEASE_S", cls.lease_s, float),
            retention_days=_env("RETENTION_DAYS", cls.retention_days, float),
            sweep_interval_s=_env("SWEEP_INTERVAL_S", cls.sweep_interval_s, float),
            orphan_grace_s=_env("ORPHAN_GRACE_S", cls.orphan_grace_s, float),
            zip_cache_s=_env("ZIP_CACHE_S", cls.zip_cache_s, float),
        )
        return replace(s, **{k: v for k, v in overrides.items() if v is not None})
