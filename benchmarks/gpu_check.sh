#!/usr/bin/env bash
# The GPU check of saec, in one script: the gpu test suite (ctest -L gpu), the same tests under
# compute-sanitizer (memcheck, racecheck), the op benchmark (bench_ops → JSON), the end-to-end
# stage (the default `saec train` job on the GPU, then benchmarks/bench_train_gpu.sh: saec
# against the PyTorch TopK SAE peer at d=2304, k=64, batch 4096, m = 16384 and 65536) and the
# machine's nvidia-smi record.
#
# usage (on the GPU machine):   benchmarks/gpu_check.sh [BUILD_DIR]          (default build-cuda)
#        (here, before a run):  benchmarks/gpu_check.sh --pack BUILD_DIR PACK_DIR
#
# Results land in $OUT (default ./gpu_check_out). The device tool brings back at most 8 files, so
# the stages share logs; with every stage the folder holds at most 9 files, hence the two calls:
#   GPU_CHECK_STAGES="test bench e2e"   summary.txt nvidia-smi.txt gpu_check.log bench_ops.json
#                                       default_summary.json train_gpu_<gpu>_<date>.json .md (7)
#   GPU_CHECK_STAGES="memcheck racecheck"  summary.txt nvidia-smi.txt memcheck.log racecheck.log (4)
#
# The GPU machine has nvcc, cmake, ninja and PyTorch but no HDF5, OpenBLAS or cJSON, so saec is
# built here and carried. --pack copies what the check needs out of a CUDA build into PACK_DIR:
#   saec (a wrapper) + bin/saec, tests/test_gpu_ops, bench_ops, the CTest files,
#   carried-libs.tar.gz   every shared library they load that is not glibc, libstdc++/libgcc_s
#                         or CUDA's (HDF5 and its curl/ssl/krb5 chain, OpenBLAS, gfortran,
#                         quadmath, gomp, cJSON, sz/aec, zlib, zstd, ...); gzip keeps the pack
#                         under the tool's 64 MiB (about 33 MB in all instead of 71)
#   with-libs             `PACK/with-libs CMD ARGS` runs CMD with LD_LIBRARY_PATH = the carried
#                         libraries (unpacked once into ${TMPDIR:-/tmp}/saec-carried-libs-<id>),
#                         then CUDA's lib64, then the caller's LD_LIBRARY_PATH. Nothing else in
#                         the script sees those libraries: python3 (the peer) keeps its own.
#   pack.env              the commit (and whether the tree was dirty) the build was made from
# Name PACK_DIR in the device tool's `carry` (a path .gitignore ignores: build-carry) and run
# `benchmarks/gpu_check.sh build-carry` there:
#   cmake --build build-cuda --target saec test_gpu_ops bench_ops
#   benchmarks/gpu_check.sh --pack build-cuda build-carry
# --pack checks that every library the packed binaries load resolves to the pack or to the
# allowed system set, and runs `build-carry/saec --help` with only the pack on the library path.
# When BUILD_DIR holds no test binary, the script tries to configure and build one in place
# (needs the host dependencies; on the GPU machine that fails and says so in the log).
#
# Environment: OUT (results folder), SAEC_GIT_COMMIT (recorded in the results; default: the
# pack's pack.env, else git), GPU_CHECK_STAGES (default "test memcheck racecheck bench e2e"; run
# in the order named), GPU_CHECK_TIMEOUT (seconds per stage, default 540), GPU_CHECK_DEADLINE
# (seconds for the whole script, default 570: a stage gets at most what is left, so the summary
# is written before the device tool's 600 s limit), E2E_* (passed on to bench_train_gpu.sh
# without the prefix, e.g. E2E_STEPS=60), GPU_CHECK_E2E_DRY_RUN=1 (the e2e stage on the CPU at
# tiny sizes: tests this script's plumbing without a GPU; not a result; with it,
# GPU_CHECK_E2E_DEFAULT_ARGS="--steps 300" shortens the default job). The sanitizer stages
# run the tests with SAEC_GPU_TEST_QUICK=1 (no m = 1M top-k, no SAE-sized outer product) to stay
# within the time limits.
set -u
set -o pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ---- --pack: run here, on the build machine ----------------------------------------------------
# Libraries every Linux GPU machine has (glibc, the GCC runtime) or that come with CUDA. NCCL
# (218 MB, beyond the carry limit) is left to the GPU machine too: its CUDA prefix, or the
# nvidia-nccl wheel PyTorch brings, which the check finds and puts on the library path.
is_system_lib() {
    case $1 in
    linux-vdso.so* | ld-linux*.so* | libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | \
        librt.so.* | libresolv.so.* | libutil.so.* | libanl.so.* | libmvec.so.* | \
        libBrokenLocale.so.* | libstdc++.so.* | libgcc_s.so.* | libcuda.so* | libcudart.so* | \
        libcublas.so* | libcublasLt.so* | libnccl.so* | libnvidia*) return 0 ;;
    *) return 1 ;;
    esac
}

