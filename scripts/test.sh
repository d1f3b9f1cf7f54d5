#!/usr/bin/env bash
# Installs dependencies, builds everything and runs the test suite (ctest prints its summary).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh -DPROFIT_BUILD_TESTS=ON
cd build && ctest --output-on-failure -j"$(nproc)"
