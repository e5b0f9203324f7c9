"""ROS 2 node `vljepa_perception`: N cameras in, one VL-JEPA model, stamped embeddings and transitions out.

A thin shell around perception/pipeline.PerceptionPipeline:
- camera topics are resolved first (remaps, namespace): the message type (CompressedImage for a name ending in
  '/compressed') and every name in logs and diagnostics follow the resolved topic;
- a frame whose stamp no output could carry, or whose header declares more than max_frame_pixels /
  max_frame_bytes, is refused and counted by reason; outputs copy the input stamp field for field;
- subscriptions convert and sample frames (cheap; frames the model frame rate skips are never decoded);
- a worker thread runs batched inference for every camera with a clip ready and publishes
  `~/embedding`, `~/visual_embedding` (publish_visual_state) and `~/world_state_transition`, each stamped
  with the newest input frame of its clip and that frame's frame_id (with a volatile output QoS, the optional
  `~/visual_embedding` and `~/world_state_transition` messages are only built while a reader is matched, and
  transitions, a second encoder clip and predictor call each, are only computed then: `compute_transitions`);
- `~/debug_image/<camera>` (rgb8): each sampled frame with the camera's caption (from `~/caption`, remapped to the
  decoder's output), change score, top transition, rate and latency drawn on it, only while subscribed
  (nodes/debug_image.py);
- `query`, `transition_query` and `action_vocabulary` change at runtime through parameters (an invalid value
  is refused with a reason and the old one kept), `~/enable` (std_srvs/SetBool) pauses and resumes;
- `/diagnostics` (on a steady-clock timer, so it keeps coming with use_sim_time while /clock is silent) carries
  one status per camera and one for the clock; incompatible QoS, silent cameras, clips that keep restarting
  and frames lost in transport are warned about.

The set-up is split into steps (PerceptionSteps: declare, load the model, subscribe, unsubscribe, free) that
this node runs at construction and the managed node (nodes/perception_lifecycle_node.py) runs on its
transitions. A missing or mismatched model makes this node refuse to start with one line on stderr (exit 2).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import get_rmw_implementation_identifier
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import SetBool

from vljepa_msgs.msg import Embedding, WorldStateTransition
from vljepa_ros.nodes.dds_transport import transport_line
from vljepa_ros.nodes.debug_image import DebugImages
from vljepa_ros.nodes.diagnostics import DROP_PUBLISH_ERROR, CameraHealth, ClockHealth, camera_status, clock_status
from vljepa_ros.nodes.embedding_cdr import EmbeddingSerializer
from vljepa_ros.nodes.log_text import shorten
from vljepa_ros.nodes.node_main import run_node
from vljepa_ros.nodes.qos import profile_from_config
from vljepa_ros.nodes.ros_conversions import (
    check_compressed_msg,
    check_image_msg,
    check_stamp,
    compressed_msg_to_rgb,
    frame_limits_from_parameters,
    image_msg_to_rgb,
    time_to_ns,
    transition_msg,
)
from vljepa_ros.perception.config import (
    DEFAULT_FRAME_LIMITS,
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
from vljepa_ros.perception.run_stats import RestartWatch
from vljepa_ros.perception.worker import PipelineWorker
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

NODE_NAME = "vljepa_perception"
LOG_THROTTLE_S = 5.0
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # as rclpy's TimeSource reads /clock
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
    "camera_topics": (
        ["/camera/image_raw"],
        "Image or CompressedImage topics, one per camera (remaps and the namespace apply before anything else).",
    ),
    "camera_types": (
        Parameter.Type.STRING_ARRAY,
        "Per topic: auto|image|compressed (auto: the resolved topic ends in '/compressed').",
    ),
    "camera_names": (Parameter.Type.STRING_ARRAY, "Per topic camera name for outputs; default from the topic."),
    "input_qos": ("SENSOR_DATA", "QoS preset of the camera subscriptions: SENSOR_DATA|DEFAULT|SYSTEM_DEFAULT."),
    "input_qos_depth": (5, "History depth of the camera subscriptions."),
    "output_qos": ("DEFAULT", "QoS preset of the output publishers: SENSOR_DATA|DEFAULT|SYSTEM_DEFAULT."),
    "output_qos_depth": (10, "History depth of the output publishers."),
    "frame_rate_hz": (0.0, "Rate frames are sampled into clips; 0: the model's clip.frame_rate_hz."),
    "stride": (1, "Emit a clip every `stride` sampled frames once a clip is full."),
    "queue_depth": (1, "Clips waiting per camera; when behind, the oldest is dropped (drops.worker_behind)."),
    "max_batch": (8, "Most clips in one inference call."),
    "max_frame_pixels": (
        DEFAULT_FRAME_LIMITS.max_pixels,
        "Largest frame (declared width x height) accepted; larger ones are counted as malformed.too_many_pixels.",
    ),
    "max_frame_bytes": (
        DEFAULT_FRAME_LIMITS.max_bytes,
        "Largest frame data (bytes) accepted; larger ones are counted as malformed.too_many_bytes.",
    ),
    "query": ("", "Query answered for every clip (~/embedding); empty: the model's default caption query."),
    "transition_query": ("", "Query for world-state transitions; empty: the model's default transition query."),
    "action_vocabulary": (
        Parameter.Type.STRING_ARRAY,
        "Actions transitions are ranked against; unset/empty: the model's bank.",
    ),
    "transition_horizon_s": (2.0, "Compare the state now with the state this many seconds ago; 0 disables."),
    "compute_transitions": (
        "on_subscription",
        "on_subscription: compute transitions (a second encoder clip and predictor call per clip) only while "
        "~/world_state_transition or a debug image has a subscriber; always: for every clip.",
    ),
    "top_k": (3, "Actions reported per transition."),
    "publish_visual_state": (True, "Also publish the pooled visual state on ~/visual_embedding."),
    "stall_timeout_s": (3.0, "Warn on /diagnostics and in the log when a camera sends nothing for this long."),
    "diagnostics_period_s": (1.0, "Period of /diagnostics messages."),
    "enabled": (True, "Process frames (also switchable with the ~/enable service)."),
    "debug_image": (
        True,
        "Offer ~/debug_image/<camera> (rgb8: the sampled frame with caption, change score, top transition, rate "
        "and latency drawn on it; drawn only while subscribed) and subscribe to ~/caption (the decoder's).",
    ),
}


class PerceptionSteps:
    """The perception node's set-up in the steps both node kinds run, for a class that is also an rclpy Node:

    ``declare_interface`` (parameters, ~/enable; once, in the constructor), ``load_model`` (config, model,
    publishers, diagnostics, worker), ``subscribe_cameras`` / ``unsubscribe_cameras`` (frames in or paused),
    ``free_model`` (everything ``load_model`` made; safe after a partial load and when called twice).
    ``_create_output_publisher`` / ``_destroy_output_publisher`` let the managed node use lifecycle publishers.
    """

    pipeline: PerceptionPipeline | None
    config: NodeConfig | None

    def declare_interface(self) -> None:
        """Declare the parameters, the parameter callback and ~/enable."""
        self._worker: PipelineWorker | None = None
        self._last_warning: dict[tuple, float] = {}
        self.pipeline = None
        self.config = None
        self.frame_limits = DEFAULT_FRAME_LIMITS
        self._subscriptions_by_camera: dict[str, object] = {}
        self._outputs: list = []
        self._debug: DebugImages | None = None
        self._diagnostics_timer = None
        self._diagnostics_pub = None
        self._clock_sub = None
        for name, (default, description) in _PARAMETERS.items():
            descriptor = ParameterDescriptor(description=description, read_only=name not in _DYNAMIC)
            self.declare_parameter(name, default, descriptor)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_service(SetBool, "~/enable", self._on_enable)

    def _create_output_publisher(self, msg_type, topic: str, qos):
        return self.create_publisher(msg_type, topic, qos)

    def _destroy_output_publisher(self, publisher) -> None:
        self.destroy_publisher(publisher)

    # ----- steps -------------------------------------------------------------------------------------

    def load_model(self) -> None:
        """Read and check the parameters, load the model, create the publishers, diagnostics and worker.

        Raises ConfigError (bad parameter), ManifestError / FileNotFoundError / ValueError (model problems).
        """
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
        self.pipeline = PerceptionPipeline(runtime, self.config.pipeline, transition_readers=self._transition_readers)
        self.pipeline.set_enabled(self.config.enabled)
        for part in ("encoder", "predictor"):
            choice = getattr(self.pipeline.runtime, part).choice
            # Asking for a GPU and getting the CPU is worth a warning that says why.
            log = self.get_logger().warning if choice.skipped else self.get_logger().info
            log(choice.log_line(part))
        cameras = ", ".join(
            f"{c.name} on {c.topic} ({'compressed' if c.compressed else 'raw'})" for c in self.config.cameras
        )
        self.get_logger().info(
            f"model {self.pipeline.model_id} ({self.pipeline.model_version}) from {manifest} on "
            f"{self.pipeline.runtime.provider}; {len(self.config.cameras)} camera(s) at "
            f"{self.pipeline.frame_rate_hz:g} Hz: {cameras}; query {shorten(repr(self.pipeline.query))}"
        )
        # Logged once the model loaded, so a refused start-up stays one line.
        self.get_logger().info(transport_line(os.environ, get_rmw_implementation_identifier()))

        out_qos = profile_from_config(self.config.output_qos)
        # Only a volatile writer may skip a message no reader is matched to: a transient-local one keeps it.
        self._skip_unsubscribed = out_qos.durability == DurabilityPolicy.VOLATILE
        self._embedding_pub = self._create_output_publisher(Embedding, "~/embedding", out_qos)
        self._visual_pub = (
            self._create_output_publisher(Embedding, "~/visual_embedding", out_qos)
            if self.config.pipeline.publish_visual_state
            else None
        )
        self._transition_pub = self._create_output_publisher(WorldStateTransition, "~/world_state_transition", out_qos)
        self._outputs = [p for p in (self._embedding_pub, self._visual_pub, self._transition_pub) if p is not None]
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if self._param("debug_image"):
            # Depth 1: a viewer wants the newest picture, and a reliable writer would otherwise keep ten frames.
            debug_qos = profile_from_config(QosConfig(self.config.output_qos.preset, 1))
            self._debug = DebugImages(
                self,
                self.pipeline,
                self.config.cameras,
                debug_qos,
                self._create_output_publisher,
                self._destroy_output_publisher,
            )
            self.get_logger().info(
                f"debug images on {', '.join(self._debug.topics())} (captions from {self._debug.caption_topic()})"
            )
        # Embeddings go out as CDR bytes laid out per camera and patched per clip (worker thread only).
        self._serializer = EmbeddingSerializer()

        self._qos_events: dict[str, int] = {c.name: 0 for c in self.config.cameras}
        self._qos_problem: dict[str, str] = {c.name: "" for c in self.config.cameras}
        self._restarts = {c.name: RestartWatch() for c in self.config.cameras}
        self._use_sim_time = bool(self.get_parameter("use_sim_time").value)
        self._clock_messages = 0
        self._last_clock_ns: int | None = None
        if self._use_sim_time:
            self._clock_sub = self.create_subscription(ClockMsg, "/clock", self._on_clock, CLOCK_QOS)
        # Steady time: with use_sim_time a ROS-time timer stops with /clock, and so would the stall warnings.
        self._diagnostics_timer = self.create_timer(
            self.config.diagnostics_period_s, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )
        self._worker = PipelineWorker(self.pipeline, self._publish_results, self._on_worker_error)
        self._worker.start()

    def subscribe_cameras(self) -> None:
        """Subscribe to every camera: frames flow into the pipeline from now on."""
        in_qos = profile_from_config(self.config.input_qos)
        self._subscriptions_by_camera = {c.name: self._subscribe(c, in_qos) for c in self.config.cameras}

    def unsubscribe_cameras(self) -> None:
        """Stop taking frames and forget the frames and clips waiting (no clip spans the pause)."""
        for subscription in self._subscriptions_by_camera.values():
            self.destroy_subscription(subscription)
        self._subscriptions_by_camera = {}
        if self.pipeline is not None:
            self.pipeline.discard_pending()

    def free_model(self) -> None:
        """Stop the worker and release what ``load_model`` created, the model's sessions included."""
        self.unsubscribe_cameras()
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        if self._clock_sub is not None:
            self.destroy_subscription(self._clock_sub)
            self._clock_sub = None
        for publisher in self._outputs:
            self._destroy_output_publisher(publisher)
        self._outputs = []
        if self._debug is not None:
            self._debug.destroy()
            self._debug = None
        self.pipeline = None

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
        self.frame_limits = frame_limits_from_parameters(
            {"max_frame_pixels": p("max_frame_pixels"), "max_frame_bytes": p("max_frame_bytes")}
        )
        pipeline = PipelineConfig(
            frame_rate_hz=p("frame_rate_hz") or None,
            stride=p("stride"),
            queue_depth=p("queue_depth"),
            max_batch=p("max_batch"),
            query=p("query") or None,
            transition_query=p("transition_query") or None,
            transition_horizon_s=p("transition_horizon_s"),
            compute_transitions=p("compute_transitions"),
            top_k=p("top_k"),
            publish_visual_state=p("publish_visual_state"),
            action_vocabulary=tuple(p("action_vocabulary") or ()),
        )
        topics = list(p("camera_topics") or ())
        cameras = cameras_from_parameters(self._resolved(topics), p("camera_types") or (), p("camera_names") or ())
        # Subscriptions take the parameter's names: rcl applies remaps to them exactly as it resolved them here.
        self._parameter_topics = {camera.name: topic for camera, topic in zip(cameras, topics)}
        return NodeConfig(
            model_manifest=manifest,
            providers=tuple(p("providers") or ()),
            cameras=cameras,
            input_qos=QosConfig.parse("input_qos", p("input_qos"), p("input_qos_depth")),
            output_qos=QosConfig.parse("output_qos", p("output_qos"), p("output_qos_depth")),
            stall_timeout_s=p("stall_timeout_s"),
            diagnostics_period_s=p("diagnostics_period_s"),
            enabled=p("enabled"),
            pipeline=pipeline,
        )

    def _resolved(self, topics: list) -> list:
        """Each camera topic with remaps and the namespace applied; entries that are not text are left for
        cameras_from_parameters to refuse."""
        resolved = []
        for topic in topics:
            if isinstance(topic, str) and topic.strip():
                try:
                    topic = self.resolve_topic_name(topic)
                except Exception as err:  # rclpy raises its own exception types for invalid names
                    raise ConfigError("camera_topics", f"{topic!r} is not a valid topic name: {err}") from None
            resolved.append(topic)
        return resolved

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Apply runtime changes all-or-nothing; read-only parameters are refused by rclpy before this.

        Without a loaded model (a managed node not configured yet) values are only stored: ``load_model``
        reads them.
        """
        if self.pipeline is None:
            return SetParametersResult(successful=True)
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
            self.get_logger().warning(f"parameter change refused: {shorten(str(err))}")
            return SetParametersResult(successful=False, reason=str(err))
        for param in params:
            if param.name in _DYNAMIC:
                self.get_logger().info(f"{param.name} set to {shorten(repr(param.value))}")
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
            self._parameter_topics[camera.name],
            lambda m, c=camera: self._on_frame(c, m, check, convert),
            qos,
            event_callbacks=events,
        )

    def _on_frame(self, camera: CameraConfig, msg, check, convert) -> None:
        """Subscription callback: validate every frame, convert only sampled ones; never runs the model."""
        limits = self.frame_limits
        debug = self._debug
        kept = []  # the converted frame, for a debug image (only once the frame is sampled and one is wanted)

        def validate() -> None:
            check_stamp(msg.header.stamp)
            check(msg, limits)

        def rgb():
            frame = convert(msg, limits)
            if debug is not None and debug.wanted(camera.name):
                kept.append(frame)
            return frame

        try:
            verdict = self.pipeline.offer_frame(
                camera.name, msg.header.frame_id, time_to_ns(msg.header.stamp), rgb, validate
            )
        except ImageConversionError as err:
            self._warn_throttled(
                ("malformed", camera.name),
                f"camera {camera.name} ({camera.topic}): dropped a malformed frame (counted as "
                f"malformed.{err.reason}): {shorten(err.detail)}",
            )
            return
        if kept and verdict in ("sampled", "queued"):
            try:
                debug.publish(camera.name, msg.header, kept[0])
            except Exception as err:  # a failed picture must not stop the camera's frames; counted
                self._on_publish_error(camera.name, "debug image", err)

    def _on_incompatible_qos(self, camera: CameraConfig, info) -> None:
        self._qos_events[camera.name] = info.total_count
        policy = getattr(info.last_policy_kind, "name", str(info.last_policy_kind))
        self._qos_problem[camera.name] = f"policy {policy} (subscription uses {self.config.input_qos.preset})"
        self._warn_throttled(
            ("qos", camera.name),
            f"camera {camera.name}: a publisher on {camera.topic} has incompatible QoS ({policy}); no frames will "
            f"arrive from it. Set input_qos to match (now {self.config.input_qos.preset}).",
        )

    def _on_clock(self, _msg) -> None:
        self._clock_messages += 1
        self._last_clock_ns = time.monotonic_ns()

    # ----- output (worker thread) --------------------------------------------------------------------

    def _publish_results(self, batch: BatchResult) -> None:
        if self._debug is not None:
            self._debug.on_transitions(batch.transitions)
        # Optional outputs nobody subscribes to are not built: on a volatile writer a message without a
        # matched reader reaches no one, and building plus publishing one costs as much as ~/embedding does.
        publish_visual = self._visual_pub is not None and self._wanted(self._visual_pub)
        for result in batch.embeddings:
            try:
                self._embedding_pub.publish(self._serializer.predicted(result))
                if publish_visual and result.visual_state is not None:
                    self._visual_pub.publish(self._serializer.visual_state(result))
            except Exception as err:  # counted under its own name, not as an inference failure
                self._on_publish_error(result.camera, "embedding", err)
                continue
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
                try:
                    self._transition_pub.publish(transition_msg(transition))
                except Exception as err:  # counted under its own name, not as an inference failure
                    self._on_publish_error(transition.camera, "transition", err)

    def _on_publish_error(self, camera: str, what: str, err: Exception) -> None:
        self.pipeline.record_drop(camera, DROP_PUBLISH_ERROR)
        self._warn_throttled(
            ("publish", camera),
            f"camera {camera}: a {what} could not be published (counted as drops.{DROP_PUBLISH_ERROR}): "
            f"{shorten(repr(err))}",
        )

    def _wanted(self, publisher) -> bool:
        """Whether a message on ``publisher`` can reach anyone (always, unless the writer is volatile)."""
        return not self._skip_unsubscribed or publisher.get_subscription_count() > 0

    def _transition_readers(self) -> bool:
        """Whether a transition computed now reaches anyone: a ~/world_state_transition reader, or a debug image
        (it draws the top transition). The pipeline skips the work otherwise."""
        publisher = getattr(self, "_transition_pub", None)
        if publisher is not None and self._wanted(publisher):
            return True
        debug = getattr(self, "_debug", None)
        return debug is not None and any(debug.wanted(camera.name) for camera in self.config.cameras)

    def _on_worker_error(self, err: BaseException) -> None:
        self._warn_throttled(
            ("inference",), f"inference failed (clips counted as drops.inference_error): {shorten(repr(err))}"
        )

    # ----- diagnostics --------------------------------------------------------------------------------

    def _wall_ns(self) -> int:
        return self.pipeline.clock_ns()

    def _publish_diagnostics(self) -> None:
        pipeline = self.pipeline
        if pipeline is None:
            return
        now_ns = self._wall_ns()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        model = f"{pipeline.model_id} ({pipeline.model_version})"
        active = bool(self._subscriptions_by_camera)
        for camera in self.config.cameras:
            with pipeline.lock:  # the worker and the callbacks update these statistics concurrently
                stats = pipeline.stats_for(camera.name)
                resets = pipeline.clip_resets(camera.name)
                restarts = self._restarts[camera.name].since_output(stats.output_rate.total, resets.get("gap", 0))
                health = CameraHealth(
                    camera=camera.name,
                    topic=camera.topic,
                    provider=pipeline.runtime.provider,
                    model=model,
                    enabled=pipeline.enabled,
                    stall_timeout_s=self.config.stall_timeout_s,
                    incompatible_qos=self._qos_events[camera.name],
                    last_qos_problem=self._qos_problem[camera.name],
                    clip_resets=resets,
                    frames_subsampled=pipeline.subsampled(camera.name),
                    frames_sampled=pipeline.sampled(camera.name),
                    gap_restarts_since_output=restarts,
                    active=active,
                )
                status = camera_status(self.get_name(), health, stats, now_ns)
            array.status.append(status)
            if active and status.level != status.OK:
                self._warn_throttled(("camera", camera.name), status.message)
        clock = clock_status(self.get_name(), self._clock_health())
        array.status.append(clock)
        if clock.level != clock.OK:
            self._warn_throttled(("clock",), clock.message)
        self._diagnostics_pub.publish(array)

    def _clock_health(self) -> ClockHealth:
        last = self._last_clock_ns
        return ClockHealth(
            use_sim_time=self._use_sim_time,
            clock_messages=self._clock_messages,
            seconds_since_clock=None if last is None else (time.monotonic_ns() - last) / 1e9,
            stall_timeout_s=self.config.stall_timeout_s,
        )

    def _warn_throttled(self, key: tuple, message: str) -> None:
        """Log a warning at most every LOG_THROTTLE_S per key (per camera and kind), so a noisy camera cannot
        hide another camera's warnings, as rclpy's per-call-site throttling would."""
        now = time.monotonic()
        if now - self._last_warning.get(key, -LOG_THROTTLE_S) >= LOG_THROTTLE_S:
            self._last_warning[key] = now
            self.get_logger().warning(message)


class PerceptionNode(PerceptionSteps, Node):
    """The perception node: loads the model and subscribes at construction. ``kwargs`` go to rclpy Node
    (tests pass ``parameter_overrides``).

    Raises ConfigError (bad parameter), ManifestError / FileNotFoundError / ValueError (model problems) from
    the constructor; ``main`` turns them into one line and exit code 2.
    """

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.declare_interface()
        self.load_model()
        self.subscribe_cameras()

    def destroy_node(self):
        """Stop the worker before the publishers go away."""
        self.free_model()
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
