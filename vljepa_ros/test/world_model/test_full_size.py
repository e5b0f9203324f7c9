"""V-JEPA 2-AC at full size with random weights on the CPU: a checkpoint in the released layout (ViT-g 1408 x 40
blocks at 256 px + the 24-block 1024-wide AC predictor), `export_model --vjepa2-ac` on it and one `rollout`,
each command in its own process with its time and peak resident memory (VmHWM) recorded.

Slow (tens of minutes on two cores, ~15 GB of RAM at the export's peak): `bash scripts/test.sh -m slow`.
Set WORLD_MODEL_FULL_SIZE_JSON to a path to keep the measurements (docs/world_model.md cites them).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vljepa_ros.torch_models.vjepa2_ac_loading import save_vjepa2_ac_checkpoint
from vljepa_ros.torch_models.vjepa2_ac_predictor import ACPredictorConfig, VJepa2ACPredictor
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config

# Runs a console script's module as __main__ and reports the process's peak resident memory on its last line.
MEASURED = r"""
import json, runpy, sys, time
module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
start, code = time.perf_counter(), 0
try:
    runpy.run_module(module, run_name="__main__")
except SystemExit as stop:
    code = stop.code or 0
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": round(hwm / 1024), "rc": code}))
sys.exit(code)
"""


def measured(module: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURED, module, *args], capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_full_size_export_and_one_rollout(tmp_path):
    torch.manual_seed(0)
    start = time.perf_counter()
    encoder = VJepa2Encoder(encoder_config("vit_g", num_frames=2, img_size=256)).eval()
    predictor = VJepa2ACPredictor(ACPredictorConfig()).eval()
    params = sum(p.numel() for p in (*encoder.parameters(), *predictor.parameters()))
    checkpoint = save_vjepa2_ac_checkpoint(encoder, predictor, tmp_path / "vjepa2-ac-vitg-random.pt")
    del encoder, predictor
    gc.collect()
    write_s = time.perf_counter() - start

    out = tmp_path / "model"
    export = measured("vljepa_ros.export.cli", "--vjepa2-ac", str(checkpoint), "--out", str(out))
    sizes = {p.name: round(p.stat().st_size / 2**20) for p in sorted(out.iterdir()) if p.is_file()}
    assert "encoder.onnx.data" in sizes, "ViT-g's weights exceed protobuf's 2 GB: external data"

    rng = np.random.default_rng(0)
    np.save(tmp_path / "steps.npy", rng.standard_normal((2, 3, 256, 256)).astype(np.float32))
    np.save(tmp_path / "a.npy", np.array([[0.02, 0, 0, 0, 0, 0, 0]] * 2, np.float32))
    np.save(tmp_path / "s.npy", np.array([[0.5, 0, 0.3, 0, 0, 0, 0]] * 2, np.float32))
    args = ["--manifest", str(out), "--steps", str(tmp_path / "steps.npy"), "--actions", str(tmp_path / "a.npy")]
    args += ["--states", str(tmp_path / "s.npy"), "--out", str(tmp_path / "r.npz")]
    rollout = measured("vljepa_ros.tools.rollout", *args)
    next_state = np.load(tmp_path / "r.npz")["next_state"]
    assert next_state.shape == (256, 1408) and np.all(np.isfinite(next_state))

    result = {
        "machine": "2 CPU cores, 24 GB, shared with other sessions",
        "parameters": params,
        "checkpoint_mib": round(checkpoint.stat().st_size / 2**20),
        "write_checkpoint_s": round(write_s, 1),
        "export": export,
        "files_mib": sizes,
        "rollout_two_steps": rollout,
    }
    print(json.dumps(result, indent=1))
    if os.environ.get("WORLD_MODEL_FULL_SIZE_JSON"):
        Path(os.environ["WORLD_MODEL_FULL_SIZE_JSON"]).write_text(json.dumps(result, indent=1) + "\n")
