"""Graph pass: an fp32 graph converted to fp16 weights and compute; I/O, the RoPE angles, normalisation
statistics, softmax and an in-graph L2 normalisation kept in fp32."""

from __future__ import annotations

import onnx
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

# Ops kept in fp32 because their sums over a row overflow or lose too much in fp16: a decomposed RMSNorm's
# statistics (Pow -> ReduceMean), softmax, an output's L2 norm. The fused LayerNormalization /
# SimplifiedLayerNormalization kernels are not listed: they take fp16 in and accumulate their statistics in fp32.
FP32_OPS = ("Pow", "ReduceMean", "Softmax", "ReduceL2")


def rope_angle_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the Sin/Cos nodes and everything computing their inputs (positions, frequencies, angles).

    The walk stops at Shape nodes: what feeds a Shape only contributes its size, not values.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    keep, stack = set(), [n for n in model.graph.node if n.op_type in ("Sin", "Cos")]
    while stack:
        node = stack.pop()
        if node.name in keep:
            continue
        keep.add(node.name)
        if node.op_type != "Shape":
            stack.extend(producer[i] for i in node.input if i in producer)
    return sorted(keep)


def output_normalisation_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes an in-graph L2 normalisation added (export/output_normalisation.py): every node that
    reads or writes one of its `<output>/...` values, except the model's own node that writes
    `<output>/unnormalised`."""
    raw = {f"{o.name}/unnormalised" for o in model.graph.output}
    prefixes = tuple(f"{name.rsplit('/', 1)[0]}/" for n in model.graph.node for name in n.output if name in raw)
    if not prefixes:
        return []
    return sorted(
        n.name
        for n in model.graph.node
        if not raw.intersection(n.output) and any(v.startswith(prefixes) for v in (*n.input, *n.output))
    )


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The fp32 graph in fp16; I/O stays fp32; the RoPE angles, FP32_OPS and an in-graph L2 normalisation of an
    output are computed in fp32.

    Half-precision positions x frequencies lose too much of the angle at the larger positions; in fp32 only the
    final cos/sin values are rounded to fp16.
    """
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    converted = convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=[*DEFAULT_OP_BLOCK_LIST, *FP32_OPS],
        node_block_list=[*rope_angle_nodes(model), *output_normalisation_nodes(model)],
    )
    _drop_round_trip_casts(converted)
    _sort_nodes(converted.graph)
    return converted


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Topological node order (the converter appends its input casts at the end, which ONNX forbids)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    waiting_on = {}  # node index -> number of inputs not yet produced
    consumers = {}  # value name -> indices of nodes waiting for it
    for index, node in enumerate(graph.node):
        missing = {i for i in node.input if i not in available}
        waiting_on[index] = len(missing)
        for name in missing:
            consumers.setdefault(name, []).append(index)
    queue = [i for i, count in waiting_on.items() if count == 0]
    order = []
    while queue:
        index = queue.pop()
        order.append(index)
        for name in graph.node[index].output:
            for consumer in consumers.pop(name, []):
                waiting_on[consumer] -= 1
                if waiting_on[consumer] == 0:
                    queue.append(consumer)
    if len(order) != len(graph.node):
        raise ValueError("graph has a cycle or an input no node produces")
    nodes = [graph.node[i] for i in order]
    del graph.node[:]
    graph.node.extend(nodes)


def _drop_round_trip_casts(model: onnx.ModelProto) -> None:
    """Bypass Cast(fp32->fp16) -> Cast(fp16->fp32) pairs, which the converter puts between two blocked nodes
    (it would round the fp32 RoPE angles to fp16 right before Sin/Cos)."""

    def cast_to(node) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    producer = {out: node for node in model.graph.node for out in node.output}
    renamed = {}
    for node in model.graph.node:
        first = producer.get(node.input[0]) if node.input else None
        if cast_to(node) == onnx.TensorProto.FLOAT and first is not None and cast_to(first) == onnx.TensorProto.FLOAT16:
            renamed[node.output[0]] = first.input[0]
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    used = {i for node in model.graph.node for i in node.input} | {o.name for o in model.graph.output}
    keep = [n for n in model.graph.node if n.op_type != "Cast" or any(o in used for o in n.output)]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    # The converter's recorded types of values around the bypassed casts are stale now (the blocked nodes'
    # outputs among them); onnxruntime infers every intermediate type again at load.
    del model.graph.value_info[:]
