"""open-vljepa at full size with random weights: export once, then one clip through the runtime, a short bag
through `replay` and frames through the perception node, each in its own process, with the C++ example consumer
(examples/embedding_listener_cpp) reading the node's full-size embeddings beside an rclpy subscriber.

ViT-L 8x256 x-encoder, the predictor as open-vljepa keeps it (8 Llama-3.2-1B layers of 2048, vocab 128256,
Llama-3 RoPE scaling, 64-token queries), EmbeddingGemma-300m's shape + a 1536-d projector. Checks the graphs
load in ONNX Runtime (the predictor's weights in external data, its embedding table in query_embeddings.npy)
and prints export time, file sizes, the runtime's load time, resident memory and per-clip CPU latency, and for
replay and the node their load time, peak resident memory (VmHWM) and time to the first embedding
(docs/benchmarks.md, "open-vljepa at full size"). Needs ~12 GB of RAM and about half an hour on two cores.
"""

import gc
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray

from vljepa_msgs.msg import Embedding
from vljepa_ros.bags import bag_io
from vljepa_ros.export.open_vljepa import export_open_vljepa
from vljepa_ros.nodes.spinning import NodeSpinner
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.tiny_world.bag_writer import write_stream_bag
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream
from vljepa_ros.tools.node_process import node_command, stop_process
from vljepa_ros.tools.replay_outputs import TOPIC_EMBEDDING
from vljepa_ros.torch_models.gemma3_text import GemmaYEncoder, gemma3_config_from_hf
from vljepa_ros.torch_models.open_vljepa import (
    CAPTION_PAD_TOKEN,
    QUERY_PAD_TOKEN,
    OpenVLJepa,
    fixed_length_tokenizer,
)
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config
from vljepa_ros.torch_models.vljepa_predictor import Llama3RopeScaling, VLJepaPredictor, VLJepaPredictorConfig

from support.cpp_listener import expected_line, running_listener, stamp_text
from support.open_vljepa_fixture import write_stand_in_tokenizers
from support.polling import wait_until

# google/embeddinggemma-300m's config.json (architecture fields).
EMBEDDINGGEMMA_300M = {
    "hidden_size": 768,
    "intermediate_size": 1152,
    "num_hidden_layers": 24,
    "num_attention_heads": 3,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "vocab_size": 262144,
    "sliding_window": 512,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 4,
    "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1_000_000.0,
    "rope_local_base_freq": 10_000.0,
    "use_bidirectional_attention": True,
}
LLAMA_3_2_ROPE = Llama3RopeScaling(
    factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192
)
MAX_QUERY_LEN = MAX_CAPTION_LEN = 64  # open-vljepa's configs/base.yaml data section
# Enough for one 8-frame clip at the model's 4 Hz (more clips would cost minutes each on the CPU).
REPLAY_BAG_S = 2.0
NODE_FRAMES = 75  # 2.5 s at 30 Hz: one clip, with room for a best-effort frame lost
CAMERA_TOPIC = "/full_size_test/image_raw"
PUBLISHER = Path(__file__).resolve().parents[1] / "support" / "camera_publisher_process.py"
CHILD_TIMEOUT_S = 1200  # a load with warm-up plus one clip takes minutes on a CPU

RUNTIME_PROBE = r"""
import json, sys, time
import numpy as np

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "VmHWM")):
            yield line.split()[0].rstrip(":"), int(line.split()[1]) / 1024

from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

start = time.perf_counter()
runtime = VLJepaRuntime.from_manifest(sys.argv[1], providers=("cpu",), warmup_runs=0)
load_s = time.perf_counter() - start
after_load = dict(rss_mib())
frames = list(np.random.default_rng(0).integers(0, 256, (runtime.manifest.clip.frames, 480, 640, 3), dtype=np.uint8))
timings = []
for _ in range(2):
    start = time.perf_counter()
    clip = runtime.prepare_clip(frames)
    t1 = time.perf_counter()
    tokens = runtime.encode(clip)
    t2 = time.perf_counter()
    embedding = runtime.predict(tokens, runtime.manifest.queries["caption"])
    t3 = time.perf_counter()
    timings.append({"preprocess_s": t1 - start, "encoder_s": t2 - t1, "predictor_s": t3 - t2})
after_clip = dict(rss_mib())
start = time.perf_counter()
text_encoder = runtime.load_text_encoder()
text_load_s = time.perf_counter() - start
start = time.perf_counter()
texts = text_encoder.encode(["a person walks a dog", "a robot arm picks up a small blue box from the table"])
text_s = time.perf_counter() - start
print(json.dumps({
    "load_s": load_s, "rss_after_load_mib": after_load["VmRSS"], "rss_after_clip_mib": after_clip["VmRSS"],
    "peak_rss_mib": after_clip["VmHWM"], "clip": timings[-1], "first_clip": timings[0],
    "text_encoder_load_s": text_load_s, "two_captions_s": text_s, "rss_with_text_encoder_mib": dict(rss_mib())["VmRSS"],
    "embedding_shape": list(embedding.shape), "text_shape": list(texts.shape),
}))
"""


