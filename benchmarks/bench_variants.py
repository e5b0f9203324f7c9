"""Graph variants side by side: today's fp32 export vs fused / fp16 / int8 graphs, same inputs, alternated (JSON).

Builds a random-weight VL-JEPA (`--size full`: open-vljepa's ViT-L 8x256 encoder + 8 Llama-3.2-1B layers of 2048
with 64-token queries and the token table outside the graph; `--size small`: the tiny presets, for a smoke
run), exports its fp32 encoder and predictor as `export_model` does (parity against PyTorch), makes each variant
from those graphs (`export.variants.write_graph_variant`), then per batch size runs one clip batch through each
variant's encoder and then its predictor on its own tokens, in rotating order, round after round (the first
round untimed). Reports per-clip encoder / predictor / total medians, each variant's time ratio to fp32, and
cosine / max abs error of tokens and embeddings to fp32 on the same inputs. On a GPU, `--io-binding` also keeps
the encoder's tokens on the device before the predictor (`runtime.onnx_session.OnnxModel.run_on_device`).

    .venv/bin/python benchmarks/bench_variants.py --size full --variants optimised,int8 --rounds 3 --out f.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from vljepa_ros.export.model import export_encoder, export_predictor, write_query_embeddings
from vljepa_ros.export.variants import parse_kind, write_graph_variant
from vljepa_ros.runtime.onnx_session import OnnxModel, SessionConfig, parse_provider_list
from vljepa_ros.runtime.text_bank import l2_normalise
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config
from vljepa_ros.torch_models.vljepa_predictor import (
    Llama3RopeScaling,
    VLJepaPredictor,
    VLJepaPredictorConfig,
    predictor_config,
)

# Llama-3.2-1B's RoPE scaling and open-vljepa's query length (test/export/test_open_vljepa_full_size.py).
LLAMA_3_2_ROPE = Llama3RopeScaling(
    factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192
)
FULL_QUERY_TOKENS = 64
QUERY_WORDS = 8  # tokens of the timed query; the rest are pads, masked


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=("full", "small"), default="small")
    p.add_argument("--variants", default="optimised,int8", help="kinds beside fp32 (export/variants.py)")
    p.add_argument("--providers", default="cpu", help="ONNX Runtime preference list, e.g. cuda,cpu")
    p.add_argument("--batches", default="1", help="batch sizes, e.g. 1,4")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per batch size (one untimed round first)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads per session (0: all cores)")
    p.add_argument("--io-binding", action="store_true", help="tokens stay on the device between the two graphs")
    p.add_argument("--workdir", type=Path, help="where the graphs go (default: a temporary folder)")
    p.add_argument("--out", type=Path, default=Path("out/bench/variants.json"))
    return p.parse_args(argv)


def build_model(size: str) -> tuple[VJepa2Encoder, VLJepaPredictor]:
    """The random-weight encoder and predictor of `size` (seed 0)."""
    torch.manual_seed(0)
    if size == "full":
        encoder = VJepa2Encoder(encoder_config("vit_l", num_frames=8, img_size=256)).eval()
        predictor = VLJepaPredictor(
            VLJepaPredictorConfig(visual_dim=1024, max_query_tokens=FULL_QUERY_TOKENS, rope_scaling=LLAMA_3_2_ROPE)
        ).eval()
    else:
        encoder = VJepa2Encoder(encoder_config("tiny")).eval()
        predictor = VLJepaPredictor(predictor_config("tiny", visual_dim=encoder.cfg.embed_dim)).eval()
    return encoder, predictor


def export_fp32(size: str, folder: Path, log) -> dict:
    """Export the fp32 graphs as open-vljepa's export does (query table outside the predictor); returns facts."""
    encoder, predictor = build_model(size)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    enc = export_encoder(encoder, folder / "encoder.onnx", parity_batch=1, log=log)
    table = write_query_embeddings(predictor, folder / "query_embeddings.npy")
    pred = export_predictor(
        predictor,
        folder / "predictor.onnx",
        encoder.cfg.num_tokens,
        predictor.cfg.max_query_tokens,
        parity_batch=1,
        query_embeddings=True,
        log=log,
    )
    facts = {
        "export_s": round(time.perf_counter() - start, 1),
        "export_parity_max_abs_error": {"encoder": enc.max_abs_error, "predictor": pred.max_abs_error},
        "encoder": {
            "frames": encoder.cfg.num_frames,
            "crop": encoder.cfg.img_size,
            "tokens": encoder.cfg.num_tokens,
            "width": encoder.cfg.embed_dim,
            "depth": encoder.cfg.depth,
        },
        "predictor": {
            "hidden": predictor.cfg.hidden_dim,
            "depth": predictor.cfg.depth,
            "query_tokens": predictor.cfg.max_query_tokens,
            "embedding_dim": predictor.cfg.embedding_dim,
        },
        "table": str(table.file),
    }
    del encoder, predictor
    gc.collect()
    return facts


def _graph_mib(path: Path) -> float:
    data = Path(f"{path}.data")
    return round((path.stat().st_size + (data.stat().st_size if data.is_file() else 0)) / 2**20, 1)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
    return (l2_normalise(a) * l2_normalise(b)).sum(-1)


