"""The world model node's parameters -> a validated configuration, and which camera frames become steps.

Every error names the node parameter (e.g. `cem.samples must be a positive integer, got 0`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from vljepa_ros.runtime.bundled_model import bundled_world_model_path
from vljepa_ros.runtime.onnx_session import parse_provider_list
from vljepa_ros.world_model.cem import CEMConfig

CEM_PREFIX = "cem."
# name: (default, description)
NODE_PARAMETERS = {
    "model_path": (
        "",
        "world_model.yaml (or its folder) written by export_model --vjepa2-ac; empty: the bundled tiny push-world "
        "model (models/tinyworld_ac)",
    ),
    "providers": ("tensorrt,cuda,cpu", "onnxruntime providers in preference order"),
    "intra_op_threads": (1, "onnxruntime threads per session (0: onnxruntime decides)"),
    "context_steps": (1, "observed steps kept as the predictor's context (the notebooks plan from 1)"),
    "min_step_interval_s": (1.0, "camera frames closer than this to the last step are not steps (counted)"),
    "max_state_age_s": (0.5, "an end-effector state older than this at a frame's stamp makes no step (counted)"),
    "seed": (0, "seed of the planner's random generator"),
}
CEM_DESCRIPTIONS = {
    "samples": "CEM samples per iteration (one batched rollout)",
    "topk": "elite samples the distribution moves towards",
    "iterations": "CEM iterations per plan (one feedback message each)",
    "horizon": "planned steps (the first is executed)",
    "max_translation": "translation delta limit per step, metres",
    "translation_dims": "translation dims sampled (3: xyz; 2: a planar robot)",
    "sample_gripper": "sample the gripper delta too",
    "max_gripper": "gripper delta limit",
    "momentum_mean": "share of the old mean kept each iteration",
    "momentum_std": "share of the old std kept each iteration",
    "max_batch": "rollouts per predictor call (bounds one call's memory)",
}

# Why a camera frame did not become a step.
BETWEEN_STEPS = "between_steps"
NO_STATE = "no_state"
STALE_STATE = "stale_state"


def cem_parameters() -> dict[str, tuple[object, str]]:
    """`cem.<field>`: (default, description) for every CEM setting."""
    defaults = CEMConfig()
    return {CEM_PREFIX + f.name: (getattr(defaults, f.name), CEM_DESCRIPTIONS[f.name]) for f in fields(CEMConfig)}


@dataclass(frozen=True)
class WorldModelNodeConfig:
    """Validated node configuration."""

    model_path: str
    providers: tuple[str, ...]
    intra_op_threads: int
    context_steps: int
    min_step_interval_s: float
    max_state_age_s: float
    seed: int
    cem: CEMConfig


def _number(values: dict, name: str, minimum: float, integer: bool):
    value = values[name]
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {what} >= {minimum}, got {value!r}")
    return value


def node_config_from_parameters(values: dict) -> WorldModelNodeConfig:
    """Node parameters (name -> value) -> configuration; ValueError naming the parameter."""
    providers = parse_provider_list(values["providers"])  # its errors name `providers`
    cem_values = {k.removeprefix(CEM_PREFIX): v for k, v in values.items() if k.startswith(CEM_PREFIX)}
    try:
        cem = CEMConfig(**cem_values)
    except ValueError as err:
        raise ValueError(f"{CEM_PREFIX}{err}") from None
    return WorldModelNodeConfig(
        model_path=values["model_path"] or str(bundled_world_model_path()),
        providers=providers,
        intra_op_threads=_number(values, "intra_op_threads", 0, True),
        context_steps=_number(values, "context_steps", 1, True),
        min_step_interval_s=float(_number(values, "min_step_interval_s", 0, False)),
        max_state_age_s=float(_number(values, "max_state_age_s", 0, False)),
        seed=_number(values, "seed", 0, True),
        cem=cem,
    )


def step_refusal(
    frame_ns: int, last_step_ns: int | None, state_ns: int | None, config: WorldModelNodeConfig
) -> str | None:
    """Why the frame stamped `frame_ns` is not a step (None: it is one)."""
    if last_step_ns is not None and frame_ns - last_step_ns < config.min_step_interval_s * 1e9:
        return BETWEEN_STEPS
    if state_ns is None:
        return NO_STATE
    if abs(frame_ns - state_ns) > config.max_state_age_s * 1e9:
        return STALE_STATE
    return None
