"""Who may do what on the broker: passwords, and the dynamic-security document."""

from __future__ import annotations

import pytest

from broker import ADMIN_USER, INGEST_USER, check_password, hash_password
from broker.passwords import PasswordHash
from broker.roles import device_client, device_role, document


def test_a_password_hash_checks_only_its_own_password() -> None:
    stored = hash_password("s3cret")
    assert stored.startswith("$7$101$")
    assert check_password("s3cret", stored)
    assert not check_password("s3cret!", stored)
    assert hash_password("s3cret") != stored  # salted


def test_a_stored_hash_becomes_the_plugins_fields_without_the_password() -> None:
    stored = hash_password("pw", salt=b"0123456789ab")
    fields = PasswordHash.parse(stored).dynsec_fields()
    assert fields == {
        "password": stored.split("$")[4],
        "salt": "MDEyMzQ1Njc4OWFi",
        "iterations": 101,
    }
    with pytest.raises(ValueError, match="not a Mosquitto"):
        PasswordHash.parse("plain-text")


def test_a_device_role_names_only_the_devices_own_topics() -> None:
    acls = {(a["acltype"], a["topic"]) for a in device_role("dev-one")["acls"]}
    assert acls == {
        ("publishClientSend", "devices/dev-one/frames"),
        ("publishClientSend", "devices/dev-one/telemetry"),
        ("publishClientSend", "devices/dev-one/status"),
        ("subscribeLiteral", "devices/dev-one/config"),
        ("publishClientReceive", "devices/dev-one/config"),
        ("subscribeLiteral", "devices/dev-one/receipts"),
        ("publishClientReceive", "devices/dev-one/receipts"),
    }
    assert all(a["allow"] for a in device_role("dev-one")["acls"])


def test_a_device_login_is_bound_to_its_own_client_id_and_role() -> None:
    client = device_client("dev-one", hash_password("pw"))
    assert (client["username"], client["clientid"]) == ("dev-one", "dev-one")
    assert client["roles"] == [{"rolename": "device:dev-one", "priority": 0}]
    with pytest.raises(ValueError, match="not a device id"):
        device_client("svc_ingest", hash_password("pw"))


def test_the_document_denies_by_default_and_holds_services_and_devices() -> None:
    doc = document(
        {"dev-b": hash_password("b"), "dev-a": hash_password("a")},
        {
            INGEST_USER: hash_password("i"),
            ADMIN_USER: hash_password("x"),
        },
    )
    assert doc["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    assert [c["username"] for c in doc["clients"]] == [ADMIN_USER, INGEST_USER, "dev-a", "dev-b"]
    assert "clientid" not in doc["clients"][1]  # ingest workers share one login
    roles = {r["rolename"] for r in doc["roles"]}
    assert roles == {"ingest", "admin", "device:dev-a", "device:dev-b"}
    ingest = next(r for r in doc["roles"] if r["rolename"] == "ingest")
    sends = {a["topic"] for a in ingest["acls"] if a["acltype"] == "publishClientSend"}
    assert sends == {"devices/+/config", "devices/+/receipts"}
