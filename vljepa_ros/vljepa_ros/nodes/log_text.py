"""Text from outside a node (camera names, queries, parameter values, error details) cut down for a log line."""

from __future__ import annotations

LOG_TEXT_LIMIT = 80  # characters of one outside text shown in a log line


def shorten(text: str, limit: int = LOG_TEXT_LIMIT) -> str:
    """``text`` itself when at most ``limit`` characters, else its first ``limit`` and its full length: a
    refused 10 kB query must not fill the log, and the length still says what was sent."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


def clipped(value, limit: int = LOG_TEXT_LIMIT) -> str:
    """``repr(value)`` shortened the same way; the length given is the string's own when ``value`` is one."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str) else len(text)
    return f"{text[:limit]}... ({size} chars)"
