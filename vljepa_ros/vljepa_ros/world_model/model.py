"""The exported V-JEPA 2-AC world model behind numpy: encode steps, predict the next step, roll out, surprise.

Tokens are layer-normed without affine after the encoder and after the predictor, as the planning notebooks
do (`normalize_reps`); costs and surprise are mean absolute differences of such tokens.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from vljepa_ros.runtime.onnx_session import OnnxModel, SessionConfig
from vljepa_ros.runtime.preprocessing import check_frame, crop_offsets, resized_size
from vljepa_ros.world_model.manifest import WorldModelManifest, load_world_model_manifest
from vljepa_ros.world_model.poses import apply_actions

LOG = logging.getLogger(__name__)
LAYER_NORM_EPS = 1e-6


def layer_norm(x: np.ndarray, eps: float = LAYER_NORM_EPS) -> np.ndarray:
    """Layer norm over the last axis without affine parameters (float32)."""
    x = x.astype(np.float32, copy=False)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def token_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference over the last two axes (tokens, width): the planning cost and the surprise."""
    return np.abs(a - b).mean(axis=(-2, -1))


def preprocess_image(rgb: np.ndarray, manifest: WorldModelManifest) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> (3, S, S) float32: short side resized to S, centre crop, mean/std normalised."""
    check_frame(rgb)
    s = manifest.crop_size
    h, w = resized_size(rgb.shape[0], rgb.shape[1], s)
    if (h, w) != rgb.shape[:2]:
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    top, left = crop_offsets(h, w, s)
    crop = rgb[top : top + s, left : left + s].astype(np.float32) / 255.0
    normalised = (crop - np.asarray(manifest.mean, np.float32)) / np.asarray(manifest.std, np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))


class WorldModel:
    """Two ONNX sessions (encoder, predictor) from a world model manifest."""

    def __init__(self, manifest: WorldModelManifest, encoder: OnnxModel, predictor: OnnxModel):
        self.manifest = manifest
        self.encoder = encoder
        self.predictor = predictor

    @classmethod
    def load(cls, path: str | Path, config: SessionConfig = SessionConfig(), log: logging.Logger = LOG) -> WorldModel:
        """Load the manifest (files checked) and both sessions; the predictor is warmed up on one real-shaped step."""
        manifest = load_world_model_manifest(path)
        no_warmup = replace(config, warmup_runs=0)
        encoder = OnnxModel.load(manifest.path_of(manifest.encoder), config, log)
        predictor = OnnxModel.load(manifest.path_of(manifest.predictor), no_warmup, log)
        model = cls(manifest, encoder, predictor)
        for _ in range(config.warmup_runs):
            zeros = np.zeros((1, 1, manifest.tokens_per_step, manifest.embed_dim), np.float32)
            actions = np.zeros((1, 1, manifest.action_dim), np.float32)
            model.predict_next(zeros, actions, actions)
        return model

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(T, 3, S, S) normalised images -> (T, H*W, D) layer-normed tokens, one encoder call per image."""
        m = self.manifest
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != (3, m.crop_size, m.crop_size):
            raise ValueError(f"steps: expected shape (T, 3, {m.crop_size}, {m.crop_size}), got {images.shape}")
        if not np.all(np.isfinite(images)):
            raise ValueError("steps: has non-finite values")
        out = [self.encoder.run({"image": images[i : i + 1]})[0][0] for i in range(images.shape[0])]
        return layer_norm(np.stack(out))

    def predict_next(self, tokens: np.ndarray, actions: np.ndarray, states: np.ndarray) -> np.ndarray:
        """(B, T, H*W, D) tokens, (B, T, A) actions and states -> (B, H*W, D) layer-normed tokens of step T."""
        m = self.manifest
        b, t = tokens.shape[:2]
        if tokens.shape[2:] != (m.tokens_per_step, m.embed_dim):
            raise ValueError(f"tokens: expected (B, T, {m.tokens_per_step}, {m.embed_dim}), got {tokens.shape}")
        if actions.shape != (b, t, m.action_dim) or states.shape != (b, t, m.action_dim):
            raise ValueError(
                f"actions/states: expected ({b}, {t}, {m.action_dim}), got {actions.shape} and {states.shape}"
            )
        if t > m.max_steps:
            raise ValueError(f"steps: {t} exceeds the model's max_steps {m.max_steps}")
        feeds = {
            "tokens": np.ascontiguousarray(tokens.reshape(b, t * m.tokens_per_step, m.embed_dim), np.float32),
            "actions": np.ascontiguousarray(actions, np.float32),
            "states": np.ascontiguousarray(states, np.float32),
        }
        predictions = self.predictor.run(feeds)[0]
        return layer_norm(predictions[:, -m.tokens_per_step :])

    def rollout(self, tokens: np.ndarray, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Predicted tokens (B, K, H*W, D) of the K steps after the T observed ones.

        `tokens` (B, T, H*W, D) and `states` (B, T, A) are the observed steps; `actions` (B, T + K - 1, A) are
        the action after each step, observed or predicted. Predicted steps get the state their action leads to.
        """
        t = tokens.shape[1]
        k = actions.shape[1] - t + 1
        if k < 1:
            raise ValueError(f"actions: need at least {t} (one per observed step), got {actions.shape[1]}")
        predicted = []
        for step in range(k):
            n = t + step
            nxt = self.predict_next(tokens, actions[:, :n], states)
            predicted.append(nxt)
            if step + 1 < k:
                tokens = np.concatenate([tokens, nxt[:, None]], axis=1)
                states = np.concatenate([states, apply_actions(states[:, -1], actions[:, n - 1])[:, None]], axis=1)
        return np.stack(predicted, axis=1)
