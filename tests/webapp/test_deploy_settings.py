"""Production settings: `manage.py check --deploy` reports nothing, and the server refuses
to start with a known or weak secret key unless ROADMESH_DEBUG=1."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from webapp.websettings import INSECURE_KEYS

REPO = Path(__file__).resolve().parents[2]
OLD_KEY = next(iter(INSECURE_KEYS))


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ROADMESH_")}
    base.update({"ROADMESH_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run(
        [sys.executable, str(REPO / "webapp" / "manage.py"), *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    done = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        ROADMESH_DEBUG="0",
        ROADMESH_HTTPS="1",
        ROADMESH_ALLOWED_HOSTS="map.example.org",
        ROADMESH_SECRET_KEY=secrets.token_urlsafe(50),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_check_deploy_warns_without_https_settings(tmp_path: Path) -> None:
    done = manage(tmp_path, "check", "--deploy", ROADMESH_SECRET_KEY=secrets.token_urlsafe(50))
    assert "security.W004" in done.stderr + done.stdout  # HSTS: the test above is not vacuous


@pytest.mark.parametrize("key", [OLD_KEY, "short", "django-insecure-" + "a" * 60, "ab" * 40])
def test_the_server_refuses_to_start_with_a_known_or_weak_key(tmp_path: Path, key: str) -> None:
    done = manage(tmp_path, "check", ROADMESH_DEBUG="0", ROADMESH_SECRET_KEY=key)
    assert done.returncode != 0
    assert "ROADMESH_SECRET_KEY is a known, short or repetitive key" in done.stderr


def test_debug_mode_allows_the_old_development_key(tmp_path: Path) -> None:
    done = manage(tmp_path, "check", ROADMESH_DEBUG="1", ROADMESH_SECRET_KEY=OLD_KEY)
    assert done.returncode == 0, done.stderr


def test_without_a_key_the_server_makes_one_of_its_own_kept_0600(tmp_path: Path) -> None:
    assert manage(tmp_path, "check").returncode == 0
    path = tmp_path / "data" / "secret.key"
    first = path.read_text()
    assert len(first.strip()) >= 50
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert manage(tmp_path, "check").returncode == 0
    assert path.read_text() == first
