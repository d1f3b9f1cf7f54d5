#!/usr/bin/env bash
# DuQ's activation-clip start (profit.md 1.6: the 0.95 quantile of the positive calibration
# values) against a 0.999 start, measured by post-training quantization at W8A8 (calibration on
# 256 training images, seed 1, no training) of each FP model given: what the first 8-bit
# activation phase of a PROFIT run starts from. Writes its table into docs/results.md (section
# ptq-init) and prints it. Usage: scripts/ptq_init_quantile.sh MODEL_DIR...
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 MODEL_DIR..." >&2; exit 2; }
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build profit >/dev/null
out=runs/ptq_init_quantile
mkdir -p "$out"
top1() { /usr/bin/python3 -c "import json,sys; print('%.2f' % json.load(open(sys.argv[1]))[sys.argv[2]]['top1'])" "$1" "$2"; }
section=$out/section.md
{
  echo "### DuQ's activation-clip start on the FP models (W8A8, calibration only)"
  echo
  echo "Command: \`scripts/ptq_init_quantile.sh $*\`. DuQ at W8A8 with its activation clips started at the 0.95 quantile of the positive calibration values (the spec's start, profit.md §1.6) or at the 0.999 quantile; 256 calibration images, seed 1, no training; 10,000 test images. This is where the first 8-bit activation phase of a PROFIT run starts."
  echo
  echo "| model | FP top-1 | DuQ W8A8, clips at the 0.95 quantile | at the 0.999 quantile |"
  echo "|---|---|---|---|"
} > "$section"
for run in "$@"; do
  name=$(basename "$run")
  tops=()
  for q in 0.95 0.999; do
    printf 'method: duq\nact_bits: 8\nweight_bits: 8\nact_init_quantile: %s\n' "$q" > "$out/policy_$q.yaml"
    j=$out/${name}_q$q.json
    [ -f "$j" ] ||  # an existing result is reused (rm -r runs/ptq_init_quantile to redo)
      ./build/profit ptq --run "$run" -w "$run/final.safetensors" --policy "$out/policy_$q.yaml" \
        --calib-images 256 --seed 1 --progress false --json "$j" > /dev/null
    tops+=("$(top1 "$j" quantized)")
  done
  echo "| $name | $(top1 "$j" fp) | ${tops[0]} | ${tops[1]} |" >> "$section"
done
cat "$section"
/usr/bin/python3 -c "import sys; sys.path.insert(0, 'scripts'); import write_results as w; w.replace_section('ptq-init', open(sys.argv[1]).read())" "$section"
