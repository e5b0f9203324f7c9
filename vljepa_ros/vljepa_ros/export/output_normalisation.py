"""Graph pass: a graph output is L2-normalised inside the graph (x / ||x|| over its last axis).

Why: everything the runtime publishes is a unit vector. Normalising the predictor's output in numpy after
``session.run`` cost a handful of numpy calls per batch in the perception node, each slowed by the caches the
model had just evicted. Inside the graph the same arithmetic runs in the same ``session.run`` call, far
cheaper. A zero or non-finite row cannot raise inside a graph, so the pass also adds a scalar output
``<output>_valid``: 1.0 when every row's norm was finite and non-zero, else 0.0. The runtime reads that one
value instead of scanning the embeddings in numpy, which is slower on cold caches (docs/benchmarks.md).

Needs onnx only (no torch): `model.export_predictor` applies it to every exported predictor (the manifest
records it as ``predictor.output_l2_normalized``), and `rewrite_file` applies it to an existing predictor.onnx
(its sha256, and so the manifest's hash and version, change with it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

# ReduceL2 took its axes as an attribute until opset 18 and as an input from 18 on.
_AXES_AS_INPUT_FROM = 18


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def l2_normalise_output(model: onnx.ModelProto, output: str) -> None:
    """Rewrite ``model`` in place so graph output ``output`` is divided by its L2 norm over the last axis.

    The node that produced ``output`` now writes ``<output>/unnormalised``; the output keeps its name, dtype
    and shape, and a scalar float32 output ``<output>_valid`` follows it (see the module docstring). Raises
    ValueError when the graph has no such output or it is already normalised here.
    """
    graph = model.graph
    if output not in {o.name for o in graph.output}:
        raise ValueError(f"graph has no output {output!r} (outputs: {[o.name for o in graph.output]})")
    raw = f"{output}/unnormalised"
    if any(raw in node.output for node in graph.node):
        raise ValueError(f"output {output!r} is already L2-normalised by this pass")
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == output:
                node.output[i] = raw
        for i, name in enumerate(node.input):
            if name == output:  # another node reading the output keeps reading the raw values
                node.input[i] = raw
    norm = f"{output}/norm"
    if _opset(model) >= _AXES_AS_INPUT_FROM:
        axes = f"{output}/norm_axes"
        graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), axes))
        reduce = helper.make_node("ReduceL2", [raw, axes], [norm], name=f"{output}/ReduceL2", keepdims=1)
    else:
        reduce = helper.make_node("ReduceL2", [raw], [norm], name=f"{output}/ReduceL2", axes=[-1], keepdims=1)
    graph.node.extend([reduce, helper.make_node("Div", [raw, norm], [output], name=f"{output}/Div")])
    # valid = min over rows of (0 < norm < inf) as 0/1; NaN compares false, so it gives 0 too.
    valid = valid_output_name(output)
    zero, inf = f"{output}/zero", f"{output}/inf"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(0, dtype=np.float32), zero),
            numpy_helper.from_array(np.array(np.inf, dtype=np.float32), inf),
        ]
    )
    checks = [
        helper.make_node("Greater", [norm, zero], [f"{output}/nonzero"]),
        helper.make_node("Less", [norm, inf], [f"{output}/finite"]),
        helper.make_node("And", [f"{output}/nonzero", f"{output}/finite"], [f"{output}/row_ok"]),
        helper.make_node("Cast", [f"{output}/row_ok"], [f"{output}/row_ok_float"], to=onnx.TensorProto.FLOAT),
    ]
    if _opset(model) >= _AXES_AS_INPUT_FROM:
        checks.append(helper.make_node("ReduceMin", [f"{output}/row_ok_float"], [valid], keepdims=0))
    else:
        checks.append(helper.make_node("ReduceMin", [f"{output}/row_ok_float"], [valid], axes=[0, 1], keepdims=0))
    graph.node.extend(checks)
    position = [o.name for o in graph.output].index(output) + 1
    graph.output.insert(position, helper.make_tensor_value_info(valid, onnx.TensorProto.FLOAT, []))


def valid_output_name(output: str) -> str:
    """The name of the scalar validity output the pass adds next to ``output``."""
    return f"{output}_valid"


def rewrite_file(path: str | Path, output: str = "embedding") -> None:
    """Apply `l2_normalise_output` to an .onnx file in place (weights inline) and check the result."""
    model = onnx.load(str(path))
    l2_normalise_output(model, output)
    onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))
