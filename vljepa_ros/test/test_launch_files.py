"""Launch files and config/vljepa.yaml refer only to executables, parameters, topics and files that exist, and the
launch file starts what tools/node_graph.py describes (the description bringup starts too).

`launch` / `launch_ros` are not installable here, so the launch file runs against stand-ins of `launch` /
`launch_ros` that record what they are given (LaunchConfiguration reads the arguments of a stand-in context);
the nodes it would start are checked against setup.py's console scripts and against the parameters and topics
the real nodes declare, and the decoder is started for real with exactly what the launch file gives it.
"""

import ast
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest
import rclpy
from rclpy.parameter import Parameter

from vljepa_ros.nodes.dds_transport import PROFILE_VARIABLE, transport_defaults
from vljepa_ros.nodes.decoder_node import DecoderNode
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.tools.bringup import Bringup, BringupOptions, rclpy_args
from vljepa_ros.tools.node_graph import DECODER_INPUT, PERCEPTION_CAPTIONS, GraphOptions, node_graph
from vljepa_ros.tools.params_file import load_params_file

from support.perception_fixtures import tiny_random_manifest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((PACKAGE_ROOT / "launch").glob("*.launch.py"))
CONFIG = PACKAGE_ROOT / "config" / "vljepa.yaml"
NODE_NAMES = {
    "perception_node": "vljepa_perception",
    "perception_lifecycle_node": "vljepa_perception",
    "decoder_node": "vljepa_decoder",
    "world_model_node": "vljepa_world_model",
}
BUILTIN_PARAMETERS = {"use_sim_time", "start_type_description_service"}


def _console_scripts() -> set[str]:
    tree = ast.parse((PACKAGE_ROOT / "setup.py").read_text())
    entries = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return {e.split("=")[0].strip() for e in entries if re.fullmatch(r"\w+ = [\w.]+:\w+", e)}


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


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


class LaunchConfiguration(Recorded):
    """Stand-in that resolves like the real one: the argument's value in the context."""

    def perform(self, context: dict) -> str:
        return context[self.args[0]]


