#!/usr/bin/env bash
# The main job on the embedded default data: installs dependencies, builds, trains and evaluates
# a full-precision MobileNetV2 on Fashion-MNIST with a short schedule, and prints a results table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh -DPROFIT_BUILD_TESTS=OFF
./build/profit train --config recipes/demo_fp.yaml
