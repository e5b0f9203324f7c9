"""Graph pass: onnxruntime's transformer optimiser on an exported graph, with a count of what it fused.

`onnxruntime.transformers.optimizer` pattern-matches BERT-style subgraphs and replaces them by fused
operators (Attention / MultiHeadAttention, SkipLayerNormalization, (Bias)Gelu, SimplifiedLayerNormalization,
RotaryEmbedding). It runs here at `opt_level=0`: only its own fusions, none of onnxruntime's session-level
rewrites (those run anyway when a session loads the graph, and the ones at higher levels are specific to the
provider they were saved for). Which fusions fire on the V-JEPA 2 encoder and the VL-JEPA predictor is counted
and reported (docs/benchmarks.md, "Graph variants"), since the optimiser does not know their RoPE attention.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import Counter
from pathlib import Path

import onnx

from vljepa_ros.export.graphs import save_graph

# The fused operator types the optimiser can produce (counted before and after, so ones already present, such
# as the exporter's LayerNormalization, are not credited to it).
FUSED_OPS = (
    "Attention",
    "MultiHeadAttention",
    "GroupQueryAttention",
    "RotaryEmbedding",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "SimplifiedLayerNormalization",
    "LayerNormalization",
    "Gelu",
    "BiasGelu",
    "FastGelu",
    "BiasAdd",
    "FusedMatMul",
)


def op_counts(model: onnx.ModelProto) -> Counter:
    """How many nodes of each op type the graph has."""
    return Counter(node.op_type for node in model.graph.node)


def fused_op_counts(before: Counter, after: Counter) -> dict[str, int]:
    """FUSED_OPS types whose count the optimiser raised, with how many it added."""
    return {op: after[op] - before[op] for op in FUSED_OPS if after[op] > before[op]}


def optimise_graph(source: Path, target: Path, num_heads: int = 0, hidden_size: int = 0) -> dict[str, int]:
    """Run the transformer optimiser on `source`, save the result to `target`; returns the fused ops it added.

    `num_heads` / `hidden_size` 0: the optimiser reads them from the graph where it can.
    """
    from onnxruntime.transformers import optimizer  # heavy: only an export with variants needs it

    model = onnx.load(str(source))
    drop_identity_casts(model, element_types(Path(source)))
    before = op_counts(model)
    # The optimiser prints and logs each failed shape inference and pattern; its result is what counts here.
    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            optimised = optimizer.optimize_model(
                model, model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0
            )
    finally:
        quiet.setLevel(level)
    optimised.topological_sort()
    result = optimised.model
    if not any(o.domain == "com.microsoft" for o in result.opset_import):
        result.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    # SimplifiedLayerNormalization is onnxruntime's, in the default domain: onnx's checker does not know it.
    save_graph(result, Path(target), check=False)
    return fused_op_counts(before, op_counts(result))


def element_types(path: Path) -> dict[str, int]:
    """Element type of every value of the graph at `path` that onnx's shape inference can type (weights not read)."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    graph = model.graph
    types = {t.name: t.data_type for t in graph.initializer}
    for info in (*graph.input, *graph.value_info, *graph.output):
        if info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    return types


def drop_identity_casts(model: onnx.ModelProto, types: dict[str, int]) -> None:
    """Bypass Cast nodes to the type their input already has (the exporter's fp32 -> fp32 casts).

    The transformer optimiser and the fp16 converter both trip over them: after either, some consumer of the
    predictor's first RMSNorm cast reads a value nothing produces any more; without the casts both come out whole.
    """
    graph = model.graph
    outputs = {o.name for o in graph.output}
    renamed = {}
    for node in graph.node:
        if node.op_type != "Cast" or node.output[0] in outputs:
            continue
        to = next(a.i for a in node.attribute if a.name == "to")
        if types.get(node.input[0]) == to:
            renamed[node.output[0]] = node.input[0]
    for node in graph.node:
        for i, name in enumerate(node.input):
            while name in renamed:
                name = renamed[name]
            node.input[i] = name
    keep = [n for n in graph.node if not (n.op_type == "Cast" and n.output[0] in renamed)]
    del graph.node[:]
    graph.node.extend(keep)
