"""Server settings: one frozen dataclass, filled from arguments or ``GRIDPLAN_*`` environment variables."""
from __future__ import annotations

import json
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "GRIDPLAN_"
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _parse(text: str, kind: Any):
    """Parse one environment value as the field's type.

    Types: ``int``, ``float``, ``bool``, ``str``, ``Path``, ``X | None`` where "none"/"null" give
    None, and ``dict``/``list`` from JSON.
    """
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if text.strip().lower() in ("none", "null"):
            return None
        kind = args[0] if len(args) == 1 else str
    origin = typing.get_origin(kind) or kind
    if origin is bool:
        low = text.strip().lower()
        if low not in _TRUE | _FALSE:
            raise ValueError(f"expected one of {', '.join(sorted(_TRUE | _FALSE))}")
        return low in _TRUE
    if origin in (dict, list, tuple):
        value = json.loads(text)
        if not isinstance(value, dict if origin is dict else list):
            raise ValueError(f"expected a JSON {'object' if origin is dict else 'array'}")
        return tuple(value) if origin is tuple else value
    if origin is float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    if origin in (int, str, Path):
        return origin(text.strip() if origin is not str else text)
    return text


@dataclass(frozen=True)
class Settings:
    """The server's settings: storage, limits, timeouts, leases, retention and the read limits.

    Every field can be set as the environment variable ``GRIDPLAN_<FIELD>`` (see
    :meth:`from_env`); the comment beside each field says what it governs.
    """

    data_dir: str = "gridplan-data"
    database_url: str | None = None          # None: SQLite at <data_dir>/gridplan.sqlite
    max_upload_bytes: int = 512 * 1024 * 1024  # whole multipart body of POST /v1/jobs (413 above)
    max_json_bytes: int = 16 * 1024 * 1024     # JSON bodies (POST /v1/lookup)
    max_batch_points: int = 100_000
    lookup_max_points_columnar: int = 1_000_000   # POST /v1/lookup as Arrow IPC / Parquet / CSV (413 above)
    max_columnar_bytes: int = 256 * 1024 * 1024   # such a columnar lookup body (413 above)
    tile_cache_mb: float = 64.0              # encoded vector tiles kept in memory (api.tilecache)
    tile_warm: bool = True                   # build the live plan's tile source + overview tiles when it changes
    request_timeout_s: float = 60.0          # every request but uploads and downloads (504 past it)
    job_workers: int = 1                     # job runner processes at once
    max_attempts: int = 2                    # runs of one job before a crash marks it failed
    runner: str = "gridplan.api.worker:run_plan"      # "module:function" that computes a plan (tests swap it)
    job_timeout_s: float | None = None       # wall-clock cap for one job run (None: none)
    index_cache: int = 4                     # lookup indexes kept in memory (newest plan + recent others)
    poll_interval_s: float = 0.5             # dispatcher polling of the job queue
    log_level: str = "info"
    lease_s: float = 30.0                    # a running job's lease; its server renews it every lease_s/3
    retention_days: float = 0.0              # finished jobs older than this are purged (0: keep all)
    sweep_interval_s: float = 600.0          # how often the retention sweep runs
    orphan_grace_s: float = 3600.0           # job dirs without a row / temp files older than this are removed
    zip_cache_s: float = 86400.0             # a cached download zip older than this is removed (0: keep)
    # --- hostile clients (api/guard.py, api/submitcheck.py)
    upload_idle_timeout_s: float = 30.0      # an upload that sends nothing for this long -> 408
    upload_timeout_s: float = 900.0          # a whole upload body must arrive within this -> 408
    submit_check_memory_mb: int = 3072       # address-space cap of the submit-time check process (413 past it)
    submit_check_cpu_s: float = 120.0        # CPU-time cap of that process (413 past it)
    submit_check_wall_s: float = 300.0       # wall-clock safety net for that process (413 past it)
    submit_check_concurrency: int = 2        # submit-time checks at once per server (others wait)
    max_queued_jobs: int = 100               # queued jobs in the whole service (429 past it)
    max_queued_jobs_per_key: int = 10        # queued jobs submitted with one key (429 past it)
    max_merge_layers: int = 8                # legacy layers files of one merge job (422 past it)
    queue_retry_after_s: int = 30            # Retry-After sent with a queue-full 429
    metrics_public: bool = False             # True: GET /metrics needs no key
    public_published: bool = False           # True: the live plan's OGC API collections need no key
    # --- what one uploaded file may cost to read (geo.io.ReadLimits; the limit is named in the 413)
    read_max_bytes: int = 512 * 1024 * 1024  # bytes after decompression (a zip's members together)
    read_max_ratio: float = 100.0            # decompressed bytes per zipped byte (zip bombs: far beyond)
    read_max_rows: int = 2_000_000           # rows / features (the generated province: 932,791 points)
    read_max_vertices: int = 20_000_000      # coordinates of all geometries
    read_max_json_bytes: int = 256 * 1024 * 1024  # a GeoJSON file (parsed whole in memory)
    extra: dict = field(default_factory=dict)

    @property
    def data_path(self) -> Path:
        """Return the data directory as a path."""
        return Path(self.data_dir)

    @property
    def db_url(self) -> str:
        """Return the SQLAlchemy URL: ``database_url`` (PostgreSQL via psycopg 3) or the data dir's SQLite file."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.data_path / 'gridplan.sqlite').resolve()}"

    @property
    def is_postgres(self) -> bool:
        """Tell whether the database is PostgreSQL (layers then live in PostGIS)."""
        return self.db_url.startswith("postgresql")

    def with_(self, **kw) -> "Settings":
        """Return a copy with the fields in ``kw`` replaced."""
        return replace(self, **kw)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Read settings from ``GRIDPLAN_<FIELD>`` environment variables, then ``overrides``.

        Every field is read, by its own type; an override of None means "not given". An empty
        variable means "the default"; a malformed one raises ``ValueError`` naming it.
        """
        env = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values = {}
        for f in fields(cls):
            if not f.init:
                continue
            name = ENV_PREFIX + f.name.upper()
            text = env.get(name)
            if text is None or text == "":
                continue
            try:
                values[f.name] = _parse(text, hints[f.name])
            except ValueError as e:
                raise ValueError(f"{name}={text!r}: {e}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
