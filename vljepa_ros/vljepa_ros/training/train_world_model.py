"""`train_world_model`: a tiny V-JEPA 2-AC predictor on the bundled encoder's frozen tokens of the push world.

The predictor (this project's VJepa2ACPredictor, small config) learns to predict the next step's layer-normed
tokens from the steps so far, their actions and states: an L1 teacher-forcing loss over every step of a
trajectory plus an L1 rollout loss on the second step predicted from its own first prediction (as V-JEPA 2-AC
is trained). CPU only, minutes on two cores; the run stops at `--max-minutes` and says so, and the learning
rate (warm-up, then cosine) reaches 0 by the step budget or the time cap, whichever comes first, so a capped run
still anneals.

Actions are deltas of at most 0.08 and states positions in [0, 1]: tiny inputs that Adam, moving a weight by
about the learning rate per step, takes thousands of steps to amplify. The model trains on standardised actions
and states (per-dim mean and std of the training data), and the standardisation is folded into the action and
state encoders before export, so the exported graph keeps the released layout and takes raw 7-float inputs.
Exported with the bundled encoder wrapped as the world model's encoder:

    train_world_model --out vljepa_ros/models/tinyworld_ac
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from vljepa_ros.export.vjepa2_ac import export_ac_with_onnx_encoder
from vljepa_ros.torch_models.vjepa2_ac_predictor import ACPredictorConfig, VJepa2ACPredictor
from vljepa_ros.training.push_data import bundled_encoder, generate_trajectories


@dataclass(frozen=True)
class TrainConfig:
    """Training run settings (the defaults made the shipped weights)."""

    seed: int = 0
    trajectories: int = 3000
    steps_per_trajectory: int = 4
    train_steps: int = 4000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    threads: int = 2
    max_minutes: float = 28.0
    warmup_fraction: float = 0.05
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4


def layer_normed(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6)


def standardisation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dim mean and std over all but the last axis; a dim that never varies keeps mean 0 and std 1."""
    flat = x.reshape(-1, x.shape[-1])
    mean, std = flat.mean(0), flat.std(0)
    varies = std > 1e-6
    return torch.where(varies, mean, 0.0), torch.where(varies, std, 1.0)


