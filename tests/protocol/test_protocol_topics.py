"""MQTT topic names, shared subscriptions and the topic/message agreement check."""

from __future__ import annotations

import pytest

from protocol import (
    DEVICE_ID_PATTERN,
    Channel,
    Frame,
    ProtocolError,
    RejectReason,
    Status,
    Telemetry,
    channel_for,
    check_topic,
    is_valid_device_id,
    parse_topic,
    shared_subscription,
    topic_for,
)


def test_a_topic_names_the_device_and_the_channel() -> None:
    assert topic_for("cam-0001", Channel.FRAMES) == "devices/cam-0001/frames"
    assert parse_topic("devices/cam-0001/status") == ("cam-0001", Channel.STATUS)
    for channel in Channel:
        assert parse_topic(topic_for("abc", channel)) == ("abc", channel)


def test_ingest_subscribes_to_every_device_through_a_shared_subscription() -> None:
    assert shared_subscription(Channel.FRAMES) == "$share/ingest/devices/+/frames"
    assert shared_subscription(Channel.TELEMETRY, "audit") == "$share/audit/devices/+/telemetry"
    with pytest.raises(ProtocolError):
        shared_subscription(Channel.FRAMES, "a/b")


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "devices/cam-0001",
        "devices/cam-0001/frames/extra",
        "device/cam-0001/frames",
        "devices/+/frames",
        "devices/#",
        "devices/CAM-0001/frames",
        "devices/cam-0001/photos",
        "/devices/cam-0001/frames",
        "$share/ingest/devices/+/frames",
    ],
)
def test_it_rejects_a_malformed_topic(topic: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_topic(topic)
    assert info.value.reason is RejectReason.BAD_TOPIC


def test_it_refuses_to_build_a_topic_for_a_malformed_device_id() -> None:
    with pytest.raises(ProtocolError) as info:
        topic_for("cam/1", Channel.FRAMES)
    assert info.value.reason is RejectReason.BAD_FIELD


def test_each_message_kind_has_its_channel(
    frame: Frame, telemetry: Telemetry, status: Status
) -> None:
    assert channel_for(frame) is Channel.FRAMES
    assert channel_for(telemetry) is Channel.TELEMETRY
    assert channel_for(status) is Channel.STATUS
    assert check_topic("devices/cam-0001/frames", frame) == "cam-0001"


def test_it_rejects_a_frame_published_under_another_device_id(frame: Frame) -> None:
    with pytest.raises(ProtocolError) as info:
        check_topic("devices/cam-0002/frames", frame)
    assert info.value.reason is RejectReason.TOPIC_MISMATCH
    assert info.value.detail.startswith("device_id")


def test_it_rejects_a_message_on_the_wrong_channel(status: Status) -> None:
    with pytest.raises(ProtocolError) as info:
        check_topic("devices/cam-0001/frames", status)
    assert info.value.reason is RejectReason.TOPIC_MISMATCH


@pytest.mark.parametrize(
    ("device_id", "valid"),
    [
        ("abc", True),
        ("cam-0001", True),
        ("0" * 64, True),
        ("ab", False),
        ("0" * 65, False),
        ("-abc", False),
        ("Abc", False),
        ("abc\n", False),
        ("ab c", False),
        ("abç", False),
        ("a+b", False),
        ("$sys", False),
    ],
)
def test_device_ids_are_safe_as_usernames_and_topic_levels(device_id: str, valid: bool) -> None:
    assert is_valid_device_id(device_id) is valid
    assert DEVICE_ID_PATTERN == r"^[a-z0-9][a-z0-9-]{2,63}$"
