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
import onnx
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
GRAPHS = ("encoder", "predictor")


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
    p.add_argument("--reuse", action="store_true", help="keep the graphs an earlier run left in --workdir")
    p.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="load one variant's sessions at a time, per round (full size on a small machine: each fp32 variant "
        "holds ~7 GB once onnxruntime has prepacked its weights)",
    )
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
    write_query_embeddings(predictor, folder / "query_embeddings.npy")
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
    }
    del encoder, predictor
    gc.collect()
    return facts


def prepare_graphs(size: str, root: Path, kinds: list[str], reuse: bool, log) -> tuple[dict, dict]:
    """The fp32 export and each variant under `root` (kept from an earlier run with `reuse`), and their facts."""
    record = root / "graphs.json"
    done = json.loads(record.read_text()) if reuse and record.is_file() else {"facts": None, "variants": {}}
    if done["facts"] is None:
        done["facts"] = export_fp32(size, root / "fp32", log)
        log(f"fp32 export: {done['facts']['export_s']} s")
        done["variants"] = {}
        record.write_text(json.dumps(done, indent=1))
    for kind in kinds:
        if kind in done["variants"]:
            continue
        (root / kind).mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        steps = {g: write_graph_variant(kind, root / "fp32" / f"{g}.onnx", root / kind / f"{g}.onnx") for g in GRAPHS}
        done["variants"][kind] = {**steps, "seconds": round(time.perf_counter() - start, 1)}
        log(f"variant {kind}: {done['variants'][kind]}")
        record.write_text(json.dumps(done, indent=1))
    return done["facts"], {kind: done["variants"][kind] for kind in kinds}


def graph_input_shapes(folder: Path) -> tuple[tuple[int, ...], int]:
    """The encoder's clip shape (no batch) and the predictor's query length, read from the fp32 graphs."""
    dims = {}
    for graph in GRAPHS:
        model = onnx.load(str(folder / f"{graph}.onnx"), load_external_data=False)
        dims[graph] = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    return tuple(dims["encoder"][0][1:]), dims["predictor"][1][1]


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
        facts, variant_steps = prepare_graphs(args.size, root, kinds, args.reuse, log)
        folders = {name: root / name for name in ("fp32", *kinds)}
        config = SessionConfig(
            providers=parse_provider_list(args.providers),
            intra_op_threads=args.threads,
            warmup_runs=0,
            io_binding=True if args.io_binding else None,
        )
        loads = {name: [] for name in folders}
        provider = []

        def load(name):
            start = time.perf_counter()
            pair = tuple(OnnxModel.load(folders[name] / f"{g}.onnx", config) for g in ("encoder", "predictor"))
            loads[name].append(round(time.perf_counter() - start, 1))
            provider.append(pair[0].provider)
            log(f"{name}: loaded in {loads[name][-1]} s on {pair[0].provider}")
            return pair

        resident = None if args.one_at_a_time else {name: load(name) for name in folders}
        table = np.load(root / "fp32" / "query_embeddings.npy", mmap_mode="r")
        rng = np.random.default_rng(0)
        clip_shape, query_tokens = graph_input_shapes(root / "fp32")
        inputs = {}
        for batch in batches:
            ids = np.zeros((batch, query_tokens), np.int64)
            ids[:, :QUERY_WORDS] = rng.integers(1, table.shape[0], (batch, QUERY_WORDS))
            clip = rng.standard_normal((batch, *clip_shape)).astype(np.float32)
            inputs[batch] = (clip, np.ascontiguousarray(table[ids]), (ids != 0).astype(np.int64))

        def run(pair, batch):
            encoder, predictor = pair
            clip, rows, mask = inputs[batch]
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

        names = list(folders)
        samples = {(n, b): {"encoder": [], "predictor": [], "total": []} for n in names for b in batches}
        outputs = {}
        # Resident: round 0 is untimed. One at a time: each load is followed by one untimed call per batch size.
        first_timed = 1 if resident else 0
        for round_index in range(args.rounds + first_timed):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                pair = resident[name] if resident else load(name)
                for batch in batches:
                    if not resident:
                        run(pair, batch)
                    tokens, embedding, enc_s, pred_s, total_s = run(pair, batch)
                    outputs[name, batch] = (tokens, embedding)
                    if round_index >= first_timed:
                        for key, value in zip(("encoder", "predictor", "total"), (enc_s, pred_s, total_s)):
                            samples[name, batch][key].append(value / batch)
                    log(f"round {round_index} {name} batch {batch}: {total_s:.2f} s")
                del pair
                gc.collect()
        results = []
        for batch in batches:
            ref_tokens, ref_embedding = outputs["fp32", batch]
            fp32_total = statistics.median(samples["fp32", batch]["total"])
            row = {"batch": batch, "variants": {}}
            for name in names:
                tokens, embedding = outputs[name, batch]
                taken = samples[name, batch]
                total = statistics.median(taken["total"])
                row["variants"][name] = {
                    **{f"{k}_ms_per_clip": statistics.median(v) * 1e3 for k, v in taken.items()},
                    "samples_total_ms": [round(v * 1e3, 1) for v in taken["total"]],
                    "time_ratio_to_fp32": total / fp32_total,
                    "fp32_over_this": fp32_total / total,
                    "tokens_mean_cosine": float(_cosines(ref_tokens, tokens).mean()),
                    "tokens_max_abs_error": float(np.abs(ref_tokens - tokens).max()),
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
        "provider": provider[0],
        "session_load_s": loads,
        "sessions": "one variant at a time" if args.one_at_a_time else "all resident",
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
