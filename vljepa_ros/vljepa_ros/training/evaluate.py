"""`evaluate_tiny`: accuracy of an exported model on freshly generated held-out tiny-world clips (no torch).

Runs the ONNX model through `VLJepaRuntime` exactly as the nodes do and prints:
- caption retrieval top-1: "describe the scene" on a scene clip -> nearest caption of the model's bank;
- action retrieval top-1 over the whole action bank, and the WorldPrediction-WM-style 4-way accuracy:
  the transition clip (initial state, then final state) -> nearest of the true action and three plausible
  wrong ones;
- the same for a trivial baseline that has no model: nearest neighbour on mean colours (a 4x4 grid of the
  centre crop; for transitions also its change between the states) among labelled reference clips generated
  from another seed. Chance levels are printed too.

    evaluate_tiny --seed 777 --scenes 300 --transitions 300 --json eval.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vljepa_ros.runtime.manifest import ClipSpec, ManifestError
from vljepa_ros.runtime.preprocessing import resize_and_crop
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
from vljepa_ros.tiny_world.clips import clip_rng, sample_scene_clip, sample_transition_clip

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "models" / "tinyworld" / "manifest.yaml"
REFERENCE_SEED_OFFSET = 50_000  # the baseline's labelled reference clips come from yet another seed
GRID = 4


@dataclass(frozen=True)
class EvalSet:
    """Held-out clips of one seed: raw frames and ground truth."""

    scene_frames: list[np.ndarray]
    captions: list[str]
    before_frames: list[np.ndarray]
    after_frames: list[np.ndarray]
    actions: list[str]
    candidates: list[tuple[str, ...]]  # true action first, then three distractors


def generate_eval_set(
    seed: int, scenes: int, transitions: int, clip: ClipSpec, frame_size: tuple[int, int] = (320, 240)
) -> EvalSet:
    """Scene and transition clips `0..n-1` of `seed`, with the model's frame count and rate."""
    width, height = frame_size
    scene_frames, captions, befores, afters, actions, candidates = [], [], [], [], [], []
    for index in range(scenes):
        sample = sample_scene_clip(
            clip_rng(seed, index, "scene"), frames=clip.frames, rate_hz=clip.frame_rate_hz, width=width, height=height
        )
        scene_frames.append(sample.frames)
        captions.append(sample.caption)
    for index in range(transitions):
        sample = sample_transition_clip(
            clip_rng(seed, index, "transition"), frames_per_state=clip.frames // 2, width=width, height=height
        )
        befores.append(sample.before_frames)
        afters.append(sample.after_frames)
        actions.append(sample.action)
        candidates.append((sample.action, *sample.distractors))
    return EvalSet(scene_frames, captions, befores, afters, actions, candidates)


def _batched(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def model_scores(runtime: VLJepaRuntime, data: EvalSet, batch: int = 16) -> dict:
    """Caption top-1, action top-1 and 4-way action accuracy of the model (ONNX Runtime)."""
    captions, actions = runtime.load_bank("captions"), runtime.load_bank("actions")
    predicted_captions = []
    for frames in _batched(data.scene_frames, batch):
        tokens = runtime.encode(np.stack([runtime.prepare_clip(f) for f in frames]))
        for embedding in runtime.predict_default(tokens, "caption"):
            predicted_captions.append(captions.top_k(embedding, 1)[0][0])
    embeddings = []
    pairs = list(zip(data.before_frames, data.after_frames))
    for chunk in _batched(pairs, batch):
        tokens = runtime.encode(np.stack([runtime.transition_clip(b, a) for b, a in chunk]))
        embeddings.append(runtime.predict_default(tokens, "transition"))
    embeddings = np.concatenate(embeddings) if embeddings else np.zeros((0, actions.dim), np.float32)
    index = {text: i for i, text in enumerate(actions.texts)}
    missing = sorted({t for c in data.candidates for t in c if t not in index})
    if missing:
        raise ManifestError(f"the model's action bank lacks {len(missing)} tiny-world actions, e.g. {missing[0]!r}")
    similarity = actions.similarities(embeddings) if len(embeddings) else np.zeros((0, len(actions)))
    top1 = [actions.texts[int(s.argmax())] for s in similarity]
    four_way = [
        candidates[int(np.argmax([s[index[t]] for t in candidates]))]
        for s, candidates in zip(similarity, data.candidates)
    ]
    return _scores(predicted_captions, top1, four_way, data)


def _scores(captions: list[str], top1: list[str], four_way: list[str], data: EvalSet) -> dict:
    def accuracy(got, want):
        return float(np.mean([g == w for g, w in zip(got, want)])) if want else float("nan")

    return {
        "caption_top1": accuracy(captions, data.captions),
        "action_top1": accuracy(top1, data.actions),
        "action_4way": accuracy(four_way, data.actions),
    }


def colour_grid(frames: np.ndarray, clip: ClipSpec) -> np.ndarray:
    """Mean RGB over a GRID x GRID grid of the model's centre crop, averaged over frames -> (GRID*GRID*3,)."""
    crops = np.stack([resize_and_crop(f, clip) for f in frames]).astype(np.float32)
    cell = clip.crop_size // GRID
    grid = crops.mean(axis=0)[: cell * GRID, : cell * GRID].reshape(GRID, cell, GRID, cell, 3).mean(axis=(1, 3))
    return grid.reshape(-1) / 255.0


def baseline_scores(data: EvalSet, reference: EvalSet, clip: ClipSpec, rng: np.random.Generator) -> dict:
    """Nearest mean-colour neighbour among labelled reference clips (no learning, no model).

    Scenes: the caption of the nearest reference scene. Transitions: feature = colours before, and their change;
    top-1 = the action of the nearest reference transition; 4-way = the candidate whose nearest reference
    example is closest (candidates never seen in the reference set rank last, ties broken at random).
    """
    ref_scene = np.stack([colour_grid(f, clip) for f in reference.scene_frames])
    scene = np.stack([colour_grid(f, clip) for f in data.scene_frames])
    nearest = _pairwise(scene, ref_scene).argmin(axis=1)
    captions = [reference.captions[i] for i in nearest]

    def transition_feature(before, after):
        b, a = colour_grid(before, clip), colour_grid(after, clip)
        return np.concatenate([b, 3.0 * (a - b)])

    ref_move = np.stack([transition_feature(b, a) for b, a in zip(reference.before_frames, reference.after_frames)])
    move = np.stack([transition_feature(b, a) for b, a in zip(data.before_frames, data.after_frames)])
    distance = _pairwise(move, ref_move)
    top1 = [reference.actions[i] for i in distance.argmin(axis=1)]
    labels = np.array(reference.actions)
    four_way = []
    for row, candidates in zip(distance, data.candidates):
        best = [row[labels == text].min() if np.any(labels == text) else np.inf for text in candidates]
        best = np.array(best) + rng.random(len(candidates)) * 1e-9  # random tie-break
        four_way.append(candidates[int(np.argmin(best))])
    return _scores(captions, top1, four_way, data)


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]


