"""Read an MCAP file as the stream of records it is, without needing its summary, footer or end magic.

MCAP (https://mcap.dev/spec) is written front to back: magic, a Header record, then Schema, Channel, Message
and Chunk records (chunks hold the same records, optionally compressed, with an optional CRC-32 of their
uncompressed bytes), then DataEnd, the summary and a Footer with the end magic. A recorder that dies leaves a
file that stops anywhere; every record before that point is intact. This reader walks the records in file
order, keeps every complete message, and says where and why the stream stopped:

- a missing footer or end magic (the file is cut short) ends reading at the last complete record; of a chunk
  cut in the middle, the complete messages of an uncompressed chunk are kept (no CRC can vouch for them: the
  CRC covers the whole chunk);
- a chunk whose CRC does not match, or that does not decompress, is skipped, and its messages (counted from
  the MessageIndex records that follow it, else from its records) are counted as lost by reason.

Messages of one chunk come out in log-time order (as indexed readers give them); chunks in file order.
"""

from __future__ import annotations

import mmap
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lz4.frame import decompress as lz4_decompress

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_MESSAGE_INDEX = 1, 2, 3, 4, 5, 6, 7
OP_DATA_END = 0x0F
RECORD_PREFIX = 9  # opcode (1 byte) + record length (uint64)
CHUNK_FIXED = 28  # message start/end time, uncompressed size (uint64 each), uncompressed CRC (uint32)
MESSAGE_FIXED = 22  # channel id (uint16), sequence (uint32), log time, publish time (uint64 each)
# Reasons messages are counted as lost.
LOST_CRC = "chunk_crc_mismatch"
LOST_UNDECODABLE = "chunk_undecodable"
LOST_UNKNOWN_CHANNEL = "unknown_channel"

_U16, _U32, _U64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")


class McapFormatError(ValueError):
    """The file is not MCAP at all (no leading magic or Header record)."""


@dataclass(frozen=True)
class McapChannel:
    """A channel: its topic and the name of its message type (the schema name, e.g. sensor_msgs/msg/Image)."""

    id: int
    topic: str
    msgtype: str
    message_encoding: str


@dataclass(frozen=True)
class McapMessage:
    """One complete message record."""

    channel: McapChannel
    log_time_ns: int
    data: bytes


@dataclass
class StreamAccount:
    """How far a read got: whether the file was whole, where it stopped, what was skipped and why."""

    complete: bool = True
    problem: str = ""  # why the file is incomplete; "" when it is whole
    end_offset: int = 0  # file offset after the last complete record
    messages: int = 0  # complete messages yielded (every channel)
    last_log_time_ns: int | None = None
    lost: dict[str, int] = field(default_factory=dict)  # messages skipped, by reason (every channel)
    chunks_skipped: dict[str, int] = field(default_factory=dict)

    def count_lost(self, reason: str, messages: int) -> None:
        """Add `messages` lost for `reason`."""
        self.lost[reason] = self.lost.get(reason, 0) + messages

    def cut(self, problem: str) -> None:
        """Record that the file stops early because of `problem` (the first problem wins)."""
        if self.complete:
            self.complete, self.problem = False, problem


def _string(body: bytes, at: int) -> tuple[str, int]:
    (size,) = _U32.unpack_from(body, at)
    end = at + 4 + size
    if end > len(body):
        raise ValueError("string runs past its record")
    return body[at + 4 : end].decode("utf-8", "replace"), end


def _records(data: bytes, start: int, end: int, account: StreamAccount | None) -> Iterator[tuple[int, int, bytes]]:
    """(opcode, offset, body) of every complete record in data[start:end]; a record running past `end` stops it
    (and, with an account, is recorded as where the data was cut)."""
    at = start
    while at < end:
        if at + RECORD_PREFIX > end:
            if account is not None:
                account.cut(f"the file ends {end - at} byte(s) into a record header at offset {at}")
            return
        opcode = data[at]
        (length,) = _U64.unpack_from(data, at + 1)
        body_end = at + RECORD_PREFIX + length
        if body_end > end:
            if account is not None:
                account.cut(f"the file ends inside a record (opcode 0x{opcode:02x}) at offset {at}")
                if opcode == OP_CHUNK:
                    yield opcode, at, data[at + RECORD_PREFIX : end]  # a cut chunk: its head may still be read
            return
        yield opcode, at, data[at + RECORD_PREFIX : body_end]
        at = body_end
        if account is not None:
            account.end_offset = at


