"""Export: PyTorch encoder + predictor (+ optional text encoder) -> ONNX files, banks and `manifest.yaml`.

The `export_model` console script: checkpoints or random init, through `export.model`, into one model folder.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from vljepa_ros.export.graphs import DEFAULT_OPSET
from vljepa_ros.export.model import (
    DEFAULT_QUERIES,
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    export_model,
    export_tiny_random,
)
from vljepa_ros.export.parity import ParityError
from vljepa_ros.runtime.query_tokenizer import build_vocab, read_vocab
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.torch_models.checkpoint import load_official_encoder, load_predictor
from vljepa_ros.torch_models.text_encoder import TextEncoderSource, minilm_source
from vljepa_ros.torch_models.vjepa2_encoder import ENCODER_PRESETS, VJepa2Encoder, encoder_config
from vljepa_ros.torch_models.vljepa_predictor import PREDICTOR_PRESETS, VLJepaPredictor, predictor_config


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="export_model", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--tiny-random", action="store_true", help="export the small random-weight test model and exit")
    p.add_argument("--encoder-checkpoint", type=Path, help="official V-JEPA 2 .pt file (default: random init)")
    p.add_argument("--checkpoint-key", help="entry holding the encoder (default: target_encoder, ema_encoder, encoder)")
    p.add_argument(
        "--encoder-preset",
        default="vit_l",
        choices=sorted(ENCODER_PRESETS),
        help="architecture for random init (ignored with --encoder-checkpoint)",
    )
    p.add_argument("--frames", type=int, help="clip frames T (default: preset's)")
    p.add_argument("--crop", type=int, help="crop size S (default: preset's)")
    p.add_argument(
        "--rope-interleaved",
        action="store_true",
        help="RoPE frequencies interleaved (V-JEPA 2.1 weights); default is the 2.0 tiled quirk",
    )
    p.add_argument("--predictor-checkpoint", type=Path, help="predictor file from training (default: random init)")
    p.add_argument("--predictor-preset", default="tiny", choices=sorted(PREDICTOR_PRESETS))
    p.add_argument("--embedding-dim", type=int, default=384, help="random predictor output dim")
    p.add_argument("--max-tokens", type=int, help="query length (default: predictor's max_query_tokens)")
    p.add_argument("--vocab", type=Path, help="query vocabulary file for a random predictor")
    p.add_argument("--bank", action="append", default=[], metavar="NAME=FILE.npz", help="text bank to ship")
    p.add_argument(
        "--text-encoder",
        action="store_true",
        help="also export the all-MiniLM-L6-v2 Y-encoder (text_encoder.onnx + tokenizer.json, ~90 MB)",
    )
    p.add_argument("--model-id", default="vljepa")
    p.add_argument("--frame-rate", type=float, default=4.0, help="clip frame rate in Hz")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument(
        "--tolerance",
        type=float,
        help=f"max abs error allowed in the parity check (default {FP32_TOLERANCE:g}, fp16 {FP16_TOLERANCE:g})",
    )
    p.add_argument("--fp16", action="store_true", help="fp16 weights/compute (I/O fp32, RoPE angles fp32)")
    p.add_argument(
        "--fused-preprocessing",
        metavar="HxW",
        help="encoder takes uint8 frames of this size (e.g. 480x640) and preprocesses in the graph",
    )
    p.add_argument(
        "--normalise-in-graph",
        action="store_true",
        help="encoder takes the uint8 centre crop; mean/std folded into its patch embedding (CPU nodes)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _build_encoder(args: argparse.Namespace) -> VJepa2Encoder:
    if args.encoder_checkpoint:
        return load_official_encoder(
            args.encoder_checkpoint,
            num_frames=args.frames or 16,
            img_size=args.crop or 256,
            rope_tiled_freqs=not args.rope_interleaved,
            key=args.checkpoint_key,
        )
    overrides = {"rope_tiled_freqs": not args.rope_interleaved}
    if args.frames:
        overrides["num_frames"] = args.frames
    if args.crop:
        overrides["img_size"] = args.crop
    return VJepa2Encoder(encoder_config(args.encoder_preset, **overrides)).eval()


def _build_predictor(args: argparse.Namespace, visual_dim: int) -> tuple[VLJepaPredictor, list[str]]:
    if args.predictor_checkpoint:
        return load_predictor(args.predictor_checkpoint)
    vocab = list(read_vocab(args.vocab)) if args.vocab else list(build_vocab(DEFAULT_QUERIES.values()))
    cfg = predictor_config(
        args.predictor_preset,
        visual_dim=visual_dim,
        embedding_dim=args.embedding_dim,
        vocab_size=max(len(vocab), PREDICTOR_PRESETS[args.predictor_preset].vocab_size),
    )
    return VLJepaPredictor(cfg).eval(), vocab


def _frame_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    height, sep, width = text.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"--fused-preprocessing: expected HxW such as 480x640, got {text!r}")
    return int(height), int(width)


def _text_encoder_source(args: argparse.Namespace) -> TextEncoderSource | None:
    if not args.text_encoder:
        return None
    return minilm_source()


def main(argv: Sequence[str] | None = None) -> int:
    """export_model: checkpoint(s) or random init -> encoder.onnx, predictor.onnx, manifest.yaml, query_vocab.txt."""
    args = _parse_args(argv)
    try:
        if args.tiny_random:
            path = export_tiny_random(args.out, args.seed, log=print)
        else:
            torch.manual_seed(args.seed)
            encoder = _build_encoder(args)
            predictor, vocab = _build_predictor(args, encoder.cfg.embed_dim)
            banks = {}
            for item in args.bank:
                name, _, file = item.partition("=")
                if not name or not file:
                    raise ValueError(f"--bank: expected NAME=FILE.npz, got {item!r}")
                banks[name] = TextBank.load(file)
            path = export_model(
                encoder,
                predictor,
                vocab,
                args.out,
                banks=banks,
                model_id=args.model_id,
                frame_rate_hz=args.frame_rate,
                max_tokens=args.max_tokens,
                opset=args.opset,
                tolerance=args.tolerance,
                text_encoder_source=_text_encoder_source(args),
                fp16=args.fp16,
                fused_frame_size=_frame_size(args.fused_preprocessing),
                normalise_in_graph=args.normalise_in_graph,
            )
    except (ParityError, ValueError, OSError) as err:
        print(f"export_model: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
