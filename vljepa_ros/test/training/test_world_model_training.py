"""The tiny AC predictor's training and export path end to end at toy size, the wrapped bundled encoder, and
the evaluation's pieces (ROC AUC, a planning episode, surprise) on what it produced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vljepa_ros.runtime.onnx_session import SessionConfig
from vljepa_ros.tiny_world.push_world import random_state, render
from vljepa_ros.training import evaluate_world_model as ev
from vljepa_ros.training.push_data import bundled_encoder
from vljepa_ros.training.train_world_model import (
    TrainConfig,
    fold_standardisation,
    learning_rate,
    standardisation,
)
from vljepa_ros.training.train_world_model import main as train_main
from vljepa_ros.world_model.cem import CEMConfig
from vljepa_ros.world_model.model import WorldModel, preprocess_image

PLANAR = {"max_translation": 0.08, "translation_dims": 2, "sample_gripper": False}
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "tinyworld_ac"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ac") / "model"
    assert train_main(["--out", str(out), "--trajectories", "12", "--train-steps", "4", "--threads", "1"]) == 0
    return out


def test_training_writes_a_loadable_world_model_and_summary(trained):
    summary = json.loads((trained / "training_summary.json").read_text())
    assert summary["history"][0]["step"] == 0 and summary["history"][-1]["step"] == 3
    model = WorldModel.load(trained, SessionConfig(providers=("cpu",)))
    assert (model.manifest.crop_size, model.manifest.tokens_per_step, model.manifest.embed_dim) == (64, 64, 64)


def test_wrapped_encoder_equals_the_bundled_encoder_on_a_frame(trained):
    model = WorldModel.load(trained, SessionConfig(providers=("cpu",)))
    frame = render(random_state(np.random.default_rng(3)))
    wrapped = model.encode(preprocess_image(frame, model.manifest)[None])
    assert np.max(np.abs(wrapped - bundled_encoder().encode(frame[None]))) < 1e-5


def test_folded_standardisation_gives_raw_inputs_the_trained_output():
    torch.manual_seed(0)
    x = torch.randn(50, 4, 7) * torch.tensor([0.05, 0.05, 0, 0, 0, 0, 0]) + torch.tensor([0.5, 0.3, 0, 0, 0, 0, 0])
    mean, std = standardisation(x)
    assert torch.equal(std[2:], torch.ones(5)) and torch.equal(mean[2:], torch.zeros(5))  # constant dims untouched
    linear = torch.nn.Linear(7, 16)
    trained = linear((x - mean) / std)
    fold_standardisation(linear, mean, std)
    assert torch.allclose(linear(x), trained, atol=1e-5)
    assert not torch.allclose(linear((x - mean) / std), trained, atol=1e-3)


def test_learning_rate_warms_up_and_anneals_by_steps_or_time():
    config = TrainConfig(lr=1.0, train_steps=100, max_minutes=1.0, warmup_fraction=0.1)
    assert learning_rate(config, 0, 0.0) == 0.0
    assert learning_rate(config, 5, 0.0) == pytest.approx(0.5)
    assert learning_rate(config, 10, 0.0) == pytest.approx(1.0)
    assert learning_rate(config, 55, 0.0) == pytest.approx(0.5)
    assert learning_rate(config, 100, 0.0) == pytest.approx(0.0)
    assert learning_rate(config, 10, 33.0) == pytest.approx(0.5)  # the time cap is the nearer end
    assert learning_rate(config, 10, 60.0) == pytest.approx(0.0)


def test_roc_auc():
    assert ev.roc_auc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert ev.roc_auc(np.array([0.3, 0.4]), np.array([0.1, 0.2])) == 0.0
    assert ev.roc_auc(np.array([0.1, 0.3]), np.array([0.2, 0.3])) == 0.625


def test_evaluation_pieces_run_on_a_trained_folder(trained):
    model = WorldModel.load(trained, SessionConfig(providers=("cpu",)))
    config = ev.EvalConfig(pairs=1, budget=2, transitions=3, cem=CEMConfig(samples=8, topk=2, iterations=2, **PLANAR))
    rng = np.random.default_rng(0)
    start = random_state(rng)
    for method in ("cem", "greedy", "random"):
        episode = ev.run_episode(model, start, start, method, config, rng)
        assert 1 <= episode["steps"] <= 2 and len(episode["visited"]) == episode["steps"] + 1
    surprise = ev.evaluate_surprise(model, config)
    assert surprise["transitions"] == 3 and 0.0 <= surprise["roc_auc"] <= 1.0
    ranking = ev.evaluate_ranking(model, config)
    assert ranking["pairs"] == 1 and ranking["candidates"] == 8
    assert ranking["true_spread_over_actions"] > 0.0 and ranking["predicted_spread_over_actions"] >= 0.0
    assert -1.0 <= ranking["spearman_predicted_vs_true_cost"] <= 1.0


def test_spearman():
    assert ev.spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])) == pytest.approx(1.0)
    assert ev.spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)


def test_shipped_tiny_world_model_notices_teleports():
    """The shipped weights (vljepa_ros/models/tinyworld_ac): surprise ranks teleported above commanded
    transitions (docs/world_model.md reports the AUC on 200; 30 here, a looser bound)."""
    model = WorldModel.load(SHIPPED, SessionConfig(providers=("cpu",)))
    surprise = ev.evaluate_surprise(model, ev.EvalConfig(transitions=30))
    assert surprise["roc_auc"] > 0.8 and surprise["teleported_mean"] > surprise["commanded_mean"]
