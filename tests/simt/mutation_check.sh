#!/usr/bin/env bash
# Proof that the emulated-GPU tier catches what it claims (issue 12). Each bug below is seeded
# into a copy of the source tree; test_gpu_ops is rebuilt for the emulated GPU, plain and with
# AddressSanitizer+UBSan, and the group of cases the bug lives in runs in the CI schedules:
#   fwd   forward thread and block order, race check on
#   rev   reversed threads, shuffled blocks, race check on
#   asan  forward, under AddressSanitizer+UBSan (no race check: the two cannot be combined)
# A run "catches" the bug when it fails: a wrong result against the CPU backend, a device-fault
# report of the emulator (race, redzone, divergence), or a sanitizer report.
#
#   tests/simt/mutation_check.sh [RESULT_FILE]
#
# Exits 0 when the clean tree passes every run and every seeded bug fails at least one.
# Takes ~15 minutes on 2 cores (two builds of test_gpu_ops, then one file rebuilt per bug).
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-/dev/null}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/saec-mutation.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# name | file | text | replacement | test_gpu_ops group
MUTATIONS=(
  "removed __syncthreads|kernels/cuda/cuda_dense.cu|    s[ty][tx] = acc;
    __syncthreads();|    s[ty][tx] = acc;|col_sum"
  "static shared buffer one element short|kernels/cuda/cuda_grouping.cu|__shared__ int s_warp[32];|__shared__ int s_warp[31];|grouping"
  "dynamic shared buffer 4 bytes short|kernels/cuda/cuda_grouping.cu|use_smem ? smem : 0|use_smem ? smem - 4 : 0|grouping"
  "racy shared write (every lane writes the warp's slot)|kernels/cuda/cuda_internal.cuh|    if (lane == 0) s_warp[warp] = v;|    s_warp[warp] = v;|sum_squares_count_positive"
  "out-of-range global read (one row past the chunk)|kernels/cuda/cuda_dense.cu|r < r1; r += 8) acc +=|r <= r1; r += 8) acc +=|col_sum"
)

mkdir -p "$WORK/src"
(cd "$SRC" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | (cd "$WORK/src" && tar xf -)
for b in emu asan; do
  extra=()
  [ $b = asan ] && extra=(-DSAEC_SANITIZE=address,undefined)
  cmake -S "$WORK/src" -B "$WORK/$b" -G Ninja -DSAEC_CUDA=EMU -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "${extra[@]}" >"$WORK/$b.cfg.log" 2>&1 || { cat "$WORK/$b.cfg.log"; exit 1; }
done

build() {
  local b
  for b in emu asan; do
    cmake --build "$WORK/$b" --target test_gpu_ops >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; return 1; }
  done
}

# run SCHEDULE GROUP -> "pass" or "FAIL: first line of the report"
run() {
  local schedule=$1 group=$2 log="$WORK/run.log" rc
  case $schedule in
    fwd) "$WORK/emu/tests/test_gpu_ops" "$group" >"$log" 2>&1 ;;
    rev) SAEC_SIMT_THREAD_ORDER=reverse SAEC_SIMT_BLOCK_ORDER=shuffle \
           "$WORK/emu/tests/test_gpu_ops" "$group" >"$log" 2>&1 ;;
    asan) ASAN_OPTIONS=detect_leaks=0 "$WORK/asan/tests/test_gpu_ops" "$group" >"$log" 2>&1 ;;
  esac
  rc=$?
  if [ $rc -eq 0 ]; then echo "pass"; return; fi
  # The most telling line: an emulator fault, a sanitizer report, or the first failed check.
  local why
  why=$(grep -m1 -E "shared-memory race|outside it|written .* past|barrier divergence|deadlock|ERROR: AddressSanitizer|runtime error|^FAIL" "$log" \
        || tail -1 "$log")
  echo "FAIL (rc $rc): ${why:0:200}"
}

report() { echo "$*" | tee -a "$OUT"; }
: >"$OUT"
report "# emulated-tier mutation check, $(date -u +%Y-%m-%d), commit $(git -C "$SRC" rev-parse --short HEAD)"
build || exit 1
ok=1
groups=$(printf '%s\n' "${MUTATIONS[@]}" | awk -F'|' '{print $5}' | sort -u)
for g in $groups; do
  for s in fwd rev asan; do
    r=$(run $s "$g")
    report "clean tree, group $g, $s: $r"
    [ "$r" = pass ] || ok=0
  done
done

for m in "${MUTATIONS[@]}"; do
  IFS='|' read -r name file text repl group <<<"$(printf '%s' "$m" | tr '\n' '\1')"
  text=$(printf '%s' "$text" | tr '\1' '\n')
  f="$WORK/src/$file"
  cp "$f" "$f.orig"
  /usr/bin/python3 - "$f" "$text" "$repl" <<'EOF' || { report "mutation '$name': its text is not in $file once"; ok=0; continue; }
import sys
path, old, new = sys.argv[1:]
s = open(path).read()
if s.count(old) != 1:
    sys.exit(1)
open(path, "w").write(s.replace(old, new))
EOF
  report ""
  report "seeded: $name ($file, group $group)"
  if build; then
    caught=0
    for s in fwd rev asan; do
      r=$(run $s "$group")
      report "  $s: $r"
      [ "$r" = pass ] || caught=1
    done
    [ $caught = 1 ] && report "  => caught" || { report "  => NOT CAUGHT"; ok=0; }
  else
    report "  => the mutant does not build"; ok=0
  fi
  mv "$f.orig" "$f"
  touch "$f" # newer than the mutant's object, so the next build restores it
done
build >/dev/null
[ $ok = 1 ] && report "" && report "every seeded bug was caught" && exit 0
report ""; report "some seeded bug was not caught, or the clean tree failed"; exit 1
