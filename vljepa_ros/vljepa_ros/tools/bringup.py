"""Start the perception and selective-decoding nodes in one process with one parameters file.

The same nodes, names, parameters and topic wiring as `launch/vljepa.launch.py`, for machines without
`ros2 launch` (the PyPI ROS wheels have no launch) and for the tests and the demo:

    bringup                                          # config/vljepa.yaml, camera /camera/image_raw
    bringup --params-file my.yaml --camera-topics /front/image_raw /left/image_raw/compressed
    bringup --use-sim-time --ros-args -r __ns:=/robot

Each node spins in its own single-threaded executor on its own thread (nodes/spinning.py). The decoder's
`~/embedding` is remapped to the perception node's `vljepa_perception/embedding`, and the perception node's
`~/caption` (drawn on its debug images) to the decoder's `vljepa_decoder/caption` (relative, so a namespace
applies to both). Command-line options become parameter overrides and win over the file; `--ros-args` after
the options go to rclpy unchanged. The DDS transport variables of config/transport.env (large images through
shared memory, discovery on this host) are set where the environment does not set them already.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.parameter import Parameter

from vljepa_ros.nodes.dds_transport import apply_transport_defaults
from vljepa_ros.nodes.decoder_node import DecoderNode
from vljepa_ros.nodes.perception_node import PerceptionNode
from vljepa_ros.nodes.spinning import NodeSpinner
from vljepa_ros.perception.config import camera_name_from_topic
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.tools.params_file import default_params_file, node_parameters

PERCEPTION_NODE = "vljepa_perception"
DECODER_NODE = "vljepa_decoder"
# Relative: resolved in the decoder's namespace, which is the perception node's.
DECODER_INPUT_REMAP = f"~/embedding:={PERCEPTION_NODE}/embedding"
PERCEPTION_CAPTION_REMAP = f"~/caption:={DECODER_NODE}/caption"


@dataclass(frozen=True)
class BringupOptions:
    """What to start; None / empty means: as the parameters file says."""

    params_file: Path | None = None
    camera_topics: tuple[str, ...] = ()
    camera_names: tuple[str, ...] = ()
    model_manifest: str | None = None
    use_sim_time: bool = False
    decoder: bool = True

    def __post_init__(self):
        if self.params_file is not None and not Path(self.params_file).is_file():
            raise ValueError(f"params_file: no file at {self.params_file}")
        if self.camera_names and len(self.camera_names) != len(self.camera_topics):
            raise ValueError(
                f"camera_names: {len(self.camera_names)} names for {len(self.camera_topics)} "
                "camera_topics (give --camera-topics with --camera-names)"
            )


def _overrides(options: BringupOptions, perception: bool) -> list:
    params = []
    if options.use_sim_time:
        params.append(Parameter("use_sim_time", Parameter.Type.BOOL, True))
    if perception:
        if options.camera_topics:
            topics = list(options.camera_topics)
            # Names and types are lists parallel to the topics: replace the file's with ones that fit.
            names = list(options.camera_names) or [camera_name_from_topic(t) for t in topics]
            params.append(Parameter("camera_topics", Parameter.Type.STRING_ARRAY, topics))
            params.append(Parameter("camera_names", Parameter.Type.STRING_ARRAY, names))
            params.append(Parameter("camera_types", Parameter.Type.STRING_ARRAY, ["auto"] * len(topics)))
        if options.model_manifest is not None:
            params.append(Parameter("model_manifest", Parameter.Type.STRING, options.model_manifest))
    elif options.model_manifest is not None and not _file_parameters(options, DECODER_NODE).get("bank_path"):
        # The decoder's default bank is the bundled model's; with another model, decode with that model's.
        params.append(Parameter("bank_path", Parameter.Type.STRING, captions_bank_of(options.model_manifest)))
    return params


def _file_parameters(options: BringupOptions, node_name: str) -> dict:
    params_file = options.params_file or default_params_file()
    return node_parameters(params_file, node_name) if Path(params_file).is_file() else {}


def captions_bank_of(manifest_path: str) -> str:
    """Path of the captions bank a model manifest names; ValueError (naming --model) if it has none."""
    banks = load_manifest(manifest_path, check_files=False).banks
    if "captions" not in banks:
        raise ValueError(f"model: {manifest_path} names no captions bank for the decoder; set bank_path")
    return str(banks["captions"])


class Bringup:
    """The running nodes, one executor each. Needs rclpy.init() with the params file (see `rclpy_args`)."""

    def __init__(self, options: BringupOptions, context=None):
        self.options = options
        self.nodes = []
        try:
            self.perception = PerceptionNode(
                parameter_overrides=_overrides(options, True),
                context=context,
                cli_args=["--ros-args", "-r", PERCEPTION_CAPTION_REMAP],
            )
            self.nodes.append(self.perception)
            self.decoder = None
            if options.decoder:
                self.decoder = DecoderNode(
                    parameter_overrides=_overrides(options, False),
                    context=context,
                    cli_args=["--ros-args", "-r", DECODER_INPUT_REMAP],
                )
                self.nodes.append(self.decoder)
        except Exception:
            self.destroy()
            raise
        self.spinner = NodeSpinner(self.nodes, context=context)

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
    params_file = options.params_file or default_params_file()
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
    return parser


def options_from_args(args: argparse.Namespace) -> BringupOptions:
    """Parsed arguments -> validated options."""
    return BringupOptions(
        params_file=args.params_file,
        camera_topics=tuple(args.camera_topics),
        camera_names=tuple(args.camera_names),
        model_manifest=args.model,
        use_sim_time=args.use_sim_time,
        decoder=not args.no_decoder,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `bringup`: start both nodes and spin until Ctrl-C; exit 2 with one line on bad config."""
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
