from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from roadmesh.stack import LocalStack
from tests.conftest import traversable_tmpdir
from tests.support.postgres import PostgresServer


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """Broker + one ingest worker + web server, on SQLite and on PostgreSQL (one per module)."""
    database_url = ""
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        database_url = server.create_database("e2e")
    base = traversable_tmpdir(f"roadmesh-e2e-{request.param}-")
    stack = LocalStack(run_dir=base, database_url=database_url)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)
