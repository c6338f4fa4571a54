"""POST /api/v1/devices: only a driver registers, within a limit, with a key it proves it
holds by signing a one-time server challenge; keys are unique and must be real points."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client
from django.utils import timezone

import protocol
from edge.provision import registration_message as device_message
from tests.webapp.people import person
from webapp.accounts.models import User
from webapp.api.models import RegistrationChallenge
from webapp.fleet.enrolment import is_weak_key, registration_message
from webapp.fleet.models import Device

pytestmark = pytest.mark.django_db
PASSWORD = "pw-" + "x" * 12

# RFC 8032 small-order points (libsodium's blocklist): identity, order 2, 4 and 8 points
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
]


def basic(user: str, password: str = PASSWORD) -> dict[str, str]:
    return {
        "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    }


def enrol(
    client: Client,
    user: str,
    key: Ed25519PrivateKey | None = None,
    *,
    public: bytes | None = None,
    sign_as: str | None = None,
    nonce: str | None = None,
    device_id: str | None = None,
) -> Any:
    key = key or Ed25519PrivateKey.generate()
    if nonce is None:
        got = client.post("/api/v1/devices/challenge", **basic(user))
        assert got.status_code == 201, got.content
        nonce = got.json()["challenge"]
    public = public if public is not None else protocol.public_key_bytes(key)
    signature = key.sign(registration_message(nonce, sign_as or user, public))
    body = {"public_key": public.hex(), "challenge": nonce, "signature": signature.hex()}
    if device_id:
        body["device_id"] = device_id
    return client.post(
        "/api/v1/devices", json.dumps(body), content_type="application/json", **basic(user)
    )


def test_a_driver_registers_a_device_by_signing_the_challenge(client: Client) -> None:
    person("driver")
    response = enrol(client, "driver", device_id="dev-ok")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["device_id"] == "dev-ok" and body["mqtt"]["username"] == "dev-ok"
    assert Device.objects.get(device_id="dev-ok").owner.username == "driver"


def test_the_device_and_the_server_sign_the_same_bytes() -> None:
    key = b"\x07" * 32
    assert device_message("n0nce", "alice", key) == registration_message("n0nce", "alice", key)


@pytest.mark.parametrize("role", [User.Role.CONSUMER, User.Role.REVIEWER])
def test_an_account_that_is_not_a_driver_may_not_register_devices(
    client: Client, role: str
) -> None:
    person("someone", role)
    response = client.post("/api/v1/devices/challenge", **basic("someone"))
    assert response.status_code == 403
    assert "drivers" in response.json()["error"]


def test_a_signature_by_another_key_proves_nothing(client: Client) -> None:
    person("driver")
    claimed = protocol.public_key_bytes(Ed25519PrivateKey.generate())
    response = enrol(client, "driver", public=claimed)  # signed by a different key
    assert response.status_code == 400
    assert "signature" in response.json()["error"]


def test_a_challenge_signed_for_another_owner_is_refused(client: Client) -> None:
    person("driver")
    response = enrol(client, "driver", sign_as="mallory")
    assert response.status_code == 400


def test_a_challenge_works_once_and_not_after_it_expires(client: Client) -> None:
    owner = person("driver")
    nonce = client.post("/api/v1/devices/challenge", **basic("driver")).json()["challenge"]
    assert enrol(client, "driver", nonce=nonce).status_code == 201
    again = enrol(client, "driver", nonce=nonce)
    assert again.status_code == 400 and "already used" in again.json()["error"]
    old = RegistrationChallenge.issue(owner, 60)
    RegistrationChallenge.objects.filter(pk=old.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    late = enrol(client, "driver", nonce=old.nonce)
    assert late.status_code == 400 and "expired" in late.json()["error"]


def test_another_devices_public_key_cannot_be_registered_again(client: Client) -> None:
    person("driver")
    person("thief")
    key = Ed25519PrivateKey.generate()
    assert enrol(client, "driver", key).status_code == 201
    stolen = enrol(client, "thief", key)  # even with the private key: one key, one device
    assert stolen.status_code == 409
    assert "already registered" in stolen.json()["error"]


def test_a_taken_device_id_cannot_be_taken_again(client: Client) -> None:
    person("driver")
    person("other")
    assert enrol(client, "driver", device_id="dev-x").status_code == 201
    assert enrol(client, "other", device_id="dev-x").status_code == 409


@pytest.mark.parametrize("raw", SMALL_ORDER)
def test_an_all_zero_or_small_order_key_is_refused(client: Client, raw: str) -> None:
    person("driver")
    assert is_weak_key(bytes.fromhex(raw))
    response = enrol(client, "driver", public=bytes.fromhex(raw))
    assert response.status_code == 400
    assert "usable Ed25519" in response.json()["error"]


def test_real_keys_are_not_weak() -> None:
    for _ in range(20):
        assert not is_weak_key(protocol.public_key_bytes(Ed25519PrivateKey.generate()))


def test_an_owner_registers_no_more_devices_than_the_limit(client: Client, web: Any) -> None:
    web(devices_per_owner=2)
    person("driver")
    assert enrol(client, "driver").status_code == 201
    assert enrol(client, "driver").status_code == 201
    third = enrol(client, "driver")
    assert third.status_code == 403 and "limit is 2" in third.json()["error"]


def test_a_non_ascii_basic_header_is_a_400_not_a_500(client: Client) -> None:
    response = client.post("/api/v1/devices/challenge", HTTP_AUTHORIZATION="Basic ÿÿÿÿ")
    assert response.status_code == 400
    assert "Authorization" in response.json()["error"]
    not_utf8 = base64.b64encode(b"\xff\xfe:\xff").decode()
    assert (
        client.post("/api/v1/devices/challenge", HTTP_AUTHORIZATION=f"Basic {not_utf8}").status_code
        == 400
    )


def test_a_deeply_nested_json_body_is_a_400_not_a_500(client: Client) -> None:
    person("driver")
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post(
        "/api/v1/devices", deep, content_type="application/json", **basic("driver")
    )
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    moderately = json.dumps(
        {
            "public_key": [
                [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
            ]
        }
    )
    assert (
        client.post(
            "/api/v1/devices", moderately, content_type="application/json", **basic("driver")
        ).status_code
        == 400
    )


def test_a_wrong_password_is_a_401(client: Client) -> None:
    person("driver")
    response = client.post("/api/v1/devices/challenge", **basic("driver", "wrong"))
    assert response.status_code == 401


def test_the_owner_sees_their_devices_and_nobody_elses(client: Client) -> None:
    owner, other = person("driver"), person("other")
    assert enrol(client, "driver", device_id="dev-mine").status_code == 201
    assert client.get("/api/v1/me/devices").status_code == 401
    assert client.get("/api/v1/me/devices/dev-mine").status_code == 401
    client.force_login(owner)
    assert [d["device_id"] for d in client.get("/api/v1/me/devices").json()["devices"]] == [
        "dev-mine"
    ]
    assert client.get("/api/v1/me/devices/dev-mine").status_code == 200
    client.force_login(other)
    assert client.get("/api/v1/me/devices").json()["devices"] == []
    assert client.get("/api/v1/me/devices/dev-mine").status_code == 404


def test_the_nesting_check_counts_brackets_outside_strings_only() -> None:
    from webapp.api.jsonbody import nesting_exceeds

    assert not nesting_exceeds(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', 3)
    assert not nesting_exceeds(b'{"a": "\\"[[[[[[[[["}', 2)
    assert nesting_exceeds(b'{"a": [[[1]]]}', 3)
    assert not nesting_exceeds(b'{"a": [[1]]}', 3)
