"""The committed artifacts are what the pinned solc makes of the committed sources."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from contracts.chain import ARTIFACTS, CONTRACT_NAMES

REPO = Path(__file__).resolve().parents[2]


def test_recompiling_the_sources_gives_the_committed_artifacts(tmp_path: Path) -> None:
    if shutil.which("node") is None or not (REPO / "node_modules" / "solc").is_dir():
        pytest.skip("node and node_modules/solc are needed (npm ci)")
    subprocess.run(
        ["node", "contracts/compile.js", "--out", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=240,
    )
    for name in CONTRACT_NAMES:
        fresh = json.loads((tmp_path / f"{name}.json").read_text())
        committed = json.loads((ARTIFACTS / f"{name}.json").read_text())
        assert fresh == committed, f"{name}: run `node contracts/compile.js` and commit"
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == sorted(CONTRACT_NAMES)


def test_the_artifacts_pin_the_compiler_and_the_evm_version() -> None:
    for name in CONTRACT_NAMES:
        compiler = json.loads((ARTIFACTS / f"{name}.json").read_text())["compiler"]
        assert compiler["solc"].startswith("0.8.37+")
        assert compiler["settings"]["evmVersion"] == "cancun"
