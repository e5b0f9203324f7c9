"""Bags as recorders and disks damage them: cut short (MCAP without footer, SQLite without its tail) and MCAP
chunks carrying a CRC, one of them with a flipped byte. Built from real tiny-world bags written by rosbags."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

from vljepa_ros.bags.mcap_stream import OP_CHUNK, RECORD_PREFIX, _records
from vljepa_ros.tiny_world.bag_writer import write_stream_bag
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream

# 160x120 rgb8 frames are 57.6 kB: rosbags closes a chunk past 1 MiB, so an 8 s bag at 8 fps has 4 chunks.
WIDTH, HEIGHT, FPS, DURATION_S = 160, 120, 8.0, 8.0


def world_bag(path: Path, seed: int = 7, storage: str = "mcap") -> Path:
    """A whole tiny-world bag with one camera topic."""
    config = StreamConfig(seed=seed, duration_s=DURATION_S, fps=FPS, width=WIDTH, height=HEIGHT)
    write_stream_bag(generate_stream(config), path, storage=storage)
    return path


def storage_file(bag: Path, suffix: str) -> Path:
    (file,) = sorted(bag.glob(f"*{suffix}"))
    return file


def cut_copy(bag: Path, out: Path, suffix: str, fraction: float) -> tuple[Path, int]:
    """A copy of `bag` whose storage file keeps only its first `fraction` of bytes; returns it and the cut."""
    shutil.copytree(bag, out)
    file = storage_file(out, suffix)
    data = file.read_bytes()
    cut = int(len(data) * fraction)
    file.write_bytes(data[:cut])
    return out, cut


def chunks(data: bytes) -> list[tuple[int, int]]:
    """(record offset, records offset) of every top-level chunk of an MCAP file."""
    found = []
    for opcode, offset, body in _records(data, 8, len(data), None):
        if opcode == OP_CHUNK:
            (compression_len,) = struct.unpack_from("<I", body, 28)
            found.append((offset, offset + RECORD_PREFIX + 28 + 4 + compression_len + 8))
    return found


def with_chunk_crcs(bag: Path, out: Path, damage_chunk: int | None = None) -> Path:
    """A copy of an (uncompressed) MCAP bag whose chunks carry the CRC-32 of their records, as the spec allows;
    with `damage_chunk`, one byte inside that chunk's records is flipped after the CRC was written."""
    shutil.copytree(bag, out)
    file = storage_file(out, ".mcap")
    data = bytearray(file.read_bytes())
    for index, (offset, records_at) in enumerate(chunks(bytes(data))):
        body_at = offset + RECORD_PREFIX
        (size,) = struct.unpack_from("<Q", data, body_at + 16)
        struct.pack_into("<I", data, body_at + 24, zlib.crc32(bytes(data[records_at : records_at + size])))
        if index == damage_chunk:
            data[records_at + size // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    return out
