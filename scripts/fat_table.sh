#!/usr/bin/env bash
# FAT on the reference FP MobileNetV2 (models/fp_mobilenet_v2_fmnist): W8A8 per-tensor without and
# with depthwise rescaling, W8A8 per-filter (symmetric and asymmetric), W4A8 and W4A4
# per-filter asymmetric (the default, fat.md §10); each before and after threshold training. Writes the table into docs/results.md.
# With --factors: the optional per-weight factors (fat.md §8, --fat-weight-factors true) on W4A4
# per-filter asymmetric and on W8A8 per-tensor symmetric with rescaling (the paper's §8 case);
# each run reports calibrated, thresholds-only and with-factors top-1 (section fat-factors).
# Usage: scripts/fat_table.sh [--factors] [fp_run_dir]    (each configuration resumes if interrupted)
set -euo pipefail
cd "$(dirname "$0")/.."
factors=false
if [ "${1:-}" = --factors ]; then factors=true; shift; fi
run=${1:-models/fp_mobilenet_v2_fmnist}
weights=$run/final.safetensors
[ -f "$weights" ] || { echo "fat_table: $weights not found: run scripts/train_reference.sh first" >&2; exit 1; }
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build profit >/dev/null
recipe=recipes/fat_mobilenet_v2_fashion_mnist.yaml
if $factors; then
  folder=runs/fat_factors section=fat-factors extra="--fat-weight-factors true"
  configs="w4a4_filter_asym --fat-per-filter true --fat-weight-form asymmetric --fat-w-bits 4 --fat-a-bits 4
w8a8_tensor_sym_rescaled --fat-per-filter false --fat-rescale on --fat-weight-form symmetric"
else
  folder=runs/fat section=fat extra=""
  configs="w8a8_tensor_sym --fat-per-filter false --fat-rescale off --fat-weight-form symmetric
w8a8_tensor_sym_rescaled --fat-per-filter false --fat-rescale on --fat-weight-form symmetric
w8a8_filter_sym --fat-per-filter true --fat-weight-form symmetric
w8a8_filter_asym --fat-per-filter true --fat-weight-form asymmetric
w4a8_filter_asym --fat-per-filter true --fat-weight-form asymmetric --fat-w-bits 4
w4a4_filter_asym --fat-per-filter true --fat-weight-form asymmetric --fat-w-bits 4 --fat-a-bits 4"
fi
summaries=()
while read -r name flags; do
  out=$folder/$name
  cmd="./build/profit fat --config $recipe --init $weights --out $out --resume true --progress false $extra $flags"
  echo "+ $cmd"
  $cmd
  summaries+=("$out/summary.json")
done <<< "$configs"
command="scripts/fat_table.sh $run"
$factors && command="scripts/fat_table.sh --factors $run"
/usr/bin/python3 scripts/write_results.py "$section" "$command" "${summaries[@]}"
# FAT vs full QAT (time to the same accuracy): scripts/fat_vs_qat.sh.
