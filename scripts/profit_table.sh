#!/usr/bin/env bash
# PROFIT runs for docs/results.md: runs the given recipes for the given seeds (resuming any run
# that was interrupted; finished runs are taken as they are), draws the training curves and the
# AIWQ chart of each run, and writes the table into docs/results.md.
# Usage: scripts/profit_table.sh [SPEC...] [-- SEEDS...]     default: w4a4, seed 1
#   SPEC: w4a4 | w3a3 | w2a2 (MobileNetV2 from models/fp_mobilenet_v2_fmnist:
#         recipes/profit_mobilenet_v2_fmnist_SPEC.yaml, runs/profit_SPEC_sSEED)
#         or noprofit:w3a3 (the ablation without PROFIT at equal epochs:
#         recipes/noprofit_mobilenet_v2_fmnist_w3a3.yaml, runs/noprofit_w3a3_sSEED)
#         or any recipe name, e.g. profit_mobilenet_v1_fmnist_w4a4 (recipes/NAME.yaml,
#         runs/NAME_sSEED; the V1 / V3-Large recipes need scripts/train_fp_models.sh first)
#         (w4a4_nostab: recipes/profit_mobilenet_v2_fmnist_w4a4_nostab.yaml, no BN-stabilize phases)
#         (w4a4_init999: the same with DuQ activation clips initialised at the 0.999 quantile;
#          w4a4_steplr: learning-rate curve updated every step; w4a4_ft4: 4-epoch fine-tune phases;
#          w4a4_a854: activations 8 -> 5 -> 4 bit; w4a4_qlr1: quantizer parameters at 1 x lr)
#   SPEC@S1,S2: that spec with its own seeds instead of the common ones
#   (the mapping lives in scripts/profit_spec.sh, shared with device_check.sh)
#   e.g. scripts/profit_table.sh w4a4 w3a3 noprofit:w3a3 -- 1 2 3
#   PROFIT_JOBS=N: N runs at a time, each with nproc/N intra-op threads (logs in RUN.log)
#   PROFIT_RUNS=DIR: run folders under DIR instead of runs/ (e.g. runs/cuda, unpacked from the
#   GPU runs of scripts/device_check.sh's profit stage)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${PROFIT_RUNS:-runs}
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
source scripts/profit_spec.sh
# Each finished run's summary, policy, phase list, AIWQ table, weight-clip table and step
# metrics (gzip) are copied into the repository (docs/data/RUNS/...: about 30 kB a run;
# PROFIT_RUNS must be relative), so that the tables can be written again when the run folders
# are gone (a new machine): the table is written from the archived copies.
archive=docs/data
outs=() todo=()
for spec in "${bits[@]}"; do
  profit_spec "$spec"
  [ ${#spec_seeds[@]} -gt 0 ] || spec_seeds=("${seeds[@]}")
  for s in "${spec_seeds[@]}"; do
    out=$runs/${spec_name}_s${s}
    outs+=("$out")
    # A finished run (it has its summary, here or in the committed archive) is used as it is;
    # an unfinished one resumes.
    if [ ! -f "$out/summary.json" ] && [ ! -f "$archive/$out/summary.json" ]; then
      todo+=("$spec_recipe $s $out")
    fi
  done
done
quantize() {  # quantize RECIPE SEED OUT
  ./build/profit quantize --recipe "$1" --seed "$2" --out "$3" --resume true --progress false
}
parallel=${PROFIT_JOBS:-1}
if [ "$parallel" -le 1 ]; then
  for t in "${todo[@]}"; do quantize $t; done
elif [ ${#todo[@]} -gt 0 ]; then
  # Several runs at once, each with an equal share of the cores (small models train more steps
  # per second in total that way than one run on all cores); each run logs to OUT.log.
  export OMP_NUM_THREADS=$(( $(nproc) / parallel > 0 ? $(nproc) / parallel : 1 ))
  export -f quantize
  printf '%s\n' "${todo[@]}" | xargs -P "$parallel" -L 1 bash -c 'quantize "$0" "$1" "$2" > "$2.log" 2>&1 || { echo "$2: failed, see $2.log" >&2; exit 1; }'
fi
summaries=()
for out in "${outs[@]}"; do
  img=$(/usr/bin/python3 scripts/write_results.py image-stem "$out")  # e.g. cuda_profit_w4a4_s1
  if [ -f "$out/summary.json" ]; then
    # Runs without an AIWQ sampling phase (noprofit_*) have no ranking to draw.
    if [ -f "$out/aiwq.json" ]; then
      ./build/profit aiwq --run "$out" --svg "docs/img/${img}_aiwq.svg" > "$out/aiwq.txt"
    fi
    /usr/bin/python3 scripts/plot_profit.py "$out" "docs/img/${img}_curves.svg"
    # Where the DuQ weight clips sit on the final weights, per layer (the W2A2 reading quotes
    # it); the weights themselves (MBs) are not archived.
    # Recomputed only when the weights or the script are newer (it reads every weight: ~2 s).
    grid=$out/weight_grid.txt
    if grep -q '^method: duq$' "$out/policy.yaml" &&
      { [ ! "$grid" -nt "$out/final.safetensors" ] || [ ! "$grid" -nt scripts/weight_grid.py ]; }; then
      /usr/bin/python3 scripts/weight_grid.py "$out" --bits 8,4,3,2 --layers > "$grid.tmp" &&
        mv "$grid.tmp" "$grid"
    fi
    mkdir -p "$archive/$out"
    for f in summary.json policy.yaml phases.json aiwq.txt weight_grid.txt; do
      [ ! -f "$out/$f" ] || cp "$out/$f" "$archive/$out/$f"
    done
    gzip -9 -n -c "$out/metrics.jsonl" > "$archive/$out/metrics.jsonl.gz"
  else
    echo "$out: run folder gone, using its archived summary in $archive/$out" >&2
  fi
  summaries+=("$archive/$out/summary.json")
done
/usr/bin/python3 scripts/write_results.py profit "scripts/profit_table.sh $*" "${summaries[@]}"