class McapStream:
    """The messages of one MCAP file in file order; ``account`` fills in as they are read."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.account = StreamAccount()
        self.channels: dict[int, McapChannel] = {}
        self._schemas: dict[int, str] = {}

    def messages(self) -> Iterator[McapMessage]:
        """Every complete, intact message; stops at the end of the data, the footer, or where the file is cut."""
        with self.path.open("rb") as handle:
            if self.path.stat().st_size <= len(MAGIC):
                raise McapFormatError(f"{self.path} is not an MCAP file ({self.path.stat().st_size} bytes)")
            # Mapped, not read: a recording can be larger than memory; slices copy only the record at hand.
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                yield from self._walk(data)

    def _walk(self, data) -> Iterator[McapMessage]:
        if data[: len(MAGIC)] != MAGIC or data[len(MAGIC)] != OP_HEADER:
            raise McapFormatError(f"{self.path} is not an MCAP file (no leading magic and Header record)")
        account = self.account
        ended = False
        bad_chunk = None  # reason of the last chunk skipped, while its MessageIndex records follow
        indexed_lost = 0
        for opcode, offset, body in _records(data, len(MAGIC), len(data), account):
            if opcode == OP_MESSAGE_INDEX and bad_chunk is not None:
                (size,) = _U32.unpack_from(body, 2)
                indexed_lost += size // 16
                continue
            if bad_chunk is not None:
                account.count_lost(bad_chunk[0], indexed_lost or bad_chunk[1])
                bad_chunk, indexed_lost = None, 0
            if opcode in (OP_DATA_END, OP_FOOTER):
                ended = True
                break
            if opcode == OP_CHUNK:
                skipped = yield from self._chunk(body, offset)
                if skipped is not None:
                    bad_chunk = skipped
            else:
                yield from self._record(opcode, body)
        if bad_chunk is not None:
            account.count_lost(bad_chunk[0], indexed_lost or bad_chunk[1])
        if data[-len(MAGIC) :] != MAGIC or len(data) < 2 * len(MAGIC) + RECORD_PREFIX:
            account.cut(account.problem or "the file has no footer or end magic (cut short)")
        elif not ended:
            account.cut(f"the data ends without a DataEnd or Footer record at offset {account.end_offset}")

    def _record(self, opcode: int, body: bytes) -> Iterator[McapMessage]:
        if opcode == OP_SCHEMA:
            (schema_id,) = _U16.unpack_from(body, 0)
            self._schemas[schema_id], _ = _string(body, 2)
        elif opcode == OP_CHANNEL:
            channel_id, schema_id = struct.unpack_from("<HH", body, 0)
            topic, at = _string(body, 4)
            encoding, _ = _string(body, at)
            self.channels[channel_id] = McapChannel(channel_id, topic, self._schemas.get(schema_id, ""), encoding)
        elif opcode == OP_MESSAGE:
            channel_id, _, log_time, _ = struct.unpack_from("<HIQQ", body, 0)
            channel = self.channels.get(channel_id)
            if channel is None:
                self.account.count_lost(LOST_UNKNOWN_CHANNEL, 1)
                return
            self.account.messages += 1
            self.account.last_log_time_ns = log_time
            yield McapMessage(channel, log_time, body[MESSAGE_FIXED:])

    def _chunk(self, body: bytes, offset: int):
        """Yield a chunk's messages in log-time order; return (reason, messages) when the chunk is skipped."""
        whole = self.account.complete  # a cut chunk made _records mark the account before handing it over
        try:
            _, _, uncompressed_size, crc = struct.unpack_from("<QQQI", body, 0)
            compression, at = _string(body, CHUNK_FIXED)
            (compressed_size,) = _U64.unpack_from(body, at)
        except (struct.error, ValueError):
            return None  # the cut fell inside the chunk's own header: nothing of it can be read
        payload = body[at + 8 : at + 8 + compressed_size]
        if not whole:
            if compression != "":
                return None  # only an uncompressed chunk can be read up to a cut
            records = payload
        else:
            try:
                records = _decompress(payload, compression, uncompressed_size)
            except Exception:  # lz4/zstd raise their own types for damaged data
                return self._skip(LOST_UNDECODABLE, 0)
            if crc and zlib.crc32(records) != crc:
                return self._skip(LOST_CRC, _count_messages(records))
        found = []
        for opcode, _, record in _records(records, 0, len(records), None):
            found.extend(self._record(opcode, record))
        found.sort(key=lambda m: m.log_time_ns)  # stable: equal times keep their file order
        yield from found
        return None

    def _skip(self, reason: str, messages: int) -> tuple[str, int]:
        self.account.chunks_skipped[reason] = self.account.chunks_skipped.get(reason, 0) + 1
        return reason, messages


def _decompress(payload: bytes, compression: str, size: int) -> bytes:
    if compression == "":
        records = payload
    elif compression == "zstd":
        records = zstd.decompress(payload)
    elif compression == "lz4":
        records = lz4_decompress(payload)
    else:
        raise ValueError(f"unknown chunk compression {compression!r}")
    if len(records) != size:
        raise ValueError(f"chunk decompressed to {len(records)} bytes, its header says {size}")
    return records


def _count_messages(records: bytes) -> int:
    """Message records a damaged chunk appears to hold (a best effort when no MessageIndex follows it)."""
    return sum(1 for opcode, _, _ in _records(records, 0, len(records), None) if opcode == OP_MESSAGE)


def list_channels(path: Path | str) -> tuple[dict[int, McapChannel], dict[int, int], StreamAccount]:
    """Every channel of a (possibly cut-short) MCAP file, the complete messages each holds, and the account."""
    stream = McapStream(path)
    counts: dict[int, int] = {}
    for message in stream.messages():
        counts[message.channel.id] = counts.get(message.channel.id, 0) + 1
    return stream.channels, counts, stream.account
