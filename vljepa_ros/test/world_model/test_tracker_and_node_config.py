"""The world model node's core without ROS: steps, actions summed between them, surprise, context bounds, the
parameters validated with the parameter named, and which frames become steps."""

from __future__ import annotations

import numpy as np
import pytest

from vljepa_ros.runtime.bundled_model import bundled_world_model_path
from vljepa_ros.runtime.onnx_session import SessionConfig
from vljepa_ros.world_model.model import WorldModel, preprocess_image
from vljepa_ros.world_model.node_config import (
    BETWEEN_STEPS,
    NO_STATE,
    NODE_PARAMETERS,
    STALE_STATE,
    cem_parameters,
    node_config_from_parameters,
    step_refusal,
)
from vljepa_ros.world_model.tracker import NO_ACTION, NO_PREVIOUS_STEP, StepTracker

from support.vjepa2_ac_fixture import export_small_world_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = export_small_world_model(tmp_path_factory.mktemp("wm") / "model")
    return WorldModel.load(path, SessionConfig(providers=("cpu",)))


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((3, 32, 32)).astype(np.float32)


def test_steps_actions_and_surprise(model):
    tracker = StepTracker(model, context_steps=2)
    zero = np.zeros(7, np.float32)
    first = tracker.on_step(image(0), zero)
    assert first.surprise is None and first.reason == NO_PREVIOUS_STEP
    tracker.on_action([0.01, 0, 0, 0, 0, 0, 0])
    tracker.on_action([0.02, 0, 0, 0, 0, 0, 0])  # summed with the first
    second = tracker.on_step(image(1), zero)
    assert second.surprise > 0 and np.allclose(second.action[0], 0.03) and second.context_steps == 1
    tracker.on_action(zero)
    third = tracker.on_step(image(2), zero)
    assert third.context_steps == 2 and len(tracker.tokens) == 2  # bounded to context_steps
    unexplained = tracker.on_step(image(3), zero)  # no action since the last step: the context restarts
    assert unexplained.reason == NO_ACTION and len(tracker.tokens) == 1
    assert tracker.counts == {NO_PREVIOUS_STEP: 1, NO_ACTION: 1}
    context = tracker.context()
    assert context.tokens.shape == (1, 16, 96) and context.actions.shape == (0, 7)


def test_a_step_repeated_with_its_predicted_tokens_is_not_surprising(model):
    tracker = StepTracker(model)
    zero = np.zeros(7, np.float32)
    tracker.on_step(image(0), zero)
    tracker.on_action(zero)
    same = tracker.on_step(image(0), zero, predict=True).surprise
    tracker.on_action(zero)
    other = tracker.on_step(image(7), zero).surprise
    assert other > same  # both predicted from a context of image 0 with no motion (random weights)
    tracker.on_action(zero)
    silent = tracker.on_step(image(8), zero, predict=False)
    assert silent.surprise is None and silent.reason is None and silent.context_steps == 1


def test_bad_vectors_are_refused_naming_the_input(model):
    tracker = StepTracker(model)
    with pytest.raises(ValueError, match="action: expected 7 values, got 6"):
        tracker.on_action(np.zeros(6))
    with pytest.raises(ValueError, match="state: has non-finite values"):
        tracker.on_step(image(0), [np.nan] * 7)
    with pytest.raises(ValueError, match="no step observed yet"):
        tracker.context()
    with pytest.raises(ValueError, match=r"context_steps must be in \[1, 32\]"):
        StepTracker(model, context_steps=0)


def test_preprocessing_resizes_the_short_side_and_crops(model):
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, 32:] = 255
    out = preprocess_image(rgb, model.manifest)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    white = (1.0 - 0.485) / 0.229
    assert np.isclose(out[0, 0, -1], white, atol=1e-5) and out[0, 0, 0] < 0


def defaults() -> dict:
    return {name: default for name, (default, _) in {**NODE_PARAMETERS, **cem_parameters()}.items()} | {
        "model_path": "m/world_model.yaml"
    }


def test_parameters_validated_with_the_parameter_named():
    config = node_config_from_parameters(defaults())
    assert config.cem.samples == 400 and config.cem.iterations == 10 and config.cem.horizon == 2
    for name, value, message in [
        ("cem.samples", 0, "cem.samples must be a positive integer, got 0"),
        ("cem.topk", 401, "cem.topk 401 must be <= samples 400"),
        ("context_steps", 0, "context_steps must be an integer >= 1"),
        ("providers", "gpu", "providers: unknown name"),
        ("min_step_interval_s", -1.0, "min_step_interval_s must be a number >= 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            node_config_from_parameters(defaults() | {name: value})


def test_an_empty_model_path_is_the_bundled_world_model():
    config = node_config_from_parameters(defaults() | {"model_path": ""})
    assert config.model_path == str(bundled_world_model_path()) and bundled_world_model_path().is_file()
    assert node_config_from_parameters(defaults() | {"model_path": "/x/world_model.yaml"}).model_path == (
        "/x/world_model.yaml"
    )


def test_which_frames_become_steps():
    config = node_config_from_parameters(defaults() | {"min_step_interval_s": 1.0, "max_state_age_s": 0.5})
    s = 1_000_000_000
    assert step_refusal(10 * s, None, 10 * s, config) is None
    assert step_refusal(10 * s, 9.5 * s, 10 * s, config) == BETWEEN_STEPS
    assert step_refusal(10 * s, 9 * s, None, config) == NO_STATE
    assert step_refusal(10 * s, 9 * s, 9.4 * s, config) == STALE_STATE
