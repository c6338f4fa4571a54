"""Random and mutated NMEA streams: the reader never raises, never hangs, never invents a fix,
and the serial reader thread survives all of them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.gnss import Fix, NmeaStats
from edge.gnss_sources import SerialNmeaSource
from edge.nmea import NmeaReader, parse_nmea
from tests.edge import receivers as rx
from tests.edge.receivers import Capture, Truth

TODAY = date(2026, 6, 2)
FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

# Instants that matter: midnight, the leap second, any second of a day.
AROUND = [
    datetime(2026, 6, 1, 23, 59, 57, tzinfo=UTC),
    datetime(2016, 12, 31, 23, 59, 58, tzinfo=UTC),
    datetime(2026, 6, 1, 0, 0, 0, tzinfo=UTC),
]


@st.composite
def truths(draw: st.DrawFn) -> list[Truth]:
    start = draw(st.sampled_from(AROUND)) + timedelta(
        seconds=draw(st.integers(0, 86_399)) * draw(st.sampled_from([0, 1]))
    )
    n = draw(st.integers(1, 8))
    lat = draw(st.floats(-89.9, 89.9).filter(lambda v: abs(v) > 1e-4))
    lon = draw(st.floats(-179.9, 179.9).filter(lambda v: abs(v) > 1e-4))
    out = []
    for i in range(n):
        quality = draw(st.sampled_from([1, 2, 4, 5, 6, 8]))
        t = Truth(
            start + timedelta(seconds=i),
            lat,
            lon,
            fix=(draw(st.booleans()) or i % 2 == 0) and quality not in (6, 8),
            dim=draw(st.sampled_from([2, 3])),
            satellites=draw(st.integers(0, 40)),
            hdop=draw(st.sampled_from([0.5, 0.9, 2.5, 99.9])),
            quality=quality,
        )
        if t.time.strftime("%H%M%S") == "235959" and start.year == 2016:
            t = Truth(t.time.replace(microsecond=999999), t.lat, t.lon, leap=True)
        out.append(t)
    return out


RECEIVERS = [
    lambda t: rx.ublox_m8(t),
    lambda t: rx.ublox_m8(t, ubx=True),
    lambda t: rx.sirf(t),
    lambda t: rx.sirf(t, gsa_first=True),
    rx.gga_zda,
    rx.gga_only,
    rx.rmc_only,
    rx.gns_only,
    rx.every_talker,
    lambda t: rx.doubled_dollar(rx.sirf(t)),
    rx.week_rollover,
]


@st.composite
def captures(draw: st.DrawFn) -> Capture:
    return draw(st.sampled_from(RECEIVERS))(draw(truths()))


# Mutations a serial line and a flaky receiver really produce.
JUNK = st.binary(min_size=1, max_size=40).map(
    lambda b: b.replace(b"$", b"").replace(b"*", b"") or b"\x00"
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    lines = draw(captures()).lines()
    out = []
    for line in lines:
        op = draw(
            st.sampled_from(
                [
                    "keep",
                    "keep",
                    "keep",
                    "truncate",
                    "flip",
                    "checksum",
                    "junk",
                    "drop",
                    "double",
                    "binary",
                ]
            )
        )
        if op == "truncate":
            line = line[: draw(st.integers(0, max(0, len(line) - 1)))]
        elif op == "flip" and len(line) > 2:
            i = draw(st.integers(0, len(line) - 1))
            line = line[:i] + bytes([draw(st.integers(0, 255))]) + line[i + 1 :]
        elif op == "checksum":
            line = line.replace(b"*", b"*F")
        elif op == "junk":
            line = draw(JUNK) + line
        elif op == "drop":
            line = b""
        elif op == "double":
            line = line + line
        elif op == "binary":
            line = draw(st.binary(max_size=200))
        out.append(line)
    return b"".join(out)


def check(fixes: list[Fix], stats: NmeaStats) -> None:
    assert stats.rejected["reader_error"] == 0
    for f in fixes:
        assert -90 <= f.lat <= 90 and -180 <= f.lon <= 180
        assert (f.lat, f.lon) != (0.0, 0.0)
        assert f.time.tzinfo is not None


def feed_all(data: bytes, chunks: list[int] | None = None) -> tuple[list[Fix], NmeaStats]:
    reader = NmeaReader(today=TODAY)
    fixes: list[Fix] = []
    for line in data.splitlines(keepends=True):
        fixes.extend(reader.feed(line))
    fixes.extend(reader.flush())
    return fixes, reader.stats


@FAST
@given(mutated())
def test_a_mutated_stream_never_makes_the_reader_raise_or_invent_a_fix(data: bytes) -> None:
    fixes, stats = feed_all(data)
    check(fixes, stats)


@FAST
@given(st.binary(max_size=4000))
def test_random_bytes_never_make_the_reader_raise(data: bytes) -> None:
    fixes, stats = feed_all(data)
    check(fixes, stats)
    fixes, stats = feed_all(data.replace(b"\n", b""))  # one long line
    check(fixes, stats)


@FAST
@given(st.text(alphabet="$*,.0123456789ABCDEFGNPRSVZ\r\n", max_size=3000))
def test_text_made_of_nmea_characters_never_makes_the_reader_raise(text: str) -> None:
    reader = NmeaReader(today=TODAY)
    fixes = [f for line in text.splitlines() for f in reader.feed(line)] + reader.flush()
    check(fixes, reader.stats)


@FAST
@given(captures(), st.lists(JUNK, min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_junk_between_sentences_loses_no_fix(
    capture: Capture, junk: list[bytes], rnd: object
) -> None:
    clean = parse_nmea(capture.lines(), NmeaStats(), today=TODAY, day=date(2026, 6, 1))
    lines = capture.lines()
    for j in junk:
        lines.insert(rnd.randrange(len(lines) + 1), j)  # type: ignore[attr-defined]
    dirty = parse_nmea(lines, NmeaStats(), today=TODAY, day=date(2026, 6, 1))
    assert dirty == clean


@FAST
@given(captures())
def test_a_clean_capture_yields_exactly_its_fixes(capture: Capture) -> None:
    stats = NmeaStats()
    fixes = parse_nmea(capture.lines(), stats, today=TODAY, day=capture.truth[0].time.date())
    assert [f.time for f in fixes] == [t.time for t in capture.fixes]


def test_a_huge_line_full_of_dollars_is_read_in_linear_time() -> None:
    reader = NmeaReader()
    t0 = time.monotonic()
    reader.feed("$GPGGA," * 200_000)
    reader.feed("$" * 1_000_000)
    assert time.monotonic() - t0 < 5.0
    assert reader.stats.rejected["unparseable"] == 2


# -- the serial reader thread survives every stream ---------------------------------------
@pytest.fixture(scope="module")
def live_receiver() -> Iterator[tuple[int, SerialNmeaSource]]:
    master, slave = os.openpty()
    port = os.ttyname(slave)
    os.close(slave)
    source = SerialNmeaSource(port, 9600)
    source.start()
    deadline = time.monotonic() + 10
    while not source.online.is_set() and time.monotonic() < deadline:
        time.sleep(0.02)
    yield master, source
    source.stop()
    os.close(master)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.binary(max_size=3000)))
def test_the_serial_reader_thread_survives_every_stream(
    live_receiver: tuple[int, SerialNmeaSource], data: bytes
) -> None:
    master, source = live_receiver
    os.write(master, data)
    time.sleep(0.01)
    assert source._thread is not None and source._thread.is_alive()
    assert source.stats.rejected["reader_error"] == 0
    assert not source.errors


def test_after_every_stream_the_serial_receiver_still_yields_fixes(
    live_receiver: tuple[int, SerialNmeaSource],
) -> None:
    master, source = live_receiver
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)  # newer than any before
    before = len(source.track.fixes)
    os.write(master, b"\r\n" + rx.sirf(rx.drive(now, 5)).data)
    deadline = time.monotonic() + 10
    while len(source.track.fixes) < before + 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(source.track.fixes) >= before + 4
    assert source._thread is not None and source._thread.is_alive()
