"""Shared helpers for the perception tests: a model to run and synthetic camera frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from support.tiny_models import tiny_random_model

_CACHE: dict[str, Path] = {}


def tiny_random_manifest(tmp_path_factory) -> Path:
    """The small random-weight ONNX model (exported once per test process, or prebuilt: support/tiny_models)."""
    if "tiny" not in _CACHE:
        _CACHE["tiny"] = tiny_random_model(tmp_path_factory.mktemp("tiny_model"), seed=0)
    return _CACHE["tiny"]


def preferred_manifest(tmp_path_factory) -> Path:
    """The bundled default model when it is in the source tree, else the tiny random one."""
    from vljepa_ros.runtime.bundled_model import bundled_manifest_path

    bundled = bundled_manifest_path()
    return bundled if bundled.is_file() else tiny_random_manifest(tmp_path_factory)


def moving_frame(t_s: float, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """An RGB uint8 frame with a bright square moving right over a textured background."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    x = int((t_s * 40) % (width - 24))
    frame[30:54, x : x + 24] = (230, 40, 40)
    return frame
