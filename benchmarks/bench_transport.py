"""Fast DDS transport configurations for large camera images between processes on one host, side by side.

Every trial starts its own publisher and subscriber processes (rclpy, rmw_fastrtps_cpp, SENSOR_DATA QoS:
best effort, keep last 5), on a fresh ROS_DOMAIN_ID, and counts the sensor_msgs/Image frames that arrive
and their latency (header.stamp, set from the wall clock just before publish, vs wall clock in the receive
callback). Scenarios, each for every configuration named with --configs:

- single_640: one 640x480 rgb8 publisher at --rate Hz for --duration s;
- single_720: the same at 1280x720;
- multi4_640: four publisher processes at 640x480 into one subscriber process (four topics);
- mix_pub_default / mix_sub_default: the publisher (or the subscriber) uses the project's baseline
  configuration (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, no profile file), the other side the candidate;
- isolation: a second publisher on another ROS_DOMAIN_ID publishes on the same topic; its frames must
  not reach the subscriber.

Around every trial the tx_packets counters of the non-loopback interfaces are read; a control interval
without DDS (same length) shows the background rate. Trials run one after the other, the configurations
interleaved, --repeats times. Child processes stop by themselves (deadline) and are killed after
--trial-timeout s at the latest. No timing asserts: this only measures and reports.

Usage: .venv/bin/python benchmarks/bench_transport.py [--configs a,b] [--scenarios s,t] [--repeats 2]
       [--duration 10] [--out results/bench_transport.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIPPED_PROFILE = REPO / "vljepa_ros" / "config" / "fastdds_localhost_large_data.xml"
CLEARED_VARIABLES = (
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "FASTDDS_BUILTIN_TRANSPORTS",
    "RMW_FASTRTPS_USE_QOS_FROM_XML",
    "RMW_FASTRTPS_PUBLICATION_MODE",
    "ROS_AUTOMATIC_DISCOVERY_RANGE",
    "ROS_STATIC_PEERS",
    "ROS_LOCALHOST_ONLY",
    "ROS_DOMAIN_ID",
)
BASELINE = "localhost_default"

# Environment of each configuration (on top of RMW_IMPLEMENTATION=rmw_fastrtps_cpp and a per-trial domain).
CONFIGS: dict[str, dict[str, str]] = {
    BASELINE: {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"},
    "xml_shm_loopback": {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT",
        "FASTDDS_DEFAULT_PROFILES_FILE": str(SHIPPED_PROFILE),
    },
    "xml_under_localhost": {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "FASTDDS_DEFAULT_PROFILES_FILE": str(SHIPPED_PROFILE),
    },
    "large_data_env_localhost": {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA",
    },
}
SCENARIOS = ("single_640", "single_720", "multi4_640", "mix_pub_default", "mix_sub_default", "isolation")
SIZES = {"640": (640, 480), "720": (1280, 720)}


def non_loopback_tx_packets() -> dict[str, int]:
    """tx_packets of every network interface except lo."""
    counters = {}
    for iface in sorted(Path("/sys/class/net").iterdir()):
        if iface.name == "lo":
            continue
        try:
            counters[iface.name] = int((iface / "statistics" / "tx_packets").read_text())
        except (OSError, ValueError):
            continue
    return counters


def tx_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Packets sent per interface between two counter readings."""
    return {name: after.get(name, 0) - count for name, count in before.items()}


def percentile(values: list[float], q: float) -> float | None:
    """q-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def child_env(config: str, domain_id: int) -> dict[str, str]:
    """This process's environment with every transport variable replaced by those of `config`."""
    env = {key: value for key, value in os.environ.items() if key not in CLEARED_VARIABLES}
    env.update(CONFIGS[config])
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def run_publisher(args: argparse.Namespace) -> None:
    """Child role: publish `rate * duration` frames once a subscriber matched (or the wait ran out)."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node(f"bench_pub_{os.getpid()}")
    publisher = node.create_publisher(Image, args.topic, qos_profile_sensor_data)
    width, height = SIZES[args.size]
    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
    msg.data = os.urandom(width * height * 3)
    wait_start = time.monotonic()
    while publisher.get_subscription_count() == 0 and time.monotonic() - wait_start < args.match_timeout:
        time.sleep(0.02)
    matched_after = time.monotonic() - wait_start if publisher.get_subscription_count() else None
    total = int(round(args.rate * args.duration))
    period = 1.0 / args.rate
    start = time.monotonic()
    for seq in range(total):
        delay = start + seq * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamp_ns = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = f"{args.tag}:{seq}"
        publisher.publish(msg)
    elapsed = time.monotonic() - start
    print(json.dumps({"sent": total, "matched_after_s": matched_after, "publish_hz": total / elapsed}), flush=True)
    time.sleep(0.5)  # let the last best-effort samples leave before the participant goes away
    node.destroy_node()
    rclpy.shutdown()


def run_subscriber(args: argparse.Namespace) -> None:
    """Child role: count frames per publisher tag and their latency until the stop file or the deadline."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node(f"bench_sub_{os.getpid()}")
    counts: dict[str, int] = {}
    latencies_ms: list[float] = []

    def on_image(msg: Image) -> None:
        now_ns = time.time_ns()
        tag = msg.header.frame_id.split(":", 1)[0]
        counts[tag] = counts.get(tag, 0) + 1
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latencies_ms.append((now_ns - stamp_ns) / 1e6)

    subscriptions = [
        node.create_subscription(Image, topic, on_image, qos_profile_sensor_data) for topic in args.topics.split(",")
    ]
    stop_file = Path(args.stop_file)
    deadline = time.monotonic() + args.deadline
    while time.monotonic() < deadline and not stop_file.exists():
        rclpy.spin_once(node, timeout_sec=0.05)
    print(
        json.dumps(
            {
                "counts": counts,
                "subscriptions": len(subscriptions),
                "latency_p50_ms": percentile(latencies_ms, 50),
                "latency_p95_ms": percentile(latencies_ms, 95),
            }
        ),
        flush=True,
    )
    node.destroy_node()
    rclpy.shutdown()


