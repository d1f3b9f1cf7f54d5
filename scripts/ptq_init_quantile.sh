#!/usr/bin/env bash
# DuQ's activation-clip start (profit.md 1.6: the 0.95 quantile of the positive calibration
# values) against a 0.999 start, measured by post-training quantization at W8A8 (calibration on
# 256 training images, seed 1, no training) of each FP model given; prints a markdown table.
# It shows what the first 8-bit activation phase of a PROFIT run starts from.
# Usage: scripts/ptq_init_quantile.sh MODEL_DIR...   (e.g. models/fp_mobilenet_v3_large_fmnist)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 MODEL_DIR..." >&2; exit 2; }
out=runs/ptq_init_quantile
mkdir -p "$out"
echo "| model | FP top-1 | DuQ W8A8, clips at the 0.95 quantile | at the 0.999 quantile |"
echo "|---|---|---|---|"
for run in "$@"; do
  name=$(basename "$run")
  tops=()
  for q in 0.95 0.999; do
    printf 'method: duq\nact_bits: 8\nweight_bits: 8\nact_init_quantile: %s\n' "$q" > "$out/policy_$q.yaml"
    j=$out/${name}_q$q.json
    ./build/profit ptq --run "$run" -w "$run/final.safetensors" --policy "$out/policy_$q.yaml" \
      --calib-images 256 --seed 1 --progress false --json "$j" > /dev/null
    tops+=("$(/usr/bin/python3 -c "import json,sys; print('%.2f' % json.load(open(sys.argv[1]))['quantized']['top1'])" "$j")")
  done
  fp=$(/usr/bin/python3 -c "import json,sys; print('%.2f' % json.load(open(sys.argv[1]))['fp']['top1'])" "$j")
  echo "| $name | $fp | ${tops[0]} | ${tops[1]} |"
done
