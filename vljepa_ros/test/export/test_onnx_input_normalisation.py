"""The input-normalisation graph pass: uint8 crops in, the same tokens out; export and pipeline use it."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from vljepa_ros.export.input_normalisation import GraphPatternError, fold_input_normalisation
from vljepa_ros.export.model import export_encoder, export_tiny_random
from vljepa_ros.perception.config import PipelineConfig
from vljepa_ros.perception.pipeline import PerceptionPipeline
from vljepa_ros.runtime.preprocessing import crop_clip, preprocess_clip
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config

from support.perception_fixtures import moving_frame


def _tiny_encoder(frames=4, size=32):
    torch.manual_seed(0)
    return VJepa2Encoder(encoder_config("tiny", num_frames=frames, img_size=size)).eval()


def test_exported_encoder_on_uint8_crops_matches_torch_on_normalised_clips(tmp_path):
    encoder = _tiny_encoder()
    lines = []
    exported = export_encoder(encoder, tmp_path / "enc.onnx", normalise_in_graph=True, log=lines.append)
    spec = exported.spec
    assert spec.normalise_in_graph and not spec.fused_preprocessing
    assert (spec.inputs[0].name, spec.inputs[0].dtype, spec.inputs[0].shape) == (
        "frames",
        "uint8",
        ("batch", 4, 32, 32, 3),
    )
    assert exported.max_abs_error < 1e-4 and lines[0].startswith("parity encoder")
    export_encoder(encoder, tmp_path / "plain.onnx", log=lambda _: None)
    ops = {name: [n.op_type for n in onnx.load(str(tmp_path / name)).graph.node] for name in ("enc.onnx", "plain.onnx")}
    # Normalisation costs the graph one Cast: no arithmetic was added in front of the patch embedding.
    assert ops["enc.onnx"][0] == "Cast" and ops["enc.onnx"].count("Cast") == ops["plain.onnx"].count("Cast") + 1
    for arithmetic in ("Mul", "Add", "Sub", "Div"):
        assert ops["enc.onnx"].count(arithmetic) == ops["plain.onnx"].count(arithmetic)
    session = ort.InferenceSession(str(tmp_path / "enc.onnx"), providers=["CPUExecutionProvider"])
    from vljepa_ros.export.model import clip_spec_for

    clip = clip_spec_for(encoder, 4.0)
    rng = np.random.default_rng(1)
    for batch in (1, 3):
        raw = [[rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(4)] for _ in range(batch)]
        crops = np.stack([crop_clip(frames, clip) for frames in raw])
        with torch.no_grad():
            want = encoder(torch.from_numpy(np.stack([preprocess_clip(f, clip) for f in raw]))).numpy()
        np.testing.assert_allclose(session.run(None, {"frames": crops})[0], want, atol=1e-4)


def test_other_graphs_are_refused_with_the_reason():
    encoder = _tiny_encoder()
    from vljepa_ros.export.model import clip_spec_for

    clip = clip_spec_for(encoder, 4.0)
    x = onnx.helper.make_tensor_value_info("clip", onnx.TensorProto.FLOAT, ["batch", 3, 4, 32, 32])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 3, 4, 32, 32])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["clip"], ["y"])], "g", [x], [y])
    with pytest.raises(GraphPatternError, match="should feed one Reshape"):
        fold_input_normalisation(onnx.helper.make_model(graph), clip)
    wrong = onnx.helper.make_tensor_value_info("clip", onnx.TensorProto.FLOAT, ["batch", 3, 4, 16, 16])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["clip"], ["y"])], "g", [wrong], [y])
    with pytest.raises(GraphPatternError, match="is not a float32"):
        fold_input_normalisation(onnx.helper.make_model(graph), clip)


def test_fp16_or_fused_exports_cannot_also_normalise_in_graph(tmp_path):
    with pytest.raises(ValueError, match="normalise_in_graph: not with fp16"):
        export_encoder(_tiny_encoder(), tmp_path / "enc.onnx", normalise_in_graph=True, fp16=True)


def test_pipeline_on_a_uint8_crop_model_gives_the_float_models_results(tmp_path):
    """The same weights exported both ways: identical inputs in the crop layout, embeddings equal within 1e-5."""
    models = {
        kind: VLJepaRuntime.from_manifest(
            export_tiny_random(tmp_path / kind, normalise_in_graph=kind == "crop"), providers=("cpu",)
        )
        for kind in ("float", "crop")
    }
    assert models["crop"].manifest.encoder.normalise_in_graph
    results = {}
    for kind, runtime in models.items():
        pipeline = PerceptionPipeline(runtime, PipelineConfig(transition_horizon_s=1.0, queue_depth=100))
        raw = [moving_frame(i * 0.25) for i in range(8)]
        prepared = [pipeline.prepare_frame(f) for f in raw]
        np.testing.assert_array_equal(pipeline.clip_input(prepared), runtime.prepare_clip(raw))
        for i in range(16):
            stamp = i * 250_000_000
            pipeline.offer_frame("front", "front_optical", stamp, moving_frame(stamp / 1e9))
        results[kind] = [pipeline.step() for _ in range(pipeline.queue.pending())]
    assert models["crop"].prepare_clip([moving_frame(0)] * 8).shape == (8, 64, 64, 3)
    assert len(results["crop"]) == len(results["float"]) == 9 and results["crop"][-1].transitions
    for a, b in zip(results["float"], results["crop"]):
        np.testing.assert_allclose(a.embeddings[0].embedding, b.embeddings[0].embedding, atol=1e-5)
        for ta, tb in zip(a.transitions, b.transitions):
            np.testing.assert_allclose(ta.transition_embedding, tb.transition_embedding, atol=1e-5)


def test_cli_flag_writes_a_crop_input_model_the_runtime_loads(tmp_path, capsys):
    from vljepa_ros.export.cli import main

    code = main(
        [
            "--out",
            str(tmp_path / "m"),
            "--encoder-preset",
            "tiny",
            "--frames",
            "4",
            "--crop",
            "32",
            "--embedding-dim",
            "24",
            "--normalise-in-graph",
        ]
    )
    assert code == 0, capsys.readouterr().err
    runtime = VLJepaRuntime.from_manifest(tmp_path / "m" / "manifest.yaml", providers=("cpu",))
    assert runtime.manifest.encoder.normalise_in_graph
    clip = runtime.prepare_clip([moving_frame(i * 0.25) for i in range(4)])
    assert clip.shape == (4, 32, 32, 3) and clip.dtype == np.uint8
    assert runtime.predict_default(runtime.encode(clip)).shape == (1, 24)
    code = main(
        [
            "--out",
            str(tmp_path / "bad"),
            "--encoder-preset",
            "tiny",
            "--frames",
            "4",
            "--crop",
            "32",
            "--normalise-in-graph",
            "--fp16",
        ]
    )
    assert code == 1 and "normalise_in_graph: not with fp16" in capsys.readouterr().err
