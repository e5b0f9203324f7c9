"""Start the perception and selective-decoding nodes (and the world model) in one process with one parameters file.

The nodes, names, parameters and topic wiring of tools/node_graph.py, the description `launch/vljepa.launch.py`
starts too, for machines without `ros2 launch` (the PyPI ROS wheels have no launch) and for the tests and the
demo:

    bringup                                          # config/vljepa.yaml, camera /camera/image_raw
    bringup --params-file my.yaml --camera-topics /front/image_raw /left/image_raw/compressed
    bringup --model models/open-vljepa/manifest.yaml   # both nodes: the decoder takes the model's captions bank
    bringup --lifecycle                              # the managed perception node, configured and activated here
    bringup --world-model --ee-state-topic /arm/ee_state  # + world_model_node (bundled tinyworld_ac by default)
    bringup --use-sim-time --ros-args -r __ns:=/robot

Each node spins in its own executor on its own thread (nodes/spinning.py): single-threaded, but the world
model's two threads (a plan runs beside its topics and can be cancelled). Command-line options
become parameter overrides and win over the file; `--ros-args` after the options go to rclpy unchanged. The DDS
transport variables of config/transport.env (large images through shared memory, discovery on this host) are
set where the environment does not set them already.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from vljepa_ros.nodes.dds_transport import apply_transport_defaults
from vljepa_ros.nodes.decoder_node import DecoderNode
from vljepa_ros.nodes.perception_lifecycle_node import PerceptionLifecycleNode
from vljepa_ros.nodes.perception_node import PerceptionNode
from vljepa_ros.nodes.spinning import NodeSpinner
from vljepa_ros.nodes.world_model_node import WorldModelNode
from vljepa_ros.nodes.world_model_node import make_executor as world_model_executor
from vljepa_ros.tools.node_graph import (
    DECODER_EXECUTABLE,
    DECODER_INPUT,
    PERCEPTION_CAPTIONS,
    PERCEPTION_EXECUTABLE,
    PERCEPTION_LIFECYCLE_EXECUTABLE,
    WORLD_MODEL_EXECUTABLE,
    GraphOptions,
    NodeSpec,
    node_graph,
)

# What bringup was always given: the same options as the description.
BringupOptions = GraphOptions
DECODER_INPUT_REMAP = f"{DECODER_INPUT[0]}:={DECODER_INPUT[1]}"
PERCEPTION_CAPTION_REMAP = f"{PERCEPTION_CAPTIONS[0]}:={PERCEPTION_CAPTIONS[1]}"
NODE_CLASSES = {
    PERCEPTION_EXECUTABLE: PerceptionNode,
    PERCEPTION_LIFECYCLE_EXECUTABLE: PerceptionLifecycleNode,
    DECODER_EXECUTABLE: DecoderNode,
    WORLD_MODEL_EXECUTABLE: WorldModelNode,
}


def create_node(spec: NodeSpec, context=None):
    """The rclpy node of one NodeSpec in this process (the params file comes from rclpy.init, see rclpy_args)."""
    overrides = [Parameter(name, value=value) for name, value in spec.parameters.items()]
    cli_args = ["--ros-args", *spec.remap_args()] if spec.remappings else None
    return NODE_CLASSES[spec.executable](parameter_overrides=overrides, context=context, cli_args=cli_args)


def _executor_of(node, context):
    """The world model node spins as its console script does (two threads); the others single-threaded."""
    return world_model_executor(context) if isinstance(node, WorldModelNode) else None


def _activate(node: PerceptionLifecycleNode) -> None:
    """configure + activate a managed node here (what `ros2 lifecycle set` does); RuntimeError with the reason."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        raise RuntimeError(f"configure failed: {node.last_failure or 'see the log'}")
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        raise RuntimeError("activate failed")


