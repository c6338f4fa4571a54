"""Cheap looks at a frame's pixels: a reduced JPEG decode, perceptual hash, server-side quality.

The JPEG is decoded with libjpeg's DCT scaling (PIL `draft`), at 1/8 of its size for a
1080p frame, which costs a fraction of a full decode. Called only after `ingest.jpeg`
accepted the header, so the decoder never sees a decompression bomb.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

REDUCED_MIN_SIDE = 96  # decode at the largest 1/2^k scale that keeps the short side >= this
PHASH_BANDS = 4
MASK64 = (1 << 64) - 1


class ImageDecodeError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ImageFacts:
    phash: int  # unsigned 64-bit
    sharpness: float  # variance of the Laplacian on the reduced grey image
    brightness: float  # mean grey level 0..255


def reduced_grey(jpeg: bytes, min_side: int = REDUCED_MIN_SIDE) -> np.ndarray:
    """The frame as a small uint8 grey array, via DCT-domain downscaling."""
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            w, h = im.size
            scale = 1
            while scale < 8 and min(w, h) // (scale * 2) >= min_side:
                scale *= 2
            im.draft("L", (w // scale, h // scale))
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot decode the JPEG: {exc}") from exc


def facts_of(grey: np.ndarray) -> ImageFacts:
    phash = int(str(imagehash.phash(Image.fromarray(grey))), 16)
    g = grey.astype(np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return ImageFacts(phash=phash, sharpness=float(lap.var()), brightness=float(g.mean()))


def image_facts(jpeg: bytes) -> ImageFacts:
    return facts_of(reduced_grey(jpeg))


def to_signed64(value: int) -> int:
    value &= MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned64(value: int) -> int:
    return value & MASK64


def phash_bands(phash: int) -> tuple[int, int, int, int]:
    """Four 16-bit bands, most significant first: a pigeonhole index for Hamming search."""
    u = to_unsigned64(phash)
    return (u >> 48) & 0xFFFF, (u >> 32) & 0xFFFF, (u >> 16) & 0xFFFF, u & 0xFFFF


def hamming(a: int, b: int) -> int:
    return (to_unsigned64(a) ^ to_unsigned64(b)).bit_count()
