"""API usage is counted per key and H3 res-9 cell, and read back as the rewards' demand table."""

from __future__ import annotations

from datetime import timedelta

import h3
import pytest
from django.test import Client
from django.utils import timezone

from tests.webapp.people import bearer, consumer_key
from webapp.api import usage
from webapp.api.models import ApiKey, ApiUsage

pytestmark = pytest.mark.django_db


def test_requests_are_counted_per_key_and_cell_and_summed_on_conflict(client: Client) -> None:
    raw = consumer_key()
    for _ in range(3):
        client.get("/api/v1/features", {"bbox": "24.93,60.16,24.95,60.18"}, **bearer(raw))
    client.get("/api/v1/features", {"bbox": "24.93,60.16,24.95,60.18"})
    usage.flush()
    client.get("/api/v1/features", {"bbox": "24.93,60.16,24.95,60.18"}, **bearer(raw))
    usage.flush()  # a second upsert adds to the row
    cell = h3.str_to_int(h3.latlng_to_cell(60.17, 24.94, 9))
    key = ApiKey.objects.get()
    rows = {(u.consumer, u.h3_r9): u.requests for u in ApiUsage.objects.all()}
    assert rows == {(key.key_id, cell): 4, ("", cell): 1}


def test_usage_by_cell_is_the_rewards_demand_table(client: Client) -> None:
    client.get("/api/v1/features", {"bbox": "24.93,60.16,24.95,60.18"})
    client.get("/api/v1/features", {"bbox": "25.93,61.16,25.95,61.18"})
    now = timezone.now()
    table = usage.usage_by_cell(now - timedelta(days=1), now + timedelta(days=1))
    assert list(table.columns) == ["h3", "requests"] and table["requests"].sum() == 2
    coarse = usage.usage_by_cell(now - timedelta(days=1), now + timedelta(days=1), resolution=5)
    assert all(h3.get_resolution(h3.int_to_str(int(c))) == 5 for c in coarse["h3"])


def test_the_previous_epochs_usage_is_the_demand_of_the_epoch_being_closed() -> None:
    from datetime import UTC, datetime

    from rewards.params import EpochParams
    from webapp.payouts.epochs import gather

    starts, ends = datetime(2026, 6, 8, tzinfo=UTC), datetime(2026, 6, 15, tzinfo=UTC)
    cell = h3.str_to_int(h3.latlng_to_cell(60.17, 24.94, 9))
    ApiUsage.objects.create(consumer="k1", day=datetime(2026, 6, 3).date(), h3_r9=cell, requests=40)
    ApiUsage.objects.create(consumer="", day=datetime(2026, 6, 4).date(), h3_r9=cell, requests=2)
    ApiUsage.objects.create(
        consumer="k1", day=datetime(2026, 6, 9).date(), h3_r9=cell, requests=999
    )
    params = EpochParams(epoch=2, starts_at=int(starts.timestamp()), ends_at=int(ends.timestamp()))
    inputs, _frames = gather(params, starts, ends)
    assert inputs.usage.to_dict("records") == [{"h3": cell, "requests": 42}]
