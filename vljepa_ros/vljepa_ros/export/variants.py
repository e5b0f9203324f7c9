"""Graph variants of an exported model: fused (transformer optimiser), fp16, int8, checked against the source.

A variant is made from an exported model folder's fp32 graphs, offline, into a folder of its own with a
manifest that records it (`variant`: kind, the source model's version, what was fused or quantised, and the
parity measured). Kinds are steps joined by "-", applied in order: "optimised", "fp16", "int8",
"optimised-fp16", "optimised-int8". Parity: the variant's pipeline (its encoder, then its predictor on its own
tokens) against the source's on the same held-out clips and default queries through `VLJepaRuntime` on the CPU:
a fused fp32 graph must stay within 1e-4 (max abs), fp16 / int8 within a cosine floor, else `ParityError`.

    python -m vljepa_ros.export.variants MODEL/manifest.yaml --kind int8 --out MODEL-int8
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from vljepa_ros.export.fp16 import convert_to_fp16
from vljepa_ros.export.graphs import save_graph
from vljepa_ros.export.optimise import drop_identity_casts, element_types, op_counts, optimise_graph
from vljepa_ros.export.parity import ParityError
from vljepa_ros.export.quantise import quantise_graph
from vljepa_ros.runtime.manifest import (
    VARIANT_STEPS,
    OnnxFileSpec,
    VariantSpec,
    external_data_path,
    load_manifest,
    model_version,
    sha256_of_graph,
    write_manifest,
)
from vljepa_ros.runtime.text_bank import l2_normalise
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

FUSED_MAX_ABS_ERROR = 1e-4
# Cosine to the fp32 pipeline below which a variant is refused (min over clips of the final embedding, and of the
# mean over tokens of the per-token cosine of the encoder's output).
MIN_COSINE = {"fp16": 0.999, "int8": 0.99}


def parse_kind(kind: str) -> tuple[str, ...]:
    """'optimised-int8' -> ('optimised', 'int8'); ValueError naming the kind when a step is unknown or repeated."""
    steps = tuple(kind.split("-"))
    if not kind or any(s not in VARIANT_STEPS for s in steps) or len(set(steps)) != len(steps):
        raise ValueError(f"variant kind {kind!r}: expected steps from {list(VARIANT_STEPS)} joined by '-'")
    if "fp16" in steps and "int8" in steps:
        raise ValueError(f"variant kind {kind!r}: fp16 and int8 do not combine")
    return steps


def write_graph_variant(kind: str, source: Path, target: Path) -> dict:
    """Apply `kind`'s steps to graph `source` (fp16 before the others), writing `target`; returns what each step
    did (fused / quantised op counts, casts added)."""
    # fp16 goes first: the converter needs onnx's shape inference, which stops at the optimiser's fused ops.
    steps = sorted(parse_kind(kind), key=lambda step: step != "fp16")
    done = {}
    current = Path(source)
    for i, step in enumerate(steps):
        out = Path(target) if i == len(steps) - 1 else Path(f"{target}.{step}.onnx")
        if step == "optimised":
            done["fused_ops"] = optimise_graph(current, out)
        elif step == "int8":
            done["quantised_ops"] = quantise_graph(current, out)
        else:
            model = onnx.load(str(current))
            drop_identity_casts(model, element_types(current))
            casts = op_counts(model)["Cast"]
            model = convert_to_fp16(model)
            done["fp16_casts_added"] = op_counts(model)["Cast"] - casts
            save_graph(model, out)
        if current != Path(source):
            _remove_graph(current)
        current = out
    return done


def _remove_graph(path: Path) -> None:
    path.unlink(missing_ok=True)
    external_data_path(path).unlink(missing_ok=True)


def _link_or_copy(source: Path, target: Path) -> Path:
    """A hard link to `source` (the large tables and text encoders are not rewritten), a copy across devices."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


