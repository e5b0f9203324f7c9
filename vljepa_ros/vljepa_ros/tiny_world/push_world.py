"""A tiny action-conditioned world with exact ground truth: an agent disc moved by 2-D deltas pushes boxes.

The arena is the unit square seen from above. An action (dx, dy) moves the agent (clipped to +-`MAX_STEP` per
axis) in `SUBSTEPS` small moves; a box the agent overlaps is pushed out along the line from the agent's centre
(boxes are treated as discs for contact, drawn as squares). Everything stays inside the arena. A teleport moves a
box somewhere no action explains: the surprise benchmark's unexplained event. Frames are 64x64 RGB, the bundled
encoder's crop.

In the V-JEPA 2-AC format an action is (dx, dy, 0, 0, 0, 0, 0) and the end-effector state (x, y, 0, 0, 0, 0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_STEP = 0.08  # arena units per step and axis
AGENT_RADIUS = 0.07
BOX_HALF = 0.075
CONTACT = AGENT_RADIUS + BOX_HALF
SUBSTEPS = 4
FRAME = 64
BOX_COLOURS = ((220, 40, 40), (40, 90, 230))
FLOOR = (150, 150, 150)
AGENT_COLOUR = (250, 250, 250)
MARGIN = BOX_HALF  # box centres stay this far inside the arena


@dataclass(frozen=True)
class PushState:
    """Agent position (2,) and box centres (n, 2), in arena units [0, 1]."""

    agent: np.ndarray
    boxes: np.ndarray

    def vector(self) -> np.ndarray:
        return np.concatenate([self.agent, self.boxes.reshape(-1)])


def random_state(rng: np.random.Generator, boxes: int = 2) -> PushState:
    """Agent and boxes placed at random without overlaps."""
    while True:
        agent = rng.uniform(AGENT_RADIUS, 1 - AGENT_RADIUS, 2)
        centres = rng.uniform(MARGIN + 0.05, 1 - MARGIN - 0.05, (boxes, 2))
        points = np.vstack([agent[None], centres])
        gaps = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(len(points)) * 9
        if gaps.min() > CONTACT + 0.03:
            return PushState(agent, centres)


def step(state: PushState, action: np.ndarray) -> PushState:
    """The state after one (dx, dy) action (first two entries of `action` used)."""
    delta = np.clip(np.asarray(action, np.float64)[:2], -MAX_STEP, MAX_STEP)
    agent, boxes = state.agent.astype(np.float64).copy(), state.boxes.astype(np.float64).copy()
    for _ in range(SUBSTEPS):
        agent = np.clip(agent + delta / SUBSTEPS, AGENT_RADIUS, 1 - AGENT_RADIUS)
        for i in range(len(boxes)):
            offset = boxes[i] - agent
            distance = np.linalg.norm(offset)
            if distance < CONTACT:
                direction = offset / distance if distance > 1e-9 else delta / (np.linalg.norm(delta) + 1e-9)
                boxes[i] = np.clip(agent + direction * CONTACT, MARGIN, 1 - MARGIN)
    return PushState(agent, boxes)


def teleport(state: PushState, rng: np.random.Generator, box: int | None = None) -> PushState:
    """One box moved to a random free place (at least 0.25 from where it was)."""
    index = int(rng.integers(len(state.boxes))) if box is None else box
    boxes = state.boxes.copy()
    while True:
        boxes[index] = rng.uniform(MARGIN, 1 - MARGIN, 2)
        if (
            np.linalg.norm(boxes[index] - state.boxes[index]) > 0.25
            and np.linalg.norm(boxes[index] - state.agent) > CONTACT
        ):
            return PushState(state.agent.copy(), boxes)


def render(state: PushState, size: int = FRAME) -> np.ndarray:
    """RGB uint8 (size, size, 3) top-down frame: grey floor, coloured boxes, white agent disc."""
    scale = 4  # drawn at 4x and downsampled: smooth edges, sub-pixel positions visible
    big = size * scale
    frame = np.full((big, big, 3), FLOOR, np.uint8)
    for centre, colour in zip(state.boxes, BOX_COLOURS, strict=False):
        lo = np.round((centre - BOX_HALF) * big).astype(int)
        hi = np.round((centre + BOX_HALF) * big).astype(int)
        cv2.rectangle(frame, (int(lo[0]), int(lo[1])), (int(hi[0]), int(hi[1])), colour, thickness=-1)
    centre = tuple(int(v) for v in np.round(state.agent * big))
    cv2.circle(frame, centre, int(AGENT_RADIUS * big), AGENT_COLOUR, thickness=-1)
    cv2.circle(frame, centre, int(AGENT_RADIUS * big), (20, 20, 20), thickness=scale)
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def ac_action(delta: np.ndarray) -> np.ndarray:
    """(dx, dy) -> the 7-float V-JEPA 2-AC action."""
    out = np.zeros(7, np.float32)
    out[:2] = delta[:2]
    return out


def ac_state(state: PushState) -> np.ndarray:
    """The agent as the 7-float end-effector state."""
    out = np.zeros(7, np.float32)
    out[:2] = state.agent
    return out


def max_body_error(state: PushState, goal: PushState) -> float:
    """The largest distance of a body (agent or box) from its goal position."""
    return float(np.linalg.norm(state.vector().reshape(-1, 2) - goal.vector().reshape(-1, 2), axis=1).max())


def reached(state: PushState, goal: PushState, tolerance: float) -> bool:
    """Every body (agent and boxes) within `tolerance` of its goal position."""
    return max_body_error(state, goal) <= tolerance


def random_push_actions(state: PushState, steps: int, rng: np.random.Generator) -> np.ndarray:
    """(steps, 2) deltas: half the time heading for a box (so pushes happen), else uniform at random."""
    if rng.random() < 0.5:
        target = state.boxes[int(rng.integers(len(state.boxes)))] + rng.normal(0, 0.05, 2)
        heading = target - state.agent
        per_step = heading / max(1, steps - 1)
        noise = rng.normal(0, 0.015, (steps, 2))
        return np.clip(per_step[None] + noise, -MAX_STEP, MAX_STEP)
    return rng.uniform(-MAX_STEP, MAX_STEP, (steps, 2))
