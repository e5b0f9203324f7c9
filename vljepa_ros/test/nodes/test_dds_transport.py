"""The transport settings reach Fast DDS on every distro: the profile variable is the one the installed Fast DDS
reads (Fast DDS 2 on Jazzy ignores Kilted's FASTDDS_DEFAULT_PROFILES_FILE), and a node started with the shipped
environment really creates the profile's 32 MiB shared-memory segment, not Fast DDS's 512 KiB default."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from vljepa_ros.nodes import dds_transport
from vljepa_ros.nodes.dds_transport import (
    FASTDDS2_PROFILE_VARIABLE,
    FASTDDS3_PROFILE_VARIABLE,
    PROFILE_VARIABLE,
    fastdds_major,
    profile_variable,
    transport_defaults,
    transport_line,
)

FASTDDS_NAMESPACE = "{http://www.eprosima.com}"
# Lists the /dev/shm files this process maps once its participant exists, with their sizes.
SEGMENT_PROBE = """
import json, os, rclpy
rclpy.init()
node = rclpy.create_node("vljepa_shm_probe")
paths = {line.split()[-1] for line in open("/proc/self/maps") if "/dev/shm/" in line}
print(json.dumps({p: os.path.getsize(p) for p in paths if os.path.exists(p)}))
node.destroy_node()
rclpy.shutdown()
"""


def shipped_segment_size() -> int:
    root = ET.parse(transport_defaults()[PROFILE_VARIABLE]).getroot()
    return int(next(root.iter(f"{FASTDDS_NAMESPACE}segment_size")).text)


def test_fastdds_major_reads_the_first_folder_with_a_fastdds_library(tmp_path):
    jazzy, kilted, empty = (tmp_path / name for name in ("jazzy", "kilted", "empty"))
    for folder, library in ((jazzy, "libfastrtps.so.2.14"), (kilted, "libfastdds.so.3.2"), (empty, "libfoo.so")):
        folder.mkdir()
        (folder / library).touch()
    assert fastdds_major([empty, jazzy, kilted]) == 2
    assert fastdds_major([kilted, jazzy]) == 3
    assert fastdds_major([empty, tmp_path / "missing"]) is None


def test_profile_variable_per_fastdds_major_and_in_the_defaults():
    assert profile_variable(2) == FASTDDS2_PROFILE_VARIABLE == "FASTRTPS_DEFAULT_PROFILES_FILE"
    assert profile_variable(3) == profile_variable(None) == FASTDDS3_PROFILE_VARIABLE
    jazzy = transport_defaults(profile_name=FASTDDS2_PROFILE_VARIABLE)
    kilted = transport_defaults(profile_name=FASTDDS3_PROFILE_VARIABLE)
    assert FASTDDS3_PROFILE_VARIABLE not in jazzy and FASTDDS2_PROFILE_VARIABLE not in kilted
    assert jazzy[FASTDDS2_PROFILE_VARIABLE] == kilted[FASTDDS3_PROFILE_VARIABLE]
    line = transport_line({FASTDDS2_PROFILE_VARIABLE: "/p.xml"}, "rmw_fastrtps_cpp")
    assert f"{FASTDDS2_PROFILE_VARIABLE}=/p.xml" in line and f"{FASTDDS3_PROFILE_VARIABLE}=(unset)" in line


def test_this_venv_names_the_profile_for_its_own_fastdds():
    """The venv's own Fast DDS library decides: libfastrtps (2.x, Jazzy) or libfastdds (3.x, Kilted)."""
    libraries = {p.name.split(".so")[0] for p in (dds_transport.library_dirs()[0]).glob("libfast*.so*")}
    assert libraries & {"libfastrtps", "libfastdds"}, f"no Fast DDS library in {dds_transport.library_dirs()[0]}"
    expected = FASTDDS3_PROFILE_VARIABLE if "libfastdds" in libraries else FASTDDS2_PROFILE_VARIABLE
    assert expected == PROFILE_VARIABLE


@pytest.mark.ros
def test_a_node_with_the_shipped_environment_uses_the_profiles_shared_memory_segment():
    """The segment size is the profile's, so the profile is in effect (with it unread, Fast DDS 2 made only its
    512 KiB default segment, smaller than one 640x480 frame)."""
    env = {name: value for name, value in os.environ.items() if "PROFILES_FILE" not in name}
    env.update(transport_defaults())
    env["ROS_DOMAIN_ID"] = str(101 + os.getpid() % 100)  # no other participant maps its segments into the probe
    result = subprocess.run(
        [sys.executable, "-c", SEGMENT_PROBE], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    segments = json.loads(result.stdout.strip().splitlines()[-1])
    data_segments = [size for path, size in segments.items() if "/fast" in path and "_port" not in path]
    assert data_segments and max(data_segments) >= shipped_segment_size(), (segments, result.stderr[-2000:])
