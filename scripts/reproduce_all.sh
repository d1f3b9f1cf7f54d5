#!/usr/bin/env bash
# Re-runs every experiment behind docs/results.md, in dependency order: the reference FP model
# first (every quantization result starts from it and uses it as the teacher), then PTQ, FAT,
# FAT vs full QAT, the PROFIT runs and the performance benchmarks. Every step resumes where it
# stopped, so the same command continues after an interruption. On 2 CPU cores this is days of
# compute; the per-step scripts can be run on their own. Finished runs are reused: after the
# reference model changes, delete runs/ptq, runs/fat, runs/fat_vs_qat and runs/*profit_* first.
# Usage: scripts/reproduce_all.sh [SEEDS...]   (PROFIT seeds, default 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
bash scripts/train_reference.sh
bash scripts/ptq_table.sh
bash scripts/fat_table.sh
bash scripts/fat_vs_qat.sh
bash scripts/profit_table.sh w4a4 w3a3 noprofit:w3a3 w2a2 -- "${seeds[@]}"
bash scripts/bench_table.sh
