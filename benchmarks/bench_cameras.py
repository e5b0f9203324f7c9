"""What a robot's cameras get through to the perception node: camera-driver-like publishers on the shipped
transport and on the default one, side by side (JSON out, printed table).

The ros2_benchmark method: the `perception_node` process runs as deployed (live stamps, frames sampled at the
model's clip.frame_rate_hz); each camera is its own publisher process, like a driver (SENSOR_DATA QoS: best
effort, keep last 5; header.stamp = wall clock at publish); this process only monitors (~/embedding and
/diagnostics). Rows: 1, 2, 4 cameras x 15, 30, 60 Hz at 640x480 rgb8, 2 x 30 Hz 1280x720 rgb8 and
4 x 30 Hz JPEG CompressedImage, each for both transports:

- shipped: config/transport.env (the Fast DDS profile fastdds_localhost_large_data.xml, LOCALHOST discovery);
- default: the same without the profile (rmw_fastrtps's LOCALHOST defaults).

Node and cameras of a row always share one transport; DDS discovery is LOCALHOST in both. Per row: frames the
node received / frames sent (its /diagnostics frames_received), clips out / clips expected (expected: the
stamps at which the node's own ClipBuffer code closes a clip for the stamps that were sent; out: embeddings
with one of those stamps), latency frame stamp -> embedding received (p50/p95), and the node's CPU use
(utime + stime from /proc/<pid>/stat over the row, in % of one core). One node process per camera group and
transport serves its rows one after the other (the gap between rows restarts its clip buffers).

Usage: .venv/bin/python benchmarks/bench_cameras.py [--manifest M] [--quick] [--seconds 5] [--out cameras.json]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from vljepa_msgs.msg import Embedding
from vljepa_ros.nodes.dds_transport import PROFILE_VARIABLE, PROFILE_VARIABLES, apply_transport_defaults
from vljepa_ros.nodes.spinning import NodeSpinner
from vljepa_ros.perception.clip_buffer import SAMPLE, ClipBuffer
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.tools.node_process import node_command, stop_process

NODE = "/vljepa_perception"
TRANSPORTS = ("shipped", "default")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Row:
    """One scenario: `cameras` publishers at `rate_hz` each."""

    cameras: int
    rate_hz: float
    width: int = 640
    height: int = 480
    jpeg: bool = False

    @property
    def group(self) -> tuple[int, bool]:
        """Rows with the same group share one node process (same topics and message type)."""
        return (self.cameras, self.jpeg)

    @property
    def label(self) -> str:
        return f"{self.cameras} x {self.rate_hz:g} Hz {self.width}x{self.height} {'JPEG' if self.jpeg else 'rgb8'}"


def rows(quick: bool) -> list[Row]:
    """The scenarios, grouped by node (quick: the two targets and one camera at 30 Hz)."""
    if quick:
        return [Row(1, 30), Row(4, 30), Row(2, 30, 1280, 720)]
    return [
        *(Row(1, r) for r in (15, 30, 60)),
        *(Row(2, r) for r in (15, 30, 60)),
        Row(2, 30, 1280, 720),
        *(Row(4, r) for r in (15, 30, 60)),
        Row(4, 30, jpeg=True),
    ]


def transport_env(transport: str) -> dict[str, str]:
    """This process's environment for a node or camera on `transport` (default: the profile removed)."""
    env = dict(os.environ)
    if transport == "default":
        for name in PROFILE_VARIABLES:
            env.pop(name, None)
    return env


