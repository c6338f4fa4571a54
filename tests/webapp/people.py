"""People and rows for the web tests: drivers with devices, consumers with API keys, reviewers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import h3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from tests.webapp.rows import frame_row
from webapp.accounts.models import User
from webapp.accounts.views import join
from webapp.api.models import ApiKey
from webapp.fleet.models import Device, Frame
from webapp.mapping.models import Detection, MapFeature

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def person(name: str, role: str = User.Role.DRIVER, password: str = "pw-" + "x" * 12) -> User:
    user = User.objects.create_user(name, password=password)
    join(user, role)
    return user


def consumer_key(name: str = "consumer") -> str:
    _key, raw = ApiKey.issue(person(name, User.Role.CONSUMER), "tests")
    return raw


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def device(owner: User, device_id: str) -> Device:
    key = Ed25519PrivateKey.generate()
    return Device.objects.create(
        device_id=device_id, owner=owner, public_key=protocol.public_key_bytes(key)
    )


def cells(lat: float, lon: float) -> dict[str, int]:
    return {f"h3_r{r}": h3.str_to_int(h3.latlng_to_cell(lat, lon, r)) for r in (12, 9, 7)}


def frames_along(
    dev: Device, n: int, *, lat: float = 60.17, lon: float = 24.94, **fields: Any
) -> list[Frame]:
    """`n` accepted frames one second and about 11 m apart, going north."""
    return [
        frame_row(
            dev,
            seq=i + 1,
            captured_at=T0 + timedelta(seconds=i),
            lat=lat + i * 0.0001,
            lon=lon,
            **cells(lat + i * 0.0001, lon),
            state=Frame.State.ACCEPTED,
            image_sha256=f"{dev.pk:08x}{i:056x}",
            image_width=1280,
            image_height=720,
            **fields,
        )
        for i in range(n)
    ]


def feature(
    label: str, lat: float, lon: float, status: str = MapFeature.Status.CANDIDATE
) -> MapFeature:
    return MapFeature.objects.create(
        label=label,
        lat=lat,
        lon=lon,
        uncertainty_m=1.5,
        facing_deg=90.0,
        h3_r12=1,
        n_passes=2,
        n_devices=1,
        first_seen_at=T0,
        last_seen_at=T0 + timedelta(days=1),
        status=status,
    )


def detection(frame: Frame, feat: MapFeature, label: str | None = None) -> Detection:
    return Detection.objects.create(
        frame=frame,
        feature=feat,
        label=label or feat.label,
        confidence=0.8,
        x0=100,
        y0=120,
        x1=160,
        y1=180,
        model_version="test",
    )
