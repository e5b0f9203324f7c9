"""A checkpoint trained with a short query length, exported and run the way a robot runs it: `export_model` then
`embed --frames`, `replay` and `bringup` with a camera, captions from the model's own (20-d) bank.

The checkpoint is open-vljepa's layout with `max_query_len: 5`: open-vljepa's default transition query
("What is the main action?", 7 tokens with BOS here) does not fit, so the export writes the shorter default and
checks that the folder loads and runs before it reports success.
"""

import threading
import time

import numpy as np
import pytest
import rclpy
import torch
import torch.nn.functional as F
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vljepa_msgs.msg import Caption
from vljepa_ros.bags import bag_io
from vljepa_ros.export.cli import main as export_main
from vljepa_ros.export.export_check import ExportCheckError, check_export
from vljepa_ros.export.open_vljepa import DEFAULT_QUERY_CHOICES
from vljepa_ros.nodes.ros_conversions import ns_to_time
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.runtime.preprocessing import crop_offsets, resized_size
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
from vljepa_ros.tiny_world.bag_writer import write_stream_bag
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream
from vljepa_ros.tools import replay
from vljepa_ros.tools.bringup import Bringup, BringupOptions, rclpy_args
from vljepa_ros.tools.embed import main as embed_main

from support.open_vljepa_fixture import EMBEDDING_DIM, build_open_vljepa_fixture
from support.polling import wait_until

MAX_QUERY_LEN = 5
CAPTIONS = ("a red ball rolls to the left", "a robot arm picks up a small blue box", "a dog sits", "a person walks")
CAMERA = "/short_query_test/image_raw"


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    root = tmp_path_factory.mktemp("short_query")
    fixture = build_open_vljepa_fixture(root / "downloads", seed=2, with_vjepa2=True, max_query_len=MAX_QUERY_LEN)
    (root / "captions.txt").write_text("\n".join(CAPTIONS) + "\n")
    args = ["--open-vljepa", str(fixture.checkpoint), "--x-encoder", str(fixture.vjepa2_dir)]
    args += ["--llama", str(fixture.llama_dir), "--y-encoder", str(fixture.gemma_dir)]
    return root, args + ["--bank-texts", f"captions={root / 'captions.txt'}"]


@pytest.fixture(scope="module")
def exported(downloads):
    root, args = downloads
    assert export_main([*args, "--out", str(root / "model")]) == 0
    return load_manifest(root / "model" / "manifest.yaml")


def test_export_writes_default_queries_that_fit_and_checks_the_folder(exported, capsys):
    first, shorter = DEFAULT_QUERY_CHOICES["transition"]
    assert exported.queries == {"caption": DEFAULT_QUERY_CHOICES["caption"][0], "transition": shorter}
    assert exported.query_tokenizer.max_tokens == MAX_QUERY_LEN and exported.embedding_dim == EMBEDDING_DIM
    assert exported.clip.resize_antialias and exported.format_version == 3
    runtime = VLJepaRuntime.from_manifest(exported.root / "manifest.yaml", providers=("cpu",), warmup_runs=0)
    for query in exported.queries.values():
        assert int(runtime.query_tokens(query).mask.sum()) <= MAX_QUERY_LEN
    assert check_export(exported.root / "manifest.yaml").startswith("checked ")