if [ "${1:-}" = "--pack" ]; then
    build=${2:?usage: gpu_check.sh --pack BUILD_DIR PACK_DIR}
    pack=${3:?usage: gpu_check.sh --pack BUILD_DIR PACK_DIR}
    build=$(cd "$build" && pwd) || exit 2
    [ -x "$build/tests/test_gpu_ops" ] || { echo "no $build/tests/test_gpu_ops: build it first" >&2; exit 2; }
    [ -x "$build/saec" ] || { echo "no $build/saec: build it first" >&2; exit 2; }
    ldd "$build/saec" | grep -q libcudart ||
        { echo "--pack: $build/saec does not link the CUDA runtime: not a CUDA build" >&2; exit 2; }
    rm -rf "$pack"
    mkdir -p "$pack/tests" "$pack/bin" "$pack/benchmarks" || exit 2
    pack=$(cd "$pack" && pwd)
    cp "$build/saec" "$pack/bin/saec"
    cp "$build/tests/test_gpu_ops" "$pack/tests/"
    [ -x "$build/bench_ops" ] && cp "$build/bench_ops" "$pack/"
    cp "$build/CMakeCache.txt" "$pack/" 2>/dev/null
    cp "$build/CTestTestfile.cmake" "$pack/" 2>/dev/null
    cp "$build/tests/CTestTestfile.cmake" "$pack/tests/" 2>/dev/null
    # ctest wants every subdirs() entry; benchmarks/ registers no test
    echo "# no tests here" >"$pack/benchmarks/CTestTestfile.cmake"

    # the libraries: everything outside glibc, the GCC runtime and CUDA, named by soname
    stage=$(mktemp -d "${TMPDIR:-/tmp}/saec-pack.XXXXXX") || exit 2
    mkdir -p "$stage/carried-libs"
    for exe in "$pack/bin/saec" "$pack/tests/test_gpu_ops" "$pack/bench_ops"; do
        [ -x "$exe" ] || continue
        if ldd "$exe" | grep -q "not found"; then
            echo "--pack: $exe has unresolved libraries here:" >&2
            ldd "$exe" | grep "not found" >&2
            rm -rf "$stage"
            exit 2
        fi
        ldd "$exe" | awk '/=> \// {print $3}' | while read -r lib; do
            is_system_lib "$(basename "$lib")" || cp -Lu "$lib" "$stage/carried-libs/$(basename "$lib")"
        done
    done
    (cd "$stage" && tar -czf "$pack/carried-libs.tar.gz" carried-libs) || exit 2
    libs_kb=$(du -sk "$stage/carried-libs" | cut -f1)
    nlibs=$(ls "$stage/carried-libs" | wc -l)

    commit=$(git -C "$repo" rev-parse --verify -q HEAD 2>/dev/null || echo unknown)
    dirty=false
    [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ] && dirty=true
    pack_id="$(date -u +%Y%m%dT%H%M%SZ)-$$"
    {
        echo "commit=$commit"
        echo "dirty=$dirty"
        echo "packed=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "build=$build"
        echo "pack_id=$pack_id"
        echo "glibc_needed=$(for f in "$pack/bin/saec" "$stage"/carried-libs/*; do
            objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_2\.[0-9]*'; done | sort -t. -k2 -n -u | tail -1)"
        echo "carried=$(ls "$stage/carried-libs" | tr '\n' ' ')"
    } >"$pack/pack.env"

    cat >"$pack/with-libs" <<'EOF'
