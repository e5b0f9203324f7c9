"""The set-up script is idempotent: a second run after a complete one rebuilds and reinstalls nothing."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_second_setup_run_changes_nothing():
    result = subprocess.run(["bash", str(REPO / "scripts" / "setup.sh")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("[setup]")]
    assert "[setup] Python packages up to date" in lines, lines
    assert "[setup] vljepa_msgs up to date" in lines, lines
    assert "[setup] vljepa_ros installed" in lines, lines
    assert not any(word in result.stdout for word in ("installing", "building", "creating")), lines


def test_package_xml_declares_what_the_python_code_imports():
    """Every ROS package the nodes import must be a rosdep key in package.xml, or robots miss it."""
    package_xml = (REPO / "vljepa_ros" / "package.xml").read_text()
    imported = set()
    for path in (REPO / "vljepa_ros" / "vljepa_ros").rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from"):
                imported.add(words[1].split(".")[0])
    ros_packages = {
        "rclpy",
        "std_msgs",
        "std_srvs",
        "sensor_msgs",
        "builtin_interfaces",
        "diagnostic_msgs",
        "rcl_interfaces",
        "rosgraph_msgs",
        "vljepa_msgs",
        "geometry_msgs",
        "lifecycle_msgs",
    }
    for name in sorted(imported & ros_packages):
        assert f"<exec_depend>{name}</exec_depend>" in package_xml, f"package.xml lacks {name}"
