"""The DDS transport settings every vljepa_ros process on one host runs with, read from config/transport.env,
and the one line a node logs about the configuration it actually got.

config/transport.env is the one place they are written down (the shell scripts source it too): the Fast DDS
profile that sends large images through shared memory, rmw_fastrtps, and discovery kept on this host.
Plain Python (no rclpy), so tools, tests and benchmarks apply the same settings before rclpy.init.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from vljepa_ros.runtime.package_data import package_file

TRANSPORT_ENV = "transport.env"
PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"


def config_dir() -> Path:
    """The package's config folder: the installed share/vljepa_ros/config when it has transport.env, else the
    source tree's."""
    return package_file(Path("config") / TRANSPORT_ENV).parent


def transport_defaults(folder: Path | None = None) -> dict[str, str]:
    """NAME -> value of every assignment in `folder`/transport.env (default: config_dir()), with
    ${VLJEPA_ROS_CONFIG} replaced by the folder's absolute path."""
    folder = (folder or config_dir()).resolve()
    values = {}
    for line in (folder / TRANSPORT_ENV).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = string.Template(value.strip()).substitute(VLJEPA_ROS_CONFIG=str(folder))
    return values


def apply_transport_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set each transport variable that `environ` (default: os.environ) does not already set; returns the
    values now in effect. Call before rclpy.init: child processes inherit them."""
    environ = os.environ if environ is None else environ
    defaults = transport_defaults()
    for name, value in defaults.items():
        environ.setdefault(name, value)
    return {name: environ[name] for name in defaults}


# Frames lost between a camera driver and a node are most often a transport setting that differs between
# processes; the node logs these so its log shows which one it ran with.
TRANSPORT_VARIABLES = (
    "RMW_IMPLEMENTATION",
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "FASTDDS_BUILTIN_TRANSPORTS",
    "ROS_AUTOMATIC_DISCOVERY_RANGE",
)


def transport_line(environ: Mapping[str, str], rmw_identifier: str) -> str:
    """'DDS transport: rmw <identifier>; VAR=value, ...' with unset variables shown as (unset)."""
    settings = ", ".join(f"{name}={environ.get(name) or '(unset)'}" for name in TRANSPORT_VARIABLES)
    return f"DDS transport: rmw {rmw_identifier}; {settings}"
