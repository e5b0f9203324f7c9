"""The one description of what runs: the nodes' executables, names, parameters, remappings, and the transport.

`launch/vljepa.launch.py`, `bringup` (plain and `--lifecycle`) and the tests build their nodes from
`node_graph(options)`; each turns a NodeSpec into its own form (a launch_ros Node action, an rclpy node in this
process, a command line). Plain Python (no rclpy, no launch), so the launch file can import it on a robot and
the tests can read it here. The parameters file is given to every node whole; a NodeSpec's `parameters` are
the overrides on top of it, and its `remappings` are (from, to) pairs as `ros2 launch` and `-r` take them.

The decoder decodes with the bank of the model the perception node runs: both nodes get the same
`model_manifest` (the option, else the parameters file's perception section), and the decoder takes that
model's captions bank unless its `bank_path` is set (decoding/bank_choice.py).

The world model node (optional, off by default) watches the perception node's first camera (sensor_msgs/Image
only) and reads the robot's `ee_state` and `executed_action` topics (relative names unless remapped); its
`model_path` is the option, else the parameters file's (empty there: the bundled models/tinyworld_ac).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vljepa_ros.nodes.dds_transport import transport_defaults
from vljepa_ros.perception.config import camera_name_from_topic
from vljepa_ros.tools.params_file import default_params_file, node_parameters

PACKAGE = "vljepa_ros"
PERCEPTION_NODE = "vljepa_perception"
DECODER_NODE = "vljepa_decoder"
PERCEPTION_EXECUTABLE = "perception_node"
PERCEPTION_LIFECYCLE_EXECUTABLE = "perception_lifecycle_node"
DECODER_EXECUTABLE = "decoder_node"
WORLD_MODEL_NODE = "vljepa_world_model"
WORLD_MODEL_EXECUTABLE = "world_model_node"
# The world model node's relative input topics (nodes/world_model_node.py).
WORLD_MODEL_IMAGE, EE_STATE, EXECUTED_ACTION = "image", "ee_state", "executed_action"
DEFAULT_CAMERA_TOPIC = "/camera/image_raw"  # the parameters file's camera
# Node-to-node wiring; relative targets resolve in the shared namespace.
DECODER_INPUT = ("~/embedding", f"{PERCEPTION_NODE}/embedding")
PERCEPTION_CAPTIONS = ("~/caption", f"{DECODER_NODE}/caption")  # drawn on the perception node's debug images


@dataclass(frozen=True)
class GraphOptions:
    """What to start; empty / None means: as the parameters file says."""

    params_file: Path | None = None
    model_manifest: str = ""
    camera_topics: tuple[str, ...] = ()
    camera_names: tuple[str, ...] = ()
    camera_topic: str = ""  # the file's default camera (/camera/image_raw) remapped to this topic
    use_sim_time: bool | None = None
    lifecycle: bool = False  # the managed perception node (starts unconfigured)
    decoder: bool = True
    world_model: bool = False  # the V-JEPA 2-AC world model node (surprise, plan_to_goal)
    world_model_manifest: str = ""  # its world_model.yaml; empty: the file's model_path (empty: bundled)
    world_model_camera: str = ""  # its camera; empty: the perception node's first camera
    ee_state_topic: str = ""  # where its `ee_state` input comes from; empty: `ee_state` (relative)
    executed_action_topic: str = ""  # where its `executed_action` input comes from; empty: `executed_action`

    def __post_init__(self):
        if self.params_file is not None and not Path(self.params_file).is_file():
            raise ValueError(f"params_file: no file at {self.params_file}")
        if self.camera_names and len(self.camera_names) != len(self.camera_topics):
            raise ValueError(
                f"camera_names: {len(self.camera_names)} names for {len(self.camera_topics)} "
                "camera_topics (give camera topics with the names)"
            )

    @property
    def params_path(self) -> Path:
        """The parameters file every node reads (the package's config/vljepa.yaml unless given)."""
        return Path(self.params_file) if self.params_file is not None else default_params_file()


@dataclass(frozen=True)
class NodeSpec:
    """One node: its console script, node name, parameter overrides and (from, to) topic remappings."""

    executable: str
    name: str
    parameters: dict = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()

    def remap_args(self) -> list[str]:
        """The remappings as rclpy/ros2 command-line arguments (`-r from:=to` each), without `--ros-args`."""
        return [arg for source, target in self.remappings for arg in ("-r", f"{source}:={target}")]


def model_manifest_of(options: GraphOptions) -> str:
    """The model both nodes run: the option, else the parameters file's perception section ('' = bundled)."""
    if options.model_manifest:
        return options.model_manifest
    path = options.params_path
    return str(node_parameters(path, PERCEPTION_NODE).get("model_manifest", "")) if path.is_file() else ""


def first_camera_of(options: GraphOptions) -> str:
    """The topic the perception node's first camera subscribes (after the options' remap)."""
    if options.camera_topics:
        return options.camera_topics[0]
    path = options.params_path
    topics = node_parameters(path, PERCEPTION_NODE).get("camera_topics") if path.is_file() else None
    first = topics[0] if topics else DEFAULT_CAMERA_TOPIC
    return options.camera_topic if options.camera_topic and first == DEFAULT_CAMERA_TOPIC else first


def world_model_spec(options: GraphOptions, common: dict) -> NodeSpec:
    """The world model node: the options' model, the perception node's first camera, the robot's inputs."""
    parameters = dict(common)
    if options.world_model_manifest:
        parameters["model_path"] = options.world_model_manifest
    camera = options.world_model_camera or first_camera_of(options)
    if camera.endswith("/compressed"):
        raise ValueError(
            f"world_model_camera: {camera} is compressed and the world model reads sensor_msgs/Image; "
            "name a raw camera topic for it"
        )
    remaps = [(WORLD_MODEL_IMAGE, camera)]
    remaps += [
        (source, target)
        for source, target in ((EE_STATE, options.ee_state_topic), (EXECUTED_ACTION, options.executed_action_topic))
        if target and target != source
    ]
    return NodeSpec(WORLD_MODEL_EXECUTABLE, WORLD_MODEL_NODE, parameters, tuple(remaps))


def node_graph(options: GraphOptions) -> tuple[NodeSpec, ...]:
    """The nodes to start: perception first, then the decoder and the world model where chosen."""
    common = {} if options.use_sim_time is None else {"use_sim_time": bool(options.use_sim_time)}
    model = model_manifest_of(options)
    perception = dict(common)
    if options.camera_topics:
        topics = list(options.camera_topics)
        # Names and types are lists parallel to the topics: replace the file's with ones that fit.
        perception["camera_topics"] = topics
        perception["camera_names"] = list(options.camera_names) or [camera_name_from_topic(t) for t in topics]
        perception["camera_types"] = ["auto"] * len(topics)
    if model:
        perception["model_manifest"] = model
    perception_remaps = [PERCEPTION_CAPTIONS]
    if options.camera_topic and options.camera_topic != DEFAULT_CAMERA_TOPIC:
        perception_remaps.append((DEFAULT_CAMERA_TOPIC, options.camera_topic))
    executable = PERCEPTION_LIFECYCLE_EXECUTABLE if options.lifecycle else PERCEPTION_EXECUTABLE
    nodes = [NodeSpec(executable, PERCEPTION_NODE, perception, tuple(perception_remaps))]
    if options.decoder:
        decoder = dict(common)
        if model:
            decoder["model_manifest"] = model
        nodes.append(NodeSpec(DECODER_EXECUTABLE, DECODER_NODE, decoder, (DECODER_INPUT,)))
    if options.world_model:
        nodes.append(world_model_spec(options, common))
    return tuple(nodes)


def transport() -> dict[str, str]:
    """The DDS transport every process of the graph runs with (config/transport.env), where the environment does
    not set it already."""
    return transport_defaults()
