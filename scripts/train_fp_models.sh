#!/usr/bin/env bash
# Trains the FP MobileNetV1 and MobileNetV3-Large on Fashion-MNIST (the starts and teachers of
# PROFIT on the paper's other two models) into runs/fp_mobilenet_v1_fmnist and
# runs/fp_mobilenet_v3_large_fmnist, and writes their table into docs/results.md.
# Resumable: re-run the same command after a kill; finished models are not trained again.
# About 1.5-2.5 CPU hours per model on 2 cores.
# Usage: scripts/train_fp_models.sh [v1] [v3_large]     (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(v1 v3_large)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build profit >/dev/null
for m in "${models[@]}"; do
  run=runs/fp_mobilenet_${m}_fmnist
  # A finished run (it has its summary, e.g. unpacked from device_check.sh's fp_models stage)
  # is taken as it is.
  if [ -f "$run/summary.json" ]; then
    echo "$run: finished"
    continue
  fi
  cmd="./build/profit train --config recipes/fp_mobilenet_${m}_fashion_mnist.yaml --out $run --resume true --summary-json $run/summary.json --progress false"
  echo "+ $cmd"
  $cmd
done
summaries=()
for m in v1 v3_large; do
  s=runs/fp_mobilenet_${m}_fmnist/summary.json
  if [ -f "$s" ]; then summaries+=("$s"); fi
done
/usr/bin/python3 scripts/write_results.py fp-models "scripts/train_fp_models.sh" "${summaries[@]}"
