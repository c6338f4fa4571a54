"""Textures drawn into the scene: sign faces, traffic-light housings, hydrants, licence
plates and faces (real LFW face crops from scikit-image).

Sign faces come in two styles: drawn here with OpenCV, and the pictograms of the npm
package `mapillary_sprite_source` (MIT, (c) 2015 mapillary; sim/assets/signs/, rasterised
by scripts/sign_sprites.py). The renderer picks one per sign (by its id), so the detector
sees more than one design of each class. All are BGRA uint8 arrays whose
full extent maps onto the object's physical face rectangle; a few mip levels are kept so
tiny on-screen objects stay anti-aliased."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
RED = (40, 30, 200)
WHITE = (245, 245, 245)
BLACK = (25, 25, 25)
BLUE = (170, 90, 20)
MIP_SIZES = (256, 128, 64, 32, 16)

LIGHT_STATES = ("red", "red_amber", "green", "amber")


def _canvas(w: int, h: int) -> Image:
    return np.zeros((h, w, 4), np.uint8)


def _poly(img: Image, pts: np.ndarray, color: tuple[int, int, int]) -> None:
    cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], (*color, 255), cv2.LINE_AA, 4)


def _regular(n: int, r: float, c: float, rot_deg: float) -> np.ndarray:
    a = np.radians(rot_deg + np.arange(n) * 360.0 / n)
    return np.stack([c + r * np.cos(a), c + r * np.sin(a)], axis=1)


def _text(
    img: Image,
    text: str,
    cx: float,
    cy: float,
    height: float,
    color: tuple[int, int, int],
    thick: float = 0.16,
    width: float | None = None,
) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    t = max(1, int(height * thick))
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, t)
    scale = height / th
    if width is not None:
        scale = min(scale, width / tw)
    t = max(1, round(scale * th * thick))
    (tw, th), _ = cv2.getTextSize(text, font, scale, t)
    cv2.putText(
        img, text, (int(cx - tw / 2), int(cy + th / 2)), font, scale, (*color, 255), t, cv2.LINE_AA
    )


PICTOGRAMS = Path(__file__).resolve().parent / "assets" / "signs"


def pictogram(cls: str, size: int = 256) -> Image | None:
    """The mapillary_sprite_source pictogram of a sign class (BGRA), or None."""
    path = PICTOGRAMS / f"{cls}.png"
    if not path.exists():
        return None
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        return None
    if img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return np.asarray(img, dtype=np.uint8)


def sign_face(cls: str, size: int = 256) -> Image:
    s = float(size)
    c = s / 2
    img = _canvas(size, size)
    if cls == "stop":
        _poly(img, _regular(8, c - 1, c, 22.5), WHITE)
        _poly(img, _regular(8, c * 0.9, c, 22.5), RED)
        _text(img, "STOP", c, c, s * 0.22, WHITE, 0.18, s * 0.72)
    elif cls == "yield":
        h = s * 0.866
        outer = np.array([[1, 1], [s - 1, 1], [c, s - 1]], float)
        _poly(img, outer, RED)
        ctr = outer.mean(axis=0)
        _poly(img, ctr + (outer - ctr) * 0.62, WHITE)
        del h
    elif cls == "no_entry":
        cv2.circle(img, (int(c), int(c)), int(c - 1), (*RED, 255), -1, cv2.LINE_AA)
        cv2.rectangle(
            img,
            (int(s * 0.18), int(s * 0.41)),
            (int(s * 0.82), int(s * 0.59)),
            (*WHITE, 255),
            -1,
            cv2.LINE_AA,
        )
    elif cls.startswith("speed_limit_"):
        cv2.circle(img, (int(c), int(c)), int(c - 1), (*RED, 255), -1, cv2.LINE_AA)
        cv2.circle(img, (int(c), int(c)), int(c * 0.76), (*WHITE, 255), -1, cv2.LINE_AA)
        _text(img, cls.rsplit("_", 1)[1], c, c, s * 0.36, BLACK, 0.17, s * 0.6)
    elif cls == "pedestrian_crossing":
        cv2.rectangle(img, (0, 0), (size - 1, size - 1), (*WHITE, 255), -1)
        cv2.rectangle(
            img, (int(s * 0.04), int(s * 0.04)), (int(s * 0.96), int(s * 0.96)), (*BLUE, 255), -1
        )
        _poly(img, np.array([[c, s * 0.1], [s * 0.9, s * 0.86], [s * 0.1, s * 0.86]]), WHITE)
        k = s / 256
        cv2.circle(
            img, (int(c + 6 * k), int(s * 0.38)), int(12 * k), (*BLACK, 255), -1, cv2.LINE_AA
        )
        for a, b in (
            ((c + 2 * k, 0.45), (c - 6 * k, 0.62)),
            ((c - 6 * k, 0.62), (c - 26 * k, 0.78)),
            ((c - 6 * k, 0.62), (c + 22 * k, 0.78)),
            ((c + 2 * k, 0.48), (c + 26 * k, 0.58)),
            ((c + 2 * k, 0.48), (c - 24 * k, 0.56)),
        ):
            cv2.line(
                img,
                (int(a[0]), int(s * a[1])),
                (int(b[0]), int(s * b[1])),
                (*BLACK, 255),
                max(1, int(11 * k)),
                cv2.LINE_AA,
            )
    else:
        raise ValueError(f"no sign face for {cls!r}")
    return img


def sign_back(front: Image) -> Image:
    """Grey galvanised back of a sign, with the front's outline."""
    out = np.zeros_like(front)
    out[..., :3] = (150, 152, 155)
    out[..., 3] = front[..., 3]
    return out


