"""make_bank: a caption/label/action bank (.npz) from a text file, embedded by a model's Y-encoder.

One text per line (blank lines and '#' comments skipped). The model's manifest must ship a text encoder
(the MiniLM export, or open-vljepa's EmbeddingGemma); the bank's width is checked against the model's
embedding_dim, so it can be given to the decoder (`bank_path`), replay or the perception node's vocabularies.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vljepa_ros.runtime.manifest import ManifestError, load_manifest
from vljepa_ros.runtime.onnx_session import SessionConfig
from vljepa_ros.runtime.text_bank import TextBank, read_text_lines
from vljepa_ros.runtime.text_encoder_runtime import TextEncoderRuntime


def build_parser() -> argparse.ArgumentParser:
    """The `make_bank` command line."""
    p = argparse.ArgumentParser(prog="make_bank", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, required=True, help="model manifest.yaml with a text_encoder section")
    p.add_argument("--texts", type=Path, required=True, help="text file, one entry per line")
    p.add_argument("--out", type=Path, required=True, help="output bank .npz")
    p.add_argument("--providers", nargs="+", default=["cpu"], help="ONNX Runtime providers (default: cpu)")
    return p


def make_bank(manifest_path: Path, texts: Sequence[str], providers: Sequence[str] = ("cpu",)) -> TextBank:
    """The bank of `texts` embedded by the manifest's Y-encoder; ManifestError if it ships none or its width
    differs from embedding_dim."""
    manifest = load_manifest(manifest_path)
    if manifest.text_encoder is None:
        raise ManifestError(f"{manifest_path}: the manifest has no text_encoder section")
    encoder = TextEncoderRuntime.from_spec(manifest.text_encoder, SessionConfig(providers=tuple(providers)))
    if encoder.dim != manifest.embedding_dim:
        raise ManifestError(f"text_encoder: width {encoder.dim} != embedding_dim {manifest.embedding_dim}")
    return encoder.make_bank(texts)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `make_bank`."""
    args = build_parser().parse_args(argv)
    try:
        bank = make_bank(args.manifest, read_text_lines(args.texts), args.providers)
    except (ManifestError, ValueError, OSError) as err:
        print(f"make_bank: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bank.save(args.out)
    print(f"make_bank: {len(bank)} texts, dim {bank.dim} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
