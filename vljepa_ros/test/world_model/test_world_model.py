"""The world model runtime (no torch inside it): manifest, encode, predict, rollout, surprise, batched planning,
and the `rollout` console script, on the small random V-JEPA 2-AC export."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

from vljepa_ros.runtime.manifest import ManifestError
from vljepa_ros.runtime.onnx_session import SessionConfig
from vljepa_ros.tools import rollout as rollout_tool
from vljepa_ros.world_model.cem import CEMConfig
from vljepa_ros.world_model.manifest import load_world_model_manifest
from vljepa_ros.world_model.model import WorldModel, layer_norm, token_distance
from vljepa_ros.world_model.planning import Context, plan_to_goal, rollout_cost, surprise
from vljepa_ros.world_model.poses import apply_actions

from support.vjepa2_ac_fixture import export_small_world_model

CPU = SessionConfig(providers=("cpu",), warmup_runs=1)


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory):
    return export_small_world_model(tmp_path_factory.mktemp("wm") / "model")


@pytest.fixture(scope="module")
def model(manifest_path):
    return WorldModel.load(manifest_path, CPU)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


def test_layer_norm_has_zero_mean_unit_variance():
    x = np.random.default_rng(0).standard_normal((5, 40)).astype(np.float32) * 3 + 2
    y = layer_norm(x)
    assert np.allclose(y.mean(-1), 0, atol=1e-5) and np.allclose(y.std(-1), 1, atol=1e-3)


def test_manifest_checks_files(manifest_path, tmp_path):
    m = load_world_model_manifest(manifest_path)
    assert m.tokens_per_step == 16 and m.max_steps == 32
    raw = yaml.safe_load(manifest_path.read_text())
    for field, value, message in [
        ("grid_height", 0, "grid_height must be a positive integer"),
        ("kind", "vljepa", "not a world model manifest"),
        ("std", [1, 0, 1], "std must be positive"),
        ("predictor_sha256", "0" * 64, "predictor.onnx does not match its sha256"),
    ]:
        bad = dict(raw, **{field: value})
        copy = manifest_path.parent / "bad.yaml"
        copy.write_text(yaml.safe_dump(bad))
        with pytest.raises(ManifestError, match=message):
            load_world_model_manifest(copy)


def test_encode_shapes_and_refusals(model):
    tokens = model.encode(images(3))
    assert tokens.shape == (3, 16, 96)
    assert np.allclose(tokens.mean(-1), 0, atol=1e-4)
    with pytest.raises(ValueError, match=r"steps: expected shape \(T, 3, 32, 32\)"):
        model.encode(images(1)[:, :, :16])
    bad = images(1)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        model.encode(bad)


def test_predictions_depend_on_the_action_and_batch_rows_are_independent(model):
    tokens = model.encode(images(2))[None]
    states = np.zeros((1, 2, 7), np.float32)
    a = np.zeros((1, 2, 7), np.float32)
    b = a.copy()
    b[0, 1, 0] = 0.05
    one = model.predict_next(tokens, a, states)
    both = model.predict_next(np.concatenate([tokens, tokens]), np.concatenate([a, b]), np.concatenate([states] * 2))
    assert np.allclose(both[0], one[0], atol=1e-5)
    assert token_distance(both[0], both[1]) > 1e-4


def test_rollout_feeds_predictions_back_with_composed_states(model):
    tokens = model.encode(images(1))[None]
    states = np.array([[[0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 0.5]]], np.float32)
    actions = np.array([[[0.01, 0, 0, 0, 0, 0.1, 0], [0, 0.02, 0, 0, 0, 0, 0.1], [0, 0, 0.03, 0, 0, 0, 0]]], np.float32)
    out = model.rollout(tokens, states, actions)
    assert out.shape == (1, 3, 16, 96)
    # By hand: step by step, the state of each predicted step is the previous one composed with its action.
    z, s = tokens, states
    for k in range(3):
        nxt = model.predict_next(z, actions[:, : k + 1], s)
        assert np.allclose(out[:, k], nxt, atol=1e-5)
        z = np.concatenate([z, nxt[:, None]], axis=1)
        s = np.concatenate([s, apply_actions(s[:, -1], actions[:, k])[:, None]], axis=1)
    with pytest.raises(ValueError, match="need at least 1"):
        model.rollout(tokens, states, actions[:, :0])


def test_step_limit_is_checked_before_the_call(model):
    tokens = np.zeros((1, 33, 16, 96), np.float32)
    with pytest.raises(ValueError, match="exceeds the model's max_steps 32"):
        model.predict_next(tokens, np.zeros((1, 33, 7), np.float32), np.zeros((1, 33, 7), np.float32))


def test_batched_cost_does_not_depend_on_the_chunk_size(model):
    tokens = model.encode(images(2))
    context = Context(tokens, np.zeros((2, 7), np.float32), np.zeros((1, 7), np.float32))
    goal = model.encode(images(1, seed=5))[0]
    sequences = np.random.default_rng(1).uniform(-0.05, 0.05, (9, 2, 7)).astype(np.float32)
    whole = rollout_cost(model, context, goal, max_batch=400)(sequences)
    chunked = rollout_cost(model, context, goal, max_batch=4)(sequences)
    assert whole.shape == (9,) and np.allclose(whole, chunked, atol=1e-6)
    assert np.ptp(whole) > 0


def test_planning_beats_zero_action_towards_a_reachable_goal(model):
    """The goal is the model's own prediction after a known 2-step push: CEM gets closer than doing nothing."""
    tokens = model.encode(images(1))
    context = Context(tokens, np.zeros((1, 7), np.float32), np.zeros((0, 7), np.float32))
    target = np.zeros((1, 2, 7), np.float32)
    target[0, :, 0], target[0, :, 1] = 0.04, -0.03
    goal = model.rollout(tokens[None], context.states[None], target)[0, -1]
    config = CEMConfig(samples=64, topk=8, iterations=6, horizon=2, sample_gripper=False)
    seen = []
    plan = plan_to_goal(model, context, goal, config, np.random.default_rng(0), on_iteration=seen.append)
    cost = rollout_cost(model, context, goal, 64)
    assert len(seen) == 6 and not plan.cancelled
    assert cost(plan.actions[None])[0] < cost(np.zeros((1, 2, 7), np.float32))[0]
    assert np.all(plan.actions[:, 3:] == 0)  # rotation and gripper not sampled


