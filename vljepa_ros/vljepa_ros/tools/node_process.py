"""Running a node (or bringup) as a child process: its command line and a clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence


def node_command(module: str, params: Mapping[str, object] | None = None, ros_args: Sequence[str] = ()) -> list[str]:
    """`python -m module --ros-args` under this interpreter: `ros_args` as given, then `-p name:=value` per param."""
    command = [sys.executable, "-m", module, "--ros-args", *ros_args]
    for name, value in (params or {}).items():
        command += ["-p", f"{name}:={value}"]
    return command


def stop_process(process: subprocess.Popen, timeout_s: float = 15.0) -> int:
    """Ctrl-C to the process (clean shutdown), then kill if it hangs; returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode
