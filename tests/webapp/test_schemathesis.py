"""Schemathesis against the OpenAPI schema at /api/v1/schema: generated requests to every
operation of the consumer API find no server error (5xx) and keep the one error shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.webapp.people import (
    bearer,
    consumer_key,
    detection,
    device,
    feature,
    frames_along,
    person,
)
from webapp.websettings import Rate
from webapp.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/schema", application)


@pytest.fixture
def data(db: None, web: Any) -> Iterator[dict[str, str]]:
    web(anon_rate=Rate(100_000, 60), key_rate=Rate(100_000, 60), login_rate=Rate(100_000, 60))
    frames = frames_along(device(person("driver"), "dev-a"), 3)
    sign = feature("speed_limit_50", 60.17, 24.94)
    detection(frames[0], sign)
    # as Django's test client does: keep the test's connection (and its transaction) open
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield bearer(consumer_key())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_no_generated_request_makes_a_server_error(case: Any, data: dict[str, str]) -> None:
    key = data["HTTP_AUTHORIZATION"]
    response = case.call(headers={"Authorization": key})
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}, (response.status_code, response.text[:300])