def test_a_given_query_over_the_limit_is_refused_in_one_line_naming_it(downloads, capsys):
    root, args = downloads
    code = export_main(
        [*args, "--out", str(root / "refused"), "--query", "transition=what is happening in the video ?"]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 1 and len(err) == 1
    assert "max_query_len is 5" in err[0] and "transition" in err[0]
    assert not (root / "refused" / "manifest.yaml").exists(), "refused before any graph was written"


def test_the_export_check_refuses_a_folder_the_runtime_cannot_use(exported, tmp_path):
    broken = tmp_path / "model"
    broken.mkdir()
    for path in exported.root.iterdir():
        (broken / path.name).symlink_to(path)
    manifest = (exported.root / "manifest.yaml").read_text()
    (broken / "manifest.yaml").unlink()
    (broken / "manifest.yaml").write_text(manifest.replace("What happened?", "what is happening in the video ?"))
    with pytest.raises(ExportCheckError, match="queries.transition.*max_tokens=5") as refused:
        check_export(broken / "manifest.yaml")
    assert "\n" not in str(refused.value)


def torch_transform(frames: np.ndarray, clip) -> np.ndarray:
    """open-vljepa's training transform in torch: antialiased bilinear short side, centre crop, mean/std."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    size = resized_size(*frames.shape[1:3], clip.resize_short)
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = crop_offsets(*size, clip.crop_size)
    x = x[:, :, top : top + clip.crop_size, left : left + clip.crop_size]
    x = (x - torch.tensor(clip.mean).view(1, 3, 1, 1)) / torch.tensor(clip.std).view(1, 3, 1, 1)
    return x.permute(1, 0, 2, 3).contiguous().numpy()  # (3, T, S, S)


def test_embed_frames_match_the_training_transform_through_the_same_graphs(exported, tmp_path):
    clip = exported.clip
    frames = np.random.default_rng(0).integers(0, 256, (clip.frames, 96, 128, 3), dtype=np.uint8)  # 3x down
    np.save(tmp_path / "frames.npy", frames)
    args = ["--manifest", str(exported.root / "manifest.yaml"), "--frames", str(tmp_path / "frames.npy")]
    assert embed_main([*args, "--query", exported.queries["caption"], "--out", str(tmp_path / "r.npz")]) == 0
    with np.load(tmp_path / "r.npz") as result:
        camera = result["predicted"][0]
    runtime = VLJepaRuntime.from_manifest(exported.root / "manifest.yaml", providers=("cpu",), warmup_runs=0)
    reference = runtime.predict(runtime.encode(torch_transform(frames, clip)[None]), exported.queries["caption"])[0]
    assert float(np.dot(camera, reference)) >= 0.9999


def test_replay_captions_come_from_the_models_bank(exported, tmp_path):
    write_stream_bag(generate_stream(StreamConfig(seed=7, duration_s=6.0)), tmp_path / "bag")
    args = [str(tmp_path / "bag"), "--model", str(exported.root / "manifest.yaml"), "--out", str(tmp_path / "out")]
    assert replay.main([*args, "--quiet", "--no-report"]) == 0
    embeddings = bag_io.read_messages(tmp_path / "out" / "bag", replay.TOPIC_EMBEDDING)
    captions = bag_io.read_messages(tmp_path / "out" / "bag", replay.TOPIC_CAPTION)
    assert embeddings and all(len(m.data) == EMBEDDING_DIM for _, m in embeddings)
    assert captions and all(m.text in CAPTIONS for _, m in captions)


def _image(index: int) -> Image:
    message = Image()
    message.header.stamp = ns_to_time(1_700_000_000_000_000_000 + index * 100_000_000)
    message.header.frame_id = "short_query_optical"
    message.height, message.width, message.encoding, message.step = 48, 64, "rgb8", 64 * 3
    frame = np.random.default_rng(index % 3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    message.data = frame.tobytes()
    return message


def test_bringup_with_a_camera_captions_from_the_models_bank(exported):
    options = BringupOptions(camera_topics=(CAMERA,), model_manifest=str(exported.root / "manifest.yaml"))
    context = rclpy.Context()
    rclpy.init(args=rclpy_args(options), context=context)
    bringup = rig = executor = None
    try:
        bringup = Bringup(options, context=context)
        bringup.spin_in_background()
        bank = TextBank.load(exported.banks["captions"])
        assert bringup.decoder._decoder.embedding_dim == bank.dim == EMBEDDING_DIM
        rig = rclpy.create_node("short_query_rig", context=context)
        publisher = rig.create_publisher(Image, CAMERA, qos_profile_sensor_data)
        captions = []
        rig.create_subscription(Caption, "/vljepa_decoder/caption", captions.append, 100)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(rig)
        threading.Thread(target=executor.spin, daemon=True).start()
        assert wait_until(lambda: publisher.get_subscription_count() > 0, 10)
        assert wait_until(lambda: rig.count_publishers("/vljepa_decoder/caption") > 0, 10)
        for index in range(60):
            publisher.publish(_image(index))
            time.sleep(0.03)
        assert wait_until(lambda: len(captions) >= 1, 60)
        rejected = bringup.decoder.pipeline.statistics("short_query_test").rejected
        assert not rejected, f"the decoder rejected embeddings: {dict(rejected)}"
        assert all(c.text in CAPTIONS for c in captions)
    finally:
        if executor is not None:
            executor.shutdown()
        if rig is not None:
            rig.destroy_node()
        if bringup is not None:
            bringup.destroy()
        rclpy.try_shutdown(context=context)
