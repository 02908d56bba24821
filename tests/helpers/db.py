"""A private PostgreSQL database per test (created and dropped on the server named by
GRIDPLAN_TEST_DATABASE_URL), so parallel test runs never share tables."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest

PG_URL = os.environ.get("GRIDPLAN_TEST_DATABASE_URL")


@contextmanager
def private_pg_database():
    """Yield the URL of a fresh database on the test server; drop it afterwards."""
    if not PG_URL:
        pytest.skip("GRIDPLAN_TEST_DATABASE_URL is not set (.ci/run starts PostgreSQL/PostGIS)")
    psycopg = pytest.importorskip("psycopg")
    pytest.importorskip("geoalchemy2")
    name = f"gridplan_t_{uuid.uuid4().hex[:12]}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    base, _, _db = admin.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        from gridplan.api.store import _ENGINES
        for url in [u for u in _ENGINES if name in u]:
            _ENGINES.pop(url).dispose()
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
