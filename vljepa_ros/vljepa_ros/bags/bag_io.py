"""ROS 2 bag input and output with the pure-Python `rosbags` library (no rclpy, no ros2 CLI needed).

Reads camera topics (sensor_msgs/Image and sensor_msgs/CompressedImage) from mcap or sqlite3 bags in bag-time
order, and writes output bags whose vljepa_msgs connections carry their full message definitions, so
`ros2 bag info/play` on a robot can read them without this package's Python code.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from vljepa_ros.bags.mcap_stream import McapFormatError, McapStream, list_channels
from vljepa_ros.bags.sqlite_salvage import SqliteSalvage, cut_short

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
VLJEPA_MSGS_PACKAGE = "vljepa_msgs"
BAG_VERSION = 9

STORAGE_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
LOST_UNDESERIALIZABLE = "undeserializable"  # a complete record whose CDR does not parse as its type


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


@dataclass
class BagReadReport:
    """How far reading a bag's camera messages got; filled in while they are read.

    A bag is ``complete`` unless a storage file stops early (a recorder that died: no MCAP footer, an SQLite
    file shorter than its header says); then ``problem`` says where, and every complete message before the cut
    was still read. ``lost`` counts messages (of any topic) skipped by reason, e.g. MCAP chunks whose CRC does
    not match.
    """

    complete: bool = True
    problem: str = ""
    messages_read: int = 0  # camera messages read (of the topics asked for)
    last_bag_time_ns: int | None = None  # the last good message's bag time and header stamp
    last_stamp_ns: int | None = None
    lost: dict[str, int] = field(default_factory=dict)

    def cut(self, problem: str) -> None:
        """Record that a storage file stops early (problems of several files are joined)."""
        self.complete = False
        self.problem = f"{self.problem}; {problem}" if self.problem else problem

    def count_lost(self, reason: str, messages: int) -> None:
        """Add `messages` lost for `reason` (zero adds nothing)."""
        if messages:
            self.lost[reason] = self.lost.get(reason, 0) + messages

    def as_dict(self) -> dict:
        """The "input" entry of replay's summary.json."""
        return {
            "complete": self.complete,
            "problem": self.problem,
            "messages_read": self.messages_read,
            "last_good_bag_time_ns": self.last_bag_time_ns,
            "last_good_stamp_ns": self.last_stamp_ns,
            "messages_lost": dict(sorted(self.lost.items())),
        }


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
    """Topics in a bag with their types and counts, sorted by name.

    A bag rosbags cannot open (a cut-short MCAP file, a missing metadata.yaml) is scanned record by record:
    the counts are then the complete messages it holds.
    """
    try:
        with _open_reader(bag_path) as reader:
            return sorted(
                (TopicInfo(name, info.msgtype or "", info.msgcount) for name, info in reader.topics.items()),
                key=lambda t: t.name,
            )
    except BagError:
        scanned = _scan_topics(Path(bag_path))
        if scanned is None:
            raise
        return scanned


def _scan_topics(path: Path) -> list[TopicInfo] | None:
    mcaps = _storage_files(path, ".mcap")
    counts: dict[tuple[str, str], int] = {}
    for file in _storage_files(path, ".db3") if not mcaps else ():
        salvage = SqliteSalvage(file)
        try:
            topics, per_topic = salvage.topics(), salvage.counts()
        except Exception:  # sqlite3 raises several types for a file it cannot read at all
            return None
        for topic_id, key in topics.items():
            counts[key] = counts.get(key, 0) + per_topic.get(topic_id, 0)
    for file in mcaps:
        try:
            channels, per_channel, _ = list_channels(file)
        except (McapFormatError, OSError):
            return None
        for channel in channels.values():
            key = (channel.topic, channel.msgtype)
            counts[key] = counts.get(key, 0) + per_channel.get(channel.id, 0)
    if not counts:
        return None
    return sorted((TopicInfo(topic, msgtype, n) for (topic, msgtype), n in counts.items()), key=lambda t: t.name)


def camera_topics(bag_path: Path | str) -> list[str]:
    """Names of the Image / CompressedImage topics in a bag, sorted."""
    return [t.name for t in list_topics(bag_path) if t.msgtype in CAMERA_TYPES]


