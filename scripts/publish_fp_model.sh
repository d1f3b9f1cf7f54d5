#!/usr/bin/env bash
# Publishes a finished FP model run to where the PROFIT recipes start from:
# runs/fp_mobilenet_M_fmnist/{config.json,final.safetensors,summary.json} -> models/fp_mobilenet_M_fmnist/
# (committed, like the MobileNetV2 reference), and the run's per-step/epoch metrics to
# docs/data/runs/fp_mobilenet_M_fmnist/metrics.jsonl.gz (what docs/results.md reads its
# per-epoch figures from). Used by train_fp_models.sh and device_check.sh.
# Usage: scripts/publish_fp_model.sh M      (M: v1 or v3_large)
set -euo pipefail
cd "$(dirname "$0")/.."
run=runs/fp_mobilenet_$1_fmnist model=models/fp_mobilenet_$1_fmnist
files=(config.json final.safetensors summary.json)
for f in "${files[@]}"; do
  [ -f "$run/$f" ] || { echo "publish_fp_model: $run/$f missing (run not finished)" >&2; exit 1; }
done
mkdir -p "$model"
for f in "${files[@]}"; do cp "$run/$f" "$model/"; done
if [ -f "$run/metrics.jsonl" ]; then
  mkdir -p "docs/data/$run"
  gzip -9 -n -c "$run/metrics.jsonl" > "docs/data/$run/metrics.jsonl.gz"
fi
echo "$model: published"
