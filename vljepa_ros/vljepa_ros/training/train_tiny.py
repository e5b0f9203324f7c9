"""`train_tiny`: train the bundled tiny VL-JEPA on the tiny world and export it as the default model.

The X-encoder (V-JEPA 2 architecture, tiny config) and the predictor (VL-JEPA architecture, tiny config) are
trained together, from scratch, to predict the frozen Y-encoder's (all-MiniLM-L6-v2, 384-d) embedding of the
ground-truth text, with a bidirectional InfoNCE loss. Two query types: "describe the scene" on scene clips
(target: the caption) and "what changed" on transition clips (target: the action), the latter with the two
states concatenated in time as in the paper's WorldPrediction-WM setting.

Clips are generated on the fly (clip i of the run is a pure function of the seed and i), preprocessed by the
runtime's `preprocess_clip`, so training and inference cannot drift apart. The weights are a deterministic
function of the seed unless the `max_minutes` safety stop ends the run early (it says so). One command, CPU
only, about 15 minutes on this 2-core machine:

    train_tiny --out vljepa_ros/models/tinyworld
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vljepa_ros.export.model import clip_spec_for, export_model
from vljepa_ros.runtime.query_tokenizer import QueryTokenizer, build_vocab
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.tiny_world.vocabulary import action_bank, caption_bank
from vljepa_ros.torch_models.text_encoder import TorchTextEncoder
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config
from vljepa_ros.torch_models.vljepa_predictor import VLJepaPredictor, predictor_config
from vljepa_ros.training.data import scene_inputs, transition_inputs

DEFAULT_QUERIES = {"caption": "describe the scene", "transition": "what changed"}
# Paraphrases seen in training, so a user's wording close to the defaults lands on the same behaviour.
QUERY_PARAPHRASES = {
    "caption": ("describe the scene", "what is in the scene", "what do you see"),
    "transition": ("what changed", "what happened", "which action happened"),
}
EVAL_SEED_OFFSET = 1_000_003  # validation clips come from another seed than any training clip
# The Y-encoder puts captions that differ only in which colour goes with which shape at cosine ~0.998, so the
# temperature must be allowed far below CLIP's 0.01 for such pairs to get distinct logits.
MAX_LOGIT_SCALE = 1000.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; validated on construction."""

    seed: int = 0
    steps: int = 2600
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 60
    # One intra-op thread: on a small machine shared with other jobs, OpenMP threads spin on each other
    # (measured in docs/benchmarks.md).
    threads: int = 1
    frames: int = 8
    crop: int = 64
    patch: int = 8
    tubelet: int = 4  # half the tokens of V-JEPA's 2; each half of a transition clip is one tubelet
    embed_dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_dim: int = 256
    predictor_dim: int = 64
    predictor_depth: int = 2
    predictor_heads: int = 4
    predictor_kv_heads: int = 2
    max_query_tokens: int = 16
    frame_rate_hz: float = 4.0
    eval_every: int = 200
    eval_clips: int = 96
    max_minutes: float = 28.0  # > 0: stop early (logged) when the wall-clock budget is spent
    transition_fraction: float = 0.62  # share of each batch that is transition clips (the harder task)
    queries: dict = field(default_factory=lambda: dict(DEFAULT_QUERIES))

    def __post_init__(self):
        for name in (
            "steps",
            "batch_size",
            "threads",
            "frames",
            "crop",
            "patch",
            "tubelet",
            "embed_dim",
            "depth",
            "heads",
            "mlp_dim",
            "predictor_dim",
            "predictor_depth",
            "eval_every",
            "eval_clips",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.transition_fraction < 1:
            raise ValueError(f"transition_fraction must be in (0, 1), got {self.transition_fraction}")
        if not 1 <= round(self.batch_size * self.transition_fraction) < self.batch_size:
            raise ValueError(f"batch_size {self.batch_size} is too small to hold scenes and transitions")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def build_models(cfg: TrainConfig, vocab_size: int) -> tuple[VJepa2Encoder, VLJepaPredictor]:
    """The tiny encoder and predictor, with the project's model classes."""
    encoder = VJepa2Encoder(
        encoder_config(
            "tiny",
            embed_dim=cfg.embed_dim,
            depth=cfg.depth,
            num_heads=cfg.heads,
            mlp_dim=cfg.mlp_dim,
            patch_size=cfg.patch,
            tubelet_size=cfg.tubelet,
            num_frames=cfg.frames,
            img_size=cfg.crop,
        )
    )
    predictor = VLJepaPredictor(
        predictor_config(
            "tiny",
            visual_dim=cfg.embed_dim,
            hidden_dim=cfg.predictor_dim,
            depth=cfg.predictor_depth,
            num_heads=cfg.predictor_heads,
            num_kv_heads=cfg.predictor_kv_heads,
            mlp_dim=2 * cfg.predictor_dim,
            vocab_size=vocab_size,
            max_query_tokens=cfg.max_query_tokens,
            embedding_dim=384,
        )
    )
    return encoder, predictor


def bidirectional_info_nce(
    predicted: torch.Tensor, target_index: torch.Tensor, bank: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE between predicted embeddings and their target texts.

    clip -> text: softmax over every text of the bank (all other texts are negatives).
    text -> clip: for each distinct target text in the batch, softmax over the batch's predictions; clips with
    the same text are all positives (a closed vocabulary repeats texts within a batch).
    """
    predicted = F.normalize(predicted, dim=-1)
    logits = logit_scale * predicted @ bank.T
    clip_to_text = F.cross_entropy(logits, target_index)
    texts, inverse = torch.unique(target_index, return_inverse=True)
    text_logits = logits[:, texts].T  # (U, B)
    positive = inverse[None, :] == torch.arange(len(texts))[:, None]
    log_prob = text_logits.log_softmax(dim=1)
    text_to_clip = -torch.logsumexp(log_prob.masked_fill(~positive, float("-inf")), dim=1).mean()
    return (clip_to_text + text_to_clip) / 2


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


class TinyVLJepa(torch.nn.Module):
    """Encoder + predictor + the InfoNCE temperature, trained together."""

    def __init__(self, encoder: VJepa2Encoder, predictor: VLJepaPredictor):
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.05)))

    def forward(self, clips: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.encoder(clips), ids, mask)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp()


def _query_batch(
    tokenizer: QueryTokenizer, kind: str, count: int, rng: np.random.Generator, default: str
) -> tuple[torch.Tensor, torch.Tensor]:
    # Half the clips get the default query, the rest a paraphrase.
    choices = QUERY_PARAPHRASES[kind]
    texts = [default if rng.random() < 0.5 else choices[int(rng.integers(len(choices)))] for _ in range(count)]
    ids, mask = tokenizer.encode_batch(texts)
    return torch.from_numpy(ids), torch.from_numpy(mask)


@torch.no_grad()
def validate(
    model: TinyVLJepa,
    cfg: TrainConfig,
    tokenizer: QueryTokenizer,
    banks: dict[str, torch.Tensor],
    texts: dict[str, list[str]],
) -> dict[str, float]:
    """Top-1 caption and action retrieval over the full banks, and 4-way action accuracy, on held-out clips."""
    model.eval()
    clip = clip_spec_for(model.encoder, cfg.frame_rate_hz)
    seed = cfg.seed + EVAL_SEED_OFFSET
    scenes = scene_inputs(seed, 0, cfg.eval_clips, clip, frame_size=(320, 240))
    moves = transition_inputs(seed, 0, cfg.eval_clips, clip, frame_size=(320, 240))
    out = {}
    for name, batch, query, bank in (
        ("caption", scenes.clips, cfg.queries["caption"], "captions"),
        ("action", moves.clips, cfg.queries["transition"], "actions"),
    ):
        ids, mask = tokenizer.encode_batch([query] * len(batch))
        pred = F.normalize(model(torch.from_numpy(batch), torch.from_numpy(ids), torch.from_numpy(mask)), dim=-1)
        scores = pred @ banks[bank].T
        index = {t: i for i, t in enumerate(texts[bank])}
        truth = scenes.texts if name == "caption" else moves.actions
        out[f"{name}_top1"] = float(np.mean([texts[bank][int(s.argmax())] == t for s, t in zip(scores, truth)]))
        if name == "action":
            wins = [all(s[index[t]] > s[index[d]] for d in ds) for s, t, ds in zip(scores, truth, moves.distractors)]
            out["action_4way"] = float(np.mean(wins))
    model.train()
    return out


def train(cfg: TrainConfig, out_dir: Path, log=print) -> dict:
    """Train, export to `out_dir` (ONNX + manifest + banks) and return the run summary (also saved as JSON)."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng([cfg.seed, 99])
    started = time.monotonic()

    texts = {"captions": caption_bank(), "actions": action_bank()}
    log(f"embedding {len(texts['captions'])} captions and {len(texts['actions'])} actions with the Y-encoder")
    text_encoder = TorchTextEncoder()
    vectors = {name: text_encoder.encode(items) for name, items in texts.items()}
    del text_encoder
    banks = {name: torch.from_numpy(v) for name, v in vectors.items()}
    bank_index = {name: {t: i for i, t in enumerate(items)} for name, items in texts.items()}

    vocab = build_vocab([*cfg.queries.values(), *(q for qs in QUERY_PARAPHRASES.values() for q in qs)])
    tokenizer = QueryTokenizer(vocab, cfg.max_query_tokens)
    encoder, predictor = build_models(cfg, len(vocab))
    model = TinyVLJepa(encoder, predictor)
    clip = clip_spec_for(encoder, cfg.frame_rate_hz)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 and n != "log_scale"]
    # The temperature must fall by orders of magnitude within a short run: it gets a larger step.
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay, "lr_mult": 1.0},
            {"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0},
            {"params": [model.log_scale], "weight_decay": 0.0, "lr_mult": 10.0},
        ],
        lr=cfg.lr,
    )
    params = sum(p.numel() for p in model.parameters())
    log(
        f"model: encoder {sum(p.numel() for p in encoder.parameters()) / 1e6:.2f} M params, predictor "
        f"{sum(p.numel() for p in predictor.parameters()) / 1e6:.2f} M; clip {clip.frames}x{clip.crop_size}^2, "
        f"{clip.num_tokens} tokens; {cfg.steps} steps of {cfg.batch_size}"
    )

    n_moves = round(cfg.batch_size * cfg.transition_fraction)
    n_scenes = cfg.batch_size - n_moves
    history, data_s, step_s = [], 0.0, 0.0
    step = 0
    for step in range(cfg.steps):
        if cfg.max_minutes > 0 and time.monotonic() - started > 60 * cfg.max_minutes:
            log(f"stopping early at step {step}: the {cfg.max_minutes} min budget is spent")
            break
        t0 = time.monotonic()
        scenes = scene_inputs(cfg.seed, step * n_scenes, n_scenes, clip)
        moves = transition_inputs(cfg.seed, step * n_moves, n_moves, clip)
        t1 = time.monotonic()
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg) * group["lr_mult"]
        clips = torch.from_numpy(np.concatenate([scenes.clips, moves.clips]))
        ids_c, mask_c = _query_batch(tokenizer, "caption", n_scenes, rng, cfg.queries["caption"])
        ids_t, mask_t = _query_batch(tokenizer, "transition", n_moves, rng, cfg.queries["transition"])
        predicted = model(clips, torch.cat([ids_c, ids_t]), torch.cat([mask_c, mask_t]))
        caption_target = torch.tensor([bank_index["captions"][t] for t in scenes.texts])
        action_target = torch.tensor([bank_index["actions"][t] for t in moves.actions])
        loss_caption = bidirectional_info_nce(
            predicted[:n_scenes], caption_target, banks["captions"], model.logit_scale
        )
        loss_action = bidirectional_info_nce(predicted[n_scenes:], action_target, banks["actions"], model.logit_scale)
        loss = loss_caption + loss_action
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        data_s += t1 - t0
        step_s += time.monotonic() - t1
        if step % 25 == 0:
            log(
                f"step {step:5d} loss {loss.item():.3f} (caption {loss_caption.item():.3f}, action "
                f"{loss_action.item():.3f}) scale {model.logit_scale.item():.1f} lr {_lr_at(step, cfg):.2e} "
                f"[{time.monotonic() - started:.0f} s: data {data_s:.0f} s, model {step_s:.0f} s]"
            )
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            metrics = validate(model, cfg, tokenizer, banks, texts)
            history.append({"step": step + 1, **metrics})
            log(f"validation at step {step + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))

    train_s = time.monotonic() - started
    model.eval()
    export_banks = {name: TextBank.from_embeddings(texts[name], vectors[name]) for name in texts}
    manifest = export_model(
        encoder,
        predictor,
        list(vocab),
        out_dir,
        banks=export_banks,
        queries=cfg.queries,
        model_id="vljepa-tinyworld",
        frame_rate_hz=cfg.frame_rate_hz,
        max_tokens=cfg.max_query_tokens,
        normalise_in_graph=True,
        log=log,
    )
    summary = {
        "config": {k: v for k, v in asdict(cfg).items()},
        "steps_done": step + 1,
        "train_seconds": round(train_s, 1),
        "data_seconds": round(data_s, 1),
        "model_seconds": round(step_s, 1),
        "parameters": params,
        "validation": history,
        "torch_threads": cfg.threads,
    }
    (Path(out_dir) / "training_summary.json").write_text(json.dumps(summary, indent=1))
    log(f"trained in {train_s / 60:.1f} min; exported {manifest}")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `train_tiny` console script."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="train_tiny", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("vljepa_ros/models/tinyworld"))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=defaults.max_minutes,
        help="stop early when this much wall-clock time is spent (0: never)",
    )
    args = parser.parse_args(argv)
    try:
        cfg = TrainConfig(
            seed=args.seed,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            threads=args.threads,
            eval_every=args.eval_every,
            max_minutes=args.max_minutes,
        )
    except ValueError as error:
        print(f"train_tiny: {error}", file=sys.stderr)
        return 2
    train(cfg, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
