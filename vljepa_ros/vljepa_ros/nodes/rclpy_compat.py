"""Where rclpy differs between the ROS 2 distributions vljepa_ros runs on (Jazzy's rclpy 7.1, Kilted's 9.x): the
nodes take these names from here, so the difference lives and is tested in one place.

- A two-argument subscription callback receives the message info dict on both, but only Kilted's rclpy names its
  type (rclpy.subscription.MessageInfo) and puts the sending publisher's GID in it; Jazzy's has the sequence
  numbers and timestamps only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from rclpy.subscription import MessageInfo
except ImportError:  # Jazzy: the same dict, without a type of its own
    MessageInfo = dict[str, Any]  # type: ignore[misc]

MESSAGE_INFO_HAS_PUBLISHER_GID = "publisher_gid" in getattr(MessageInfo, "__annotations__", {})


def publisher_gid(info: Mapping[str, Any]) -> bytes | None:
    """The GID of the publisher that sent a message, from its message info; None where rclpy leaves it out."""
    gid = info.get("publisher_gid")
    return None if gid is None else bytes(gid["data"])


def publication_sequence_number(info: Mapping[str, Any]) -> int | None:
    """The message's sequence number at its publisher; None where the rmw does not report it."""
    return info.get("publication_sequence_number")
