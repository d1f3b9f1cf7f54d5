#!/usr/bin/env bash
# FAT vs full QAT, time to the same accuracy, at W8A8 and W4A4: for each width, the FAT run
# (per-filter asymmetric weights, threshold scales only) and the full LSQ QAT run
# (recipes/qat_lsq_wXaX_fmnist.yaml, every weight trained) run back to back under the same
# conditions; writes the fat-vs-qat section of docs/results.md. Runs resume if interrupted.
# Usage: scripts/fat_vs_qat.sh [fp_run_dir]
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-models/fp_mobilenet_v2_fmnist}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build profit >/dev/null
pairs=()
for bits in w8a8 w4a4; do
  w=${bits:1:1} a=${bits:3:1}
  fat=runs/fat_vs_qat/fat_$bits qat=runs/fat_vs_qat/qat_$bits
  cmd="./build/profit fat --config recipes/fat_mobilenet_v2_fashion_mnist.yaml --init $run/final.safetensors --out $fat --resume true --progress false --fat-per-filter true --fat-weight-form asymmetric --fat-w-bits $w --fat-a-bits $a"
  echo "+ $cmd"; $cmd
  cmd="./build/profit quantize --recipe recipes/qat_lsq_${bits}_fmnist.yaml --out $qat --resume true --progress false"
  echo "+ $cmd"; $cmd
  pairs+=("$fat/summary.json" "$qat")
done
/usr/bin/python3 scripts/fat_vs_qat.py "scripts/fat_vs_qat.sh $*" "${pairs[@]}"
