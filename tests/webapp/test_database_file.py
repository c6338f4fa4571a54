"""The default SQLite database holds password hashes and sessions: only its owner reads it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_a_new_sqlite_database_and_its_journal_files_are_created_0600(tmp_path: Path) -> None:
    env = {**os.environ, "ROADMESH_DATA_DIR": str(tmp_path / "data")}
    env.pop("ROADMESH_DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "-m", "roadmesh", "web", "migrate"],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = sorted(data.glob("roadmesh.sqlite3*"))
    assert files and files[0].name == "roadmesh.sqlite3"
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
