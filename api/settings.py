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
    # --- hostile clients (api/guard.py, api/submitcheck.py)
    upload_idle_timeout_s: float = 30.0      # an upload that sends nothing for this long -> 408
    upload_timeout_s: float = 900.0          # a whole upload body must arrive within this -> 408
    submit_check_memory_mb: int = 3072       # address-space cap of the submit-time check process (413 past it)
    submit_check_cpu_s: float = 120.0        # CPU-time cap of that process (413 past it)
    submit_check_wall_s: float = 300.0       # wall-clock safety net for that process (413 past it)
    submit_check_concurrency: int = 2        # submit-time checks at once per server (others wait)
    max_queued_jobs: int = 100               # queued jobs in the whole service (429 past it)
    max_queued_jobs_per_key: int = 10        # queued jobs submitted with one key (429 past it)
    queue_retry_after_s: int = 30            # Retry-After sent with a queue-full 429
    metrics_public: bool = False             # True: GET /metrics needs no key
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
        )
        return replace(s, **{k: v for k, v in overrides.items() if v is not None})
