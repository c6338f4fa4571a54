"""A fleet of honest test devices publishing through the real device path (edge outbox + uplink).

Used by the ingest reliability tests and `bench/ingest.py`: each device is provisioned in
the stack, signs synthetic frames (tests.ingest.streams), enqueues them in its durable
SQLite outbox and drains it over MQTT v5 QoS 1, exactly as a dashcam does: a frame leaves
the outbox only when a signed receipt from the server names it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import protocol
from edge.identity import DeviceIdentity, load_key
from edge.outbox import Outbox
from edge.uplink import MqttUplink
from roadmesh.stack import LocalStack
from tests.ingest.streams import HonestDrive


@dataclass
class TestDevice:
    device_id: str
    drive: HonestDrive
    outbox: Outbox
    uplink: MqttUplink
    enqueued: list[int] = field(default_factory=list)

    def enqueue(self) -> int:
        topic = protocol.topic_for(self.device_id, protocol.Channel.FRAMES)
        seq = self.outbox.put(lambda s: (topic, self.drive.payload(s)))
        assert seq is not None
        self.enqueued.append(seq)
        self.uplink.pump()
        return seq


class Fleet:
    def __init__(
        self,
        stack: LocalStack,
        prefix: str,
        n: int,
        seed: int = 0,
        receipt_timeout_s: float = 60.0,
        **drive_args: object,
    ) -> None:
        self.devices: list[TestDevice] = []
        for i in range(n):
            device_id = f"{prefix}-{i}"
            device_dir = stack.provision(device_id)
            identity = DeviceIdentity.load(device_dir)
            key = load_key(device_dir)
            outbox = Outbox(Path(device_dir) / "outbox.sqlite", receipt_timeout_s=receipt_timeout_s)
            drive = HonestDrive(
                device_id,
                key,
                seed=seed * 1000 + i,
                lat=60.17 + 0.001 * i,
                **drive_args,  # type: ignore[arg-type]
            )
            uplink = MqttUplink(identity, key, outbox, max_in_flight=32)
            self.devices.append(TestDevice(device_id, drive, outbox, uplink))
        for d in self.devices:
            d.uplink.start()
        for d in self.devices:
            assert d.uplink.connected.wait(10), f"{d.device_id} did not connect"

    def stream(self, frames_per_device: int, rate_per_device: float) -> None:
        """Enqueue and publish frames at a steady rate from every device (one thread each)."""

        def run(d: TestDevice) -> None:
            period = 1.0 / rate_per_device
            next_t = time.monotonic()
            for _ in range(frames_per_device):
                d.enqueue()
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))

        threads = [threading.Thread(target=run, args=(d,)) for d in self.devices]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def stream_in_background(
        self, frames_per_device: int, rate_per_device: float
    ) -> threading.Thread:
        thread = threading.Thread(target=self.stream, args=(frames_per_device, rate_per_device))
        thread.start()
        return thread

    def drain(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        for d in self.devices:
            # A device refused while the broker held devices off retries with backoff: wait for it.
            while d.uplink.refused_login is not None and time.monotonic() < deadline:
                d.uplink.connected.wait(0.2)
            left = max(1.0, deadline - time.monotonic())
            assert d.uplink.drain(left), (
                f"{d.device_id}: receipts did not name every frame after {timeout_s}s:"
                f" {d.outbox.depth()}"
            )
            assert not d.outbox.rejected(), d.outbox.rejected()

    def receipted(self) -> dict[str, list[int]]:
        """Per device, the seqs its kept receipts name as stored (each verified again)."""
        out = {}
        for d in self.devices:
            key = d.uplink.server_key
            named: set[int] = set()
            for _, _, _, payload in d.outbox.receipts():
                named |= set(protocol.decode_receipt(payload, key).stored)
            out[d.device_id] = sorted(named)
        return out

    @property
    def sent(self) -> dict[str, list[int]]:
        return {d.device_id: sorted(d.enqueued) for d in self.devices}

    def close(self) -> None:
        for d in self.devices:
            d.uplink.stop()
            d.outbox.close()
