"""The arrows of ARCHITECTURE.md hold, and a broken one fails the check (`make check`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = [
    "protocol",
    "broker",
    "edge",
    "vision",
    "ingest",
    "rewards",
    "contracts",
    "webapp",
    "sim",
    "roadmesh",
]


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter is not installed")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(exe), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_tree(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            REPO / package,
            target / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.sol", "*.js", "node_modules"),
        )
    shutil.copy(REPO / "pyproject.toml", target / "pyproject.toml")
    return target


def test_the_code_keeps_every_import_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_tree(tmp_path / "tree"))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "message"),
    [
        ("webapp/__init__.py", "import ingest.door", "webapp is not allowed to import ingest"),
        ("edge/__init__.py", "import sim.drive", "edge is not allowed to import sim"),
        ("edge/__init__.py", "import django", "edge is not allowed to import django"),
        ("vision/__init__.py", "import webapp.images", "vision is not allowed to import webapp"),
    ],
)
def test_an_import_against_the_arrows_breaks_the_check(
    tmp_path: Path, module: str, line: str, message: str
) -> None:
    tree = copy_tree(tmp_path / "tree")
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # against the architecture\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
