"""Settings of the web app (map, consumer API, review, dashboard) from ROADMESH_* variables.

One frozen dataclass beside `ServerSettings` (webapp/config.py), read once by
webapp/settings.py as `settings.WEB`. Each value has one typed parser that names the
variable when it rejects a value. The README lists every variable.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from webapp.config import ENV_PREFIX, SettingsError, env_bool, env_int, env_path, env_str

# The key older versions shipped as a default; never accepted outside ROADMESH_DEBUG=1.
INSECURE_KEYS = frozenset({"insecure-dev-key-change-me-in-production"})
MIN_SECRET_KEY_LENGTH = 50


@dataclass(frozen=True)
class Rate:
    """`count` requests per `seconds` (parsed from "120/60" or "120/minute")."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, name: str, raw: str) -> Rate:
        units = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
        count, sep, per = raw.strip().partition("/")
        try:
            n = int(count)
            seconds = units[per] if per in units else int(per)
        except (ValueError, KeyError):
            raise SettingsError(
                f"{ENV_PREFIX}{name}={raw!r} is not a rate like 120/minute or 120/60"
            ) from None
        if not sep or n < 1 or seconds < 1:
            raise SettingsError(f"{ENV_PREFIX}{name}={raw!r}: need N/period with N, period >= 1")
        return cls(n, seconds)


def env_rate(name: str, default: str) -> Rate:
    return Rate.parse(name, env_str(name, default))


