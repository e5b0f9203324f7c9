"""VL-JEPA perception + selective decoding on a robot.

    ros2 launch vljepa_ros vljepa.launch.py
    ros2 launch vljepa_ros vljepa.launch.py camera_topic:=/front/image_raw use_sim_time:=true
    ros2 launch vljepa_ros vljepa.launch.py camera_topics:=/front/image_raw,/left/image_raw/compressed
    ros2 launch vljepa_ros vljepa.launch.py params_file:=/path/to/my_vljepa.yaml namespace:=robot1
    ros2 launch vljepa_ros vljepa.launch.py world_model:=true ee_state_topic:=/arm/ee_state

Parameters come from `params_file` (default: the package's config/vljepa.yaml, every parameter documented
there). `camera_topic` remaps the file's default camera topic (/camera/image_raw) to a robot's topic (the
node resolves its topics first, so a remap to '.../compressed' subscribes to sensor_msgs/CompressedImage and
logs and diagnostics name the remapped topic);
`camera_topics` (comma-separated) replaces the file's camera list for several cameras served by one model.
The decoder listens to the perception node's embeddings and decodes with the captions bank of the same model
(`model_manifest` goes to both); the perception node's debug images show the decoder's captions.
`lifecycle:=true` starts the managed perception node instead. `world_model:=true` also starts world_model_node
(V-JEPA 2-AC surprise and plan_to_goal; `world_model_manifest`, empty: the file's model_path, there empty: the
bundled models/tinyworld_ac) on the perception node's first camera unless `world_model_camera` names another,
with its `ee_state` and `executed_action` inputs remapped by `ee_state_topic` / `executed_action_topic`.
The nodes, parameters and remappings come from vljepa_ros/tools/node_graph.py, the description `bringup`
starts in one process where `ros2 launch` is not available.

Every node gets the DDS transport of config/transport.env unless the environment sets it: the package's
Fast DDS profile (large images through shared memory) and discovery kept on this host (LOCALHOST). The profile
goes in the variable the installed Fast DDS reads (FASTRTPS_DEFAULT_PROFILES_FILE on Jazzy and Humble,
FASTDDS_DEFAULT_PROFILES_FILE on Kilted). Camera drivers on the same host need the same variables (README).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from vljepa_ros.tools.node_graph import DEFAULT_CAMERA_TOPIC, PACKAGE, GraphOptions, node_graph, transport

TRUE = ("true", "1", "yes")


def _nodes(context):
    """The nodes of tools/node_graph.py (the one description bringup uses too), with the arguments resolved."""
    params_file = LaunchConfiguration("params_file").perform(context)
    camera_topics = [t.strip() for t in LaunchConfiguration("camera_topics").perform(context).split(",") if t.strip()]
    options = GraphOptions(
        params_file=params_file,
        model_manifest=LaunchConfiguration("model_manifest").perform(context),
        camera_topics=tuple(camera_topics),
        camera_topic=LaunchConfiguration("camera_topic").perform(context),
        use_sim_time=LaunchConfiguration("use_sim_time").perform(context).lower() in TRUE,
        lifecycle=LaunchConfiguration("lifecycle").perform(context).lower() in TRUE,
        world_model=LaunchConfiguration("world_model").perform(context).lower() in TRUE,
        world_model_manifest=LaunchConfiguration("world_model_manifest").perform(context),
        world_model_camera=LaunchConfiguration("world_model_camera").perform(context),
        ee_state_topic=LaunchConfiguration("ee_state_topic").perform(context),
        executed_action_topic=LaunchConfiguration("executed_action_topic").perform(context),
    )
    namespace = LaunchConfiguration("namespace").perform(context)
    return [
        Node(
            package=PACKAGE,
            executable=spec.executable,
            name=spec.name,
            namespace=namespace,
            parameters=[params_file, spec.parameters],
            remappings=list(spec.remappings),
            output="screen",
            emulate_tty=True,
        )
        for spec in node_graph(options)
    ]


def _transport():
    """config/transport.env for every process started here, where the environment does not set it already."""
    return [
        SetEnvironmentVariable(name, EnvironmentVariable(name, default_value=value))
        for name, value in transport().items()
    ]


def generate_launch_description():
    """Launch arguments and the nodes."""
    return LaunchDescription(
        [
            *_transport(),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "vljepa.yaml"]),
                description="Parameters YAML for vljepa_perception, vljepa_decoder and vljepa_world_model.",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="Namespace for the nodes."),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                description="Follow /clock (rosbag play --clock, live_replay, a simulator).",
            ),
            DeclareLaunchArgument(
                "camera_topic",
                default_value=DEFAULT_CAMERA_TOPIC,
                description="Topic the file's default camera (/camera/image_raw) is remapped to; a name ending "
                "in /compressed is read as sensor_msgs/CompressedImage.",
            ),
            DeclareLaunchArgument(
                "camera_topics",
                default_value="",
                description="Comma-separated camera topics replacing the file's list (several "
                "cameras, one model); empty: the file's camera_topics.",
            ),
            DeclareLaunchArgument(
                "model_manifest",
                default_value="",
                description="Model manifest.yaml for both nodes (the decoder decodes with its captions bank unless "
                "the file sets bank_path); empty: the file's (the bundled model).",
            ),
            DeclareLaunchArgument(
                "lifecycle",
                default_value="false",
                description="Start the managed perception node (perception_lifecycle_node, unconfigured: "
                "configure and activate it with ros2 lifecycle set).",
            ),
            DeclareLaunchArgument(
                "world_model",
                default_value="false",
                description="Also start world_model_node (vljepa_world_model: ~/surprise, ~/plan_to_goal).",
            ),
            DeclareLaunchArgument(
                "world_model_manifest",
                default_value="",
                description="world_model.yaml for the world model (export_model --vjepa2-ac); empty: the file's "
                "model_path (empty there: the bundled models/tinyworld_ac).",
            ),
            DeclareLaunchArgument(
                "world_model_camera",
                default_value="",
                description="Camera (sensor_msgs/Image) of the world model; empty: the perception node's first.",
            ),
            DeclareLaunchArgument(
                "ee_state_topic",
                default_value="",
                description="Topic of the end-effector state (7 floats) the world model reads; empty: ee_state.",
            ),
            DeclareLaunchArgument(
                "executed_action_topic",
                default_value="",
                description="Topic of the executed actions (7 floats) the world model reads; empty: executed_action.",
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