#!/bin/sh
# with-libs CMD [ARGS...]: run CMD with this pack's libraries first on LD_LIBRARY_PATH (written
# by benchmarks/gpu_check.sh --pack). The libraries are unpacked once per pack into
# ${TMPDIR:-/tmp}/saec-carried-libs-<pack id> (or $SAEC_PACK_LIBDIR); SAEC_PACK_EXTRA_LIBDIRS
# (colon-separated) is put after CUDA's lib64, for a libcublas that lives elsewhere.
: "${PATH:=/usr/local/bin:/usr/bin:/bin}"
export PATH
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd) || exit 127
id=$(sed -n 's/^pack_id=//p' "$here/pack.env" 2>/dev/null)
libdir=${SAEC_PACK_LIBDIR:-${TMPDIR:-/tmp}/saec-carried-libs-${id:-unknown}}
if [ ! -f "$libdir/.complete" ]; then
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/saec-carried-libs.XXXXXX") || exit 127
    tar -xzf "$here/carried-libs.tar.gz" -C "$tmp" || { echo "with-libs: cannot unpack $here/carried-libs.tar.gz" >&2; exit 127; }
    : >"$tmp/carried-libs/.complete"
    mkdir -p "$(dirname "$libdir")"
    # another process may have won the race: then keep its copy
    mv -T "$tmp/carried-libs" "$libdir" 2>/dev/null || [ -f "$libdir/.complete" ] ||
        { echo "with-libs: cannot create $libdir" >&2; exit 127; }
    rm -rf "$tmp"
fi
LD_LIBRARY_PATH="$libdir:/usr/local/cuda/lib64:/usr/local/cuda/lib${SAEC_PACK_EXTRA_LIBDIRS:+:$SAEC_PACK_EXTRA_LIBDIRS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
exec "$@"
EOF
    cat >"$pack/saec" <<'EOF'
#!/bin/sh
# saec from a pack (benchmarks/gpu_check.sh --pack): bin/saec with the carried libraries.
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd) || exit 127
exec "$here/with-libs" "$here/bin/saec" "$@"
EOF
    chmod +x "$pack/with-libs" "$pack/saec"
    rm -rf "$stage"

    # self-check: every library resolves to the pack or to the system set, and saec starts
    bad=0
    for exe in "$pack/bin/saec" "$pack/tests/test_gpu_ops" "$pack/bench_ops"; do
        [ -x "$exe" ] || continue
        while read -r name path; do
            case $path in
            */saec-carried-libs-*) ;;
            *) is_system_lib "$name" || { echo "--pack: $exe: $name resolves outside the pack ($path)" >&2; bad=1; } ;;
            esac
        done < <(SAEC_PACK_LIBDIR='' "$pack/with-libs" ldd "$exe" | awk '/=>/ {print $1, $3}')
    done
    if ! env -i PATH=/usr/bin:/bin "$pack/saec" train --help >/dev/null 2>&1; then
        echo "--pack: $pack/saec train --help failed with only the pack on the library path" >&2
        bad=1
    fi
    echo "packed into $pack: $(du -sh "$pack" | cut -f1) ($nlibs libraries, ${libs_kb} KB unpacked," \
        "$(du -k "$pack/carried-libs.tar.gz" | cut -f1) KB packed); commit $commit (dirty: $dirty);" \
        "build dir of record: $build"
    exit $bad
fi