def read_camera_frames(
    bag_path: Path | str,
    topics: Sequence[str] | None = None,
    typestore: Typestore | None = None,
    report: BagReadReport | None = None,
) -> Iterator[CameraFrame]:
    """Yield camera messages of `topics` (default: every camera topic) in bag-time order.

    Raises BagError when a requested topic is missing or is not an image type, so a typo never yields an
    empty stream that looks like a quiet camera. MCAP files are read record by record (mcap_stream), so a
    file cut short yields every complete message before the cut and a chunk failing its CRC is skipped;
    an SQLite file cut short is read as far as SQLite can (sqlite_salvage). `report` says how far it got.
    """
    store = typestore or get_typestore(Stores.ROS2_KILTED)
    report = report if report is not None else BagReadReport()
    types: dict[str, set[str]] = {}
    for info in list_topics(bag_path):
        types.setdefault(info.name, set()).add(info.msgtype)
    wanted = list(topics) if topics else [name for name, kinds in sorted(types.items()) if kinds <= set(CAMERA_TYPES)]
    if not wanted:
        raise BagError(f"{bag_path}: no sensor_msgs/Image or CompressedImage topic in the bag")
    for topic in wanted:
        if topic not in types:
            raise BagError(f"{bag_path}: topic {topic!r} not in the bag (has: {', '.join(sorted(types))})")
        for msgtype in types[topic]:
            if msgtype not in CAMERA_TYPES:
                raise BagError(f"{bag_path}: topic {topic!r} has type {msgtype}, not an image")
    for topic, msgtype, bag_time_ns, raw in _raw_messages(Path(bag_path), set(wanted), report):
        try:
            message = store.deserialize_cdr(raw, msgtype)
            stamp_ns = stamp_to_ns(message.header.stamp)
        except Exception:  # rosbags raises several types for bytes that are not this message type
            report.count_lost(LOST_UNDESERIALIZABLE, 1)
            continue
        report.messages_read += 1
        report.last_bag_time_ns, report.last_stamp_ns = int(bag_time_ns), stamp_ns
        yield CameraFrame(
            topic=topic,
            msgtype=msgtype,
            bag_time_ns=int(bag_time_ns),
            stamp_ns=stamp_ns,
            frame_id=message.header.frame_id,
            message=message,
            raw=bytes(raw),
        )


def _storage_files(path: Path, suffix: str) -> list[Path]:
    """The bag's storage files with `suffix`, in split order (bag_0, bag_1, ..., bag_10)."""
    if not path.is_dir():
        return []
    files = [f for f in path.iterdir() if f.is_file() and f.name.endswith(suffix)]
    return sorted(files, key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f.name)])


def _raw_messages(path: Path, topics: set[str], report: BagReadReport) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, type, bag time, CDR) of `topics` from the bag's storage files, recording how far it got."""
    mcaps = _storage_files(path, ".mcap")
    if mcaps:
        for file in mcaps:
            stream = McapStream(file)
            try:
                for message in stream.messages():
                    if message.channel.topic in topics:
                        yield message.channel.topic, message.channel.msgtype, message.log_time_ns, message.data
            except McapFormatError as error:
                raise BagError(f"cannot open bag {path}: {error}") from error
            account = stream.account
            for reason, count in account.lost.items():
                report.count_lost(reason, count)
            if not account.complete:
                report.cut(f"{file.name}: {account.problem}")
        return
    damaged = {file: cut_short(file) for file in _storage_files(path, ".db3")}
    if any(damaged.values()):
        for file, problem in damaged.items():
            salvage = SqliteSalvage(file)
            try:
                for row in salvage.rows():
                    if row.topic in topics:
                        yield row.topic, row.msgtype, row.timestamp_ns, row.data
            except Exception as error:  # sqlite3 raises several types for a file it cannot read at all
                raise BagError(f"cannot read bag {path}: {file.name}: {error}") from error
            if problem or salvage.problem:
                stopped = salvage.problem or f"all {salvage.rows_read} readable row(s) read"
                report.cut(f"{problem or file.name + ': unreadable rows'}; {stopped}")
        return
    with _open_reader(path) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        for connection, bag_time_ns, raw in reader.messages(connections=connections):
            yield connection.topic, connection.msgtype, bag_time_ns, raw


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
