"""`evaluate_world_model`: planning success and surprise of a world model folder on the push world (no torch).

Planning: held-out (start, goal) pairs, the goal reached from the start by a few random push actions (so it is
reachable). Each method gets `--budget` steps, observing the rendered frame before each: CEM (plan, execute the
first action, re-plan), a greedy one-step planner (the best of the same number of single actions by predicted
cost) and random actions. Success: every body (agent and boxes) within `--tolerance` of its goal position, in the
world's own state, at any step within the budget.

Surprise: held-out transitions, each observed twice: as commanded, and with a box teleported at the same time.
Score: the L1 distance between the predicted and observed tokens; ROC AUC of teleported vs commanded.

Ranking (always; `--ranking-only` skips the rest): from each pair's start, the planners' candidate single actions
ranked by predicted cost against their ranking by the cost of the frames they really lead to and by the true
state error (Spearman, mean over pairs), and how far the candidates' predictions (and true next tokens) spread
around their mean: a predictor that ignores the action has a spread near 0.

`--demo PNG` draws the first CEM episode that reached its goal: start, each step, goal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from vljepa_ros.runtime.onnx_session import SessionConfig
from vljepa_ros.tiny_world.push_world import (
    MAX_STEP,
    PushState,
    ac_action,
    ac_state,
    max_body_error,
    random_push_actions,
    random_state,
    reached,
    render,
    step,
    teleport,
)
from vljepa_ros.world_model.cem import CEMConfig
from vljepa_ros.world_model.model import WorldModel, preprocess_image, token_distance
from vljepa_ros.world_model.planning import Context, plan_to_goal, rollout_cost

PLANAR = CEMConfig(max_translation=MAX_STEP, translation_dims=2, sample_gripper=False)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings; `cem` is the notebooks' CEM with the push world's step limit and 2-D actions."""

    pairs: int = 20
    goal_steps: int = 3
    budget: int = 6
    tolerance: float = 0.05
    transitions: int = 200
    seed: int = 12345
    cem: CEMConfig = PLANAR


def observe_all(model: WorldModel, states) -> np.ndarray:
    """The encoder's tokens of each state's rendered frame, in one batch."""
    return model.encode(np.stack([preprocess_image(render(state), model.manifest) for state in states]))


def observe(model: WorldModel, state: PushState) -> np.ndarray:
    return observe_all(model, [state])[0]


def random_single_actions(rng, samples: int) -> np.ndarray:
    """(samples, 1, 7) one-step action sequences with uniform pushes in the first two dims, zeros elsewhere."""
    candidates = np.zeros((samples, 1, 7), np.float32)
    candidates[:, 0, :2] = rng.uniform(-MAX_STEP, MAX_STEP, (samples, 2))
    return candidates


def roc_auc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    wins = (positives[:, None] > negatives[None, :]).mean() + 0.5 * (positives[:, None] == negatives[None, :]).mean()
    return float(wins)


def run_episode(model: WorldModel, start: PushState, goal: PushState, method: str, config: EvalConfig, rng) -> dict:
    """One planning episode; returns success, steps used, the final error and the states visited."""
    goal_tokens = observe(model, goal)
    state, visited = start, [start]
    for _ in range(config.budget):
        context = Context(observe(model, state)[None], ac_state(state)[None], np.zeros((0, 7), np.float32))
        if method == "random":
            delta = rng.uniform(-MAX_STEP, MAX_STEP, 2)
        elif method == "oracle_greedy":  # the true next frames scored: what the cost allows a perfect predictor
            candidates = rng.uniform(-MAX_STEP, MAX_STEP, (config.cem.samples, 2))
            costs = token_distance(observe_all(model, [step(state, c) for c in candidates]), goal_tokens[None])
            delta = candidates[int(np.argmin(costs))]
        elif method == "greedy":
            candidates = random_single_actions(rng, config.cem.samples)
            costs = rollout_cost(model, context, goal_tokens, config.cem.max_batch)(candidates)
            delta = candidates[int(np.argmin(costs)), 0, :2]
        else:
            delta = plan_to_goal(model, context, goal_tokens, config.cem, rng).first_action[:2]
        state = step(state, ac_action(delta))
        visited.append(state)
        if reached(state, goal, config.tolerance):
            break
    return {
        "success": reached(state, goal, config.tolerance),
        "steps": len(visited) - 1,
        "error": max_body_error(state, goal),
        "visited": visited,
    }


