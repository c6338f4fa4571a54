"""JPEG header sanity without decoding: walk the marker segments up to the frame header (SOF).

A frame's JPEG is checked before anything decodes it: it must start with SOI, carry one
baseline/progressive SOF with sane dimensions, and the pixel count must stay under a
limit, so a small file that would decompress to gigapixels (a decompression bomb) is
refused from its header alone. So is a file that claims more pixels than its bytes can
describe: Huffman-coded JPEG needs at least a bit per 8x8 block and component (a flat
grey baseline frame reaches about 250 pixels a byte, a progressive one at most about
twice that), so `MAX_PIXELS_PER_BYTE` leaves real frames a wide margin while a 600-byte
file that claims 8192x4880 is refused. Only the header segments are read; entropy-coded
data is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.reasons import IntakeReason

MAX_SIDE = 8192
MAX_PIXELS = 40_000_000  # 40 MP: a 4K dashcam is 8.3 MP
MIN_SIDE = 16
MAX_PIXELS_PER_BYTE = 1024

# SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0..7: no length field


class JpegError(ValueError):
    """The bytes are not an acceptable JPEG; `reason` is an IntakeReason."""

    def __init__(self, reason: IntakeReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class JpegInfo:
    width: int
    height: int
    components: int
    precision: int
    progressive: bool

    @property
    def pixels(self) -> int:
        return self.width * self.height


def parse_header(
    data: bytes,
    *,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_PIXELS,
    max_pixels_per_byte: int = MAX_PIXELS_PER_BYTE,
) -> JpegInfo:
    """Dimensions from the first SOF segment; JpegError(BAD_JPEG | IMAGE_TOO_LARGE) otherwise."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise JpegError(IntakeReason.BAD_JPEG, "does not start with the JPEG SOI marker")
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise JpegError(IntakeReason.BAD_JPEG, "does not end with the JPEG EOI marker (truncated?)")
    pos = 2
    end = len(data)
    while pos < end:
        if data[pos] != 0xFF:
            raise JpegError(IntakeReason.BAD_JPEG, f"expected a marker at byte {pos}")
        while pos < end and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= end:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0xDA):
            what = {0xD8: "a second SOI", 0xD9: "EOI", 0xDA: "scan data"}[marker]
            raise JpegError(IntakeReason.BAD_JPEG, f"{what} before any frame header (SOF)")
        if pos + 2 > end:
            break
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > end:
            raise JpegError(IntakeReason.BAD_JPEG, f"segment 0x{marker:02X} runs past the end")
        if marker in _SOF_MARKERS:
            info = _sof(data[pos + 2 : pos + length], marker, max_side, max_pixels)
            if info.pixels > max_pixels_per_byte * len(data):
                raise JpegError(
                    IntakeReason.IMAGE_TOO_LARGE,
                    f"{info.width}x{info.height} from {len(data)} bytes is more than"
                    f" {max_pixels_per_byte} pixels a byte (a decompression bomb)",
                )
            return info
        pos += length
    raise JpegError(IntakeReason.BAD_JPEG, "no frame header (SOF) found")


def _sof(body: bytes, marker: int, max_side: int, max_pixels: int) -> JpegInfo:
    if len(body) < 6:
        raise JpegError(IntakeReason.BAD_JPEG, "frame header too short")
    precision = body[0]
    height = int.from_bytes(body[1:3], "big")
    width = int.from_bytes(body[3:5], "big")
    components = body[5]
    if marker not in (0xC0, 0xC1, 0xC2):
        raise JpegError(IntakeReason.BAD_JPEG, f"unsupported JPEG process SOF{marker - 0xC0}")
    if precision != 8 or components not in (1, 3) or len(body) < 6 + 3 * components:
        raise JpegError(
            IntakeReason.BAD_JPEG, f"{precision}-bit, {components} components is not a camera frame"
        )
    if width < MIN_SIDE or height < MIN_SIDE:
        raise JpegError(
            IntakeReason.BAD_JPEG, f"{width}x{height} is too small (or zero) for a frame"
        )
    if width > max_side or height > max_side or width * height > max_pixels:
        raise JpegError(
            IntakeReason.IMAGE_TOO_LARGE,
            f"{width}x{height} exceeds the limit ({max_side} px a side, {max_pixels} pixels)",
        )
    return JpegInfo(width, height, components, precision, progressive=marker == 0xC2)