def main(argv=None) -> int:
    args = _parse(argv)
    log = lambda line: print(line, flush=True)  # noqa: E731
    kinds = [k for k in args.variants.split(",") if k]
    for kind in kinds:
        parse_kind(kind)
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_variants_") as scratch:
        root = args.workdir or Path(scratch)
        facts = export_fp32(args.size, root / "fp32", log)
        log(f"fp32 export: {facts['export_s']} s")
        folders = {"fp32": root / "fp32"}
        variant_steps = {}
        for kind in kinds:
            folders[kind] = root / kind
            folders[kind].mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            variant_steps[kind] = {
                g: write_graph_variant(kind, root / "fp32" / f"{g}.onnx", folders[kind] / f"{g}.onnx")
                for g in ("encoder", "predictor")
            }
            variant_steps[kind]["seconds"] = round(time.perf_counter() - start, 1)
            log(f"variant {kind}: {variant_steps[kind]}")
        config = SessionConfig(
            providers=parse_provider_list(args.providers),
            intra_op_threads=args.threads,
            warmup_runs=0,
            io_binding=True if args.io_binding else None,
        )
        models = {}
        for name, folder in folders.items():
            start = time.perf_counter()
            models[name] = (
                OnnxModel.load(folder / "encoder.onnx", config),
                OnnxModel.load(folder / "predictor.onnx", config),
            )
            log(f"{name}: loaded in {time.perf_counter() - start:.1f} s on {models[name][0].provider}")
        table = np.load(facts.pop("table"), mmap_mode="r")
        rng = np.random.default_rng(0)
        enc_in = models["fp32"][0].session.get_inputs()[0]
        query_tokens = models["fp32"][1].session.get_inputs()[1].shape[1]
        results = []
        for batch in batches:
            clip = rng.standard_normal((batch, *enc_in.shape[1:])).astype(np.float32)
            ids = np.zeros((batch, query_tokens), np.int64)
            ids[:, :QUERY_WORDS] = rng.integers(0, table.shape[0], (batch, QUERY_WORDS))
            mask = (ids != 0).astype(np.int64)
            rows = np.ascontiguousarray(table[ids])

            def run(name, clip=clip, rows=rows, mask=mask):
                encoder, predictor = models[name]
                t0 = time.perf_counter()
                if args.io_binding:
                    tokens = encoder.run_on_device({encoder.input_names[0]: clip})[0]
                else:
                    tokens = encoder.run({encoder.input_names[0]: clip})[0]
                t1 = time.perf_counter()
                names = predictor.input_names
                embedding = predictor.run({names[0]: tokens, names[1]: rows, names[2]: mask})[0]
                t2 = time.perf_counter()
                if args.io_binding:
                    tokens = tokens.numpy()  # after the clock: only the parity check needs them on the host
                return tokens, embedding, t1 - t0, t2 - t1, t2 - t0

            names = list(models)
            samples = {n: {"encoder": [], "predictor": [], "total": []} for n in names}
            outputs = {}
            for round_index in range(args.rounds + 1):
                order = names[round_index % len(names) :] + names[: round_index % len(names)]
                for name in order:
                    tokens, embedding, enc_s, pred_s, total_s = run(name)
                    outputs[name] = (tokens, embedding)
                    if round_index:
                        for key, value in zip(("encoder", "predictor", "total"), (enc_s, pred_s, total_s)):
                            samples[name][key].append(value / batch)
                log(f"batch {batch} round {round_index}: done ({'untimed' if not round_index else 'timed'})")
            ref_tokens, ref_embedding = outputs["fp32"]
            row = {"batch": batch, "variants": {}}
            for name in names:
                tokens, embedding = outputs[name]
                medians = {f"{k}_ms_per_clip": statistics.median(v) * 1e3 for k, v in samples[name].items() if v}
                per_token = _cosines(ref_tokens, tokens) if tokens is not None else None
                row["variants"][name] = {
                    **medians,
                    "samples_total_ms": [round(v * 1e3, 1) for v in samples[name]["total"]],
                    "time_ratio_to_fp32": medians["total_ms_per_clip"]
                    / statistics.median(samples["fp32"]["total"])
                    / 1e3,
                    "fp32_over_this": statistics.median(samples["fp32"]["total"]) * 1e3 / medians["total_ms_per_clip"],
                    "tokens_mean_cosine": None if per_token is None else float(per_token.mean()),
                    "tokens_max_abs_error": None if tokens is None else float(np.abs(ref_tokens - tokens).max()),
                    "embedding_min_cosine": float(_cosines(ref_embedding, embedding).min()),
                    "embedding_max_abs_error": float(np.abs(ref_embedding - embedding).max()),
                }
                log(f"batch {batch} {name}: {json.dumps(row['variants'][name])}")
            results.append(row)
        sizes = {
            name: {g: _graph_mib(folder / f"{g}.onnx") for g in ("encoder", "predictor")}
            for name, folder in folders.items()
        }
    result = {
        "benchmark": "bench_variants",
        "size": args.size,
        "model": facts,
        "variants": variant_steps,
        "graph_mib": sizes,
        "providers": list(config.providers),
        "provider": models["fp32"][0].provider,
        "threads": args.threads or os.cpu_count(),
        "io_binding": args.io_binding,
        "rounds": args.rounds,
        "results": results,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_avg_end": os.getloadavg(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
