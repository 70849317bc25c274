#!/usr/bin/env bash
# Install saec's build and test dependencies from Debian/Ubuntu packages.
#   cmake/install-deps.sh           build + test dependencies
#   cmake/install-deps.sh --bench   the same (PyTorch is now a test dependency: the MoE-MAE parity)
# The CUDA Toolkit (nvcc, cuBLAS, NCCL) is not installed here: use NVIDIA's packages or a CUDA
# devel image; without it saec builds its CPU backend only.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PACKAGES=(build-essential cmake ninja-build pkg-config
          libhdf5-dev libopenblas-openmp-dev libcjson-dev liblinear-dev libopenmpi-dev openmpi-bin
          libgdal-dev zlib1g-dev
          python3 python3-numpy python3-h5py python3-matplotlib
          python3-torch  # benchmarks/peers/moe_mae_torch.py: the MoE-MAE parity tests (cpu)
          clang)  # clang: the fuzz tier (fuzz/run_fuzzers.sh), with libFuzzer below
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# libFuzzer (libclang_rt.fuzzer-x86_64.a): Debian 12 ships it in libclang-rt-14-dev (meta
# package libclang-rt-dev), which clang only recommends; where there is no such package it comes
# with clang. fuzz/run_fuzzers.sh checks, and reports SKIPPED without it.
if apt-cache show libclang-rt-dev >/dev/null 2>&1; then PACKAGES+=(libclang-rt-dev); fi
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
