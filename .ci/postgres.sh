#!/usr/bin/env bash
# PostgreSQL + PostGIS for the postgres-marked tests (gridplan serve --database-url postgresql://...).
#
# As root: installs postgresql + postgresql-15-postgis-3 (Debian packages) when missing, starts the
# cluster, creates role/database "gridplan" with PostGIS, and writes the URL to
#   ${GRIDPLAN_PG_URL_FILE:-/tmp/gridplan-test-database-url}
# and prints it as the last line:  GRIDPLAN_TEST_DATABASE_URL=postgresql://...
# Not root (or a step fails): prints "SKIP postgres: <reason>" and exits 0; the file is removed.
# Idempotent and fast when everything is already there. Exports nothing, safe to `source` or run.
# .ci/run:  bash .ci/postgres.sh && export GRIDPLAN_TEST_DATABASE_URL="$(cat /tmp/gridplan-test-database-url 2>/dev/null)"
(
set -u
URL_FILE="${GRIDPLAN_PG_URL_FILE:-/tmp/gridplan-test-database-url}"
rm -f "$URL_FILE"
skip() { echo "SKIP postgres: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "not root, so PostgreSQL/PostGIS cannot be installed; postgres tests will be skipped"
PGV=""
if ! ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then
  echo "postgres: installing postgresql + postgis from Debian packages..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  PGV=$(apt-cache show postgresql 2>/dev/null | sed -n 's/^Depends: postgresql-\([0-9]\+\).*/\1/p' | head -1)
  [ -n "$PGV" ] || PGV=15
  apt-get install -y -qq "postgresql" "postgresql-$PGV-postgis-3" >/dev/null 2>&1 \
    || skip "apt-get install postgresql postgresql-$PGV-postgis-3 failed"
fi
command -v pg_lsclusters >/dev/null || skip "pg_lsclusters not found after install"
read -r VER CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -1) || true
if [ -z "${VER:-}" ]; then
  VER=$(ls /usr/lib/postgresql | sort -n | tail -1)
  pg_createcluster "$VER" main >/dev/null || skip "pg_createcluster $VER main failed"
  read -r VER CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -1)
fi
if [ "$STATUS" != "online" ]; then
  pg_ctlcluster "$VER" "$CLUSTER" start || skip "could not start cluster $VER/$CLUSTER"
fi
for _ in $(seq 1 50); do pg_isready -q -p "$PORT" && break; sleep 0.2; done
pg_isready -q -p "$PORT" || skip "PostgreSQL $VER/$CLUSTER is not accepting connections on port $PORT"
psql_() { su postgres -c "psql -p $PORT -v ON_ERROR_STOP=1 -qtAX $*"; }
psql_ "-c \"SELECT 1 FROM pg_roles WHERE rolname='gridplan'\"" | grep -q 1 \
  || psql_ "-c \"CREATE ROLE gridplan LOGIN PASSWORD 'gridplan' SUPERUSER\"" >/dev/null || skip "CREATE ROLE failed"
psql_ "-c \"SELECT 1 FROM pg_database WHERE datname='gridplan_test'\"" | grep -q 1 \
  || psql_ "-c \"CREATE DATABASE gridplan_test OWNER gridplan\"" >/dev/null || skip "CREATE DATABASE failed"
psql_ "-d gridplan_test -c \"CREATE EXTENSION IF NOT EXISTS postgis\"" >/dev/null || skip "CREATE EXTENSION postgis failed"
URL="postgresql://gridplan:gridplan@127.0.0.1:$PORT/gridplan_test"
echo "$URL" > "$URL_FILE"
echo "postgres: PostgreSQL $VER with PostGIS ready; URL written to $URL_FILE"
echo "GRIDPLAN_TEST_DATABASE_URL=$URL"
)