def topics(group: tuple[int, bool]) -> list[str]:
    cameras, jpeg = group
    return [f"/bench_cam{i}/image_raw" + ("/compressed" if jpeg else "") for i in range(cameras)]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def camera_frame(width: int, height: int) -> np.ndarray:
    """A camera-like RGB frame (smooth gradients plus fine texture), so JPEG sizes are realistic."""
    y, x = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(0).integers(0, 24, (height, width, 3))
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], axis=-1)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def run_camera(args: argparse.Namespace) -> None:
    """Child role: one camera driver; once the node's subscription matched (or --match-timeout passed), prints
    'ready' and publishes rate * seconds frames."""
    rclpy.init()
    node = rclpy.create_node(f"bench_camera_{os.getpid()}")
    frame = camera_frame(args.width, args.height)
    if args.jpeg:
        ok, encoded = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        msg = CompressedImage(format="rgb8; jpeg compressed bgr8", data=encoded.tobytes())
        publisher = node.create_publisher(CompressedImage, args.topic, qos_profile_sensor_data)
    else:
        msg = Image(height=args.height, width=args.width, encoding="rgb8", step=args.width * 3, data=frame.tobytes())
        publisher = node.create_publisher(Image, args.topic, qos_profile_sensor_data)
    msg.header.frame_id = args.topic
    deadline = time.monotonic() + args.match_timeout
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    matched = publisher.get_subscription_count() > 0
    time.sleep(1.0)  # the reader side matches this writer a moment after the writer matched the reader
    print("ready", flush=True)
    frames = int(round(args.rate * args.seconds))
    start = time.monotonic()
    stamps = []
    for index in range(frames):
        delay = start + index / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamp_ns = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        publisher.publish(msg)
        stamps.append(stamp_ns)
    hz = frames / (time.monotonic() - start)
    print(json.dumps({"matched": matched, "publish_hz": hz, "bytes": len(msg.data), "stamps": stamps}), flush=True)
    time.sleep(1.0)  # let the last best-effort samples leave before the participant goes away
    node.destroy_node()
    rclpy.shutdown()


class Monitor:
    """This process's subscriptions: ~/embedding stamps and receive times per camera, /diagnostics counters."""

    def __init__(self):
        self.lock = threading.Lock()
        self.outputs: dict[str, dict[int, int]] = {}  # camera -> stamp -> first receive wall time
        self.counters: dict[str, dict[str, int]] = {}
        self.last_output = 0
        self.node = rclpy.create_node("bench_cameras_monitor")
        self.node.create_subscription(Embedding, f"{NODE}/embedding", self._on_embedding, 1000)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.spinner = NodeSpinner([self.node])
        self.spinner.start()

    def _on_embedding(self, msg) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.outputs.setdefault(msg.camera, {}).setdefault(stamp, now)
            self.last_output = now

    def _on_diagnostics(self, array) -> None:
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            if "frames_received" not in values:
                continue
            with self.lock:
                self.counters[status.name.rsplit(" ", 1)[-1]] = {
                    "received": int(values["frames_received"]),
                    "worker_behind": int(values.get("drops.worker_behind", 0)),
                }

    def forget_counters(self) -> None:
        """Drop the counters of the previous node process."""
        with self.lock:
            self.counters.clear()

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {camera: dict(values) for camera, values in self.counters.items()}

    def settle(self, quiet_s: float = 1.0, limit_s: float = 4.0) -> None:
        """Wait until no embedding arrived for `quiet_s` (a late output is latency, not a loss)."""
        start = time.monotonic()
        while time.monotonic() - start < limit_s:
            time.sleep(0.1)
            with self.lock:
                last = self.last_output
            if time.monotonic() - start >= quiet_s and (time.time_ns() - last) / 1e9 >= quiet_s:
                break
        time.sleep(0.35)  # one more diagnostics period (0.25 s)

    def close(self) -> None:
        self.spinner.shutdown()
        self.node.destroy_node()


