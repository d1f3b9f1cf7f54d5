#!/usr/bin/env bash
# Trains the other schedules tried for the reference FP MobileNetV2 (resuming any that was
# interrupted) and writes their table under the reference in docs/results.md:
#   stage2: recipes/fp_mobilenet_v2_fashion_mnist_stage2.yaml (warm restart of the reference)
#   e40:    recipes/fp_mobilenet_v2_fashion_mnist_e40.yaml (40 epochs from scratch; the reference)
#   e18:    recipes/fp_mobilenet_v2_fashion_mnist.yaml (the first 18-epoch reference, run folder
#           runs/fp_mobilenet_v2_fmnist)
# Usage: scripts/fp_candidates.sh [NAME...]   (default: e18 stage2; run folders runs/fp_NAME)
set -euo pipefail
cd "$(dirname "$0")/.."
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(e18 stage2)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build profit >/dev/null
summaries=()
for n in "${names[@]}"; do
  run=runs/fp_$n recipe=recipes/fp_mobilenet_v2_fashion_mnist_$n.yaml
  if [ "$n" = e18 ]; then run=runs/fp_mobilenet_v2_fmnist recipe=recipes/fp_mobilenet_v2_fashion_mnist.yaml; fi
  cmd="./build/profit train --config $recipe --out $run --resume true --summary-json $run/summary.json --progress false"
  echo "+ $cmd"
  $cmd
  summaries+=("$run/summary.json")
done
/usr/bin/python3 scripts/write_results.py fp-candidates "scripts/fp_candidates.sh ${names[*]}" "${summaries[@]}"
