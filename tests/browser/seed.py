"""A web server's database with something to show, for the browser tests:
`python -m tests.browser.seed` (ROADMESH_DATA_DIR set) after `roadmesh web migrate`.

- the sample world's ground-truth features as map features (most confirmed);
- a driver with two devices whose accepted frames follow a few sample roads, covered
  2, 45 and 200 days ago (coverage of every freshness), with a refused message and a
  flagged frame;
- JPEGs of a street with a sign, stored in the image store, as the evidence of detections;
- open review tasks that already have two agreeing votes (the third settles them);
- a published epoch with the driver's allocation, proof and breakdown.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

PASSWORD = "browser test password 1"
REPO = Path(__file__).resolve().parents[2]
WORLD = REPO / "sample_data" / "world"


def street_jpeg(box: tuple[int, int, int, int], colour: tuple[int, int, int], text: str) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (1280, 720), (150, 185, 220))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 380, 1280, 720], fill=(95, 98, 102))
    d.polygon([(560, 380), (720, 380), (1100, 720), (180, 720)], fill=(70, 72, 75))
    d.line([(640, 400), (640, 720)], fill=(240, 240, 240), width=6)
    for x in (60, 300, 900, 1120):
        d.rectangle([x, 160, x + 150, 380], fill=(176, 160, 140))
    x0, y0, x1, y1 = box
    d.rectangle([(x0 + x1) // 2 - 3, y1, (x0 + x1) // 2 + 3, 470], fill=(60, 60, 60))
    d.ellipse(box, fill=colour, outline=(255, 255, 255), width=4)
    d.text(((x0 + x1) // 2 - 10, (y0 + y1) // 2 - 6), text, fill=(255, 255, 255))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def main() -> None:
    from webapp.django_setup import setup_django

    setup_django()
    import h3
    from django.conf import settings
    from django.utils import timezone

    from tests.webapp.rows import frame_row
    from webapp.accounts.models import User
    from webapp.accounts.views import join
    from webapp.fleet.models import Device, Frame, RejectedMessage
    from webapp.images import LocalObjectStore
    from webapp.mapping.models import Detection, MapFeature, ReviewTask, Vote
    from webapp.payouts.models import Allocation, Epoch

    now = timezone.now()

    def user(name: str, role: str) -> User:
        u = User.objects.create_user(name, password=PASSWORD)
        join(u, role)
        return u

    driver = user("driver", User.Role.DRIVER)
    driver.wallet_address = "0x" + "ab" * 20
    driver.save()
    user("reviewer", User.Role.REVIEWER)
    others = [user(f"reviewer{i}", User.Role.REVIEWER) for i in (2, 3)]

    # features: the sample world's ground truth
    gt = json.loads((WORLD / "features.geojson").read_text())["features"]
    features = []
    for i, f in enumerate(gt):
        lon, lat = f["geometry"]["coordinates"][:2]
        status = MapFeature.Status.CANDIDATE if i % 7 == 0 else MapFeature.Status.CONFIRMED
        features.append(
            MapFeature(
                label=f["properties"]["class"],
                lat=lat,
                lon=lon,
                uncertainty_m=1.0 + (i % 5) * 0.4,
                facing_deg=f["properties"].get("facing_deg"),
                h3_r12=h3.str_to_int(h3.latlng_to_cell(lat, lon, 12)),
                n_passes=2 + i % 4,
                n_devices=1 + i % 2,
                first_seen_at=now - timedelta(days=30 + i % 20),
                last_seen_at=now - timedelta(days=i % 9),
                status=status,
            )
        )
    MapFeature.objects.bulk_create(features)
    features = list(MapFeature.objects.order_by("id"))

    # frames along some roads, for three ages of coverage
    roads = json.loads((WORLD / "roads.geojson").read_text())["features"]
    devices = [
        Device.objects.create(device_id=f"dev-{n}", owner=driver, public_key=bytes([n]) * 32)
        for n in (1, 2)
    ]
    devices[0].online = True
    devices[0].last_seen_at = now - timedelta(minutes=3)
    devices[0].save()
    store = LocalObjectStore(settings.SERVER.image_dir)
    seq = {d.pk: 0 for d in devices}
    frames: list[Frame] = []
    for r, road in enumerate(roads[:150]):
        age = (2, 45, 200)[r % 3]
        dev = devices[r % 2]
        coords = road["geometry"]["coordinates"]
        for (lon0, lat0), (lon1, lat1) in itertools.pairwise(coords):
            metres = math.hypot((lat1 - lat0) * 111_320, (lon1 - lon0) * 55_800)
            for k in range(max(1, int(metres // 8))):
                t = k / max(1, int(metres // 8))
                lat, lon = lat0 + (lat1 - lat0) * t, lon0 + (lon1 - lon0) * t
                seq[dev.pk] += 1
                frames.append(
                    frame_row(
                        dev,
                        seq[dev.pk],
                        now - timedelta(days=age, seconds=-seq[dev.pk]),
                        lat=lat,
                        lon=lon,
                        h3_r12=h3.str_to_int(h3.latlng_to_cell(lat, lon, 12)),
                        h3_r9=h3.str_to_int(h3.latlng_to_cell(lat, lon, 9)),
                        h3_r7=h3.str_to_int(h3.latlng_to_cell(lat, lon, 7)),
                        state=Frame.State.ACCEPTED,
                        image_width=1280,
                        image_height=720,
                        server_sharpness=120.0,
                        image_sha256=f"{dev.pk:02x}{seq[dev.pk]:062x}",
                    )
                )
    Frame.objects.filter(pk=frames[5].pk).update(
        state=Frame.State.FLAGGED,
        flags=[
            {
                "check": "impossible_speed",
                "score": 1.0,
                "reason": "jumped 2 km in 1 s",
                "evidence": {},
            }
        ],
    )
    RejectedMessage.objects.create(
        topic="devices/dev-2/frames",
        device_id="dev-2",
        seq=99999,
        reason="stale",
        detail="captured 9 days before it arrived",
        payload_sha256="e" * 64,
        payload_bytes=1000,
    )

    # evidence: a detection with a picture for the first features; open tasks with 2 votes
    colours = {"stop": (200, 30, 30), "traffic_light": (40, 140, 60), "fire_hydrant": (220, 80, 20)}
    for n, feat in enumerate(features[:40]):
        frame = frames[(n * 37) % len(frames)]
        box = (700 + (n % 5) * 40, 220, 780 + (n % 5) * 40, 300)
        sha = store.put(street_jpeg(box, colours.get(feat.label, (90, 60, 190)), feat.label[:4]))
        Frame.objects.filter(pk=frame.pk).update(image_sha256=sha)
        d = Detection.objects.create(
            frame=frame,
            feature=feat,
            label=feat.label,
            confidence=0.6 + (n % 4) * 0.1,
            x0=box[0],
            y0=box[1],
            x1=box[2],
            y1=box[3],
            model_version="browser-test",
        )
        if n < 6:
            task = ReviewTask.objects.create(feature=feat, detection=d)
            for o in others:
                Vote.objects.create(task=task, reviewer=o, verdict=Vote.Verdict.ACCEPT)

    # a published epoch with the driver's allocation
    epoch = Epoch.objects.create(
        number=1,
        starts_at=now - timedelta(days=14),
        ends_at=now - timedelta(days=7),
        state=Epoch.State.PUBLISHED,
        chain_id=31337,
        distributor="0x" + "cd" * 20,
        merkle_root="0x" + "11" * 32,
        frames=len(frames),
    )
    Allocation.objects.create(
        epoch=epoch,
        account=driver,
        wallet_address=driver.wallet_address,
        amount=Decimal("41250000000000000000"),
        coverage_amount=Decimal("40000000000000000000"),
        review_amount=Decimal("1250000000000000000"),
        cumulative_amount=Decimal("41250000000000000000"),
        proof=["0x" + "22" * 32, "0x" + "33" * 32],
        breakdown={
            "coverage": {
                "cells": 812,
                "mean_freshness": 0.93,
                "mean_region": 1.0,
                "mean_demand": 1.12,
                "devices": [
                    {
                        "device": "dev-1",
                        "frames": 3100,
                        "cells": 430,
                        "image": 0.94,
                        "gnss": 1.0,
                        "review": 0.97,
                        "fraud": 1.0,
                        "quality": 0.91,
                    },
                    {
                        "device": "dev-2",
                        "frames": 2700,
                        "cells": 382,
                        "image": 0.88,
                        "gnss": 0.96,
                        "review": 1.0,
                        "fraud": 1.0,
                        "quality": 0.85,
                    },
                ],
            }
        },
    )
    print(f"seeded {len(features)} features, {len(frames)} frames, 6 review tasks, epoch 1")


if __name__ == "__main__":
    main()
