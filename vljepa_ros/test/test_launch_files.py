"""Launch files and config/vljepa.yaml refer only to executables, parameters, topics and files that exist.

`launch` / `launch_ros` are not installable here, so the launch files are checked statically (ast) against
setup.py's console scripts, the package's files, and the parameters the real nodes declare when started, and
run against stand-ins of `launch` / `launch_ros` that record what they are given.
"""

import ast
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest
import rclpy

from vljepa_ros.nodes.dds_transport import PROFILE_VARIABLE, transport_defaults
from vljepa_ros.tools.bringup import (
    DECODER_INPUT_REMAP,
    PERCEPTION_CAPTION_REMAP,
    Bringup,
    BringupOptions,
    rclpy_args,
)
from vljepa_ros.tools.params_file import load_params_file

from support.perception_fixtures import tiny_random_manifest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((PACKAGE_ROOT / "launch").glob("*.launch.py"))
CONFIG = PACKAGE_ROOT / "config" / "vljepa.yaml"
NODE_NAMES = {"perception_node": "vljepa_perception", "decoder_node": "vljepa_decoder"}
BUILTIN_PARAMETERS = {"use_sim_time", "start_type_description_service"}
# How bringup wires one node's private topic to the other's, by node (the launch file must say the same).
NODE_REMAPS = {"vljepa_decoder": DECODER_INPUT_REMAP, "vljepa_perception": PERCEPTION_CAPTION_REMAP}


def _console_scripts() -> set[str]:
    tree = ast.parse((PACKAGE_ROOT / "setup.py").read_text())
    entries = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return {e.split("=")[0].strip() for e in entries if re.fullmatch(r"\w+ = [\w.]+:\w+", e)}


def _constants(tree: ast.Module) -> dict[str, str]:
    return {
        t.id: n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)
    }


