#!/usr/bin/env bash
# Gathers what scripts/device_check.sh needs on a CUDA machine that has PyTorch, nvcc and CMake
# but none of our Debian packages and no network: the header/library packages, unpacked (not
# installed) into DIR/root, and Fashion-MNIST into DIR/fashion-mnist. Run it here (Debian 12,
# with network to Debian); copy or carry DIR to the CUDA machine.
# Usage: scripts/fetch_device_deps.sh [DIR]   (default .devdeps, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.devdeps}
# No OpenCV: its library closure is ~180 MB; the device build sets -DPROFIT_WITH_OPENCV=OFF.
packages=(libyaml-cpp-dev libyaml-cpp0.7 libcli11-dev nlohmann-json3-dev libgtest-dev
  libgmock-dev libbenchmark-dev libbenchmark1debian zlib1g-dev)
rm -rf "$dir"
mkdir -p "$dir/debs" "$dir/root"
(cd "$dir/debs" && apt-get download "${packages[@]}" >/dev/null)
for f in "$dir"/debs/*.deb; do dpkg-deb -x "$f" "$dir/root"; done
rm -rf "$dir/debs" "$dir/root/usr/share/doc" "$dir/root/usr/share/lintian"
cp -r /usr/share/datasets/fashion-mnist "$dir/fashion-mnist"
du -sh "$dir"
