#!/usr/bin/env bash
# The CUDA path, end to end, on a machine with an NVIDIA GPU, nvcc, CMake and a CUDA PyTorch
# (2.x) but none of our Debian packages: builds profit against PyTorch's LibTorch with the CUDA
# fused kernels (OpenCV off), runs the whole test suite (the FusedCuda parity tests run there,
# skip elsewhere), times training steps on the GPU (FP vs W4A4 DuQ/LSQ/PACT, fused vs reference,
# torch.ao on the same GPU), and runs the demo quantization with --device cuda.
# DEPS comes from scripts/fetch_device_deps.sh (run where Debian's apt works).
# Usage: scripts/device_check.sh DEPS OUT [STAGES]   (STAGES: comma list of build,test,bench,demo,
#        fp_models,profit; default build,test,bench,demo). Writes OUT/device_check.log and the
#        benchmark JSONs.
# The fp_models stage trains the FP MobileNetV1 and V3-Large (scripts/train_fp_models.sh's
# recipes) on the GPU into runs/fp_mobilenet_{v1,v3_large}_fmnist, publishes each finished one
# to models/fp_mobilenet_M_fmnist and packs both (weights included, checkpoints not) into
# OUT/fp_models.tar.gz: unpack it at the repository root (commit models/), then
# `scripts/train_fp_models.sh` takes them as finished and only writes their table; the V1 /
# V3-Large PROFIT recipes can then run here, or in the same call's profit stage with their names
# in PROFIT_SPECS.
# The profit stage runs PROFIT recipes on the GPU, several at once (PROFIT_SPECS, default the
# MobileNetV2 matrix of docs/results.md x seeds 1 2 3; PROFIT_JOBS at a time, default 6; each run
# bounded by PROFIT_TIMEOUT s) and packs the run folders without weights and checkpoints into
# OUT/profit_runs.tar.gz; unpack it under runs/cuda and run
# `PROFIT_RUNS=runs/cuda scripts/profit_table.sh SPEC... -- SEEDS...` to write the table.
set -uo pipefail
cd "$(dirname "$0")/.."
deps=$(realpath "${1:?deps folder}")
out=$(mkdir -p "${2:?output folder}" && realpath "$2")
stages=",${3:-build,test,bench,demo},"
log=$out/device_check.log
py=$(command -v python3)
build=build-cuda
export LD_LIBRARY_PATH=$deps/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
step() {  # step NAME CMD...: runs, logs, records the exit status, never stops the script
  local name=$1
  shift
  echo "=== $name: $* ($(date +%T))" | tee -a "$log"
  local t0=$SECONDS
  "$@" >>"$log" 2>&1
  local rc=$?
  echo "=== $name: rc $rc in $((SECONDS - t0)) s" | tee -a "$log"
  return $rc
}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nproc
  $py -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  nvcc --version | tail -1
  cmake --version | head -1
} >>"$log" 2>&1
if [[ $stages == *,build,* ]]; then
  prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')
  step configure cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix;$deps/root/usr" -DZLIB_ROOT="$deps/root/usr" \
    -DPROFIT_WITH_OPENCV=OFF -DPROFIT_CUDA=on -DPROFIT_BUILD_BENCH=ON \
    -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DCMAKE_CUDA_ARCHITECTURES=native \
    -DPROFIT_DEBIAN_PYTHON="$py" || exit 1
  step build ninja -C $build profit profit_tests profit_parity_tests profit_step_bench || exit 1
fi
if [[ $stages == *,test,* ]]; then
  step cuda_tests ./$build/tests/profit_tests --gtest_filter='FusedCuda*'
  step ctest ctest --test-dir $build -j 12 --output-on-failure --timeout 300
  tail -n 4 "$log" | head -n 3
