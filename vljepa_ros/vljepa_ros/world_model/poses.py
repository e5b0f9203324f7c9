"""End-effector states and actions as V-JEPA 2-AC uses them (numpy).

A state is 7 floats: position xyz, orientation as extrinsic euler angles xyz (radians), gripper closedness in
[0, 1]. An action is 7 floats: position delta, rotation delta (extrinsic euler xyz, applied before the current
rotation: R_new = R_delta @ R), gripper delta. `apply_actions` is the state the robot reaches, as the planning
notebooks compose it.
"""

from __future__ import annotations

import numpy as np

STATE_DIM = 7


def euler_xyz_to_matrix(angles: np.ndarray) -> np.ndarray:
    """(..., 3) extrinsic xyz euler angles -> (..., 3, 3) rotation matrices Rz @ Ry @ Rx."""
    cx, cy, cz = np.cos(angles[..., 0]), np.cos(angles[..., 1]), np.cos(angles[..., 2])
    sx, sy, sz = np.sin(angles[..., 0]), np.sin(angles[..., 1]), np.sin(angles[..., 2])
    rows = [
        [cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
        [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
        [-sy, cy * sx, cy * cx],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_euler_xyz(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) extrinsic xyz euler angles (y in [-pi/2, pi/2])."""
    sy = np.clip(-matrix[..., 2, 0], -1.0, 1.0)
    y = np.arcsin(sy)
    x = np.arctan2(matrix[..., 2, 1], matrix[..., 2, 2])
    z = np.arctan2(matrix[..., 1, 0], matrix[..., 0, 0])
    return np.stack([x, y, z], axis=-1)


def apply_actions(states: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(..., 7) states composed with (..., 7) actions -> (..., 7) next states (gripper clipped to [0, 1])."""
    states = np.asarray(states, dtype=np.float64)
    actions = np.asarray(actions, dtype=np.float64)
    xyz = states[..., :3] + actions[..., :3]
    rotation = euler_xyz_to_matrix(actions[..., 3:6]) @ euler_xyz_to_matrix(states[..., 3:6])
    gripper = np.clip(states[..., 6:7] + actions[..., 6:7], 0.0, 1.0)
    return np.concatenate([xyz, matrix_to_euler_xyz(rotation), gripper], axis=-1).astype(np.float32)


def check_state_array(name: str, value: np.ndarray, steps: int | None = None) -> np.ndarray:
    """`value` as a float32 (T, 7) array of finite numbers, or ValueError naming `name`."""
    array = np.asarray(value)
    if array.ndim != 2 or array.shape[1] != STATE_DIM:
        raise ValueError(f"{name}: expected shape (T, {STATE_DIM}), got {array.shape}")
    if steps is not None and array.shape[0] != steps:
        raise ValueError(f"{name}: expected {steps} rows, got {array.shape[0]}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: has non-finite values")
    return array.astype(np.float32)
