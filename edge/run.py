"""`roadmesh edge run`: the continuous pipeline, unattended for weeks.

source -> geotag -> sample -> quality -> privacy -> JPEG -> sign -> outbox -> uplink.
The capture loop runs in the main thread; the uplink pumps the outbox from a second one,
so a dead network never stalls capture (the outbox absorbs it, bounded by bytes).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h3.api.basic_int as h3i
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.gnss_sources import (
    FeedSource,
    GnssSource,
    GpsdSource,
    LogSource,
    SerialNmeaSource,
    wait_for_fix_after,
)
from edge.identity import DeviceIdentity
from edge.outbox import Outbox, OutboxError
from edge.pipeline import Captured, Pipeline
from edge.settings import EdgeSettings, SettingsError
from edge.sources import CameraSource, FrameSource, LiveEvents
from edge.telemetry import CpuMeter, snapshot, status_line, telemetry_message
from edge.uplink import MqttUplink
from vision.privacy import Redactor

logger = logging.getLogger(__name__)

# A live drive's frame waits this long (drive time) for the fix after it.
LIVE_FIX_WAIT_S = 3.0

# Keys of the server's config JSON that map onto settings; anything else is ignored.
CONFIG_KEYS = {
    "sample_distance_m",
    "min_speed_mps",
    "max_speed_mps",
    "min_satellites",
    "max_hdop",
    "trim_m",
    "min_sharpness",
    "min_exposure",
    "max_exposure",
    "max_obstruction",
    "jpeg_quality",
    "bandwidth_bytes_per_s",
    "telemetry_interval_s",
}


# Config keys that must be above zero (the others may also be zero, never negative).
POSITIVE_KEYS = {"sample_distance_m", "max_speed_mps", "max_hdop", "telemetry_interval_s"}


def parse_cells(values: Any) -> list[int]:
    if values is None:
        return []
    if not isinstance(values, list):
        raise ValueError("cells must be a list of H3 ids")
    out = []
    for v in values:
        try:
            if isinstance(v, bool) or not isinstance(v, str | int):
                raise ValueError
            cell = int(v, 16) if isinstance(v, str) else v
            if not h3i.is_valid_cell(cell):
                raise ValueError
        except (ValueError, TypeError, OverflowError):
            raise ValueError(f"{v!r} is not an H3 cell") from None
        out.append(cell)
    return out


def gnss_from_setting(spec: str, baud: int) -> GnssSource:
    kind, _, rest = spec.partition(":")
    if kind == "serial":
        port, _, b = rest.partition("@")
        return SerialNmeaSource(port or "/dev/ttyACM0", int(b) if b else baud)
    if kind == "gpsd":
        host, _, port = rest.partition(":")
        return GpsdSource(host or "127.0.0.1", int(port) if port else 2947)
    if kind == "log":
        return LogSource(Path(rest))
    raise SettingsError(
        f"ROADMESH_EDGE_GNSS={spec!r}: use serial:PORT[@BAUD], gpsd[:HOST[:PORT]] or log:PATH"
    )


class EdgeRunner:
    def __init__(
        self,
        settings: EdgeSettings,
        identity: DeviceIdentity,
        key: Ed25519PrivateKey,
        device_dir: Path,
        redactor: Redactor | None = None,
        uplink: MqttUplink | None = None,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.key = key
        self.device_dir = device_dir
        self.outbox = Outbox(device_dir / "outbox.sqlite3", max_bytes=settings.outbox_max_bytes)
        self.pipeline = Pipeline(
            settings,
            identity,
            key,
            self.outbox,
            redactor or Redactor.default(settings.threads, settings.face_max_side),
        )
        self.uplink = uplink or MqttUplink(
            identity,
            key,
            self.outbox,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            bandwidth_bytes_per_s=settings.bandwidth_bytes_per_s,
            reconnect_min_s=settings.reconnect_min_s,
            reconnect_max_s=settings.reconnect_max_s,
            on_config=self.apply_config,
        )
        self.stop_event = threading.Event()
        self.cpu = CpuMeter()
        self.errors: Counter[str] = Counter()
        self._sources: list[Any] = []  # frame and GNSS sources of the current run()
        self._frame_source: FrameSource | None = None

    def stop(self) -> None:
        """Ask run() to end (SIGTERM/SIGINT do this): it finishes the trip and returns."""
        self.stop_event.set()
        stop = getattr(self._frame_source, "stop", None)
        if stop is not None:
            stop()  # a camera waiting out a backoff returns at once

    def all_errors(self) -> Counter[str]:
        """Every error counter, live: sources, GNSS receiver and NMEA, uplink, pipeline."""
        total = Counter(self.errors) + self.uplink.errors + self.pipeline.counters.errors
        for source in self._sources:
            total += source.errors
            stats = getattr(source, "stats", None)
            if stats is not None:
                total += stats.rejected
        return total

    # -- server config (retained topic), applied without restart ------------------------
    def apply_config(self, config: dict[str, Any]) -> None:
        changes = {k: v for k, v in config.items() if k in CONFIG_KEYS}
        covered = parse_cells(config.get("covered_cells"))
        priority = parse_cells(config.get("priority_cells"))
        try:
            new = self.settings.with_overrides(**changes)
        except SettingsError as exc:
            raise ValueError(str(exc)) from None
        for key in changes:
            value = getattr(new, key)
            if value < 0 or (key in POSITIVE_KEYS and value == 0):
                raise ValueError(f"config {key}={value!r} is out of range")
        self.settings = new
        self.pipeline.apply(new)
        self.uplink.bucket.rate = new.bandwidth_bytes_per_s
        self.outbox.set_cells(covered, priority)
        logger.info(
            "applied server config: %s; %d well-covered, %d priority cells",
            changes or "no setting changes",
            len(covered),
            len(priority),
        )

    # -- loops ----------------------------------------------------------------------------
    def _uplink_loop(self) -> None:
        next_telemetry = time.monotonic() + 5.0
        while not self.stop_event.is_set():
            self.uplink.pump()
            if time.monotonic() >= next_telemetry:
                next_telemetry = time.monotonic() + self.settings.telemetry_interval_s
                self.send_telemetry()
            self.uplink._wake.wait(0.2)
            self.uplink._wake.clear()

    def send_telemetry(self) -> None:
        data = snapshot(
            self.pipeline.counters, self.outbox, dict(self.all_errors()), self.cpu, self.device_dir
        )
        try:
            seq = self.outbox.next_counter("telemetry")
            self.uplink.publish_telemetry(
                telemetry_message(self.identity.device_id, seq, data, self.key)
            )
        except (OutboxError, ValueError) as exc:
            logger.warning("telemetry not sent: %s", exc)

    def run(
        self,
        frames: FrameSource | None,
        gnss: GnssSource | FeedSource,
        live: LiveEvents | None = None,
        status_every_s: float = 1.0,
        max_fix_wait_s: float = 1.5,
    ) -> None:
        self._sources = [s for s in (frames, gnss) if s is not None]
        self._frame_source = frames
        if hasattr(gnss, "device_dir"):  # a receiver records its counters for `edge status`
            gnss.device_dir = self.device_dir
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        gnss.start()
        self.uplink.start()
        pump = threading.Thread(target=self._uplink_loop, name="uplink", daemon=True)
        pump.start()
        last_status = 0.0
        tty = sys.stderr.isatty()
        try:
            for frame in self._frames(frames, gnss, live):
                if self.stop_event.is_set():
                    break
                t = frame.captured_at.timestamp() + self.settings.clock_offset_s
                if isinstance(frames, CameraSource):
                    wait_for_fix_after(
                        gnss.track, t, max_fix_wait_s
                    )  # live: the next fix brackets the frame
                self.pipeline.process(frame, gnss.track)
                now = time.monotonic()
                if now - last_status >= status_every_s:
                    last_status = now
                    line = status_line(
                        self.pipeline.counters, self.outbox, self.uplink.connected.is_set()
                    )
                    print(
                        ("\r" + line) if tty else line,
                        end="" if tty else "\n",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            self.pipeline.finish()
            self.stop_event.set()
            pump.join(timeout=5)
            self.send_telemetry()
            if self.uplink.refused_login is None:
                self.uplink.drain(2.0)
            self.uplink.stop()
            gnss.stop()

    def _frames(
        self, frames: FrameSource | None, gnss: GnssSource | FeedSource, live: LiveEvents | None
    ) -> Iterator[Captured]:
        if live is not None:
            assert isinstance(gnss, FeedSource)
            yield from self._live_frames(live, gnss)
            return
        assert frames is not None
        yield from frames.frames()

    def _live_frames(self, live: LiveEvents, gnss: FeedSource) -> Iterator[Captured]:
        """Frames of a live drive, each held back until the fix after it has arrived.

        Events come in time order, so when a frame arrives the receiver has not yet
        reported the fix that brackets it; without the wait every frame would be `no_fix`.
        A frame waits at most LIVE_FIX_WAIT_S of drive time (then it goes on, unbracketed).
        """
        waiting: deque[Captured] = deque()

        def bracketed(now: float) -> Iterator[Captured]:
            last = gnss.track.last_time
            while waiting:
                t = waiting[0].captured_at.timestamp() + self.settings.clock_offset_s
                if (last is None or last < t) and now - t < LIVE_FIX_WAIT_S:
                    return
                yield waiting.popleft()

        for kind, when, value in live.events():
            if self.stop_event.is_set():
                return
            if kind == "nmea":
                gnss.feed(value)
            else:
                waiting.append(Captured(value, when))
            yield from bracketed(when.timestamp() + self.settings.clock_offset_s)
        yield from waiting


def camera_source(settings: EdgeSettings) -> CameraSource:
    return CameraSource(
        settings.camera, settings.camera_width, settings.camera_height, settings.camera_fps
    )
