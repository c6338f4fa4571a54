"""One frame end to end: device -> real Mosquitto -> ingest -> database + image store -> API."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import protocol
from broker import BrokerConfig, EmbeddedBrokerLogins
from edge.identity import DeviceIdentity, load_key
from roadmesh.stack import LocalStack
from tests.conftest import sample_day
from tests.webapp.test_api_frames import verify_provenance

pytestmark = pytest.mark.e2e

HELSINKI_BBOX = "24.90,60.15,24.99,60.20"


class DeviceClient:
    """A raw MQTT v5 client logged in as a device, recording PUBACK reason codes."""

    def __init__(self, stack: LocalStack, username: str, password: str) -> None:
        self.acks: dict[int, Any] = {}
        self.done = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(username, password)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", stack.mqtt_port)
        self.client.loop_start()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        with self.done:
            self.acks[mid] = reason
            self.done.notify_all()

    def publish(self, topic: str, payload: bytes) -> Any:
        info = self.client.publish(topic, payload, qos=1)
        with self.done:
            assert self.done.wait_for(lambda: info.mid in self.acks, timeout=10), "no PUBACK"
            return self.acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_frame(
    device_id: str, seq: int, jpeg: bytes, lat: float = 60.17, lon: float = 24.94
) -> protocol.Frame:
    return protocol.Frame(
        device_id=device_id,
        seq=seq,
        captured_at_us=int(time.time() * 1e6),
        position=protocol.Position(
            lat=lat, lon=lon, fix=protocol.FixType.FIX_3D, satellites=9, hdop=0.8
        ),
        camera_id="cam0",
        intrinsics_ref="test",
        quality=protocol.Quality(sharpness=100.0, exposure=0.5, obstruction=0.0),
        privacy=protocol.PrivacyCounts(),
        jpeg=jpeg,
    )


def a_jpeg(sample: Path, index: int) -> bytes:
    return (sample / "frames" / f"{index:06d}.jpg").read_bytes()


def test_a_replayed_drive_is_stored_and_served_as_geojson(
    stack: LocalStack, sample_drive: Path
) -> None:
    device_dir = stack.provision("dev-replay")
    result = stack.replay(sample_drive, device_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 stored and 0 rejected (receipts)" in result.stdout
    stack.wait_for_frames(12)

    body = stack.get_json(f"/api/v1/frames?bbox={HELSINKI_BBOX}")
    features = [f for f in body["features"] if f["properties"]["device"] == "dev-replay"]
    assert [f["properties"]["seq"] for f in features] == list(range(1, 13))
    first = features[0]
    lon, lat = first["geometry"]["coordinates"]
    assert lat == pytest.approx(60.17076, abs=1e-4) and lon == pytest.approx(24.94556, abs=1e-4)
    assert first["properties"]["captured_at"] == f"{sample_day()}T09:00:00.500000Z"

    status, image, content_type = stack.get(
        f"/api/v1/images/{first['properties']['image_sha256']}.jpg"
    )
    assert status == 200 and content_type == "image/jpeg"
    assert image == (sample_drive / "frames" / "000000.jpg").read_bytes()
    assert hashlib.sha256(image).hexdigest() == first["properties"]["image_sha256"]
    # the door kept the device's signature: a consumer checks the frame from its provenance
    assert verify_provenance(first, image)


def test_replaying_the_same_drive_again_publishes_nothing_new(
    stack: LocalStack, sample_drive: Path
) -> None:
    device_dir = stack.provision("dev-again")
    assert stack.replay(sample_drive, device_dir).returncode == 0
    before = stack.wait_for_frames(12)["frames"]
    again = stack.replay(sample_drive, device_dir)
    assert again.returncode == 0
    assert "signed 0 of 12 frames" in again.stdout and "12 already there" in again.stdout
    assert stack.stats()["frames"] == before


def test_a_frame_delivered_twice_is_stored_once(stack: LocalStack, sample_drive: Path) -> None:
    device_dir = stack.provision("dev-twice")
    identity = DeviceIdentity.load(device_dir)
    payload = protocol.encode(
        make_frame("dev-twice", 1, a_jpeg(sample_drive, 3)), load_key(device_dir)
    )
    before = stack.stats()["frames"]
    client = DeviceClient(stack, identity.mqtt.username, identity.mqtt.password)
    try:
        topic = protocol.topic_for("dev-twice", protocol.Channel.FRAMES)
        assert not client.publish(topic, payload).is_failure
        assert not client.publish(topic, payload).is_failure
    finally:
        client.close()
    stack.wait_for_frames(before + 1)
    time.sleep(1.0)  # give the second copy time to be (not) stored
    body = stack.get_json(f"/api/v1/frames?bbox={HELSINKI_BBOX}")
    assert len([f for f in body["features"] if f["properties"]["device"] == "dev-twice"]) == 1
    assert stack.stats()["frames"] == before + 1


def test_a_tampered_frame_is_rejected_and_recorded(stack: LocalStack, sample_drive: Path) -> None:
    device_dir = stack.provision("dev-tamper")
    identity = DeviceIdentity.load(device_dir)
    key = load_key(device_dir)
    honest = protocol.encode(make_frame("dev-tamper", 1, a_jpeg(sample_drive, 4)), key)
    # Move the claimed position after signing: the signature no longer covers the bytes.
    moved = protocol.encode(make_frame("dev-tamper", 1, a_jpeg(sample_drive, 4), lat=60.18), key)
    tampered = bytearray(honest)
    diff = [i for i, (a, b) in enumerate(zip(honest, moved, strict=True)) if a != b]
    for i in diff[: len(diff) // 2 or 1]:
        tampered[i] = moved[i]
    client = DeviceClient(stack, identity.mqtt.username, identity.mqtt.password)
    try:
        assert not client.publish(
            protocol.topic_for("dev-tamper", protocol.Channel.FRAMES), bytes(tampered)
        ).is_failure
    finally:
        client.close()
    stack.wait_for(
        lambda: stack.stats()["rejected"].get("bad_signature", 0) >= 1, 10, "the rejection"
    )
    body = stack.get_json(f"/api/v1/frames?bbox={HELSINKI_BBOX}")
    assert not [f for f in body["features"] if f["properties"]["device"] == "dev-tamper"]


def test_a_frame_from_an_unregistered_device_is_rejected_and_recorded(
    stack: LocalStack, sample_drive: Path
) -> None:
    # A broker login without a registered device (e.g. an externally managed broker).
    logins = EmbeddedBrokerLogins(BrokerConfig.load(stack.broker_config.run_dir))
    logins.add_device("dev-ghost", "ghost-password")
    ghost_key = protocol.generate_private_key()
    payload = protocol.encode(make_frame("dev-ghost", 1, a_jpeg(sample_drive, 5)), ghost_key)
    client = DeviceClient(stack, "dev-ghost", "ghost-password")
    try:
        assert not client.publish(
            protocol.topic_for("dev-ghost", protocol.Channel.FRAMES), payload
        ).is_failure
    finally:
        client.close()
    stack.wait_for(
        lambda: stack.stats()["rejected"].get("unregistered_device", 0) >= 1, 10, "the rejection"
    )


def test_the_broker_refuses_a_device_publishing_under_another_devices_topic(
    stack: LocalStack, sample_drive: Path
) -> None:
    victim_dir = stack.provision("dev-victim")
    attacker_dir = stack.provision("dev-attacker")
    attacker = DeviceIdentity.load(attacker_dir)
    # Even a frame correctly signed by the victim's key cannot be injected by another login.
    payload = protocol.encode(
        make_frame("dev-victim", 1, a_jpeg(sample_drive, 6)), load_key(victim_dir)
    )
    client = DeviceClient(stack, attacker.mqtt.username, attacker.mqtt.password)
    try:
        reason = client.publish(protocol.topic_for("dev-victim", protocol.Channel.FRAMES), payload)
    finally:
        client.close()
    assert reason.is_failure and "authori" in str(reason).lower()
    time.sleep(0.5)
    body = stack.get_json(f"/api/v1/frames?bbox={HELSINKI_BBOX}")
    assert not [f for f in body["features"] if f["properties"]["device"] == "dev-victim"]


def test_a_wrong_password_is_refused_at_login(stack: LocalStack) -> None:
    device_dir = stack.provision("dev-login")
    identity = DeviceIdentity.load(device_dir)
    refused = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bad-login", protocol=mqtt.MQTTv5)
    client.username_pw_set(identity.mqtt.username, "not-the-password")
    client.on_connect = lambda c, u, f, reason, p: refused.set() if reason.is_failure else None
    client.connect("127.0.0.1", stack.mqtt_port)
    client.loop_start()
    try:
        assert refused.wait(5)
    finally:
        client.loop_stop()


def test_frames_the_server_refuses_are_reported_by_the_replay_and_listed_by_edge_status(
    stack: LocalStack, tmp_path: Path
) -> None:
    """A drive recorded long ago: every frame is refused as stale, and the device knows it
    from the receipts (the broker had taken them all)."""
    device_dir = stack.provision("dev-stale")
    drive = tmp_path / "stale"
    stack.roadmesh(
        "sim", "drive", "--out", str(drive), "--minutes", "1", "--start", "2024-01-02T08:00:00Z"
    )
    result = stack.replay(drive, device_dir)
    assert result.returncode == 0, result.stdout + result.stderr  # every frame has a receipt
    match = re.search(r"(\d+) stored and (\d+) rejected \(receipts\)", result.stdout)
    assert match and match.group(1) == "0" and int(match.group(2)) > 0, result.stdout
    assert f"rejected by the server: timestamp_stale {match.group(2)}" in result.stdout
    status = stack.roadmesh("edge", "status", "--device-dir", str(device_dir)).stdout
    assert f"{match.group(2)} rejected by the server" in status
    assert "rejected frame 1: timestamp_stale: captured" in status
