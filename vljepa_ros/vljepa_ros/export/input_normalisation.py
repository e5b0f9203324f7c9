"""Graph pass: the encoder takes the uint8 centre crop, and the mean/std normalisation moves into the weights.

The V-JEPA 2 transform ends with x_norm = x * scale + offset per channel (scale = 1 / (255 std), offset =
-mean / std), and the patch embedding right after it is linear: W x_norm + b = (W diag(scale)) x + (b + W
offset). So an encoder whose patch embedding is a MatMul (`patch_embedding`) can take the cropped
frames as uint8 (batch, T, S, S, 3) with only a Cast in front: the per-channel scale goes into the weight's
rows, the offset into the bias, and the channels-last layout into the patch Transpose that already exists.

Why: on the CPU the host side of preprocessing was resize, crop, a uint8 -> float32 look-up and a transpose
into planes, for every sampled frame and on the critical path for the frame that completes a clip. The last
two steps and three quarters of the bytes every clip copies are gone; the graph gains one Cast.

Needs onnx only (no torch). The rewritten graph differs from the original by float rounding (the products
are summed in another order); `model.export_encoder` checks its parity against PyTorch like any graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vljepa_ros.export.onnx_graph import node_attribute, static_dims
from vljepa_ros.runtime.manifest import ClipSpec
from vljepa_ros.runtime.preprocessing import normalisation_constants

INPUT_NAME = "frames"


class GraphPatternError(ValueError):
    """The graph does not have the shape this pass rewrites (float clip -> MatMul patch embedding)."""


def fold_input_normalisation(model: onnx.ModelProto, clip: ClipSpec) -> None:
    """Rewrite ``model`` in place: input ``clip`` float32 (B, 3, T, S, S), normalised on the host, becomes
    ``frames`` uint8 (B, T, S, S, 3), the raw centre crop. Raises GraphPatternError for any other graph."""
    graph = model.graph
    if len(graph.input) != 1:
        raise GraphPatternError(f"expected one graph input, got {[i.name for i in graph.input]}")
    old = graph.input[0]
    dims = static_dims(old)
    size = clip.crop_size
    if old.type.tensor_type.elem_type != TensorProto.FLOAT or dims[1:] != [3, clip.frames, size, size]:
        raise GraphPatternError(f"input {old.name!r} is not a float32 (batch, 3, {clip.frames}, {size}, {size}) clip")
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(name: str, op_type: str) -> onnx.NodeProto:
        found = consumers.get(name, [])
        if len(found) != 1 or found[0].op_type != op_type:
            raise GraphPatternError(f"{name!r} should feed exactly one {op_type}, feeds {[n.op_type for n in found]}")
        return found[0]

    readers = consumers.get(old.name, [])
    split = [n for n in readers if n.op_type == "Reshape"]
    shapes = [n for n in readers if n.op_type == "Shape"]
    if len(split) != 1 or len(split) + len(shapes) != len(readers) or any(n.attribute for n in shapes):
        raise GraphPatternError(
            f"input {old.name!r} should feed one Reshape and plain Shapes, feeds {[n.op_type for n in readers]}"
        )
    split = split[0]
    split_shape = numpy_helper.to_array(inits[split.input[1]]).tolist() if split.input[1] in inits else None
    if split_shape is None or len(split_shape) != 8 or split_shape[1] != 3:
        raise GraphPatternError("the input's Reshape is not the patch split (B, C, gT, kT, gH, kH, gW, kW)")
    to_patches = only_consumer(split.output[0], "Transpose")
    if list(node_attribute(to_patches, "perm")) != [0, 2, 4, 6, 1, 3, 5, 7]:
        raise GraphPatternError("the patch Transpose does not order values as (B, gT, gH, gW, C, kT, kH, kW)")
    flat = only_consumer(to_patches.output[0], "Reshape")
    matmul = only_consumer(flat.output[0], "MatMul")
    if matmul.input[1] not in inits:
        raise GraphPatternError("the patch MatMul's weight is not a constant")
    _, _, g_t, k_t, g_h, k_h, g_w, k_w = split_shape
    weight = numpy_helper.to_array(inits[matmul.input[1]]).astype(np.float64)  # rows in (C, kT, kH, kW) order
    scale, offset = (v.astype(np.float64) for v in normalisation_constants(clip))
    by_channel = weight.reshape(3, k_t, k_h, k_w, -1)
    bias_shift = np.einsum("cthwd,c->d", by_channel, offset)
    # Rows reordered to (kT, kH, kW, C): the patch Transpose then moves runs of kW * C contiguous values, where
    # (C, kT, kH, kW) rows would make it gather single bytes from channels-last frames, slower than the float graph.
    new_weight = (by_channel * scale[:, None, None, None, None]).transpose(1, 2, 3, 0, 4)
    new_weight = new_weight.reshape(weight.shape).astype(np.float32)
    adds = consumers.get(matmul.output[0], [])
    if len(adds) != 1 or adds[0].op_type != "Add" or adds[0].input[1] not in inits:
        raise GraphPatternError("the patch MatMul is not followed by its bias Add")
    bias_add = adds[0]
    bias = numpy_helper.to_array(inits[bias_add.input[1]]).astype(np.float64)

    prefix = f"{old.name}/from_uint8"
    consts = {
        f"{prefix}/split_shape": np.array([-1, g_t, k_t, g_h, k_h, g_w, k_w, 3], dtype=np.int64),
        f"{prefix}/old_layout": np.array([0, 4, 1, 2, 3], dtype=np.int64),
        f"{prefix}/weight": new_weight,
        f"{prefix}/bias": (bias + bias_shift).astype(np.float32),
    }
    cast = helper.make_node("Cast", [INPUT_NAME], [f"{prefix}/float"], name=f"{prefix}/Cast", to=TensorProto.FLOAT)
    split.input[0], split.input[1] = cast.output[0], f"{prefix}/split_shape"
    # (B, gT, kT, gH, kH, gW, kW, C) -> (B, gT, gH, gW, kT, kH, kW, C): the order the new weight's rows have.
    del to_patches.attribute[:]
    to_patches.attribute.append(helper.make_attribute("perm", [0, 1, 3, 5, 2, 4, 6, 7]))
    matmul.input[1] = f"{prefix}/weight"
    bias_add.input[1] = f"{prefix}/bias"
    new_nodes = [cast]
    if shapes:  # Shape(clip) fed the position grid: the same dims, read off the new layout
        new_nodes.append(helper.make_node("Shape", [INPUT_NAME], [f"{prefix}/shape"]))
        new_nodes.append(
            helper.make_node("Gather", [f"{prefix}/shape", f"{prefix}/old_layout"], [f"{prefix}/old_shape"], axis=0)
        )
        for node in shapes:
            node.op_type = "Identity"
            node.input[0] = f"{prefix}/old_shape"
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    nodes = new_nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)
    batch = old.type.tensor_type.shape.dim[0]
    new_input = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [None, clip.frames, size, size, 3])
    new_input.type.tensor_type.shape.dim[0].CopyFrom(batch)
    graph.input.remove(old)
    graph.input.append(new_input)


def rewrite_file(path: str | Path, clip: ClipSpec) -> None:
    """Apply `fold_input_normalisation` to an .onnx file in place (weights inline) and check the result."""
    model = onnx.load(str(path))
    fold_input_normalisation(model, clip)
    onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))
