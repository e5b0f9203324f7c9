"""The set-up script is idempotent: a second run after a complete one rebuilds and reinstalls nothing."""

import ast
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_second_setup_run_changes_nothing():
    """Run for the venv running this test, with the ROS distro its set-up recorded."""
    distro = (Path(sys.prefix) / ".vljepa-distro").read_text().strip()
    env = {**os.environ, "ROS_DISTRO": distro, "VLJEPA_VENV": sys.prefix}
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup.sh")], capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("[setup]")]
    assert "[setup] Python packages up to date" in lines, lines
    assert "[setup] vljepa_msgs up to date" in lines, lines
    assert "[setup] vljepa_ros installed" in lines, lines
    assert not any(word in result.stdout for word in ("installing", "building", "creating")), lines
    assert f"ROS 2 {distro} rclpy" in lines[-1], lines


def test_setup_refuses_a_distro_without_wheels_and_a_venv_of_another_distro(tmp_path):
    """Humble has no PyPI wheels: refused in one line before anything is created; a venv keeps its distro."""
    setup = ["bash", str(REPO / "scripts" / "setup.sh")]
    humble = subprocess.run(
        setup, capture_output=True, text=True, env={**os.environ, "ROS_DISTRO": "humble", "VLJEPA_VENV": str(tmp_path)}
    )
    assert humble.returncode == 2 and "ROS_DISTRO=humble" in humble.stderr and "kilted or jazzy" in humble.stderr
    assert not any(tmp_path.iterdir())
    mine = (Path(sys.prefix) / ".vljepa-distro").read_text().strip()
    other = "jazzy" if mine == "kilted" else "kilted"
    mixed = subprocess.run(
        setup, capture_output=True, text=True, env={**os.environ, "ROS_DISTRO": other, "VLJEPA_VENV": sys.prefix}
    )
    assert mixed.returncode == 2 and f"holds ROS 2 {mine}, not {other}" in mixed.stderr, mixed.stderr


def _imported_top_level_names(paths) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_package_xml_declares_what_the_python_code_imports():
    """Every ROS package the nodes and the launch file import must be a rosdep key in package.xml, or robots miss it.

    A ROS package is a module that a ROS wheel provides here (ros-*), or the launch packages (not on PyPI).
    """
    package = REPO / "vljepa_ros"
    package_xml = (package / "package.xml").read_text()
    imported = _imported_top_level_names([*(package / "vljepa_ros").rglob("*.py"), *(package / "launch").glob("*.py")])
    owners = importlib.metadata.packages_distributions()
    ros_packages = {"vljepa_msgs", "launch", "launch_ros"} | {
        name for name in imported if any(dist.startswith("ros-") for dist in owners.get(name, ()))
    }
    assert {"rclpy", "ament_index_python", "sensor_msgs"} <= ros_packages, sorted(ros_packages)
    missing = sorted(
        name for name in imported & ros_packages if f"<exec_depend>{name}</exec_depend>" not in package_xml
    )
    assert not missing, f"package.xml lacks {missing}"
