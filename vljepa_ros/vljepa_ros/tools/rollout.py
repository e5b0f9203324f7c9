"""`rollout`: observed steps + actions + states -> the world model's prediction of the next step (.npz).

STEPS (T, 3, S, S) float32 normalised images, one per step; ACTIONS and STATES (T, 7): the state at each step
and the action executed after it. Writes `next_state` (H*W, D): the layer-normed predicted tokens of step T.
Bad input is refused in one line (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vljepa_ros.runtime.manifest import ManifestError
from vljepa_ros.runtime.onnx_session import SessionConfig, parse_provider_list
from vljepa_ros.world_model.model import WorldModel
from vljepa_ros.world_model.poses import check_state_array


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rollout", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, required=True, help="world_model.yaml (or its folder)")
    p.add_argument("--steps", type=Path, required=True, help="STEPS.npy (T, 3, S, S) float32 normalised images")
    p.add_argument("--actions", type=Path, required=True, help="A.npy (T, 7) action after each step")
    p.add_argument("--states", type=Path, required=True, help="S.npy (T, 7) end-effector state at each step")
    p.add_argument("--out", type=Path, required=True, help="R.npz with next_state (H*W, D)")
    p.add_argument("--providers", default="cpu", help="onnxruntime providers in preference order (default cpu)")
    return p.parse_args(argv)


def load_array(path: Path, name: str) -> np.ndarray:
    """A .npy array without pickles, or ValueError naming the flag."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{name}: cannot read {path} ({type(err).__name__}: {str(err).splitlines()[0]})") from None


def run(args: argparse.Namespace) -> Path:
    steps = load_array(args.steps, "--steps")
    if steps.ndim != 4:
        raise ValueError(f"--steps: expected (T, 3, S, S), got shape {steps.shape}")
    t = steps.shape[0]
    actions = check_state_array("--actions", load_array(args.actions, "--actions"), t)
    states = check_state_array("--states", load_array(args.states, "--states"), t)
    config = SessionConfig(providers=parse_provider_list(args.providers), warmup_runs=0)
    model = WorldModel.load(args.manifest, config)
    tokens = model.encode(steps)
    next_state = model.predict_next(tokens[None], actions[None], states[None])[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, next_state=next_state)
    return args.out


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point: exit 0 with the output written, or 2 with a one-line reason."""
    args = parse_args(argv)
    try:
        out = run(args)
    except (ManifestError, ValueError, OSError) as err:
        print(f"rollout: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
