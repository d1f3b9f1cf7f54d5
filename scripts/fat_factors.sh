#!/usr/bin/env bash
# FAT with the optional per-weight factors (fat.md §8, --fat-weight-factors true) on the reference
# FP MobileNetV2 (models/fp_mobilenet_v2_fmnist): after the threshold training, the same schedule
# trains one factor in [0.75, 1.25] per weight and bias with the thresholds fixed; the held-out
# loss picks between the two stages. Configurations: W4A4 per-filter asymmetric (the default
# form) and W8A8 per-tensor symmetric with depthwise rescaling (the paper's §8 case). One run per
# configuration reports calibrated, thresholds-only and with-factors top-1. Writes the
# fat-factors section of docs/results.md.
# Usage: scripts/fat_factors.sh [fp_run_dir]    (each configuration resumes if interrupted)
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-models/fp_mobilenet_v2_fmnist}
weights=$run/final.safetensors
[ -f "$weights" ] || { echo "fat_factors: $weights not found: run scripts/train_reference.sh first" >&2; exit 1; }
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build profit >/dev/null
recipe=recipes/fat_mobilenet_v2_fashion_mnist.yaml
summaries=()
while read -r name flags; do
  out=runs/fat_factors/$name
  cmd="./build/profit fat --config $recipe --init $weights --out $out --resume true --progress false --fat-weight-factors true $flags"
  echo "+ $cmd"
  $cmd
  summaries+=("$out/summary.json")
done <<'CONFIGS'
w4a4_filter_asym --fat-per-filter true --fat-weight-form asymmetric --fat-w-bits 4 --fat-a-bits 4
w8a8_tensor_sym_rescaled --fat-per-filter false --fat-rescale on --fat-weight-form symmetric
CONFIGS
/usr/bin/python3 scripts/write_results.py fat-factors "scripts/fat_factors.sh $run" "${summaries[@]}"
