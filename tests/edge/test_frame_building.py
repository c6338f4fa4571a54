"""What the edge puts on the wire for a kept frame."""

from __future__ import annotations

from datetime import UTC, datetime

import protocol
from edge.gnss import Fix
from edge.identity import DeviceIdentity, MqttLogin
from edge.pipeline import Prepared, build_frame
from vision.privacy import RedactedJpeg
from vision.quality import QualityScores

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 64 + b"\xff\xd9"

SERVER_KEY = protocol.public_key_hex(protocol.generate_private_key())


def prepared(speed_mps: float | None) -> Prepared:
    when = datetime(2026, 6, 1, 9, tzinfo=UTC)
    fix = Fix(when, 60.17, 24.94, 18.0, speed_mps, 90.0, 1, 9, 0.9, 3)
    return Prepared(when, fix, QualityScores(100.0, 0.5, 0.0), RedactedJpeg(JPEG, 1, 0), None, 0)


def test_a_receivers_impossible_speed_goes_out_as_unknown_instead_of_blocking_the_frame() -> None:
    identity = DeviceIdentity(
        "dev-edge", MqttLogin("127.0.0.1", 1883, "dev-edge", "x"), server_public_key=SERVER_KEY
    )
    key = protocol.generate_private_key()
    frame = build_frame(identity, 1, prepared(1064.0))
    assert frame.position.speed_mps is None
    assert protocol.decode(protocol.encode(frame, key)).message.position.speed_mps is None  # type: ignore[union-attr]
    assert build_frame(identity, 2, prepared(13.9)).position.speed_mps == 13.9
