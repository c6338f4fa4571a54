"""API usage per consumer, UTC day and H3 res-9 cell: the demand the rewards weigh coverage by.

A view says where a request looked (`count_at`); the counts are kept in memory per
process and written in one upsert at most every FLUSH_SECONDS or FLUSH_REQUESTS, so a
busy cell is not a hot row (a crash loses at most that much of the count).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import date, datetime

import h3
import pandas as pd
from django.db import connection, transaction
from django.http import HttpRequest

from webapp.api.keys import request_key
from webapp.api.models import ApiUsage, today

RESOLUTION = 9
logger = logging.getLogger(__name__)
FLUSH_SECONDS = 10.0
FLUSH_REQUESTS = 500

_lock = threading.Lock()
_pending: Counter[tuple[str, date, int]] = Counter()
_last_flush = time.monotonic()


def count_at(request: HttpRequest, lat: float, lon: float) -> None:
    """Count this request for its key (or anonymous) in the cell of (lat, lon)."""
    global _last_flush
    key = request_key(request)
    cell = h3.str_to_int(h3.latlng_to_cell(lat, lon, RESOLUTION))
    with _lock:
        _pending[(key.key_id if key else "", today(), cell)] += 1
        due = (
            sum(_pending.values()) >= FLUSH_REQUESTS
            or time.monotonic() - _last_flush >= FLUSH_SECONDS
        )
    if due:
        flush()


def flush() -> int:
    """Write the counted requests; how many rows were touched."""
    global _last_flush
    with _lock:
        rows = list(_pending.items())
        _pending.clear()
        _last_flush = time.monotonic()
    if not rows:
        return 0
    table = ApiUsage._meta.db_table
    sql = (
        f"INSERT INTO {table} (consumer, day, h3_r9, requests) VALUES (%s, %s, %s, %s) "
        f"ON CONFLICT (consumer, day, h3_r9) DO UPDATE SET requests = {table}.requests + excluded.requests"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, [(c, d, cell, n) for (c, d, cell), n in rows])
    return len(rows)


def usage_by_cell(
    starts_at: datetime, ends_at: datetime, resolution: int = RESOLUTION
) -> pd.DataFrame:
    """Requests per H3 cell (int) at `resolution` in [starts_at, ends_at) by UTC day: the
    rewards' `usage` table (columns h3, requests). Counts are kept at resolution 9: a finer
    resolution gets an empty table (no demand weight) rather than wrong cells."""
    flush()
    if resolution > RESOLUTION:
        logger.warning("API usage is counted at H3 resolution %d, not %d", RESOLUTION, resolution)
        return pd.DataFrame({"h3": [], "requests": []}, columns=["h3", "requests"])
    rows = ApiUsage.objects.filter(day__gte=starts_at.date(), day__lt=ends_at.date()).values_list(
        "h3_r9", "requests"
    )
    counts: Counter[int] = Counter()
    for cell, n in rows:
        if resolution < RESOLUTION:
            cell = h3.str_to_int(h3.cell_to_parent(h3.int_to_str(cell), resolution))
        counts[cell] += n
    return pd.DataFrame(
        {"h3": list(counts), "requests": list(counts.values())}, columns=["h3", "requests"]
    )
