"""`close-epoch` over the database and an in-process EVM: allocations with proofs, frames
counted once, the root and inputs hash on chain, claims that pay; `verify` recomputes every
epoch from its published file and names the first differing account when a row is altered."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3.api.basic_int as h3i
import pytest
from django.test import Client

from contracts.chain import Chain
from rewards.inputs import EpochInputs
from tests.contracts.evm import evm_chain
from tests.webapp.rows import frame_row
from webapp.accounts.models import User
from webapp.fleet.models import Device, Frame
from webapp.payouts.epochs import close_epoch
from webapp.payouts.models import Allocation, CellCoverage, Epoch
from webapp.payouts.verify import verify_epoch

pytestmark = pytest.mark.django_db

END_1 = datetime(2026, 11, 8, tzinfo=UTC)
END_2 = END_1 + timedelta(days=7)
WALLET_A = "0x" + "a1" * 20
WALLET_B = "0x" + "b2" * 20


def _cells(n: int, lat: float) -> list[int]:
    return [h3i.latlng_to_cell(lat + 0.0003 * i, 24.94, 12) for i in range(n)]


def _device(username: str, wallet: str, device_id: str) -> Device:
    owner = User.objects.create_user(username, wallet_address=wallet)
    return Device.objects.create(device_id=device_id, owner=owner, public_key=b"\x00" * 32)


def _drive(device: Device, cells: list[int], at: datetime, seq0: int = 1, **fields: object) -> None:
    for i, cell in enumerate(cells):
        frame_row(
            device,
            seq0 + i,
            at + timedelta(seconds=2 * i),
            h3_r12=cell,
            state=fields.get("state", Frame.State.ACCEPTED),
            server_sharpness=400.0,
            server_brightness=120.0,
            image_sha256=f"{device.pk:08x}{seq0 + i:056x}",
        )


@pytest.fixture
def chain() -> Chain:
    return evm_chain()


@pytest.fixture
def closer(tmp_path: Path, chain: Chain) -> Callable[[datetime], Epoch]:
    def run(ends_at: datetime) -> Epoch:
        return close_epoch(
            ends_at=ends_at,
            epoch_days=7,
            overrides={},
            publish_dir=tmp_path / "published",
            file_uri=lambda p: p.resolve().as_uri(),
            chain=chain,
            progress=lambda line: None,
        ).epoch

    return run


def test_an_epoch_is_scored_published_and_claimable(
    chain: Chain, closer: Callable[[datetime], Epoch]
) -> None:
    a, b = _device("alice", WALLET_A, "dev-a"), _device("bob", WALLET_B, "dev-b")
    _drive(a, _cells(30, 60.17), END_1 - timedelta(days=2))
    _drive(b, _cells(10, 60.20), END_1 - timedelta(days=2))
    _drive(b, _cells(5, 60.30), END_1 - timedelta(days=2), seq0=100, state=Frame.State.FLAGGED)
    epoch = closer(END_1)
    assert epoch.state == Epoch.State.PUBLISHED and epoch.frames == 40
    assert Frame.objects.filter(rewarded_epoch=1).count() == 40
    assert Frame.objects.filter(state=Frame.State.FLAGGED, rewarded_epoch=None).count() == 5
    allocs = {x.wallet_address: x for x in Allocation.objects.filter(epoch=epoch)}
    # 30 new cells against 10: the coverage pool splits 3:1, the review pool has no votes
    assert int(allocs[WALLET_A].amount) == 3 * int(allocs[WALLET_B].amount)
    assert chain.epoch_root(1).root.hex() == epoch.merkle_root[2:]
    assert chain.epoch_root(1).inputs_hash.hex() == epoch.inputs_sha256
    assert chain.total_funded() == int(epoch.new_amount)
    proof = [bytes.fromhex(h[2:]) for h in allocs[WALLET_A].proof]
    paid = chain.claim(WALLET_A, int(allocs[WALLET_A].cumulative_amount), proof).paid
    assert paid == int(allocs[WALLET_A].amount) == chain.balance_of(WALLET_A)
    assert CellCoverage.objects.count() == 40
    top = allocs[WALLET_A].breakdown["accounts"][0]["coverage"]
    assert top["cells"] == 30 and top["devices"][0]["quality"] == 1.0


def test_a_second_epoch_counts_only_new_frames_and_carries_cumulative_amounts(
    chain: Chain, closer: Callable[[datetime], Epoch]
) -> None:
    a, b = _device("alice", WALLET_A, "dev-a"), _device("bob", WALLET_B, "dev-b")
    _drive(a, _cells(20, 60.17), END_1 - timedelta(days=6))
    closer(END_1)
    _drive(b, _cells(20, 60.17), END_2 - timedelta(days=1))  # the same cells, in epoch 2
    second = closer(END_2)
    assert second.frames == 20  # alice's frames were counted in epoch 1
    allocs = {x.wallet_address: x for x in Allocation.objects.filter(epoch=second)}
    first_a = Allocation.objects.get(epoch__number=1, wallet_address=WALLET_A)
    assert int(allocs[WALLET_A].amount) == 0
    assert allocs[WALLET_A].cumulative_amount == first_a.cumulative_amount
    assert int(allocs[WALLET_B].amount) > 0
    bob = allocs[WALLET_B].breakdown["accounts"][0]["coverage"]
    assert bob["mean_freshness"] == pytest.approx(0.2, abs=0.001)  # covered 6 of 30 days before
    for wallet in (WALLET_A, WALLET_B):
        proof = [bytes.fromhex(h[2:]) for h in allocs[wallet].proof]
        chain.claim(wallet, int(allocs[wallet].cumulative_amount), proof)
        assert chain.balance_of(wallet) == int(allocs[wallet].cumulative_amount)


def test_verify_passes_on_every_closed_epoch(
    chain: Chain, closer: Callable[[datetime], Epoch]
) -> None:
    a, b = _device("alice", WALLET_A, "dev-a"), _device("bob", WALLET_B, "dev-b")
    _drive(a, _cells(12, 60.17), END_1 - timedelta(days=1))
    closer(END_1)
    _drive(b, _cells(8, 60.19), END_2 - timedelta(days=1))
    closer(END_2)
    for number in (1, 2):
        verdict = verify_epoch(chain, number)
        assert verdict.ok, verdict.lines


def test_verify_names_the_first_differing_account_when_one_input_row_is_altered(
    tmp_path: Path, chain: Chain, closer: Callable[[datetime], Epoch]
) -> None:
    a, b = _device("alice", WALLET_A, "dev-a"), _device("bob", WALLET_B, "dev-b")
    _drive(a, _cells(12, 60.17), END_1 - timedelta(days=1))
    _drive(b, _cells(12, 60.19), END_1 - timedelta(days=1))
    epoch = closer(END_1)
    src = zipfile.ZipFile(epoch.inputs_file)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for name in src.namelist():
            data = src.read(name).decode()
            if name == "frames.csv":  # bob's first frame: a blurred picture (sharpness 10)
                lines = data.splitlines()
                i = next(k for k, line in enumerate(lines) if line.startswith("dev-b,"))
                cols = lines[i].split(",")
                cols[6] = "10.0"
                lines[i] = ",".join(cols)
                data = "\n".join(lines) + "\n"
            out.writestr(name, data)
    altered = tmp_path / "epoch-000001-inputs.zip"
    altered.write_bytes(buf.getvalue())
    (tmp_path / "epoch-000001-claims.json").write_bytes(Path(epoch.claims_file).read_bytes())
    assert EpochInputs.read(altered).frames["device"].tolist().count("dev-b") == 12
    verdict = verify_epoch(chain, 1, inputs=str(altered))
    assert not verdict.ok
    assert any("sha256" in p for p in verdict.problems)
    first = next(p for p in verdict.problems if p.startswith("first differing account"))
    assert WALLET_A in first  # bob's points fell, so alice's share grew; 0xa1.. sorts first
    assert any("recomputed root" in p for p in verdict.problems)


def test_an_owner_without_a_wallet_is_withheld_and_the_rest_is_unchanged(
    chain: Chain, closer: Callable[[datetime], Epoch]
) -> None:
    a, b = _device("alice", WALLET_A, "dev-a"), _device("bob", "", "dev-b")
    _drive(a, _cells(10, 60.17), END_1 - timedelta(days=1))
    _drive(b, _cells(10, 60.19), END_1 - timedelta(days=1))
    epoch = closer(END_1)
    assert list(
        Allocation.objects.filter(epoch=epoch).values_list("wallet_address", flat=True)
    ) == [WALLET_A]
    assert int(epoch.withheld_amount) == int(epoch.new_amount) > 0
    assert chain.total_funded() == int(epoch.new_amount)


def test_an_epoch_with_nothing_to_pay_is_closed_empty(
    chain: Chain, closer: Callable[[datetime], Epoch]
) -> None:
    epoch = closer(END_1)
    assert epoch.state == Epoch.State.EMPTY and epoch.merkle_root == ""
    assert chain.pending_epoch() == 0 and chain.active_epoch() == 0


def test_the_api_serves_a_wallets_proof_and_the_published_files(
    client: Client, closer: Callable[[datetime], Epoch]
) -> None:
    a = _device("alice", WALLET_A, "dev-a")
    _drive(a, _cells(5, 60.17), END_1 - timedelta(days=1))
    epoch = closer(END_1)
    body = client.get(f"/api/v1/rewards/proof/{WALLET_A.upper().replace('0X', '0x')}").json()
    assert body["epoch"] == 1 and body["merkle_root"] == epoch.merkle_root
    assert body["cumulative_amount"] == str(Allocation.objects.get().cumulative_amount)
    assert body["breakdown"]["accounts"][0]["coverage"]["cells"] == 5
    assert client.get("/api/v1/rewards/proof/0x" + "00" * 20).status_code == 404
    assert client.get("/api/v1/rewards/proof/nope").status_code == 400
    r = client.get("/api/v1/rewards/files/epoch-000001-claims.json")
    assert r.status_code == 200
    assert json.loads(b"".join(r.streaming_content))["root"] == epoch.merkle_root  # type: ignore[attr-defined]
    assert client.get("/api/v1/rewards/files/epoch-000002-claims.json").status_code == 404


def test_a_detection_counts_as_confirmed_when_reviewers_accepted_it_or_kept_its_class() -> None:
    from tests.webapp.people import detection, device, feature, frames_along, person
    from webapp.mapping.models import ReviewTask
    from webapp.payouts.epochs import _detection_reviews

    dev = device(person("reviewed"), "dev-rev")
    frames = frames_along(dev, 4)
    feat = feature("stop", 60.17, 24.94)
    for frame, decided in zip(frames, ["accept", "reject", "give_way", "stop"], strict=True):
        ReviewTask.objects.create(
            feature=feat,
            detection=detection(frame, feat, label="stop"),
            state=ReviewTask.State.DECIDED,
            decided_label=decided,
        )
    reviews = _detection_reviews(["dev-rev"])
    assert sorted(reviews["confirmed"].tolist()) == [0, 0, 1, 1]  # accept and "stop" again
