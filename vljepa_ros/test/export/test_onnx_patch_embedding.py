"""The patch-embedding graph pass: same outputs, no Conv left, other convolutions untouched."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vljepa_ros.export.patch_embedding import patch_convs_to_matmul
from vljepa_ros.runtime.manifest import load_manifest

from support.perception_fixtures import tiny_random_manifest


def conv_model(in_shape, kernel, strides=None, pads=None, bias=True, out_ch=6, seed=0):
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((out_ch, in_shape[0], *kernel)).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(out_ch).astype(np.float32), "b"))
        inputs.append("b")
    attrs = {"kernel_shape": list(kernel), "strides": list(strides or kernel)}
    if pads:
        attrs["pads"] = pads
    node = helper.make_node("Conv", inputs, ["y"], name="patch_embed", **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *in_shape])],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, ["batch", out_ch, *(f"d{i}" for i in range(len(kernel)))]
            )
        ],
        initializer=inits,
    )
    # IR 8 (opset 18 era): onnxruntime refuses IR versions newer than it knows, and onnx writes its newest.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize(
    "in_shape,kernel,bias",
    [
        ((3, 4, 8, 8), (2, 4, 4), True),  # V-JEPA tubelets
        ((3, 8, 12), (4, 4), False),  # image patches, no bias
    ],
)
def test_patch_conv_becomes_matmul_with_the_same_output(in_shape, kernel, bias):
    model = conv_model(in_shape, kernel, bias=bias)
    x = np.random.default_rng(1).standard_normal((3, *in_shape)).astype(np.float32)
    expected = run(model, x)
    assert patch_convs_to_matmul(model) == 1
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert "Conv" not in ops and "MatMul" in ops
    assert "w" not in {t.name for t in model.graph.initializer}  # the Conv weight is not kept twice
    for batch in (1, 3):
        np.testing.assert_allclose(run(model, x[:batch]), expected[:batch], atol=1e-5)


@pytest.mark.parametrize("kernel,strides,pads", [((3, 3), (1, 1), [1, 1, 1, 1]), ((4, 4), (2, 2), None)])
def test_overlapping_or_padded_convolutions_are_left_alone(kernel, strides, pads):
    model = conv_model((3, 8, 8), kernel, strides=strides, pads=pads)
    assert patch_convs_to_matmul(model) == 0
    assert [n.op_type for n in model.graph.node] == ["Conv"]


def test_exported_encoders_have_no_conv(tmp_path_factory):
    manifest = load_manifest(tiny_random_manifest(tmp_path_factory))
    graph = onnx.load(str(manifest.encoder.file))
    assert "Conv" not in {n.op_type for n in graph.graph.node}
