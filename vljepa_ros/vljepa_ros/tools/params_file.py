"""Read a ROS 2 parameters YAML file (the `--params-file` format) without rclpy, and find the package's own.

The replay tool uses it to run the core with exactly the values the nodes would get from the same file, and
the tests use it to check the shipped config against the parameters the nodes declare.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from vljepa_ros.runtime.package_data import package_file

PARAMS_KEY = "ros__parameters"
WILDCARD = "/**"
PARAMS_FILE = Path("config") / "vljepa.yaml"


class ParamsFileError(ValueError):
    """A parameters file that cannot be read; the message names the file and the problem."""


def _flatten(prefix: str, values: dict) -> dict:
    """Nested mappings become dotted names, as rclpy does for parameter files."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flatten(name, value))
        else:
            flat[name] = value
    return flat


def load_params_file(path: Path | str) -> dict[str, dict]:
    """{node name: {parameter: value}} from a params file; keys are node names as written ('/**' kept)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        problem = " ".join(str(error).split())  # YAML errors span several lines
        raise ParamsFileError(f"cannot read parameters file {path}: {problem}") from error
    if not isinstance(data, dict):
        raise ParamsFileError(f"{path}: expected a mapping of node names, got {type(data).__name__}")
    nodes = {}
    for node, section in data.items():
        if not isinstance(section, dict) or not isinstance(section.get(PARAMS_KEY), dict):
            raise ParamsFileError(f"{path}: node '{node}' has no '{PARAMS_KEY}' mapping")
        nodes[str(node)] = _flatten("", section[PARAMS_KEY])
    return nodes


def node_parameters(path: Path | str, node_name: str) -> dict:
    """Parameters a node called `node_name` (no namespace, or any) gets from the file: '/**' then its own."""
    nodes = load_params_file(path)
    values = dict(nodes.get(WILDCARD, {}))
    for key in (node_name, f"/{node_name}", f"/**/{node_name}"):
        values.update(nodes.get(key, {}))
    return values


def default_params_file() -> Path:
    """The package's config/vljepa.yaml (installed share/ copy first, else the source tree's)."""
    return package_file(PARAMS_FILE)
