#!/usr/bin/env bash
# GPU benchmarks on a machine with onnxruntime-gpu, torch and an NVIDIA GPU; no ROS needed. One run of the
# default stages is meant to take under 8 minutes on an H100 machine (not yet run there): it builds the
# full-size random-weight VL-JEPA (ViT-L 8x256 + 8 Llama layers of 2048), exports it, makes its fused and fp16
# variants and times them. Writes JSON into OUT_DIR (default benchmarks/results/gpu). Stages:
#   runtime     provider chain TensorRT -> CUDA -> CPU and the bundled model on CUDA vs CPU
#   full        full-size encoder + predictor per clip at batch 1 and 4 on CUDA: fp32, optimised, fp16,
#               optimised-fp16, tokens kept on the GPU between the graphs (IO binding); cosine to fp32
#   bundled     the bundled model's variants on CUDA: caption top-1 / action R@1 against fp32, time per clip
#   vitl        ViT-L 16x256x256 encoder fp32, fused preprocessing too;  vitl-fp16: the same in fp16
# Default: runtime full bundled. VARIANTS=kind,... replaces the full stage's variants (export/variants.py).
# --smoke: full and bundled on the CPU at the small size (no GPU numbers; it exercises the script's code where
# there is no GPU).
#
#   bash benchmarks/run_gpu.sh [--smoke] [OUT_DIR] [STAGE...]
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
out=${1:-benchmarks/results/gpu}
shift || true
if [ $smoke = 1 ]; then
  stages=${*:-full bundled} size=small providers=cpu rounds=2 tag=smoke_cpu
else
  stages=${*:-runtime full bundled} size=full providers=cuda,cpu rounds=5 tag=cuda
fi
mkdir -p "$out"
export PYTHONPATH="$PWD/vljepa_ros${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
"$python" - <<'EOF'
import onnxruntime as ort, torch
print("onnxruntime", ort.__version__, ort.get_available_providers())
print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")
EOF
for stage in $stages; do
  case $stage in
    runtime)
      # The provider chain as a robot configures it: TensorRT first, then CUDA, then CPU.
      "$python" - <<'EOF'
import logging
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
runtime = VLJepaRuntime.from_manifest(bundled_manifest_path(), providers=["tensorrt", "cuda", "cpu"])
print("bundled model runs on", runtime.provider)
EOF
      for p in cuda cpu; do
        "$python" benchmarks/bench_perception.py --no-node --providers "$p" --reps 100 --out "$out/bench_perception_runtime_$p.json" >/dev/null
        "$python" -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], 'bare', round(d['bare_ort_ms']['p50'],3), 'ms, wrapper work', round(d['runtime_wrapper_ms']['own_work_p50'],3), 'ms, own cost', round(d['pipeline_without_ros']['own_cost_ms']['p50'],3), 'ms, throughput', [(t['cameras'], round(t['batched_clips_per_s']), round(t['unbatched_clips_per_s'])) for t in d['throughput']])" "$out/bench_perception_runtime_$p.json" "$p"
      done
      ;;
    full)
      # The tokens stay on the GPU between the two graphs (--io-binding). TensorRT is not timed here (its
      # libraries were missing on the GPU machines this was written for); the runtime stage shows whether it loads.
      "$python" benchmarks/bench_variants.py --size "$size" --providers "$providers" --batches 1,4 --rounds "$rounds" \
        --variants "${VARIANTS:-optimised,fp16,optimised-fp16}" --io-binding --out "$out/bench_variants_full_$tag.json"
      ;;
    bundled)
      "$python" benchmarks/bench_variants_bundled.py --providers "$providers" --kinds optimised,fp16 \
        --scenes 100 --transitions 100 --iters 30 --out "$out/bench_variants_bundled_$tag.json"
      ;;
    vitl)
      "$python" benchmarks/bench_encoder.py --vit-l --providers cuda,cpu --torch-device cuda --iters 20 --block 5 \
        --out "$out/bench_encoder_vitl_cuda.json"
      ;;
    vitl-fp16)
      "$python" benchmarks/bench_encoder.py --vit-l --fp16 --providers cuda,cpu --torch-device cuda --iters 20 \
        --block 5 --no-fused --out "$out/bench_encoder_vitl_cuda_fp16.json"
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
