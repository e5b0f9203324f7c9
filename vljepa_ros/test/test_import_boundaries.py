"""The runtime never needs torch, and the functional core never needs rclpy.

Each check runs in a fresh interpreter whose import system refuses the forbidden package, so a module that
imports it, directly or through another module, fails loudly here even though torch and rclpy are installed.
"""

import pkgutil
import subprocess
import sys
from pathlib import Path

import vljepa_ros

# Export and training are the only places torch may appear.
TORCH_SIDE = ("vljepa_ros.torch_models", "vljepa_ros.export", "vljepa_ros.training")

# Plain-Python core shared by the nodes, the replay tool and the benchmarks.
CORE_MODULES = (
    "image_conversion", "preprocessing", "clip_buffer", "manifest", "onnx_session", "query_tokenizer",
    "text_bank", "text_encoder_runtime", "vljepa_runtime", "change_detection", "segmentation", "decoders",
    "run_stats", "perception_config", "perception_pipeline", "decoding_pipeline", "bundled_model", "bag_io",
    "params_file", "report",
)

BLOCKER = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {forbidden!r}:
            raise ImportError('forbidden import: ' + name)
sys.meta_path.insert(0, Refuse())
import importlib
for name in {modules!r}:
    importlib.import_module(name)
print('imported', len({modules!r}))
"""


def _all_modules() -> list[str]:
    root = Path(vljepa_ros.__file__).parent
    return sorted(info.name for info in pkgutil.walk_packages([str(root)], prefix="vljepa_ros."))


def _import_with_blocked(modules: list[str], forbidden: set[str]) -> subprocess.CompletedProcess:
    code = BLOCKER.format(forbidden=forbidden, modules=modules)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_runtime_modules_import_without_torch():
    runtime = [m for m in _all_modules() if not m.startswith(TORCH_SIDE)]
    assert runtime, "no runtime modules found"
    result = _import_with_blocked(runtime, {"torch", "torchvision", "sentence_transformers", "transformers"})
    assert result.returncode == 0, result.stderr[-3000:]


def test_core_modules_import_without_rclpy():
    core = [f"vljepa_ros.{name}" for name in CORE_MODULES]
    missing = sorted(set(core) - set(_all_modules()))
    assert not missing, f"core modules renamed or removed (update CORE_MODULES): {missing}"
    result = _import_with_blocked(core, {"rclpy", "torch"})
    assert result.returncode == 0, result.stderr[-3000:]


def test_blocker_really_blocks():
    result = _import_with_blocked(["vljepa_ros"], {"vljepa_ros"})
    assert result.returncode != 0 and "forbidden import" in result.stderr
