#!/usr/bin/env bash
# Post-training quantization of the reference FP MobileNetV2 (models/fp_mobilenet_v2_fmnist, as
# written by scripts/train_reference.sh) with every quantizer, calibration only (no training), at
# W8A8 and W4A4; writes the table into docs/results.md. Usage: scripts/ptq_table.sh [fp_run_dir]
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-models/fp_mobilenet_v2_fmnist}
out=runs/ptq
weights=$run/final.safetensors
[ -f "$weights" ] || { echo "ptq_table: $weights not found: run scripts/train_reference.sh first" >&2; exit 1; }
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build profit >/dev/null
mkdir -p "$out"
jsons=()
fp_flag=""  # the FP model is evaluated by the first run only
for bits in 8 4; do
  for method in duq lsq pact qil dsq fat minmax; do
    j=$out/${method}_w${bits}a${bits}.json
    cmd="./build/profit ptq --run $run -w $weights --method $method --w-bits $bits --a-bits $bits --calib-images 256 --seed 1 --progress false --json $j $fp_flag"
    echo "+ $cmd"
    $cmd
    jsons+=("$j")
    fp_flag="--no-fp"
  done
done
/usr/bin/python3 scripts/write_results.py ptq "scripts/ptq_table.sh $run" "${jsons[@]}"