def full_size_model(tokenizers) -> tuple[VJepa2Encoder, OpenVLJepa]:
    torch.manual_seed(0)
    encoder = VJepa2Encoder(encoder_config("vit_l", num_frames=8, img_size=256)).eval()
    predictor = VLJepaPredictor(
        VLJepaPredictorConfig(visual_dim=1024, max_query_tokens=MAX_QUERY_LEN, rope_scaling=LLAMA_3_2_ROPE)
    ).eval()
    y_encoder = GemmaYEncoder(gemma3_config_from_hf(EMBEDDINGGEMMA_300M), 1536).eval()
    model = OpenVLJepa(
        predictor=predictor,
        y_encoder=y_encoder,
        query_tokenizer=fixed_length_tokenizer(tokenizers["llama"], MAX_QUERY_LEN, QUERY_PAD_TOKEN),
        caption_tokenizer=fixed_length_tokenizer(tokenizers["gemma"], MAX_CAPTION_LEN, CAPTION_PAD_TOKEN),
        epoch=None,
        train_config={},
    )
    return encoder, model


@dataclass(frozen=True)
class FullSizeExport:
    """The exported folder's manifest, how long the export took and its files' sizes."""

    manifest: Path
    export_s: float
    files_mib: dict


class StampedLines:
    """A child process's output, read on a thread, each line with the seconds since ``start`` it arrived at."""

    def __init__(self, stream, start: float):
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(stream, start), daemon=True)
        self._thread.start()

    def _read(self, stream, start: float) -> None:
        for line in stream:
            self.lines.append((time.monotonic() - start, line.rstrip("\n")))

    def wait_closed(self, timeout_s: float = 10.0) -> None:
        """Wait for the reader to see the end of the output (after the process exited)."""
        self._thread.join(timeout_s)

    def first(self, text: str) -> float | None:
        """Seconds to the first line holding ``text``, to 0.1 s (None: none yet)."""
        return next((round(at, 1) for at, line in list(self.lines) if text in line), None)

    def tail(self, chars: int = 3000) -> str:
        """The last ``chars`` characters of the output, for failure messages."""
        return "\n".join(line for _, line in list(self.lines))[-chars:]


class EmbeddingWatch:
    """The perception node's /diagnostics and ~/embedding as seen from the test, with arrival times."""

    def __init__(self, start: float):
        self.node = rclpy.create_node("vljepa_full_size_watch")
        self.start = start
        self.first_diagnostics_s: float | None = None
        self.embeddings: list[tuple[float, Embedding]] = []
        self.node.create_subscription(Embedding, "/vljepa_perception/embedding", self._on_embedding, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.spinner = NodeSpinner([self.node])
        self.spinner.start()

    def _on_embedding(self, msg: Embedding) -> None:
        self.embeddings.append((time.monotonic() - self.start, msg))

    def _on_diagnostics(self, _array: DiagnosticArray) -> None:
        if self.first_diagnostics_s is None:
            self.first_diagnostics_s = time.monotonic() - self.start

    def close(self) -> None:
        self.spinner.shutdown()
        self.node.destroy_node()


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a running process in MiB; 0 once it has exited."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmHWM:")), 0.0)


