"""ROS 2 bag input and output with the pure-Python `rosbags` library (no rclpy, no ros2 CLI needed).

Reads camera topics (sensor_msgs/Image and sensor_msgs/CompressedImage) from mcap or sqlite3 bags in bag-time
order, and writes output bags whose vljepa_msgs connections carry their full message definitions, so
`ros2 bag info/play` on a robot can read them without this package's Python code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
VLJEPA_MSGS_PACKAGE = "vljepa_msgs"
BAG_VERSION = 9

STORAGE_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagError(RuntimeError):
    """A bag cannot be read or written as asked; the message says why."""


@dataclass(frozen=True)
class CameraFrame:
    """One camera message from a bag, with the fields image conversion needs and the raw CDR for republishing.

    `stamp_ns` is the header stamp (the capture time the outputs copy); `bag_time_ns` is when the recorder
    received it (the order the bag is replayed in and the clock a live replay publishes).
    """

    topic: str
    msgtype: str
    bag_time_ns: int
    stamp_ns: int
    frame_id: str
    message: object
    raw: bytes

    @property
    def is_compressed(self) -> bool:
        """True for sensor_msgs/CompressedImage."""
        return self.msgtype == COMPRESSED_IMAGE_TYPE


@dataclass(frozen=True)
class TopicInfo:
    """A topic in a bag: its type and message count."""

    name: str
    msgtype: str
    count: int


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time-like object (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_sec_nanosec(stamp_ns: int) -> tuple[int, int]:
    """Integer nanoseconds -> (sec, nanosec) as in builtin_interfaces/Time (nanosec always in [0, 1e9))."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return sec, nanosec


def find_msg_dir(package: str = VLJEPA_MSGS_PACKAGE) -> Path:
    """Folder holding `package`'s .msg files: an installed share/<package>/msg, else the source tree.

    Search order: every prefix on AMENT_PREFIX_PATH, this interpreter's prefix (where setup.sh installs the
    interfaces), then the repository checkout next to this package.
    """
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    candidates = [Path(p) / "share" / package / "msg" for p in prefixes]
    candidates.append(Path(__file__).resolve().parents[3] / package / "msg")
    for candidate in candidates:
        if any(candidate.glob("*.msg")):
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise BagError(f"no .msg files for {package} found (searched {searched}); run scripts/setup.sh")


