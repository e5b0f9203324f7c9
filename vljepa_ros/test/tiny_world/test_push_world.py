"""The push world's physics and ground truth: the agent moves by clipped deltas, pushes boxes it touches,
stays in the arena; teleports move a box where no action could; frames show what the state says."""

from __future__ import annotations

import numpy as np

from vljepa_ros.tiny_world.push_world import (
    AGENT_RADIUS,
    CONTACT,
    MAX_STEP,
    PushState,
    ac_action,
    ac_state,
    random_state,
    reached,
    render,
    step,
    teleport,
)


def test_agent_moves_by_clipped_deltas_and_stays_inside():
    state = PushState(np.array([0.5, 0.5]), np.array([[0.1, 0.9], [0.9, 0.1]]))
    moved = step(state, np.array([0.03, -0.5]))
    assert np.allclose(moved.agent, [0.53, 0.5 - MAX_STEP]) and np.allclose(moved.boxes, state.boxes)
    corner = PushState(np.array([0.95, 0.5]), state.boxes)
    assert step(corner, np.array([0.08, 0.0])).agent[0] == 1 - AGENT_RADIUS


def test_agent_pushes_a_box_it_runs_into():
    state = PushState(np.array([0.3, 0.5]), np.array([[0.3 + CONTACT + 0.01, 0.5], [0.1, 0.1]]))
    after = step(step(state, np.array([0.08, 0.0])), np.array([0.08, 0.0]))
    assert after.boxes[0, 0] > state.boxes[0, 0] + 0.1 and np.isclose(after.boxes[0, 1], 0.5)
    assert np.linalg.norm(after.boxes[0] - after.agent) >= CONTACT - 1e-9
    assert np.allclose(after.boxes[1], [0.1, 0.1])  # the other box is untouched


def test_teleport_moves_a_box_far_and_reached_uses_every_body():
    rng = np.random.default_rng(0)
    state = random_state(rng)
    jumped = teleport(state, rng, box=1)
    assert np.linalg.norm(jumped.boxes[1] - state.boxes[1]) > 0.25 and np.allclose(jumped.boxes[0], state.boxes[0])
    assert reached(state, state, 0.01) and not reached(jumped, state, 0.05)


def test_frames_show_the_state_and_ac_vectors():
    state = PushState(np.array([0.25, 0.25]), np.array([[0.75, 0.25], [0.25, 0.75]]))
    frame = render(state)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert tuple(frame[16, 16]) == (250, 250, 250)  # agent centre
    assert frame[16, 48, 0] > 200 and frame[16, 48, 2] < 80  # red box centre (x = column)
    assert frame[48, 16, 2] > 200  # blue box
    assert np.allclose(ac_state(state), [0.25, 0.25, 0, 0, 0, 0, 0])
    assert np.allclose(ac_action(np.array([0.01, -0.02])), [0.01, -0.02, 0, 0, 0, 0, 0])
