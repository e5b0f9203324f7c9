"""Export: ONNX vs PyTorch parity (encoder, predictor normalised in the graph), parity failure, the CLI."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from vljepa_ros.export.cli import main
from vljepa_ros.export.model import export_encoder, export_predictor
from vljepa_ros.export.parity import ParityError, check_parity
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config
from vljepa_ros.torch_models.vljepa_predictor import VLJepaPredictor, predictor_config


@pytest.mark.parametrize("tiled", [True, False])
def test_encoder_parity_and_dynamic_batch(tmp_path, tiled):
    torch.manual_seed(0)
    cfg = encoder_config("tiny", num_frames=4, img_size=32, rope_tiled_freqs=tiled)
    encoder = VJepa2Encoder(cfg).eval()
    lines = []
    exported = export_encoder(encoder, tmp_path / "enc.onnx", log=lines.append)
    assert exported.max_abs_error < 1e-4 and lines[0].startswith("parity encoder: max abs error")
    session = ort.InferenceSession(str(tmp_path / "enc.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, 3, 4, 32, 32)
        with torch.no_grad():
            want = encoder(x).numpy()
        np.testing.assert_allclose(session.run(None, {"clip": x.numpy()})[0], want, atol=1e-4)


def test_predictor_parity_with_padding(tmp_path):
    torch.manual_seed(0)
    predictor = VLJepaPredictor(predictor_config("tiny", visual_dim=48)).eval()
    exported = export_predictor(predictor, tmp_path / "pred.onnx", num_tokens=32, max_tokens=8, log=lambda _: None)
    assert exported.max_abs_error < 1e-4
    assert [t.name for t in exported.spec.inputs] == ["visual_tokens", "query_ids", "query_mask"]
    assert exported.spec.output_l2_normalized
    session = ort.InferenceSession(str(tmp_path / "pred.onnx"), providers=["CPUExecutionProvider"])
    tokens = torch.randn(2, 32, 48)
    ids = torch.tensor([[3, 4, 5, 0, 0, 0, 0, 0], [7, 0, 0, 0, 0, 0, 0, 0]])
    mask = (ids > 0).long()
    with torch.no_grad():
        want = torch.nn.functional.normalize(predictor(tokens, ids, mask), dim=-1).numpy()
    got = session.run(None, {"visual_tokens": tokens.numpy(), "query_ids": ids.numpy(), "query_mask": mask.numpy()})
    np.testing.assert_allclose(got[0], want, atol=1e-4)


def test_parity_check_fails_above_tolerance(tmp_path):
    torch.manual_seed(0)
    encoder = VJepa2Encoder(encoder_config("tiny", num_frames=2, img_size=16, depth=1)).eval()
    export_encoder(encoder, tmp_path / "enc.onnx", log=lambda _: None)
    clip = np.random.default_rng(0).standard_normal((1, 3, 2, 16, 16)).astype(np.float32)
    with pytest.raises(ParityError, match="encoder: max abs error .* exceeds tolerance 0.001"):
        check_parity(
            lambda x: encoder(x) + 0.01, tmp_path / "enc.onnx", {"clip": clip}, 1e-3, "encoder", log=lambda _: None
        )


def test_cli_random_model_writes_a_valid_manifest(tmp_path, capsys):
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
            "--model-id",
            "cli-test",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "parity encoder: max abs error" in out and "parity predictor: max abs error" in out
    m = load_manifest(tmp_path / "m" / "manifest.yaml")
    assert (m.model_id, m.embedding_dim, m.clip.frames, m.clip.crop_size, m.clip.resize_short) == (
        "cli-test",
        24,
        4,
        32,
        36,
    )
    assert (tmp_path / "m" / "query_vocab.txt").read_text().splitlines()[:2] == ["<pad>", "<unk>"]


def test_cli_reports_parity_failure(tmp_path, capsys):
    code = main(
        ["--out", str(tmp_path / "m"), "--encoder-preset", "tiny", "--frames", "2", "--crop", "16", "--tolerance", "-1"]
    )
    assert code == 1
    assert "exceeds tolerance" in capsys.readouterr().err


def test_fp16_export_keeps_fp32_io_and_fp32_rope_angles(tmp_path):
    import onnx

    torch.manual_seed(0)
    encoder = VJepa2Encoder(encoder_config("tiny", num_frames=4, img_size=32)).eval()
    exported = export_encoder(encoder, tmp_path / "enc16.onnx", tolerance=5e-2, fp16=True, log=lambda _: None)
    assert exported.max_abs_error < 5e-2
    session = ort.InferenceSession(str(tmp_path / "enc16.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == session.get_outputs()[0].type == "tensor(float)"
    graph = onnx.load(str(tmp_path / "enc16.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    trig = [n for n in graph.node if n.op_type in ("Sin", "Cos")]
    assert trig and all(producer[n.input[0]].op_type != "Cast" for n in trig)  # angles never pass through fp16
    weights = {i.data_type for i in graph.initializer if len(i.dims) == 2}
    assert weights == {onnx.TensorProto.FLOAT16}


def test_fused_preprocessing_graph_matches_cpu_preprocessing(tmp_path):
    from vljepa_ros.export.model import export_tiny_random
    from vljepa_ros.runtime.preprocessing import preprocess_clip
    from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

    fused = VLJepaRuntime.from_manifest(
        export_tiny_random(tmp_path / "f", fused_frame_size=(90, 120)), providers=("cpu",)
    )
    plain = VLJepaRuntime.from_manifest(export_tiny_random(tmp_path / "p"), providers=("cpu",))
    assert fused.fused_preprocessing and fused.manifest.encoder.inputs[0].shape == ("batch", 8, 90, 120, 3)
    rng = np.random.default_rng(0)
    # smooth frames: bilinear interpolation of a coarse pattern, like camera images, not per-pixel noise
    frames = [np.kron(rng.integers(0, 256, (9, 12, 3)), np.ones((10, 10, 1))).astype(np.uint8) for _ in range(8)]
    x = fused.prepare_clip(frames)
    assert x.shape == (8, 90, 120, 3) and x.dtype == np.uint8
    got = fused.encode(x)
    want = plain.encode(preprocess_clip(frames, plain.manifest.clip))
    # same weights (same seed); the graph resizes in float, OpenCV rounds to uint8: small differences only
    assert np.abs(got - want).max() < 0.1
    assert np.abs(got - want).mean() < 0.01


def test_cli_fp16_and_fused_flags(tmp_path, capsys):
    code = main(
        [
            "--out",
            str(tmp_path / "m"),
            "--encoder-preset",
            "tiny",
            "--frames",
            "2",
            "--crop",
            "16",
            "--fp16",
            "--fused-preprocessing",
            "24x32",
        ]
    )
    assert code == 0, capsys.readouterr().err
    m = load_manifest(tmp_path / "m" / "manifest.yaml")
    assert m.precision == "fp16" and m.encoder.fused_preprocessing
    assert m.encoder.inputs[0].dtype == "uint8" and m.encoder.inputs[0].shape == ("batch", 2, 24, 32, 3)
    assert main(["--out", str(tmp_path / "x"), "--fused-preprocessing", "480by640"]) == 1
    assert "expected HxW" in capsys.readouterr().err


def test_large_graphs_keep_weights_in_one_data_file_covered_by_the_hash(tmp_path, monkeypatch):
    import vljepa_ros.export.graphs as export_module
    from vljepa_ros.export.model import export_tiny_random
    from vljepa_ros.runtime.manifest import ManifestError
    from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

    monkeypatch.setattr(export_module, "EXTERNAL_DATA_BYTES", 0)  # treat the tiny model as a >2 GB one
    manifest = export_tiny_random(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "encoder.onnx.data" in files and "predictor.onnx.data" in files
    assert (tmp_path / "encoder.onnx").stat().st_size < (tmp_path / "encoder.onnx.data").stat().st_size
    for name in ("encoder", "predictor"):  # the data file is as readable as its graph
        graph_mode = (tmp_path / f"{name}.onnx").stat().st_mode & 0o777
        assert (tmp_path / f"{name}.onnx.data").stat().st_mode & 0o777 == graph_mode
    runtime = VLJepaRuntime.from_manifest(manifest, providers=("cpu",))
    assert runtime.encode(np.zeros((1, 3, 8, 64, 64), np.float32)).shape == (1, 256, 96)
    with open(tmp_path / "encoder.onnx.data", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x01\x02\x03")
    with pytest.raises(ManifestError, match=r"encoder\.sha256"):
        load_manifest(manifest)


def test_cli_exports_an_official_layout_checkpoint(tmp_path, capsys):
    """export_model --encoder-checkpoint: a ViT-B-width file in the published key layout exports and matches."""
    torch.manual_seed(0)
    cfg = encoder_config("vit_b", depth=1, mlp_dim=64, num_frames=2, img_size=32)
    source = VJepa2Encoder(cfg).eval()
    torch.save(
        {"target_encoder": {f"module.backbone.{k}": v for k, v in source.state_dict().items()}, "epoch": 1},
        tmp_path / "vitb.pt",
    )
    code = main(
        [
            "--out",
            str(tmp_path / "m"),
            "--encoder-checkpoint",
            str(tmp_path / "vitb.pt"),
            "--frames",
            "2",
            "--crop",
            "32",
        ]
    )
    assert code == 0, capsys.readouterr().err
    m = load_manifest(tmp_path / "m" / "manifest.yaml")
    assert m.encoder.outputs[0].shape == ("batch", 4, 768)
    clip = torch.randn(1, 3, 2, 32, 32)
    session = ort.InferenceSession(str(m.encoder.file), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"clip": clip.numpy()})[0], source(clip).numpy(), atol=1e-4)
