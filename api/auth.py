"""API keys: ``planner`` (everything) and ``reader`` (GET and lookup). Stored as SHA-256 hashes only.

A key is ``gp_<id>_<secret>``; the row holds its id, the hash of the whole key and its role. The
server keeps a small in-memory cache hash -> role so the lookup hot path never touches the database.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
import time

import sqlalchemy as sa

from gridplan.api.keyadmin import touch_key
from gridplan.api.settings import Settings
from gridplan.api.store import engine_for, keys

ROLES = ("planner", "reader")
RANK = {"reader": 1, "planner": 2}


def hash_key(key: str) -> str:
    """Return the SHA-256 hex digest of ``key`` (what the keys table stores)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(role: str, data_dir: str = "gridplan-data", database_url: str | None = None) -> str:
    """Create a key with ``role`` and return it (shown once; only its hash is stored)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    settings = Settings(data_dir=data_dir, database_url=database_url)
    return create_key_in(engine_for(settings), role)


def create_key_in(engine: sa.Engine, role: str) -> str:
    """Create a key with ``role`` in the database of ``engine`` and return it (only its hash is stored)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    kid = secrets.token_hex(4)
    key = f"gp_{kid}_{secrets.token_urlsafe(24)}"
    with engine.begin() as c:
        c.execute(keys.insert().values(id=kid, key_hash=hash_key(key), role=role, created_at=time.time(),
                                       revoked=False))
    return key


class KeyCache:
    """hash -> role, filled from the database on a miss; unknown keys are remembered briefly.

    Entries live ``ttl_s`` (1 s), so a key revoked by any server sharing the database stops
    working everywhere within a second; a database hit also records the key's last use (at most
    once a minute per key).
    """

    def __init__(self, engine: sa.Engine, ttl_s: float = 1.0, negative_ttl_s: float = 2.0, max_size: int = 10000):
        self.engine, self.ttl, self.neg_ttl, self.max_size = engine, ttl_s, negative_ttl_s, max_size
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def role_of(self, key: str | None) -> str | None:
        """Return the role of ``key``, None when it is missing, too long, unknown or revoked (cached)."""
        if not key or len(key) > 200:
            return None
        h = hash_key(key)
        now = time.monotonic()
        hit = self._cache.get(h)
        if hit is not None and hit[1] > now:
            return hit[0]
        with self.engine.connect() as c:
            row = c.execute(sa.select(keys.c.role, keys.c.last_used)
                            .where(keys.c.key_hash == h, keys.c.revoked == sa.false())).first()
        role = row[0] if row else None
        if row is not None and (row[1] is None or time.time() - row[1] > 60):
            touch_key(self.engine, h)
        with self._lock:
            if len(self._cache) >= self.max_size:
                self._cache.clear()
            self._cache[h] = (role, now + (self.ttl if role else self.neg_ttl))
        return role


# ---------------------------------------------------------------------------------- FastAPI dependencies
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from gridplan.api.problems import ProblemError

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="An API key from `gridplan keys create --role planner|reader`.")


def check_key(cache: KeyCache, key: str | None, need: str = "reader") -> str:
    """Return the role of ``key`` if it may do what needs ``need``.

    Raises a 401 (no or unknown key) or a 403 (a role below ``need``) :class:`ProblemError`.
    Used by the route dependencies and by the front middleware, which checks an upload's key
    before reading its body.
    """
    if not key:
        raise ProblemError(401, "an API key is required: send it in the X-API-Key header",
                           kind="unauthorized", headers={"WWW-Authenticate": "X-API-Key"})
    role = cache.role_of(key)
    if role is None:
        raise ProblemError(401, "the API key is not valid", kind="unauthorized",
                           headers={"WWW-Authenticate": "X-API-Key"})
    if RANK[role] < RANK[need]:
        raise ProblemError(403, f"this needs a {need} key; yours is a {role} key", kind="forbidden")
    return role


def _role(request: Request, key: str | None) -> str:
    return check_key(request.app.state.ctx.keys, key, "reader")


async def reader(request: Request, key: str | None = Depends(api_key_header)) -> str:
    """Require any valid key (reader or planner); return its role."""
    return _role(request, key)


async def planner(request: Request, key: str | None = Depends(api_key_header)) -> str:
    """Require a planner key; return its role."""
    return check_key(request.app.state.ctx.keys, key, "planner")
