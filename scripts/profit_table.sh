#!/usr/bin/env bash
# PROFIT on the reference MobileNetV2 (models/fp_mobilenet_v2_fmnist): runs the Fashion-MNIST
# recipes for the given bit widths and seeds (resuming any run that was interrupted), draws the
# training curves and the AIWQ chart of each run, and writes the table into docs/results.md.
# Usage: scripts/profit_table.sh [BITS...] [-- SEEDS...]     default: w4a4, seed 1
#   BITS: w4a4 | w3a3 | w2a2 (recipes/profit_mobilenet_v2_fmnist_BITS.yaml, runs/profit_BITS_sSEED)
#         or noprofit:w3a3 (the ablation without PROFIT at equal epochs:
#         recipes/noprofit_mobilenet_v2_fmnist_w3a3.yaml, runs/noprofit_w3a3_sSEED)
#   e.g. scripts/profit_table.sh w4a4 w3a3 noprofit:w3a3 -- 1 2 3
set -euo pipefail
cd "$(dirname "$0")/.."
bits=() seeds=()
target=bits
for a in "$@"; do
  if [ "$a" = "--" ]; then target=seeds; continue; fi
  if [ $target = bits ]; then bits+=("$a"); else seeds+=("$a"); fi
done
[ ${#bits[@]} -gt 0 ] || bits=(w4a4)
[ ${#seeds[@]} -gt 0 ] || seeds=(1)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build profit >/dev/null
mkdir -p docs/img
summaries=()
for spec in "${bits[@]}"; do
  kind=profit b=$spec
  if [[ $spec == *:* ]]; then kind=${spec%%:*} b=${spec#*:}; fi
  for s in "${seeds[@]}"; do
    out=runs/${kind}_${b}_s${s}
    ./build/profit quantize --recipe recipes/${kind}_mobilenet_v2_fmnist_${b}.yaml --seed "$s" \
      --out "$out" --resume true --progress false
    ./build/profit aiwq --run "$out" --svg "docs/img/$(basename "$out")_aiwq.svg" > "$out/aiwq.txt"
    /usr/bin/python3 scripts/plot_profit.py "$out" "docs/img/$(basename "$out")_curves.svg"
    summaries+=("$out/summary.json")
  done
done
/usr/bin/python3 scripts/write_results.py profit "scripts/profit_table.sh $*" "${summaries[@]}"