# ---- the check: run on the GPU machine ---------------------------------------------------------
build_arg=${1:-build-cuda}
mkdir -p "$build_arg"
build=$(cd "$build_arg" && pwd)
out=${OUT:-$PWD/gpu_check_out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
stages=${GPU_CHECK_STAGES:-test memcheck racecheck bench e2e}
limit=${GPU_CHECK_TIMEOUT:-540}
deadline=$((SECONDS + ${GPU_CHECK_DEADLINE:-570}))
summary="$out/summary.txt"
log="$out/gpu_check.log" # test, bench and e2e stages; the sanitizers have their own logs
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

pack_commit=""
pack_dirty=""
if [ -f "$build/pack.env" ]; then
    pack_commit=$(sed -n 's/^commit=//p' "$build/pack.env")
    pack_dirty=$(sed -n 's/^dirty=//p' "$build/pack.env")
fi
commit=${SAEC_GIT_COMMIT:-${pack_commit:-$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)}}
export SAEC_GIT_COMMIT=$commit
[ -n "$pack_dirty" ] && export SAEC_GIT_DIRTY=$pack_dirty
note "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $commit${pack_dirty:+ (dirty: $pack_dirty)} build $build stages: $stages"

{
    nvidia-smi
    echo
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv
    echo
    nvcc --version
    echo
    echo "glibc: $(ldd --version 2>&1 | head -1)"
    [ -f "$build/pack.env" ] && { echo "pack.env:"; cat "$build/pack.env"; }
} >"$out/nvidia-smi.txt" 2>&1 || note "nvidia-smi or nvcc failed (see nvidia-smi.txt)"
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
note "device: ${gpu_name:-none (nvidia-smi lists no GPU)}"

# How our programs find their libraries: a pack's with-libs wrapper, or (a build made here)
# CUDA's lib dirs. Only our programs get this: python3 keeps its own environment.
cuda_dirs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do [ -d "$d" ] && cuda_dirs="$cuda_dirs${cuda_dirs:+:}$d"; done
if [ -x "$build/with-libs" ]; then
    wrap=("$build/with-libs")
