"""The console-script life cycle shared by the nodes: start, spin until shutdown, refuse start-up in one line."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator

import rclpy
import yaml
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node

REFUSAL_LINE_LIMIT = 400  # characters of a refusal line; a 10 kB parameter value is not echoed in full


def params_files(args: list[str]) -> list[str]:
    """The files named by `--params-file FILE` inside the `--ros-args ... [--]` sections of `args`."""
    files, in_ros_args = [], False
    for i, arg in enumerate(args):
        if arg == "--ros-args":
            in_ros_args = True
        elif arg == "--":
            in_ros_args = False
        elif in_ros_args and arg == "--params-file" and i + 1 < len(args):
            files.append(args[i + 1])
    return files


def check_params_file(path: str) -> None:
    """Raise ValueError (one line naming the file) unless `path` is readable YAML with a mapping at the top.

    rcl refuses a missing or unparsable file with a multi-line error, and silently ignores one that is empty or
    not a mapping (a list, a scalar): the operator would never learn their parameters were not applied.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        problem = " ".join(str(error).split())  # YAML errors span several lines
        raise ValueError(f"cannot read parameters file {path}: {problem}") from None
    if not isinstance(data, dict):
        raise ValueError(f"parameters file {path}: expected a mapping of node names, got {type(data).__name__}")


@contextlib.contextmanager
def _stderr_held() -> Iterator[None]:
    """Hold what C code writes to file descriptor 2, and write it out only if the block succeeds.

    rcl logs its own "[ERROR] [rcl]: Failed to parse ..." line before rclpy raises; the refusal line says the
    same with the file name, so on failure the held text is dropped.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        sys.stderr.write(held.read().decode(errors="replace"))


def refusal_line(name: str, err: BaseException) -> str:
    """One line for a start-up failure: the error's first line (rcl adds source locations), clipped."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    line = f"{name}: refusing to start: {lines[0] if lines else type(err).__name__}"
    if len(line) > REFUSAL_LINE_LIMIT:
        line = f"{line[:REFUSAL_LINE_LIMIT]}... ({len(line)} chars)"
    return line


def run_node(create: Callable[[], Node], name: str, make_executor: Callable[[], Executor], args=None) -> int:
    """Run one node to shutdown; return 0, or 2 after printing why the node refused to start.

    A robot operator reads the start-up failure in a launch log: one line naming the problem (a missing model,
    an invalid parameter, a broken params file) is what they need, not a traceback.
    """
    try:
        for path in params_files(sys.argv if args is None else list(args)):
            check_params_file(path)
        with _stderr_held():
            rclpy.init(args=args)  # rcl parses --params-file and -p here
        node = create()
    except Exception as err:  # any start-up failure becomes one clear line
        print(refusal_line(name, err), file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = make_executor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