def make_typestore(msg_dirs: Sequence[Path] | None = None) -> Typestore:
    """A ROS 2 Kilted typestore with the vljepa_msgs types registered from their .msg definitions."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    dirs = list(msg_dirs) if msg_dirs is not None else [find_msg_dir()]
    types = {}
    for msg_dir in dirs:
        package = msg_dir.parent.name
        for msg_file in sorted(msg_dir.glob("*.msg")):
            types.update(get_types_from_msg(msg_file.read_text(), f"{package}/msg/{msg_file.stem}"))
    typestore.register(types)
    return typestore


def list_topics(bag_path: Path | str) -> list[TopicInfo]:
    """Topics in a bag with their types and counts, sorted by name."""
    with _open_reader(bag_path) as reader:
        return sorted(
            (TopicInfo(name, info.msgtype or "", info.msgcount) for name, info in reader.topics.items()),
            key=lambda t: t.name,
        )


def camera_topics(bag_path: Path | str) -> list[str]:
    """Names of the Image / CompressedImage topics in a bag, sorted."""
    return [t.name for t in list_topics(bag_path) if t.msgtype in CAMERA_TYPES]


def read_camera_frames(
    bag_path: Path | str,
    topics: Sequence[str] | None = None,
    typestore: Typestore | None = None,
) -> Iterator[CameraFrame]:
    """Yield camera messages of `topics` (default: every camera topic) in bag-time order.

    Raises BagError when a requested topic is missing or is not an image type, so a typo never yields an
    empty stream that looks like a quiet camera.
    """
    store = typestore or get_typestore(Stores.ROS2_KILTED)
    with _open_reader(bag_path) as reader:
        by_topic = {}
        for connection in reader.connections:
            by_topic.setdefault(connection.topic, []).append(connection)
        wanted = (
            list(topics)
            if topics
            else [name for name, conns in sorted(by_topic.items()) if conns[0].msgtype in CAMERA_TYPES]
        )
        if not wanted:
            raise BagError(f"{bag_path}: no sensor_msgs/Image or CompressedImage topic in the bag")
        connections = []
        for topic in wanted:
            if topic not in by_topic:
                raise BagError(f"{bag_path}: topic {topic!r} not in the bag (has: {', '.join(sorted(by_topic))})")
            for connection in by_topic[topic]:
                if connection.msgtype not in CAMERA_TYPES:
                    raise BagError(f"{bag_path}: topic {topic!r} has type {connection.msgtype}, not an image")
                connections.append(connection)
        for connection, bag_time_ns, raw in reader.messages(connections=connections):
            message = store.deserialize_cdr(raw, connection.msgtype)
            yield CameraFrame(
                topic=connection.topic,
                msgtype=connection.msgtype,
                bag_time_ns=int(bag_time_ns),
                stamp_ns=stamp_to_ns(message.header.stamp),
                frame_id=message.header.frame_id,
                message=message,
                raw=bytes(raw),
            )


def read_messages(bag_path: Path | str, topic: str, typestore: Typestore | None = None) -> list[tuple[int, object]]:
    """All messages of one topic as (bag_time_ns, deserialized message), in bag-time order."""
    store = typestore or make_typestore()
    with _open_reader(bag_path) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return [
            (int(t), store.deserialize_cdr(raw, c.msgtype)) for c, t, raw in reader.messages(connections=connections)
        ]


@contextmanager
def _open_reader(bag_path: Path | str) -> Iterator[Reader]:
    path = Path(bag_path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as error:  # rosbags raises several unrelated types for unreadable bags
        raise BagError(f"cannot open bag {path}: {error}") from error
    try:
        yield reader
    finally:
        reader.close()


class BagWriter:
    """Writes serialized messages to a new ROS 2 bag; connections are created on first use of a topic.

    Use as a context manager. Messages can be given as rosbags message objects (serialized with the
    typestore) or as CDR bytes already serialized elsewhere (for example by rclpy), so both paths write
    byte-identical data.
    """

    def __init__(self, path: Path | str, storage: str = "mcap", typestore: Typestore | None = None):
        if storage not in STORAGE_PLUGINS:
            raise BagError(f"storage must be one of {sorted(STORAGE_PLUGINS)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"output bag {self.path} already exists; remove it or choose another path")
        self.typestore = typestore or make_typestore()
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=STORAGE_PLUGINS[storage])
        self._connections = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Finish the bag (writes metadata.yaml); safe to call twice."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic now so it appears in the bag even if no message is ever written to it."""
        if topic in self._connections:
            if self._connections[topic].msgtype != msgtype:
                raise BagError(f"topic {topic} already has type {self._connections[topic].msgtype}, not {msgtype}")
            return
        if msgtype not in self.typestore.types:
            raise BagError(f"message type {msgtype} is not registered in the typestore")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
        self.counts[topic] = 0

    def write(
        self, topic: str, msgtype: str, bag_time_ns: int, message: object | None = None, raw: bytes | None = None
    ) -> None:
        """Write one message given either as a rosbags object (`message`) or as CDR bytes (`raw`)."""
        if (message is None) == (raw is None):
            raise ValueError("give exactly one of message or raw")
        self.add_topic(topic, msgtype)
        data = raw if raw is not None else self.typestore.serialize_cdr(message, msgtype)
        self._writer.write(self._connections[topic], int(bag_time_ns), bytes(data))
        self.counts[topic] += 1


def make_image_message(typestore: Typestore, rgb, stamp_ns: int, frame_id: str):
    """A rosbags sensor_msgs/Image (rgb8) holding an HxWx3 uint8 array, stamped `stamp_ns`."""
    import numpy as np

    image = np.ascontiguousarray(rgb, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {image.shape}")
    types = typestore.types
    sec, nanosec = ns_to_sec_nanosec(stamp_ns)
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )
    height, width, _ = image.shape
    return types[IMAGE_TYPE](
        header=header,
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=0,
        step=width * 3,
        data=image.reshape(-1),
    )