def fold_standardisation(linear: torch.nn.Linear, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Rewrite `linear` in place so that linear(x) equals what it computed on (x - mean) / std."""
    with torch.no_grad():
        linear.bias -= linear.weight @ (mean / std)
        linear.weight /= std


def learning_rate(config: TrainConfig, step: int, elapsed_s: float) -> float:
    """Linear warm-up, then cosine to 0 by the step budget or the time cap, whichever comes first."""
    progress = max(step / config.train_steps, elapsed_s / (config.max_minutes * 60))
    warm_up = config.warmup_fraction
    if progress < warm_up:
        return config.lr * progress / warm_up
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - warm_up) / (1.0 - warm_up))))


def losses(
    model: VJepa2ACPredictor, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(teacher-forcing L1, two-step rollout L1) on a batch of trajectories (B, T, H*W, D)."""
    b, t, hw, d = tokens.shape
    context = tokens[:, :-1].reshape(b, (t - 1) * hw, d)
    predicted = layer_normed(model(context, actions[:, :-1], states[:, :-1])).reshape(b, t - 1, hw, d)
    teacher = (predicted - tokens[:, 1:]).abs().mean()
    first = predicted[:, 0]
    second = layer_normed(model(torch.cat([tokens[:, 0], first], dim=1), actions[:, :2], states[:, :2]))[:, hw:]
    rollout = (second - tokens[:, 2]).abs().mean()
    return teacher, rollout


def train(config: TrainConfig, log=print) -> tuple[VJepa2ACPredictor, dict]:
    """Generate the data, train, and return the model with a summary (losses, time, whether it stopped early)."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    encoder = bundled_encoder(config.threads)
    start = time.monotonic()
    data = generate_trajectories(config.trajectories, config.steps_per_trajectory, config.seed, encoder)
    held_out = generate_trajectories(100, config.steps_per_trajectory, config.seed + 10_000, encoder)
    data_s = time.monotonic() - start
    log(f"data: {config.trajectories} trajectories encoded in {data_s:.0f} s")
    hw, width = data.tokens.shape[2:]
    grid = math.isqrt(hw)
    cfg = ACPredictorConfig(
        encoder_dim=width,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_dim=4 * config.embed_dim,
        grid_height=grid,
        grid_width=grid,
    )
    model = VJepa2ACPredictor(cfg)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    tokens, actions, states = (torch.from_numpy(x) for x in (data.tokens, data.actions, data.states))
    action_mean, action_std = standardisation(actions)
    state_mean, state_std = standardisation(states)

    def inputs(t, a, s):
        return t, (a - action_mean) / action_std, (s - state_mean) / state_std

    tensors = inputs(tokens, actions, states)
    held = inputs(*(torch.from_numpy(x) for x in (held_out.tokens, held_out.actions, held_out.states)))
    generator = torch.Generator().manual_seed(config.seed)
    history, stopped_early, train_start = [], False, time.monotonic()
    for step in range(config.train_steps):
        elapsed = time.monotonic() - train_start
        if elapsed > config.max_minutes * 60:
            stopped_early = True
            log(f"stopped at step {step}: --max-minutes {config.max_minutes} reached")
            break
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(config, step, elapsed)
        index = torch.randint(0, config.trajectories, (config.batch_size,), generator=generator)
        teacher, rollout = losses(model, *(x[index] for x in tensors))
        optimiser.zero_grad()
        (teacher + rollout).backward()
        optimiser.step()
        if step % 250 == 0 or step == config.train_steps - 1:
            model.eval()
            with torch.no_grad():
                val = [float(v) for v in losses(model, *held)]
            model.train()
            history.append(
                {
                    "step": step,
                    "seconds": round(elapsed, 1),
                    "teacher": teacher.item(),
                    "rollout": rollout.item(),
                    "held_out": val,
                }
            )
            log(
                f"step {step} ({elapsed:.0f} s): train {teacher.item():.4f}/{rollout.item():.4f}, "
                f"held out {val[0]:.4f}/{val[1]:.4f}"
            )
    fold_standardisation(model.action_encoder, action_mean, action_std)
    fold_standardisation(model.state_encoder, state_mean, state_std)
    summary = {
        "config": asdict(config),
        "predictor": asdict(cfg),
        "parameters": sum(p.numel() for p in model.parameters()),
        "data_seconds": round(data_s, 1),
        "train_seconds": round(time.monotonic() - train_start, 1),
        "stopped_early": stopped_early,
        "input_standardisation": {
            "action_mean": action_mean.tolist(),
            "action_std": action_std.tolist(),
            "state_mean": state_mean.tolist(),
            "state_std": state_std.tolist(),
        },
        "steps_done": step if stopped_early else config.train_steps,
        "history": history,
        "machine": "2 CPU cores, shared with other sessions",
    }
    return model.eval(), summary


def main(argv: list[str] | None = None) -> int:
    """Console script: train and export into --out (world_model.yaml, encoder.onnx, predictor.onnx, summary)."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="train_world_model", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("vljepa_ros/models/tinyworld_ac"))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--train-steps", type=int, default=defaults.train_steps)
    parser.add_argument("--trajectories", type=int, default=defaults.trajectories)
    parser.add_argument("--max-minutes", type=float, default=defaults.max_minutes)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--embed-dim", type=int, default=defaults.embed_dim)
    parser.add_argument("--depth", type=int, default=defaults.depth)
    args = parser.parse_args(argv)
    config = TrainConfig(
        seed=args.seed,
        train_steps=args.train_steps,
        trajectories=args.trajectories,
        max_minutes=args.max_minutes,
        threads=args.threads,
        batch_size=args.batch_size,
        embed_dim=args.embed_dim,
        depth=args.depth,
    )
    model, summary = train(config)
    encoder = bundled_encoder()
    path = export_ac_with_onnx_encoder(
        encoder.path, encoder.frames, encoder.token_range, model, args.out, model_id="vjepa2-ac-tinyworld"
    )
    (args.out / "training_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
