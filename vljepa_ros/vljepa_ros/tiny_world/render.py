"""Draw tiny-world states as RGB frames with OpenCV.

A scene is first laid out as object poses (pure geometry), so two states can be blended into the frames of
an action in progress (`blend_poses`), then drawn. The world sits in the centre square of the frame, the part
the model's centre crop sees; the sides only carry wall and floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from vljepa_ros.tiny_world.vocabulary import COLOURS
from vljepa_ros.tiny_world.world import Scene

FLOOR_Y = 0.66  # floor line, in frame heights from the top
CONE_HEIGHT = 1.15  # cone height / width
CUBE_DEPTH = 0.2  # drawn top-face depth / width
DARK_TINT = np.array([0.42, 0.45, 0.56], np.float32)  # what "lights off" multiplies the frame by
FLOORS = ((128, 128, 128), (124, 94, 66), (92, 104, 100), (152, 142, 122))
WALLS = ((200, 200, 194), (172, 188, 204), (212, 200, 174), (158, 164, 158))
LAMP_ON, LAMP_OFF = (255, 244, 170), (70, 70, 76)
NOISE_LEVEL = 4  # +-grey levels of per-pixel sensor noise


@dataclass(frozen=True)
class ObjectPose:
    """Where and how one object is drawn: centre x, bottom y, width (frame heights), colour, opacity."""

    oid: int
    shape: str
    x: float
    bottom: float
    width: float
    rgb: tuple[float, float, float]
    opacity: float = 1.0

    @property
    def height(self) -> float:
        """Drawn height of the object's body, in frame heights."""
        return self.width * (CONE_HEIGHT if self.shape == "cone" else 1.0)

    @property
    def top(self) -> float:
        """y of the surface another object rests on."""
        return self.bottom - self.height - (CUBE_DEPTH * self.width / 2 if self.shape == "cube" else 0.0)


@dataclass(frozen=True)
class FramePose:
    """Everything a frame shows: object poses (drawing order), light level 1 (on) .. 0 (off), styles."""

    objects: tuple[ObjectPose, ...]
    light: float
    floor: int
    wall: int


def layout(scene: Scene) -> FramePose:
    """Poses of a scene's objects; stacked objects rest on their base's top face."""
    poses: dict[int, ObjectPose] = {}
    pending = list(scene.objects)
    while pending:
        obj = pending.pop(0)
        if obj.on is not None and obj.on not in poses:
            pending.append(obj)
            continue
        bottom = poses[obj.on].top if obj.on is not None else FLOOR_Y - obj.lift
        x = poses[obj.on].x if obj.on is not None else obj.x
        poses[obj.oid] = ObjectPose(obj.oid, obj.shape, x, bottom, obj.width, tuple(map(float, COLOURS[obj.colour])))
    return FramePose(tuple(poses.values()), 1.0 if scene.lights_on else 0.0, scene.floor, scene.wall)


def blend_poses(a: FramePose, b: FramePose, alpha: float) -> FramePose:
    """The frame `alpha` (0..1) of the way from state a to state b.

    Objects only in one state fade; an object whose support changes (put on a cube) moves on an arc.
    """
    alpha = float(np.clip(alpha, 0.0, 1.0))
    before = {p.oid: p for p in a.objects}
    after = {p.oid: p for p in b.objects}
    objects = []
    for oid in list(before) + [o for o in after if o not in before]:
        pa, pb = before.get(oid), after.get(oid)
        if pa is None:
            objects.append(_with(pb, opacity=alpha))
        elif pb is None:
            objects.append(_with(pa, opacity=1.0 - alpha))
        else:
            lifted = pb.bottom < pa.bottom - 0.05 and abs(pb.x - pa.x) > 0.01
            arc = 0.12 * np.sin(np.pi * alpha) if lifted else 0.0
            objects.append(
                ObjectPose(
                    oid,
                    pa.shape,
                    _lerp(pa.x, pb.x, alpha),
                    _lerp(pa.bottom, pb.bottom, alpha) - arc,
                    _lerp(pa.width, pb.width, alpha),
                    tuple(_lerp(ca, cb, alpha) for ca, cb in zip(pa.rgb, pb.rgb)),
                )
            )
    light = _lerp(a.light, b.light, alpha)
    return FramePose(tuple(objects), light, a.floor, a.wall)


