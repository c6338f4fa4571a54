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


SAMPLE_DAY = "2026-06-01"  # the day the committed sample drive was recorded


def sample_day() -> str:
    """The day `sample_drive` moves the recording to: yesterday (UTC), so the server's
    time window (a year) never makes the committed drive stale."""
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")


def _nmea_checksum(body: str) -> str:
    value = 0
    for ch in body:
        value ^= ord(ch)
    return f"{value:02X}"


@pytest.fixture
def sample_drive(tmp_path: Path) -> Path:
    """A copy of the committed sample drive (tests never touch sample_data/), moved to
    `sample_day()` with the same times of day."""
    target = tmp_path / "drive"
    shutil.copytree(SAMPLE_DATA / "drives" / "sample", target)
    day = sample_day()
    index = target / "frames.csv"
    index.write_text(index.read_text().replace(SAMPLE_DAY, day))
    old, new = SAMPLE_DAY[8:10] + SAMPLE_DAY[5:7] + SAMPLE_DAY[2:4], day[8:10] + day[5:7] + day[2:4]
    lines = []
    for line in (target / "track.nmea").read_text().splitlines():
        if line.startswith("$GPRMC") and f",{old}," in line:
            body = line[1 : line.index("*")].replace(f",{old},", f",{new},")
            line = f"${body}*{_nmea_checksum(body)}"
        lines.append(line)
    (target / "track.nmea").write_text("\n".join(lines) + "\n")
    return target