def child_environment() -> dict[str, str]:
    """This environment with the child's output unbuffered, so each line's arrival time is when it was written."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "RCUTILS_LOGGING_BUFFERED_STREAM": "0"}


@pytest.fixture(scope="module")
def full_size_export(tmp_path_factory) -> FullSizeExport:
    """Export the full-size model once for every test of this module (it takes minutes and ~12 GB)."""
    root = tmp_path_factory.mktemp("open_vljepa_full_size")
    tokenizers = write_stand_in_tokenizers(root)
    encoder, model = full_size_model(tokenizers)
    out = root / "model"
    start = time.perf_counter()
    manifest = export_open_vljepa(
        encoder,
        model,
        tokenizers["llama"],
        tokenizers["gemma"],
        out,
        bank_texts={"captions": ("a red ball rolls to the left", "a person walks a dog")},
        parity_batch=1,
    )
    export_s = time.perf_counter() - start
    del encoder, model
    gc.collect()
    sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted(out.iterdir()) if p.is_file()}
    return FullSizeExport(Path(manifest), export_s, sizes)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_full_size_export_loads_and_runs_one_clip(full_size_export):
    sizes = full_size_export.files_mib
    assert "predictor.onnx.data" in sizes, "the predictor's weights exceed protobuf's 2 GB: external data"
    assert sizes["query_embeddings.npy"] == pytest.approx(128256 * 2048 * 4 / 2**20, abs=1)
    probe = subprocess.run(
        [sys.executable, "-c", RUNTIME_PROBE, str(full_size_export.manifest)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["embedding_shape"] == [1, 1536] and result["text_shape"] == [2, 1536]
    print(json.dumps({"export_s": round(full_size_export.export_s, 1), "files_mib": sizes, **result}, indent=1))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_replay_runs_a_short_bag_through_the_full_size_model(full_size_export, tmp_path):
    write_stream_bag(generate_stream(StreamConfig(seed=7, duration_s=REPLAY_BAG_S)), tmp_path / "bag")
    command = [sys.executable, "-m", "vljepa_ros.tools.replay", str(tmp_path / "bag")]
    command += ["--model", str(full_size_export.manifest), "--out", str(tmp_path / "out"), "--no-report"]
    start = time.monotonic()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_environment()
    )
    output = StampedLines(process.stdout, start)
    peak_mib = 0.0
    while process.poll() is None and time.monotonic() - start < CHILD_TIMEOUT_S:
        peak_mib = max(peak_mib, peak_rss_mib(process.pid))
        time.sleep(0.2)
    if process.poll() is None:
        process.kill()
    wall_s = time.monotonic() - start
    process.wait(timeout=30)
    output.wait_closed()
    assert process.returncode == 0, output.tail()

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (camera,) = summary["cameras"].values()
    assert camera["frames_read"] == REPLAY_BAG_S * StreamConfig().fps
    assert camera["unaccounted_frames"] == 0 and sum(camera["frames_by_fate"].values()) == camera["frames_read"]
    assert camera["clips"] >= 1 and camera["embeddings"] == camera["clips"] and not camera["clip_drops"]
    embeddings = bag_io.read_messages(tmp_path / "out" / "bag", TOPIC_EMBEDDING)
    assert len(embeddings) == camera["clips"]
    print(
        json.dumps(
            {
                "replay_process_wall_s": round(wall_s, 1),
                "replay_model_loaded_s": output.first("replay: model "),
                "replay_peak_rss_mib": round(peak_mib),
                "clips": camera["clips"],
                "frames_by_fate": camera["frames_by_fate"],
                "timings": summary["timings"],
            },
            indent=1,
        )
    )


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.timeout(3600)
def test_perception_node_publishes_an_embedding_from_the_full_size_model(full_size_export, ros, tmp_path):
    """... and a C++ consumer (examples/embedding_listener_cpp) reads the full-size vectors as rclpy does."""
    params = {
        "model_manifest": str(full_size_export.manifest),
        "providers": "[cpu]",
        "intra_op_threads": "0",  # every core for the big graphs, as replay and the runtime default
        "camera_topics": f"[{CAMERA_TOPIC}]",
        "diagnostics_period_s": "0.5",
        "publish_visual_state": "false",
    }
    start = time.monotonic()
    watch = EmbeddingWatch(start)
    with running_listener(tmp_path / "cpp_listener.log") as listener:
        process = subprocess.Popen(
            node_command("vljepa_ros.nodes.perception_node", params),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=child_environment(),
        )
        output = StampedLines(process.stdout, start)
        try:
            ready = wait_until(
                lambda: watch.first_diagnostics_s is not None or process.poll() is not None, CHILD_TIMEOUT_S
            )
            assert ready and process.poll() is None, output.tail()
            rss_ready_mib = peak_rss_mib(process.pid)
            assert wait_until(lambda: listener.parsed("listening") or listener.process.poll() is not None, 240)
            camera_started_s = time.monotonic() - start
            camera = subprocess.run(
                [sys.executable, str(PUBLISHER), "--topic", CAMERA_TOPIC, "--frames", str(NODE_FRAMES), "--rate", "30"],
                capture_output=True,
                text=True,
                timeout=120,
                env=child_environment(),
            )
            assert camera.returncode == 0, camera.stderr[-3000:]
            sent = json.loads(camera.stdout.strip().splitlines()[-1])
            assert sent["matched"] and sent["sent"] == NODE_FRAMES
            arrived = wait_until(lambda: watch.embeddings or process.poll() is not None, CHILD_TIMEOUT_S)
            peak_mib = peak_rss_mib(process.pid)
            assert arrived and watch.embeddings, output.tail()
            wait_until(lambda: len(listener.parsed("embedding")) >= len(watch.embeddings), 30)
        finally:
            watch.close()
            stop_process(process, timeout_s=60)
            output.wait_closed()
    first_s, message = watch.embeddings[0]
    embedding_dim = load_manifest(full_size_export.manifest).embedding_dim
    assert message.model_id == "open-vljepa" and list(message.shape) == [embedding_dim]
    assert message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec in sent["stamps"]
    in_cpp = {fields["stamp"]: fields for fields in listener.parsed("embedding")}
    for _, msg in watch.embeddings:
        expected = expected_line(msg)
        got = in_cpp.get(stamp_text(msg.header.stamp), {})
        assert {key: got.get(key) for key in expected} == expected, (tmp_path / "cpp_listener.log").read_text()
    print(
        json.dumps(
            {
                "node_model_loaded_s": output.first("model open-vljepa"),
                "node_first_diagnostics_s": round(watch.first_diagnostics_s, 1),
                "node_rss_ready_mib": round(rss_ready_mib),
                "camera_started_s": round(camera_started_s, 1),
                "first_embedding_s": round(first_s, 1),
                "first_embedding_after_camera_start_s": round(first_s - camera_started_s, 1),
                "node_peak_rss_mib": round(peak_mib),
            },
            indent=1,
        )
    )
