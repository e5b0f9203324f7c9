#!/usr/bin/env bash
# GPU benchmarks on a machine with onnxruntime-gpu, torch (CUDA) and an NVIDIA GPU; no ROS needed.
# Writes JSON into $1 (default benchmarks/results/gpu). Stages: 'runtime' (provider chain, bundled model on
# CUDA vs CPU), 'vitl' (ViT-L 16x256x256 fp32, fused preprocessing too), 'vitl-fp16'; default: all three.
#
#   bash benchmarks/run_gpu.sh [OUT_DIR] [STAGE...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/gpu}
shift || true
stages=${*:-runtime vitl vitl-fp16}
mkdir -p "$out"
export PYTHONPATH="$PWD/vljepa_ros${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 - <<'EOF'
import onnxruntime as ort, torch
print("onnxruntime", ort.__version__, ort.get_available_providers())
print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")
EOF
for stage in $stages; do
  case $stage in
    runtime)
      # The provider chain as a robot configures it: TensorRT first, then CUDA, then CPU.
      python3 - <<'EOF'
import logging
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
runtime = VLJepaRuntime.from_manifest(bundled_manifest_path(), providers=["tensorrt", "cuda", "cpu"])
print("bundled model runs on", runtime.provider)
EOF
      for p in cuda cpu; do
        python3 benchmarks/bench_perception.py --no-node --providers "$p" --reps 100 --out "$out/bench_perception_runtime_$p.json" >/dev/null
        python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], 'bare', round(d['bare_ort_ms']['p50'],3), 'ms, wrapper work', round(d['runtime_wrapper_ms']['own_work_p50'],3), 'ms, own cost', round(d['pipeline_without_ros']['own_cost_ms']['p50'],3), 'ms, throughput', [(t['cameras'], round(t['batched_clips_per_s']), round(t['unbatched_clips_per_s'])) for t in d['throughput']])" "$out/bench_perception_runtime_$p.json" "$p"
      done
      ;;
    vitl)
      python3 benchmarks/bench_encoder.py --vit-l --providers cuda,cpu --torch-device cuda --iters 20 --block 5 \
        --out "$out/bench_encoder_vitl_cuda.json"
      ;;
    vitl-fp16)
      python3 benchmarks/bench_encoder.py --vit-l --fp16 --providers cuda,cpu --torch-device cuda --iters 20 \
        --block 5 --no-fused --out "$out/bench_encoder_vitl_cuda_fp16.json"
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
