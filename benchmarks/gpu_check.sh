#!/usr/bin/env bash
# The GPU check of saec, in one script: the gpu test suite (ctest -L gpu), the same tests under
# compute-sanitizer (memcheck, racecheck), the op benchmark (bench_ops → JSON) and the machine's
# nvidia-smi record. Results land in $OUT (default ./gpu_check_out), at most 7 files:
#   summary.txt  nvidia-smi.txt  tests.log  memcheck.log  racecheck.log  bench_ops.log  bench_ops.json
#
# usage (on the GPU machine):   benchmarks/gpu_check.sh [BUILD_DIR]          (default build-cuda)
#        (here, before a run):  benchmarks/gpu_check.sh --pack BUILD_DIR PACK_DIR
#
# The GPU machine has nvcc, cmake and ninja but no HDF5, OpenBLAS or cJSON, so saec is normally
# built here and carried. --pack copies what the check needs out of a CUDA build (the test and
# bench executables, the CTest files, and the non-system shared libraries they load) into
# PACK_DIR; name PACK_DIR in the device tool's `carry` (a path that .gitignore ignores, e.g.
# build-carry) and run `benchmarks/gpu_check.sh build-carry` there:
#   cmake --build build-cuda --target test_gpu_ops bench_ops
#   benchmarks/gpu_check.sh --pack build-cuda build-carry
# When BUILD_DIR holds no test binary, the script tries to configure and build one in place
# (needs the host dependencies; on the GPU machine that fails and says so in tests.log).
#
# Environment: OUT (results folder), SAEC_GIT_COMMIT (recorded in bench_ops.json; default: git),
# GPU_CHECK_STAGES (default "test memcheck racecheck bench"), GPU_CHECK_TIMEOUT (seconds per
# stage, default 540). The sanitizer stages run the tests with SAEC_GPU_TEST_QUICK=1 (no m = 1M
# top-k, no SAE-sized outer product) to stay within the time limits.
set -u
set -o pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ---- --pack: run here, on the build machine ----------------------------------------------------
if [ "${1:-}" = "--pack" ]; then
    build=${2:?usage: gpu_check.sh --pack BUILD_DIR PACK_DIR}
    pack=${3:?usage: gpu_check.sh --pack BUILD_DIR PACK_DIR}
    build=$(cd "$build" && pwd) || exit 2
    [ -x "$build/tests/test_gpu_ops" ] || { echo "no $build/tests/test_gpu_ops: build it first" >&2; exit 2; }
    rm -rf "$pack"
    mkdir -p "$pack/tests" "$pack/carried-libs"
    cp "$build/tests/test_gpu_ops" "$pack/tests/"
    [ -x "$build/bench_ops" ] && cp "$build/bench_ops" "$pack/"
    cp "$build/CMakeCache.txt" "$pack/" 2>/dev/null
    cp "$build/CTestTestfile.cmake" "$pack/" 2>/dev/null
    cp "$build/tests/CTestTestfile.cmake" "$pack/tests/" 2>/dev/null
    # shared libraries outside the C runtime and the CUDA toolkit (the GPU machine has both)
    for exe in "$pack/tests/test_gpu_ops" "$pack/bench_ops"; do
        [ -x "$exe" ] || continue
        ldd "$exe" | awk '/=> \// {print $3}' | while read -r lib; do
            case $(basename "$lib") in
            libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | ld-linux* | \
                libstdc++.so* | libgcc_s.so* | libcuda.so* | libcudart.so* | libcublas*.so* | \
                libnvidia*) ;;
            *) cp -Lu "$lib" "$pack/carried-libs/" ;;
            esac
        done
    done
    echo "packed into $pack ($(du -sh "$pack" | cut -f1)); build dir of record: $build"
    exit 0
fi

