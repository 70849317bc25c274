#!/usr/bin/env bash
# Build the libFuzzer harnesses (clang, AddressSanitizer + UBSan) and run each for a bounded time.
#   fuzz/run_fuzzers.sh [SECONDS]           every harness (fuzz/fuzz_*.c), SECONDS each (default 60)
#   fuzz/run_fuzzers.sh 60 fuzz_config      only those harnesses
# Environment: SAEC_FUZZ_BUILD (build folder, default build-fuzz), SAEC_FUZZ_JOBS (build jobs),
# SAEC_FUZZ_CC (compiler, default clang).
#
# Each harness starts from its committed corpus, fuzz/corpus/<name without fuzz_>/, copied to a
# temporary folder (new inputs never touch the committed corpus), with fuzz/<name>.dict when there
# is one. The corpus's crash-* files are earlier crashes: running the corpus first replays them,
# so a regression fails at once. A crash, leak, timeout or sanitizer report fails the script: the
# input is saved under <build>/fuzz-crashes/<harness>/ and a command to replay it is printed.
# Exit status: 0 all clean, 1 a harness failed, 77 clang or libFuzzer is missing (nothing ran).
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift $(($# > 0 ? 1 : 0))
BUILD=${SAEC_FUZZ_BUILD:-build-fuzz}
JOBS=${SAEC_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
CC_FUZZ=${SAEC_FUZZ_CC:-clang}

if ! [[ "$SECONDS_EACH" =~ ^[0-9]+$ ]] || [ "$SECONDS_EACH" -lt 1 ]; then
  echo "usage: fuzz/run_fuzzers.sh [SECONDS] [HARNESS...]" >&2
  exit 2
fi

# clang and libFuzzer (Debian: clang, libclang-rt-dev): without them, say so loudly.
skip() {
  echo "SKIPPED: $1; the fuzzers did not run" >&2
  exit 77
}
command -v "$CC_FUZZ" >/dev/null 2>&1 || skip "no $CC_FUZZ (install clang)"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' \
  >"$probe/p.c"
"$CC_FUZZ" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >"$probe/log" 2>&1 ||
  { cat "$probe/log" >&2; skip "$CC_FUZZ cannot link -fsanitize=fuzzer (install libclang-rt-dev)"; }

HARNESSES=("$@")
if [ ${#HARNESSES[@]} -eq 0 ]; then
  for src in fuzz/fuzz_*.c; do HARNESSES+=("$(basename "$src" .c)"); done
fi

echo "=== building ${HARNESSES[*]} in $BUILD ($CC_FUZZ) ==="
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER="$CC_FUZZ" -DSAEC_FUZZ=ON -DSAEC_CUDA=OFF \
  -DSAEC_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$probe/cmake.log" 2>&1 ||
  { cat "$probe/cmake.log" >&2; echo "FAIL: cmake configure ($BUILD)" >&2; exit 1; }
cmake --build "$BUILD" -j "$JOBS" --target "${HARNESSES[@]}" ||
  { echo "FAIL: building the harnesses" >&2; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
FAILED=0
declare -a SUMMARY
for h in "${HARNESSES[@]}"; do
  name=${h#fuzz_}
  bin="$BUILD/fuzz/$h"
  corpus="$probe/corpus_$name"
  crashes="$BUILD/fuzz-crashes/$h"
  mkdir -p "$corpus" "$crashes"
  [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$corpus/"
  args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536
        -print_final_stats=1 -artifact_prefix="$crashes/")
  [ -f "fuzz/$name.dict" ] && args+=(-dict="fuzz/$name.dict")
  echo "=== $h: ${SECONDS_EACH}s from $(ls "$corpus" | wc -l) corpus inputs ==="
  start=$SECONDS
  "$bin" "${args[@]}" "$corpus" >"$probe/$h.log" 2>&1
  rc=$?
  grep -E '^(INFO: Seed|#[0-9]+[[:space:]]+(INITED|DONE))|stat::number_of_executed_units' \
    "$probe/$h.log"
  if [ $rc -ne 0 ]; then
    FAILED=1
    tail -n 60 "$probe/$h.log"
    echo "FAIL: $h exited with status $rc; inputs saved in $crashes/:" >&2
    ls -l "$crashes" >&2
    echo "replay: $bin $crashes/<file>   (then fix, and add it to fuzz/corpus/$name/ as crash-<what>)" >&2
    SUMMARY+=("$(printf '%-20s FAIL (status %d)' "$h" $rc)")
  else
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$probe/$h.log" | awk '{print $2}')
    SUMMARY+=("$(printf '%-20s clean  %4ds  %s runs, corpus %d -> %d inputs' "$h" \
      $((SECONDS - start)) "${runs:-?}" "$(ls "fuzz/corpus/$name" 2>/dev/null | wc -l)" \
      "$(ls "$corpus" | wc -l)")")
  fi
done
echo "=== fuzzers ==="
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