def _carried(path: Path, source_root: Path, out_dir: Path) -> Path:
    """`path` from the source folder, linked into `out_dir` under the same relative name."""
    relative = Path(path).resolve().relative_to(source_root)
    target = out_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    _link_or_copy(Path(path), target)
    data = external_data_path(Path(path))
    if data.is_file():
        _link_or_copy(data, external_data_path(target))
    return target.resolve()


def _precision(steps: Sequence[str], source: str) -> str:
    return "fp16" if "fp16" in steps else "int8" if "int8" in steps else source


def held_out_clips(runtime: VLJepaRuntime, clips: int, seed: int) -> np.ndarray:
    """`clips` encoder inputs from random camera frames (a smooth gradient plus noise, 240x320), prepared as the
    runtime prepares camera frames: the same data path as a robot's, with inputs no export ever saw."""
    rng = np.random.default_rng(seed)
    frames = runtime.manifest.clip.frames
    ramp = np.linspace(0, 1, 320, dtype=np.float32)[None, :, None]
    out = []
    for _ in range(clips):
        base = rng.uniform(0, 255, (1, 1, 3)) * ramp + rng.uniform(0, 64, (240, 320, 3))
        noise = rng.normal(0, 24, (frames, 240, 320, 3))
        out.append(runtime.prepare_clip(list(np.clip(base[None] + noise, 0, 255).astype(np.uint8))))
    return np.stack(out)


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(-1, a.shape[-1]).astype(np.float64)
    b = b.reshape(-1, b.shape[-1]).astype(np.float64)
    return (l2_normalise(a) * l2_normalise(b)).sum(-1)


def compare_pipelines(
    source: VLJepaRuntime, variant: VLJepaRuntime, clips: np.ndarray, queries: Sequence[str]
) -> dict[str, float]:
    """The variant's encoder + predictor against the source's on the same clips and queries.

    tokens_min_cosine: min over clips of the mean per-token cosine; embedding_min_cosine: min over clips and
    queries; max abs errors of both.
    """
    want_tokens, got_tokens = source.encode(clips), variant.encode(clips)
    per_token = _row_cosines(want_tokens, got_tokens).reshape(len(clips), -1)
    errors, cosines = [], []
    for query in queries:
        want, got = source.predict(want_tokens, query), variant.predict(got_tokens, query)
        errors.append(float(np.abs(want - got).max()))
        cosines.append(float(_row_cosines(want, got).min()))
    return {
        "clips": len(clips),
        "tokens_max_abs_error": float(np.abs(want_tokens - got_tokens).max()),
        "tokens_min_cosine": float(per_token.mean(axis=1).min()),
        "embedding_max_abs_error": max(errors),
        "embedding_min_cosine": min(cosines),
    }


def check_variant_parity(kind: str, parity: dict[str, float]) -> None:
    """ParityError when a variant misses its bar: fused fp32 max abs error, fp16 / int8 cosine."""
    steps = parse_kind(kind)
    lossy = [s for s in steps if s in MIN_COSINE]
    if not lossy:
        worst = max(parity["tokens_max_abs_error"], parity["embedding_max_abs_error"])
        if not worst <= FUSED_MAX_ABS_ERROR:
            raise ParityError(f"variant {kind}: max abs error {worst:.3g} exceeds {FUSED_MAX_ABS_ERROR:g}")
        return
    floor = MIN_COSINE[lossy[0]]
    worst = min(parity["tokens_min_cosine"], parity["embedding_min_cosine"])
    if not worst >= floor:
        raise ParityError(f"variant {kind}: cosine to fp32 {worst:.5f} below {floor}")


