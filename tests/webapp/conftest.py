"""Standing people for the web tests (owner, another user, a consumer with a key, a
reviewer) and a clean throttle cache per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from django.core.cache import cache

from webapp import tiles
from webapp.api import usage


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # test accounts only: PBKDF2's 1M rounds cost ~0.5 s a login on this machine
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    usage._pending.clear()  # counts of an earlier test's requests
    cache.clear()
    tiles.cache.clear()
    yield
    cache.clear()


@pytest.fixture
def web(settings: Any) -> Any:
    """Change a web setting for one test: `web(anon_rate=Rate(3, 60))`."""

    def change(**values: Any) -> None:
        settings.WEB = replace(settings.WEB, **values)

    return change