def traffic_light(state: str, w: int = 72, h: int = 200) -> Image:
    img = _canvas(w, h)
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), (30, 32, 30, 255), -1)
    cv2.rectangle(img, (3, 3), (w - 4, h - 4), (45, 48, 45, 255), 2)
    on = {"red": (0,), "red_amber": (0, 1), "amber": (1,), "green": (2,)}[state]
    cols = ((60, 60, 255), (40, 190, 255), (140, 255, 90))
    dim = ((30, 30, 70), (25, 55, 70), (40, 70, 35))
    r = int(w * 0.34)
    for i in range(3):
        cy = int(h * (0.18 + 0.32 * i))
        col = cols[i] if i in on else dim[i]
        cv2.circle(img, (w // 2, cy), r, (*col, 255), -1, cv2.LINE_AA)
        if i in on:
            cv2.circle(
                img,
                (w // 2 - r // 3, cy - r // 3),
                max(1, r // 3),
                (235, 245, 255, 255),
                -1,
                cv2.LINE_AA,
            )
    return img


def hydrant(w: int = 64, h: int = 150) -> Image:
    img = _canvas(w, h)
    body = (35, 35, 205)
    dark = (25, 25, 150)
    cv2.rectangle(img, (int(w * 0.22), int(h * 0.2)), (int(w * 0.78), h - 8), (*body, 255), -1)
    cv2.ellipse(
        img,
        (w // 2, int(h * 0.2)),
        (int(w * 0.28), int(h * 0.12)),
        0,
        180,
        360,
        (*dark, 255),
        -1,
        cv2.LINE_AA,
    )
    cv2.rectangle(img, (int(w * 0.4), 0), (int(w * 0.6), int(h * 0.1)), (*dark, 255), -1)
    cv2.rectangle(img, (0, int(h * 0.42)), (w - 1, int(h * 0.55)), (*dark, 255), -1)
    cv2.rectangle(img, (int(w * 0.12), h - 12), (int(w * 0.88), h - 1), (*dark, 255), -1)
    # cylindrical shading
    x = np.linspace(-1, 1, w)
    shade = (0.65 + 0.45 * np.sqrt(np.clip(1 - (x - 0.25) ** 2, 0, 1)))[None, :, None]
    img[..., :3] = np.clip(img[..., :3] * shade, 0, 255).astype(np.uint8)
    return img


def plate(text: str, w: int = 208, h: int = 48) -> Image:
    """A European plate: white, black border, blue band with 'FIN', black characters."""
    img = _canvas(w, h)
    img[...] = (240, 240, 240, 255)
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), (20, 20, 20, 255), 2)
    band = int(w * 0.09)
    cv2.rectangle(img, (2, 2), (band, h - 3), (150, 60, 10, 255), -1)
    _text(img, "FIN", band / 2 + 1, h * 0.75, h * 0.16, (240, 240, 240), 0.2)
    _text(img, text, (w + band) / 2, h / 2, h * 0.58, BLACK, 0.14, (w - band) * 0.88)
    return img


def plate_text(rng: np.random.Generator) -> str:
    letters = "ABCEFGHIJKLMNOPRSTUVXYZ"
    n = int(rng.integers(2, 4))
    return "".join(rng.choice(list(letters), n)) + "-" + str(int(rng.integers(1, 1000)))


@lru_cache(maxsize=1)
def lfw_faces() -> NDArray[np.float64]:
    """200 real 25x25 grey face crops (Labeled Faces in the Wild subset, scikit-image)."""
    from skimage.data import lfw_subset

    return np.asarray(lfw_subset(), dtype=np.float64)


SKIN_TONES = ((150, 190, 235), (120, 165, 215), (95, 135, 190), (70, 100, 150), (50, 75, 115))
HAIR = ((20, 20, 25), (30, 45, 70), (50, 80, 120), (120, 140, 160), (20, 30, 40))


def face(index: int, tone: int, hair: int, w: int = 80, h: int = 104) -> Image:
    """A head: hair cap and a real LFW face crop, upscaled, contrast-stretched and tinted."""
    g = lfw_faces()[index % 200]
    g = (g - g.min()) / max(1e-6, g.max() - g.min())
    img = _canvas(w, h)
    hc = HAIR[hair % len(HAIR)]
    cv2.ellipse(
        img,
        (w // 2, int(h * 0.46)),
        (int(w * 0.5) - 1, int(h * 0.46)),
        0,
        0,
        360,
        (*hc, 255),
        -1,
        cv2.LINE_AA,
    )
    fw, fh = int(w * 0.84), int(h * 0.72)
    crop = (
        cv2.resize((g * 255).astype(np.uint8), (fw, fh), interpolation=cv2.INTER_CUBIC).astype(
            np.float32
        )
        / 255.0
    )
    tone_bgr = np.array(SKIN_TONES[tone % len(SKIN_TONES)], np.float32) / 255.0
    rgb = np.clip((0.25 + 0.95 * crop[..., None]) * tone_bgr * 255.0, 0, 255).astype(np.uint8)
    mask = np.zeros((fh, fw), np.uint8)
    cv2.ellipse(
        mask, (fw // 2, fh // 2), (fw // 2 - 1, fh // 2 - 1), 0, 0, 360, 255, -1, cv2.LINE_AA
    )
    y0, x0 = int(h * 0.24), (w - fw) // 2
    roi = img[y0 : y0 + fh, x0 : x0 + fw]
    a = (mask.astype(np.float32) / 255.0)[..., None]
    roi[..., :3] = (roi[..., :3] * (1 - a) + rgb * a).astype(np.uint8)
    roi[..., 3] = np.maximum(roi[..., 3], mask)
    return img


def head_back(hair: int, w: int = 80, h: int = 104) -> Image:
    img = _canvas(w, h)
    hc = HAIR[hair % len(HAIR)]
    cv2.ellipse(
        img, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, (*hc, 255), -1, cv2.LINE_AA
    )
    return img


def mips(img: Image) -> list[Image]:
    """The image and successively halved copies (INTER_AREA), largest first, down to ~8 px."""
    out = [img]
    while min(out[-1].shape[:2]) > 12:
        h, w = out[-1].shape[:2]
        out.append(
            np.asarray(
                cv2.resize(out[-1], (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA),
                dtype=np.uint8,
            )
        )
    return out


def pick_mip(levels: list[Image], target_px: float) -> Image:
    """The smallest level at least as large as target_px (longest side)."""
    best = levels[0]
    for lv in levels:
        if max(lv.shape[:2]) >= target_px * 1.2:
            best = lv
        else:
            break
    return best


class SpriteBank:
    """All static sprites with mip levels, built once per process."""

    def __init__(self) -> None:
        from sim.features import SIGN_CLASSES

        self.front: dict[str, list[Image]] = {}
        self.back: dict[str, list[Image]] = {}
        for cls in SIGN_CLASSES:
            if cls in ("traffic_light", "fire_hydrant"):
                continue
            f = sign_face(cls)
            self.front[cls] = mips(f)
            self.back[cls] = mips(sign_back(f))
            p = pictogram(cls)
            if p is not None:
                self.front[f"{cls}:pictogram"] = mips(p)
                self.back[f"{cls}:pictogram"] = mips(sign_back(p))
        for st in LIGHT_STATES:
            self.front[f"traffic_light:{st}"] = mips(traffic_light(st))
        back = traffic_light("red")
        back[..., :3] = (40, 42, 40)
        self.back["traffic_light"] = mips(back)
        self.front["fire_hydrant"] = mips(hydrant())
        self.back["fire_hydrant"] = self.front["fire_hydrant"]
        self._faces: dict[tuple[int, int, int], list[Image]] = {}
        self._backs: dict[int, list[Image]] = {}
        self._plates: dict[str, list[Image]] = {}

    def face(self, index: int, tone: int, hair: int) -> list[Image]:
        key = (index, tone, hair)
        if key not in self._faces:
            self._faces[key] = mips(face(index, tone, hair))
        return self._faces[key]

    def head_back(self, hair: int) -> list[Image]:
        if hair not in self._backs:
            self._backs[hair] = mips(head_back(hair))
        return self._backs[hair]

    def plate(self, text: str) -> list[Image]:
        if text not in self._plates:
            if len(self._plates) > 512:
                self._plates.clear()
            self._plates[text] = mips(plate(text))
        return self._plates[text]


def light_state(t: float, offset_s: float, cycle_s: float = 60.0) -> str:
    """Fixed-time signal plan: green 26 s, amber 3 s, red 29 s, red+amber 2 s."""
    ph = (t + offset_s) % cycle_s
    if ph < 26.0:
        return "green"
    if ph < 29.0:
        return "amber"
    if ph < 58.0:
        return "red"
    return "red_amber"


def light_offset(node_osm: int, facing_deg: float) -> float:
    """Crossing approaches run opposite phases: N-S approaches vs E-W approaches."""
    base = (node_osm * 2654435761) % 60
    axis_ew = math.sin(math.radians(facing_deg)) ** 2 > 0.5
    return float(base + (30.0 if axis_ew else 0.0))