def _value(node, constants):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    return None


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def _keyword(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _dict_keys(tree, element, constants) -> set[str]:
    """Parameter names an element of `parameters=[...]` sets: a dict literal, or a dict variable plus its
    subscript assignments."""
    if isinstance(element, ast.Dict):
        return {_value(k, constants) for k in element.keys}
    if isinstance(element, ast.Name):
        keys = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == element.id and isinstance(node.value, ast.Dict):
                        keys |= {_value(k, constants) for k in node.value.keys}
                    if isinstance(target, ast.Subscript) and getattr(target.value, "id", None) == element.id:
                        keys.add(_value(target.slice, constants))
        return keys
    return set()


class Recorded:
    """Stand-in for a launch class: keeps the arguments it was constructed with."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def stand_in_module(name: str) -> types.ModuleType:
    """A module whose every attribute is a Recorded subclass of that name (made once, then reused)."""
    module = types.ModuleType(name)

    def make(attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        cls = type(attribute, (Recorded,), {})
        setattr(module, attribute, cls)
        return cls

    module.__getattr__ = make
    return module


def run_launch_file(path: Path, monkeypatch) -> list:
    """The entities of the launch file's LaunchDescription, built with stand-ins of launch / launch_ros."""
    for name in ("launch", "launch.actions", "launch.substitutions", "launch_ros.actions", "launch_ros.substitutions"):
        monkeypatch.setitem(sys.modules, name, stand_in_module(name))
    spec = importlib.util.spec_from_file_location("launch_file_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.generate_launch_description().args[0])


@pytest.fixture(scope="module")
def declared(tmp_path_factory):
    """Parameter names and topics of the real nodes, started once with the shipped YAML."""
    options = BringupOptions(model_manifest=str(tiny_random_manifest(tmp_path_factory)))
    context = rclpy.Context()
    rclpy.init(args=rclpy_args(options), context=context)
    bringup = Bringup(options, context=context)
    try:
        result = {}
        for node in bringup.nodes:
            result[node.get_name()] = {
                "parameters": set(node.get_parameters_by_prefix("").keys()),
                "subscriptions": {s.topic_name for s in node.subscriptions},
            }
        return result
    finally:
        bringup.destroy()
        rclpy.try_shutdown(context=context)


def test_there_is_a_launch_file():
    assert [p.name for p in LAUNCH_FILES] == ["vljepa.launch.py"]


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_references_exist(path, declared):
    tree = ast.parse(path.read_text())
    constants = _constants(tree)
    scripts = _console_scripts()
    nodes = _calls(tree, "Node")
    assert {_value(_keyword(n, "executable"), constants) for n in nodes} == set(NODE_NAMES)
    for node in nodes:
        executable = _value(_keyword(node, "executable"), constants)
        assert executable in scripts, f"{executable} is not a console script in setup.py"
        assert _value(_keyword(node, "package"), constants) == "vljepa_ros"
        name = _value(_keyword(node, "name"), constants)
        assert name == NODE_NAMES[executable]
        parameters = _keyword(node, "parameters")
        assert isinstance(parameters, ast.List)
        keys = set().union(*(_dict_keys(tree, e, constants) for e in parameters.elts))
        unknown = keys - declared[name]["parameters"]
        assert not unknown, f"{path.name}: {name} does not declare {sorted(unknown)}"
        for pair in _keyword(node, "remappings").elts:
            source, target = (_value(part, constants) for part in pair.elts)
            if source.startswith("~/"):
                # Node-to-node wiring: bringup wires it the same way; its node shows the remapped (target) topic.
                assert f"{source}:={target}" == NODE_REMAPS[name]
                assert "/" + target in declared[name]["subscriptions"]
            else:
                assert source in declared[name]["subscriptions"], f"{name} has no subscription {source}"

    # Every LaunchConfiguration is declared, and every package file a PathJoinSubstitution names exists.
    arguments = {_value(c.args[0], constants) for c in _calls(tree, "DeclareLaunchArgument")}
    used = {_value(c.args[0], constants) for c in _calls(tree, "LaunchConfiguration")}
    assert used <= arguments and used
    joins = _calls(tree, "PathJoinSubstitution")
    assert joins
    for join in joins:
        first, *rest = join.args[0].elts
        assert getattr(first.func, "id", None) == "FindPackageShare"
        relative = Path(*[_value(part, constants) for part in rest])
        assert relative.parts[0] in ("config", "launch", "models"), "setup.py installs only these folders"
        assert (PACKAGE_ROOT / relative).is_file(), f"{relative} does not exist in the package"


def test_yaml_sets_only_declared_parameters_and_documents_all(declared):
    sections = load_params_file(CONFIG)
    text = CONFIG.read_text()
    # '/**/' keys: the sections must also apply when the nodes run in a namespace.
    assert set(sections) == {f"/**/{name}" for name in NODE_NAMES.values()}
    for key, values in sections.items():
        name = key.removeprefix("/**/")
        parameters = declared[name]["parameters"]
        unknown = set(values) - parameters
        assert not unknown, f"{name}: the YAML sets undeclared {sorted(unknown)} (rclpy would ignore them)"
        undocumented = [
            p
            for p in parameters - BUILTIN_PARAMETERS
            if p not in values and not re.search(rf"^\s*# {re.escape(p)}:", text, re.M)
        ]
        assert not undocumented, f"{name}: {sorted(undocumented)} missing from {CONFIG.name}"
        # Each set parameter has a comment line directly above it (or above its block of siblings).
        lines = text.splitlines()
        section_start = lines.index(f"{key}:")
        for parameter in values:
            index = next(
                i
                for i, line in enumerate(lines)
                if re.match(rf"\s+{re.escape(parameter)}:", line) and i > section_start
            )
            assert any(lines[j].strip().startswith("#") for j in range(max(0, index - 3), index)), parameter


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_gives_its_processes_the_shipped_transport(path, monkeypatch):
    """Every variable of config/transport.env is set before the nodes start, to the same value, unless the
    environment already sets it; the profile is the package's installed file."""
    entities = run_launch_file(path, monkeypatch)
    kinds = [type(e).__name__ for e in entities]
    settings = {e.args[0]: e.args[1] for e in entities if type(e).__name__ == "SetEnvironmentVariable"}
    last_setting = max(i for i, kind in enumerate(kinds) if kind == "SetEnvironmentVariable")
    assert last_setting < kinds.index("OpaqueFunction"), "the nodes would start without the transport"
    shipped = transport_defaults()
    assert set(settings) == set(shipped)
    assert shipped["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"  # DDS traffic never leaves the host
    for name, value in settings.items():
        assert type(value).__name__ == "EnvironmentVariable" and value.args == (name,)
        default = value.kwargs["default_value"]
        if name != PROFILE_VARIABLE:
            assert default == shipped[name]
            continue
        assert type(default).__name__ == "PathJoinSubstitution"
        package, *parts = default.args[0]
        assert type(package).__name__ == "FindPackageShare" and package.args == ("vljepa_ros",)
        assert PACKAGE_ROOT.joinpath(*parts) == Path(shipped[name]) and Path(shipped[name]).is_file()
