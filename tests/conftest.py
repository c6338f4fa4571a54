"""Fixtures shared by every test package: real PostgreSQL and the local stack."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO / "sample_data"


def traversable_tmpdir(prefix: str) -> Path:
    """A temp dir that the `mosquitto` and `postgres` users can reach when we run as root.

    pytest's own tmp_path lives under a 0700 directory, which those users cannot enter.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    return path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for this test run (scripts/test.sh may pass one in)."""
    attached = os.environ.get("ROADMESH_TEST_PG_DIR")
    if attached:
        yield PostgresServer.attach(Path(attached))
        return
    base = traversable_tmpdir("roadmesh-pg-")
    server = PostgresServer.start(base)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def sample_drive(tmp_path: Path) -> Path:
    """A copy of the committed sample drive (tests never touch sample_data/)."""
    target = tmp_path / "drive"
    shutil.copytree(SAMPLE_DATA / "drives" / "sample", target)
    return target