def test_surprise_is_zero_for_the_predicted_step_and_grows_otherwise(model):
    tokens = model.encode(images(1))
    context = Context(tokens, np.zeros((1, 7), np.float32), np.zeros((0, 7), np.float32))
    action = np.array([0.02, 0, 0, 0, 0, 0, 0], np.float32)
    predicted = model.predict_next(tokens[None], action[None, None], context.states[None])[0]
    assert surprise(model, context, action, predicted) < 1e-6
    assert surprise(model, context, action, model.encode(images(1, seed=9))[0]) > 0.1


def test_rollout_cli_writes_next_state(manifest_path, model, tmp_path):
    steps = images(2)
    actions = np.zeros((2, 7), np.float32)
    actions[1, 0] = 0.03
    states = np.zeros((2, 7), np.float32)
    for name, value in (("steps", steps), ("a", actions), ("s", states)):
        np.save(tmp_path / f"{name}.npy", value)
    args = ["--manifest", str(manifest_path), "--steps", str(tmp_path / "steps.npy"), "--actions"]
    args += [str(tmp_path / "a.npy"), "--states", str(tmp_path / "s.npy"), "--out", str(tmp_path / "r.npz")]
    done = subprocess.run([sys.executable, "-m", "vljepa_ros.tools.rollout", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = np.load(tmp_path / "r.npz")["next_state"]
    want = model.predict_next(model.encode(steps)[None], actions[None], states[None])[0]
    assert got.shape == (16, 96) and np.allclose(got, want, atol=1e-5)


def test_rollout_cli_refuses_bad_input_in_one_line(manifest_path, tmp_path, capsys):
    np.save(tmp_path / "steps.npy", images(2))
    np.save(tmp_path / "a.npy", np.zeros((3, 7), np.float32))
    np.save(tmp_path / "s.npy", np.zeros((2, 7), np.float32))
    args = ["--manifest", str(manifest_path), "--steps", str(tmp_path / "steps.npy"), "--actions"]
    args += [str(tmp_path / "a.npy"), "--states", str(tmp_path / "s.npy"), "--out", str(tmp_path / "r.npz")]
    assert rollout_tool.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == "rollout: error: --actions: expected 2 rows, got 3"
    assert not (tmp_path / "r.npz").exists()
