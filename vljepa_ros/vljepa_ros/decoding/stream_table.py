"""A bounded table of per-camera state: at most `max_streams` entries, idle ones expire, new ones may be refused.

The decoder node keys its streams by the `camera` field of incoming messages, which any publisher on the topic
chooses; without a bound every name ever seen would keep its detector state and its diagnostics forever.
Pure Python; times are integer nanoseconds of a steady clock supplied by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from vljepa_ros.decoding.config import StreamLimits

_NS_PER_S = 1_000_000_000
State = TypeVar("State")


@dataclass
class _Entry(Generic[State]):
    state: State
    last_active_ns: int


class StreamTable(Generic[State]):
    """Camera name -> state, bounded by `limits`; `expired` and `refused_full` count what the bound cost."""

    def __init__(self, limits: StreamLimits, make_state: Callable[[], State]):
        self._limits = limits
        self._make_state = make_state
        self._entries: dict[str, _Entry[State]] = {}  # insertion order = least recently active first
        self.expired = 0
        self.refused_full = 0

    @property
    def limits(self) -> StreamLimits:
        return self._limits

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, camera: str) -> bool:
        return camera in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def get(self, camera: str) -> State | None:
        """The state of `camera`, or None when it has none (never seen, expired or refused)."""
        entry = self._entries.get(camera)
        return None if entry is None else entry.state

    def items(self) -> list[tuple[str, State]]:
        """(camera, state) pairs sorted by camera name."""
        return [(camera, self._entries[camera].state) for camera in sorted(self._entries)]

    def idle_seconds(self, camera: str, now_ns: int) -> float:
        """Seconds since `camera` was last active (KeyError if it has no entry)."""
        return (now_ns - self._entries[camera].last_active_ns) / _NS_PER_S

    def touch(self, camera: str, now_ns: int) -> tuple[State | None, list[str]]:
        """Mark `camera` active now; returns (its state, cameras expired to make room).

        A new camera gets a fresh state. When the table is full, streams idle for longer than `expiry_s` are
        expired, least recently active first, until one slot is free; when none is idle the new camera is
        refused (state None, counted in `refused_full`). An existing camera is never refused.
        """
        entry = self._entries.pop(camera, None)
        expired: list[str] = []
        if entry is None:
            if len(self._entries) >= self._limits.max_streams:
                expired = self._expire_idle(now_ns, needed=len(self._entries) - self._limits.max_streams + 1)
            if len(self._entries) >= self._limits.max_streams:
                self.refused_full += 1
                return None, expired
            entry = _Entry(self._make_state(), now_ns)
        entry.last_active_ns = max(entry.last_active_ns, now_ns)
        self._entries[camera] = entry
        return entry.state, expired

    def expire_idle(self, now_ns: int) -> list[str]:
        """Remove every stream idle for longer than `expiry_s`; returns their names, least recently active first."""
        return self._expire_idle(now_ns, needed=len(self._entries))

    def _expire_idle(self, now_ns: int, needed: int) -> list[str]:
        limit_ns = int(self._limits.stream_expiry_s * _NS_PER_S)
        expired = []
        for camera, entry in list(self._entries.items()):
            if len(expired) >= needed or now_ns - entry.last_active_ns <= limit_ns:
                break  # the rest were active more recently
            del self._entries[camera]
            expired.append(camera)
        self.expired += len(expired)
        return expired
