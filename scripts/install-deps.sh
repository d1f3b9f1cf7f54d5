#!/usr/bin/env bash
# Installs every Debian package profit needs to build, test and run.
# Idempotent and non-interactive; run as root on Debian 12 (bookworm).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang-format
  libtorch-dev                 # LibTorch 1.13 (CPU)
  libcli11-dev                 # command-line parsing
  libyaml-cpp-dev              # recipes / policies
  nlohmann-json3-dev           # metrics, safetensors headers
  libgtest-dev libgmock-dev    # unit tests
  libbenchmark-dev             # bench/
  libopencv-imgcodecs-dev libopencv-imgproc-dev libopencv-core-dev  # image decode/resize
  zlib1g-dev                   # IDX .gz reading
  dataset-fashion-mnist        # the embedded default data
  python3-torch python3-torchvision  # test dependency: torchvision parity test
  python3-numpy
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
