"""CEM in numpy on known costs, its settings checked at the edge; pose composition as the notebooks do it."""

from __future__ import annotations

import numpy as np
import pytest

from vljepa_ros.world_model.cem import CEMConfig, plan_cem, sample_actions
from vljepa_ros.world_model.poses import apply_actions, euler_xyz_to_matrix, matrix_to_euler_xyz


def quadratic_cost(target: np.ndarray):
    return lambda actions: ((actions - target[None]) ** 2).sum(axis=(1, 2))


def test_cem_finds_the_minimum_of_a_known_cost():
    target = np.zeros((2, 7), np.float32)
    target[:, :3] = [[0.03, -0.02, 0.01], [-0.04, 0.0, 0.02]]
    target[:, 6] = [0.5, -0.3]
    plan = plan_cem(quadratic_cost(target), CEMConfig(iterations=15), np.random.default_rng(0))
    assert np.max(np.abs(plan.actions - target)) < 0.01
    costs = [it.best_cost for it in plan.iterations]
    assert len(costs) == 15 and costs[-1] < costs[0]


def test_cem_respects_the_limits_and_fixed_dims():
    target = np.full((2, 7), 0.5, np.float32)  # beyond max_translation: the plan saturates at the limit
    config = CEMConfig(samples=50, topk=5, iterations=5, translation_dims=2, sample_gripper=False)
    plan = plan_cem(quadratic_cost(target), config, np.random.default_rng(0))
    assert np.all(np.abs(plan.actions[:, :2]) <= 0.05 + 1e-7) and plan.actions[0, 0] > 0.045
    assert np.all(plan.actions[:, 2:] == 0)
    drawn = sample_actions(
        np.zeros((2, 7), np.float32), np.ones((2, 7), np.float32), CEMConfig(), np.random.default_rng(1)
    )
    assert drawn.shape == (400, 2, 7) and np.abs(drawn[..., :3]).max() <= 0.05 and np.abs(drawn[..., 6]).max() <= 0.75
    assert np.all(drawn[..., 3:6] == 0)


def test_cem_cancels_between_iterations_and_reports_each():
    seen = []
    plan = plan_cem(
        quadratic_cost(np.zeros((2, 7), np.float32)),
        CEMConfig(samples=20, topk=4),
        np.random.default_rng(0),
        on_iteration=seen.append,
        cancelled=lambda: len(seen) >= 3,
    )
    assert plan.cancelled and len(plan.iterations) == 3 and [it.iteration for it in seen] == [0, 1, 2]


def test_cem_refuses_a_bad_cost():
    with pytest.raises(ValueError, match="cost function returned"):
        plan_cem(lambda a: np.full(a.shape[0], np.nan), CEMConfig(samples=10, topk=2), np.random.default_rng(0))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("samples", 0, "samples must be a positive integer"),
        ("topk", 500, "topk 500 must be <= samples 400"),
        ("translation_dims", 4, "translation_dims must be 1, 2 or 3"),
        ("max_translation", 0.0, "max_translation must be > 0"),
        ("momentum_mean", 1.0, r"momentum_mean must be in \[0, 1\)"),
        ("horizon", 1.5, "horizon must be a positive integer"),
    ],
)
def test_cem_config_names_the_bad_parameter(field, value, message):
    with pytest.raises(ValueError, match=message):
        CEMConfig(**{field: value})


def test_euler_round_trip_and_composition_order():
    angles = np.random.default_rng(0).uniform(-1.2, 1.2, (20, 3))
    assert np.allclose(matrix_to_euler_xyz(euler_xyz_to_matrix(angles)), angles, atol=1e-9)
    rx = euler_xyz_to_matrix(np.array([0.3, 0.0, 0.0]))
    assert np.allclose(rx, [[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    state = np.array([0.1, 0.2, 0.3, 0.2, -0.1, 0.4, 0.9], np.float32)
    action = np.array([0.01, -0.02, 0.0, 0.0, 0.3, 0.0, 0.5], np.float32)
    nxt = apply_actions(state, action)
    assert np.allclose(nxt[:3], [0.11, 0.18, 0.3]) and nxt[6] == 1.0  # gripper clipped to [0, 1]
    want = euler_xyz_to_matrix(action[3:6].astype(float)) @ euler_xyz_to_matrix(state[3:6].astype(float))
    assert np.allclose(euler_xyz_to_matrix(nxt[3:6].astype(float)), want, atol=1e-6)
