"""MQTT topic names: ``devices/{device_id}/{channel}``.

The broker's ACL lets a device write only under ``devices/{its username}/``, and the
username is the device id, so the topic names the sender; `check_topic` makes sure
the message inside agrees.
"""

from __future__ import annotations

import enum
from typing import Final

from .errors import ProtocolError, RejectReason
from .limits import is_valid_device_id
from .messages import Frame, Message, Status, Telemetry

__all__ = [
    "DEVICE_TO_SERVER",
    "INGEST_SHARE_GROUP",
    "MQTT_QOS",
    "SERVER_TO_DEVICE",
    "TOPIC_ROOT",
    "Channel",
    "channel_for",
    "check_topic",
    "parse_topic",
    "shared_subscription",
    "topic_for",
]

TOPIC_ROOT: Final = "devices"
INGEST_SHARE_GROUP: Final = "ingest"
MQTT_QOS: Final = 1  # every RoadMesh publish and subscription; MQTT v5


class Channel(enum.StrEnum):
    """The last topic level. CONFIG and RECEIPTS flow server -> device; the rest device -> server."""

    FRAMES = "frames"
    TELEMETRY = "telemetry"
    STATUS = "status"
    CONFIG = "config"
    RECEIPTS = "receipts"


# What a device publishes, and what it may subscribe to (its own topics only).
DEVICE_TO_SERVER: Final = (Channel.FRAMES, Channel.TELEMETRY, Channel.STATUS)
SERVER_TO_DEVICE: Final = (Channel.CONFIG, Channel.RECEIPTS)


def _channel(value: str) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        raise ProtocolError(RejectReason.BAD_TOPIC, f"channel: unknown channel {value!r}") from None


def topic_for(device_id: str, channel: Channel) -> str:
    """``devices/{device_id}/{channel}``; ProtocolError(BAD_FIELD) for a malformed device id."""
    if not is_valid_device_id(device_id):
        raise ProtocolError(RejectReason.BAD_FIELD, f"device_id: {device_id!r} is not valid")
    return f"{TOPIC_ROOT}/{device_id}/{_channel(channel)}"


def parse_topic(topic: str) -> tuple[str, Channel]:
    """(device_id, channel) of a concrete topic; ProtocolError(BAD_TOPIC) otherwise."""
    if not isinstance(topic, str):
        raise ProtocolError(
            RejectReason.BAD_TOPIC, f"topic: expected str, got {type(topic).__name__}"
        )
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != TOPIC_ROOT:
        raise ProtocolError(
            RejectReason.BAD_TOPIC, f"topic: {topic[:200]!r} is not devices/<device_id>/<channel>"
        )
    _, device_id, channel = parts
    if not is_valid_device_id(device_id):
        raise ProtocolError(RejectReason.BAD_TOPIC, f"topic: {device_id[:80]!r} is not a device id")
    return device_id, _channel(channel)


def shared_subscription(channel: Channel, group: str = INGEST_SHARE_GROUP) -> str:
    """MQTT v5 shared subscription over every device, e.g. ``$share/ingest/devices/+/frames``."""
    if not group or any(c in group for c in "/+#") or not group.isprintable():
        raise ProtocolError(RejectReason.BAD_TOPIC, f"group: {group!r} is not a valid share name")
    return f"$share/{group}/{TOPIC_ROOT}/+/{_channel(channel)}"


def channel_for(message: Message) -> Channel:
    """The channel a message of this kind is published on."""
    if isinstance(message, Frame):
        return Channel.FRAMES
    if isinstance(message, Telemetry):
        return Channel.TELEMETRY
    if isinstance(message, Status):
        return Channel.STATUS
    raise ProtocolError(
        RejectReason.BAD_FIELD, f"message: not a message ({type(message).__name__})"
    )


def check_topic(topic: str, message: Message) -> str:
    """Check that `message` may arrive on `topic`; return the topic's device id.

    ProtocolError(BAD_TOPIC) for a malformed topic, (TOPIC_MISMATCH) when the message's
    device id or kind disagrees with the topic.
    """
    device_id, channel = parse_topic(topic)
    expected = channel_for(message)
    if channel is not expected:
        raise ProtocolError(
            RejectReason.TOPIC_MISMATCH,
            f"channel: a {type(message).__name__.lower()} arrived on {channel}, expected {expected}",
        )
    if message.device_id != device_id:
        raise ProtocolError(
            RejectReason.TOPIC_MISMATCH,
            f"device_id: message says {message.device_id!r}, topic says {device_id!r}",
        )
    return device_id
