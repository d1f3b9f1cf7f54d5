#!/usr/bin/env bash
# DuQ's activation-clip start (profit.md 1.6: the 0.95 quantile of the positive calibration
# values) against a 0.999 start, measured by post-training quantization at W8A8 (calibration on
# 256 training images, seed 1, no training) of each FP model given: what the first 8-bit
# activation phase of a PROFIT run starts from. Writes section ptq-init of docs/results.md.
# Usage: scripts/ptq_init_quantile.sh MODEL_DIR...
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 MODEL_DIR..." >&2; exit 2; }
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build profit >/dev/null
out=runs/ptq_init_quantile
mkdir -p "$out"
# keep_tail_relu6: the section was made with ReLU6 before MobileNetV2's pooling (spec: ReLU).
for q in 0.95 0.999; do
  printf 'method: duq\nact_bits: 8\nweight_bits: 8\nkeep_tail_relu6: true\nact_init_quantile: %s\n' "$q" > "$out/policy_$q.yaml"
done
jsons=()
for run in "$@"; do
  for q in 0.95 0.999; do
    j=$out/$(basename "$run")_q$q.json
    [ -f "$j" ] ||  # an existing result is reused (rm -r runs/ptq_init_quantile to redo)
      ./build/profit ptq --run "$run" -w "$run/final.safetensors" --policy "$out/policy_$q.yaml" \
        --calib-images 256 --seed 1 --progress false --json "$j" > /dev/null
    jsons+=("$j")
  done
done
/usr/bin/python3 scripts/write_results.py ptq-init "scripts/ptq_init_quantile.sh $*" "${jsons[@]}"
