"""The debug image: a camera frame with what the stack currently says about it drawn on top (pure drawing).

``draw_overlay(rgb, state)`` returns a new RGB uint8 image and never writes to ``rgb`` (which may view a
message buffer). Top band: the current caption. Bottom band: the change score as a (logarithmic) bar, the top
action of the newest world-state transition, the camera's input/output rates and its latencies. Frames
narrower than ``MIN_WIDTH`` are scaled up first so the text stays legible; text is scaled with the image width.

The perception node's ``~/debug_image/<camera>`` topics publish it (nodes/debug_image.py); anything else with
a frame and an OverlayState (a report, a notebook) can draw the same picture without ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MIN_WIDTH = 480  # narrower frames are scaled up: below this the smallest legible text covers too much
# The change bar is logarithmic from CHANGE_BAR_MIN (empty) to CHANGE_BAR_MAX (full), with a tick per decade:
# a camera's state distances span several decades, and their scale differs from model to model.
CHANGE_BAR_MIN, CHANGE_BAR_MAX = 1e-4, 1.0
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BAND_ALPHA = 0.6  # how much the dark bands behind the text hide the frame
_CAPTION_LINES = 2


@dataclass(frozen=True)
class OverlayState:
    """What is drawn on one camera's frame; None fields are drawn as "-" (not known yet).

    ``caption_age_s``: the frame's stamp minus the caption's (how old the caption is for this frame).
    ``change_score``: the newest transition's state distance (1 - cos of the visual states), in [0, 2].
    ``latency_s``: median input stamp -> published embedding over the camera's recent outputs (on the ROS
    clock: with use_sim_time, in simulated time); ``processing_s``: median newest frame received -> published
    (wall clock).
    """

    camera: str
    caption: str | None = None
    caption_score: float | None = None
    caption_age_s: float | None = None
    change_score: float | None = None
    top_action: str | None = None
    top_action_score: float | None = None
    input_hz: float | None = None
    output_hz: float | None = None
    latency_s: float | None = None
    processing_s: float | None = None


def draw_overlay(rgb: np.ndarray, state: OverlayState) -> np.ndarray:
    """A new RGB uint8 (H', W', 3) image: ``rgb`` (scaled up to MIN_WIDTH if narrower) with ``state`` drawn on
    it. Raises ValueError unless ``rgb`` is an RGB uint8 (H, W, 3) array."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    if width < MIN_WIDTH:
        size = (MIN_WIDTH, max(1, round(height * MIN_WIDTH / width)))
        image = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    else:
        image = rgb.copy()
    layout = _Layout(image.shape[1])
    caption_lines = _wrap(_caption_text(state), layout, image.shape[1] - 2 * layout.margin)[:_CAPTION_LINES]
    status_lines = [_transition_text(state), _rate_text(state), _latency_text(state)]
    top = layout.margin + len(caption_lines) * layout.line
    bottom = layout.margin + (1 + len(status_lines)) * layout.line
    _darken(image, 0, top + layout.margin)
    _darken(image, image.shape[0] - bottom - layout.margin, image.shape[0])
    y = layout.margin + layout.ascent
    for text in caption_lines:
        _text(image, text, layout, layout.margin, y, (255, 255, 255))
        y += layout.line
    y = image.shape[0] - bottom + layout.ascent
    _change_bar(image, state.change_score, layout, y)
    for text in status_lines:
        y += layout.line
        _text(image, text, layout, layout.margin, y, (230, 230, 230))
    return image


class _Layout:
    """Font scale, stroke and line spacing for an image ``width`` pixels wide."""

    def __init__(self, width: int):
        self.scale = 0.5 * width / MIN_WIDTH
        self.thickness = max(1, round(width / MIN_WIDTH))
        (_, self.ascent), baseline = cv2.getTextSize("Ag", _FONT, self.scale, self.thickness)
        self.line = round((self.ascent + baseline) * 1.5)
        self.margin = max(4, round(width / 80))

    def width_of(self, text: str) -> int:
        return cv2.getTextSize(text, _FONT, self.scale, self.thickness)[0][0]


def _caption_text(state: OverlayState) -> str:
    if state.caption is None:
        return f"{state.camera}: no caption yet"
    details = [f"{state.caption_score:.2f}" if state.caption_score is not None else None]
    if state.caption_age_s is not None:
        details.append(f"{state.caption_age_s:.1f} s ago")
    detail = ", ".join(d for d in details if d)
    return f"{state.camera}: {state.caption}" + (f" ({detail})" if detail else "")


