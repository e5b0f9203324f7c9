"""Graph pass: a patch-embedding Conv (kernel == stride, no padding) becomes Reshape/Transpose/MatMul.

Why: onnxruntime's CUDA Conv keeps the set-up of the last input shape only, and cuDNN has no fast path for
V-JEPA's 3D tubelet convolution ("running in Fallback mode"). Each change of batch size (the perception node
batches 1..N cameras and their transition clips) then re-planned the Conv, at a cost far above the whole
tiny encoder's run (docs/benchmarks.md). Non-overlapping patches are a plain matrix product over flattened
patches, which every provider runs at any batch size without re-planning. The weights are the same numbers,
transposed.

Needs onnx only (no torch): `graphs.export_graph` applies it to every exported graph, and `rewrite_file`
applies it to an existing encoder.onnx (its sha256, and so the manifest's hash and version, change with it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import EncodeError
from onnx import helper, numpy_helper, shape_inference

from vljepa_ros.export.onnx_graph import node_attribute, static_dims


class _Shapes:
    """Static shapes of a graph's values: graph inputs directly, others by shape inference, run once if needed.

    Inference needs the whole model in one protobuf (< 2 GB); beyond that only graph inputs are known."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.known = {i.name: static_dims(i) for i in model.graph.input}
        self.inferred = False

    def get(self, name: str) -> list[int | None] | None:
        if name not in self.known and not self.inferred:
            self.inferred = True
            try:
                graph = shape_inference.infer_shapes(self.model).graph
            except (ValueError, EncodeError):  # a model over protobuf's 2 GB cannot be serialised for inference
                return None
            self.known.update({i.name: static_dims(i) for i in graph.value_info})
        return self.known.get(name)


def _is_patch_conv(node: onnx.NodeProto, weight: np.ndarray | None) -> bool:
    if node.op_type != "Conv" or weight is None or weight.ndim < 3:
        return False
    kernel = list(weight.shape[2:])
    spatial = len(kernel)
    return (
        list(node_attribute(node, "kernel_shape", kernel)) == kernel
        and list(node_attribute(node, "strides", [1] * spatial)) == kernel
        and not any(node_attribute(node, "pads", [0] * 2 * spatial))
        and list(node_attribute(node, "dilations", [1] * spatial)) == [1] * spatial
        and node_attribute(node, "group", 1) == 1
        and node_attribute(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET", b"VALID", "VALID")
    )


def patch_convs_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite every patch-embedding Conv of `model` in place; returns how many were rewritten.

    A Conv qualifies when kernel == stride, no padding or dilation, one group, and its input's channel and
    spatial sizes are static (the batch may be dynamic) and divisible by the kernel.
    """
    shapes = _Shapes(model)
    weights = {t.name: t for t in model.graph.initializer}
    uses = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    rewritten = 0
    new_nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        w_proto = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        weight = numpy_helper.to_array(w_proto) if w_proto is not None else None
        shape = shapes.get(node.input[0]) if weight is not None else None
        if not _is_patch_conv(node, weight) or shape is None or None in shape[1:]:
            new_nodes.append(node)
            continue
        out_ch, in_ch, *kernel = weight.shape
        spatial = shape[2:]
        if shape[1] != in_ch or any(s % k for s, k in zip(spatial, kernel)):
            new_nodes.append(node)
            continue
        grid = [s // k for s, k in zip(spatial, kernel)]
        n = len(kernel)
        prefix = f"{node.name or node.output[0]}/as_matmul"
        split = [-1, in_ch] + [v for g, k in zip(grid, kernel) for v in (g, k)]
        # (B, C, g1, k1, g2, k2, ...) -> (B, g1, g2, ..., C, k1, k2, ...): each patch's values in Conv weight order.
        to_patches = [0] + [2 + 2 * i for i in range(n)] + [1] + [3 + 2 * i for i in range(n)]
        flat = [-1] + grid + [int(in_ch * np.prod(kernel))]
        back = [0, n + 1] + list(range(1, n + 1))  # (B, g1.., D) -> (B, D, g1..), the Conv's layout
        consts = {
            f"{prefix}/split_shape": np.array(split, dtype=np.int64),
            f"{prefix}/flat_shape": np.array(flat, dtype=np.int64),
            f"{prefix}/weight": weight.reshape(out_ch, -1).T.copy(),
        }
        model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
        matmul_out = f"{prefix}/matmul"
        new_nodes += [
            helper.make_node("Reshape", [node.input[0], f"{prefix}/split_shape"], [f"{prefix}/split"]),
            helper.make_node("Transpose", [f"{prefix}/split"], [f"{prefix}/patches"], perm=to_patches),
            helper.make_node("Reshape", [f"{prefix}/patches", f"{prefix}/flat_shape"], [f"{prefix}/flat"]),
            helper.make_node("MatMul", [f"{prefix}/flat", f"{prefix}/weight"], [matmul_out]),
        ]
        if len(node.input) > 2 and node.input[2]:
            new_nodes.append(helper.make_node("Add", [matmul_out, node.input[2]], [f"{prefix}/biased"]))
            matmul_out = f"{prefix}/biased"
        new_nodes.append(helper.make_node("Transpose", [matmul_out], [node.output[0]], perm=back))
        uses[node.input[1]] -= 1
        if uses[node.input[1]] == 0:
            model.graph.initializer.remove(w_proto)
        rewritten += 1
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    return rewritten


def rewrite_file(path: str | Path) -> int:
    """Rewrite an .onnx file in place (weights inline); returns how many Convs were rewritten."""
    model = onnx.load(str(path))
    count = patch_convs_to_matmul(model)
    if count:
        onnx.save_model(model, str(path))
        onnx.checker.check_model(str(path))
    return count
