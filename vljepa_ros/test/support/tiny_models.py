"""The small random-weight test model for the core's tests: exported with torch where torch is installed, else
copied from the folder VLJEPA_TINY_MODEL_DIR names, which `prebuild` filled with the same exports
(scripts/test_core_py310.sh runs it in the 3.11 venv: the Python 3.10 run of the core's tests has no torch)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PREBUILT_VARIABLE = "VLJEPA_TINY_MODEL_DIR"
MANIFEST = "manifest.yaml"
# export_tiny_random's options per variant the core's tests use.
VARIANTS = {
    "plain": {},
    "crops": {"normalise_in_graph": True},
    "fused_96x128": {"fused_frame_size": (96, 128)},
}
PREBUILT_SEEDS = (0,)


def tiny_random_model(out_dir: Path, seed: int = 0, variant: str = "plain") -> Path:
    """export_tiny_random(out_dir, seed, **VARIANTS[variant]) or, with VLJEPA_TINY_MODEL_DIR set, a copy of its
    prebuilt result; returns the manifest path."""
    if os.environ.get(PREBUILT_VARIABLE):
        source = Path(os.environ[PREBUILT_VARIABLE]) / f"{variant}_seed{seed}"
        if not (source / MANIFEST).is_file():
            raise FileNotFoundError(f"{PREBUILT_VARIABLE}: no {source / MANIFEST} (prebuild exports it)")
        shutil.copytree(source, out_dir, dirs_exist_ok=True)
        return Path(out_dir) / MANIFEST
    from vljepa_ros.export.model import export_tiny_random

    return export_tiny_random(out_dir, seed=seed, **VARIANTS[variant])


def prebuild(folder: Path) -> None:
    """Export every variant with each of PREBUILT_SEEDS under `folder` (needs torch)."""
    from vljepa_ros.export.model import export_tiny_random

    for variant, options in VARIANTS.items():
        for seed in PREBUILT_SEEDS:
            export_tiny_random(Path(folder) / f"{variant}_seed{seed}", seed=seed, **options)