@dataclass(frozen=True)
class WebSettings:
    # -- HTTPS behind a proxy (production): secure cookies, HSTS, redirect to https
    https: bool = False  # ROADMESH_HTTPS
    hsts_seconds: int = 31_536_000  # ROADMESH_HSTS_SECONDS (with ROADMESH_HTTPS)
    hsts_preload: bool = True  # ROADMESH_HSTS_PRELOAD
    proxy_ssl_header: bool = False  # ROADMESH_TRUST_X_FORWARDED_PROTO
    trust_x_forwarded_for: bool = False  # ROADMESH_TRUST_X_FORWARDED_FOR (client IP, rightmost)
    # -- throttles (per client IP, or per API key where one is sent)
    anon_rate: Rate = Rate(120, 60)  # ROADMESH_API_ANON_RATE
    key_rate: Rate = Rate(600, 60)  # ROADMESH_API_KEY_RATE (a key's own limit overrides it)
    login_rate: Rate = Rate(10, 60)  # ROADMESH_LOGIN_RATE (login forms, device registration)
    tile_rate: Rate = Rate(3000, 60)  # ROADMESH_TILE_RATE (per client IP)
    expensive_concurrency: int = 4  # ROADMESH_EXPENSIVE_CONCURRENCY (per process)
    login_failure_limit: int = 5  # ROADMESH_LOGIN_FAILURE_LIMIT (then the account is locked)
    login_lockout_minutes: int = 15  # ROADMESH_LOGIN_LOCKOUT_MINUTES
    # -- the consumer API
    page_size: int = 100  # ROADMESH_API_PAGE_SIZE
    max_page_size: int = 1000  # ROADMESH_API_MAX_PAGE_SIZE
    daily_quota: int = 50_000  # ROADMESH_API_DAILY_QUOTA (a key's own quota overrides it)
    image_url_seconds: int = 900  # ROADMESH_IMAGE_URL_SECONDS (signed image URLs expire)
    tile_cache_seconds: int = 300  # ROADMESH_TILE_CACHE_SECONDS
    max_body_depth: int = 32  # ROADMESH_API_MAX_JSON_DEPTH
    # -- devices and review
    devices_per_owner: int = 20  # ROADMESH_DEVICES_PER_OWNER
    challenge_seconds: int = 300  # ROADMESH_DEVICE_CHALLENGE_SECONDS
    review_consensus: float = 3.0  # ROADMESH_REVIEW_CONSENSUS (agreeing, accuracy-weighted votes)
    review_gold_every: int = 5  # ROADMESH_REVIEW_GOLD_EVERY (about one task in N is gold)
    # -- the map
    style_url: str = ""  # ROADMESH_MAP_STYLE_URL: a public basemap style; "" = our own tiles

    @classmethod
    def from_env(cls) -> WebSettings:
        consensus_raw = env_str("REVIEW_CONSENSUS", "3")
        try:
            consensus = float(consensus_raw)
        except ValueError:
            raise SettingsError(
                f"{ENV_PREFIX}REVIEW_CONSENSUS={consensus_raw!r} is not a number"
            ) from None
        if not 1 <= consensus <= 100:
            raise SettingsError(f"{ENV_PREFIX}REVIEW_CONSENSUS={consensus} is outside [1, 100]")
        page = env_int("API_PAGE_SIZE", 100, minimum=1, maximum=10_000)
        return cls(
            https=env_bool("HTTPS", False),
            hsts_seconds=env_int("HSTS_SECONDS", 31_536_000, minimum=0),
            hsts_preload=env_bool("HSTS_PRELOAD", True),
            proxy_ssl_header=env_bool("TRUST_X_FORWARDED_PROTO", False),
            trust_x_forwarded_for=env_bool("TRUST_X_FORWARDED_FOR", False),
            anon_rate=env_rate("API_ANON_RATE", "120/minute"),
            key_rate=env_rate("API_KEY_RATE", "600/minute"),
            login_rate=env_rate("LOGIN_RATE", "10/minute"),
            tile_rate=env_rate("TILE_RATE", "3000/minute"),
            expensive_concurrency=env_int("EXPENSIVE_CONCURRENCY", 4, minimum=1, maximum=256),
            login_failure_limit=env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000),
            login_lockout_minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1),
            page_size=page,
            max_page_size=env_int("API_MAX_PAGE_SIZE", max(page, 1000), minimum=page),
            daily_quota=env_int("API_DAILY_QUOTA", 50_000, minimum=1),
            image_url_seconds=env_int("IMAGE_URL_SECONDS", 900, minimum=10, maximum=7 * 86400),
            tile_cache_seconds=env_int("TILE_CACHE_SECONDS", 300, minimum=0),
            max_body_depth=env_int("API_MAX_JSON_DEPTH", 32, minimum=2, maximum=512),
            devices_per_owner=env_int("DEVICES_PER_OWNER", 20, minimum=1),
            challenge_seconds=env_int("DEVICE_CHALLENGE_SECONDS", 300, minimum=10),
            review_consensus=consensus,
            review_gold_every=env_int("REVIEW_GOLD_EVERY", 5, minimum=0),
            style_url=env_str("MAP_STYLE_URL", ""),
        )


def secret_key(debug: bool, data_dir: Path) -> str:
    """ROADMESH_SECRET_KEY, else the key in ROADMESH_SECRET_KEY_FILE (default
    DATA_DIR/secret.key, made 0600 on first start). Outside debug a known, short or
    repetitive key is refused: the server does not start with it."""
    raw = os.environ.get(ENV_PREFIX + "SECRET_KEY", "")
    if not raw:
        path = env_path("SECRET_KEY_FILE", data_dir / "secret.key")
        raw = _key_file(path)
    if not debug:
        weak = (
            raw in INSECURE_KEYS
            or raw.startswith("django-insecure")
            or len(raw) < MIN_SECRET_KEY_LENGTH
            or len(set(raw)) < 5
        )
        if weak:
            raise SettingsError(
                f"{ENV_PREFIX}SECRET_KEY is a known, short or repetitive key: set a random one"
                f" of {MIN_SECRET_KEY_LENGTH}+ characters, or unset it to use a generated"
                f" {ENV_PREFIX}SECRET_KEY_FILE (only {ENV_PREFIX}DEBUG=1 allows a weak key)"
            )
    return raw


def _key_file(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process is writing it: wait for its key
        for _ in range(50):
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise SettingsError(f"{path} is empty: remove it or set {ENV_PREFIX}SECRET_KEY") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
