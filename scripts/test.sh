#!/usr/bin/env bash
# The whole suite, as CI runs it:
#  1. every test on SQLite; the end-to-end tests run on SQLite and on a PostgreSQL server
#     that the tests start themselves;
#  2. the database-backed unit tests again on PostgreSQL.
# Extra arguments go to the first pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
export PYTHONDONTWRITEBYTECODE=1
unset ROADMESH_DATABASE_URL

echo "== pass 1: full suite (SQLite; end-to-end on SQLite and PostgreSQL)"
.venv/bin/python -m pytest "$@"

echo "== pass 2: database tests on PostgreSQL"
pgdir="$(mktemp -d /tmp/roadmesh-pg-XXXXXX)"
admin_url="$(.venv/bin/python -m tests.support.postgres start "$pgdir")"
trap '.venv/bin/python -m tests.support.postgres stop "$pgdir"; rm -rf "$pgdir"' EXIT
ROADMESH_DATABASE_URL="$admin_url" .venv/bin/python -m pytest -q tests/ingest tests/webapp -m "not e2e"
