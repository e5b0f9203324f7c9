"""embed: one clip and some texts through a model folder -> predicted and text embeddings in one .npz.

The clip is either RGB frames (--frames, uint8 (T, H, W, 3), through the manifest's preprocessing) or an encoder
input already preprocessed (--clip, float32 (T, 3, S, S), normalised). Each --query gives one row of
`predicted` (queries x E), each --text one row of `text` (texts x E, through the model's Y-encoder); both
float32 and L2-normalised, next to `queries` and `texts`. Any model's manifest works; --text needs one that
ships a text encoder.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vljepa_ros.runtime.manifest import ManifestError
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime


def build_parser() -> argparse.ArgumentParser:
    """The `embed` command line."""
    p = argparse.ArgumentParser(prog="embed", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, required=True, help="model manifest.yaml")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--frames", type=Path, help="uint8 (T, H, W, 3) RGB frames .npy")
    source.add_argument("--clip", type=Path, help="float32 (T, 3, S, S) normalised clip .npy")
    p.add_argument("--query", action="append", default=[], help="query for the predictor (repeatable)")
    p.add_argument("--text", action="append", default=[], help="text for the Y-encoder (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="output .npz (predicted, text, queries, texts)")
    p.add_argument("--providers", nargs="+", default=["cpu"], help="ONNX Runtime providers (default: cpu)")
    return p


def encoder_input(runtime: VLJepaRuntime, frames: Path | None, clip: Path | None) -> np.ndarray:
    """The encoder input (no batch axis) from a frames or a clip file; ValueError on a wrong shape or dtype."""
    if frames is not None:
        array = np.load(frames, allow_pickle=False)
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"--frames: expected uint8 (T, H, W, 3), got {array.dtype} {array.shape}")
        return runtime.prepare_clip(list(array))
    spec = runtime.manifest.encoder
    if spec.fused_preprocessing or spec.normalise_in_graph:
        raise ValueError("--clip: this model's encoder takes uint8 frames; give --frames")
    array = np.load(clip, allow_pickle=False)
    s, t = runtime.manifest.clip.crop_size, runtime.manifest.clip.frames
    if array.dtype != np.float32 or array.shape != (t, 3, s, s):
        raise ValueError(f"--clip: expected float32 ({t}, 3, {s}, {s}), got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array.transpose(1, 0, 2, 3))


def embed(
    runtime: VLJepaRuntime, clip: np.ndarray, queries: Sequence[str], texts: Sequence[str]
) -> dict[str, np.ndarray]:
    """{predicted: (queries, E), text: (texts, E), queries, texts}; one encoder run for all queries."""
    dim = runtime.manifest.embedding_dim
    predicted = np.zeros((0, dim), dtype=np.float32)
    if queries:
        tokens = runtime.encode(clip)
        predicted = runtime.predict(np.repeat(tokens, len(queries), axis=0), list(queries))
    text = np.zeros((0, dim), dtype=np.float32)
    if texts:
        text = runtime.load_text_encoder().encode(list(texts))
    return {
        "predicted": predicted.astype(np.float32),
        "text": text.astype(np.float32),
        "queries": np.asarray(list(queries), dtype=str),
        "texts": np.asarray(list(texts), dtype=str),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `embed`."""
    args = build_parser().parse_args(argv)
    if not args.query and not args.text:
        print("embed: give at least one --query or --text", file=sys.stderr)
        return 2
    try:
        runtime = VLJepaRuntime.from_manifest(args.manifest, providers=tuple(args.providers))
        result = embed(runtime, encoder_input(runtime, args.frames, args.clip), args.query, args.text)
    except (ManifestError, ValueError, OSError) as err:
        print(f"embed: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **result)
    print(f"embed: {len(args.query)} predicted, {len(args.text)} text embeddings -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
