"""API key administration: list keys (never their secret or hash), revoke one, note its last use.

Revocation is a flag on the row; every server's key cache (:class:`api.auth.KeyCache`) re-reads a
key at least once a second, so a revoked key stops working on every server sharing the database
within a second.
"""
from __future__ import annotations

import time

import sqlalchemy as sa

from gridplan.api.store import keys


def list_keys(engine: sa.Engine) -> list[dict]:
    """Every key as ``{"id", "role", "created_at", "last_used", "revoked"}``, oldest first."""
    q = sa.select(keys.c.id, keys.c.role, keys.c.created_at, keys.c.last_used, keys.c.revoked).order_by(
        keys.c.created_at, keys.c.id)
    with engine.connect() as c:
        return [{"id": r.id, "role": r.role, "created_at": r.created_at, "last_used": r.last_used,
                 "revoked": bool(r.revoked)} for r in c.execute(q)]


def revoke_key(engine: sa.Engine, key_id: str) -> str | None:
    """Revoke the key ``key_id`` (the part after ``gp_`` in the key, as ``keys list`` shows it).

    Returns "revoked", "already revoked", or None when there is no such key.
    """
    with engine.begin() as c:
        row = c.execute(sa.select(keys.c.revoked).where(keys.c.id == key_id)).first()
        if row is None:
            return None
        if row[0]:
            return "already revoked"
        c.execute(keys.update().where(keys.c.id == key_id).values(revoked=True))
    return "revoked"


def touch_key(engine: sa.Engine, key_hash: str) -> None:
    """Record that the key with this hash was just used (best effort: never fails a request)."""
    try:
        with engine.begin() as c:
            c.execute(keys.update().where(keys.c.key_hash == key_hash).values(last_used=time.time()))
    except sa.exc.SQLAlchemyError:
        pass
