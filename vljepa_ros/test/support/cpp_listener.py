"""The C++ example consumer (examples/embedding_listener_cpp, built and run by scripts/cpp_listener.sh) in its own
process, and what it prints for a message as an rclpy subscriber sees it."""

import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from vljepa_msgs.msg import Embedding

LISTENER = Path(__file__).resolve().parents[3] / "scripts" / "cpp_listener.sh"
EMBEDDINGS = "/vljepa_perception/embedding"


def fnv1a(data) -> str:
    """The listener's hash of a float32 vector's bytes."""
    value = 1469598103934665603
    for byte in np.asarray(data, dtype=np.float32).tobytes():
        value = ((value ^ byte) * 1099511628211) % (1 << 64)
    return f"{value:016x}"


def stamp_text(stamp) -> str:
    return f"{stamp.sec}.{stamp.nanosec:09d}"


def expected_line(msg: Embedding) -> dict:
    """The fields the listener prints for `msg`, as an rclpy subscriber sees it."""
    return {
        "camera": msg.camera,
        "stamp": stamp_text(msg.header.stamp),
        "frame_id": msg.header.frame_id,
        "kind": str(msg.kind),
        "model_id": msg.model_id,
        "model_version": msg.model_version,
        "clip_start": stamp_text(msg.clip_start),
        "num_frames": str(msg.num_frames),
        "shape": "x".join(str(int(n)) for n in msg.shape),
        "normalized": str(int(msg.normalized)),
        "fnv1a": fnv1a(msg.data),
        "query": msg.query,
    }


def parse(line: str) -> tuple[str, dict]:
    """`word key=value ...` (the query, printed last, may hold spaces)."""
    head, _, rest = line.partition(" ")
    fields = {}
    if " query=" in f" {rest}":
        rest, _, query = f" {rest}".partition(" query=")
        fields["query"] = query
    for item in rest.split():
        key, _, value = item.partition("=")
        fields[key] = value
    return head, fields


class ListenerProcess:
    """scripts/cpp_listener.sh in its own process (stderr to `log`), its output lines collected as they come."""

    def __init__(self, log, topic: str = EMBEDDINGS):
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.process = subprocess.Popen(
            ["bash", str(LISTENER), "--topic", topic, "--count", "0"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=dict(os.environ, VLJEPA_VENV=sys.prefix),
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def parsed(self, word: str) -> list[dict]:
        with self.lock:
            return [fields for head, fields in map(parse, self.lines) if head == word]

    def stop(self) -> None:
        """SIGTERM: the listener prints its summary line and exits."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=20)
        self.reader.join(timeout=5)


@contextmanager
def running_listener(log_path: Path):
    """A ListenerProcess, stopped on the way out."""
    with open(log_path, "w") as log:
        listener = ListenerProcess(log)
        try:
            yield listener
        finally:
            listener.stop()
