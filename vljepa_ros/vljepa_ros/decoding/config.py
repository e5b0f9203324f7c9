"""The decoder node's detector parameters -> a validated ChangeDetectorConfig, without rclpy.

Shared by the decoder node (parameters from rclpy) and the replay tool and demo (parameters from the same YAML
file, read by tools/params_file.py), so both run the detector with the same values and the same refusals.
"""

from __future__ import annotations

from dataclasses import asdict, fields

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


def detector_values_from_parameters(values: dict) -> dict:
    """The decoder node's detector parameters with the core defaults filled in (other parameters left out)."""
    merged = asdict(ChangeDetectorConfig())
    merged.update({k: v for k, v in values.items() if k in merged})
    return merged
