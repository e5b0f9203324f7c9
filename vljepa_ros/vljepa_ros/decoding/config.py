"""The decoder node's parameters -> validated settings (ChangeDetectorConfig, StreamLimits), without rclpy.

Shared by the decoder node (parameters from rclpy) and the replay tool and demo (parameters from the same YAML
file, read by tools/params_file.py), so both run the detector with the same values and the same refusals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from vljepa_ros.decoding.change_detection import ChangeDetectorConfig
from vljepa_ros.perception.config import ConfigError

# The decoder node's parameters that make up a ChangeDetectorConfig (same names as its fields).
DETECTOR_FIELDS = tuple(f.name for f in fields(ChangeDetectorConfig))


def detector_config(values: dict) -> ChangeDetectorConfig:
    """ChangeDetectorConfig from parameter values (all DETECTOR_FIELDS); ConfigError names the offending one."""
    try:
        return ChangeDetectorConfig(**{name: values[name] for name in DETECTOR_FIELDS})
    except ValueError as err:
        name = next((n for n in DETECTOR_FIELDS if str(err).startswith(n)), "detector")
        raise ConfigError(name, str(err)) from None


def trigger_summary(cfg: ChangeDetectorConfig) -> str:
    """One line naming the decode trigger and the settings it uses (for the node's start-up log)."""
    interval = f"min/max interval {cfg.min_interval_s:g}/{cfg.max_interval_s:g} s"
    if cfg.trigger == "margin":
        settle = (
            f"settle decode after {cfg.still_count} still (step < {cfg.still_step:g}), floor {cfg.settle_floor:g}"
            if cfg.still_step > 0
            else "no settle decode"
        )
        return f"trigger margin: window {cfg.window}, drift floor {cfg.drift_floor:g}, {settle}, {interval}"
    return (
        f"trigger change: window {cfg.window}, threshold {cfg.threshold:g}, settle {cfg.settle}, {interval}, "
        f"provisional {cfg.provisional}, reconfirm {cfg.reconfirm_s:g} s"
    )


def detector_values_from_parameters(values: dict) -> dict:
    """The decoder node's detector parameters with the core defaults filled in (other parameters left out)."""
    merged = asdict(ChangeDetectorConfig())
    merged.update({k: v for k, v in values.items() if k in merged})
    return merged


def positive_finite(name: str, value) -> float:
    """`value` as a float when it is a finite number > 0; otherwise ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ConfigError(name, f"must be a finite number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class StreamLimits:
    """How many camera streams the decoder node keeps, and how long an idle one lives.

    The camera name comes from each message, so anyone on the topic can invent new ones: ``max_streams`` bounds
    the memory and the diagnostics they cost; a stream idle for ``stream_expiry_s`` (steady time) is dropped.
    """

    max_streams: int = 64
    stream_expiry_s: float = 60.0

    def __post_init__(self):
        if isinstance(self.max_streams, bool) or not isinstance(self.max_streams, int) or self.max_streams < 1:
            raise ConfigError("max_streams", f"must be an integer >= 1, got {self.max_streams!r}")
        positive_finite("stream_expiry_s", self.stream_expiry_s)
