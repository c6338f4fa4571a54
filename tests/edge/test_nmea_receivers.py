"""Captures of real receivers' output (tests/edge/receivers.py) yield the fixes they hold."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from edge.gnss import Fix, NmeaStats
from edge.nmea import NmeaReader, parse_nmea
from tests.edge import receivers as rx
from tests.edge.receivers import START, Capture, Truth, drive

TODAY = date(2026, 6, 2)


def read(capture: Capture, **kwargs: object) -> tuple[list[Fix], NmeaStats]:
    stats = NmeaStats(receiver=capture.name)
    fixes = parse_nmea(capture.lines(), stats, today=TODAY, **kwargs)  # type: ignore[arg-type]
    return fixes, stats


def assert_fixes_match(fixes: list[Fix], truth: list[Truth], *, dim: bool = True) -> None:
    assert [f.time for f in fixes] == [t.time for t in truth]
    for f, t in zip(fixes, truth, strict=True):
        assert (f.lat, f.lon) == (pytest.approx(t.lat, abs=1e-6), pytest.approx(t.lon, abs=1e-6))
        if dim:
            assert f.dim == t.dim, f.time


def test_a_ublox_m8_in_nmea_4_10_yields_every_epoch_with_its_mode_satellites_and_hdop() -> None:
    capture = rx.ublox_m8(drive(START, 20))
    fixes, stats = read(capture)
    assert_fixes_match(fixes, capture.fixes)
    assert {(f.satellites, f.hdop, f.quality) for f in fixes} == {(12, 0.8, 1)}
    assert fixes[0].speed_mps == pytest.approx(10.0, abs=0.01)
    assert stats.fixes == stats.epochs == 20 and not stats.rejected
    assert stats.notes["ignored_sentence"] == 40  # its GPGSV and GLGSV


def test_a_dual_protocol_receiver_loses_no_epoch_to_the_ubx_binary_before_its_sentences() -> None:
    capture = rx.ublox_m8(drive(START, 130), ubx=True)
    assert capture.data.count(b"\xb5\x62") >= 130  # UBX-NAV-PVT frames, sync chars 0xB5 0x62
    fixes, stats = read(capture)
    assert_fixes_match(fixes, capture.fixes)  # 130 of 130
    assert not stats.rejected["bad_checksum"] and not stats.rejected["void_fix"]


def test_dead_reckoning_estimated_fixes_in_a_tunnel_are_never_published() -> None:
    capture = rx.ublox_m8(drive(START, 20), dead_reckoning={8, 9, 10})
    fixes, stats = read(capture)
    assert_fixes_match(fixes, capture.fixes)
    assert len(fixes) == 17 and stats.rejected["void_fix"] == 3
    assert stats.void["estimated"] == 3


@pytest.mark.parametrize(
    ("quality", "reason"), [(0, "no_fix"), (6, "estimated"), (7, "manual"), (8, "simulator")]
)
def test_a_gga_quality_that_is_no_gnss_fix_is_never_a_fix(quality: int, reason: str) -> None:
    truth = drive(START, 6)
    lines = b""
    for i, t in enumerate(truth):
        g = rx.gga("GP", t)
        if i == 3:
            g = rx.edited(g, 5, str(quality))
        lines += g + rx.zda("GP", t)
    fixes, stats = read(Capture("GGA+ZDA", lines))
    assert [f.time for f in fixes] == [t.time for i, t in enumerate(truth) if i != 3]
    assert stats.void == {reason: 1}


def test_a_gga_whose_rmc_of_the_same_second_says_void_is_not_a_fix() -> None:
    truth = drive(START, 6)
    capture = rx.sirf(truth)
    # second 2: GGA still says quality 1, RMC says V (some receivers keep GGA's last fix)
    lines = [rx.edited(line, 1, "V") if b"RMC,090002" in line else line for line in capture.lines()]
    fixes, stats = read(Capture("SiRF", b"".join(lines)))
    assert [f.time for f in fixes] == [t.time for i, t in enumerate(truth) if i != 2]
    assert stats.void == {"status_void": 1}


def test_a_fix_flag_with_an_empty_position_or_zero_zero_is_not_a_fix() -> None:
    truth = drive(START, 6)
    lines = b""
    for i, t in enumerate(truth):
        g = rx.gga("GP", t)
        if i == 1:
            for k in (1, 2, 3, 4):
                g = rx.edited(g, k, "")
        if i == 4:
            g = rx.edited(rx.edited(g, 1, "0000.00000"), 3, "00000.00000")
        lines += g + rx.zda("GP", t)
    fixes, stats = read(Capture("GGA+ZDA", lines))
    assert [f.time for f in fixes] == [t.time for i, t in enumerate(truth) if i not in (1, 4)]
    assert all((f.lat, f.lon) != (0.0, 0.0) for f in fixes)
    assert stats.void == {"empty_position": 1, "zero_position": 1}


@pytest.mark.parametrize("gsa_first", [False, True], ids=["gsa-after-gga", "gsa-before-gga"])
def test_the_fix_mode_of_an_epoch_comes_from_its_own_gsa(gsa_first: bool) -> None:
    truth = [replace(t, dim=2 if 4 <= i < 7 else 3) for i, t in enumerate(drive(START, 12))]
    capture = rx.sirf(truth, gsa_first=gsa_first)
    fixes, _ = read(capture)
    assert_fixes_match(fixes, truth)
    assert [f.dim for f in fixes] == [3, 3, 3, 3, 2, 2, 2, 3, 3, 3, 3, 3]


def test_the_gsa_of_the_same_epoch_sets_the_mode_live_as_sentences_arrive() -> None:
    truth = [replace(t, dim=2 if i == 5 else 3) for i, t in enumerate(drive(START, 10))]
    reader = NmeaReader(today=TODAY)
    fixes: list[Fix] = []
    for line in rx.sirf(truth).lines():
        fixes.extend(reader.feed(line))
    # the last epoch is published at its RMC once the reader knows the receiver's cycle
    assert [f.dim for f in fixes] == [t.dim for t in truth]


def test_a_receiver_sending_gga_and_zda_takes_its_dates_from_zda() -> None:
    capture = rx.gga_zda(drive(START, 10))
    fixes, stats = read(capture)
    assert_fixes_match(fixes, capture.fixes, dim=False)
    assert not stats.rejected["no_date"]


def test_a_receiver_sending_only_gga_is_dated_from_the_configured_date_counted_and_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.nmea")
    capture = rx.gga_only(drive(START, 10))
    fixes, stats = read(capture, day=START.date())
    assert_fixes_match(fixes, capture.fixes, dim=False)
    assert stats.rejected["no_date"] == 10
    assert "sends no date" in caplog.text and "configured date" in caplog.text


def test_a_receiver_sending_only_gga_is_dated_from_the_host_clock_without_a_configured_date() -> (
    None
):
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    capture = rx.gga_only(drive(now, 10))
    stats = NmeaStats()
    fixes = parse_nmea(capture.lines(), stats)
    assert [f.time for f in fixes] == [t.time for t in capture.truth]
    assert stats.rejected["no_date"] == 10


def test_a_gga_only_log_crossing_midnight_rolls_the_date_over() -> None:
    truth = drive(datetime(2026, 6, 1, 23, 59, 55, tzinfo=UTC), 10)
    fixes, _ = read(rx.gga_only(truth), day=date(2026, 6, 1))
    assert [f.time for f in fixes] == [t.time for t in truth]
    assert fixes[-1].time.date() == date(2026, 6, 2)


def test_epochs_before_the_first_rmc_of_a_log_take_its_date() -> None:
    truth = drive(datetime(2026, 6, 1, 23, 59, 55, tzinfo=UTC), 10)
    lines = b"".join(rx.gga("GP", t) for t in truth[:7]) + rx.sirf(truth[7:]).data
    fixes, stats = read(Capture("late RMC", lines))
    assert [f.time for f in fixes] == [t.time for t in truth]
    assert not stats.rejected["no_date"]


def test_a_receiver_sending_only_rmc_yields_its_fixes() -> None:
    capture = rx.rmc_only(drive(START, 10))
    fixes, _stats = read(capture)
    assert_fixes_match(fixes, capture.fixes)
    assert {(f.satellites, f.alt_m) for f in fixes} == {(0, None)}
    assert fixes[0].speed_mps == pytest.approx(10.0, abs=0.01)


def test_a_receiver_sending_only_gns_yields_its_fixes() -> None:
    capture = rx.gns_only(drive(START, 10))
    fixes, _stats = read(capture, day=START.date())
    assert_fixes_match(fixes, capture.fixes)
    assert {(f.satellites, f.hdop, f.alt_m) for f in fixes} == {(12, 0.8, 18.0)}


def test_every_talker_is_read() -> None:
    capture = rx.every_talker(drive(START, 14))
    fixes, stats = read(capture)
    assert_fixes_match(fixes, capture.fixes, dim=False)
    assert set(stats.talkers) == set(rx.TALKERS)


def test_lines_starting_with_two_dollars_are_read() -> None:
    capture = rx.doubled_dollar(rx.sirf(drive(START, 10)))
    fixes, stats = read(capture)
    assert_fixes_match(fixes, capture.fixes)
    assert not stats.rejected


def test_the_leap_second_is_a_fix_and_the_date_rolls_over_after_it() -> None:
    truth = rx.across_the_leap_second()
    capture = rx.ublox_m8(truth)
    assert b"235960.00" in capture.data
    fixes, stats = read(capture)
    assert [f.time for f in fixes] == [t.time for t in truth]
    assert fixes[2].time == datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert fixes[3].time == datetime(2017, 1, 1, tzinfo=UTC)
    assert stats.notes["leap_second"] == 1 and not stats.rejected


def test_the_leap_second_does_not_stop_a_live_reader() -> None:
    reader = NmeaReader(today=TODAY)
    fixes = [f for line in rx.sirf(rx.across_the_leap_second()).lines() for f in reader.feed(line)]
    assert len(fixes) >= 4


def test_dates_of_a_receiver_with_the_week_rollover_bug_move_forward_1024_weeks() -> None:
    capture = rx.week_rollover(drive(START, 10))
    assert b",161006," in capture.data  # 2026-06-01 minus 1024 weeks is 2006-10-16
    fixes, stats = read(capture)
    assert [f.time for f in fixes] == [t.time for t in capture.truth]
    assert stats.notes["week_rollover"] == 10


def test_checksum_failures_and_unknown_sentences_are_counted_and_the_rest_is_read() -> None:
    truth = drive(START, 10)
    lines = rx.sirf(truth).lines()
    lines[1] = lines[1][:-4] + b"00\r\n"  # the GSA of second 0: wrong checksum
    lines.insert(3, rx.with_checksum("GPXYZ,1,2,3"))  # a sentence no standard defines
    lines.insert(3, b"$GPGGA,0900")  # cut off by a receiver reset: no line end, the next follows
    fixes, stats = read(Capture("SiRF", b"".join(lines)))
    assert [f.time for f in fixes] == [t.time for t in truth]
    assert fixes[0].dim == 0 and fixes[1].dim == 3  # only second 0 lost its GSA
    assert (stats.rejected["bad_checksum"], stats.rejected["unknown_sentence"]) == (1, 1)
    assert stats.rejected["unparseable"] == 0  # the cut-off line still held a sentence


def test_the_summary_says_what_the_receiver_gave() -> None:
    capture = rx.ublox_m8(drive(START, 20), dead_reckoning={3})
    _, stats = read(capture)
    line = stats.summary()
    assert line.startswith("fixes 19 of 20 epochs, without a date 0, void fixes 1, bad checksums 0")
    assert line.endswith("(talkers GN)")  # the talkers of the sentences it reads
