# Sourced by the scripts (needs ROOT; VENV when set): the DDS transport of every process they start, from
# vljepa_ros/config/transport.env (large images through shared memory, discovery kept on this host).
VLJEPA_ROS_CONFIG="$ROOT/vljepa_ros/config"
set -a
# shellcheck source=../vljepa_ros/config/transport.env
. "$VLJEPA_ROS_CONFIG/transport.env"
set +a
# Fast DDS 2 (Jazzy, Humble) reads the profile only from FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3 (Kilted) warns
# about that name: the same rule as nodes/dds_transport.py, by the library found first (venv, then LD_LIBRARY_PATH).
IFS=: read -r -a _vljepa_lib_dirs <<< "${VENV:-$ROOT/.venv}/lib:${LD_LIBRARY_PATH:-}"
for _vljepa_dir in "${_vljepa_lib_dirs[@]}"; do
  [ -n "$_vljepa_dir" ] || continue
  if compgen -G "$_vljepa_dir/libfastdds.so*" >/dev/null; then break; fi
  if compgen -G "$_vljepa_dir/libfastrtps.so*" >/dev/null; then
    export FASTRTPS_DEFAULT_PROFILES_FILE="$FASTDDS_DEFAULT_PROFILES_FILE"
    unset FASTDDS_DEFAULT_PROFILES_FILE
    break
  fi
done
unset _vljepa_lib_dirs _vljepa_dir
