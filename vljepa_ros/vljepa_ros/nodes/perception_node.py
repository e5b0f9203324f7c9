"""ROS 2 node `vljepa_perception`: N cameras in, one VL-JEPA model, stamped embeddings and transitions out.

A thin shell around perception_pipeline.PerceptionPipeline:
- subscriptions convert and sample frames (cheap; frames the model frame rate skips are never decoded);
- a worker thread runs batched inference for every camera with a clip ready and publishes
  `~/embedding`, `~/visual_embedding` (publish_visual_state) and `~/world_state_transition`, each stamped
  with the newest input frame of its clip and that frame's frame_id (with a volatile output QoS, the optional
  `~/visual_embedding` and `~/world_state_transition` messages are only built while a reader is matched);
- `query`, `transition_query` and `action_vocabulary` change at runtime through parameters (an invalid value
  is refused with a reason and the old one kept), `~/enable` (std_srvs/SetBool) pauses and resumes;
- `/diagnostics` carries one status per camera; incompatible QoS and silent cameras are warned about.

A missing or mismatched model makes the node refuse to start with one line on stderr (exit code 2).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import SetBool

from vljepa_msgs.msg import Embedding, WorldStateTransition
from vljepa_ros.nodes.diagnostics import CameraHealth, camera_status
from vljepa_ros.nodes.embedding_cdr import EmbeddingSerializer
from vljepa_ros.nodes.node_main import run_node
from vljepa_ros.nodes.qos import profile_from_config
from vljepa_ros.nodes.ros_conversions import (
    check_compressed_msg,
    check_image_msg,
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    time_to_ns,
    transition_msg,
)
from vljepa_ros.perception.config import (
    CameraConfig,
    ConfigError,
    NodeConfig,
    PipelineConfig,
    QosConfig,
    cameras_from_parameters,
)
from vljepa_ros.perception.image_conversion import ImageConversionError
from vljepa_ros.perception.pipeline import PerceptionPipeline, VocabularyError
from vljepa_ros.perception.results import BatchResult
from vljepa_ros.perception.worker import PipelineWorker
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

NODE_NAME = "vljepa_perception"
LOG_THROTTLE_S = 5.0
# Parameters that may change while running; everything else is read once at start-up.
_DYNAMIC = ("query", "transition_query", "action_vocabulary", "enabled")


def clear_trt_cache(folder: Path) -> int:
    """Delete the engine, profile and timing-cache files onnxruntime's TensorRT provider wrote in ``folder``
    (named TensorrtExecutionProvider*); other files are left alone. Returns how many were removed."""
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.glob("TensorrtExecutionProvider*"):
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


# name -> (default, description); a type instead of a default declares an array parameter that may be unset.
_PARAMETERS = {
    "model_manifest": ("", "Path to the model manifest.yaml; empty: the bundled tinyworld model."),
    "providers": (["tensorrt", "cuda", "cpu"], "ONNX Runtime execution providers in order of preference."),
    "trt_cache_dir": ("", "TensorRT engine/timing cache folder (empty: no cache, engines rebuilt at every start)."),
    "trt_force_rebuild": (False, "Delete the cached TensorRT engines in trt_cache_dir before loading."),
    "fp16": (False, "Let TensorRT build fp16 engines (for fp16 ONNX files export with --fp16 instead)."),
    "intra_op_threads": (
        1,
        "ONNX Runtime threads per model for CPU operators; 0: its default (one per core), for large models on "
        "the CPU. Small models run faster on 1: the threads' synchronisation costs more than they add, and a "
        "core stays free for the camera callbacks.",
    ),
    "camera_topics": (["/camera/image_raw"], "Image or CompressedImage topics, one per camera."),
    "camera_types": (Parameter.Type.STRING_ARRAY, "Per topic: auto|image|compressed (auto: '/compressed' suffix)."),
    "camera_names": (Parameter.Type.STRING_ARRAY, "Per topic camera name for outputs; default from the topic."),
    "input_qos": ("SENSOR_DATA", "QoS preset of the camera subscriptions: SENSOR_DATA|DEFAULT|SYSTEM_DEFAULT."),
    "input_qos_depth": (5, "History depth of the camera subscriptions."),
    "output_qos": ("DEFAULT", "QoS preset of the output publishers: SENSOR_DATA|DEFAULT|SYSTEM_DEFAULT."),
    "output_qos_depth": (10, "History depth of the output publishers."),
    "frame_rate_hz": (0.0, "Rate frames are sampled into clips; 0: the model's clip.frame_rate_hz."),
    "stride": (1, "Emit a clip every `stride` sampled frames once a clip is full."),
    "queue_depth": (1, "Clips waiting per camera; when behind, the oldest is dropped (drops.worker_behind)."),
    "max_batch": (8, "Most clips in one inference call."),
    "query": ("", "Query answered for every clip (~/embedding); empty: the model's default caption query."),
    "transition_query": ("", "Query for world-state transitions; empty: the model's default transition query."),
    "action_vocabulary": (
        Parameter.Type.STRING_ARRAY,
        "Actions transitions are ranked against; unset/empty: the model's bank.",
    ),
    "transition_horizon_s": (2.0, "Compare the state now with the state this many seconds ago; 0 disables."),
    "top_k": (3, "Actions reported per transition."),
    "publish_visual_state": (True, "Also publish the pooled visual state on ~/visual_embedding."),
    "stall_timeout_s": (3.0, "Warn on /diagnostics and in the log when a camera sends nothing for this long."),
    "diagnostics_period_s": (1.0, "Period of /diagnostics messages."),
    "enabled": (True, "Process frames (also switchable with the ~/enable service)."),
}


class PerceptionNode(Node):
    """The perception node. ``kwargs`` go to rclpy Node (tests pass ``parameter_overrides``).

    Raises ConfigError (bad parameter), ManifestError / FileNotFoundError / ValueError (model problems) from
    the constructor; ``main`` turns them into one line and exit code 2.
    """

    def __init__(self, **kwargs):
        self._worker: PipelineWorker | None = None  # destroy_node may run after a failed start-up
        self._last_warning: dict[tuple, float] = {}
        super().__init__(NODE_NAME, **kwargs)
        for name, (default, description) in _PARAMETERS.items():
            descriptor = ParameterDescriptor(description=description, read_only=name not in _DYNAMIC)
            self.declare_parameter(name, default, descriptor)
        self.config = self._read_config()
        manifest = self.config.model_manifest
        trt_cache_dir = self._param("trt_cache_dir") or None
        if trt_cache_dir and self._param("trt_force_rebuild"):
            removed = clear_trt_cache(Path(trt_cache_dir))
            self.get_logger().info(f"trt_force_rebuild: removed {removed} cached TensorRT file(s) from {trt_cache_dir}")
        runtime = VLJepaRuntime.from_manifest(
            manifest,
            providers=self.config.providers,
            trt_cache_dir=trt_cache_dir,
            fp16=self._param("fp16"),
            intra_op_threads=self._param("intra_op_threads"),
        )
        self.pipeline = PerceptionPipeline(runtime, self.config.pipeline)
        self.pipeline.set_enabled(self.config.enabled)
        for part in ("encoder", "predictor"):
            choice = getattr(self.pipeline.runtime, part).choice
            # Asking for a GPU and getting the CPU is worth a warning that says why.
            log = self.get_logger().warning if choice.skipped else self.get_logger().info
            log(choice.log_line(part))
        self.get_logger().info(
            f"model {self.pipeline.model_id} ({self.pipeline.model_version}) from {manifest} on "
            f"{self.pipeline.runtime.provider}; {len(self.config.cameras)} camera(s) at "
            f"{self.pipeline.frame_rate_hz:g} Hz, query {self.pipeline.query!r}"
        )

        out_qos = profile_from_config(self.config.output_qos)
        # Only a volatile writer may skip a message no reader is matched to: a transient-local one keeps it.
        self._skip_unsubscribed = out_qos.durability == DurabilityPolicy.VOLATILE
        self._embedding_pub = self.create_publisher(Embedding, "~/embedding", out_qos)
        self._visual_pub = (
            self.create_publisher(Embedding, "~/visual_embedding", out_qos)
            if self.config.pipeline.publish_visual_state
            else None
        )
        self._transition_pub = self.create_publisher(WorldStateTransition, "~/world_state_transition", out_qos)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # Embeddings go out as CDR bytes laid out per camera and patched per clip (worker thread only).
        self._serializer = EmbeddingSerializer()

        self._qos_events: dict[str, int] = {c.name: 0 for c in self.config.cameras}
        self._qos_problem: dict[str, str] = {c.name: "" for c in self.config.cameras}
        in_qos = profile_from_config(self.config.input_qos)
        self._subscriptions_by_camera = {c.name: self._subscribe(c, in_qos) for c in self.config.cameras}

        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.create_timer(self.config.diagnostics_period_s, self._publish_diagnostics)
        self._worker = PipelineWorker(self.pipeline, self._publish_results, self._on_worker_error)
        self._worker.start()

    # ----- configuration ------------------------------------------------------------------------------

    def _param(self, name: str):
        """A parameter's value; None for an array parameter declared by type and never set."""
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:
            return None

    def _read_config(self) -> NodeConfig:
        p = self._param
        manifest = p("model_manifest") or str(bundled_manifest_path())
        if not Path(manifest).is_file():
            raise ConfigError("model_manifest", f"no manifest at {manifest}")
        pipeline = PipelineConfig(
            frame_rate_hz=p("frame_rate_hz") or None,
            stride=p("stride"),
            queue_depth=p("queue_depth"),
            max_batch=p("max_batch"),
            query=p("query") or None,
            transition_query=p("transition_query") or None,
            transition_horizon_s=p("transition_horizon_s"),
            top_k=p("top_k"),
            publish_visual_state=p("publish_visual_state"),
            action_vocabulary=tuple(p("action_vocabulary") or ()),
        )
        return NodeConfig(
            model_manifest=manifest,
            providers=tuple(p("providers")),
            cameras=cameras_from_parameters(p("camera_topics"), p("camera_types") or (), p("camera_names") or ()),
            input_qos=QosConfig.parse("input_qos", p("input_qos"), p("input_qos_depth")),
            output_qos=QosConfig.parse("output_qos", p("output_qos"), p("output_qos_depth")),
            stall_timeout_s=p("stall_timeout_s"),
            diagnostics_period_s=p("diagnostics_period_s"),
            enabled=p("enabled"),
            pipeline=pipeline,
        )

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Apply runtime changes all-or-nothing; read-only parameters are refused by rclpy before this."""
        undo = []
        try:
            for param in params:
                if param.name == "query":
                    undo.append((self.pipeline.set_query, self.pipeline.query))
                    self.pipeline.set_query(param.value or self.pipeline.default_query("caption"))
                elif param.name == "transition_query":
                    undo.append((self.pipeline.set_transition_query, self.pipeline.transition_query))
                    default = self.pipeline.default_query("transition")
                    self.pipeline.set_transition_query(param.value or default)
                elif param.name == "action_vocabulary":
                    undo.append((self.pipeline.set_action_vocabulary, self.pipeline.action_vocabulary))
                    self.pipeline.set_action_vocabulary(tuple(param.value or ()))
                elif param.name == "enabled":
                    undo.append((self.pipeline.set_enabled, self.pipeline.enabled))
                    self.pipeline.set_enabled(bool(param.value))
        except (VocabularyError, ConfigError, TypeError) as err:
            for setter, old in reversed(undo):
                setter(old)
            self.get_logger().warning(f"parameter change refused: {err}")
            return SetParametersResult(successful=False, reason=str(err))
        for param in params:
            if param.name in _DYNAMIC:
                self.get_logger().info(f"{param.name} set to {param.value!r}")
        return SetParametersResult(successful=True)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        result = self.set_parameters([Parameter("enabled", Parameter.Type.BOOL, bool(request.data))])[0]
        response.success = result.successful
        response.message = ("enabled" if request.data else "disabled") if result.successful else result.reason
        return response

    # ----- input --------------------------------------------------------------------------------------

    def _subscribe(self, camera: CameraConfig, qos):
        events = SubscriptionEventCallbacks(incompatible_qos=lambda info, c=camera: self._on_incompatible_qos(c, info))
        if camera.compressed:
            msg_type, check, convert = CompressedImage, check_compressed_msg, compressed_msg_to_rgb
        else:
            msg_type, check, convert = Image, check_image_msg, image_msg_to_rgb
        return self.create_subscription(
            msg_type,
            camera.topic,
            lambda m, c=camera: self._on_frame(c, m, check, convert),
            qos,
            event_callbacks=events,
        )

    def _on_frame(self, camera: CameraConfig, msg, check, convert) -> None:
        """Subscription callback: validate every frame, convert only sampled ones; never runs the model."""
        try:
            self.pipeline.offer_frame(
                camera.name, msg.header.frame_id, time_to_ns(msg.header.stamp), lambda: convert(msg), lambda: check(msg)
            )
        except ImageConversionError as err:
            self._warn_throttled(
                ("malformed", camera.name), f"camera {camera.name} ({camera.topic}): dropped a malformed frame: {err}"
            )

    def _on_incompatible_qos(self, camera: CameraConfig, info) -> None:
        self._qos_events[camera.name] = info.total_count
        policy = getattr(info.last_policy_kind, "name", str(info.last_policy_kind))
        self._qos_problem[camera.name] = f"policy {policy} (subscription uses {self.config.input_qos.preset})"
        self._warn_throttled(
            ("qos", camera.name),
            f"camera {camera.name}: a publisher on {camera.topic} has incompatible QoS ({policy}); no frames will "
            f"arrive from it. Set input_qos to match (now {self.config.input_qos.preset}).",
        )

    # ----- output (worker thread) --------------------------------------------------------------------

    def _publish_results(self, batch: BatchResult) -> None:
        # Optional outputs nobody subscribes to are not built: on a volatile writer a message without a
        # matched reader reaches no one, and building plus publishing one costs as much as ~/embedding does.
        publish_visual = self._visual_pub is not None and self._wanted(self._visual_pub)
        for result in batch.embeddings:
            self._embedding_pub.publish(self._serializer.predicted(result))
            if publish_visual and result.visual_state is not None:
                self._visual_pub.publish(self._serializer.visual_state(result))
            # Wall time first: it marks the publish, and reading the ROS clock is bookkeeping after it.
            wall_ns = self._wall_ns()
            now_ns = self.get_clock().now().nanoseconds
            self.pipeline.record_output(
                result.camera,
                wall_ns,
                (now_ns - result.stamp_ns) / 1e9,
                (wall_ns - result.received_ns) / 1e9,
                result.inference_s,
            )
        if batch.transitions and self._wanted(self._transition_pub):
            for transition in batch.transitions:
                self._transition_pub.publish(transition_msg(transition))

    def _wanted(self, publisher) -> bool:
        """Whether a message on ``publisher`` can reach anyone (always, unless the writer is volatile)."""
        return not self._skip_unsubscribed or publisher.get_subscription_count() > 0

    def _on_worker_error(self, err: BaseException) -> None:
        self._warn_throttled(("inference",), f"inference failed (clips counted as drops.inference_error): {err!r}")

    # ----- diagnostics --------------------------------------------------------------------------------

    def _wall_ns(self) -> int:
        return self.pipeline.clock_ns()

    def _publish_diagnostics(self) -> None:
        now_ns = self._wall_ns()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        model = f"{self.pipeline.model_id} ({self.pipeline.model_version})"
        for camera in self.config.cameras:
            stats = self.pipeline.stats_for(camera.name)
            health = CameraHealth(
                camera=camera.name,
                topic=camera.topic,
                provider=self.pipeline.runtime.provider,
                model=model,
                enabled=self.pipeline.enabled,
                stall_timeout_s=self.config.stall_timeout_s,
                incompatible_qos=self._qos_events[camera.name],
                last_qos_problem=self._qos_problem[camera.name],
                clip_resets=self.pipeline.clip_resets(camera.name),
                frames_subsampled=self.pipeline.subsampled(camera.name),
            )
            with self.pipeline.lock:  # the worker and the callbacks update these statistics concurrently
                status = camera_status(self.get_name(), health, stats, now_ns)
                silent = stats.seconds_since_input(now_ns)
            array.status.append(status)
            if health.enabled and (silent is None or silent > health.stall_timeout_s):
                self._warn_throttled(("stall", camera.name), status.message)
        self._diagnostics_pub.publish(array)

    def _warn_throttled(self, key: tuple, message: str) -> None:
        """Log a warning at most every LOG_THROTTLE_S per key (per camera and kind), so a noisy camera cannot
        hide another camera's warnings, as rclpy's per-call-site throttling would."""
        now = time.monotonic()
        if now - self._last_warning.get(key, -LOG_THROTTLE_S) >= LOG_THROTTLE_S:
            self._last_warning[key] = now
            self.get_logger().warning(message)

    def destroy_node(self):
        """Stop the worker before the publishers go away."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        super().destroy_node()


def make_executor() -> SingleThreadedExecutor:
    """The executor the node's console script runs it in (bringup and the benchmark give it the same kind).

    One thread: results are published from the worker, and the node's callbacks share the default mutually
    exclusive callback group, so a second executor thread would never run two of them at once; it only
    added rclpy's thread-pool dispatch to every frame (~0.15 ms more in each callback that completes a clip).
    """
    return SingleThreadedExecutor()


def main(args=None) -> int:
    """Console script `perception_node`: spin until shutdown; exit 2 with one line if start-up is refused."""
    return run_node(PerceptionNode, NODE_NAME, make_executor, args)


if __name__ == "__main__":
    sys.exit(main())