def spawn(role: str, env: dict[str, str], extra: list[str]) -> subprocess.Popen:
    """Start this script in a child role, in its own process group (so it can be killed with its children)."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--role", role, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def collect(process: subprocess.Popen, timeout: float) -> tuple[dict, str]:
    """Wait for a child (killing its process group after `timeout`) and parse its last JSON stdout line."""
    try:
        out, err = process.communicate(timeout=max(0.1, timeout))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), err[-600:]


def plan_trial(config: str, scenario: str) -> tuple[str, list[tuple[str, str, str, int]]]:
    """Subscriber config and publishers (tag, config, size, domain offset) of one scenario."""
    if scenario == "single_640":
        return config, [("p0", config, "640", 0)]
    if scenario == "single_720":
        return config, [("p0", config, "720", 0)]
    if scenario == "multi4_640":
        return config, [(f"p{i}", config, "640", 0) for i in range(4)]
    if scenario == "mix_pub_default":
        return config, [("p0", BASELINE, "640", 0)]
    if scenario == "mix_sub_default":
        return BASELINE, [("p0", config, "640", 0)]
    if scenario == "isolation":
        return config, [("p0", config, "640", 0), ("other", config, "640", 1)]
    raise ValueError(f"unknown scenario {scenario}")


def run_trial(config: str, scenario: str, args: argparse.Namespace, domain_id: int) -> dict:
    """One trial: start subscriber and publishers, stop them, return counts, latency and tx packets."""
    sub_config, publishers = plan_trial(config, scenario)
    separate_topics = scenario == "multi4_640"
    topics = [f"/bench/image_{tag}" if separate_topics else "/bench/image" for tag, *_ in publishers]
    sub_topics = sorted(set(topics[: len(publishers) if separate_topics else 1]))
    with tempfile.TemporaryDirectory(prefix="bench_transport_") as tmp:
        stop_file = Path(tmp) / "stop"
        tx_before = non_loopback_tx_packets()
        started = time.monotonic()
        sub = spawn(
            "sub",
            child_env(sub_config, domain_id),
            ["--topics", ",".join(sub_topics), "--stop-file", str(stop_file), "--deadline", str(args.trial_timeout)],
        )
        pubs = [
            spawn(
                "pub",
                child_env(pub_config, domain_id + offset),
                ["--topic", topic, "--size", size, "--tag", tag, "--rate", str(args.rate)]
                + ["--duration", str(args.duration), "--match-timeout", str(args.match_timeout)],
            )
            for (tag, pub_config, size, offset), topic in zip(publishers, topics, strict=True)
        ]
        pub_results = []
        for pub in pubs:
            result, err = collect(pub, args.trial_timeout - (time.monotonic() - started))
            pub_results.append(result or {"error": err})
        time.sleep(args.grace)
        stop_file.touch()
        sub_result, sub_err = collect(sub, args.trial_timeout + 2.0 - (time.monotonic() - started))
        wall_s = time.monotonic() - started
        tx = tx_delta(tx_before, non_loopback_tx_packets())
    counts = sub_result.get("counts", {})
    own = [(tag, result) for (tag, *_), result in zip(publishers, pub_results, strict=True) if tag != "other"]
    sent = sum(result.get("sent", 0) for _, result in own)
    received = sum(counts.get(tag, 0) for tag, _ in own)
    return {
        "config": config,
        "scenario": scenario,
        "subscriber_config": sub_config,
        "publisher_configs": [pub_config for _, pub_config, _, _ in publishers],
        "domain_id": domain_id,
        "sent": sent,
        "received": received,
        "ratio": received / sent if sent else None,
        "foreign_received": counts.get("other", 0),
        "latency_p50_ms": sub_result.get("latency_p50_ms"),
        "latency_p95_ms": sub_result.get("latency_p95_ms"),
        "publishers": pub_results,
        "subscriber_error": None if sub_result else sub_err,
        "tx_packets_non_lo": tx,
        "wall_s": wall_s,
    }


def check_profiles(configs: list[str]) -> None:
    """Abort unless every profile file parses: Fast DDS ignores a broken file and falls back to its defaults,
    which under SYSTEM_DEFAULT means multicast discovery on every interface. Checked under LOCALHOST (safe)."""
    for path in sorted({CONFIGS[name]["FASTDDS_DEFAULT_PROFILES_FILE"] for name in configs}):
        env = child_env(BASELINE, 0)
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = path
        probe = "import rclpy; rclpy.init(); rclpy.create_node('bench_profile_check'); rclpy.shutdown()"
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=30)
        if result.returncode != 0 or "XMLPARSER" in result.stderr:
            raise SystemExit(f"profile {path} does not load:\n{result.stderr[-2000:]}")


def control_interval(seconds: float) -> dict:
    """tx_packets of the non-loopback interfaces over `seconds` with no DDS process running."""
    before = non_loopback_tx_packets()
    time.sleep(seconds)
    return {"wall_s": seconds, "tx_packets_non_lo": tx_delta(before, non_loopback_tx_packets())}


def cell(trial: dict) -> str:
    """One table cell: received/sent (+ foreign frames for the isolation scenario)."""
    text = f"{trial['received']}/{trial['sent']}"
    if trial["scenario"] == "isolation":
        text += f" foreign={trial['foreign_received']}"
    return text


def latency_text(trial: dict) -> str:
    """p50/p95 latency in ms, or '-' without frames."""
    if trial["latency_p50_ms"] is None:
        return "-"
    return f"{trial['latency_p50_ms']:.1f}/{trial['latency_p95_ms']:.1f}"


def print_table(trials: list[dict], controls: list[dict]) -> None:
    """Print one row per (config, scenario) with every repeat side by side."""
    rows: dict[tuple[str, str], list[dict]] = {}
    for trial in trials:
        rows.setdefault((trial["config"], trial["scenario"]), []).append(trial)
    header = f"{'config':26} {'scenario':16} {'received/sent per repeat':34} {'latency p50/p95 ms':24} tx non-lo"
    print(header)
    print("-" * len(header))
    for (config, scenario), repeats in rows.items():
        counts = "  ".join(cell(t) for t in repeats)
        latencies = "  ".join(latency_text(t) for t in repeats)
        tx = " ".join(str(sum(t["tx_packets_non_lo"].values())) for t in repeats)
        print(f"{config:26} {scenario:16} {counts:34} {latencies:24} {tx}")
    for control in controls:
        print(f"control (no DDS, {control['wall_s']:.0f} s): tx non-lo {control['tx_packets_non_lo']}")


def parse_args() -> argparse.Namespace:
    """Command line of the orchestrator and of the child roles."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="names from: " + ", ".join(CONFIGS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="names from: " + ", ".join(SCENARIOS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0, help="publishing time per trial, s")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second per publisher")
    parser.add_argument("--match-timeout", type=float, default=4.0, help="publisher's wait for a subscriber, s")
    parser.add_argument("--grace", type=float, default=0.7, help="subscriber time after the last publisher, s")
    parser.add_argument("--trial-timeout", type=float, default=20.0, help="hard limit per trial, s")
    parser.add_argument("--control-s", type=float, default=10.0, help="no-DDS tx control interval, s")
    parser.add_argument("--out", type=Path, help="write all trials as JSON here")
    parser.add_argument("--role", choices=("pub", "sub"), help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--topics", help=argparse.SUPPRESS)
    parser.add_argument("--size", choices=tuple(SIZES), default="640", help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=20.0, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    """Run every (config, scenario) trial --repeats times, interleaved, and report."""
    args = parse_args()
    if args.role == "pub":
        run_publisher(args)
        return
    if args.role == "sub":
        run_subscriber(args)
        return
    configs = [name for name in args.configs.split(",") if name]
    scenarios = [name for name in args.scenarios.split(",") if name]
    unknown = [name for name in configs if name not in CONFIGS] + [name for name in scenarios if name not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown config/scenario: {unknown}")
    check_profiles([name for name in configs if "FASTDDS_DEFAULT_PROFILES_FILE" in CONFIGS[name]])
    domain_base = random.Random(os.getpid()).randrange(10, 90, 2)  # 0-101 keeps Fast DDS ports below ephemeral
    controls = [control_interval(args.control_s)] if args.control_s > 0 else []
    trials = []
    for repeat in range(args.repeats):
        for scenario in scenarios:
            for config in configs:
                if scenario.startswith("mix_") and config == BASELINE:
                    continue
                domain_id = domain_base + 2 * (len(trials) % 5)
                trial = run_trial(config, scenario, args, domain_id)
                trial["repeat"] = repeat
                trials.append(trial)
                print(
                    f"[{repeat}] {config:26} {scenario:16} {cell(trial):22} {latency_text(trial):14} "
                    f"tx={trial['tx_packets_non_lo']} wall={trial['wall_s']:.1f}s",
                    flush=True,
                )
    if args.control_s > 0:
        controls.append(control_interval(args.control_s))
    print()
    print_table(trials, controls)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"args": {k: str(v) for k, v in vars(args).items()}, "controls": controls, "trials": trials}
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