def start_node(manifest: Path, group, transport: str, log_path: Path) -> subprocess.Popen:
    """The perception_node process for one camera group, on `transport`."""
    names = [f"cam{i}" for i in range(group[0])]
    params = {
        "model_manifest": str(manifest),
        "providers": "[cpu]",
        "camera_topics": "[" + ",".join(topics(group)) + "]",
        "camera_names": "[" + ",".join(names) + "]",
        "input_qos": "SENSOR_DATA",
        "diagnostics_period_s": "0.25",
        "stall_timeout_s": "30.0",
    }
    command = node_command("vljepa_ros.nodes.perception_node", params)
    with open(log_path, "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=transport_env(transport))


def expected_clips(stamps: list[int], spec) -> set[int]:
    """Stamps at which the node's sampler closes a clip for these frames (a fresh ClipBuffer: the pause before
    a row restarts the node's)."""
    sampler = ClipBuffer("bench", frames=spec.frames, frame_rate_hz=spec.frame_rate_hz)
    return {s for s in stamps if sampler.check(s) == SAMPLE and sampler.add(s, "bench", None) is not None}


def run_row(row: Row, transport: str, node: subprocess.Popen, monitor: Monitor, spec, seconds: float) -> dict:
    """Start the row's camera processes, wait for them and the node's outputs; counts, latency, CPU."""
    names = [f"cam{i}" for i in range(row.cameras)]
    before = monitor.snapshot()
    cameras = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--role", "camera", "--topic", topic]
            + ["--rate", str(row.rate_hz), "--seconds", str(seconds)]
            + ["--width", str(row.width), "--height", str(row.height)]
            + (["--jpeg"] if row.jpeg else []),
            env=transport_env(transport),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for topic in topics(row.group)
    ]
    for camera in cameras:
        camera.stdout.readline()  # 'ready' (or nothing: it died, reported below)
    cpu_0, wall_0 = cpu_seconds(node.pid), time.monotonic()
    sent = []
    for camera in cameras:
        out, err = camera.communicate(timeout=seconds + 30)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if camera.returncode != 0 or not lines:
            raise RuntimeError(f"camera process failed ({camera.returncode}): {err[-1500:]}")
        sent.append(json.loads(lines[-1]))
    monitor.settle()
    cpu_pct = 100.0 * (cpu_seconds(node.pid) - cpu_0) / (time.monotonic() - wall_0)
    after = monitor.snapshot()
    frames_sent = sum(len(s["stamps"]) for s in sent)
    received = sum(after.get(n, {}).get("received", 0) - before.get(n, {}).get("received", 0) for n in names)
    behind = sum(after.get(n, {}).get("worker_behind", 0) - before.get(n, {}).get("worker_behind", 0) for n in names)
    expected = out_count = 0
    latencies, per_camera = [], []
    with monitor.lock:
        outputs = {n: dict(monitor.outputs.get(n, {})) for n in names}
    for name, camera in zip(names, sent):
        due = expected_clips(camera["stamps"], spec)
        out = {stamp: outputs[name][stamp] for stamp in due if stamp in outputs[name]}
        expected += len(due)
        out_count += len(out)
        in_row = [t for t in outputs[name] if camera["stamps"][0] <= t <= camera["stamps"][-1]]
        per_camera.append(f"{len(out)}/{len(due)} ({len(in_row)} outputs in all)")
        latencies += [(received_ns - stamp) / 1e6 for stamp, received_ns in out.items()]
    lat = np.asarray(latencies)
    return {
        "row": row.label,
        "transport": transport,
        "cameras": row.cameras,
        "rate_hz_per_camera": row.rate_hz,
        "size": f"{row.width}x{row.height}",
        "format": "jpeg" if row.jpeg else "rgb8",
        "message_bytes": sent[0]["bytes"],
        "frames_sent": frames_sent,
        "frames_received": received,
        "received_fraction": round(received / frames_sent, 4) if frames_sent else None,
        "clips_expected": expected,
        "clips_out": out_count,
        "clips_fraction": round(out_count / expected, 4) if expected else None,
        "clips_per_camera": per_camera,
        "drops_worker_behind": behind,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
        "node_cpu_percent": round(cpu_pct, 1),
        "publish_hz_min": round(min(s["publish_hz"] for s in sent), 2),
        "all_cameras_matched": all(s["matched"] for s in sent),
    }


