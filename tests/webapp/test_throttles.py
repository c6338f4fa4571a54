"""Nothing is free to hammer: API rates per client and key, daily quotas, login and
registration throttles, account lockout after guessed passwords, and a cap on concurrent
heavy requests that keeps /healthz answering."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from tests.webapp.people import bearer, consumer_key, person
from webapp.api.models import ApiKey
from webapp.throttle import ThrottleMiddleware
from webapp.websettings import Rate

pytestmark = pytest.mark.django_db
PASSWORD = "pw-" + "x" * 12


def test_anonymous_api_requests_past_the_rate_get_429_with_retry_after(
    client: Client, web: Any
) -> None:
    web(anon_rate=Rate(3, 60))
    codes = [client.get("/api/v1/stats").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = client.get("/api/v1/stats")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "rate limit" in refused.json()["error"]


def test_each_client_address_has_its_own_budget(client: Client, web: Any) -> None:
    web(anon_rate=Rate(1, 60))
    assert client.get("/api/v1/stats", REMOTE_ADDR="10.0.0.1").status_code == 200
    assert client.get("/api/v1/stats", REMOTE_ADDR="10.0.0.1").status_code == 429
    assert client.get("/api/v1/stats", REMOTE_ADDR="10.0.0.2").status_code == 200


def test_a_key_has_its_own_rate_and_daily_quota(client: Client, web: Any) -> None:
    web(anon_rate=Rate(1, 60), key_rate=Rate(5, 60), daily_quota=3)
    raw = consumer_key()
    codes = [client.get("/api/v1/stats", **bearer(raw)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = client.get("/api/v1/stats", **bearer(raw))
    assert "daily quota" in refused.json()["error"]
    assert int(refused["Retry-After"]) <= 86400
    key = ApiKey.objects.get()
    key.daily_quota = 100
    key.rate_per_minute = 1
    key.save()
    client.get("/api/v1/stats", **bearer(raw))
    assert client.get("/api/v1/stats", **bearer(raw)).status_code == 429  # its own rate now


def test_healthz_is_never_throttled(client: Client, web: Any) -> None:
    web(anon_rate=Rate(1, 60))
    assert {client.get("/healthz").status_code for _ in range(20)} == {200}


def test_the_admin_login_locks_the_account_after_failed_passwords(client: Client, web: Any) -> None:
    admin = person("admin")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    for _ in range(10):
        client.post(
            "/admin/login/", {"username": "admin", "password": "guess"}, REMOTE_ADDR="10.1.0.1"
        )
    right = Client().post(
        "/admin/login/", {"username": "admin", "password": PASSWORD}, REMOTE_ADDR="10.1.0.2"
    )
    assert right.status_code == 429  # locked: the right password does not get in now
    assert "_auth_user_id" not in right.client.session


def test_the_right_password_works_after_a_few_typos(client: Client) -> None:
    person("driver")
    for _ in range(2):
        client.post("/accounts/login/", {"username": "driver", "password": "typo"})
    right = client.post("/accounts/login/", {"username": "driver", "password": PASSWORD})
    assert right.status_code == 302


def test_basic_auth_on_device_registration_locks_after_failed_passwords(client: Client) -> None:
    person("driver")

    def challenge(password: str, ip: str) -> int:
        token = base64.b64encode(f"driver:{password}".encode()).decode()
        return client.post(
            "/api/v1/devices/challenge", HTTP_AUTHORIZATION=f"Basic {token}", REMOTE_ADDR=ip
        ).status_code

    # the fifth failure (ROADMESH_LOGIN_FAILURE_LIMIT) locks the account, from any address
    assert [challenge("guess", f"10.2.0.{i}") for i in range(5)] == [401, 401, 401, 401, 429]
    assert challenge(PASSWORD, "10.2.0.99") == 429


def test_sign_in_posts_from_one_address_are_throttled(client: Client, web: Any) -> None:
    web(login_rate=Rate(3, 60))
    codes = [
        client.post("/accounts/login/", {"username": f"u{i}", "password": "x"}).status_code
        for i in range(4)
    ]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429


def test_a_heavy_request_past_the_concurrency_cap_is_refused_at_once(
    rf: RequestFactory, web: Any
) -> None:
    web(expensive_concurrency=2)
    middleware = ThrottleMiddleware(lambda request: HttpResponse("ok"))
    assert middleware.gate.try_enter() and middleware.gate.try_enter()  # two heavy ones running
    heavy = middleware(rf.get("/api/v1/features", {"bbox": "24,60,25,61"}))
    assert heavy.status_code == 429 and heavy["Retry-After"] == "1"
    assert middleware(rf.get("/healthz")).status_code == 200
    assert middleware(rf.get("/api/v1/stats")).status_code == 200  # cheap: not capped
    middleware.gate.leave()
    assert middleware(rf.get("/api/v1/features", {"bbox": "24,60,25,61"})).status_code == 200
