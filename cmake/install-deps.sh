#!/usr/bin/env bash
# Install saec's build and test dependencies from Debian/Ubuntu packages.
#   cmake/install-deps.sh           build + test dependencies
#   cmake/install-deps.sh --bench   also PyTorch (the peer benchmarks)
# The CUDA Toolkit (nvcc, cuBLAS, NCCL) is not installed here: use NVIDIA's packages or a CUDA
# devel image; without it saec builds its CPU backend only.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PACKAGES=(build-essential cmake ninja-build pkg-config
          libhdf5-dev libopenblas-openmp-dev libcjson-dev libopenmpi-dev openmpi-bin
          python3 python3-numpy python3-h5py python3-matplotlib)
if [ "${1:-}" = "--bench" ]; then PACKAGES+=(python3-torch); fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
