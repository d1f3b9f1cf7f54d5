#!/usr/bin/env bash
# Performance of quantization-aware training (issue "Performance"): per-quantizer kernel
# throughput (fused vs reference), whole MobileNetV2 training steps FP vs W4A4 (DuQ, LSQ, PACT;
# per tensor and per channel; AIWQ sampling), torch.ao's eager QAT on the same model and
# LibTorch (Debian python3-torch), and an operator profile of the FP vs DuQ step. Writes the
# ratios into docs/results.md (section "performance"). Run it on an otherwise idle machine.
# Usage: scripts/bench_table.sh [RUNS]   (default 6 alternations of the C++ and Python step
#        benchmarks, 3 ABBA rounds each)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-6}
out=runs/bench
mkdir -p "$out/profile"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPROFIT_BUILD_BENCH=ON >/dev/null
ninja -C build profit_bench profit_step_bench >/dev/null
py=/usr/bin/python3
shape=(--batch 64 --size 32 --width 1.0 --bits 4 --threads 2)
run() { echo "+ $*" >&2; "$@"; }
run ./build/bench/profit_bench --benchmark_filter=Quant --benchmark_min_time=1 \
  --benchmark_format=json --benchmark_out="$out/kernels.json" --benchmark_out_format=json >/dev/null
# C++ and Python step benchmarks alternate in short runs, so that the machine's slow speed
# changes hit both alike; each program times its variants in ABBA pairs against its own FP model.
rm -f "$out"/steps_*.json "$out"/ao_*.json
for k in $(seq "$runs"); do
  run ./build/bench/profit_step_bench "${shape[@]}" --rounds 3 --steps 1 --json "$out/steps_$k.json"
  run $py bench/torch_ao_step.py "${shape[@]}" --rounds 3 --steps 1 --json "$out/ao_$k.json"
done
run ./build/bench/profit_step_bench "${shape[@]}" --rounds 1 --steps 3 --only duq/per_tensor \
  --profile "$out/profile" >/dev/null
$py scripts/write_bench.py "scripts/bench_table.sh $*" "$out"
