"""The replay's output bag: the topics the nodes publish, and their messages written in a stable order.

Messages are built by the nodes' own message builders (nodes/ros_conversions.py, rclpy types) so they are
what the nodes publish. rclpy's CDR leaves alignment padding uninitialised, so each message is re-serialised
by the rosbags typestore (zero padding, same field values): the same replay gives byte-identical bags.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from rclpy.serialization import serialize_message

from vljepa_ros.bags import bag_io

PERCEPTION_NODE = "vljepa_perception"
DECODER_NODE = "vljepa_decoder"
TOPIC_EMBEDDING = f"/{PERCEPTION_NODE}/embedding"
TOPIC_VISUAL = f"/{PERCEPTION_NODE}/visual_embedding"
TOPIC_TRANSITION = f"/{PERCEPTION_NODE}/world_state_transition"
TOPIC_CAPTION = f"/{DECODER_NODE}/caption"
TOPIC_STATISTICS = f"/{DECODER_NODE}/decode_statistics"
TOPIC_SEGMENT_CAPTION = "/vljepa_replay/segment_caption"
EMBEDDING_TYPE = "vljepa_msgs/msg/Embedding"
TRANSITION_TYPE = "vljepa_msgs/msg/WorldStateTransition"
CAPTION_TYPE = "vljepa_msgs/msg/Caption"
STATISTICS_TYPE = "vljepa_msgs/msg/DecodeStatistics"
# Output topics in the order messages with equal stamps are written (keeps the bag byte-for-byte stable).
OUTPUT_TOPICS = OrderedDict(
    [
        (TOPIC_EMBEDDING, EMBEDDING_TYPE),
        (TOPIC_VISUAL, EMBEDDING_TYPE),
        (TOPIC_TRANSITION, TRANSITION_TYPE),
        (TOPIC_CAPTION, CAPTION_TYPE),
        (TOPIC_SEGMENT_CAPTION, CAPTION_TYPE),
        (TOPIC_STATISTICS, STATISTICS_TYPE),
    ]
)


class OutputMessages:
    """Serialized output messages, written sorted by (stamp, topic order, arrival) at the end."""

    def __init__(self):
        self._store = bag_io.make_typestore()
        self._order = {topic: i for i, topic in enumerate(OUTPUT_TOPICS)}
        self.items: list[tuple[int, int, int, str, bytes]] = []

    def add(self, topic: str, stamp_ns: int, message) -> None:
        """Keep one rclpy message of an OUTPUT_TOPICS topic, to be written with bag time `stamp_ns`."""
        msgtype = OUTPUT_TOPICS[topic]
        canonical = self._store.serialize_cdr(self._store.deserialize_cdr(serialize_message(message), msgtype), msgtype)
        self.items.append((int(stamp_ns), self._order[topic], len(self.items), topic, bytes(canonical)))

    def write(self, path: Path, storage: str) -> dict[str, int]:
        """Write every kept message into a new bag at `path`; returns the messages written per topic."""
        with bag_io.BagWriter(path, storage=storage, typestore=self._store) as writer:
            for topic, msgtype in OUTPUT_TOPICS.items():
                writer.add_topic(topic, msgtype)
            for stamp_ns, _, _, topic, raw in sorted(self.items):
                writer.write(topic, OUTPUT_TOPICS[topic], stamp_ns, raw=raw)
        return dict(writer.counts)
