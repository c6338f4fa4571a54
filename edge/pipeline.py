"""The per-frame pipeline: geotag -> sample -> quality -> privacy -> JPEG -> sign -> outbox.

One `Pipeline` serves both the live camera (`roadmesh edge run`) and replays. Every frame
ends in exactly one counter: kept, or dropped with a reason. `build_frame` is the only
place in `edge/` that makes a `protocol.Frame`, and it takes a `RedactedJpeg`, which only
`vision.privacy.encode_redacted` makes from a `RedactedImage`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from edge.gnss import Fix, Track
from edge.identity import DeviceIdentity
from edge.outbox import Outbox, OutboxError
from edge.sampling import Offer, Sampler, TripBuffer
from edge.settings import EdgeSettings
from vision.privacy import RedactedJpeg, Redactor, encode_redacted
from vision.quality import QualityScores, score

logger = logging.getLogger(__name__)

FIX_TYPES = {
    1: protocol.FixType.FIX_3D,
    2: protocol.FixType.DGPS,
    4: protocol.FixType.RTK_FIXED,
    5: protocol.FixType.RTK_FLOAT,
}
H3_RES = 12


@dataclass(frozen=True, slots=True)
class Captured:
    """One camera frame with its capture time (camera clock) and, for files, its key."""

    image: np.ndarray
    captured_at: datetime
    source_key: str | None = None  # stable id of a recorded frame (replays skip done ones)
    jpeg: bytes | None = None  # the bytes the image was decoded from, if any


@dataclass(frozen=True, slots=True)
class Prepared:
    captured_at: datetime
    fix: Fix
    quality: QualityScores
    jpeg: RedactedJpeg
    source_key: str | None
    cell: int


@dataclass
class Counters:
    captured: int = 0
    kept: int = 0
    enqueued: int = 0
    already_enqueued: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    faces: int = 0
    plates: int = 0
    last_fix: Fix | None = None


def quality_reason(q: QualityScores, s: EdgeSettings) -> str | None:
    if q.sharpness < s.min_sharpness:
        return "blurry"
    if q.exposure < s.min_exposure:
        return "too_dark"
    if q.exposure > s.max_exposure:
        return "too_bright"
    if q.obstruction > s.max_obstruction:
        return "obstructed"
    return None


MAX_WIRE_SPEED_MPS = 655.34  # protocol: u16 centimetres per second


def build_frame(identity: DeviceIdentity, seq: int, p: Prepared) -> protocol.Frame:
    if not isinstance(p.jpeg, RedactedJpeg):
        raise TypeError("a Frame carries only a RedactedJpeg")
    fix = p.fix
    return protocol.Frame(
        device_id=identity.device_id,
        seq=seq,
        captured_at_us=int(p.captured_at.timestamp() * 1_000_000),
        position=protocol.Position(
            lat=fix.lat,
            lon=fix.lon,
            alt_m=fix.alt_m,
            heading_deg=fix.course_deg,
            # a receiver's absurd speed (a glitch) would not fit the wire: send it as unknown
            speed_mps=fix.speed_mps
            if fix.speed_mps is None or fix.speed_mps <= MAX_WIRE_SPEED_MPS
            else None,
            fix=protocol.FixType.FIX_2D
            if fix.dim == 2
            else FIX_TYPES.get(fix.quality, protocol.FixType.FIX_3D),
            satellites=min(fix.satellites, 255),
            hdop=fix.hdop,
        ),
        camera_id=identity.camera_id,
        intrinsics_ref=identity.intrinsics_ref,
        quality=protocol.Quality(
            sharpness=p.quality.sharpness,
            exposure=p.quality.exposure,
            obstruction=p.quality.obstruction,
        ),
        privacy=protocol.PrivacyCounts(faces=p.jpeg.faces, plates=p.jpeg.plates),
        jpeg=p.jpeg.data,
    )


class Pipeline:
    """`sample=False` keeps every geotagged frame (a folder already sampled by its recorder)."""

    def __init__(
        self,
        settings: EdgeSettings,
        identity: DeviceIdentity,
        key: Ed25519PrivateKey,
        outbox: Outbox,
        redactor: Redactor,
        *,
        sample: bool = True,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.key = key
        self.outbox = outbox
        self.redactor = redactor
        self.sample = sample
        self.sampler = Sampler(settings)
        self.buffer: TripBuffer[Prepared] = TripBuffer()
        self.counters = Counters()
        self.counters.dropped = self.sampler.dropped  # one counter of drop reasons
        self.topic = protocol.topic_for(identity.device_id, protocol.Channel.FRAMES)
        self._lock = threading.Lock()

    def apply(self, settings: EdgeSettings) -> None:
        with self._lock:
            self.settings = settings
            self.sampler.apply(settings)

    def process(self, frame: Captured, track: Track) -> str:
        """Run one frame through; returns "kept" or the reason it was dropped."""
        with self._lock:
            self.counters.captured += 1
            when = frame.captured_at + timedelta(seconds=self.settings.clock_offset_s)
            fix = track.at(when)
            if fix is not None:
                self.counters.last_fix = fix
            if self.sample:
                offer = self.sampler.offer(when.timestamp(), fix)
                if self.sampler.trip_ended:
                    self.sampler.trip_ended = False
                    self._discard_trip_end()
                if not offer.keep:
                    return offer.reason
            else:
                if fix is None:
                    self.counters.dropped["no_fix"] += 1
                    return "no_fix"
                offer = Offer(True, "", 0.0)
            assert fix is not None
            q = score(frame.image)
            reason = quality_reason(q, self.settings)
            if reason is not None:
                self.counters.dropped[reason] += 1
                return reason
            redacted = self.redactor.redact(frame.image, frame.jpeg)
            jpeg = encode_redacted(redacted, self.settings.jpeg_quality)
            self.counters.faces += jpeg.faces
            self.counters.plates += jpeg.plates
            prepared = Prepared(when, fix, q, jpeg, frame.source_key, _cell(fix))
            self.counters.kept += 1
            if not self.sample:
                self._enqueue(prepared)
                return "kept"
            self.sampler.keep(offer)
            self.buffer.push(offer.odometer_m, prepared)
            for p in self.buffer.release(self.sampler.odometer_m, self.settings.trim_m):
                self._enqueue(p)
            return "kept"

    def finish(self) -> None:
        """The source ended (end of a recording, shutdown): the trip ends here."""
        with self._lock:
            if self.sample:
                self.sampler.end_trip()
                self.sampler.trip_ended = False
                self._discard_trip_end()

    def _discard_trip_end(self) -> None:
        dropped = self.buffer.discard()
        if dropped:
            self.counters.kept -= len(dropped)
            self.counters.dropped["trip_end"] += len(dropped)

    def _enqueue(self, p: Prepared) -> None:
        def build(seq: int) -> tuple[str, bytes]:
            return self.topic, protocol.encode(build_frame(self.identity, seq, p), self.key)

        try:
            seq = self.outbox.put(build, source=p.source_key, kind="frame", cell=p.cell)
        except protocol.ProtocolError as exc:
            logger.warning("frame at %s cannot be encoded: %s", p.captured_at, exc)
            self.counters.errors["unencodable"] += 1
            return
        except OutboxError as exc:
            self.counters.errors["outbox_write"] += 1
            logger.error("frame lost, the outbox cannot store it (disk full?): %s", exc)
            return
        if seq is None:
            self.counters.already_enqueued += 1
        else:
            self.counters.enqueued += 1


def _cell(fix: Fix) -> int:
    import h3.api.basic_int as h3i

    return int(h3i.latlng_to_cell(fix.lat, fix.lon, H3_RES))
