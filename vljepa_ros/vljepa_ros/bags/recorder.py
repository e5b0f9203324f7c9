"""Record live topics into a ROS 2 bag (the `ros2 bag record` subset the demo and tests need).

Subscriptions take the serialized CDR (`raw=True`) and each message is re-serialised by the rosbags typestore
before it is written: the field values are the publisher's, and the alignment padding, which rclpy leaves
uninitialised (process memory), is zeroed. Bag times come from the recorder node's clock (sim time when
`use_sim_time` is set).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from vljepa_ros.bags import bag_io


def ros_message_class(msgtype: str):
    """'pkg/msg/Name' -> the generated rclpy message class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class TopicRecorder:
    """A node that writes every message of the given topics into a new bag until `close()`.

    `on_message(topic, raw)` is called after each write (from the executor thread), e.g. to print captions.
    """

    def __init__(
        self,
        bag_path: Path | str,
        topics: Sequence[tuple[str, str]],
        storage: str = "mcap",
        reliable: bool = True,
        depth: int = 1000,
        node_name: str = "vljepa_recorder",
        on_message: Callable[[str, bytes], None] | None = None,
    ):
        self._lock = threading.Lock()
        self._writer = bag_io.BagWriter(bag_path, storage=storage)
        self._writer.__enter__()
        self._on_message = on_message
        self._final_counts: dict[str, int] = {}
        self.node = Node(node_name)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=depth,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        self._subscriptions = []
        for topic, msgtype in topics:
            self._writer.add_topic(topic, msgtype)
            self._subscriptions.append(
                self.node.create_subscription(
                    ros_message_class(msgtype), topic, self._callback(topic, msgtype), qos, raw=True
                )
            )

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per topic so far."""
        with self._lock:
            return dict(self._writer.counts) if self._writer is not None else dict(self._final_counts)

    def _callback(self, topic: str, msgtype: str):
        def record(raw: bytes) -> None:
            with self._lock:
                if self._writer is None:
                    return
                store = self._writer.typestore
                canonical = store.serialize_cdr(store.deserialize_cdr(raw, msgtype), msgtype)
                self._writer.write(topic, msgtype, self.node.get_clock().now().nanoseconds, raw=canonical)
            if self._on_message is not None:
                self._on_message(topic, raw)

        return record

    def close(self) -> dict[str, int]:
        """Stop recording, finish the bag and destroy the node; returns the per-topic counts."""
        with self._lock:
            if self._writer is not None:
                self._final_counts = dict(self._writer.counts)
                self._writer.close()
                self._writer = None
        self.node.destroy_node()
        return dict(self._final_counts)
