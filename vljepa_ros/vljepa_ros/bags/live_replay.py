"""Publish a bag's camera images into running nodes in real time (or a rate factor), with the bag's /clock.

The counterpart of `ros2 bag play` for machines without ros2cli: messages are published as the raw CDR stored
in the bag (no re-serialisation), paced by their bag times, on RELIABLE publishers (compatible with both
reliable and best-effort subscribers). Before the first frame it waits until every topic has a subscriber, so
nothing is published into the void; nodes started with `use_sim_time:=true` follow the published /clock.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import remove_ros_args
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image

from vljepa_ros.bags import bag_io

CLOCK_TOPIC = "/clock"


@dataclass(frozen=True)
class LiveReplayConfig:
    """What to replay and how fast. Validated on construction; errors name the option."""

    bag: Path
    topics: tuple[str, ...] = ()  # bag topics to publish; empty: every camera topic
    remap: tuple[tuple[str, str], ...] = ()  # (bag topic, published topic) pairs
    rate: float = 1.0  # 2.0 plays twice as fast as recorded
    publish_clock: bool = True
    clock_hz: float = 50.0  # /clock ticks between frames, so sim-time timers keep running
    wait_for_subscribers_s: float = 10.0  # 0: do not wait
    queue_depth: int = 100
    start_s: float = 0.0  # skip the frames of the first start_s seconds (bag time after the first camera frame)

    def __post_init__(self):
        for source, target in self.remap:
            if not (source.startswith("/") and target.startswith("/")):
                raise ValueError(f"remap needs absolute topic names, got {source!r} -> {target!r}")
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if not self.clock_hz > 0:
            raise ValueError(f"clock_hz must be > 0, got {self.clock_hz}")
        if self.wait_for_subscribers_s < 0:
            raise ValueError(f"wait_for_subscribers_s must be >= 0, got {self.wait_for_subscribers_s}")
        if self.queue_depth < 1:
            raise ValueError(f"queue_depth must be >= 1, got {self.queue_depth}")
        if not self.start_s >= 0:
            raise ValueError(f"start must be >= 0 seconds, got {self.start_s}")

    def output_topic(self, bag_topic: str) -> str:
        """The topic a bag topic is published on after remapping."""
        return dict(self.remap).get(bag_topic, bag_topic)


@dataclass
class LiveReplayStats:
    """What a replay did: per published topic counts and how closely the schedule was kept."""

    published: dict[str, int] = field(default_factory=dict)
    subscribers_at_start: dict[str, int] = field(default_factory=dict)
    max_lateness_s: float = 0.0
    wall_seconds: float = 0.0
    bag_seconds: float = 0.0
    stopped_early: bool = False

    def as_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "published": dict(self.published),
            "subscribers_at_start": dict(self.subscribers_at_start),
            "max_lateness_s": round(self.max_lateness_s, 4),
            "wall_seconds": round(self.wall_seconds, 3),
            "bag_seconds": round(self.bag_seconds, 3),
            "stopped_early": self.stopped_early,
        }


class LiveReplayer:
    """Owns a node with one publisher per camera topic (and /clock) and plays the bag through it.

    `run()` blocks the calling thread; it needs no executor because it only publishes. Several replayers and
    the nodes under test may live in the same process.
    """

    def __init__(self, config: LiveReplayConfig, node_name: str = "vljepa_live_replay"):
        self.config = config
        topics = {t.name: t.msgtype for t in bag_io.list_topics(config.bag)}
        wanted = list(config.topics) or [name for name, kind in topics.items() if kind in bag_io.CAMERA_TYPES]
        if not wanted:
            raise bag_io.BagError(f"{config.bag}: no camera topic to replay")
        for topic in wanted:
            if topic not in topics:
                raise bag_io.BagError(f"{config.bag}: topic {topic!r} not in the bag")
            if topics[topic] not in bag_io.CAMERA_TYPES:
                raise bag_io.BagError(f"{config.bag}: topic {topic!r} has type {topics[topic]}, not an image")
        self.bag_topics = tuple(wanted)
        self.node = Node(node_name)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=config.queue_depth,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        ros_types = {bag_io.IMAGE_TYPE: Image, bag_io.COMPRESSED_IMAGE_TYPE: CompressedImage}
        self._publishers = {
            topic: self.node.create_publisher(ros_types[topics[topic]], config.output_topic(topic), qos)
            for topic in self.bag_topics
        }
        self._clock_type = Clock
        self._clock_publisher = self.node.create_publisher(Clock, CLOCK_TOPIC, 10) if config.publish_clock else None

    def destroy(self) -> None:
        """Destroy the node and its publishers."""
        self.node.destroy_node()

    def wait_for_subscribers(self, stop: threading.Event | None = None) -> dict[str, int]:
        """Wait until every published topic has a subscriber, or the configured time is up; returns counts."""
        deadline = time.monotonic() + self.config.wait_for_subscribers_s
        while True:
            counts = {self.config.output_topic(t): p.get_subscription_count() for t, p in self._publishers.items()}
            if all(counts.values()) or time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return counts
            time.sleep(0.05)

    def run(
        self, stop: threading.Event | None = None, on_frame: Callable[[bag_io.CameraFrame], None] | None = None
    ) -> LiveReplayStats:
        """Publish every frame at its bag time scaled by the rate; returns what was published."""
        stats = LiveReplayStats(published={self.config.output_topic(t): 0 for t in self.bag_topics})
        stats.subscribers_at_start = self.wait_for_subscribers(stop)
        for topic, count in stats.subscribers_at_start.items():
            if count == 0:
                self.node.get_logger().warning(
                    f"no subscriber on {topic} after {self.config.wait_for_subscribers_s:.1f} s; publishing anyway"
                )
        wall_start = time.monotonic()
        bag_start = None
        last_bag_time = None
        skip_until_ns = None
        for frame in bag_io.read_camera_frames(self.config.bag, self.bag_topics):
            if skip_until_ns is None:
                skip_until_ns = frame.bag_time_ns + int(round(self.config.start_s * 1e9))
            if frame.bag_time_ns < skip_until_ns:
                continue
            if bag_start is None:
                bag_start = frame.bag_time_ns
                self._publish_clock(frame.bag_time_ns)
            due = wall_start + (frame.bag_time_ns - bag_start) / 1e9 / self.config.rate
            if not self._sleep_until(due, bag_start, wall_start, frame.bag_time_ns, stop):
                stats.stopped_early = True
                break
            stats.max_lateness_s = max(stats.max_lateness_s, time.monotonic() - due)
            self._publish_clock(frame.bag_time_ns)
            self._publishers[frame.topic].publish(frame.raw)
            stats.published[self.config.output_topic(frame.topic)] += 1
            last_bag_time = frame.bag_time_ns
            if on_frame is not None:
                on_frame(frame)
        stats.wall_seconds = time.monotonic() - wall_start
        if bag_start is not None and last_bag_time is not None:
            stats.bag_seconds = (last_bag_time - bag_start) / 1e9
        return stats

    def _sleep_until(
        self, due: float, bag_start: int, wall_start: float, next_bag_time: int, stop: threading.Event | None
    ) -> bool:
        """Sleep until `due`, ticking /clock in between; False when asked to stop."""
        tick = 1.0 / self.config.clock_hz
        while True:
            if stop is not None and stop.is_set():
                return False
            remaining = due - time.monotonic()
            if remaining <= 0:
                return True
            time.sleep(min(tick, remaining))
            elapsed_bag_ns = int((time.monotonic() - wall_start) * self.config.rate * 1e9)
            self._publish_clock(min(bag_start + elapsed_bag_ns, next_bag_time))

    def _publish_clock(self, bag_time_ns: int) -> None:
        if self._clock_publisher is None:
            return
        message = self._clock_type()
        message.clock.sec, message.clock.nanosec = bag_io.ns_to_sec_nanosec(bag_time_ns)
        self._clock_publisher.publish(message)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of `live_replay`."""
    parser = argparse.ArgumentParser(
        prog="live_replay",
        description="Publish a ROS 2 bag's camera topics in real time (with /clock) into running nodes.",
    )
    parser.add_argument("bag", type=Path, help="input bag folder (mcap or sqlite3)")
    parser.add_argument("--topics", nargs="+", default=[], help="bag topics to publish (default: all cameras)")
    # Not FROM:=TO: rcl strips that (deprecated remap) syntax from the command line before argparse sees it.
    parser.add_argument(
        "--remap",
        nargs=2,
        action="append",
        default=[],
        metavar=("FROM", "TO"),
        help="publish bag topic FROM on topic TO (repeatable)",
    )
    parser.add_argument("--rate", type=float, default=1.0, help="playback rate factor (default 1.0)")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument("--clock-hz", type=float, default=50.0, help="/clock ticks per second between frames")
    parser.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="wait up to this long for a subscriber on every topic before starting (0: no wait)",
    )
    parser.add_argument("--queue-depth", type=int, default=100, help="publisher queue depth (RELIABLE)")
    parser.add_argument(
        "--start",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="start this many seconds after the bag's first camera frame (default 0)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> LiveReplayConfig:
    """Parsed arguments -> validated config."""
    return LiveReplayConfig(
        bag=args.bag,
        topics=tuple(args.topics),
        remap=tuple((source, target) for source, target in args.remap),
        rate=args.rate,
        publish_clock=not args.no_clock,
        clock_hz=args.clock_hz,
        wait_for_subscribers_s=args.wait_for_subscribers,
        queue_depth=args.queue_depth,
        start_s=args.start,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `live_replay`: publish a bag into running nodes, print a one-line summary."""
    argv = list(sys.argv if argv is None else ["live_replay", *argv])
    args = build_parser().parse_args(remove_ros_args(argv)[1:])
    try:
        config = config_from_args(args)
    except ValueError as error:
        print(f"live_replay: {error}", file=sys.stderr)
        return 2
    rclpy.init(args=argv)
    replayer = None
    try:
        replayer = LiveReplayer(config)
        stats = replayer.run()
        print(json.dumps(stats.as_dict()))
        return 0
    except bag_io.BagError as error:
        print(f"live_replay: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if replayer is not None:
            replayer.destroy()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