def planning_pairs(config: EvalConfig) -> list[tuple[PushState, PushState]]:
    """The held-out (start, goal) pairs: each goal `goal_steps` random push actions from its start."""
    rng = np.random.default_rng(config.seed)
    pairs = []
    while len(pairs) < config.pairs:
        start = random_state(rng)
        goal = start
        for delta in random_push_actions(start, config.goal_steps, rng):
            goal = step(goal, delta)
        if not reached(start, goal, config.tolerance):  # a pair already solved at the start says nothing
            pairs.append((start, goal))
    return pairs


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (no ties expected: continuous costs)."""
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def evaluate_ranking(model: WorldModel, config: EvalConfig) -> dict:
    """How the predicted cost ranks one step's candidate actions from each pair's start, against the cost of the
    frames they really lead to and against the true state error; and how far the action moves the prediction."""
    rng = np.random.default_rng(config.seed + 3)
    predicted_vs_true, predicted_vs_state, true_vs_state, spread_predicted, spread_true = [], [], [], [], []
    for start, goal in planning_pairs(config):
        goal_tokens = observe(model, goal)
        candidates = random_single_actions(rng, config.cem.samples)
        after = [step(start, c[0]) for c in candidates]
        true_tokens = observe_all(model, after)
        context = Context(observe(model, start)[None], ac_state(start)[None], np.zeros((0, 7), np.float32))
        predicted_tokens = model.rollout(
            np.broadcast_to(context.tokens, (len(after), *context.tokens.shape)),
            np.broadcast_to(context.states, (len(after), *context.states.shape)),
            candidates,
        )[:, 0]
        predicted = token_distance(predicted_tokens, goal_tokens[None])
        true = token_distance(true_tokens, goal_tokens[None])
        state_error = np.array([np.linalg.norm(s.vector() - goal.vector()) for s in after])
        predicted_vs_true.append(spearman(predicted, true))
        predicted_vs_state.append(spearman(predicted, state_error))
        true_vs_state.append(spearman(true, state_error))
        spread_predicted.append(float(token_distance(predicted_tokens, predicted_tokens.mean(0, keepdims=True)).mean()))
        spread_true.append(float(token_distance(true_tokens, true_tokens.mean(0, keepdims=True)).mean()))
    return {
        "spearman_predicted_vs_true_cost": float(np.mean(predicted_vs_true)),
        "spearman_predicted_cost_vs_state_error": float(np.mean(predicted_vs_state)),
        "spearman_true_cost_vs_state_error": float(np.mean(true_vs_state)),
        "predicted_spread_over_actions": float(np.mean(spread_predicted)),
        "true_spread_over_actions": float(np.mean(spread_true)),
        "pairs": config.pairs,
        "candidates": config.cem.samples,
    }


def evaluate_planning(
    model: WorldModel, config: EvalConfig, methods=("cem", "greedy", "random"), log=print
) -> tuple[dict, list]:
    pairs = planning_pairs(config)
    starts = [max_body_error(s, g) for s, g in pairs]
    results, demo = {"start": {"mean_error": float(np.mean(starts))}}, []
    for method in methods:
        method_rng = np.random.default_rng(config.seed + 1)
        start_s = time.monotonic()
        episodes = [run_episode(model, s, g, method, config, method_rng) for s, g in pairs]
        seconds = time.monotonic() - start_s
        successes = [e["success"] for e in episodes]
        results[method] = {
            "success_rate": float(np.mean(successes)),
            "successes": int(np.sum(successes)),
            "mean_final_error": float(np.mean([e["error"] for e in episodes])),
            "mean_steps": float(np.mean([e["steps"] for e in episodes])),
            "seconds": round(seconds, 1),
        }
        log(f"{method}: {results[method]}")
        if method == "cem":
            demo = next(([*e["visited"], g] for e, (_, g) in zip(episodes, pairs, strict=True) if e["success"]), [])
    return results, demo


def evaluate_surprise(model: WorldModel, config: EvalConfig) -> dict:
    rng = np.random.default_rng(config.seed + 2)
    commanded, teleported = [], []
    for _ in range(config.transitions):
        state = random_state(rng)
        delta = random_push_actions(state, 1, rng)[0]
        after = step(state, delta)
        context = Context(observe(model, state)[None], ac_state(state)[None], np.zeros((0, 7), np.float32))
        predicted = model.predict_next(context.tokens[None], ac_action(delta)[None, None], context.states[None])[0]
        commanded.append(float(token_distance(predicted, observe(model, after))))
        teleported.append(float(token_distance(predicted, observe(model, teleport(after, rng)))))
    commanded, teleported = np.array(commanded), np.array(teleported)
    return {
        "roc_auc": roc_auc(commanded, teleported),
        "commanded_mean": float(commanded.mean()),
        "teleported_mean": float(teleported.mean()),
        "transitions": config.transitions,
    }


def draw_demo(states: list[PushState], path: Path) -> None:
    """A strip of frames (start, each step, goal last, framed in green), 3x enlarged."""
    frames = [render(s) for s in states]
    frames[-1] = cv2.copyMakeBorder(frames[-1][2:-2, 2:-2], 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(0, 200, 0))
    strip = np.concatenate([np.pad(f, ((0, 0), (0, 4), (0, 0)), constant_values=255) for f in frames], axis=1)
    strip = cv2.resize(strip, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))


def main(argv: list[str] | None = None) -> int:
    """Console script: evaluate a world model folder, write the JSON (and the demo strip)."""
    defaults = EvalConfig()
    parser = argparse.ArgumentParser(prog="evaluate_world_model", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("vljepa_ros/models/tinyworld_ac"))
    parser.add_argument("--out", type=Path, required=True, help="JSON with the planning and surprise numbers")
    parser.add_argument("--demo", type=Path, help="PNG strip of one CEM episode that reached its goal")
    parser.add_argument("--pairs", type=int, default=defaults.pairs)
    parser.add_argument("--transitions", type=int, default=defaults.transitions)
    parser.add_argument("--samples", type=int, default=defaults.cem.samples)
    parser.add_argument("--iterations", type=int, default=defaults.cem.iterations)
    parser.add_argument(
        "--methods",
        default="cem,greedy,random",
        help="comma-separated: cem, greedy, random, oracle_greedy (greedy on the true next frames)",
    )
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--skip-surprise", action="store_true")
    parser.add_argument(
        "--ranking-only",
        action="store_true",
        help="only rank one step's candidate actions per pair: predicted vs true cost (fast; no episodes)",
    )
    args = parser.parse_args(argv)
    config = replace(
        defaults,
        pairs=args.pairs,
        transitions=args.transitions,
        cem=replace(PLANAR, samples=args.samples, iterations=args.iterations, topk=min(PLANAR.topk, args.samples)),
    )
    model = WorldModel.load(args.model, SessionConfig(providers=("cpu",), intra_op_threads=args.threads))
    start = time.monotonic()
    ranking = evaluate_ranking(model, config)
    print(f"ranking: {ranking}")
    surprise = None if args.skip_surprise or args.ranking_only else evaluate_surprise(model, config)
    print(f"surprise: {surprise}")
    planning, demo = ({}, []) if args.ranking_only else evaluate_planning(model, config, tuple(args.methods.split(",")))
    result = {
        "model": model.manifest.model_id,
        "config": {**asdict(config), "cem": asdict(config.cem)},
        "ranking": ranking,
        "planning": planning,
        "surprise": surprise,
        "seconds": round(time.monotonic() - start, 1),
        "machine": "2 CPU cores, shared with other sessions",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.demo and demo:
        draw_demo(demo, args.demo)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
