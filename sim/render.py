"""The camera renderer: numpy + OpenCV painter's algorithm over the scene.

Ground layers are flat polygons filled in one ``cv2.fillPoly`` call per layer and distance
band; vertical things (walls, trees, poles, signs, cars, people) are sorted far to near and
drawn one by one, textured ones by a perspective warp of a small sprite into their own
bounding box only. An id buffer drawn alongside gives each labelled object's visible pixels,
from which its 2D box and visible fraction come.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from sim.conditions import (
    CONDITIONS,
    CameraFaults,
    Conditions,
    fog_factor,
    glare_overlay,
    jpeg_roundtrip,
    lighting,
    motion_blur,
    noise_tiles,
    shade,
    sky_image,
    smudge_mask,
)
from sim.features import MapFeature
from sim.scene import Actors, Car, Pedestrian, StaticScene
from sim.sprites import Image, SpriteBank, light_offset, light_state, pick_mip
from vision.camera import Intrinsics, Pose

FloatArray = NDArray[np.float64]
SHIFT = 2
SCALE = float(1 << SHIFT)
OCCLUDER = 1
COS_LABEL = math.cos(math.radians(80.0))
GLASS = (70, 55, 50)
TYRE = (25, 25, 28)
POLE = (140, 140, 138)


@dataclass
class Label:
    cls: str
    obj: str  # feature id, car id (plates: "<car>:front"/":rear") or person id
    box: tuple[float, float, float, float]  # visible pixels, x1 y1 x2 y2 (inclusive pixel edges)
    box_full: tuple[float, float, float, float]  # projected extent clipped to the image
    visible: float  # visible pixels / pixels the object would cover unoccluded
    distance_m: float

    def to_dict(self) -> dict[str, object]:
        return {
            "cls": self.cls,
            "id": self.obj,
            "box": [round(v, 1) for v in self.box],
            "box_full": [round(v, 1) for v in self.box_full],
            "visible": round(self.visible, 3),
            "distance_m": round(self.distance_m, 2),
        }


@dataclass
class RenderResult:
    image: Image
    labels: list[Label] = field(default_factory=list)


def clip_near(pc: FloatArray, near: float) -> FloatArray:
    """Sutherland-Hodgman clip of a camera-space polygon (k, 3) against z >= near."""
    out = []
    n = len(pc)
    for i in range(n):
        a, b = pc[i], pc[(i + 1) % n]
        ain, bin_ = a[2] >= near, b[2] >= near
        if ain:
            out.append(a)
        if ain != bin_:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out).reshape(-1, 3)


class Renderer:
    """Renders frames of one static scene for one camera. Not thread-safe; one per process."""

    def __init__(
        self,
        scene: StaticScene,
        intr: Intrinsics,
        seed: int = 0,
        draw_distance: float = 160.0,
        near: float = 0.3,
    ) -> None:
        self.scene = scene
        self.intr = intr
        self.draw_distance = draw_distance
        self.near = near
        self.bank = SpriteBank()
        self.seed = seed
        self._sky: dict[str, Image] = {}
        self._glare: Image | None = None
        self._smudge: dict[float, NDArray[np.float32]] = {}
        self._noise = noise_tiles(intr.width, intr.height, 4, seed)
        self._noise_buf = np.empty((intr.height, intr.width, 3), np.int16)
        self._tan_h = (intr.width / 2.0) / intr.fx
        self.light_state: Callable[[MapFeature, float], str] = lambda f, t: light_state(
            t, light_offset(f.node_osm, f.facing_deg)
        )

    # ------------------------------------------------------------------ public
    def render(
        self,
        pose: Pose,
        t: float = 0.0,
        cond: Conditions | str = "day",
        actors: Actors | None = None,
        *,
        speed: float = 0.0,
        yaw_rate_deg: float = 0.0,
        faults: CameraFaults | None = None,
        frame_seed: int = 0,
        jpeg_quality: int | None = None,
        noise: bool = True,
        extra_features: list[MapFeature] | None = None,
    ) -> RenderResult:
        if isinstance(cond, str):
            cond = CONDITIONS[cond]
        W, H = self.intr.width, self.intr.height
        self._R = pose.rotation()
        self._C = pose.position
        self._cond = cond
        self._t = t
        img = self._background(cond)
        self._img = img
        self._ids = np.zeros((H, W), np.uint16)
        self._labels: list[
            tuple[int, str, str, FloatArray, float, int]
        ] = []  # id, cls, obj, uv, dist, drawn px
        self._draw_ground()
        self._draw_vertical(actors, extra_features or [])
        labels = self._finish_labels()
        # post effects, in the order light meets the sensor
        if cond.glare:
            if self._glare is None:
                self._glare = glare_overlay(W, H, np.random.default_rng(self.seed + 11))
            cv2.addWeighted(img, 0.88, self._glare, 0.0, 0.0, dst=img)
            cv2.add(img, self._glare, dst=img)
        blur_h = abs(yaw_rate_deg) * math.pi / 180.0 * self.intr.fx * 0.02  # ~20 ms exposure
        blur_v = speed * 0.012 * (H / 720.0)
        img = motion_blur(img, blur_h, blur_v)
        if faults is not None and faults.any:
            img = self._apply_faults(img, faults)
        if noise and cond.noise_sigma > 0:
            tile = self._noise[frame_seed % len(self._noise)]
            sigma = cond.noise_sigma * (
                1.0 if faults is None else 1.0 + 2.0 * (1.0 - faults.exposure)
            )
            np.multiply(tile, sigma / 10.0, out=self._noise_buf, casting="unsafe")
            img = np.asarray(cv2.add(img, self._noise_buf, dtype=cv2.CV_8U), dtype=np.uint8)
        if jpeg_quality is not None:
            img = jpeg_roundtrip(img, jpeg_quality)
        return RenderResult(img, labels)

    # ------------------------------------------------------------------ helpers
    def _background(self, cond: Conditions) -> Image:
        W, H = self.intr.width, self.intr.height
        if cond.name not in self._sky:
            self._sky[cond.name] = sky_image(cond, W, H)
        img = self._sky[cond.name].copy()
        # horizon: pixels whose ray is horizontal; R[:, 2] is world-up in camera coordinates
        r0, r1, r2 = self._R[0, 2], self._R[1, 2], self._R[2, 2]
        i = self.intr
        if abs(r1) > 1e-6:
            v0 = i.cy - i.fy * (r2 + r0 * (0 - i.cx) / i.fx) / r1
            v1 = i.cy - i.fy * (r2 + r0 * (W - i.cx) / i.fx) / r1
            poly = np.array([[0, v0], [W, v1], [W, H + 10], [0, H + 10]])
            gcol = shade(
                self.scene.ground,
                cond,
                cond.ambient if not cond.headlights else cond.ambient * 1.2,
                0.0,
            )
            cv2.fillPoly(img, [np.round(poly * SCALE).astype(np.int32)], gcol, cv2.LINE_8, SHIFT)
            haze = shade(self.scene.ground, cond, cond.ambient, 0.6)
            hz = np.array([[0, v0], [W, v1], [W, v1 + 0.012 * H], [0, v0 + 0.012 * H]])
            cv2.fillPoly(img, [np.round(hz * SCALE).astype(np.int32)], haze, cv2.LINE_8, SHIFT)
        return img

    def _cam(self, pts: FloatArray) -> FloatArray:
        return (pts - self._C) @ self._R.T

    def _px(self, pc: FloatArray) -> FloatArray:
        i = self.intr
        z = pc[..., 2]
        return np.stack([i.fx * pc[..., 0] / z + i.cx, i.fy * pc[..., 1] / z + i.cy], axis=-1)

    def _poly(self, pc: FloatArray) -> NDArray[np.int32] | None:
        """Camera-space polygon -> fixed-point pixel polygon (clipped at the near plane)."""
        if np.any(pc[:, 2] < self.near):
            pc = clip_near(pc, self.near)
            if len(pc) < 3:
                return None
        uv = self._px(pc)
        if (
            uv[:, 0].max() < 0
            or uv[:, 0].min() > self.intr.width
            or uv[:, 1].max() < 0
            or uv[:, 1].min() > self.intr.height
        ):
            return None
        return np.round(np.clip(uv, -1e5, 1e5) * SCALE).astype(np.int32)

    # ------------------------------------------------------------------ ground
    def _draw_ground(self) -> None:
        cond = self._cond
        cxy = self._C[:2]
        bands = (0.0, 25.0, 50.0, 90.0, 1e9)
        for layer in self.scene.layers:
            if not len(layer.quads):
                continue
            idx = layer.tree.query_ball_point(cxy, self.draw_distance + layer.radius)
            if not idx:
                continue
            q = layer.quads[np.asarray(idx)]
            n = len(q)
            q3 = np.concatenate([q, np.zeros((n, 4, 1))], axis=2)
            pc = self._cam(q3)
            z = pc[..., 2]
            front = z >= self.near
            allf = front.all(axis=1)
            anyf = front.any(axis=1)
            dist = np.linalg.norm(q.mean(axis=1) - cxy, axis=1)
            # quads fully in front, culled by the frustum
            pcf = pc[allf]
            uv = self._px(pcf)
            inside = (
                (uv[..., 0].max(1) >= 0)
                & (uv[..., 0].min(1) <= self.intr.width)
                & (uv[..., 1].max(1) >= 0)
                & (uv[..., 1].min(1) <= self.intr.height)
            )
            uvi = np.round(np.clip(uv[inside], -1e5, 1e5) * SCALE).astype(np.int32)
            d_f = dist[allf][inside]
            partial = [self._poly(pc[k]) for k in np.nonzero(anyf & ~allf)[0]]
            d_p = dist[anyf & ~allf]
            for b0, b1 in itertools.pairwise(bands):
                sel = (d_f >= b0) & (d_f < b1)
                polys = list(uvi[sel])
                polys += [
                    p for p, d in zip(partial, d_p, strict=True) if p is not None and b0 <= d < b1
                ]
                if not polys:
                    continue
                mid = min((b0 + min(b1, 160.0)) / 2.0, 140.0)
                col = shade(
                    layer.colour,
                    cond,
                    float(lighting(cond, mid if b0 > 0 else 8.0)),
                    float(fog_factor(cond, mid)),
                )
                cv2.fillPoly(self._img, polys, col, cv2.LINE_8, SHIFT)

    # ------------------------------------------------------------------ vertical
    def _draw_vertical(self, actors: Actors | None, extra: list[MapFeature]) -> None:
        sc = self.scene
        cxy = self._C[:2]
        fwd = self._R[2, :2]
        fwd = fwd / max(1e-9, float(np.linalg.norm(fwd)))
        items: list[tuple[float, int, int]] = []

        def visible_idx(
            kd: object, xy: FloatArray, radius: float, margin: float
        ) -> tuple[NDArray[np.int64], FloatArray]:
            idx = np.asarray(kd.query_ball_point(cxy, radius), dtype=np.int64)  # type: ignore[attr-defined]
            if not len(idx):
                return idx, np.zeros(0)
            rel = xy[idx] - cxy
            along = rel @ fwd
            across = np.abs(rel @ np.array([fwd[1], -fwd[0]]))
            ok = (along > -margin) & (across <= along * self._tan_h * 1.05 + margin)
            return idx[ok], np.linalg.norm(rel[ok], axis=1)

        if len(sc.wall_a):
            centres = (sc.wall_a + sc.wall_b) / 2
            idx, d = visible_idx(sc.wall_tree, centres, self.draw_distance, 7.0)
            if len(idx):
                e = sc.wall_b[idx] - sc.wall_a[idx]
                normal = np.stack([e[:, 1], -e[:, 0]], axis=1)
                facing = np.sum(normal * (cxy - centres[idx]), axis=1) > 0
                for k, dd in zip(idx[facing], d[facing], strict=True):
                    items.append((float(dd), 0, int(k)))
        idx, d = (
            visible_idx(sc.tree_kd, sc.tree_xy, 110.0, 4.0)
            if len(sc.tree_xy)
            else (np.zeros(0, np.int64), np.zeros(0))
        )
        items += [(float(dd), 1, int(k)) for k, dd in zip(idx, d, strict=True)]
        idx, d = (
            visible_idx(sc.feat_kd, sc.feat_xy, 110.0, 2.0)
            if len(sc.feat_xy)
            else (np.zeros(0, np.int64), np.zeros(0))
        )
        items += [(float(dd), 2, int(k)) for k, dd in zip(idx, d, strict=True)]
        if actors is not None:
            if actors.cars:
                idx, d = visible_idx(actors.car_kd, actors.car_xy, 100.0, 4.0)
                items += [(float(dd), 3, int(k)) for k, dd in zip(idx, d, strict=True)]
            if actors.people:
                idx, d = visible_idx(actors.ped_kd, actors.ped_xy, 70.0, 2.0)
                items += [(float(dd), 4, int(k)) for k, dd in zip(idx, d, strict=True)]
        for k, f in enumerate(extra):
            dd = float(np.hypot(f.east - cxy[0], f.north - cxy[1]))
            if dd < 110.0:
                items.append((dd, 5, k))
        items.sort(key=lambda it: -it[0])
        for dist, kind, k in items:
            if kind == 0:
                self._wall(k, dist)
            elif kind == 1:
                self._tree(k, dist)
            elif kind == 2:
                self._feature(sc.features[k], dist)
            elif kind == 3 and actors is not None:
                self._car(actors.cars[k], dist)
            elif kind == 4 and actors is not None:
                self._person(actors.people[k], dist)
            elif kind == 5:
                self._feature(extra[k], dist)

    def _off_axis(self, xy: FloatArray) -> float:
        """Angle (radians) between the camera's forward axis and the ground point `xy`."""
        rel = xy - self._C[:2]
        f = self._R[2, :2]
        cos = float(rel @ f) / max(1e-6, float(np.linalg.norm(rel)) * float(np.linalg.norm(f)))
        return math.acos(max(-1.0, min(1.0, cos)))

    def _colour(
        self,
        base: tuple[int, int, int] | NDArray[np.uint8],
        dist: float,
        xy: FloatArray | None = None,
        gain: float = 1.0,
    ) -> tuple[int, int, int]:
        cond = self._cond
        off = 0.0
        if cond.headlights and xy is not None:
            off = self._off_axis(xy)
        light = float(lighting(cond, dist, off)) * gain
        return shade(base, cond, light, float(fog_factor(cond, dist)))

    def _fill(
        self, pc: FloatArray, colour: tuple[int, int, int], ident: int = OCCLUDER
    ) -> NDArray[np.int32] | None:
        poly = self._poly(pc)
        if poly is None:
            return None
        cv2.fillPoly(self._img, [poly], colour, cv2.LINE_8, SHIFT)
        cv2.fillPoly(self._ids, [poly], ident, cv2.LINE_8, SHIFT)
        return poly

    def _wall(self, k: int, dist: float) -> None:
        sc = self.scene
        a, b, h = sc.wall_a[k], sc.wall_b[k], float(sc.wall_h[k])
        e = b - a
        n = np.array([e[1], -e[0]]) / max(1e-9, float(np.linalg.norm(e)))
        sun = np.array(
            [
                math.sin(math.radians(self._cond.sun_bearing_deg)),
                math.cos(math.radians(self._cond.sun_bearing_deg)),
            ]
        )
        lamb = 0.62 + 0.38 * max(0.0, float(n @ sun))
        col = self._colour(sc.wall_colour[k], dist, (a + b) / 2, lamb)
        quad = np.array([[a[0], a[1], 0.0], [b[0], b[1], 0.0], [b[0], b[1], h], [a[0], a[1], h]])
        self._fill(self._cam(quad), col)
        if dist < 70.0 and h > 5.0 and sc.windows:
            win = self._colour(
                (95, 80, 70) if self._cond.name != "night" else (90, 170, 220),
                dist,
                (a + b) / 2,
                1.0 if self._cond.name != "night" else 3.0,
            )
            a2, b2 = a + 0.08 * e + n * 0.02, b - 0.08 * e + n * 0.02
            floors = np.arange(3.6, h - 1.5, 3.2)
            if len(floors):
                z0 = floors + 0.9
                z1 = floors + 2.3
                quads = np.stack(
                    [
                        np.column_stack([np.full_like(z0, a2[0]), np.full_like(z0, a2[1]), z0]),
                        np.column_stack([np.full_like(z0, b2[0]), np.full_like(z0, b2[1]), z0]),
                        np.column_stack([np.full_like(z0, b2[0]), np.full_like(z0, b2[1]), z1]),
                        np.column_stack([np.full_like(z0, a2[0]), np.full_like(z0, a2[1]), z1]),
                    ],
                    axis=1,
                )
                pcs = self._cam(quads)
                polys = [p for p in (self._poly(q) for q in pcs) if p is not None]
                if polys:
                    cv2.fillPoly(self._img, polys, win, cv2.LINE_8, SHIFT)
            # a shop-window band at street level
            quad = np.array(
                [[a2[0], a2[1], 0.6], [b2[0], b2[1], 0.6], [b2[0], b2[1], 2.6], [a2[0], a2[1], 2.6]]
            )
            self._fill(self._cam(quad), win)

    def _billboard(
        self, xy: FloatArray, width: float, z0: float, z1: float, offset: float = 0.0
    ) -> FloatArray:
        """A vertical rectangle facing the camera, centred on xy (+offset m to the viewer's right)."""
        d = xy - self._C[:2]
        d = d / max(1e-9, float(np.linalg.norm(d)))
        r = np.array([d[1], -d[0]])
        c = xy + r * offset
        a, b = c - r * width / 2, c + r * width / 2
        return np.array([[a[0], a[1], z0], [b[0], b[1], z0], [b[0], b[1], z1], [a[0], a[1], z1]])

    def _tree(self, k: int, dist: float) -> None:
        xy = self.scene.tree_xy[k]
        h = float(self.scene.tree_h[k])
        self._fill(
            self._cam(self._billboard(xy, 0.3, 0.0, h * 0.45)), self._colour((40, 60, 85), dist, xy)
        )
        c = self._cam(np.array([xy[0], xy[1], h * 0.68]))
        if c[2] < self.near + 1.0:
            return
        uv = self._px(c[None])[0]
        rx = self.intr.fx * (h * 0.3) / c[2]
        ry = self.intr.fy * (h * 0.34) / c[2]
        if (
            uv[0] + rx < 0
            or uv[0] - rx > self.intr.width
            or uv[1] + ry < 0
            or uv[1] - ry > self.intr.height
        ):
            return
        col = self._colour((50, 105, 60) if k % 3 else (45, 120, 80), dist, xy)
        centre = (int(uv[0] * SCALE), int(uv[1] * SCALE))
        axes = (max(1, int(rx * SCALE)), max(1, int(ry * SCALE)))
        cv2.ellipse(self._img, centre, axes, 0, 0, 360, col, -1, cv2.LINE_8, SHIFT)
        cv2.ellipse(self._ids, centre, axes, 0, 0, 360, OCCLUDER, -1, cv2.LINE_8, SHIFT)

    def _sprite(self, levels: list[Image], corners: FloatArray, gain: float, ident: int) -> int:
        """Warp a sprite onto a projected quad (TL, TR, BR, BL world corners, (4, 3)).
        Returns the number of pixels it covers (alpha >= 0.5)."""
        pc = self._cam(corners)
        if np.any(pc[:, 2] < self.near):
            return 0
        uv = self._px(pc)
        W, H = self.intr.width, self.intr.height
        x0, y0 = max(0, math.floor(uv[:, 0].min())), max(0, math.floor(uv[:, 1].min()))
        x1, y1 = min(W, math.ceil(uv[:, 0].max()) + 1), min(H, math.ceil(uv[:, 1].max()) + 1)
        if x1 - x0 < 1 or y1 - y0 < 1:
            return 0
        size = max(float(np.ptp(uv[:, 0])), float(np.ptp(uv[:, 1])))
        spr = pick_mip(levels, size)
        h, w = spr.shape[:2]
        src = np.array(
            [[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]], np.float32
        )
        dst = (uv - np.array([x0, y0])).astype(np.float32)
        M = cv2.getPerspectiveTransform(src, dst)
        warped = cv2.warpPerspective(
            spr,
            M,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0, 0),
        )
        a = warped[..., 3:4].astype(np.float32) * (1.0 / 255.0)
        roi = self._img[y0:y1, x0:x1]
        rgb = warped[..., :3].astype(np.float32) * gain
        np.clip(rgb, 0, 255, out=rgb)
        roi[...] = (roi * (1.0 - a) + rgb * a).astype(np.uint8)
        mask = warped[..., 3] >= 128
        self._ids[y0:y1, x0:x1][mask] = ident
        return int(np.count_nonzero(mask))

    def _face_corners(
        self, centre: FloatArray, normal_xy: FloatArray, w: float, h: float
    ) -> FloatArray:
        """World corners TL, TR, BR, BL of a vertical rectangle seen from the side its normal points to."""
        r = np.array([-normal_xy[1], normal_xy[0], 0.0])  # the viewer's right
        up = np.array([0.0, 0.0, 1.0])
        return np.array(
            [
                centre - r * w / 2 + up * h / 2,
                centre + r * w / 2 + up * h / 2,
                centre + r * w / 2 - up * h / 2,
                centre - r * w / 2 - up * h / 2,
            ]
        )

    def _label_id(self) -> int:
        return 2 + len(self._labels)

    def _gain(self, dist: float, xy: FloatArray, retro: bool) -> float:
        cond = self._cond
        off = self._off_axis(xy)
        g = float(lighting(cond, dist, off))
        if retro and cond.headlights:
            g = max(g, min(1.0, g * cond.retro))
        return g * (1.0 - 0.5 * float(fog_factor(cond, dist)))

    def _feature(self, f: MapFeature, dist: float) -> None:
        xy = f.xy
        b = math.radians(f.facing_deg)
        nrm = np.array([math.sin(b), math.cos(b)])
        to_cam = self._C[:2] - xy
        cosang = float(nrm @ to_cam) / max(1e-6, float(np.linalg.norm(to_cam)))
        front = cosang > 0
        if f.cls == "fire_hydrant":
            ident = self._label_id()
            corners = self._billboard(xy, f.width_m, 0.0, f.face_height_m)
            corners = corners[[3, 2, 1, 0]]  # TL, TR, BR, BL
            n = self._sprite(
                self.bank.front["fire_hydrant"], corners, self._gain(dist, xy, False), ident
            )
            if n:
                self._labels.append((ident, f.cls, f.id, self._px(self._cam(corners)), dist, n))
            return
        bottom = f.height_m - f.face_height_m / 2
        pole_w = 0.12 if f.cls == "traffic_light" else 0.07
        pole = self._billboard(
            xy - nrm * 0.05, pole_w, 0.0, bottom + (0.0 if front else f.face_height_m * 0.8)
        )
        centre = np.array([xy[0], xy[1], f.height_m])
        if front:
            self._fill(self._cam(pole), self._colour(POLE, dist, xy))
            key = (
                f"traffic_light:{self.light_state(f, self._t)}"
                if f.cls == "traffic_light"
                else _style(f.cls, f.id, self.bank.front)
            )
            ident = self._label_id()
            corners = self._face_corners(centre, nrm, f.width_m, f.face_height_m)
            retro = f.cls != "traffic_light"
            gain = self._gain(dist, xy, retro) if retro else max(self._gain(dist, xy, False), 0.9)
            n = self._sprite(self.bank.front[key], corners, gain, ident)
            if n and cosang > COS_LABEL:
                self._labels.append((ident, f.cls, f.id, self._px(self._cam(corners)), dist, n))
        else:
            key = (
                "traffic_light" if f.cls == "traffic_light" else _style(f.cls, f.id, self.bank.back)
            )
            corners = self._face_corners(centre, -nrm, f.width_m, f.face_height_m)
            self._sprite(self.bank.back[key], corners, self._gain(dist, xy, False), OCCLUDER)
            self._fill(self._cam(pole), self._colour(POLE, dist, xy))

    def _car(self, car: Car, dist: float) -> None:
        ex, ny = car.at(self._t)
        h = math.radians(car.heading_deg)
        fw = np.array([math.sin(h), math.cos(h), 0.0])
        rt = np.array([math.cos(h), -math.sin(h), 0.0])
        base = np.array([ex, ny, 0.0])
        cam = self._C
        L, Wd = car.length, car.width

        def box(
            cf: float,
            length: float,
            width: float,
            z0: float,
            z1: float,
            side_col: tuple[int, int, int],
            top_col: tuple[int, int, int],
            glass: bool,
        ) -> None:
            c = base + fw * cf
            hl, hw = length / 2, width / 2
            corners = {}
            for i, (sx, sy) in enumerate(((1, 1), (1, -1), (-1, -1), (-1, 1))):
                corners[i] = c + fw * sx * hl + rt * sy * hw
            faces = [  # (normal, [4 points])
                (fw, [corners[0], corners[1]], "front"),
                (-fw, [corners[2], corners[3]], "rear"),
                (rt, [corners[3], corners[0]], "right"),
                (-rt, [corners[1], corners[2]], "left"),
            ]
            for nrm, (p, q), _name in faces:
                fc = (p + q) / 2 + np.array([0, 0, (z0 + z1) / 2])
                if float(nrm @ (cam - fc)) <= 0:
                    continue
                zs0, zs1 = np.array([0.0, 0.0, z0]), np.array([0.0, 0.0, z1])
                quad = np.array([p + zs0, q + zs0, q + zs1, p + zs1])
                g = 0.85 if abs(nrm[0] * fw[0] + nrm[1] * fw[1]) > 0.5 else 1.0
                col = tuple(int(v * g) for v in (GLASS if glass else side_col))
                self._fill(self._cam(quad), self._colour(col, dist, base[:2]))  # type: ignore[arg-type]
            if cam[2] > z1:
                top = np.array(
                    [
                        corners[0] + [0, 0, z1],
                        corners[1] + [0, 0, z1],
                        corners[2] + [0, 0, z1],
                        corners[3] + [0, 0, z1],
                    ]
                )
                self._fill(self._cam(top), self._colour(top_col, dist, base[:2], 1.1))

        col = car.colour
        box(0.0, L, Wd, 0.28, 0.95, col, col, False)
        box(-0.25, L * 0.5, Wd * 0.88, 0.95, 1.45, col, col, True)
        # wheels on the visible side, lights and plates at the ends
        for nrm, sgn in ((rt, 1.0), (-rt, -1.0)):
            sc = base + rt * sgn * (Wd / 2 + 0.01)
            if float(nrm @ (cam - sc - [0, 0, 0.4])) <= 0:
                continue
            for along in (L / 2 - 0.85, -(L / 2 - 0.85)):
                c = sc + fw * along
                quad = np.array(
                    [
                        c - fw * 0.32,
                        c + fw * 0.32,
                        c + fw * 0.32 + [0, 0, 0.62],
                        c - fw * 0.32 + [0, 0, 0.62],
                    ]
                )
                self._fill(self._cam(quad), self._colour(TYRE, dist, base[:2]))
        for nrm, end, lamp in (
            (fw, L / 2 + 0.01, (215, 235, 240)),
            (-fw, -(L / 2 + 0.01), (40, 40, 190)),
        ):
            ec = base + fw * end
            if float(nrm @ (cam - ec - [0, 0, 0.5])) <= 0:
                continue
            night = self._cond.headlights
            for s in (-1.0, 1.0):
                c = ec + rt * s * (Wd / 2 - 0.28) + [0, 0, 0.72]
                quad = np.array(
                    [
                        c - rt * 0.16 - [0, 0, 0.07],
                        c + rt * 0.16 - [0, 0, 0.07],
                        c + rt * 0.16 + [0, 0, 0.07],
                        c - rt * 0.16 + [0, 0, 0.07],
                    ]
                )
                lc = lamp if night else tuple(int(v * 0.8) for v in lamp)
                poly = self._poly(self._cam(quad))
                if poly is not None:
                    cv2.fillPoly(self._img, [poly], lc, cv2.LINE_8, SHIFT)  # type: ignore[arg-type]
            centre = ec + np.array([0.0, 0.0, 0.48])
            corners = self._face_corners(centre, nrm[:2], 0.52, 0.118)
            ident = self._label_id()
            n = self._sprite(
                self.bank.plate(car.plate), corners, self._gain(dist, base[:2], True), ident
            )
            if n:
                self._labels.append(
                    (
                        ident,
                        "license_plate",
                        f"{car.id}:{'front' if end > 0 else 'rear'}",
                        self._px(self._cam(corners)),
                        dist,
                        n,
                    )
                )

    def _person(self, p: Pedestrian, dist: float) -> None:
        ex, ny = p.at(self._t)
        xy = np.array([ex, ny])
        s = p.height / 1.75
        H = p.height
        col = lambda c: self._colour(c, dist, xy)  # noqa: E731
        swing = 0.05 * math.sin(self._t * 6.0) if p.speed else 0.0
        for off in (-0.08 * s + swing, 0.08 * s - swing):
            self._fill(
                self._cam(self._billboard(xy, 0.13 * s, 0.0, 0.47 * H, off)), col(p.trousers)
            )
        self._fill(self._cam(self._billboard(xy, 0.42 * s, 0.46 * H, 0.81 * H)), col(p.shirt))
        for off in (-0.25 * s, 0.25 * s):
            self._fill(
                self._cam(self._billboard(xy, 0.09 * s, 0.45 * H, 0.80 * H, off)), col(p.shirt)
            )
        self._fill(
            self._cam(self._billboard(xy, 0.08 * s, 0.80 * H, 0.86 * H)), col((110, 140, 190))
        )
        b = math.radians(p.facing_at(self._t))
        to_cam = self._C[:2] - xy
        facing_cam = float(np.array([math.sin(b), math.cos(b)]) @ to_cam) / max(
            1e-6, float(np.linalg.norm(to_cam))
        ) > math.cos(math.radians(70))
        head_w, head_h = 0.19 * s, 0.25 * s
        corners = self._billboard(xy, head_w, H - head_h, H)[[3, 2, 1, 0]]
        if facing_cam:
            ident = self._label_id()
            n = self._sprite(
                self.bank.face(p.face, p.tone, p.hair),
                corners,
                self._gain(dist, xy, False) * 1.05,
                ident,
            )
            if n:
                # the face box: the skin oval inside the head sprite
                uv = self._px(self._cam(corners))
                self._labels.append((ident, "face", p.id, uv, dist, n))
        else:
            self._sprite(
                self.bank.head_back(p.hair), corners, self._gain(dist, xy, False), OCCLUDER
            )

    # ------------------------------------------------------------------ labels
    def _finish_labels(self) -> list[Label]:
        W, H = self.intr.width, self.intr.height
        out = []
        for ident, cls, obj, uv, dist, drawn in self._labels:
            x0, y0 = max(0, math.floor(uv[:, 0].min())), max(0, math.floor(uv[:, 1].min()))
            x1, y1 = min(W, math.ceil(uv[:, 0].max()) + 1), min(H, math.ceil(uv[:, 1].max()) + 1)
            if x1 <= x0 or y1 <= y0:
                continue
            ys, xs = np.nonzero(self._ids[y0:y1, x0:x1] == ident)
            if not len(xs):
                continue
            box = (
                float(x0 + xs.min()),
                float(y0 + ys.min()),
                float(x0 + xs.max() + 1),
                float(y0 + ys.max() + 1),
            )
            full = (
                float(max(0.0, uv[:, 0].min() + 0.5)),
                float(max(0.0, uv[:, 1].min() + 0.5)),
                float(min(W, uv[:, 0].max() + 0.5)),
                float(min(H, uv[:, 1].max() + 0.5)),
            )
            out.append(Label(cls, obj, box, full, min(1.0, len(xs) / max(1, drawn)), float(dist)))
        return out

    # ------------------------------------------------------------------ faults
    def _apply_faults(self, img: Image, faults: CameraFaults) -> Image:
        if faults.blur_sigma > 0:
            img = np.asarray(cv2.GaussianBlur(img, (0, 0), faults.blur_sigma), dtype=np.uint8)
        if faults.obstruction > 0:
            if faults.obstruction not in self._smudge:
                self._smudge[faults.obstruction] = smudge_mask(
                    self.intr.width,
                    self.intr.height,
                    faults.obstruction,
                    np.random.default_rng(self.seed + 5),
                )
            img = (img * self._smudge[faults.obstruction]).astype(np.uint8)
        if faults.exposure != 1.0:
            img = np.asarray(cv2.convertScaleAbs(img, alpha=faults.exposure), dtype=np.uint8)
        return img


def _style(cls: str, feature_id: str, bank: Mapping[str, object]) -> str:
    """Which design a sign wears: the drawn one or the pictogram, by a hash of its id."""
    alt = f"{cls}:pictogram"
    return alt if alt in bank and zlib.crc32(feature_id.encode()) % 2 else cls
