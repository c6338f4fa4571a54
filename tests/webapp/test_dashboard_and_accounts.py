"""The contributor dashboard shows a driver their devices, refused frames, this epoch and
their earnings with a ready claim; sign-up gives a role; keys are the owner's own."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from web3 import Web3

from contracts.chain import artifact
from tests.webapp.people import T0, device, frames_along, person
from webapp.accounts.models import User
from webapp.api.models import ApiKey
from webapp.fleet.models import Device, Frame, RejectedMessage
from webapp.payouts.models import Allocation, Epoch

pytestmark = pytest.mark.django_db
WALLET = "0x" + "ab" * 20
DISTRIBUTOR = "0x" + "cd" * 20


@pytest.fixture
def driver() -> User:
    owner = person("driver")
    owner.wallet_address = WALLET
    owner.save()
    dev = device(owner, "dev-dash")
    frames = frames_along(dev, 3)
    Frame.objects.filter(pk=frames[2].pk).update(
        state=Frame.State.FLAGGED,
        flags=[
            {"check": "impossible_speed", "score": 1.0, "reason": "a 400 km/h jump", "evidence": {}}
        ],
    )
    RejectedMessage.objects.create(
        topic="devices/dev-dash/frames",
        device_id="dev-dash",
        seq=9,
        reason="bad_signature",
        detail="signature does not match",
        payload_sha256="9" * 64,
        payload_bytes=10,
    )
    epoch = Epoch.objects.create(
        number=1,
        starts_at=T0 - timedelta(days=7),
        ends_at=T0 - timedelta(seconds=1),
        state=Epoch.State.PUBLISHED,
        chain_id=31337,
        distributor=DISTRIBUTOR,
        merkle_root="0x" + "11" * 32,
    )
    Allocation.objects.create(
        epoch=epoch,
        account=owner,
        wallet_address=WALLET,
        amount=Decimal("1250000000000000000"),
        coverage_amount=Decimal("1000000000000000000"),
        review_amount=Decimal("250000000000000000"),
        cumulative_amount=Decimal("1250000000000000000"),
        proof=["0x" + "22" * 32, "0x" + "33" * 32],
        breakdown={
            "coverage": {
                "cells": 12,
                "mean_freshness": 1.0,
                "mean_region": 1.0,
                "mean_demand": 1.2,
                "devices": [
                    {
                        "device": "dev-dash",
                        "frames": 40,
                        "cells": 12,
                        "image": 0.9,
                        "gnss": 1.0,
                        "review": 1.0,
                        "fraud": 1.0,
                        "quality": 0.9,
                    }
                ],
            }
        },
    )
    return owner


def test_the_dashboard_shows_devices_refusals_this_epoch_and_earnings(
    client: Client, driver: User
) -> None:
    client.force_login(driver)
    page = client.get("/dashboard/").content.decode()
    assert "dev-dash" in page
    assert "bad_signature" in page and "a 400 km/h jump" in page
    assert "1.2500 RMT" in page and "epoch 1" in page
    assert "image quality: sharpness and exposure" in page
    assert "2</span> accepted frames" in page


def test_the_dashboard_shows_each_devices_outbox_depth_from_its_newest_telemetry(
    client: Client, driver: User
) -> None:
    client.force_login(driver)
    assert "no telemetry yet" in client.get("/dashboard/").content.decode()
    Device.objects.filter(device_id="dev-dash").update(
        telemetry={"outbox": {"depth": 4321, "bytes": 10}}, telemetry_at=T0
    )
    page = client.get("/dashboard/").content.decode()
    assert ">4321</td>" in page and "no telemetry yet" not in page


def test_the_claim_is_a_ready_distributor_call_with_the_proof(client: Client, driver: User) -> None:
    client.force_login(driver)
    response = client.get("/dashboard/")
    claim = response.context["earnings"][0]["claim"]
    assert claim["to"] == Web3.to_checksum_address(DISTRIBUTOR) and claim["chainId"] == 31337
    contract = Web3().eth.contract(abi=artifact("CumulativeMerkleDistributor")["abi"])
    fn, args = contract.decode_function_input(claim["data"])
    assert fn.fn_name == "claim"
    values = list(args.values())
    assert values[0].lower() == WALLET and values[1] == 1_250_000_000_000_000_000
    assert [b.hex() for b in values[2]] == ["22" * 32, "33" * 32]


def test_another_driver_sees_none_of_it_and_anonymous_users_are_sent_to_sign_in(
    client: Client, driver: User
) -> None:
    client.force_login(person("other"))
    page = client.get("/dashboard/").content.decode()
    assert "dev-dash" not in page and "RMT" not in page and "bad_signature" not in page
    assert "No devices" in page and "No earnings yet" in page
    client.logout()
    response = client.get("/dashboard/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_signing_up_gives_the_chosen_role_and_its_group(client: Client) -> None:
    response = client.post(
        "/accounts/signup/",
        {
            "username": "newbie",
            "email": "n@example.org",
            "password1": "a long enough pass 42",
            "password2": "a long enough pass 42",
            "role": "reviewer",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/review/"
    user = User.objects.get(username="newbie")
    assert user.role == "reviewer" and user.groups.filter(name="reviewers").exists()
    assert client.get("/review/").status_code == 200


def test_nobody_signs_up_as_an_operator(client: Client) -> None:
    client.post(
        "/accounts/signup/",
        {
            "username": "sneaky",
            "password1": "a long enough pass 42",
            "password2": "a long enough pass 42",
            "role": "operator",
        },
    )
    assert not User.objects.filter(username="sneaky").exists()
    assert not Group.objects.filter(name="operators").exists()


def test_login_and_logout_work(client: Client) -> None:
    person("driver")
    ok = client.post("/accounts/login/", {"username": "driver", "password": "pw-" + "x" * 12})
    assert ok.status_code == 302 and ok["Location"] == "/dashboard/"
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/dashboard/").status_code == 302


def test_a_consumer_creates_and_revokes_their_own_keys_only(client: Client) -> None:
    owner, other = person("consumer", User.Role.CONSUMER), person("other", User.Role.CONSUMER)
    client.force_login(owner)
    page = client.post("/account/keys", {"name": "qgis"}).content.decode()
    key = ApiKey.objects.get(owner=owner)
    assert f"rmk_{key.key_id}_" in page  # shown once
    assert client.get("/api/v1/me/keys").json()["keys"][0]["name"] == "qgis"
    client.force_login(other)
    assert client.get("/api/v1/me/keys").json()["keys"] == []
    client.post("/account/keys", {"revoke": key.key_id})
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None  # not theirs to revoke
    client.force_login(owner)
    client.post("/account/keys", {"revoke": key.key_id})
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    client.logout()
    assert client.get("/api/v1/me/keys").status_code == 401
    assert client.get("/account/keys").status_code == 302


def test_the_api_docs_and_the_map_load_nothing_from_a_cdn(client: Client) -> None:
    docs = client.get("/api/v1/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in docs
    page = client.get("/").content.decode()
    assert "/static/maplibre-gl/maplibre-gl.mjs" in page
    for html in (docs, page):
        assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
    bundle = client.get("/static/ninja/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    bundle.close()
    licence = client.get("/licenses/maplibre-gl")
    assert licence.status_code == 200 and b"Copyright" in licence.content
    assert client.get("/api/v1/schema").json()["info"]["title"] == "RoadMesh API"