def wait_ready(node: subprocess.Popen, monitor: Monitor, cameras: int, log_path: Path, timeout_s=120.0) -> None:
    """Until the node's diagnostics report every camera."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise RuntimeError(f"perception_node exited ({node.returncode}); see {log_path}")
        if set(monitor.snapshot()) >= {f"cam{i}" for i in range(cameras)}:
            return
        time.sleep(0.1)
    raise RuntimeError(f"perception_node did not come up in {timeout_s} s; see {log_path}")


def run(manifest: Path, quick: bool, seconds: float, log_dir: Path, log=print) -> dict:
    """Every row on both transports; returns the JSON-able result."""
    spec = load_manifest(manifest, check_files=False).clip
    log_dir.mkdir(parents=True, exist_ok=True)
    plan = rows(quick)
    groups = list(dict.fromkeys(r.group for r in plan))
    results = []
    rclpy.init()
    monitor = Monitor()
    try:
        for group in groups:
            for transport in TRANSPORTS:
                log_path = log_dir / f"node_{group[0]}cam{'_jpeg' if group[1] else ''}_{transport}.log"
                node = start_node(manifest, group, transport, log_path)
                try:
                    monitor.forget_counters()
                    wait_ready(node, monitor, group[0], log_path)
                    for row in (r for r in plan if r.group == group):
                        result = run_row(row, transport, node, monitor, spec, seconds)
                        results.append(result)
                        log(
                            f"  {result['row']:30} {transport:8} received {result['frames_received']}/"
                            f"{result['frames_sent']}, clips {result['clips_out']}/{result['clips_expected']}, "
                            f"p50/p95 {result['latency_ms_p50']}/{result['latency_ms_p95']} ms, "
                            f"node CPU {result['node_cpu_percent']}%",
                            flush=True,
                        )
                finally:
                    stop_process(node, timeout_s=20)
    finally:
        monitor.close()
        rclpy.try_shutdown()
    return {
        "method": "ros2_benchmark-style: perception_node process, one SENSOR_DATA publisher process per camera "
        "(live stamps), this process monitors ~/embedding and /diagnostics",
        "model": {"manifest": str(manifest), "clip_frames": spec.frames, "clip_frame_rate_hz": spec.frame_rate_hz},
        "transports": {
            "shipped": f"config/transport.env ({PROFILE_VARIABLE}={os.environ.get(PROFILE_VARIABLE)}, LOCALHOST)",
            "default": "rmw_fastrtps_cpp LOCALHOST defaults (no profile)",
        },
        "seconds_per_row": seconds,
        "machine": {"cpu_count": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]},
        "ros": ros_versions(),
        "results": results,
    }


def ros_versions() -> dict[str, str]:
    """The distro and DDS this run used: rclpy's and Fast DDS's wheel versions, and the profile variable."""
    found = {"profile_variable": PROFILE_VARIABLE}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name in ("ros-fastdds", "ros-fastrtps") or (name.startswith("ros-") and name.endswith("-rclpy")):
            found[name] = dist.version
    return found


def table(result: dict) -> str:
    """The rows as a markdown table, the two transports of a scenario next to each other."""
    lines = [
        "| cameras | transport | frames received / sent | clips out / expected | latency p50 / p95 ms | node CPU % |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        lines.append(
            f"| {r['row']} | {r['transport']} | {r['frames_received']}/{r['frames_sent']} "
            f"({100 * (r['received_fraction'] or 0):.1f}%) | {r['clips_out']}/{r['clips_expected']} | "
            f"{r['latency_ms_p50']} / {r['latency_ms_p95']} | {r['node_cpu_percent']} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, help="model manifest (default: bundled, else tiny random)")
    parser.add_argument("--quick", action="store_true", help="three rows: 1 x 30 Hz, 4 x 30 Hz, 2 x 30 Hz 720p")
    parser.add_argument("--seconds", type=float, default=5.0, help="publishing time per row, s")
    parser.add_argument("--out", type=Path, default=Path("out/bench/cameras.json"))
    parser.add_argument("--role", choices=("camera",), help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=30.0, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=640, help=argparse.SUPPRESS)
    parser.add_argument("--height", type=int, default=480, help=argparse.SUPPRESS)
    parser.add_argument("--jpeg", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--match-timeout", type=float, default=20.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "camera":  # the environment is the one this process was given (shipped or default)
        run_camera(args)
        return 0
    apply_transport_defaults()  # the shipped transport for this monitor; each child gets its row's
    os.environ.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))
    if os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] != "LOCALHOST":
        raise SystemExit("bench_cameras: ROS_AUTOMATIC_DISCOVERY_RANGE must be LOCALHOST (traffic stays on this host)")
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_peak_rate import default_manifest
        from host_traffic import HostTrafficWatch

        manifest = args.manifest or default_manifest(Path(tmp))[0]
        watch = HostTrafficWatch().start()
        result = run(Path(manifest), args.quick, args.seconds, args.out.parent / "cameras_logs")
        result["host_traffic"] = watch.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"DDS packets off this host: {result['host_traffic']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
