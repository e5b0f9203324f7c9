"""ament_python package for the VL-JEPA perception nodes and their plain-Python core."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "vljepa_ros"
HERE = Path(__file__).parent


def _data_files():
    """Install launch files, configs and bundled models under share/<package>, keeping their sub-folders."""
    files = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ]
    for folder in ("launch", "config", "models"):
        for path in sorted((HERE / folder).rglob("*")):
            if path.is_file():
                rel = path.relative_to(HERE)
                files.append((f"share/{PACKAGE}/{rel.parent}", [str(rel)]))
    return files


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=_data_files(),
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="vljepa_ros developers",
    maintainer_email="dev@vljepa-ros.local",
    description="VL-JEPA perception for ROS 2 with ONNX Runtime.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "perception_node = vljepa_ros.nodes.perception_node:main",
            "perception_lifecycle_node = vljepa_ros.nodes.perception_lifecycle_node:main",
            "decoder_node = vljepa_ros.nodes.decoder_node:main",
            "bringup = vljepa_ros.tools.bringup:main",
            "replay = vljepa_ros.tools.replay:main",
            "live_replay = vljepa_ros.bags.live_replay:main",
            "demo = vljepa_ros.tools.demo:main",
            "export_model = vljepa_ros.export.cli:main",
            "embed = vljepa_ros.tools.embed:main",
            "make_bank = vljepa_ros.tools.make_bank:main",
            "train_tiny = vljepa_ros.training.train_tiny:main",
            "evaluate_tiny = vljepa_ros.training.evaluate:main",
            "evaluate_selective = vljepa_ros.tools.selective_eval:main",
            "generate_world = vljepa_ros.tiny_world.cli:main",
            "fleet_replay = vljepa_ros.tools.fleet_replay:main",
            "search_recordings = vljepa_ros.tools.search_recordings:main",
            "rollout = vljepa_ros.tools.rollout:main",
            "world_model_node = vljepa_ros.nodes.world_model_node:main",
            "train_world_model = vljepa_ros.training.train_world_model:main",
            "evaluate_world_model = vljepa_ros.training.evaluate_world_model:main",
        ],
    },
)
