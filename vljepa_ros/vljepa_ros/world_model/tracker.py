"""What the world model node knows between messages: the observed steps, the actions executed between them,
and the surprise of each new step (no ROS here, so replay and tests run the same code).

A step is one camera image with the end-effector state at that time. Executed actions that arrive between two
steps are summed (they are deltas) into the action that led from one to the next. A step that follows a step
without any executed action in between cannot be predicted: it is counted (`no_action`) and starts a fresh
context. The context keeps the last `context_steps` steps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from vljepa_ros.world_model.model import WorldModel
from vljepa_ros.world_model.planning import Context, surprise
from vljepa_ros.world_model.poses import STATE_DIM

# Why a step got no surprise value.
NO_PREVIOUS_STEP = "no_previous_step"
NO_ACTION = "no_action"


@dataclass(frozen=True)
class StepResult:
    """The surprise of one observed step (None with the reason when it could not be predicted)."""

    surprise: float | None
    reason: str | None
    action: np.ndarray | None
    context_steps: int


def check_vector(name: str, values, size: int = STATE_DIM) -> np.ndarray:
    """A finite float32 vector of `size` values, or ValueError naming `name`."""
    vector = np.asarray(values, dtype=np.float32).reshape(-1)
    if vector.shape != (size,):
        raise ValueError(f"{name}: expected {size} values, got {vector.size}")
    if not np.all(np.isfinite(vector)):
        raise ValueError(f"{name}: has non-finite values")
    return vector


class StepTracker:
    """Bounded context of observed steps; the surprise of each new one."""

    def __init__(self, model: WorldModel, context_steps: int = 1):
        if context_steps < 1 or context_steps > model.manifest.max_steps:
            raise ValueError(f"context_steps must be in [1, {model.manifest.max_steps}], got {context_steps}")
        self.model = model
        self.context_steps = context_steps
        self.tokens: list[np.ndarray] = []
        self.states: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.pending: np.ndarray | None = None
        self.counts: Counter[str] = Counter()

    def on_action(self, action) -> None:
        """An executed action (7 deltas); several before the next step add up."""
        action = check_vector("action", action)
        self.pending = action if self.pending is None else self.pending + action

    def on_step(self, image: np.ndarray, state, predict: bool = True) -> StepResult:
        """A new step: (3, S, S) normalised image and the 7-float state; returns its surprise.

        With `predict` False (nobody listens) the step and its action join the context without a prediction.
        """
        state = check_vector("state", state)
        tokens = self.model.encode(image[None])[0]
        action, self.pending = self.pending, None
        if not self.tokens:
            result = StepResult(None, NO_PREVIOUS_STEP, None, 0)
        elif action is None:
            self.tokens, self.states, self.actions = [], [], []
            result = StepResult(None, NO_ACTION, None, 0)
        else:
            value = surprise(self.model, self.context(), action, tokens) if predict else None
            result = StepResult(value, None, action, len(self.tokens))
            self.actions.append(action)
        if result.reason is not None:
            self.counts[result.reason] += 1
        self.tokens.append(tokens)
        self.states.append(state)
        while len(self.tokens) > self.context_steps:
            self.tokens.pop(0), self.states.pop(0), self.actions.pop(0)
        return result

    def context(self) -> Context:
        """The observed steps as a planning context; ValueError before the first step."""
        if not self.tokens:
            raise ValueError("no step observed yet (an image and an end-effector state are needed)")
        actions = np.stack(self.actions) if self.actions else np.zeros((0, STATE_DIM), np.float32)
        return Context(np.stack(self.tokens), np.stack(self.states), actions)
