"""Cost of changing the batch size between encoder calls, per graph, in one run (JSON out).

The perception node's batch varies with how many cameras have a clip ready. On onnxruntime's CUDA provider an
encoder whose patch embedding is a Conv re-plans it at every new input shape; `export/patch_embedding.py` writes it
as a MatMul instead. Give both graphs (e.g. an encoder.onnx from before that pass and the bundled one): each is
timed at fixed batch sizes and alternating between them.

Usage: python benchmarks/gpu_batch_shape_check.py GRAPH [GRAPH ...] [--providers cuda] [--out shapes.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from vljepa_ros.runtime.onnx_session import PROVIDER_OF_NAME, parse_provider_list


def _ms_per_call(fn, reps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graphs", nargs="+", type=Path, help="encoder .onnx files (one input: clip, frames or crops)")
    parser.add_argument("--providers", default="cuda")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    providers = [PROVIDER_OF_NAME[p] for p in parse_provider_list(args.providers)]
    result = {"providers": providers, "onnxruntime": ort.__version__, "graphs": {}}
    for path in args.graphs:
        session = ort.InferenceSession(str(path), providers=providers)
        shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
        name = session.get_inputs()[0].name
        rng = np.random.default_rng(0)
        if session.get_inputs()[0].type == "tensor(uint8)":  # frames or crops (fused / normalise_in_graph)
            clips = {b: rng.integers(0, 256, [b, *shape[1:]], dtype=np.uint8) for b in (1, 2, 4)}
        else:
            clips = {b: rng.standard_normal([b, *shape[1:]]).astype(np.float32) for b in (1, 2, 4)}

        def run(batch, session=session, name=name, clips=clips):
            session.run(None, {name: clips[batch]})

        ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
        row = {
            "patch_embedding": "Conv" if "Conv" in ops else "MatMul",
            "provider": session.get_providers()[0],
            "same_shape_ms": {b: _ms_per_call(lambda b=b: run(b), args.reps) for b in (1, 2, 4)},
            "alternating_1_2_ms_per_pair": _ms_per_call(lambda: (run(1), run(2)), args.reps),
            "alternating_1_2_4_ms_per_triple": _ms_per_call(lambda: (run(1), run(2), run(4)), args.reps),
        }
        result["graphs"][str(path)] = row
        print(
            f"{path} ({row['patch_embedding']}, {row['provider']}): same shape "
            + ", ".join(f"b{b} {v:.2f} ms" for b, v in row["same_shape_ms"].items())
            + f"; alternating 1,2: {row['alternating_1_2_ms_per_pair']:.2f} ms per pair"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
