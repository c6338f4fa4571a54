"""One commit path: a batch gives the same outcomes, rows and flags as batches of one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from ingest.door import Door, Outcome
from tests.ingest.streams import HonestDrive, crop, encode_jpeg, make_frame
from webapp.accounts.models import User
from webapp.fleet.models import Device, Frame, RejectedMessage
from webapp.fleet.provisioning import register_device
from webapp.images import LocalObjectStore
from webapp.jobs.models import Job

pytestmark = pytest.mark.django_db


def mixed_stream(keys: dict[str, Ed25519PrivateKey]) -> list[tuple[str, bytes]]:
    """Honest frames with, mixed in: redeliveries, a replayed seq, a copied image, a teleport,
    stationary farming, a forged signature, an unknown device, a status message."""
    a = HonestDrive("dev-a", keys["dev-a"], seed=1)
    b = HonestDrive("dev-b", keys["dev-b"], seed=2, lat=60.2)
    out: list[tuple[str, bytes]] = []
    for s in range(1, 31):
        out.append(("devices/dev-a/frames", a.payload(s)))
        if s % 2:
            out.append(("devices/dev-b/frames", b.payload(s)))
        if s in (3, 11, 12):
            out.append(
                ("devices/dev-a/frames", a.payload(s))
            )  # redelivered, sometimes in the same batch
        if s == 9:  # dev-b sends dev-a's picture of seq 9
            f = a.frame(9)
            copy = make_frame("dev-b", 100, f.captured_at_us, 60.2, 24.95, f.jpeg)
            out.append(("devices/dev-b/frames", protocol.encode(copy, keys["dev-b"])))
        if s == 14:  # the same seq again with another image
            f = a.frame(14)
            other = make_frame(
                "dev-a", 14, f.captured_at_us, f.position.lat, f.position.lon, a.frame(20).jpeg
            )
            out.append(("devices/dev-a/frames", protocol.encode(other, keys["dev-a"])))
    teleport = a.frame(31)
    out.append(
        (
            "devices/dev-a/frames",
            protocol.encode(
                make_frame("dev-a", 31, teleport.captured_at_us, 61.0, 25.5, teleport.jpeg),
                keys["dev-a"],
            ),
        )
    )
    farm = HonestDrive("dev-b", keys["dev-b"], seed=3, lat=60.3, start_us=b.start_us + 200_000_000)
    for s in range(200, 212):  # twelve frames, 10 s apart, from one spot
        f = farm.frame(1)
        jpeg = encode_jpeg(crop(farm.strip, 30.0 * (s - 200)), 85)
        out.append(
            (
                "devices/dev-b/frames",
                protocol.encode(
                    make_frame(
                        "dev-b",
                        s,
                        f.captured_at_us + (s - 200) * 10_000_000,
                        f.position.lat,
                        f.position.lon,
                        jpeg,
                    ),
                    keys["dev-b"],
                ),
            )
        )
    out.append(("devices/dev-a/frames", protocol.encode(a.frame(40), keys["dev-b"])))  # forged
    out.append(
        (
            "devices/dev-x/frames",
            protocol.encode(HonestDrive("dev-x", keys["dev-b"], seed=4).frame(1), keys["dev-b"]),
        )
    )  # unregistered
    status = protocol.Status("dev-a", a.start_us, protocol.DeviceState.ONLINE)
    out.append(("devices/dev-a/status", protocol.encode(status, keys["dev-a"])))
    return out


def snapshot(outcomes: list[Outcome]) -> tuple[list[Any], list[Any], int, int]:
    names = {f.pk: (f.device.device_id, f.seq) for f in Frame.objects.select_related("device")}

    def evidence(e: dict[str, Any]) -> dict[str, Any]:
        return {k: names.get(v, v) if k == "other_frame" else v for k, v in e.items()}

    frames = sorted(
        (
            names[f.pk],
            f.state,
            f.fraud_score,
            [(x["check"], evidence(x["evidence"])) for x in f.flags],
        )
        for f in Frame.objects.all()
    )
    results = [
        (o.status, o.reason, names.get(o.frame_id) if o.frame_id else None, o.checks)
        for o in outcomes
    ]
    return results, frames, RejectedMessage.objects.count(), Job.objects.count()


def test_a_batch_stores_and_flags_exactly_what_batches_of_one_do(
    tmp_path: Path,
) -> None:
    owner = User.objects.create_user("driver", role=User.Role.DRIVER)
    keys = {d: protocol.generate_private_key() for d in ("dev-a", "dev-b")}
    for name, key in keys.items():
        register_device(owner, name, protocol.public_key_bytes(key))
    stream = mixed_stream(keys)
    door = Door(LocalObjectStore(tmp_path / "one"))
    one = [door.handle(t, p) for t, p in stream]
    expected = snapshot(one)
    assert {o.status for o in one} == {"stored", "duplicate", "rejected", "ignored"}
    checks = {c for o in one for c in o.checks}
    assert {"duplicate_image", "teleport", "stationary_farming"} <= checks, checks

    Frame.objects.all().delete()
    RejectedMessage.objects.all().delete()
    Job.objects.all().delete()
    door = Door(LocalObjectStore(tmp_path / "batch"))
    batched: list[Outcome] = []
    for i in range(0, len(stream), 7):
        batched += door.commit([door.prepare(t, p) for t, p in stream[i : i + 7]])
    assert snapshot(batched) == expected
    assert Device.objects.get(device_id="dev-a").online is True


def test_a_batch_writes_every_new_image_to_the_store_once(tmp_path: Path) -> None:
    owner = User.objects.create_user("driver", role=User.Role.DRIVER)
    key = protocol.generate_private_key()
    register_device(owner, "dev-a", protocol.public_key_bytes(key))
    drive = HonestDrive("dev-a", key, seed=5)
    store = LocalObjectStore(tmp_path / "images")
    door = Door(store)
    payloads = [drive.payload(s) for s in (1, 2, 3, 2)]
    outcomes = door.commit([door.prepare("devices/dev-a/frames", p) for p in payloads])
    assert [o.status for o in outcomes] == ["stored", "stored", "stored", "duplicate"]
    assert outcomes[3].frame_id == outcomes[1].frame_id
    for s in (1, 2, 3):
        assert store.get(drive.frame(s).image_sha256.hex()) == drive.frame(s).jpeg
    assert not list((tmp_path / "images").rglob(".tmp-*"))
