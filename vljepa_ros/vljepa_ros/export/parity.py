"""Parity check of an exported graph: onnxruntime (CPU) against the PyTorch module on the same inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch


class ParityError(RuntimeError):
    """onnxruntime output differs from PyTorch by more than the tolerance."""


def check_parity(
    torch_fn: Callable[..., torch.Tensor],
    onnx_path: Path,
    feeds: Mapping[str, np.ndarray],
    tolerance: float,
    label: str,
    log: Callable[[str], None] = print,
) -> float:
    """Run the graph (onnxruntime CPU) and PyTorch on the same inputs; print and return the max abs error.

    Raises ParityError above `tolerance`.
    """
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, dict(feeds))[0].astype(np.float32)
    with torch.no_grad():
        want = torch_fn(*[torch.from_numpy(v) for v in feeds.values()]).float().numpy()
    if got.shape != want.shape:
        raise ParityError(f"{label}: onnxruntime shape {got.shape} != torch shape {want.shape}")
    err = float(np.max(np.abs(got - want)))
    log(f"parity {label}: max abs error {err:.3g} (tolerance {tolerance:g})")
    if not err <= tolerance:
        raise ParityError(f"{label}: max abs error {err:.3g} exceeds tolerance {tolerance:g}")
    return err
