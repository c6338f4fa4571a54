"""Live GNSS receivers for real: pyserial on a pseudo-terminal, and a gpsd speaking JSON over TCP.

Garbage and checksum-failing lines are counted, a receiver that goes away is counted,
logged and reopened, and the reader thread never ends the process.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from edge.gnss_sources import GpsdSource, SerialNmeaSource
from tests.edge.synthetic import LAT0, LON0, M_PER_DEG_LAT, nmea_fix

T0 = datetime(2026, 6, 1, 9, 0, 0, tzinfo=UTC)


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def fix_lines(second: int) -> list[str]:
    return nmea_fix(T0 + timedelta(seconds=second), LAT0 + second * 10 / M_PER_DEG_LAT, LON0, 10.0)


# -- serial NMEA on a pseudo-terminal --------------------------------------------------------
@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)  # pyserial opens the slave by name, as it would /dev/ttyACM0
    yield master, name
    try:
        os.close(master)
    except OSError:
        pass


def write(master: int, text: str) -> None:
    os.write(master, text.encode("ascii", errors="replace"))


def test_a_serial_receiver_turns_good_lines_into_fixes_and_counts_bad_ones(
    pty: tuple[int, str],
) -> None:
    master, port = pty
    source = SerialNmeaSource(port, 9600)
    source.start()
    try:
        wait_until(source.online.is_set)  # bytes written before the port opens are not a receiver's
        good = fix_lines(0)
        bad_checksum = fix_lines(1)[1][:-2] + "00"
        write(master, "\r\n".join([*good, "\x00\xffthis is not NMEA", bad_checksum]) + "\r\n")
        for s in range(2, 6):
            write(master, "\r\n".join(fix_lines(s)) + "\r\n")
        wait_until(lambda: source.stats.fixes >= 5)
    finally:
        source.stop()
    assert source.stats.rejected["bad_checksum"] == 1
    assert source.stats.rejected["unparseable"] == 1
    fixes = source.track.fixes
    # second 1 was only a GGA with a wrong checksum; once the reader has seen two cycles
    # end in RMC, an epoch is published at its RMC (second 5 does not wait for second 6)
    assert [f.time for f in fixes] == [T0 + timedelta(seconds=s) for s in (0, 2, 3, 4, 5)]
    assert fixes[3].lat == pytest.approx(LAT0 + 40 / M_PER_DEG_LAT, abs=1e-6)
    assert fixes[3].dim == 3 and fixes[3].satellites == 9
    assert not source.errors


def test_a_line_split_across_a_read_timeout_is_not_counted_as_garbage(
    pty: tuple[int, str],
) -> None:
    master, port = pty
    source = SerialNmeaSource(port, 9600)
    source.start()
    try:
        wait_until(source.online.is_set)  # bytes written before the port opens are not a receiver's
        lines = "\r\n".join(fix_lines(0)) + "\r\n"
        half = len(lines) - 30
        write(master, lines[:half])
        time.sleep(1.5)  # longer than the serial read timeout (1 s)
        write(master, lines[half:])
        write(master, "\r\n".join(fix_lines(1) + fix_lines(2)) + "\r\n")
        wait_until(lambda: source.stats.fixes >= 2)
    finally:
        source.stop()
    assert not source.stats.rejected, source.stats.rejected


def test_a_serial_receiver_that_goes_away_is_counted_logged_and_reopened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.gnss_sources")
    master, slave = os.openpty()
    port = os.ttyname(slave)
    os.close(slave)
    source = SerialNmeaSource(port, 9600)
    source.start()
    try:
        wait_until(source.online.is_set)  # bytes written before the port opens are not a receiver's
        write(master, "\r\n".join(fix_lines(0) + fix_lines(1)) + "\r\n")
        wait_until(lambda: source.stats.fixes >= 1)
        os.close(master)  # the USB receiver is unplugged: the tty hangs up, then vanishes
        wait_until(lambda: source.errors["receiver_lost"] >= 1)
        assert source._thread is not None and source._thread.is_alive()
        assert "GNSS receiver" in caplog.text
    finally:
        source.stop()
    assert source._thread is not None and not source._thread.is_alive()


def test_a_missing_serial_port_is_retried_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge.gnss_sources")
    source = SerialNmeaSource("/dev/roadmesh-no-such-tty", 9600)
    source.start()
    try:
        wait_until(lambda: source.errors["receiver_lost"] >= 1)
        assert "cannot open /dev/roadmesh-no-such-tty" in caplog.text
    finally:
        source.stop()


# -- gpsd ----------------------------------------------------------------------------------
class FakeGpsd:
    """A real TCP server speaking gpsd's JSON protocol: VERSION on connect, WATCH ack, then reports."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.connections = 0
        self.watch_requests: list[bytes] = []
        self.clients: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            conn.sendall(
                b'{"class":"VERSION","release":"3.25","rev":"3.25","proto_major":3,"proto_minor":15}\n'
            )
            request = conn.recv(4096)
            self.watch_requests.append(request)
            conn.sendall(
                b'{"class":"DEVICES","devices":[{"class":"DEVICE","path":"/dev/ttyACM0"}]}\n'
                b'{"class":"WATCH","enable":true,"json":true}\n'
            )
            self.clients.append(conn)

    def send(self, *reports: dict[str, object] | bytes) -> None:
        data = b"".join(
            r if isinstance(r, bytes) else json.dumps(r).encode() + b"\n" for r in reports
        )
        self.clients[-1].sendall(data)

    def drop_client(self) -> None:
        self.clients.pop().close()

    def close(self) -> None:
        self.server.close()
        for c in self.clients:
            c.close()