def run_launch_file(path: Path, monkeypatch) -> list:
    """The entities of the launch file's LaunchDescription, built with stand-ins of launch / launch_ros."""
    for name in ("launch", "launch.actions", "launch.substitutions", "launch_ros.actions", "launch_ros.substitutions"):
        monkeypatch.setitem(sys.modules, name, stand_in_module(name))
    sys.modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    spec = importlib.util.spec_from_file_location("launch_file_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.generate_launch_description().args[0])


def launch_nodes(path: Path, monkeypatch, **arguments: str) -> list:
    """The Node actions the launch file creates for these launch arguments (others: their defaults; the
    params_file default, the installed package's config/vljepa.yaml, is the source tree's here)."""
    entities = run_launch_file(path, monkeypatch)
    context = {e.args[0]: e.kwargs["default_value"] for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    context.update(params_file=str(CONFIG), **arguments)
    (opaque,) = [e for e in entities if type(e).__name__ == "OpaqueFunction"]
    nodes = opaque.kwargs["function"](context)
    assert all(type(n).__name__ == "Node" for n in nodes)
    return nodes


@pytest.fixture(scope="module")
def declared(tmp_path_factory):
    """Parameter names, values and topics of the real nodes (the world model's too), started once with the
    shipped YAML."""
    options = BringupOptions(model_manifest=str(tiny_random_manifest(tmp_path_factory)), world_model=True)
    context = rclpy.Context()
    rclpy.init(args=rclpy_args(options), context=context)
    bringup = Bringup(options, context=context)
    try:
        result = {}
        for node in bringup.nodes:
            parameters = node.get_parameters_by_prefix("")
            result[node.get_name()] = {
                "parameters": set(parameters),
                "values": {name: parameter.value for name, parameter in parameters.items()},
                "subscriptions": {s.topic_name for s in node.subscriptions},
            }
        return result
    finally:
        bringup.destroy()
        rclpy.try_shutdown(context=context)


def test_there_is_a_launch_file():
    assert [p.name for p in LAUNCH_FILES] == ["vljepa.launch.py"]


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("lifecycle", ["false", "true"])
def test_launch_file_starts_existing_executables_with_declared_parameters(path, lifecycle, declared, monkeypatch):
    scripts = _console_scripts()
    arguments = dict(lifecycle=lifecycle, camera_topic="/front/image_raw", camera_topics="", use_sim_time="true")
    nodes = launch_nodes(path, monkeypatch, **arguments)
    executables = [n.kwargs["executable"] for n in nodes]
    perception = "perception_lifecycle_node" if lifecycle == "true" else "perception_node"
    assert executables == [perception, "decoder_node"]
    for node in nodes:
        kwargs = node.kwargs
        assert kwargs["executable"] in scripts, f"{kwargs['executable']} is not a console script in setup.py"
        assert kwargs["package"] == "vljepa_ros" and kwargs["name"] == NODE_NAMES[kwargs["executable"]]
        params_file, overrides = kwargs["parameters"]
        assert params_file == str(CONFIG) and overrides["use_sim_time"] is True
        name = kwargs["name"]
        unknown = set(overrides) - declared[name]["parameters"]
        assert not unknown, f"{path.name}: {name} does not declare {sorted(unknown)}"
        for source, target in kwargs["remappings"]:
            if source.startswith("~/"):
                # Node-to-node wiring (bringup's too): the node shows the remapped (target) topic.
                assert (source, target) in (DECODER_INPUT, PERCEPTION_CAPTIONS)
                assert "/" + target in declared[name]["subscriptions"]
            else:
                assert source in declared[name]["subscriptions"], f"{name} has no subscription {source}"
                assert target == "/front/image_raw"

    # Every LaunchConfiguration is declared, and every package file a PathJoinSubstitution names exists.
    tree = ast.parse(path.read_text())
    arguments = {c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")}
    used = {c.args[0].value for c in _calls(tree, "LaunchConfiguration")}
    assert used <= arguments and used
    joins = _calls(tree, "PathJoinSubstitution")
    assert joins
    for join in joins:
        first, *rest = join.args[0].elts
        assert getattr(first.func, "id", None) == "FindPackageShare"
        relative = Path(*[part.value for part in rest])
        assert relative.parts[0] in ("config", "launch", "models"), "setup.py installs only these folders"
        assert (PACKAGE_ROOT / relative).is_file(), f"{relative} does not exist in the package"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_starts_the_world_model_on_request(path, declared, monkeypatch):
    arguments = dict(camera_topic="/front/image_raw", world_model_manifest="/m/world_model.yaml")
    nodes = launch_nodes(path, monkeypatch, world_model="true", ee_state_topic="/arm/ee_state", **arguments)
    assert [n.kwargs["executable"] for n in nodes] == ["perception_node", "decoder_node", "world_model_node"]
    world = nodes[2].kwargs
    assert world["executable"] in _console_scripts()
    assert world["package"] == "vljepa_ros" and world["name"] == "vljepa_world_model"
    params_file, overrides = world["parameters"]
    assert params_file == str(CONFIG)
    assert overrides == {"use_sim_time": False, "model_path": "/m/world_model.yaml"}
    assert set(overrides) <= declared["vljepa_world_model"]["parameters"]
    # Its camera is the perception node's (remapped) camera; ee_state as asked, executed_action left as it is.
    assert ("/camera/image_raw", "/front/image_raw") in nodes[0].kwargs["remappings"]
    assert dict(world["remappings"]) == {"image": "/front/image_raw", "ee_state": "/arm/ee_state"}
    # The sources are the node's own inputs: started by bringup (image remapped to the file's camera) it
    # subscribes these.
    assert declared["vljepa_world_model"]["subscriptions"] == {"/camera/image_raw", "/ee_state", "/executed_action"}
    assert "/camera/image_raw" in declared["vljepa_perception"]["subscriptions"]
    # Off by default (the other launch tests check the default graph is perception + decoder).
    assert "world_model_node" not in [n.kwargs["executable"] for n in launch_nodes(path, monkeypatch)]


def test_the_world_model_watches_the_first_camera_and_refuses_a_compressed_one():
    def camera(**options):
        (world,) = [n for n in node_graph(GraphOptions(world_model=True, **options)) if n.name == "vljepa_world_model"]
        return dict(world.remappings)["image"]

    assert camera() == "/camera/image_raw"
    assert camera(camera_topics=("/a/image_raw", "/b/image_raw/compressed")) == "/a/image_raw"
    assert camera(camera_topic="/front/image_raw", world_model_camera="/wrist/image_raw") == "/wrist/image_raw"
    with pytest.raises(ValueError, match=r"world_model_camera: /a/image_raw/compressed is compressed"):
        camera(camera_topics=("/a/image_raw/compressed",))
    assert [n.name for n in node_graph(GraphOptions())] == ["vljepa_perception", "vljepa_decoder"]


def test_the_yamls_world_model_section_holds_the_nodes_defaults_and_reaches_the_node(tmp_path):
    """The section's values are the node's defaults, and rclpy reads its dotted `cem.*` keys and the
    comma-separated providers (checked with changed values, which a default could not pass for)."""
    from vljepa_ros.nodes.world_model_node import WorldModelNode
    from vljepa_ros.world_model.node_config import NODE_PARAMETERS, cem_parameters

    section = load_params_file(CONFIG)["/**/vljepa_world_model"]
    defaults = {name: default for name, (default, _) in {**NODE_PARAMETERS, **cem_parameters()}.items()}
    assert {name: value for name, value in section.items() if name != "use_sim_time"} == defaults
    params = tmp_path / "vljepa.yaml"
    text = CONFIG.read_text()
    changed = {"cem.samples: 400": "cem.samples: 64", 'providers: "tensorrt,cuda,cpu"': 'providers: "cpu"'}
    for old, new in changed.items():
        assert text.count(old) == 1
        text = text.replace(old, new)
    params.write_text(text)
    context = rclpy.Context()
    rclpy.init(args=["world_model", "--ros-args", "--params-file", str(params)], context=context)
    node = None
    try:
        node = WorldModelNode(context=context)
        assert node.get_parameter("cem.samples").value == 64 and node.config.cem.samples == 64
        assert node.config.providers == ("cpu",) and node.get_parameter("cem.topk").value == section["cem.topk"]
        assert node.config.model_path.endswith("tinyworld_ac/world_model.yaml")  # empty: the bundled model
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """A model whose embeddings are 32-d: the bundled 384-d caption bank cannot decode them."""
    from vljepa_ros.export.model import export_tiny_random

    return export_tiny_random(tmp_path_factory.mktemp("model_32d"), seed=1, embedding_dim=32)


def start_as_launched(node_action, context):
    """The real node of a launch Node action, given exactly its parameters file, overrides and remappings."""
    params_file, overrides = node_action.kwargs["parameters"]
    rclpy.init(args=["launched", "--ros-args", "--params-file", params_file], context=context)
    remaps = [arg for pair in node_action.kwargs["remappings"] for arg in ("-r", f"{pair[0]}:={pair[1]}")]
    assert node_action.kwargs["executable"] == "decoder_node"
    return DecoderNode(
        parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        context=context,
        cli_args=["--ros-args", *remaps],
    )


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_the_launched_decoder_decodes_with_the_bank_of_the_perception_nodes_model(path, wide_model, monkeypatch):
    nodes = launch_nodes(path, monkeypatch, model_manifest=str(wide_model))
    perception, decoder = (n.kwargs["parameters"][1] for n in nodes)
    assert perception["model_manifest"] == decoder["model_manifest"] == str(wide_model)
    context = rclpy.Context()
    node = None
    try:
        node = start_as_launched(nodes[1], context)
        bank = load_manifest(wide_model, check_files=False).banks["captions"]
        assert node._decoder.embedding_dim == 32, "the decoder kept a bank the model's vectors do not fit"
        assert node.get_parameter("bank_path").value == "" and str(bank) in node._decoder.source
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_a_decoder_bank_of_another_dimension_than_the_model_is_refused(wide_model):
    from vljepa_ros.perception.config import ConfigError

    from support.selective_streams import BANK_PATH  # 384-d

    context = rclpy.Context()
    rclpy.init(args=["decoder"], context=context)
    try:
        with pytest.raises(ConfigError, match=r"bank_path.*384-d.*32-d"):
            DecoderNode(
                parameter_overrides=[
                    Parameter("model_manifest", value=str(wide_model)),
                    Parameter("bank_path", value=str(BANK_PATH)),
                ],
                context=context,
            )
    finally:
        rclpy.try_shutdown(context=context)


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
    environment already sets it; the profile is the package's file (the installed one once installed)."""
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
        assert value.kwargs["default_value"] == shipped[name]
    profile = Path(shipped[PROFILE_VARIABLE])
    assert profile.is_file() and profile.parent == PACKAGE_ROOT / "config"
