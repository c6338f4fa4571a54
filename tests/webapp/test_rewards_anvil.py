"""The rewards commands end to end on anvil (a real JSON-RPC node, run as one process):
deploy, close-epoch, then verify and claim in separate processes that cannot reach any
database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3.api.basic_int as h3i
import pytest

from contracts.anvil import DEV_ACCOUNT, Anvil
from contracts.chain import Chain, Deployment
from roadmesh.cli import main
from tests.webapp.rows import frame_row
from webapp.accounts.models import User
from webapp.fleet.models import Device, Frame

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WALLET = "0x" + "a1" * 20


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    node = Anvil.start()
    try:
        yield node
    finally:
        node.stop()


def _env(anvil: Anvil, tmp_path: Path) -> dict[str, str]:
    return {
        "ROADMESH_CHAIN_RPC_URL": anvil.url,
        "ROADMESH_CHAIN_DEPLOYMENT": str(tmp_path / "deployment.json"),
        "ROADMESH_REWARDS_DIR": str(tmp_path / "published"),
    }


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A separate `roadmesh` process whose database URL points nowhere."""
    full = {**os.environ, **env, "ROADMESH_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
    return subprocess.run(
        [sys.executable, "-m", "roadmesh.cli", *args],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_close_verify_and_claim_on_anvil(
    anvil: Anvil,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = _env(anvil, tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["rewards", "deploy"]) == 0
    owner = User.objects.create_user("alice", wallet_address=WALLET)
    device = Device.objects.create(device_id="dev-a", owner=owner, public_key=b"\x00" * 32)
    at = datetime.now(UTC) - timedelta(hours=2)
    for i in range(6):
        frame_row(
            device,
            i + 1,
            at + timedelta(seconds=i),
            h3_r12=h3i.latlng_to_cell(60.17 + 0.0003 * i, 24.94, 12),
            state=Frame.State.ACCEPTED,
            server_sharpness=300.0,
            server_brightness=120.0,
            image_sha256=f"{i:064x}",
        )
    assert main(["rewards", "close-epoch"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1: 6 rewardable frames" in out and "epoch 1: published" in out

    verified = _cli(["rewards", "verify", "--epoch", "1"], env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "epoch 1 verified" in verified.stdout

    claims = json.loads((tmp_path / "published" / "epoch-000001-claims.json").read_text())
    owed = int(claims["claims"][WALLET]["cumulative_amount"])
    claimed = _cli(["rewards", "claim", "--wallet", WALLET], env)
    assert claimed.returncode == 0, claimed.stdout + claimed.stderr
    assert f"claimed {owed} base units" in claimed.stdout
    chain = Chain.connect(anvil.url, deployment=Deployment.load(tmp_path / "deployment.json"))
    assert chain.balance_of(WALLET) == owed and chain.sender == DEV_ACCOUNT
    again = _cli(["rewards", "claim", "--wallet", WALLET], env)
    assert again.returncode == 0 and "nothing to claim" in again.stdout


def test_verify_fails_with_a_clear_message_when_the_epoch_has_no_root(
    anvil: Anvil, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(anvil, tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["rewards", "deploy"]) == 0
    result = _cli(["rewards", "verify", "--epoch", "3"], env)
    assert result.returncode == 1 and "epoch 3 has no root on chain" in result.stdout
