"""VL-JEPA perception + selective decoding on a robot.

    ros2 launch vljepa_ros vljepa.launch.py
    ros2 launch vljepa_ros vljepa.launch.py camera_topic:=/front/image_raw use_sim_time:=true
    ros2 launch vljepa_ros vljepa.launch.py camera_topics:=/front/image_raw,/left/image_raw/compressed
    ros2 launch vljepa_ros vljepa.launch.py params_file:=/path/to/my_vljepa.yaml namespace:=robot1

Parameters come from `params_file` (default: the package's config/vljepa.yaml, every parameter documented
there). `camera_topic` remaps the file's default camera topic (/camera/image_raw) to a robot's topic (the
node resolves its topics first, so a remap to '.../compressed' subscribes to sensor_msgs/CompressedImage and
logs and diagnostics name the remapped topic);
`camera_topics` (comma-separated) replaces the file's camera list for several cameras served by one model.
The decoder listens to the perception node's embeddings; the perception node's debug images show the
decoder's captions. `bringup` starts the same nodes in one process
where `ros2 launch` is not available.

Both nodes get the DDS transport of config/transport.env unless the environment sets it: the package's
Fast DDS profile (large images through shared memory) and discovery kept on this host (LOCALHOST). Camera
drivers on the same host need the same variables (README).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vljepa_ros"
DEFAULT_CAMERA_TOPIC = "/camera/image_raw"
TRANSPORT_PROFILE = "fastdds_localhost_large_data.xml"


def _nodes(context):
    """The two nodes, with the launch arguments resolved (camera_topics needs splitting into a list)."""
    params_file = LaunchConfiguration("params_file").perform(context)
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context).lower() in ("true", "1", "yes")
    namespace = LaunchConfiguration("namespace").perform(context)
    camera_topic = LaunchConfiguration("camera_topic").perform(context)
    camera_topics = [t.strip() for t in LaunchConfiguration("camera_topics").perform(context).split(",") if t.strip()]
    model_manifest = LaunchConfiguration("model_manifest").perform(context)

    perception_overrides = {"use_sim_time": use_sim_time}
    if camera_topics:
        perception_overrides["camera_topics"] = camera_topics
    if model_manifest:
        perception_overrides["model_manifest"] = model_manifest
    perception = Node(
        package=PACKAGE,
        executable="perception_node",
        name="vljepa_perception",
        namespace=namespace,
        parameters=[params_file, perception_overrides],
        # ~/caption (drawn on the debug images) is the decoder's output; relative: the shared namespace.
        remappings=[(DEFAULT_CAMERA_TOPIC, camera_topic), ("~/caption", "vljepa_decoder/caption")],
        output="screen",
        emulate_tty=True,
    )
    decoder = Node(
        package=PACKAGE,
        executable="decoder_node",
        name="vljepa_decoder",
        namespace=namespace,
        parameters=[params_file, {"use_sim_time": use_sim_time}],
        # Relative target: resolved in the shared namespace.
        remappings=[("~/embedding", "vljepa_perception/embedding")],
        output="screen",
        emulate_tty=True,
    )
    return [perception, decoder]


def _transport():
    """config/transport.env for every process started here, where the environment does not set it already."""
    defaults = {
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "FASTDDS_DEFAULT_PROFILES_FILE": PathJoinSubstitution([FindPackageShare(PACKAGE), "config", TRANSPORT_PROFILE]),
    }
    return [
        SetEnvironmentVariable(name, EnvironmentVariable(name, default_value=value)) for name, value in defaults.items()
    ]


def generate_launch_description():
    """Launch arguments and the two nodes."""
    return LaunchDescription(
        [
            *_transport(),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "vljepa.yaml"]),
                description="Parameters YAML for vljepa_perception and vljepa_decoder.",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="Namespace for both nodes."),
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
                description="Model manifest.yaml; empty: the file's (the bundled model).",
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
