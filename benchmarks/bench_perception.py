"""Perception node cost, measured side by side in one run (JSON out).

1. Overhead: the node (in this process; one 30 Hz 640x480 rgb8 camera in a child process over DDS, a
   consumer of ~/embedding in another) reports per clip the input stamp -> publish latency, the frame
   received -> publish time, and the model time of its batch. The node's own cost per clip is (received ->
   publish) - (model time). The runtime wrappers' own work (encode/predict minus the session.run calls inside
   them, batch 1, same clip) is measured beside raw session.run calls, in random order rep by rep. The
   overhead ratio, per clip: (own cost + wrapper work) / (the clip's time inside session.run), so machine
   load cancels. Per clip, stamp -> frame received by the node (DDS transport between the processes plus
   rclpy taking the message), stamp -> publish, and the same own cost without ROS (pipeline called inline)
   are reported next to it.
2. Throughput: clips per second through the pipeline with 1, 2 and 4 cameras, batched (one runtime call
   for all cameras) vs unbatched (one call per camera), interleaved repetitions.

Usage: .venv/bin/python benchmarks/bench_perception.py [--manifest M] [--seconds 8] [--out bench.json]
Without --manifest the bundled default model is used, or, when it is absent, the tiny random test model
(exported to a temp dir; needs torch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # no traffic leaves this host

MS = 1e3


def _model(manifest: str | None, tmp: Path) -> tuple[Path, str]:
    if manifest:
        return Path(manifest), "given"
    from vljepa_ros.runtime.bundled_model import bundled_manifest_path

    bundled = bundled_manifest_path()
    if bundled.is_file():
        return bundled, "bundled default"
    from vljepa_ros.export.model import export_tiny_random

    return export_tiny_random(tmp / "tiny", seed=0), "tiny random (bundled default absent)"


def _frames(n: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    return [np.roll(base, 7 * i, axis=1) for i in range(n)]


def _pct(values, q):
    return float(np.percentile(np.asarray(values), q)) if len(values) else None


class _TimedSession:
    """Stands in for an onnxruntime session and adds the time spent in its ``run`` (or, on device providers,
    ``run_with_iobinding``) to ``spent``."""

    def __init__(self, session, spent: list[float]):
        self._session, self._spent = session, spent

    def _timed(self, method, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            self._spent[0] += time.perf_counter() - start

    def run(self, *args, **kwargs):
        return self._timed(self._session.run, *args, **kwargs)

    def run_with_iobinding(self, *args, **kwargs):
        return self._timed(self._session.run_with_iobinding, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._session, name)


def bare_vs_runtime_seconds(runtime, clip: np.ndarray, query: str, reps: int, seed: int = 0):
    """Batch-1 encoder + predictor: raw onnxruntime session.run vs the runtime's encode/predict (what the
    node's worker calls in the benchmarked configuration), in random order within each rep so machine load
    hits both alike. Returns (bare, wrapped, wrapper_own) seconds per rep.

    ``wrapper_own`` is the runtime's own work inside each wrapped call: its wall time minus the time its two
    ``session.run`` calls took, measured in the same call. (The difference of a wrapped and a bare call in
    the same rep scattered by +-0.2 ms on this shared machine, whichever ran first paying the cold caches,
    against a wrapper cost of tens of microseconds.)"""
    enc, pred = runtime.encoder.session, runtime.predictor.session
    enc_in = runtime.encoder.input_names[0]
    q = runtime.query_tokens(query)
    names = runtime.predictor.input_names
    in_sessions = [0.0]
    timed = (_TimedSession(enc, in_sessions), _TimedSession(pred, in_sessions))

    def bare():
        tokens = enc.run(None, {enc_in: clip[None]})[0]
        pred.run(None, {names[0]: tokens, names[1]: q.ids[None], names[2]: q.mask[None]})

    def wrapped():
        runtime.encoder.session, runtime.predictor.session = timed
        try:
            runtime.predict(runtime.encode(clip[None]), query)
        finally:
            runtime.encoder.session, runtime.predictor.session = enc, pred

    times = {"bare": [], "wrapped": []}
    wrapper_own = []
    calls = {"bare": bare, "wrapped": wrapped}
    rng = np.random.default_rng(seed)
    for _ in range(reps):
        for name in rng.permutation(list(calls)):
            in_sessions[0] = 0.0
            start = time.perf_counter()
            calls[name]()
            elapsed = time.perf_counter() - start
            times[name].append(elapsed)
            if name == "wrapped":
                wrapper_own.append(elapsed - in_sessions[0])
    return times["bare"], times["wrapped"], wrapper_own


def pipeline_own_cost(runtime, reps: int, height: int, width: int, messages: bool = True) -> dict:
    """Per clip without DDS or threads: newest frame (rgb8 bytes) -> conversion -> clip -> step -> both
    messages built (unless ``messages`` is False: no ROS installed), minus the batch's runtime time, and that
    cost over the runtime time."""
    from vljepa_ros.perception.config import PipelineConfig
    from vljepa_ros.perception.image_conversion import image_to_rgb
    from vljepa_ros.perception.pipeline import PerceptionPipeline

    pipeline = PerceptionPipeline(runtime, PipelineConfig(transition_horizon_s=0.0))
    period = int(1e9 / pipeline.frame_rate_hz)
    payloads = [f.tobytes() for f in _frames(16, height, width, seed=5)]
    for i in range(pipeline.clip_spec.frames - 1):
        rgb = image_to_rgb("rgb8", height, width, width * 3, False, payloads[i])
        pipeline.offer_frame("cam", "cam", i * period, rgb)
    if messages:
        from vljepa_ros.nodes.ros_conversions import predicted_embedding_msg, visual_state_msg
    own, total, ratios = [], [], []
    for rep in range(reps):
        i = pipeline.clip_spec.frames - 1 + rep
        data = payloads[i % 16]
        start = time.perf_counter()
        pipeline.offer_frame(
            "cam", "cam", i * period, lambda data=data: image_to_rgb("rgb8", height, width, width * 3, False, data)
        )
        batch = pipeline.step(0)
        for result in batch.embeddings if messages else ():
            predicted_embedding_msg(result)
            visual_state_msg(result)
        elapsed = time.perf_counter() - start
        total.append(elapsed)
        own.append(elapsed - batch.inference_s)
        ratios.append(own[-1] / batch.inference_s)
    return {
        "own_cost_ms": {"p50": _pct(own, 50) * MS, "p95": _pct(own, 95) * MS, "n": reps},
        "frame_to_messages_ms_p50": _pct(total, 50) * MS,
        "ratios_p50": _pct(ratios, 50),
    }


def throughput(runtime, cameras: int, reps: int, height: int, width: int) -> dict:
    """Clips/s for `cameras` cameras, batched vs unbatched, on the same clips, interleaved."""
    from vljepa_ros.perception.config import PipelineConfig
    from vljepa_ros.perception.pipeline import PerceptionPipeline

    pipeline = PerceptionPipeline(runtime, PipelineConfig(transition_horizon_s=0.0, queue_depth=1, max_batch=cameras))
    period = int(1e9 / pipeline.frame_rate_hz)
    for c in range(cameras):
        for i, frame in enumerate(_frames(pipeline.clip_spec.frames, height, width, seed=c)):
            pipeline.offer_frame(f"cam{c}", f"cam{c}", i * period, frame)
    clips = pipeline.queue.take_batch(cameras, 0)
    assert len(clips) == cameras
    batched, unbatched = [], []
    pipeline.run_clips(clips)  # warm-up for this batch size
    for _ in range(reps):
        start = time.perf_counter()
        pipeline.run_clips(clips)
        batched.append(time.perf_counter() - start)
        start = time.perf_counter()
        for clip in clips:
            pipeline.run_clips([clip])
        unbatched.append(time.perf_counter() - start)
    b, u = statistics.median(batched), statistics.median(unbatched)
    return {
        "cameras": cameras,
        "batched_clips_per_s": cameras / b,
        "unbatched_clips_per_s": cameras / u,
        "batched_ms_per_round_p50": b * MS,
        "unbatched_ms_per_round_p50": u * MS,
        "speedup_batched_vs_unbatched": u / b,
    }


def camera_process(topic: str, seconds: float, height: int, width: int) -> int:
    """Child process: publish a live-stamped 30 Hz rgb8 camera on `topic`; prints {"sent": n} as JSON on the
    last stdout line."""
    import rclpy
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    from vljepa_ros.nodes.ros_conversions import ns_to_time

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(Image, topic, QoSProfile(depth=5))
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the node's output side settles too
    payloads = [f.tobytes() for f in _frames(30, height, width, seed=9)]
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=payloads[sent % 30])
        msg.header.frame_id = "bench_optical"
        msg.header.stamp = ns_to_time(time.time_ns())  # a live camera stamps at capture
        pub.publish(msg)
        sent += 1
        time.sleep(max(0.0, start + sent / 30.0 - time.monotonic()))
    time.sleep(0.5)
    node.destroy_node()
    rclpy.try_shutdown()
    print(json.dumps({"sent": sent}))
    return 0


def consumer_process(topic: str, seconds: float) -> int:
    """Child process: a planner-like consumer of ``topic`` (vljepa_msgs/Embedding) for ``seconds``; prints
    {"stamp_to_received_ms": [...]} as JSON on the last stdout line."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from vljepa_msgs.msg import Embedding
    from vljepa_ros.nodes.ros_conversions import time_to_ns

    rclpy.init()
    node = rclpy.create_node("bench_consumer")
    received_ms = []
    node.create_subscription(
        Embedding, topic, lambda m: received_ms.append((time.time_ns() - time_to_ns(m.header.stamp)) / 1e6), 10
    )
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end and rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # the parent's SIGINT: its node is gone, report what arrived
    node.destroy_node()
    rclpy.try_shutdown()
    print(json.dumps({"stamp_to_received_ms": received_ms}))
    return 0


