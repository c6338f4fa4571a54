"""Where fixes come from: an NMEA or GPX log, a serial NMEA receiver, or gpsd.

Every live source runs a reader thread that appends to a shared `Track`; a source that
loses its receiver logs it, counts it and tries again, it never ends the process.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Protocol

from edge.gnss import Fix, NmeaStats, Track
from edge.nmea import NmeaReader, parse_nmea

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 4096  # NMEA sentences are at most 82 characters; gpsd reports a few KB
RECEIVERS_FILE = "gnss-receivers.json"  # in the device dir: what each receiver gave
LEDGER_EVERY_S = 10.0


class GnssSource(Protocol):
    track: Track
    stats: NmeaStats
    errors: Counter[str]

    def start(self) -> None: ...
    def stop(self) -> None: ...


def load_log(path: Path, stats: NmeaStats | None = None, day: date | None = None) -> list[Fix]:
    """Fixes from an NMEA log (`.nmea`, `.log`, `.txt`) or a GPX file (`.gpx`).

    `day` dates an NMEA log whose receiver sends no RMC or ZDA.
    """
    if stats is not None and not stats.receiver:
        stats.receiver = f"log:{path.name}"
    if path.suffix.lower() == ".gpx":
        fixes = parse_gpx(path.read_text(errors="replace"))
        if stats is not None:
            stats.epochs = stats.fixes = len(fixes)
        return fixes
    with path.open("rb") as fh:
        return parse_nmea(fh, stats, day=day)


def record_receiver(device_dir: Path, stats: NmeaStats) -> None:
    """Keep what a receiver gave in DEVICE_DIR/gnss-receivers.json (`edge status` prints it)."""
    path = device_dir / RECEIVERS_FILE
    ledger = {s.receiver: s for s in recorded_receivers(device_dir)}
    ledger[stats.receiver or "receiver"] = stats
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps([s.as_dict() for s in ledger.values()], indent=1))
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("cannot record GNSS counters in %s: %s", path, exc)


def recorded_receivers(device_dir: Path) -> list[NmeaStats]:
    try:
        data = json.loads((device_dir / RECEIVERS_FILE).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [NmeaStats.from_dict(d) for d in data if isinstance(d, dict)]


def parse_gpx(text: str) -> list[Fix]:
    import gpxpy

    gpx = gpxpy.parse(text)
    fixes: list[Fix] = []
    for trk in gpx.tracks:
        for seg in trk.segments:
            for p in seg.points:
                if p.time is None:
                    continue
                sats = int(p.satellites) if p.satellites is not None else 0
                fixes.append(
                    Fix(
                        p.time,
                        p.latitude,
                        p.longitude,
                        p.elevation,
                        None,
                        p.course if hasattr(p, "course") else None,
                        1,
                        sats,
                        p.horizontal_dilution,
                        3 if p.type_of_gpx_fix in (None, "3d", "dgps", "pps") else 2,
                    )
                )
    fixes.sort(key=lambda f: f.time)
    return fixes


class _Threaded:
    def __init__(self, receiver: str) -> None:
        self.track = Track([])
        self.stats = NmeaStats(receiver=receiver)
        self.errors: Counter[str] = Counter()
        self.device_dir: Path | None = None  # where to record the counters (edge status)
        self._recorded_at = 0.0
        self.online = threading.Event()  # the receiver is open / gpsd is connected
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.device_dir is not None:
            record_receiver(self.device_dir, self.stats)

    def _record_now_and_then(self) -> None:
        now = time.monotonic()
        if self.device_dir is not None and now - self._recorded_at >= LEDGER_EVERY_S:
            self._recorded_at = now
            record_receiver(self.device_dir, self.stats)

    def _loop(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self._run()
                delay = 1.0
            except (OSError, ValueError) as exc:
                self.online.clear()
                self.errors["receiver_lost"] += 1
                logger.warning("GNSS receiver: %s; retrying in %.0f s", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def _run(self) -> None:
        raise NotImplementedError


class SerialNmeaSource(_Threaded):
    """A GNSS receiver on a serial port speaking NMEA 0183 (pyserial)."""

    def __init__(self, port: str, baud: int = 9600) -> None:
        super().__init__(f"serial:{port}")
        self.port, self.baud = port, baud

    def _run(self) -> None:
        import serial

        try:
            conn = serial.Serial(self.port, self.baud, timeout=1.0)
        except serial.SerialException as exc:
            raise OSError(f"cannot open {self.port}: {exc}") from None
        reader = NmeaReader(self.stats)
        pending = b""  # readline() hands back a partial line when its timeout expires
        with conn:
            self.online.set()
            logger.info("GNSS receiver %s open at %d baud", self.port, self.baud)
            while not self._stop.is_set():
                try:
                    pending += conn.readline()
                except serial.SerialException as exc:
                    raise OSError(f"{self.port}: {exc}") from None
                if not pending.endswith(b"\n") and len(pending) <= MAX_LINE_BYTES:
                    continue
                # A line, or no line end in sight (binary of a second protocol, a receiver
                # ending lines with CR only): the reader finds the sentences inside either way.
                line, pending = pending, b""
                for fix in reader.feed(line):
                    if not self.track.append(fix):
                        self.stats.rejected["out_of_order"] += 1
                self._record_now_and_then()


class GpsdSource(_Threaded):
    """gpsd's JSON protocol over TCP: TPV reports give position, SKY gives satellites/HDOP."""

    def __init__(self, host: str = "127.0.0.1", port: int = 2947) -> None:
        super().__init__(f"gpsd:{host}:{port}")
        self.host, self.port = host, port
        self.satellites = 0
        self.hdop: float | None = None

    def _run(self) -> None:
        with socket.create_connection((self.host, self.port), timeout=10) as sock:
            sock.sendall(b'?WATCH={"enable":true,"json":true};\n')
            self.online.set()
            logger.info("connected to gpsd at %s:%d", self.host, self.port)
            buf = b""
            sock.settimeout(5.0)
            while not self._stop.is_set():
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    raise OSError("gpsd closed the connection")
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    self.handle(line)
                if len(buf) > 64 * MAX_LINE_BYTES:  # a report that never ends: drop it
                    self.stats.lines += 1
                    self.stats.rejected["unparseable"] += 1
                    buf = b""

    def handle(self, line: bytes) -> None:
        self.stats.lines += 1
        try:
            report = json.loads(line)
        except ValueError:
            self.stats.rejected["unparseable"] += 1
            return
        if not isinstance(report, dict):
            self.stats.rejected["unparseable"] += 1
            return
        cls = report.get("class")
        if cls == "SKY":
            used = [
                s for s in report.get("satellites", []) if isinstance(s, dict) and s.get("used")
            ]
            self.satellites = int(report.get("uSat", len(used)) or 0)
            hdop = report.get("hdop")
            self.hdop = float(hdop) if isinstance(hdop, int | float) else None
        elif cls == "TPV":
            mode = int(report.get("mode", 0) or 0)
            if mode < 2 or "lat" not in report or "time" not in report:
                self.stats.rejected["no_fix"] += 1
                return
            try:
                when = datetime.fromisoformat(str(report["time"]).replace("Z", "+00:00"))
                fix = Fix(
                    when,
                    float(report["lat"]),
                    float(report["lon"]),
                    float(report["altMSL"])
                    if "altMSL" in report
                    else (float(report["alt"]) if "alt" in report else None),
                    float(report["speed"]) if "speed" in report else None,
                    float(report["track"]) if "track" in report else None,
                    1,
                    self.satellites,
                    self.hdop,
                    mode,
                )
            except (TypeError, ValueError):
                self.stats.rejected["unparseable"] += 1
                return
            self.stats.epochs += 1
            if self.track.append(fix):
                self.stats.fixes += 1
            self._record_now_and_then()


class LogSource:
    """A recorded log, all loaded at start (replay, tests)."""

    def __init__(self, path: Path) -> None:
        self.stats = NmeaStats(receiver=f"log:{path}")
        self.errors: Counter[str] = Counter()
        self.track = Track(load_log(path, self.stats))

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class FeedSource:
    """NMEA sentences pushed in by the caller (the simulator's live receiver)."""

    def __init__(self) -> None:
        self.track = Track([])
        self.stats = NmeaStats(receiver="sim")
        self.errors: Counter[str] = Counter()
        self._reader = NmeaReader(self.stats)

    def feed(self, sentence: str) -> None:
        for fix in self._reader.feed(sentence):
            if not self.track.append(fix):
                self.stats.rejected["out_of_order"] += 1

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def wait_for_fix_after(track: Track, t: float, timeout_s: float) -> bool:
    """Block until the track holds a fix at or after unix time `t` (live interpolation)."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = track.last_time
        if last is not None and last >= t:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