else
    wrap=(env "LD_LIBRARY_PATH=$cuda_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
fi
saec_bin="$build/saec" # the wrapper in a pack, the binary in a build directory

: >"$log"
# No test binary: try to build one here.
if [ ! -x "$build/tests/test_gpu_ops" ]; then
    note "no test binary in $build: configuring and building (log in gpu_check.log)"
    if ! { cmake -S "$repo" -B "$build" -G Ninja -DSAEC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 &&
        cmake --build "$build" -j"$(nproc)" --target test_gpu_ops saec &&
        { cmake --build "$build" -j"$(nproc)" --target bench_ops || true; }; } >>"$log" 2>&1; then
        note "build FAILED (HDF5/OpenBLAS/cJSON are not on GPU machines: build here and --pack)"
    fi
fi

# Libraries the programs cannot find: look for them under the usual prefixes (a libcublas that
# only a Python wheel brings, say) and tell with-libs.
for exe in "$build/bin/saec" "$build/saec" "$build/tests/test_gpu_ops" "$build/bench_ops"; do
    { [ -f "$exe" ] && [ "$(head -c4 "$exe" | tail -c3)" = ELF ]; } || continue
    for lib in $("${wrap[@]}" ldd "$exe" 2>/dev/null | awk '/not found/ {print $1}'); do
        found=$(find /usr/local /opt /usr/lib /usr/lib64 -name "$lib" -print -quit 2>/dev/null)
        if [ -n "$found" ]; then
            SAEC_PACK_EXTRA_LIBDIRS="${SAEC_PACK_EXTRA_LIBDIRS:+$SAEC_PACK_EXTRA_LIBDIRS:}$(dirname "$found")"
            export SAEC_PACK_EXTRA_LIBDIRS
            [ -x "$build/with-libs" ] || wrap=(env "LD_LIBRARY_PATH=$(dirname "$found"):$cuda_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
            note "library $lib (for $(basename "$exe")) found at $found"
        else
            note "library $lib (for $(basename "$exe")) NOT FOUND on this machine"
        fi
    done
done

# A build made elsewhere names its own absolute paths in the CTest files (the build directory,
# and the source tree for the script tests such as test_dp_gpu.sh): point them here when those
# paths do not exist on this machine.
# The source tree first: the build directory of record usually lies inside it.
if [ -f "$build/CMakeCache.txt" ]; then
    orig_src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
    if [ -n "$orig_src" ] && [ "$orig_src" != "$repo" ] && [ ! -e "$orig_src" ]; then
        mkdir -p "$(dirname "$orig_src")" && ln -s "$repo" "$orig_src" &&
            note "linked $orig_src -> $repo for ctest's script tests"
    fi
    orig_build=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$build/CMakeCache.txt")
    if [ -n "$orig_build" ] && [ "$orig_build" != "$build" ] && [ ! -e "$orig_build" ]; then
        mkdir -p "$(dirname "$orig_build")" && ln -s "$build" "$orig_build" &&
            note "linked $orig_build -> $build for ctest"
    fi
fi

stage_limit() { # the per-stage limit, or what is left before the deadline
    local left=$((deadline - SECONDS))
    [ $left -lt "$limit" ] && echo $((left > 5 ? left : 5)) || echo "$limit"
}
run_stage() { # name log command...: runs under the stage time limit, records the exit status
    local name=$1 stage_log=$2
    shift 2
    local t0=$SECONDS rc lim
    lim=$(stage_limit)
    echo "==== $name ($(date -u +%H:%M:%S), limit ${lim}s): $*" >>"$stage_log"
    timeout --kill-after=10 "$lim" "$@" >>"$stage_log" 2>&1
    rc=$?
    local verdict=PASS
    [ $rc -eq 0 ] || verdict="FAIL (rc $rc)"
    [ $rc -eq 77 ] && verdict="SKIPPED (rc 77)"
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && verdict="TIMEOUT after ${lim}s"
    note "$name: $verdict in $((SECONDS - t0))s"
    return $rc
}
have_gpu() { nvidia-smi -L 2>/dev/null | grep -q '^GPU'; }

test_exe="$build/tests/test_gpu_ops"

stage_test() {
    # ctest -V prints the test's own output; when ctest itself fails, run the binary directly to
    # tell a test failure from a ctest wiring problem.
    if ! (cd "$build" && run_stage "ctest -L gpu" "$log" "${wrap[@]}" ctest -L gpu -V); then
        [ -x "$test_exe" ] && run_stage "test_gpu_ops (direct)" "$log" "${wrap[@]}" "$test_exe"
    fi
    sed -n '/^==== ctest -L gpu/,$p' "$log" | grep -q '\*\*\*Skipped' &&
        note "  (ctest counts a skipped test as passed: test_gpu_ops was SKIPPED, see gpu_check.log)"
}

stage_sanitizer() { # memcheck | racecheck
    local tool=$1 tool_log="$out/$1.log" extra=() cs d
    cs=$(command -v compute-sanitizer 2>/dev/null)
    for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do
        [ -z "$cs" ] && [ -x "$d/compute-sanitizer" ] && cs="$d/compute-sanitizer"
    done
    if [ -z "$cs" ]; then
        note "$tool: SKIPPED (no compute-sanitizer)"
        return
    fi
    : >"$tool_log"
    [ "$tool" = memcheck ] && extra=(--leak-check full)
    run_stage "compute-sanitizer --tool $tool" "$tool_log" "${wrap[@]}" env SAEC_GPU_TEST_QUICK=1 \
        "$cs" --tool "$tool" "${extra[@]}" --error-exitcode 86 "$test_exe"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY|Device not supported" "$tool_log" | head -5 >>"$summary"
}

stage_bench() {
    local bench="$build/bench_ops"
    if [ -x "$bench" ]; then
        run_stage "bench_ops" "$log" "${wrap[@]}" "$bench" "$out/bench_ops.json" "$commit"
    else
        note "bench_ops: SKIPPED (no $bench; add benchmarks/ to the build)"
    fi
}

stage_e2e() {
    # GPU_CHECK_E2E_DRY_RUN=1 runs the stage's plumbing on the CPU (the default job with
    # --device cpu, bench_train_gpu.sh --dry-run): a test of this script, not a result.
    local e2e_device=cuda e2e_args=() e2e_env=() work verdict key value budget md default_args=()
    # GPU_CHECK_E2E_DEFAULT_ARGS: extra options for the default job (for tests of this script)
    read -r -a default_args <<<"${GPU_CHECK_E2E_DEFAULT_ARGS:-}"
    if [ "${GPU_CHECK_E2E_DRY_RUN:-0}" = 1 ]; then
        e2e_device=cpu
        e2e_args=(--dry-run)
        note "e2e: DRY RUN on the CPU (GPU_CHECK_E2E_DRY_RUN=1): not a GPU result"
    fi
    if [ "$e2e_device" = cuda ] && ! have_gpu; then
        note "e2e: SKIPPED (no GPU: nvidia-smi lists none)"
        return
    fi
    if [ ! -x "$saec_bin" ]; then
        note "e2e: SKIPPED (no $saec_bin; build the saec target, then --pack)"
        return
    fi
    work=$(mktemp -d "${TMPDIR:-/tmp}/saec-e2e.XXXXXX")
    # (a) the default job on the GPU: does it recover the synthetic ground truth?
    if run_stage "e2e default run (saec train --device $e2e_device)" "$log" \
        "$saec_bin" train --device "$e2e_device" "${default_args[@]}" --out "$work/default"; then
        cp "$work/default/summary.json" "$out/default_summary.json"
        verdict=$(python3 - "$out/default_summary.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
ok = s.get("mmcs", 0) >= 0.9 and s.get("nmse", 1) <= 0.1
print("%s: mmcs %.4f nmse %.4f l0 %.2f tokens/s %.0f device %s" % (
    "PASS" if ok else "FAIL (need mmcs >= 0.9, nmse <= 0.1)", s.get("mmcs", float("nan")),
    s.get("nmse", float("nan")), s.get("l0", float("nan")), s.get("tokens_per_second", 0),
    s.get("device")))
EOF
        )
        note "e2e default run ground truth: $verdict"
    fi
    rm -rf "$work"
    # (b) saec vs the PyTorch peer, d=2304 k=64 batch 4096, m = 16384 and 65536
    while IFS='=' read -r key value; do
        e2e_env+=("${key#E2E_}=$value")
    done < <(env | grep '^E2E_[A-Z_]*=')
    budget=$(($(stage_limit) - 20)) # bench_train_gpu.sh skips runs that would not fit
    [ "$budget" -ge 1 ] || budget=1
    run_stage "e2e bench_train_gpu.sh" "$log" env SAEC="$saec_bin" RESULTS_DIR="$out" \
        DEFAULT_SUMMARY="$out/default_summary.json" BUDGET_S="$budget" "${e2e_env[@]}" \
        "$repo/benchmarks/bench_train_gpu.sh" "${e2e_args[@]}"
    for md in "$out"/train_gpu_*.md; do [ -f "$md" ] && tee -a "$summary" <"$md"; done
}

# the stages, in the order GPU_CHECK_STAGES names them
for stage in $stages; do
    case $stage in
    test) stage_test ;;
    memcheck | racecheck) stage_sanitizer "$stage" ;;
    bench) stage_bench ;;
    e2e) stage_e2e ;;
    *) note "unknown stage '$stage' FAILED (stages: test memcheck racecheck bench e2e)" ;;
    esac
done

nfiles=$(find "$out" -type f | wc -l)
note "results in $out ($nfiles files): $(cd "$out" && ls | tr '\n' ' ')"
[ "$nfiles" -gt 8 ] && note "warning: $nfiles files in $out; the device tool brings back at most 8"
grep -q "FAIL\|TIMEOUT" "$summary" && exit 1
exit 0
