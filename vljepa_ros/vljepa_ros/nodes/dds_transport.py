"""The DDS transport settings every vljepa_ros process on one host runs with, read from config/transport.env,
and the one line a node logs about the configuration it actually got.

config/transport.env is the one place they are written down (the shell scripts source it too): the Fast DDS
profile that sends large images through shared memory, rmw_fastrtps, and discovery kept on this host.
Plain Python (no rclpy), so tools, tests and benchmarks apply the same settings before rclpy.init.

The variable that names the profile depends on the Fast DDS major version: Fast DDS 3 (Kilted) reads
FASTDDS_DEFAULT_PROFILES_FILE and warns in every process when FASTRTPS_DEFAULT_PROFILES_FILE is set; Fast DDS 2
(Jazzy, Humble) reads only FASTRTPS_DEFAULT_PROFILES_FILE and ignores the new name, so there the profile
silently is not in effect. transport.env writes the Fast DDS 3 name; PROFILE_VARIABLE is the one the installed
Fast DDS reads.
"""

from __future__ import annotations

import os
import string
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

from vljepa_ros.runtime.package_data import package_file

TRANSPORT_ENV = "transport.env"
FASTDDS3_PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
FASTDDS2_PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
# The shared library each major version ships (libfastrtps.so.2.14, libfastdds.so.3.2).
FASTDDS_LIBRARIES = (("libfastdds.so", 3), ("libfastrtps.so", 2))


def library_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where this process's ROS libraries are: the venv's lib/ (PyPI wheels), then LD_LIBRARY_PATH (a sourced
    /opt/ros/<distro>)."""
    environ = os.environ if environ is None else environ
    path = environ.get("LD_LIBRARY_PATH", "")
    return [Path(sys.prefix) / "lib", *(Path(d) for d in path.split(os.pathsep) if d)]


def fastdds_major(dirs: Iterable[Path] | None = None) -> int | None:
    """The major version of the Fast DDS library found first in `dirs` (default: library_dirs()), None if none."""
    for folder in library_dirs() if dirs is None else dirs:
        for library, major in FASTDDS_LIBRARIES:
            if any(folder.glob(f"{library}*")):
                return major
    return None


def profile_variable(major: int | None) -> str:
    """The environment variable naming the default XML profile for Fast DDS `major` (3 when unknown)."""
    return FASTDDS2_PROFILE_VARIABLE if major == 2 else FASTDDS3_PROFILE_VARIABLE


PROFILE_VARIABLE = profile_variable(fastdds_major())
PROFILE_VARIABLES = (FASTDDS3_PROFILE_VARIABLE, FASTDDS2_PROFILE_VARIABLE)


def config_dir() -> Path:
    """The package's config folder: the installed share/vljepa_ros/config when it has transport.env, else the
    source tree's."""
    return package_file(Path("config") / TRANSPORT_ENV).parent


def transport_defaults(folder: Path | None = None, profile_name: str | None = None) -> dict[str, str]:
    """NAME -> value of every assignment in `folder`/transport.env (default: config_dir()), with
    ${VLJEPA_ROS_CONFIG} replaced by the folder's absolute path and the profile under `profile_name`
    (default: PROFILE_VARIABLE, the installed Fast DDS's name)."""
    folder = (folder or config_dir()).resolve()
    values = {}
    for line in (folder / TRANSPORT_ENV).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        name = name.strip()
        if name == FASTDDS3_PROFILE_VARIABLE:
            name = profile_name or PROFILE_VARIABLE
        values[name] = string.Template(value.strip()).substitute(VLJEPA_ROS_CONFIG=str(folder))
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
    *PROFILE_VARIABLES,
    "FASTDDS_BUILTIN_TRANSPORTS",
    "ROS_AUTOMATIC_DISCOVERY_RANGE",
)


def transport_line(environ: Mapping[str, str], rmw_identifier: str) -> str:
    """'DDS transport: rmw <identifier>; VAR=value, ...' with unset variables shown as (unset)."""
    settings = ", ".join(f"{name}={environ.get(name) or '(unset)'}" for name in TRANSPORT_VARIABLES)
    return f"DDS transport: rmw {rmw_identifier}; {settings}"
