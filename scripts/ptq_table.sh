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
# --keep-tail-relu6 true: the table was made with ReLU6 before pooling (the spec's tail: ReLU).
# Each line: activation method, weight method, bits, extra flags. The first block is the table;
# the second isolates, at W8A8, which half (activation or weight initialisation) of DuQ and DSQ
# costs accuracy, and DSQ's per-channel option. A JSON that exists is reused (rm runs/ptq to redo).
fp_flag=""  # the FP model is evaluated by the first run only
while read -r act wgt bits extra; do
  [ -n "$act" ] || continue
  j=$out/${act}_${wgt}_w${bits}a${bits}${extra:+_pc}.json
  if [ ! -f "$j" ]; then
    cmd="./build/profit ptq --run $run -w $weights --method $act --weight-method $wgt --w-bits $bits --a-bits $bits --calib-images 256 --seed 1 --progress false --keep-tail-relu6 true --json $j $fp_flag $extra"
    echo "+ $cmd"
    $cmd
  fi
  jsons+=("$j")
  fp_flag="--no-fp"
done <<'CONFIGS'
duq duq 8
lsq lsq 8
pact sawb 8
qil qil 8
dsq dsq 8
fat fat 8
minmax minmax 8
duq duq 4
lsq lsq 4
pact sawb 4
qil qil 4
dsq dsq 4
fat fat 4
minmax minmax 4
duq minmax 8
minmax duq 8
dsq minmax 8
minmax dsq 8
dsq dsq 8 --per-channel true
CONFIGS
/usr/bin/python3 scripts/write_results.py ptq "scripts/ptq_table.sh $run" "${jsons[@]}"
