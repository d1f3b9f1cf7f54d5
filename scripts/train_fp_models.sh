#!/usr/bin/env bash
# Trains the FP MobileNetV1 and MobileNetV3-Large on Fashion-MNIST (the starts and teachers of
# PROFIT on the paper's other two models) in runs/fp_mobilenet_{v1,v3_large}_fmnist, copies each
# finished model (config.json, final.safetensors, summary.json) to models/fp_mobilenet_M_fmnist
# (committed, like the MobileNetV2 reference: the PROFIT recipes start from there) and writes
# their table into docs/results.md.
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
  run=runs/fp_mobilenet_${m}_fmnist model=models/fp_mobilenet_${m}_fmnist
  # A published model, or a finished run (it has its summary, e.g. unpacked from
  # device_check.sh's fp_models stage), is taken as it is.
  if [ -f "$model/summary.json" ]; then
    echo "$model: finished"
    continue
  fi
  if [ ! -f "$run/summary.json" ]; then
    cmd="./build/profit train --config recipes/fp_mobilenet_${m}_fashion_mnist.yaml --out $run --resume true --summary-json $run/summary.json --progress false"
    echo "+ $cmd"
    $cmd
  fi
  scripts/publish_fp_model.sh "$m"
done
summaries=()
for m in v1 v3_large; do
  s=models/fp_mobilenet_${m}_fmnist/summary.json
  if [ -f "$s" ]; then summaries+=("$s"); fi
done
/usr/bin/python3 scripts/write_results.py fp-models "scripts/train_fp_models.sh" "${summaries[@]}"
