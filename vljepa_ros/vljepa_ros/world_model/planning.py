"""Goal planning and surprise on a world model: the CEM cost over batched rollouts, and the prediction error.

The context is what was observed: tokens (T, H*W, D) and states (T, 7) of T steps and the T - 1 actions
executed between them. CEM's samples form the batch of each predictor call (at most `max_batch` at once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vljepa_ros.world_model.cem import CEMConfig, CEMIteration, CEMPlan, plan_cem
from vljepa_ros.world_model.model import WorldModel, token_distance


@dataclass(frozen=True)
class Context:
    """Observed steps: tokens (T, H*W, D), states (T, 7), and the T - 1 actions executed between them."""

    tokens: np.ndarray
    states: np.ndarray
    actions: np.ndarray

    def __post_init__(self):
        t = self.tokens.shape[0]
        if self.tokens.ndim != 3 or t < 1:
            raise ValueError(f"context tokens: expected (T >= 1, H*W, D), got {self.tokens.shape}")
        if self.states.shape[0] != t or self.actions.shape[0] != t - 1:
            raise ValueError(
                f"context: {t} steps need {t} states and {t - 1} actions, got {self.states.shape[0]} and "
                f"{self.actions.shape[0]}"
            )


def rollout_cost(model: WorldModel, context: Context, goal: np.ndarray, max_batch: int) -> Callable:
    """Cost of action sequences (N, horizon, 7): L1 of the last predicted step's tokens to `goal` (H*W, D)."""

    def cost(sequences: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, sequences.shape[0], max_batch):
            chunk = sequences[start : start + max_batch]
            n = chunk.shape[0]
            tokens = np.broadcast_to(context.tokens, (n, *context.tokens.shape))
            states = np.broadcast_to(context.states, (n, *context.states.shape))
            past = np.broadcast_to(context.actions, (n, *context.actions.shape))
            predicted = model.rollout(tokens, states, np.concatenate([past, chunk], axis=1))
            out.append(token_distance(predicted[:, -1], goal[None]))
        return np.concatenate(out)

    return cost


def plan_to_goal(
    model: WorldModel,
    context: Context,
    goal: np.ndarray,
    config: CEMConfig,
    rng: np.random.Generator,
    on_iteration: Callable[[CEMIteration], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> CEMPlan:
    """CEM plan from the context towards the goal image's tokens (H*W, D)."""
    if context.tokens.shape[0] + config.horizon > model.manifest.max_steps + 1:
        raise ValueError(
            f"context of {context.tokens.shape[0]} steps + horizon {config.horizon} exceeds the model's "
            f"max_steps {model.manifest.max_steps}"
        )
    cost = rollout_cost(model, context, goal, config.max_batch)
    return plan_cem(cost, config, rng, on_iteration, cancelled)


def surprise(model: WorldModel, context: Context, action: np.ndarray, observed: np.ndarray) -> float:
    """L1 distance between the tokens predicted after `action` from the context and the `observed` next tokens."""
    actions = np.concatenate([context.actions, np.asarray(action, np.float32)[None]], axis=0)
    predicted = model.predict_next(context.tokens[None], actions[None], context.states[None])[0]
    return float(token_distance(predicted, observed))