def _lerp(a: float, b: float, alpha: float) -> float:
    return a + (b - a) * alpha


def _with(pose: ObjectPose, opacity: float) -> ObjectPose:
    return ObjectPose(pose.oid, pose.shape, pose.x, pose.bottom, pose.width, pose.rgb, opacity)


def render(pose: FramePose, width: int = 320, height: int = 240, rng: np.random.Generator | None = None) -> np.ndarray:
    """RGB uint8 (height, width, 3) frame; `rng` adds sensor noise (None: a clean frame)."""
    frame = render_clean(pose, width, height)
    return frame.copy() if rng is None else add_noise(frame, rng)


@lru_cache(maxsize=32)
def render_clean(pose: FramePose, width: int = 320, height: int = 240) -> np.ndarray:
    """The noise-free frame of a pose, read-only and cached: the frames of a still state share one render."""
    if width < 32 or height < 32:
        raise ValueError(f"frame size must be at least 32x32, got {width}x{height}")
    frame = _background(pose, width, height)
    # Supports first, then what rests on them (higher bottoms are drawn later).
    objects = sorted(pose.objects, key=lambda p: -p.bottom)
    for obj in objects:
        _draw_shadow(frame, obj, width, height)
    for obj in objects:
        if obj.opacity >= 0.999:
            _draw_object(frame, obj, width, height)
        elif obj.opacity > 0.001:
            layer = frame.copy()
            _draw_object(layer, obj, width, height)
            cv2.addWeighted(layer, obj.opacity, frame, 1.0 - obj.opacity, 0.0, dst=frame)
    if pose.light < 0.999:
        shade = 1.0 + (DARK_TINT - 1.0) * (1.0 - pose.light)
        table = np.clip(np.arange(256, dtype=np.float32)[:, None] * shade[None, :] + 0.5, 0, 255)
        frame = cv2.LUT(frame, table.astype(np.uint8)[:, None, :])
    frame.flags.writeable = False
    return frame


