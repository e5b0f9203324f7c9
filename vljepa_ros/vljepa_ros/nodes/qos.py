"""QoS profiles from a preset name plus depth (the parameter style users of ROS inference nodes expect)."""

from __future__ import annotations

from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    qos_profile_sensor_data,
    qos_profile_system_default,
)

from vljepa_ros.perception.config import QosConfig


def profile_from_config(config: QosConfig) -> QoSProfile:
    """SENSOR_DATA: best effort, volatile (cameras); DEFAULT: reliable, volatile; SYSTEM_DEFAULT: the RMW's.

    The history is always keep-last ``config.depth``.
    """
    if config.preset == "SENSOR_DATA":
        base = qos_profile_sensor_data
    elif config.preset == "SYSTEM_DEFAULT":
        base = qos_profile_system_default
    else:
        return QoSProfile(depth=config.depth)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=config.depth,
        reliability=base.reliability,
        durability=base.durability,
        deadline=base.deadline,
        lifespan=base.lifespan,
        liveliness=base.liveliness,
        liveliness_lease_duration=base.liveliness_lease_duration,
    )