def node_latency(
    manifest: Path, providers: list[str], seconds: float, height: int, width: int, intra_op_threads: int
) -> dict:
    """Run PerceptionNode in this process; the camera publishes from one child process and a consumer of
    ~/embedding listens in another, as on a robot. (A subscriber inside the node's process would be served by
    Fast DDS inside the publish call, and its Python callback would take the GIL from the node's worker: a
    publish then took ~100 instead of ~57 us with nothing else running.)"""
    import rclpy
    from rclpy.parameter import Parameter

    from vljepa_ros.nodes.perception_node import PerceptionNode
    from vljepa_ros.nodes.spinning import NodeSpinner

    rclpy.init()
    topic = "/bench/image_raw"
    params = dict(
        model_manifest=str(manifest),
        providers=providers,
        intra_op_threads=intra_op_threads,
        camera_topics=[topic],
        input_qos="DEFAULT",
        output_qos="DEFAULT",
        transition_horizon_s=0.0,
        publish_visual_state=False,
    )
    node = PerceptionNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    spinner = NodeSpinner([node])  # the node in its own single-threaded executor, as bringup runs it
    spinner.start()
    consumer = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--consumer-process",
            f"/{node.get_name()}/embedding",
            "--seconds",
            str(seconds + 25),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while node._embedding_pub.get_subscription_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        camera = subprocess.run(
            [
                sys.executable,
                __file__,
                "--camera-process",
                topic,
                "--seconds",
                str(seconds),
                "--height",
                str(height),
                "--width",
                str(width),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 120,
        )
        if camera.returncode != 0:
            raise RuntimeError(f"camera process exited {camera.returncode}: {camera.stderr[-1500:]}")
        probe = json.loads(camera.stdout.strip().splitlines()[-1])
        time.sleep(1.0)
        stats = node.pipeline.stats_for("bench")
        with node.pipeline.lock:
            e2e_ms = [s * MS for s in stats.latency.values()]
            processing_ms = [s * MS for s in stats.processing.values()]
            inference_ms = [s * MS for s in stats.inference.values()]
            drops = dict(stats.drops)
            frames_in, clips_out = stats.input_rate.total, stats.output_rate.total
    finally:
        spinner.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        # The node is gone: the consumer's subscription sees nothing more; end its wait early.
        consumer.send_signal(signal.SIGINT)
        consumer_out, consumer_err = consumer.communicate(timeout=30)
    try:
        received_ms = json.loads(consumer_out.strip().splitlines()[-1])["stamp_to_received_ms"]
    except (IndexError, ValueError, KeyError):
        raise RuntimeError(f"consumer process exited {consumer.returncode}: {consumer_err[-1500:]}") from None
    # Index-aligned per published clip: the node's own cost for that clip, next to its batch's model time.
    own_ms = [p - i for p, i in zip(processing_ms, inference_ms)]
    # Index-aligned too: stamp -> publish minus received -> publish is stamp -> received by the node.
    arrival_ms = [e - p for e, p in zip(e2e_ms, processing_ms)]
    return {
        "frames_sent": probe["sent"],
        "frames_received_by_node": frames_in,
        "clips_published": clips_out,
        "drops": drops,
        "e2e_stamp_to_publish_ms": {"p50": _pct(e2e_ms, 50), "p95": _pct(e2e_ms, 95), "n": len(e2e_ms)},
        "e2e_stamp_to_subscriber_ms": {"p50": _pct(received_ms, 50), "p95": _pct(received_ms, 95)},
        "input_stamp_to_node_ms": {
            "p50": _pct(arrival_ms, 50),
            "p95": _pct(arrival_ms, 95),
            "what": "per clip's newest frame: DDS transport from the camera process and rclpy taking the message",
        },
        "processing_received_to_publish_ms": {"p50": _pct(processing_ms, 50), "p95": _pct(processing_ms, 95)},
        "node_inference_ms": {"p50": _pct(inference_ms, 50), "p95": _pct(inference_ms, 95), "values": inference_ms},
        "node_own_cost_ms": {
            "p50": _pct(own_ms, 50),
            "p95": _pct(own_ms, 95),
            "values": own_ms,
            "what": "per clip: processing (frame received -> publish) minus its batch's model time",
        },
    }


def _emit(result: dict, out: str | None) -> int:
    """Print the result as JSON and write it to ``out`` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
    return 0


def runtime_only(args, providers: list[str]) -> int:
    """Without ROS: wrapper cost over raw session.run in wall time (a GPU provider's work is not CPU time of
    this thread), the pipeline's own cost without messages, and batched vs unbatched throughput."""
    from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

    with tempfile.TemporaryDirectory() as tmp:
        manifest, source = _model(args.manifest, Path(tmp))
        runtime = VLJepaRuntime.from_manifest(manifest, providers=providers)
        clip = runtime.prepare_clip(_frames(runtime.manifest.clip.frames, args.height, args.width, seed=9))
        bare, wrapped, wrapper_own = bare_vs_runtime_seconds(
            runtime, clip, runtime.manifest.queries["caption"], args.reps
        )
        core = pipeline_own_cost(runtime, args.reps, args.height, args.width, messages=False)
        rates = [throughput(runtime, n, args.reps, args.height, args.width) for n in (1, 2, 4)]
    result = {
        "model": {
            "manifest": str(manifest),
            "source": source,
            "model_id": runtime.manifest.model_id,
            "provider": runtime.provider,
            "clip": runtime.manifest.clip.to_dict(),
        },
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "bare_ort_ms": {"p50": _pct(bare, 50) * MS, "p95": _pct(bare, 95) * MS, "n": len(bare)},
        "runtime_wrapper_ms": {
            "p50": _pct(wrapped, 50) * MS,
            "own_work_p50": _pct(wrapper_own, 50) * MS,
            "what": "own_work: each wrapped call's wall time minus its session.run calls",
        },
        "pipeline_without_ros": core,
        "throughput": rates,
    }
    return _emit(result, args.out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", help="model manifest (default: bundled model, else tiny random)")
    parser.add_argument("--providers", default="cpu", help="comma-separated, e.g. tensorrt,cuda,cpu")
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=1,
        help="ONNX Runtime CPU threads per model for the node and the bare calls "
        "(default 1, as config/vljepa.yaml; 0: ONNX Runtime's default)",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="node run length")
    parser.add_argument("--reps", type=int, default=30, help="repetitions for bare and throughput timings")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--out", help="write the JSON result here")
    parser.add_argument(
        "--no-node", action="store_true", help="runtime and pipeline only, no ROS (a GPU machine without ROS installed)"
    )
    parser.add_argument("--camera-process", metavar="TOPIC", help=argparse.SUPPRESS)  # internal: the children
    parser.add_argument("--consumer-process", metavar="TOPIC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.camera_process:
        return camera_process(args.camera_process, args.seconds, args.height, args.width)
    if args.consumer_process:
        return consumer_process(args.consumer_process, args.seconds)

    from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    if args.no_node:
        return runtime_only(args, providers)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        manifest, source = _model(args.manifest, Path(tmp))
        # Bare calls and throughput use the node's thread setting; ONNX Runtime's default is timed beside it.
        runtime = VLJepaRuntime.from_manifest(manifest, providers=providers, intra_op_threads=args.intra_op_threads)
        default_threads = VLJepaRuntime.from_manifest(manifest, providers=providers)
        clip = runtime.prepare_clip(_frames(runtime.manifest.clip.frames, args.height, args.width, seed=9))
        query = runtime.manifest.queries["caption"]
        bare_before, wrapped_before, own_before = bare_vs_runtime_seconds(runtime, clip, query, args.reps)
        bare_default, _, _ = bare_vs_runtime_seconds(default_threads, clip, query, args.reps)
        node = node_latency(manifest, providers, args.seconds, args.height, args.width, args.intra_op_threads)
        bare_after, wrapped_after, own_after = bare_vs_runtime_seconds(runtime, clip, query, args.reps)
        rates = [throughput(runtime, n, args.reps, args.height, args.width) for n in (1, 2, 4)]
        core = pipeline_own_cost(runtime, args.reps, args.height, args.width)

    bare_ms = [s * MS for s in bare_before + bare_after]
    wrapped_ms = [s * MS for s in wrapped_before + wrapped_after]
    wrapper_own_ms = _pct([s * MS for s in own_before + own_after], 50)
    # The ratio is formed per clip, from numbers measured in the same moment (load on this machine varies by
    # 3x over a minute): what the node and the runtime's wrappers add to that clip, over the time the clip's
    # batch spent inside ONNX Runtime. The node's model time includes the wrappers, which are measured apart.
    inference_ms = node["node_inference_ms"].pop("values")
    own_ms = node["node_own_cost_ms"].pop("values")
    ratios = [(o + wrapper_own_ms) / (i - wrapper_own_ms) for o, i in zip(own_ms, inference_ms)]
    overhead_ratio = _pct(ratios, 50)
    bare_p50 = _pct(bare_ms, 50)
    own_p50 = node["node_own_cost_ms"]["p50"]
    overhead_ms = None if own_p50 is None else own_p50 + wrapper_own_ms
    e2e_p50 = node["e2e_stamp_to_publish_ms"]["p50"]
    result = {
        "model": {
            "manifest": str(manifest),
            "source": source,
            "model_id": runtime.manifest.model_id,
            "provider": runtime.provider,
            "clip": runtime.manifest.clip.to_dict(),
        },
        "input": {
            "camera": f"{args.width}x{args.height} rgb8 @ 30 Hz over DDS (reliable, depth 5)",
            "node_config": "one camera, ~/embedding only (transition_horizon_s 0, publish_visual_state false)",
            "sampled_at_hz": runtime.manifest.clip.frame_rate_hz,
            "node_seconds": args.seconds,
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1min_start_end": [load_start, os.getloadavg()[0]],
        },
        "bare_ort_ms": {
            "p50": bare_p50,
            "p95": _pct(bare_ms, 95),
            "n": len(bare_ms),
            "intra_op_threads": args.intra_op_threads,
            "default_threads_p50": _pct(bare_default, 50) * MS,
        },
        "runtime_wrapper_ms": {
            "p50": _pct(wrapped_ms, 50),
            "own_work_p50": wrapper_own_ms,
            "what": "own_work: each wrapped call's wall time minus its session.run calls",
        },
        "node": node,
        "pipeline_without_ros": core,
        "overhead": {
            "overhead_ratio_vs_bare": overhead_ratio,
            "target_ratio": 0.10,
            "definition": "per clip: (node own cost + runtime wrapper work) / (the clip's time inside ONNX Runtime "
            "session.run), p50 over clips",
            "node_overhead_ms_p50": overhead_ms,
            "overhead_over_back_to_back_bare_p50": None if overhead_ms is None else overhead_ms / bare_p50,
            "runtime_wrapper_over_bare_p50": wrapper_own_ms / bare_p50,
            "pipeline_without_ros_own_over_inference_p50": core.pop("ratios_p50"),
            "e2e_stamp_to_publish_over_bare_ratio": None if e2e_p50 is None else e2e_p50 / bare_p50,
        },
        "throughput": rates,
    }
    return _emit(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