def add_noise(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Frame plus uniform sensor noise of +-NOISE_LEVEL grey levels (a new array)."""
    # Random bytes mapped onto 0..2*NOISE_LEVEL by a table, then saturating uint8 add/subtract: an order of
    # magnitude faster than rng.integers and a float round trip, which dominated clip generation.
    raw = np.frombuffer(rng.bytes(frame.size), np.uint8).reshape(frame.shape)
    noise = cv2.LUT(raw, _NOISE_TABLE)
    return cv2.subtract(cv2.add(frame, noise), _offset(frame.shape))


_NOISE_TABLE = ((np.arange(256) * (2 * NOISE_LEVEL + 1)) >> 8).astype(np.uint8)


@lru_cache(maxsize=16)
def _offset(shape: tuple[int, ...]) -> np.ndarray:
    offset = np.full(shape, NOISE_LEVEL, np.uint8)
    offset.flags.writeable = False
    return offset


def _px(x: float, width: int, height: int) -> float:
    return width / 2 + x * height


@lru_cache(maxsize=64)
def _room(floor: int, wall: int, width: int, height: int) -> np.ndarray:
    frame = np.empty((height, width, 3), np.uint8)
    horizon = int(round(FLOOR_Y * height))
    frame[:horizon] = WALLS[wall % len(WALLS)]
    floor_rgb = np.array(FLOORS[floor % len(FLOORS)], np.float32)
    # Floor darkens towards the viewer, a cue for the floor plane.
    ramp = np.linspace(1.08, 0.85, height - horizon, dtype=np.float32)[:, None, None]
    frame[horizon:] = np.clip(floor_rgb * ramp, 0, 255).astype(np.uint8)
    thickness = max(1, height // 120)
    cv2.line(frame, (0, horizon), (width, horizon), (90, 90, 90), thickness, cv2.LINE_AA)
    frame.flags.writeable = False
    return frame


def _background(pose: FramePose, width: int, height: int) -> np.ndarray:
    frame = _room(pose.floor, pose.wall, width, height).copy()
    lamp_colour = tuple(int(round(_lerp(off, on, pose.light))) for on, off in zip(LAMP_ON, LAMP_OFF))
    centre = (int(round(_px(0.25, width, height))), int(round(0.14 * height)))
    cv2.circle(frame, centre, max(2, int(0.05 * height)), lamp_colour, -1, cv2.LINE_AA)
    return frame


def _draw_shadow(frame: np.ndarray, obj: ObjectPose, width: int, height: int) -> None:
    if obj.bottom < FLOOR_Y - 0.35:
        return
    cx, cy = int(round(_px(obj.x, width, height))), int(round((FLOOR_Y + 0.012) * height))
    ax, ay = max(1, int(0.6 * obj.width * height)), max(1, int(0.12 * obj.width * height))
    # Blend only the shadow's bounding box: a full-frame blend per object would dominate the render time.
    x0, x1 = max(0, cx - ax - 2), min(width, cx + ax + 3)
    y0, y1 = max(0, cy - ay - 2), min(height, cy + ay + 3)
    if x0 >= x1 or y0 >= y1:
        return
    roi = frame[y0:y1, x0:x1]
    layer = roi.copy()
    cv2.ellipse(layer, (cx - x0, cy - y0), (ax, ay), 0, 0, 360, (40, 40, 40), -1, cv2.LINE_AA)
    frame[y0:y1, x0:x1] = cv2.addWeighted(layer, 0.35 * obj.opacity, roi, 1 - 0.35 * obj.opacity, 0.0)


def _draw_object(frame: np.ndarray, obj: ObjectPose, width: int, height: int) -> None:
    cx, bottom = _px(obj.x, width, height), obj.bottom * height
    w, h = obj.width * height, obj.height * height
    base = np.array(obj.rgb)
    light, dark = tuple(np.minimum(base * 1.25 + 25, 255)), tuple(base * 0.6)
    colour = tuple(base)
    scale = 16  # cv2 sub-pixel coordinates: 4 fractional bits
    if obj.shape == "cube":
        depth = CUBE_DEPTH * w
        front = [(cx - w / 2, bottom), (cx + w / 2, bottom), (cx + w / 2, bottom - h), (cx - w / 2, bottom - h)]
        top = [
            (cx - w / 2, bottom - h),
            (cx + w / 2, bottom - h),
            (cx + w / 2 + depth, bottom - h - depth),
            (cx - w / 2 + depth, bottom - h - depth),
        ]
        side = [
            (cx + w / 2, bottom),
            (cx + w / 2 + depth, bottom - depth),
            (cx + w / 2 + depth, bottom - h - depth),
            (cx + w / 2, bottom - h),
        ]
        for polygon, fill in ((side, dark), (top, light), (front, colour)):
            points = np.round(np.array(polygon) * scale).astype(np.int32)
            cv2.fillPoly(frame, [points], fill, cv2.LINE_AA, shift=4)
    elif obj.shape == "ball":
        centre = (int(round(cx * scale)), int(round((bottom - w / 2) * scale)))
        cv2.circle(frame, centre, int(round(w / 2 * scale)), colour, -1, cv2.LINE_AA, shift=4)
        glint = (int(round((cx - w / 6) * scale)), int(round((bottom - w * 0.66) * scale)))
        cv2.circle(frame, glint, int(round(w / 7 * scale)), light, -1, cv2.LINE_AA, shift=4)
    elif obj.shape == "cone":
        left = [(cx - w / 2, bottom), (cx, bottom), (cx, bottom - h)]
        right = [(cx, bottom), (cx + w / 2, bottom), (cx, bottom - h)]
        for polygon, fill in ((left, colour), (right, dark)):
            points = np.round(np.array(polygon) * scale).astype(np.int32)
            cv2.fillPoly(frame, [points], fill, cv2.LINE_AA, shift=4)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")