def evaluate(
    manifest: Path | str = DEFAULT_MANIFEST,
    seed: int = 777,
    scenes: int = 300,
    transitions: int = 300,
    reference_clips: int = 1000,
    frame_size: tuple[int, int] = (320, 240),
    log=print,
) -> dict:
    """Model and baseline accuracies on held-out clips of `seed`; returns the JSON-ready result."""
    started = time.monotonic()
    runtime = VLJepaRuntime.from_manifest(manifest, providers=("cpu",))
    clip = runtime.manifest.clip
    data = generate_eval_set(seed, scenes, transitions, clip, frame_size)
    model = model_scores(runtime, data)
    result = {
        "manifest": str(manifest),
        "model_id": runtime.manifest.model_id,
        "model_version": runtime.manifest.version,
        "seed": seed,
        "scenes": scenes,
        "transitions": transitions,
        "frame_size": list(frame_size),
        "caption_bank_size": len(runtime.load_bank("captions")),
        "action_bank_size": len(runtime.load_bank("actions")),
        "model": model,
        "chance": {
            "caption_top1": 1 / len(runtime.load_bank("captions")),
            "action_top1": 1 / len(runtime.load_bank("actions")),
            "action_4way": 0.25,
        },
    }
    if reference_clips > 0:
        reference = generate_eval_set(seed + REFERENCE_SEED_OFFSET, reference_clips, reference_clips, clip, frame_size)
        result["baseline"] = baseline_scores(data, reference, clip, np.random.default_rng(seed))
        result["baseline_reference_clips"] = reference_clips
    result["seconds"] = round(time.monotonic() - started, 1)
    log(format_result(result))
    return result


def format_result(result: dict) -> str:
    """The printed table: one row per metric, model vs baseline vs chance."""
    rows = [
        f"held-out seed {result['seed']}: {result['scenes']} scene clips, {result['transitions']} transition "
        f"clips at {result['frame_size'][0]}x{result['frame_size'][1]}; model {result['model_id']} "
        f"{result['model_version']}",
        f"{'metric':<16}{'model':>8}{'baseline':>10}{'chance':>8}",
    ]
    for key, label in (
        ("caption_top1", "caption top-1"),
        ("action_top1", "action top-1"),
        ("action_4way", "action 4-way"),
    ):
        baseline = result.get("baseline", {}).get(key)
        rows.append(
            f"{label:<16}{result['model'][key]:>8.3f}"
            f"{(f'{baseline:.3f}' if baseline is not None else '-'):>10}{result['chance'][key]:>8.3f}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `evaluate_tiny` console script."""
    parser = argparse.ArgumentParser(prog="evaluate_tiny", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--seed", type=int, default=777, help="held-out seed (training uses 0 and 1000003)")
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--transitions", type=int, default=300)
    parser.add_argument(
        "--reference-clips",
        type=int,
        default=1000,
        help="labelled clips per kind for the mean-colour baseline (0: skip the baseline)",
    )
    parser.add_argument("--frame-size", default="320x240", help="WIDTHxHEIGHT of the generated frames")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.frame_size.lower().split("x"))
        if min(args.scenes, args.transitions) < 1 or args.reference_clips < 0:
            raise ValueError("--scenes and --transitions must be >= 1, --reference-clips >= 0")
        result = evaluate(
            args.manifest, args.seed, args.scenes, args.transitions, args.reference_clips, (width, height)
        )
    except (ValueError, ManifestError, FileNotFoundError) as error:
        print(f"evaluate_tiny: {error}", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