def write_variant(
    manifest_path: Path,
    out_dir: Path,
    kind: str,
    clips: int = 4,
    seed: int = 1,
    log: Callable[[str], None] = print,
) -> Path:
    """Make variant `kind` of the model at `manifest_path` in `out_dir`, check it, return its manifest path.

    Other files (vocabulary, tokenizers, banks, query table, text encoder) are hard-linked from the source.
    Raises ParityError (the folder stays, for inspection) when the variant misses its parity bar.
    """
    steps = parse_kind(kind)
    source = load_manifest(manifest_path)
    if source.variant is not None:
        raise ValueError(f"{manifest_path}: already a variant ({source.variant.kind}); start from the fp32 export")
    if source.precision != "fp32":
        raise ValueError(f"{manifest_path}: precision {source.precision}; variants are made from fp32 graphs")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = source.root.resolve()
    graphs, done = {}, {}
    for key in ("encoder", "predictor"):
        spec: OnnxFileSpec = getattr(source, key)
        target = out_dir / Path(spec.file).name
        done[key] = write_graph_variant(kind, Path(spec.file), target)
        graphs[key] = replace(spec, file=target.resolve(), sha256=sha256_of_graph(target))
        log(f"variant {kind}: {key} {done[key] or 'unchanged'}")
    carried = {}
    if source.query_tokenizer.file is not None:
        carried["query_tokenizer"] = _carried(source.query_tokenizer.file, root, out_dir)
    banks = {name: _carried(path, root, out_dir) for name, path in source.banks.items()}
    query_tokenizer = source.query_tokenizer
    if query_tokenizer.kind == "word":
        query_tokenizer = replace(query_tokenizer, vocab_file=carried["query_tokenizer"])
    else:
        query_tokenizer = replace(query_tokenizer, tokenizer_file=carried["query_tokenizer"])
    query_embeddings = source.query_embeddings
    if query_embeddings is not None:
        query_embeddings = replace(query_embeddings, file=_carried(query_embeddings.file, root, out_dir))
    text_encoder = source.text_encoder
    if text_encoder is not None:
        text_encoder = replace(
            text_encoder,
            file=_carried(text_encoder.file, root, out_dir),
            tokenizer=_carried(text_encoder.tokenizer, root, out_dir),
        )
    hashes = [graphs["encoder"].sha256, graphs["predictor"].sha256]
    hashes += [s.sha256 for s in (query_embeddings, text_encoder) if s is not None]
    manifest = replace(
        source,
        root=out_dir.resolve(),
        version=model_version(hashes),
        encoder=graphs["encoder"],
        predictor=graphs["predictor"],
        query_tokenizer=query_tokenizer,
        banks=banks,
        query_embeddings=query_embeddings,
        text_encoder=text_encoder,
        precision=_precision(steps, source.precision),
        variant=VariantSpec(kind=kind, source_version=source.version, steps=done, parity={}),
    )
    path = write_manifest(manifest, out_dir / "manifest.yaml")
    reference = VLJepaRuntime.from_manifest(manifest_path, providers=("cpu",), warmup_runs=0)
    candidate = VLJepaRuntime.from_manifest(path, providers=("cpu",), warmup_runs=0)
    parity = compare_pipelines(
        reference, candidate, held_out_clips(reference, clips, seed), list(source.queries.values())
    )
    log(
        f"parity variant {kind} vs fp32 over {clips} held-out clips: "
        f"tokens max abs {parity['tokens_max_abs_error']:.3g}, "
        f"cosine {parity['tokens_min_cosine']:.6f}; embedding max abs {parity['embedding_max_abs_error']:.3g}, "
        f"cosine {parity['embedding_min_cosine']:.6f}"
    )
    path = write_manifest(replace(manifest, variant=replace(manifest.variant, parity=parity)), path)
    check_variant_parity(kind, parity)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: one variant of an exported model into a folder of its own."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path, help="the fp32 export's manifest.yaml")
    parser.add_argument("--kind", required=True, help="optimised, fp16, int8, optimised-fp16, optimised-int8")
    parser.add_argument("--out", type=Path, required=True, help="variant folder (created)")
    parser.add_argument("--clips", type=int, default=4, help="held-out clips for the parity check")
    args = parser.parse_args(argv)
    try:
        path = write_variant(args.manifest, args.out, args.kind, clips=args.clips)
    except (ParityError, ValueError, OSError) as err:
        print(f"variants: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