def tpv(second: int, mode: int = 3) -> dict[str, object]:
    t = T0 + timedelta(seconds=second)
    return {
        "class": "TPV",
        "device": "/dev/ttyACM0",
        "mode": mode,
        "time": t.isoformat().replace("+00:00", ".000Z"),
        "lat": LAT0 + second * 10 / M_PER_DEG_LAT,
        "lon": LON0,
        "altMSL": 18.0,
        "speed": 10.0,
        "track": 0.0,
    }


SKY = {
    "class": "SKY",
    "hdop": 0.8,
    "uSat": 9,
    "satellites": [{"PRN": i, "used": True} for i in range(1, 10)],
}


@pytest.fixture
def gpsd() -> Iterator[FakeGpsd]:
    server = FakeGpsd()
    yield server
    server.close()


def test_gpsd_reports_become_fixes_with_satellites_and_hdop(gpsd: FakeGpsd) -> None:
    source = GpsdSource("127.0.0.1", gpsd.port)
    source.start()
    try:
        wait_until(lambda: bool(gpsd.clients))
        tail = json.dumps(tpv(2)).encode() + b"\n"
        gpsd.send(SKY, tpv(0), {"class": "TPV", "mode": 1}, b"{not json\n", tpv(1), tail[:20])
        time.sleep(0.2)
        gpsd.send(tail[20:])  # a report split across two TCP segments
        wait_until(lambda: source.stats.fixes >= 3)
    finally:
        source.stop()
    assert gpsd.watch_requests[0].startswith(b"?WATCH=")
    assert b'"json":true' in gpsd.watch_requests[0]
    fixes = source.track.fixes
    assert [f.time for f in fixes] == [T0 + timedelta(seconds=s) for s in range(3)]
    assert (fixes[0].satellites, fixes[0].hdop, fixes[0].dim, fixes[0].alt_m) == (9, 0.8, 3, 18.0)
    assert fixes[2].lat == pytest.approx(LAT0 + 20 / M_PER_DEG_LAT)
    assert source.stats.rejected == {"no_fix": 1, "unparseable": 1}


def test_gpsd_going_away_is_counted_and_the_client_reconnects(
    gpsd: FakeGpsd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.gnss_sources")
    source = GpsdSource("127.0.0.1", gpsd.port)
    source.start()
    try:
        wait_until(lambda: bool(gpsd.clients))
        gpsd.send(SKY, tpv(0))
        wait_until(lambda: source.stats.fixes >= 1)
        gpsd.drop_client()
        wait_until(lambda: source.errors["receiver_lost"] >= 1)
        assert "gpsd closed the connection" in caplog.text
        wait_until(lambda: gpsd.connections >= 2 and bool(gpsd.clients), timeout=15)
        gpsd.send(SKY, tpv(1))
        wait_until(lambda: source.stats.fixes >= 2)
    finally:
        source.stop()
    assert len(source.track.fixes) == 2


def test_gpsd_not_running_is_retried_not_fatal() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    source = GpsdSource("127.0.0.1", port)
    source.start()
    try:
        wait_until(lambda: source.errors["receiver_lost"] >= 1)
        assert source._thread is not None and source._thread.is_alive()
    finally:
        source.stop()
