#!/usr/bin/env bash
# Trains the reference FP MobileNetV2 on Fashion-MNIST, writes its row into docs/results.md and
# copies the teacher (weights, config, summary; ~3 MB) to models/fp_mobilenet_v2_fmnist, the
# committed reference that the quantization scripts start from.
# Usage: scripts/train_reference.sh [run_dir]   (resumable: re-run the same command after a kill)
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/fp_e40}
recipe=recipes/fp_mobilenet_v2_fashion_mnist_e40.yaml
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build profit >/dev/null
cmd="./build/profit train --config $recipe --out $run --resume true --summary-json $run/summary.json"
echo "+ $cmd"
$cmd
/usr/bin/python3 scripts/write_results.py fp "$run/summary.json" "$recipe" "scripts/train_reference.sh $run"
mkdir -p models/fp_mobilenet_v2_fmnist
cp "$run/final.safetensors" "$run/config.json" "$run/summary.json" models/fp_mobilenet_v2_fmnist/
