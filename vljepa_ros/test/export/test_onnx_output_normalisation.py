"""The output-normalisation graph pass, and the runtime's use of it: unit rows, same name, NaN never passes."""

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from vljepa_ros.export.output_normalisation import l2_normalise_output, rewrite_file
from vljepa_ros.runtime.manifest import load_manifest, sha256_of_graph
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

from support.perception_fixtures import tiny_random_manifest


def linear_model(opset, weight, also_read_by_a_node=False):
    """y = x @ w; with `also_read_by_a_node`, a second output z = y + 1 reads the output being normalised."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", weight.shape[1]])]
    inits = [numpy_helper.from_array(weight, "w")]
    if also_read_by_a_node:
        inits.append(numpy_helper.from_array(np.ones(1, np.float32), "one"))
        nodes.append(helper.make_node("Add", ["y", "one"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", weight.shape[1]]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])], outputs, initializer=inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


@pytest.mark.parametrize("opset", [17, 18])
def test_output_rows_become_unit_vectors_in_the_same_direction(opset):
    weight = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    model = linear_model(opset, weight)
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32) * 5
    raw = run(model, x)[0]
    l2_normalise_output(model, "y")
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == ["y", "y_valid"]
    got, valid = run(model, x)
    np.testing.assert_allclose(got, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    assert valid.shape == () and valid == 1.0
    np.testing.assert_allclose(run(model, x[:1])[0], got[:1], atol=1e-6)  # dynamic batch kept


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("bad", [0.0, np.nan, np.inf])
def test_the_validity_output_is_zero_when_any_row_is_zero_or_not_finite(opset, bad):
    model = linear_model(opset, np.eye(4, 6, dtype=np.float32))
    l2_normalise_output(model, "y")
    x = np.ones((3, 4), np.float32)
    x[1] = 0.0 if bad == 0.0 else [1.0, bad, 1.0, 1.0]
    assert run(model, x)[1] == 0.0
    assert run(model, x[[0, 2]])[1] == 1.0


def test_a_node_reading_the_output_keeps_the_raw_values():
    weight = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    model = linear_model(18, weight, also_read_by_a_node=True)
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    raw_y, raw_z = run(model, x)
    l2_normalise_output(model, "y")
    y, _, z = run(model, x)
    np.testing.assert_allclose(z, raw_z, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-6)


def test_unknown_output_and_a_second_pass_are_refused():
    model = linear_model(18, np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="no output 'embedding'"):
        l2_normalise_output(model, "embedding")
    l2_normalise_output(model, "y")
    with pytest.raises(ValueError, match="already L2-normalised"):
        l2_normalise_output(model, "y")


def own_copy(tmp_path_factory, tmp_path):
    """A copy of the tiny random model this test may change (the shared one stays as exported)."""
    shutil.copytree(tiny_random_manifest(tmp_path_factory).parent, tmp_path / "model")
    return tmp_path / "model" / "manifest.yaml"


def test_exported_predictors_normalise_in_the_graph(tmp_path_factory):
    manifest = load_manifest(tiny_random_manifest(tmp_path_factory))
    assert manifest.predictor.output_l2_normalized
    graph = onnx.load(str(manifest.predictor.file)).graph
    assert [o.name for o in graph.output] == ["embedding", "embedding_valid"]
    assert [n.op_type for n in graph.node if n.output[0] == "embedding"] == ["Div"]
    assert [t.name for t in manifest.predictor.outputs] == ["embedding", "embedding_valid"]


def _zero_predictor_model(manifest_path):
    """The model with its predictor's output head zeroed, so every embedding is the zero vector."""
    manifest = load_manifest(manifest_path)
    model = onnx.load(str(manifest.predictor.file))
    head = next(n for n in model.graph.node if "embedding/unnormalised" in n.output)
    for init in model.graph.initializer:
        if init.name in head.input[1:]:
            init.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(init)), init.name))
    onnx.save_model(model, str(manifest.predictor.file))
    text = manifest_path.read_text().replace(manifest.predictor.sha256, sha256_of_graph(manifest.predictor.file))
    manifest_path.write_text(text)
    return manifest_path


def test_runtime_refuses_a_zero_embedding_from_a_normalising_graph(tmp_path_factory, tmp_path):
    runtime = VLJepaRuntime.from_manifest(
        _zero_predictor_model(own_copy(tmp_path_factory, tmp_path)), providers=("cpu",)
    )
    tokens = runtime.encode(np.zeros((1, *runtime._clip_shape), np.float32))
    with pytest.raises(ValueError, match="zero or non-finite embedding"):
        runtime.predict(tokens, "describe the scene")


def _without_the_pass(model):
    """Undo the pass on an exported predictor: what an export before it wrote (`embedding` unnormalised)."""

    def added(name: str) -> bool:
        return name in ("embedding", "embedding_valid") or (
            name.startswith("embedding/") and name != "embedding/unnormalised"
        )

    keep = [n for n in model.graph.node if not all(added(o) for o in n.output)]
    for node in keep:
        node.output[:] = ["embedding" if o == "embedding/unnormalised" else o for o in node.output]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    for init in [t for t in model.graph.initializer if t.name.startswith("embedding/")]:
        model.graph.initializer.remove(init)
    model.graph.output.remove(next(o for o in model.graph.output if o.name == "embedding_valid"))
    return model


def test_older_exports_still_run_and_rewrite_file_normalises_them(tmp_path_factory, tmp_path):
    """A predictor exported before the pass: the runtime normalises in numpy; rewritten, the graph does, alike."""
    manifest_path = own_copy(tmp_path_factory, tmp_path)
    manifest = load_manifest(manifest_path)
    new = VLJepaRuntime.from_manifest(manifest_path, providers=("cpu",))
    old_file = manifest.predictor.file
    onnx.save_model(_without_the_pass(onnx.load(str(old_file))), str(old_file))
    raw = yaml.safe_load(manifest_path.read_text())
    raw["predictor"].pop("output_l2_normalized")
    raw["predictor"]["outputs"] = raw["predictor"]["outputs"][:1]
    raw["predictor"]["sha256"] = sha256_of_graph(old_file)
    manifest_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    old = VLJepaRuntime.from_manifest(manifest_path, providers=("cpu",))
    tokens = new.encode(np.random.default_rng(0).standard_normal((2, *new._clip_shape)).astype(np.float32))
    np.testing.assert_allclose(
        old.predict(tokens, "describe the scene"), new.predict(tokens, "describe the scene"), atol=1e-6
    )
    rewrite_file(old_file)
    feeds = dict(zip(new.predictor.input_names, (tokens, *new._batched_query("describe the scene", 2))))
    got = ort.InferenceSession(str(old_file), providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_allclose(got[0], new.predict(tokens, "describe the scene"), atol=1e-6)
    assert got[1] == 1.0