# ---- the check: run on the GPU machine ---------------------------------------------------------
build_arg=${1:-build-cuda}
mkdir -p "$build_arg"
build=$(cd "$build_arg" && pwd)
out=${OUT:-$PWD/gpu_check_out}
mkdir -p "$out"
stages=${GPU_CHECK_STAGES:-test memcheck racecheck bench}
limit=${GPU_CHECK_TIMEOUT:-540}
summary="$out/summary.txt"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }
has_stage() { case " $stages " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

commit=${SAEC_GIT_COMMIT:-$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)}
note "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $commit build $build"

{
    nvidia-smi
    echo
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv
    echo
    nvcc --version
} >"$out/nvidia-smi.txt" 2>&1 || note "nvidia-smi or nvcc failed (see nvidia-smi.txt)"

# libraries carried with a packed build, then the CUDA toolkit's
for d in "$build/carried-libs" /usr/local/cuda/lib64 /usr/local/cuda/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done

tests_log="$out/tests.log"
: >"$tests_log"

# No test binary: try to build one here.
if [ ! -x "$build/tests/test_gpu_ops" ]; then
    note "no test binary in $build: configuring and building (log in tests.log)"
    if ! { cmake -S "$repo" -B "$build" -G Ninja -DSAEC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 &&
        cmake --build "$build" -j"$(nproc)" --target test_gpu_ops &&
        { cmake --build "$build" -j"$(nproc)" --target bench_ops || true; }; } >>"$tests_log" 2>&1; then
        note "build FAILED (HDF5/OpenBLAS/cJSON are not on GPU machines: build here and --pack)"
    fi
fi

# A build made elsewhere names its own absolute paths in the CTest files: point them here when
# that path does not exist on this machine.
if [ -f "$build/CMakeCache.txt" ]; then
    orig_build=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$build/CMakeCache.txt")
    if [ -n "$orig_build" ] && [ "$orig_build" != "$build" ] && [ ! -e "$orig_build" ]; then
        mkdir -p "$(dirname "$orig_build")" && ln -s "$build" "$orig_build" &&
            note "linked $orig_build -> $build for ctest"
    fi
fi

run_stage() { # name log command...: runs under the stage time limit, records the exit status
    local name=$1 log=$2
    shift 2
    local t0=$SECONDS rc
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    local verdict=PASS
    [ $rc -eq 0 ] || verdict="FAIL (rc $rc)"
    [ $rc -eq 77 ] && verdict="SKIPPED (rc 77)"
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && verdict="TIMEOUT after ${limit}s"
    note "$name: $verdict in $((SECONDS - t0))s"
    return $rc
}

test_exe="$build/tests/test_gpu_ops"
if has_stage test; then
    echo "==== ctest -L gpu --output-on-failure" >>"$tests_log"
    (cd "$build" && run_stage "ctest -L gpu" "$tests_log" ctest -L gpu --output-on-failure)
    echo "==== $test_exe (direct)" >>"$tests_log"
    [ -x "$test_exe" ] && run_stage "test_gpu_ops" "$tests_log" "$test_exe"
fi

for tool in memcheck racecheck; do
    has_stage "$tool" || continue
    log="$out/$tool.log"
    : >"$log"
    if ! command -v compute-sanitizer >/dev/null 2>&1; then
        note "$tool: SKIPPED (no compute-sanitizer)"
        continue
    fi
    extra=""
    [ "$tool" = memcheck ] && extra="--leak-check full"
    # shellcheck disable=SC2086 # $extra is two words or none
    run_stage "compute-sanitizer --tool $tool" "$log" env SAEC_GPU_TEST_QUICK=1 \
        compute-sanitizer --tool "$tool" $extra --error-exitcode 86 "$test_exe"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY|Device not supported" "$log" | head -5 >>"$summary"
done

if has_stage bench; then
    bench="$build/bench_ops"
    if [ -x "$bench" ]; then
        run_stage "bench_ops" "$out/bench_ops.log" "$bench" "$out/bench_ops.json" "$commit"
    else
        note "bench_ops: SKIPPED (no $bench; add benchmarks/ to the build)"
    fi
fi

note "results in $out: $(cd "$out" && ls | tr '\n' ' ')"
grep -q "FAIL\|TIMEOUT" "$summary" && exit 1
exit 0
