# Sourced by the scripts (needs ROOT): the DDS transport of every process they start, from
# vljepa_ros/config/transport.env (large images through shared memory, discovery kept on this host).
VLJEPA_ROS_CONFIG="$ROOT/vljepa_ros/config"
set -a
# shellcheck source=../vljepa_ros/config/transport.env
. "$VLJEPA_ROS_CONFIG/transport.env"
set +a
