"""Cross-entropy-method planning over action sequences (numpy), as V-JEPA 2-AC's planning notebooks do it.

Each iteration samples `samples` action sequences of `horizon` steps from a diagonal Gaussian (translation
deltas clipped to +-`max_translation`, rotation deltas 0, gripper delta clipped to +-`max_gripper` or 0), rolls
all of them out as one batch, scores each by the L1 distance of its last predicted step to the goal's tokens,
and moves the mean and std towards the `topk` best with momentum. The plan is the final mean; a robot executes
its first action and plans again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vljepa_ros.world_model.poses import STATE_DIM

# Action layout: 3 translation deltas, 3 rotation deltas, 1 gripper delta.
GRIPPER = 6


@dataclass(frozen=True)
class CEMConfig:
    """CEM settings; defaults are the V-JEPA 2-AC notebooks' (world_model_wrapper)."""

    samples: int = 400
    topk: int = 10
    iterations: int = 10
    horizon: int = 2
    max_translation: float = 0.05  # metres per step (notebooks: maxnorm)
    translation_dims: int = 3  # the first this many action dims are sampled (2 for a planar agent)
    sample_gripper: bool = True
    max_gripper: float = 0.75
    momentum_mean: float = 0.15
    momentum_std: float = 0.15
    max_batch: int = 400  # rollouts per predictor call; bounds the memory of one call

    def __post_init__(self):
        for name in ("samples", "topk", "iterations", "horizon", "max_batch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.topk > self.samples:
            raise ValueError(f"topk {self.topk} must be <= samples {self.samples}")
        if not 1 <= self.translation_dims <= 3:
            raise ValueError(f"translation_dims must be 1, 2 or 3, got {self.translation_dims}")
        for name in ("max_translation", "max_gripper"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("momentum_mean", "momentum_std"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class CEMIteration:
    """What one iteration found: its index, the best and the elite mean cost, the new mean's first action."""

    iteration: int
    best_cost: float
    elite_cost: float
    first_action: np.ndarray


@dataclass(frozen=True)
class CEMPlan:
    """The planned sequence (horizon, 7), its first action, and each finished iteration."""

    actions: np.ndarray
    iterations: tuple[CEMIteration, ...]
    cancelled: bool

    @property
    def first_action(self) -> np.ndarray:
        return self.actions[0]


# Scores a batch of action sequences (N, horizon, 7) -> costs (N,).
CostFunction = Callable[[np.ndarray], np.ndarray]


def sampled_dims(config: CEMConfig) -> list[int]:
    """Indices of the action dims CEM samples; the others stay 0."""
    return list(range(config.translation_dims)) + ([GRIPPER] if config.sample_gripper else [])


def sample_actions(mean: np.ndarray, std: np.ndarray, config: CEMConfig, rng: np.random.Generator) -> np.ndarray:
    """(samples, horizon, 7) sequences: Gaussian in the sampled dims, clipped to the limits, 0 elsewhere."""
    actions = np.zeros((config.samples, config.horizon, STATE_DIM), np.float32)
    noise = rng.standard_normal((config.samples, config.horizon, STATE_DIM)).astype(np.float32)
    drawn = mean[None] + std[None] * noise
    t = config.translation_dims
    actions[..., :t] = np.clip(drawn[..., :t], -config.max_translation, config.max_translation)
    if config.sample_gripper:
        actions[..., GRIPPER] = np.clip(drawn[..., GRIPPER], -config.max_gripper, config.max_gripper)
    return actions


def plan_cem(
    cost: CostFunction,
    config: CEMConfig,
    rng: np.random.Generator,
    on_iteration: Callable[[CEMIteration], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> CEMPlan:
    """Run CEM; `on_iteration` is called after each iteration, `cancelled` is polled before each one."""
    mean = np.zeros((config.horizon, STATE_DIM), np.float32)
    std = np.zeros((config.horizon, STATE_DIM), np.float32)
    std[:, : config.translation_dims] = config.max_translation
    if config.sample_gripper:
        std[:, GRIPPER] = 1.0
    done = []
    for iteration in range(config.iterations):
        if cancelled is not None and cancelled():
            return CEMPlan(mean, tuple(done), cancelled=True)
        actions = sample_actions(mean, std, config, rng)
        costs = np.asarray(cost(actions), dtype=np.float64)
        if costs.shape != (config.samples,) or not np.all(np.isfinite(costs)):
            raise ValueError(f"cost function returned {costs.shape} (finite: {np.all(np.isfinite(costs))})")
        elite = np.argsort(costs, kind="stable")[: config.topk]
        mean = (1.0 - config.momentum_mean) * actions[elite].mean(axis=0) + config.momentum_mean * mean
        std = (1.0 - config.momentum_std) * actions[elite].std(axis=0) + config.momentum_std * std
        mean, std = mean.astype(np.float32), std.astype(np.float32)
        record = CEMIteration(iteration, float(costs[elite[0]]), float(costs[elite].mean()), mean[0].copy())
        done.append(record)
        if on_iteration is not None:
            on_iteration(record)
    return CEMPlan(mean, tuple(done), cancelled=False)