fi
if [[ $stages == *,bench,* ]]; then
  common=(--width 1.0 --bits 4 --device cuda)
  step bench_b64 ./$build/bench/profit_step_bench "${common[@]}" --batch 64 --size 32 \
    --rounds 5 --steps 5 --json "$out/steps_cuda_b64_32.json"
  step ao_b64 $py bench/torch_ao_step.py "${common[@]}" --batch 64 --size 32 --rounds 5 \
    --steps 5 --json "$out/ao_cuda_b64_32.json"
  # ImageNet-sized inputs, fewer variants; bounded so that the demo still runs in one call.
  step bench_b128 timeout 240 ./$build/bench/profit_step_bench "${common[@]}" --batch 128 \
    --size 224 --rounds 2 --steps 2 --only duq/per_tensor,lsq/per_tensor,pact/per_tensor \
    --json "$out/steps_cuda_b128_224.json"
  step ao_b128 timeout 120 $py bench/torch_ao_step.py "${common[@]}" --batch 128 --size 224 \
    --rounds 2 --steps 2 --json "$out/ao_cuda_b128_224.json"
  grep -h -A20 "^variant" "$log" | tail -n 60
fi
if [[ $stages == *,fp_models,* ]]; then
  # The FP MobileNetV1 / V3-Large of scripts/train_fp_models.sh, both at once, into the run
  # folders their PROFIT recipes start from (so a following profit stage can run those recipes).
  fp_one() {  # fp_one MODEL
    local run=runs/fp_mobilenet_$1_fmnist
    ./$build/profit train --config "recipes/fp_mobilenet_$1_fashion_mnist.yaml" --device cuda \
      --data-root "$deps/fashion-mnist" --out "$run" --resume true \
      --summary-json "$run/summary.json" --progress false >"$run.log" 2>&1
    local rc=$?
    # Published where the PROFIT recipes start from (models/).
    if [ $rc -eq 0 ]; then scripts/publish_fp_model.sh "$1"; fi
    echo "fp_mobilenet_$1_fmnist: rc $rc"
  }
  export -f fp_one
  export build deps
  mkdir -p runs
  step fp_models bash -c 'printf "%s\n" v1 v3_large | xargs -P 2 -L 1 bash -c "fp_one \$0"'
  tar -czf "$out/fp_models.tar.gz" --ignore-failed-read --exclude='*.ckpt' \
    runs/fp_mobilenet_v1_fmnist runs/fp_mobilenet_v3_large_fmnist \
    runs/fp_mobilenet_v1_fmnist.log runs/fp_mobilenet_v3_large_fmnist.log \
    models/fp_mobilenet_v1_fmnist models/fp_mobilenet_v3_large_fmnist
  grep -h "rc " "$log" | tail -n 4
fi
if [[ $stages == *,profit,* ]]; then
  specs=${PROFIT_SPECS:-"w4a4@1,2,3 w4a4_nostab@1,2,3 w3a3@1,2,3 noprofit:w3a3@1,2,3 w2a2@1,2,3"}
  jobs=()
  source scripts/profit_spec.sh
  for spec in $specs; do
    profit_spec "$spec" || exit 1
    [ ${#spec_seeds[@]} -gt 0 ] || spec_seeds=(1)
    for seed in "${spec_seeds[@]}"; do jobs+=("$spec_recipe ${spec_name}_s$seed $seed"); done
  done
  mkdir -p runs/cuda
  run_one() {  # run_one RECIPE NAME SEED
    timeout "${PROFIT_TIMEOUT:-420}" ./$build/profit quantize --recipe "$1" --seed "$3" \
      --device cuda --data-root "$deps/fashion-mnist" --out "runs/cuda/$2" --progress false \
      >"runs/cuda/$2.log" 2>&1
    echo "$2: rc $?"
  }
  export -f run_one
  export build deps
  step profit_runs bash -c 'printf "%s\n" "$@" | xargs -P "${PROFIT_JOBS:-6}" -L 1 bash -c \
    "run_one \$0 \$1 \$2"' _ "${jobs[@]}"
  tar -czf "$out/profit_runs.tar.gz" -C runs/cuda --exclude='*.ckpt' --exclude='*.safetensors' .
  grep -h "rc " "$log" | tail -n 20
fi
if [[ $stages == *,demo,* ]]; then
  step demo ./$build/profit quantize --recipe recipes/demo_profit_w4a4.yaml --device cuda \
    --data-root "$deps/fashion-mnist" --out runs/device_demo --progress false
  cp runs/device_demo/summary.json "$out/demo_summary.json" 2>/dev/null
  tail -n 25 "$log"
fi
