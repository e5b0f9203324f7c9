"""Push-world trajectories and their frozen tokens from the bundled encoder (no torch).

A step's frame is repeated into the bundled encoder's 8-frame clip (uint8 crops, normalised in its graph); the
step's tokens are the last temporal slice of the output grid, layer-normed, as the world model runtime feeds
them to the predictor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.tiny_world.push_world import ac_action, ac_state, random_push_actions, random_state, render, step
from vljepa_ros.world_model.model import layer_norm


@dataclass(frozen=True)
class BundledEncoder:
    """The bundled encoder's graph and how one step's tokens are cut from its output."""

    path: Path
    frames: int
    tokens_per_step: int
    session: ort.InferenceSession

    @property
    def token_range(self) -> tuple[int, int]:
        total = self.session.get_outputs()[0].shape[1]
        return total - self.tokens_per_step, total

    def encode(self, frames: np.ndarray, batch: int = 64) -> np.ndarray:
        """(N, S, S, 3) uint8 frames -> (N, H*W, D) layer-normed tokens of one step each."""
        start, end = self.token_range
        out = []
        for i in range(0, len(frames), batch):
            clips = np.repeat(frames[i : i + batch, None], self.frames, axis=1)
            out.append(self.session.run(None, {"frames": clips})[0][:, start:end])
        return layer_norm(np.concatenate(out))


def bundled_encoder(threads: int = 1) -> BundledEncoder:
    """The bundled model's encoder (uint8 crops in), one session."""
    manifest = load_manifest(bundled_manifest_path())
    clip = manifest.clip
    grid = (clip.crop_size // clip.patch) ** 2
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(manifest.encoder.file), options, providers=["CPUExecutionProvider"])
    return BundledEncoder(Path(manifest.encoder.file), clip.frames, grid, session)


@dataclass(frozen=True)
class PushTrajectories:
    """N trajectories of T steps: frames (N, T, S, S, 3), tokens (N, T, H*W, D), actions/states (N, T, 7),
    ground truth (N, T, 2 + 2 * boxes). Action t leads from step t to t + 1 (the last one is unused)."""

    frames: np.ndarray
    tokens: np.ndarray
    actions: np.ndarray
    states: np.ndarray
    truth: np.ndarray


def generate_trajectories(count: int, steps: int, seed: int, encoder: BundledEncoder) -> PushTrajectories:
    """Random push trajectories (half heading for a box) with their tokens."""
    rng = np.random.default_rng(seed)
    frames, actions, states, truth = [], [], [], []
    for _ in range(count):
        state = random_state(rng)
        deltas = random_push_actions(state, steps, rng)
        for t in range(steps):
            frames.append(render(state))
            states.append(ac_state(state))
            actions.append(ac_action(deltas[t]))
            truth.append(state.vector())
            state = step(state, deltas[t])
    frames = np.stack(frames)
    tokens = encoder.encode(frames)
    shape = (count, steps)
    return PushTrajectories(
        frames.reshape(*shape, *frames.shape[1:]),
        tokens.reshape(*shape, *tokens.shape[1:]),
        np.stack(actions).reshape(*shape, 7),
        np.stack(states).reshape(*shape, 7),
        np.stack(truth).reshape(*shape, -1),
    )
