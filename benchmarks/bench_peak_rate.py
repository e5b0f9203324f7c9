"""Peak sustainable input rate of the real perception node with <5% drops, for 1, 2 and 4 cameras (JSON out).

The ros2_benchmark method: the `perception_node` console-script process runs as deployed; this process is
the camera driver (N rgb8 publishers, SENSOR_DATA QoS, live stamps) and the monitor (subscribes to
~/embedding and /diagnostics). The publish rate steps up; at each step frames are sent for a warm-up, a
measured window and a tail, and the drop fraction counts frames stamped inside the window that never came
out. The peak is the highest step with drops < 5%. Two operating points:

- every_frame: frames are stamped one model period apart (clip.frame_rate_hz) whatever the publish rate, so
  the sampler keeps every frame and each closes a clip (stride 1, transitions off): one embedding per input
  frame. This is the model-bound rate (inference per frame). Latency is publish wall time -> embedding
  received (the stamps are not wall time in this mode).
- model_rate: the shipped default (live stamps, frames sampled at the model's clip.frame_rate_hz,
  transitions on): the camera may run much faster than the model. This is the ingest-bound camera rate.

In both, the embeddings expected are what the node's own ClipBuffer emits for the stamps that were sent (a
copy is fed every published stamp here), so drops = 1 - (expected embeddings that came out) / (expected).
Outputs are collected until none arrived for 1 s (a late output is latency, not a drop). Losses are attributed
with the node's /diagnostics counters (frames_received: frames that reached the subscription callback;
drops.worker_behind: clips replaced while inference was busy); a step whose publisher could not reach 95% of
its rate ends the ladder (the driver, not the node, is the limit).

Usage: .venv/bin/python benchmarks/bench_peak_rate.py [--manifest M] [--quick] [--out peak_rate.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vljepa_ros.tools.node_process import node_command, stop_process

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # no traffic leaves this host
os.environ.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))

DROP_LIMIT = 0.05
NODE = "/vljepa_perception"


@dataclass
class Step:
    """One rate step: what was sent and what came out for frames stamped inside the measured window."""

    rate_hz: float  # per camera
    cameras: int
    sent: int = 0
    outputs: int = 0
    achieved_publish_hz: float = 0.0
    received_by_node: int = 0  # diagnostics delta over the whole step
    worker_behind: int = 0
    expected_outputs: int = 0
    sent_total: int = 0  # every frame published during the step (warm-up and tail included)
    refused_by_transport: int = 0  # of those, writes the DDS writer refused (counted as sent and lost)
    latency_ms: list = field(default_factory=list)

    def drop_fraction(self, mode: str) -> float | None:
        """Expected embeddings missing; model_rate also counts frames the node never received. None: nothing
        was expected (the clip buffers were still filling)."""
        if not self.expected_outputs:
            return None
        missing = 1.0 - self.outputs / self.expected_outputs
        if mode == "every_frame":  # a frame lost on the way is a missing embedding already
            return missing
        return max(missing, 1.0 - min(self.received_by_node, self.sent_total) / max(self.sent_total, 1))

    def as_dict(self, mode: str) -> dict:
        drops = self.drop_fraction(mode)
        lat = np.asarray(self.latency_ms) if self.latency_ms else None
        return {
            "rate_hz_per_camera": self.rate_hz,
            "cameras": self.cameras,
            "input_hz_total": self.rate_hz * self.cameras,
            "achieved_publish_hz_total": round(self.achieved_publish_hz, 2),
            "frames_sent_in_window": self.sent,
            "embeddings_for_window": self.outputs,
            "expected_embeddings": self.expected_outputs,
            "frames_sent_in_step": self.sent_total,
            "frames_received_by_node_in_step": self.received_by_node,
            "drops_worker_behind_in_step": self.worker_behind,
            "frames_refused_by_transport_in_step": self.refused_by_transport,
            "drop_fraction": None if drops is None else round(drops, 4),
            "latency_ms_p50": None if lat is None else round(float(np.percentile(lat, 50)), 2),
            "latency_ms_p95": None if lat is None else round(float(np.percentile(lat, 95)), 2),
        }


class Rig:
    """The perception_node process plus this process's camera publishers and output monitor."""

    def __init__(
        self,
        manifest: Path,
        cameras: int,
        mode: str,
        log_path: Path,
        height: int,
        width: int,
        input_qos: str = "DEFAULT",
    ):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from vljepa_msgs.msg import Embedding
        from vljepa_ros.nodes.spinning import NodeSpinner

        self.names = [f"peak{i}" for i in range(cameras)]
        topics = [f"/{n}/image_raw" for n in self.names]
        params = {
            "model_manifest": str(manifest),
            "providers": "[cpu]",
            "camera_topics": "[" + ",".join(topics) + "]",
            "input_qos": input_qos,
            "diagnostics_period_s": "0.25",
            "stall_timeout_s": "30.0",
            "publish_visual_state": "false",
        }
        if mode == "every_frame":
            params.update(transition_horizon_s="0.0")
        command = node_command("vljepa_ros.nodes.perception_node", params)
        self.log = open(log_path, "w")  # noqa: SIM115 (closed when the process is stopped)
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

        self.node = rclpy.create_node("peak_rate_rig")
        # A driver publishing reliably (depth 5) or best effort (SENSOR_DATA), matching the node's input QoS.
        qos = qos_profile_sensor_data if input_qos == "SENSOR_DATA" else QoSProfile(depth=5)
        self.publishers = [self.node.create_publisher(Image, t, qos) for t in topics]
        rng = np.random.default_rng(3)
        self.payloads = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes() for _ in range(4)]
        self.height, self.width = height, width
        self.lock = threading.Lock()
        self.outputs: list[tuple[int, int]] = []  # (stamp_ns, receive_ns)
        self.virtual_ns = 1_000_000 * 1_000_000_000  # every_frame stamps: one model period per frame
        self.samplers = None  # per camera: a ClipBuffer like the node's, fed every published stamp
        self.totals: dict[str, dict[str, int]] = {}
        self.node.create_subscription(Embedding, f"{NODE}/embedding", self._on_embedding, 1000)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        # Not a MultiThreadedExecutor: it busy-loops while a busy callback group has data waiting, which
        # would delay the output callbacks this monitor timestamps (nodes/spinning.py).
        self.spinner = NodeSpinner([self.node])
        self.spinner.start()

    def _on_embedding(self, msg) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.outputs.append((stamp, time.time_ns()))

    def _on_diagnostics(self, array) -> None:
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            camera = status.name.rsplit(" ", 1)[-1]
            with self.lock:
                self.totals[camera] = {
                    "received": int(values.get("frames_received", 0)),
                    "published": int(values.get("clips_published", 0)),
                    "malformed": int(values.get("malformed_total", 0)),
                    "worker_behind": int(values.get("drops.worker_behind", 0)),
                    "drops_total": int(values.get("drops_total", 0)),
                }

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"perception_node exited ({self.process.returncode}); see {self.log.name}")
            with self.lock:
                seen = set(self.totals)
            if all(p.get_subscription_count() for p in self.publishers) and seen >= set(self.names):
                time.sleep(0.5)
                return
            time.sleep(0.1)
        raise RuntimeError(f"perception_node did not come up in {timeout_s} s; see {self.log.name}")

    def _snapshot(self) -> tuple[int, int]:
        with self.lock:
            return (
                sum(self.totals.get(n, {}).get("received", 0) for n in self.names),
                sum(self.totals.get(n, {}).get("worker_behind", 0) for n in self.names),
            )

    def _settle(self, quiet_s: float = 1.0, limit_s: float = 8.0) -> None:
        """Wait until no output arrived for ``quiet_s`` (late outputs are latency, not drops), at most ``limit_s``."""
        start = time.monotonic()
        while time.monotonic() - start < limit_s:
            time.sleep(0.25)
            with self.lock:
                last = self.outputs[-1][1] if self.outputs else 0
            if time.monotonic() - start >= quiet_s and (time.time_ns() - last) / 1e9 >= quiet_s:
                return

    def expect_clips(self, spec, published: list[list[int]], counted: set[int]) -> set[int]:
        """Stamps in ``counted`` at which the node's sampler closes a clip, given every stamp published per
        camera (the same ClipBuffer code as the node, carried over from step to step)."""
        from vljepa_ros.perception.clip_buffer import SAMPLE, ClipBuffer

        if self.samplers is None:
            self.samplers = [ClipBuffer(n, frames=spec.frames, frame_rate_hz=spec.frame_rate_hz) for n in self.names]
        closing = set()
        for sampler, stamps in zip(self.samplers, published):
            for stamp in stamps:
                completes = sampler.check(stamp) == SAMPLE and sampler.add(stamp, sampler.camera, None) is not None
                if completes and stamp in counted:
                    closing.add(stamp)
        return closing

    def run_step(self, rate_hz: float, warmup_s: float, window_s: float, tail_s: float, mode: str, spec) -> Step:
        """Publish every camera at ``rate_hz`` and measure the window (``spec``: the model's clip spec)."""
        model_rate_hz = spec.frame_rate_hz
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
        from sensor_msgs.msg import Image

        from vljepa_ros.nodes.ros_conversions import ns_to_time

        step = Step(rate_hz, len(self.publishers))
        received_0, behind_0 = self._snapshot()
        period_ns = int(1e9 / rate_hz)
        model_period_ns = int(round(1e9 / model_rate_hz))
        start_ns = time.time_ns() + 20_000_000
        window = (start_ns + int(warmup_s * 1e9), start_ns + int((warmup_s + window_s) * 1e9))
        end_ns = window[1] + int(tail_s * 1e9)
        messages = [
            Image(
                height=self.height,
                width=self.width,
                encoding="rgb8",
                step=self.width * 3,
                data=self.payloads[i % len(self.payloads)],
            )
            for i in range(len(self.publishers))
        ]
        sent_at: dict[int, int] = {}  # stamp of each frame in the window -> publish wall time
        published: list[list[int]] = [[] for _ in self.publishers]
        k = 0
        while True:
            due = start_ns + k * period_ns
            if due >= end_ns:
                break
            delay = (due - time.time_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
            now = time.time_ns()
            if mode == "every_frame":
                self.virtual_ns += model_period_ns
                base = self.virtual_ns
            else:
                base = now  # a live camera stamps at capture
            for i, (pub, msg) in enumerate(zip(self.publishers, messages)):
                msg.header.stamp = ns_to_time(base + i)  # distinct stamps per camera
                msg.header.frame_id = self.names[i]
                try:
                    pub.publish(msg)
                except _rclpy.RCLError:
                    # Fast DDS refuses a reliable write once the reader has left the writer's history full
                    # for max_blocking_time: the node is not taking frames at this rate. A lost frame.
                    step.refused_by_transport += 1
                published[i].append(base + i)
                if window[0] <= now < window[1]:
                    sent_at[base + i] = now
            step.sent_total += len(self.publishers)
            k += 1
        step.achieved_publish_hz = step.sent_total / ((time.time_ns() - start_ns) / 1e9)
        expected = self.expect_clips(spec, published, set(sent_at))
        self._settle()
        received_1, behind_1 = self._snapshot()
        with self.lock:
            outputs = [(s, r) for s, r in self.outputs if s in expected]
        step.sent = len(sent_at)
        step.outputs = len(outputs)
        step.latency_ms = [(r - sent_at[s]) / 1e6 for s, r in outputs]
        step.received_by_node = received_1 - received_0
        step.worker_behind = behind_1 - behind_0
        step.expected_outputs = len(expected)
        return step

    def close(self) -> None:
        stop_process(self.process, timeout_s=20)
        self.spinner.shutdown()
        self.node.destroy_node()
        self.log.close()


def find_peak(
    manifest: Path,
    cameras: int,
    mode: str,
    total_rates: list[float],
    timing: tuple[float, float, float],
    log_dir: Path,
    height: int,
    width: int,
    spec,
    input_qos: str,
    log=print,
) -> dict:
    """Step the total input rate up (split evenly over the cameras) until drops reach DROP_LIMIT; two failing
    steps in a row, or a publisher that cannot reach its rate, end the ladder."""
    rig = Rig(manifest, cameras, mode, log_dir / f"node_{mode}_{cameras}cam.log", height, width, input_qos)
    warmup, window, tail = timing
    if mode == "model_rate":  # a full clip of samples before the window (the buffer restarts after a pause)
        warmup = max(warmup, (spec.frames + 1) / spec.frame_rate_hz)
    steps, peak, failures, limit = [], None, 0, None
    try:
        rig.wait_ready()
        if mode == "every_frame":  # fill the clip buffers (stamps continue without a gap into the ladder)
            prime_hz = max(2.0, total_rates[0] / cameras)
            rig.run_step(prime_hz, 0.0, (spec.frames + 1) / prime_hz, 0.0, mode=mode, spec=spec)
        for total in total_rates:
            rate = total / cameras
            record = rig.run_step(rate, warmup, window, tail, mode=mode, spec=spec).as_dict(mode)
            steps.append(record)
            if record["drop_fraction"] is None:
                log(f"  {mode} {cameras} cam @ {rate:g} Hz/cam: no clip expected in the window yet", flush=True)
                continue
            ok = record["drop_fraction"] < DROP_LIMIT
            log(
                f"  {mode} {cameras} cam @ {rate:g} Hz/cam: out {record['embeddings_for_window']}/"
                f"{record['expected_embeddings']}, drops {record['drop_fraction']:.1%}, node received "
                f"{record['frames_received_by_node_in_step']}/{record['frames_sent_in_step']}, worker_behind "
                f"{record['drops_worker_behind_in_step']}, refused {record['frames_refused_by_transport_in_step']}, "
                f"p50 {record['latency_ms_p50']} ms {'ok' if ok else 'FAIL'}",
                flush=True,
            )
            if record["achieved_publish_hz_total"] < 0.95 * total:
                limit = f"publisher reached {record['achieved_publish_hz_total']} of {total} Hz"
                break
            if ok:
                peak, failures = record, 0
            else:
                failures += 1
                if failures == 2:
                    break
    finally:
        rig.close()
    return {
        "cameras": cameras,
        "mode": mode,
        "peak_rate_hz_per_camera": None if peak is None else peak["rate_hz_per_camera"],
        "peak_input_hz_total": None if peak is None else peak["input_hz_total"],
        "ladder_ended_by": limit or ("two failing steps" if failures == 2 else "end of ladder"),
        "peak_step": peak,
        "steps": steps,
    }


def default_manifest(tmp: Path) -> tuple[Path, str]:
    """The bundled default model, else the tiny random test model exported to ``tmp``."""
    from vljepa_ros.runtime.bundled_model import bundled_manifest_path

    bundled = bundled_manifest_path()
    if bundled.is_file():
        return bundled, "bundled default"
    from vljepa_ros.export.model import export_tiny_random

    return export_tiny_random(tmp / "tiny", seed=0), "tiny random (bundled default absent)"


def run(
    manifest: Path | None,
    quick: bool,
    out_dir: Path,
    height: int,
    width: int,
    camera_counts=(1, 2, 4),
    modes=None,
    input_qos: str = "DEFAULT",
    log=print,
) -> dict:
    """The whole measurement; returns the JSON-able result."""
    import rclpy

    from vljepa_ros.runtime.manifest import load_manifest

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = "given"
        if manifest is None:
            manifest, source = default_manifest(Path(tmp))
        spec = load_manifest(manifest, check_files=False).clip
        timing = (1.0, 1.5, 0.3) if quick else (1.5, 4.0, 0.5)
        # Total input rates over all cameras (Hz); every_frame: clips/s asked of the model.
        ladders = {
            "every_frame": [4, 8, 16, 32, 64] if quick else [4, 6, 8, 12, 16, 24, 32, 48, 64],
            "model_rate": [30, 60, 120, 240] if quick else [30, 60, 90, 120, 180, 240, 360],
        }
        modes = modes or (["every_frame"] if quick else ["every_frame", "model_rate"])
        rclpy.init()
        try:
            results = []
            for mode in modes:
                for cameras in camera_counts:
                    results.append(
                        find_peak(
                            Path(manifest),
                            cameras,
                            mode,
                            ladders[mode],
                            timing,
                            out_dir,
                            height,
                            width,
                            spec,
                            input_qos,
                            log,
                        )
                    )
        finally:
            rclpy.try_shutdown()
    return {
        "method": "ros2_benchmark-style rate ladder against the perception_node process over DDS; peak = highest "
        f"step with drops < {DROP_LIMIT:.0%}",
        "model": {"manifest": str(manifest), "source": source, "clip_frame_rate_hz": spec.frame_rate_hz},
        "camera": f"{width}x{height} rgb8 (stamps: model period apart in every_frame, live in model_rate); "
        f"node input_qos {input_qos} "
        f"({'best effort' if input_qos == 'SENSOR_DATA' else 'reliable'}, depth 5)",
        "fastdds_builtin_transports": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "DEFAULT"),
        "timing_s": {"warmup": timing[0], "window": timing[1], "tail": timing[2]},
        "machine": {"cpu_count": os.cpu_count()},
        "results": results,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, help="model manifest (default: bundled, else tiny random)")
    parser.add_argument("--quick", action="store_true", help="shorter steps, every_frame mode only")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4], help="camera counts to measure")
    parser.add_argument(
        "--modes", nargs="+", choices=["every_frame", "model_rate"], help="default: both (quick: every_frame)"
    )
    parser.add_argument(
        "--input-qos",
        choices=["DEFAULT", "SENSOR_DATA"],
        default="DEFAULT",
        help="node input QoS; the driver publishes with the matching profile",
    )
    parser.add_argument("--out", type=Path, default=Path("out/bench/peak_rate.json"))
    args = parser.parse_args(argv)
    result = run(
        args.manifest,
        args.quick,
        args.out.parent / "peak_rate_logs",
        args.height,
        args.width,
        tuple(args.cameras),
        args.modes,
        args.input_qos,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for r in result["results"]:
        print(f"{r['mode']:>11} {r['cameras']} camera(s): peak {r['peak_rate_hz_per_camera']} Hz per camera")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
