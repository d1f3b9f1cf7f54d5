#!/usr/bin/env bash
# Re-runs every experiment behind docs/results.md, in dependency order: the reference FP model
# first (every quantization result starts from it and uses it as the teacher), then PTQ, FAT,
# FAT vs full QAT, the PROFIT runs on MobileNetV2, the FP MobileNetV1 / V3-Large and the PROFIT
# runs on them (the second profit_table.sh reuses the finished V2 runs and completes the table),
# and the performance benchmarks. Every step resumes where it stopped, so the same command
# continues after an interruption. On 2 CPU cores this is days of compute; the per-step scripts
# can be run on their own. Finished runs are reused: after the reference model changes, delete
# runs/ptq, runs/fat, runs/fat_vs_qat, runs/profit_w* and runs/noprofit_* first.
# Usage: scripts/reproduce_all.sh [SEEDS...]   (PROFIT seeds, default 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
bash scripts/train_reference.sh
bash scripts/ptq_table.sh
bash scripts/fat_table.sh
bash scripts/fat_table.sh --factors
bash scripts/fat_vs_qat.sh
# The W4A4 variants tried for the missed W4A4 goal run with seed 1 only; the _refit recipes
# (weight clips refit at each weight-width change, beyond the paper) with every seed.
v2=(w4a4 w4a4_nostab w3a3 noprofit:w3a3 w2a2 w4a4_refit w3a3_refit w2a2_refit w4a4_init999@1
  w4a4_steplr@1 w4a4_ft4@1 w4a4_a854@1 w4a4_qlr1@1)
# One seed of every configuration first, then the next seed of each: an interrupted
# reproduction still has every row (the table is rewritten after each pass; finished runs are
# taken as they are).
for ((k = 1; k <= ${#seeds[@]}; ++k)); do
  bash scripts/profit_table.sh "${v2[@]}" -- "${seeds[@]:0:k}"
done
bash scripts/train_fp_models.sh
bash scripts/ptq_init_quantile.sh models/fp_mobilenet_v2_fmnist models/fp_mobilenet_v1_fmnist \
  models/fp_mobilenet_v3_large_fmnist
bash scripts/profit_table.sh "${v2[@]}" profit_mobilenet_v1_fmnist_w4a4@1 \
  profit_mobilenet_v3_large_fmnist_w4a4@1 profit_mobilenet_v3_large_fmnist_w3a3 \
  profit_mobilenet_v3_large_fmnist_w3a3_pact profit_mobilenet_v3_large_fmnist_w3a3_lsq \
  profit_mobilenet_v3_large_fmnist_w4a4_init999@1 profit_mobilenet_v3_large_fmnist_w3a3_init999@1 \
  profit_mobilenet_v3_large_fmnist_w3a3_learnoffset@1 \
  profit_mobilenet_v3_large_fmnist_w3a3_pact_shift@1 profit_mobilenet_v3_large_fmnist_w3a3_pact_decay@1 \
  -- "${seeds[@]}"
bash scripts/bench_table.sh