class Bringup:
    """The running nodes, one executor each. Needs rclpy.init() with the params file (see `rclpy_args`)."""

    def __init__(self, options: BringupOptions, context=None):
        self.options = options
        self.nodes = []
        self.decoder = None
        self.world_model = None
        try:
            for spec in node_graph(options):
                node = create_node(spec, context)
                self.nodes.append(node)
                if isinstance(node, PerceptionLifecycleNode):
                    _activate(node)
            self.perception = self.nodes[0]
            if options.decoder:
                self.decoder = self.nodes[1]
            if options.world_model:
                self.world_model = self.nodes[-1]
        except Exception:
            self.destroy()
            raise
        self.spinner = NodeSpinner(self.nodes, context=context, make_executor=_executor_of)

    def spin(self) -> None:
        """Spin until shutdown (Ctrl-C)."""
        self.spinner.start()
        self.spinner.wait()

    def spin_in_background(self) -> None:
        """Spin on daemon threads and return (tests, demo)."""
        self.spinner.start()

    def destroy(self) -> None:
        """Stop spinning and destroy the nodes (the perception worker is joined)."""
        if getattr(self, "spinner", None) is not None:
            self.spinner.shutdown()
        for node in reversed(self.nodes):
            node.destroy_node()
        self.nodes = []


def rclpy_args(options: BringupOptions, ros_args: Sequence[str] = ()) -> list[str]:
    """Arguments for rclpy.init: the params file as a global --params-file (sections are per node name)."""
    params_file = options.params_path
    args = ["bringup", "--ros-args"]
    if Path(params_file).is_file():
        args += ["--params-file", str(params_file)]
    return args + [a for a in ros_args if a != "--ros-args"]


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of `bringup`."""
    parser = argparse.ArgumentParser(prog="bringup", description=__doc__.splitlines()[0])
    parser.add_argument("--params-file", type=Path, help="parameters YAML (default: config/vljepa.yaml)")
    parser.add_argument("--camera-topics", nargs="+", default=[], help="camera topics (overrides the file)")
    parser.add_argument("--camera-names", nargs="+", default=[], help="names for --camera-topics")
    parser.add_argument("--model", help="model manifest (overrides model_manifest)")
    parser.add_argument("--use-sim-time", action="store_true", help="follow /clock (e.g. from live_replay)")
    parser.add_argument("--no-decoder", action="store_true", help="start only the perception node")
    parser.add_argument(
        "--lifecycle", action="store_true", help="the managed perception node, configured and activated here"
    )
    world = parser.add_argument_group("world model (world_model_node)")
    world.add_argument("--world-model", action="store_true", help="also start the world model node")
    world.add_argument("--world-model-manifest", default="", help="its world_model.yaml (default: the file's)")
    world.add_argument("--world-model-camera", default="", help="its camera (default: perception's first)")
    world.add_argument("--ee-state-topic", default="", help="end-effector state topic (default: ee_state)")
    world.add_argument("--executed-action-topic", default="", help="executed action topic (default: executed_action)")
    return parser


def options_from_args(args: argparse.Namespace) -> BringupOptions:
    """Parsed arguments -> validated options."""
    return BringupOptions(
        params_file=args.params_file,
        camera_topics=tuple(args.camera_topics),
        camera_names=tuple(args.camera_names),
        model_manifest=args.model or "",
        use_sim_time=True if args.use_sim_time else None,
        lifecycle=args.lifecycle,
        decoder=not args.no_decoder,
        world_model=args.world_model,
        world_model_manifest=args.world_model_manifest,
        world_model_camera=args.world_model_camera,
        ee_state_topic=args.ee_state_topic,
        executed_action_topic=args.executed_action_topic,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `bringup`: start the nodes and spin until Ctrl-C; exit 2 with one line on bad config."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    try:
        options = options_from_args(build_parser().parse_args(argv[:split]))
    except ValueError as error:
        print(f"bringup: {error}", file=sys.stderr)
        return 2
    apply_transport_defaults()
    rclpy.init(args=rclpy_args(options, argv[split:]))
    try:
        bringup = Bringup(options)
    except Exception as error:  # any start-up failure is one line, not a traceback
        print(f"bringup: refusing to start: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        bringup.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        bringup.destroy()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
