"""Read what an sqlite3 bag (rosbag2 `.db3`) still holds after its last write was cut short.

SQLite's header records how many pages the database has; a file shorter than that lost its tail (a recorder
killed with rosbag2's in-memory journal, a copy cut off). Such a file is read without SQLite's journal
recovery (read-only, immutable) in insertion order, which is the order the recorder received the messages,
until the first row SQLite can no longer read: every row before it is returned, and where it stopped is said.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HEADER_MAGIC = b"SQLite format 3\x00"
HEADER_BYTES = 100


@dataclass(frozen=True)
class SqliteRow:
    """One message row: its topic, type, bag time and CDR bytes."""

    topic: str
    msgtype: str
    timestamp_ns: int
    data: bytes


def cut_short(path: Path | str) -> str | None:
    """Why the database file is shorter than its header says, or None when it is whole (or cannot tell)."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES or not header.startswith(HEADER_MAGIC):
        return f"{path.name} has no complete SQLite header ({size} bytes)"
    (page_size,) = struct.unpack_from(">H", header, 16)
    page_size = 65536 if page_size == 1 else page_size
    change_counter, page_count = struct.unpack_from(">II", header, 24)
    (valid_for,) = struct.unpack_from(">I", header, 92)
    if valid_for != change_counter or page_count == 0:
        return None  # the header's page count is stale: SQLite itself would go by the file size
    if size < page_count * page_size:
        return f"{path.name} holds {size} of the {page_count * page_size} bytes its header declares"
    return None


class SqliteSalvage:
    """The readable rows of a cut-short rosbag2 sqlite3 file, in insertion order; ``problem`` says where the
    reading stopped ("" when every row was read), ``rows_read`` how many rows came out."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.problem = ""
        self.rows_read = 0
        self.last_timestamp_ns: int | None = None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True)
        # SQLite refuses a file shorter than its header's page count unless the schema is writable; the file
        # is still opened read-only, so nothing is written: SQLite then goes by the pages that are there.
        connection.execute("PRAGMA writable_schema=ON")
        return connection

    def topics(self) -> dict[int, tuple[str, str]]:
        """Topic id -> (name, type), from the topics table (written first, so it survives a cut tail)."""
        with self._connect() as connection:
            return {row[0]: (row[1], row[2]) for row in connection.execute("SELECT id, name, type FROM topics")}

    def counts(self) -> dict[int, int]:
        """Readable message rows per topic id (up to the first unreadable row)."""
        found: dict[int, int] = {}
        for (topic_id,) in self._readable("SELECT topic_id FROM messages ORDER BY id"):
            found[topic_id] = found.get(topic_id, 0) + 1
        return found

    def rows(self, topic_ids: set[int] | None = None) -> Iterator[SqliteRow]:
        """Every readable message row (of `topic_ids`, default all) until the first unreadable one."""
        topics = self.topics()
        for topic_id, timestamp, data in self._readable("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
            self.last_timestamp_ns = int(timestamp)
            if topic_id in topics and (topic_ids is None or topic_id in topic_ids):
                name, msgtype = topics[topic_id]
                yield SqliteRow(name, msgtype, int(timestamp), bytes(data))

    def _readable(self, query: str) -> Iterator[tuple]:
        self.problem, self.rows_read = "", 0
        connection = self._connect()
        try:
            # One row at a time: a failing step loses no row read before it.
            cursor = iter(connection.execute(query))
            while True:
                try:
                    row = next(cursor, None)
                except sqlite3.DatabaseError as error:
                    self.problem = f"SQLite stopped after {self.rows_read} row(s): {error}"
                    return
                if row is None:
                    return
                self.rows_read += 1
                yield row
        finally:
            connection.close()
