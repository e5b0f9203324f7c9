"""Export: PyTorch encoder + predictor (+ optional text encoder) -> ONNX files, banks and `manifest.yaml`.

The `export_model` console script: checkpoints or random init, through `export.model`, into one model folder;
with --open-vljepa, an open-vljepa best.pt and the folders it is used with, through `export.open_vljepa`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from vljepa_ros.export.export_check import check_export
from vljepa_ros.export.graphs import DEFAULT_OPSET
from vljepa_ros.export.model import (
    DEFAULT_QUERIES,
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    export_model,
    export_tiny_random,
)
from vljepa_ros.export.open_vljepa import OPEN_VLJEPA_FRAMES, OPEN_VLJEPA_QUERIES, export_open_vljepa_files
from vljepa_ros.export.parity import ParityError
from vljepa_ros.export.variants import parse_kind, write_variant
from vljepa_ros.export.vjepa2_ac import export_vjepa2_ac
from vljepa_ros.runtime.query_tokenizer import build_vocab, read_vocab
from vljepa_ros.runtime.text_bank import TextBank, read_text_lines
from vljepa_ros.torch_models.checkpoint import CheckpointError, load_predictor
from vljepa_ros.torch_models.encoder_loading import describe, load_encoder
from vljepa_ros.torch_models.text_encoder import TextEncoderSource, minilm_source
from vljepa_ros.torch_models.vjepa2_ac_loading import AC_NATIVE_CROP, AC_PREDICTOR_HEADS, load_vjepa2_ac
from vljepa_ros.torch_models.vjepa2_encoder import ENCODER_PRESETS, VJepa2Encoder, encoder_config
from vljepa_ros.torch_models.vljepa_predictor import PREDICTOR_PRESETS, VLJepaPredictor, predictor_config


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="export_model", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--tiny-random", action="store_true", help="export the small random-weight test model and exit")
    p.add_argument(
        "--encoder-checkpoint",
        type=Path,
        help="V-JEPA 2.0 / 2.1 .pt file or Hugging Face V-JEPA 2 folder (default: random init)",
    )
    p.add_argument("--checkpoint-key", help="entry holding the encoder (default: ema_encoder, target_encoder, encoder)")
    p.add_argument("--num-heads", type=int, help="encoder heads, for checkpoint widths that are not a published size")
    ov = p.add_argument_group("open-vljepa (github dion-jy/open-vljepa; see docs/open_vljepa.md)")
    ov.add_argument("--open-vljepa", type=Path, metavar="CKPT", help="open-vljepa best.pt: export that model")
    ov.add_argument("--x-encoder", type=Path, metavar="HF_DIR", help="facebook/vjepa2-vitl-fpc64-256 folder")
    ov.add_argument("--llama", type=Path, metavar="HF_DIR", help="meta-llama/Llama-3.2-1B folder (config, tokenizer)")
    ov.add_argument("--y-encoder", type=Path, metavar="HF_DIR", help="google/embeddinggemma-300m folder (same)")
    ov.add_argument(
        "--bank-texts",
        action="append",
        default=[],
        metavar="NAME=FILE.txt",
        help="bank embedded by the exported Y-encoder, one text per line (e.g. captions=captions.txt)",
    )
    ov.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="NAME=TEXT",
        help=f"default query, refused if over the checkpoint's max_query_len (default: {OPEN_VLJEPA_QUERIES}; a "
        "default that does not fit is replaced by the first of DEFAULT_QUERY_CHOICES that does)",
    )
    ac = p.add_argument_group("V-JEPA 2-AC world model (see docs/world_model.md)")
    ac.add_argument("--vjepa2-ac", type=Path, metavar="CKPT", help="vjepa2-ac-vitg.pt: export the world model")
    ac.add_argument(
        "--predictor-num-heads",
        type=int,
        default=AC_PREDICTOR_HEADS,
        help=f"AC predictor heads (not in the weights; default the published {AC_PREDICTOR_HEADS})",
    )
    p.add_argument(
        "--encoder-preset",
        default="vit_l",
        choices=sorted(ENCODER_PRESETS),
        help="architecture for random init (ignored with --encoder-checkpoint)",
    )
    p.add_argument(
        "--frames",
        type=int,
        help=f"clip frames T (default: preset's, 16 from a checkpoint, open-vljepa {OPEN_VLJEPA_FRAMES})",
    )
    p.add_argument("--crop", type=int, help="crop size S (default: preset's or the checkpoint's native crop)")
    p.add_argument(
        "--rope-interleaved",
        action="store_true",
        help="random init: RoPE frequencies interleaved (2.1); default the 2.0 tiled quirk (checkpoints: detected)",
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
    p.add_argument("--model-id", help="model id (default: vljepa, with --open-vljepa open-vljepa)")
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
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KIND",
        help="also write graph variant KIND (optimised, fp16, int8, optimised-int8, optimised-fp16) into "
        "OUT/variants/KIND, parity-checked against the fp32 graphs (export/variants.py)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _build_encoder(args: argparse.Namespace) -> VJepa2Encoder:
    if args.encoder_checkpoint:
        encoder, info = load_encoder(
            args.encoder_checkpoint,
            num_frames=args.frames or 16,
            img_size=args.crop,
            num_heads=args.num_heads,
            entry=args.checkpoint_key,
        )
        print(describe(info, encoder))
        return encoder
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


def _pairs(items: Sequence[str], flag: str, form: str) -> dict[str, str]:
    """NAME=VALUE items -> {NAME: VALUE}; ValueError naming the flag on a malformed or repeated item."""
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if not name or not value or name in out:
            raise ValueError(f"{flag}: expected distinct {form}, got {item!r}")
        out[name] = value
    return out


def _export_open_vljepa(args: argparse.Namespace) -> Path:
    missing = [flag for flag in ("x_encoder", "llama", "y_encoder") if getattr(args, flag) is None]
    if missing:
        raise ValueError(f"--open-vljepa needs {', '.join('--' + m.replace('_', '-') for m in missing)}")
    banks = {name: read_text_lines(file) for name, file in _pairs(args.bank_texts, "--bank-texts", "NAME=FILE").items()}
    return export_open_vljepa_files(
        args.open_vljepa,
        args.x_encoder,
        args.llama,
        args.y_encoder,
        args.out,
        frames=args.frames or OPEN_VLJEPA_FRAMES,
        crop=args.crop,
        num_heads=args.num_heads,
        queries=_pairs(args.query, "--query", "NAME=TEXT"),
        bank_texts=banks,
        model_id=args.model_id or "open-vljepa",
        frame_rate_hz=args.frame_rate,
        opset=args.opset,
        tolerance=args.tolerance or FP32_TOLERANCE,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """export_model: checkpoint(s) or random init -> encoder.onnx, predictor.onnx, manifest.yaml, query_vocab.txt."""
    args = _parse_args(argv)
    try:
        for kind in args.variant:
            parse_kind(kind)
        if args.open_vljepa:
            path = _export_open_vljepa(args)
        elif args.vjepa2_ac:
            encoder, predictor, _ = load_vjepa2_ac(
                args.vjepa2_ac, args.crop or AC_NATIVE_CROP, args.num_heads, args.predictor_num_heads
            )
            path = export_vjepa2_ac(
                encoder,
                predictor,
                args.out,
                model_id=args.model_id or "vjepa2-ac",
                opset=args.opset,
                tolerance=args.tolerance or FP32_TOLERANCE,
            )
        elif args.tiny_random:
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
                model_id=args.model_id or "vljepa",
                frame_rate_hz=args.frame_rate,
                max_tokens=args.max_tokens,
                opset=args.opset,
                tolerance=args.tolerance,
                text_encoder_source=_text_encoder_source(args),
                fp16=args.fp16,
                fused_frame_size=_frame_size(args.fused_preprocessing),
                # V-JEPA 2 checkpoints were trained on torchvision's antialiased resizes; random encoders on none.
                antialias=bool(args.encoder_checkpoint),
                normalise_in_graph=args.normalise_in_graph,
            )
        print(f"wrote {path}")
        if not args.vjepa2_ac:  # the world model's folder is another format, loaded by world_model/, not the runtime
            # Loaded and run as the runtime will (the torch modules above are freed by now).
            print(check_export(path))
        for kind in args.variant:
            print(f"wrote {write_variant(path, Path(args.out) / 'variants' / kind, kind)}")
    except (ParityError, CheckpointError, ValueError, OSError) as err:
        print(f"export_model: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
