#!/usr/bin/env bash
# The main job on the embedded default data: installs dependencies, builds, and quantizes the
# committed reference MobileNetV2 (Fashion-MNIST) to W4A4 with PROFIT on a short schedule, then
# prints FP vs quantized: top-1, model size and BOPS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh -DPROFIT_BUILD_TESTS=OFF
./build/profit quantize --recipe recipes/demo_profit_w4a4.yaml "$@"
