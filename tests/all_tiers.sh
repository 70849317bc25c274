#!/usr/bin/env bash
# Every test tier, as CI runs them (the README's test line), with each tier's time at the end.
#   1. cpu      the default build (-DSAEC_WERROR=ON; nvcc compiles the CUDA backend when found)
#               and its whole ctest suite: cpu, mpi; gpu tests run only on a machine with a GPU
#   2. cpu-asan the CPU build with AddressSanitizer+UBSan, RelWithDebInfo: ctest -L 'cpu|mpi'
#               (leak checks off, as in emu-asan; any other report fails). No CUDA backend: the
#               cpu tests do not run it, nvcc would add about a minute of build, and its host code
#               runs under ASan in emu-asan. The two MoE-MAE PyTorch tests are left out: the
#               peer's own test runs no C, and the parity dump (the full network, 100 steps) is
#               minutes under ASan while test_moe_mae_net and test_moe_mae_train run the same
#               network code under it
#   3. fuzz     fuzz/run_fuzzers.sh 30: each libFuzzer harness (fuzz/fuzz_*.c: safetensors
#               header, config JSON, HDF5 dataset checks) 30 s from its committed corpus, which
#               replays every earlier crash first; built with clang in build-fuzz. Without clang
#               or libFuzzer it reports SKIPPED, loudly
#   4. emu      the CUDA backend on the emulated GPU (-DSAEC_CUDA=EMU, tests/simt): ctest -L gpu in
#               forward thread and block order, with the shared-memory race check, products
#               contracted into FMA as nvcc does (where the CPU has FMA)
#   5. emu-rev  the same build and label: reversed threads, shuffled blocks, and cuBLASLt
#               answering "no algorithm" so the fallback GEMM path runs; without test_dp_gpu,
#               whose kernels test_cuda_train already runs in this order (it adds only the NCCL
#               stand-in, which thread order does not touch, and 3 minutes)
#   6. emu-asan the emulated GPU built with AddressSanitizer+UBSan and without FMA contraction:
#               ctest -L gpu
# The emulated tiers need the CUDA Toolkit's headers (not its GPU): without them they report
# SKIPPED, loudly.
# The emulated tiers prove correctness, never speed. Build folders: build, build-asan,
# build-fuzz, build-emu, build-emu-asan. Every tier runs even when an earlier one failed; the exit
# status is 1 if any failed.
#
#   tests/all_tiers.sh            all tiers
#   tests/all_tiers.sh cpu emu    only those
set -uo pipefail
cd "$(dirname "$0")/.."
TIERS=("$@")
[ ${#TIERS[@]} -eq 0 ] && TIERS=(cpu cpu-asan fuzz emu emu-rev emu-asan)
JOBS=$(nproc 2>/dev/null || echo 2)
declare -a SUMMARY
FAILED=0

build() { # build DIR cmake-args...
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DSAEC_WERROR=ON "$@" && cmake --build "$dir"
}

CUDA_HEADERS=0
for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
  [ -n "$d" ] && [ -f "$d/include/cublasLt.h" ] && CUDA_HEADERS=1
done

run_tier() {
  local tier=$1 start=$SECONDS rc
  echo "=== tier $tier ==="
  if [[ $tier == emu* ]] && [ $CUDA_HEADERS = 0 ]; then
    echo "SKIPPED: no CUDA Toolkit headers (set CUDA_HOME); the CUDA backend was not tested"
    SUMMARY+=("$(printf '%-9s SKIPPED (no CUDA Toolkit headers)' "$tier")")
    return
  fi
  case $tier in
    cpu) build build && ctest --test-dir build --output-on-failure ;;
    cpu-asan) build build-asan -DSAEC_CUDA=OFF -DSAEC_SANITIZE=address,undefined \
                -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
              ASAN_OPTIONS=detect_leaks=0 ctest --test-dir build-asan -L 'cpu|mpi' -E '^test_moe_mae_(torch_peer|parity)$' --output-on-failure ;;
    fuzz) fuzz/run_fuzzers.sh 30
          rc=$?
          if [ $rc -eq 77 ]; then
            echo "SKIPPED: no clang or libFuzzer (cmake/install-deps.sh installs them); nothing was fuzzed"
            SUMMARY+=("$(printf '%-9s SKIPPED (no clang or libFuzzer)' "$tier")")
            return
          fi
          (exit $rc) ;;
    emu) build build-emu -DSAEC_CUDA=EMU -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
         ctest --test-dir build-emu -L gpu --output-on-failure ;;
    emu-rev) build build-emu -DSAEC_CUDA=EMU -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
             SAEC_SIMT_THREAD_ORDER=reverse SAEC_SIMT_BLOCK_ORDER=shuffle SAEC_SIMT_LT_NOALGO=1 \
               ctest --test-dir build-emu -L gpu -E '^test_dp_gpu$' --output-on-failure ;;
    emu-asan) build build-emu-asan -DSAEC_CUDA=EMU -DSAEC_SANITIZE=address,undefined \
                -DSAEC_SIMT_FMA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
              ASAN_OPTIONS=detect_leaks=0 ctest --test-dir build-emu-asan -L gpu --output-on-failure ;;
    *) echo "unknown tier '$tier' (cpu, cpu-asan, fuzz, emu, emu-rev, emu-asan)" >&2; return 2 ;;
  esac
  rc=$?
  local t=$((SECONDS - start))
  SUMMARY+=("$(printf '%-9s %s  %3dm%02ds' "$tier" "$([ $rc -eq 0 ] && echo pass || echo FAIL)" $((t / 60)) $((t % 60)))")
  [ $rc -eq 0 ] || FAILED=1
}

for t in "${TIERS[@]}"; do run_tier "$t"; done
echo "=== tiers ($JOBS cores) ==="
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