def _transition_text(state: OverlayState) -> str:
    if state.top_action is None:
        return "top transition: -"
    score = "" if state.top_action_score is None else f" ({state.top_action_score:.2f})"
    return f"top transition: {state.top_action}{score}"


def _rate_text(state: OverlayState) -> str:
    return f"frames in {_hz(state.input_hz)}  embeddings out {_hz(state.output_hz)}"


def _latency_text(state: OverlayState) -> str:
    return f"latency p50 {_ms(state.latency_s)} from stamp, {_ms(state.processing_s)} from arrival"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.0f} ms"


def _hz(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f} Hz"


def _ascii(text: str) -> str:
    """Hershey fonts draw ASCII only: anything else becomes '?' (visibly, rather than dropped)."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)


def _wrap(text: str, layout: _Layout, max_width: int) -> list[str]:
    """Words of ``text`` in lines at most ``max_width`` pixels wide (a longer word is cut with '...'); the last
    line allowed (_CAPTION_LINES) ends in '...' when text is left over."""
    lines: list[str] = []
    for word in _ascii(text).split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and layout.width_of(candidate) <= max_width:
            lines[-1] = candidate
        else:
            lines.append(_fit(word, layout, max_width))
    if len(lines) > _CAPTION_LINES:
        lines = lines[: _CAPTION_LINES - 1] + [_fit(lines[_CAPTION_LINES - 1], layout, max_width, ellipsis=True)]
    return lines or [""]


def _fit(text: str, layout: _Layout, max_width: int, ellipsis: bool = False) -> str:
    """``text``, cut to end in '...' if it is wider than ``max_width`` (always ending in '...' with ``ellipsis``)."""
    if not ellipsis and layout.width_of(text) <= max_width:
        return text
    while len(text) > 1 and layout.width_of(text + "...") > max_width:
        text = text[:-1]
    return text.rstrip() + "..."


def _darken(image: np.ndarray, y0: int, y1: int) -> None:
    """Dim rows y0..y1 so white text reads on any frame (in place, saturating uint8 arithmetic)."""
    y0, y1 = max(0, y0), min(image.shape[0], y1)
    if y1 > y0:
        band = image[y0:y1]
        cv2.convertScaleAbs(band, dst=band, alpha=1.0 - _BAND_ALPHA)


def _change_bar(image: np.ndarray, score: float | None, layout: _Layout, baseline_y: int) -> None:
    """'change 0.123' and its logarithmic bar (see CHANGE_BAR_MIN), on the line ending at baseline_y."""
    label = "change " + ("-" if score is None or not math.isfinite(score) else f"{score:.3f}")
    _text(image, label, layout, layout.margin, baseline_y, (255, 255, 255))
    x0 = layout.margin + layout.width_of("change 0.000") + layout.margin
    x1 = image.shape[1] - layout.margin
    y0, y1 = baseline_y - layout.ascent, baseline_y
    if x1 <= x0:
        return
    if score is not None and math.isfinite(score) and score > CHANGE_BAR_MIN:
        fill = x0 + round((x1 - x0) * _bar_fraction(score))
        cv2.rectangle(image, (x0, y0), (fill, y1), (255, 170, 0), cv2.FILLED)
    cv2.rectangle(image, (x0, y0), (x1, y1), (200, 200, 200), 1)
    decades = round(math.log10(CHANGE_BAR_MAX / CHANGE_BAR_MIN))
    for k in range(1, decades):
        x = x0 + round((x1 - x0) * k / decades)
        cv2.line(image, (x, y1 - max(2, layout.ascent // 3)), (x, y1), (200, 200, 200), 1)


def _bar_fraction(score: float) -> float:
    """Where ``score`` sits between CHANGE_BAR_MIN and CHANGE_BAR_MAX on a log scale, clipped to [0, 1]."""
    fraction = math.log10(score / CHANGE_BAR_MIN) / math.log10(CHANGE_BAR_MAX / CHANGE_BAR_MIN)
    return min(max(fraction, 0.0), 1.0)


def _text(image: np.ndarray, text: str, layout: _Layout, x: int, y: int, colour: tuple[int, int, int]) -> None:
    cv2.putText(image, _ascii(text), (x, y), _FONT, layout.scale, colour, layout.thickness, cv2.LINE_AA)
