"""Graph pass: int8 dynamic quantisation of the MatMul weights, for CPUs.

`onnxruntime.quantization.quantize_dynamic` stores each constant MatMul weight as int8 with one scale per
output column and rewrites the MatMul to quantise its activation per call (DynamicQuantizeLinear +
MatMulInteger, which onnxruntime fuses into DynamicQuantizeMatMul when a session loads the graph). Activations
between layers, normalisations, softmax and the RoPE stay fp32; MatMuls of two activations (attention scores)
stay fp32 because only constant weights are quantised. About a quarter of the weight bytes; the int8 products run
at several times the fp32 rate on x86 CPUs with AVX2 / AVX-512 VNNI (the measured gain is in docs/benchmarks.md).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

from vljepa_ros.export.graphs import save_graph
from vljepa_ros.export.optimise import op_counts


def quantise_graph(source: Path, target: Path, per_channel: bool = True) -> dict[str, int]:
    """Quantise `source`'s MatMul weights to int8 into `target`; returns {"MatMul": quantised, "kept": fp32}."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # heavy: only a variant export needs it

    before = op_counts(onnx.load(str(source), load_external_data=False))["MatMul"]
    with tempfile.TemporaryDirectory(prefix="quantise_") as scratch:
        raw = Path(scratch) / Path(target).name
        quantize_dynamic(
            Path(source),
            raw,
            op_types_to_quantize=["MatMul"],
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            use_external_data_format=True,
            # Outputs of fused com.microsoft ops (an optimised graph's BiasGelu) have no inferred type.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        model = onnx.load(str(raw))
    save_graph(model, Path(target), check=False)
    left = op_counts(model)["MatMul"]
    return {"MatMul": before - left, "kept": left}
