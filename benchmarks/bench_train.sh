#!/usr/bin/env bash
# End-to-end CPU training throughput: saec vs. the plain PyTorch TopK SAE peer
# (benchmarks/peers/torch_topk_sae.py) and, when their venv is there, the real libraries'
# training steps (benchmarks/peers/library_peers.py: sparsify's SparseCoder, SAELens's
# TopKTrainingSAE), same sizes, same thread count, same run.
#
# Sizes: the default run (d, m, k, batch read from `saec train --help` when it says so;
# otherwise d=64, m=512, k=8, batch 1024), a GPT-2-small-sized SAE (d=768, m=24576, k=32,
# batch 1024) and a Gemma-2-2B-sized SAE (d=2304, m=16384, k=64, batch 1024). saec is timed by its own summary.json (`tokens_per_second`, training loop only);
# the peer times its steps after a warm-up. Each measurement is repeated (REPEATS times for the
# default size, LARGE_REPEATS for the large one) and the best is reported (all are kept): on a
# shared machine the best is the least disturbed. The load average before each size is recorded.
#
# Writes benchmarks/results/train_cpu_<date>.json and .md.
#
# usage: benchmarks/bench_train.sh [--peer-only | --saec-only] [--quick]
# environment: SAEC (default build/saec), PYTHON (default /usr/bin/python3, which has torch),
#   THREADS (default nproc), REPEATS (3), LARGE_REPEATS (1), SMALL_STEPS/SMALL_WARMUP (300/30),
#   LARGE_STEPS/LARGE_WARMUP (10/2), RESULTS_DIR (default benchmarks/results), LIB_PYTHON (the
#   python with sparsify and sae_lens, default the interop venv's,
#   ~/.cache/saec-interop-venv/bin/python; absent: those peers are left out, and the file says so).
# On 2 cores the large sizes cost about 10 s a step for each peer: the script takes ~15 minutes.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SAEC=${SAEC:-$ROOT/build/saec}
PYTHON=${PYTHON:-/usr/bin/python3}
PEER=$ROOT/benchmarks/peers/torch_topk_sae.py
LIB_PEER=$ROOT/benchmarks/peers/library_peers.py
LIB_PYTHON=${LIB_PYTHON:-${SAEC_INTEROP_VENV:-$HOME/.cache/saec-interop-venv}/bin/python}
THREADS=${THREADS:-$(nproc)}
REPEATS=${REPEATS:-3}
LARGE_REPEATS=${LARGE_REPEATS:-1}
SMALL_STEPS=${SMALL_STEPS:-300}
SMALL_WARMUP=${SMALL_WARMUP:-30}
LARGE_STEPS=${LARGE_STEPS:-10}
LARGE_WARMUP=${LARGE_WARMUP:-2}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/benchmarks/results}

RUN_SAEC=1
RUN_PEER=1
for arg in "$@"; do
  case "$arg" in
    --peer-only) RUN_SAEC=0 ;;
    --saec-only) RUN_PEER=0 ;;
    --quick) REPEATS=1; LARGE_REPEATS=1; SMALL_STEPS=50; SMALL_WARMUP=5; LARGE_STEPS=3; LARGE_WARMUP=1 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_train.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

# Both sides use every core, and the same number of them.
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

if [[ $RUN_SAEC == 1 && ! -x $SAEC ]]; then
  echo "bench_train.sh: $SAEC not found; build it (cmake --build build) or run with --peer-only" >&2
  exit 2
fi
if [[ $RUN_PEER == 1 ]] && ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  echo "bench_train.sh: $PYTHON cannot import torch; set PYTHON to an interpreter that can" >&2
  exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/saec_bench_train.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# ---- the default size, from `saec train --help` when it states it -------------------------
HELP_FILE=$WORK/help.txt
: >"$HELP_FILE"
if [[ -x $SAEC ]]; then "$SAEC" train --help >"$HELP_FILE" 2>&1 || true; fi
read -r SMALL_D SMALL_M SMALL_K SMALL_N < <("$PYTHON" - "$HELP_FILE" <<'EOF'
import re, sys
text = open(sys.argv[1], errors="replace").read()
fallback = {"d-in": 64, "latents": 512, "k": 8, "batch-size": 1024}
def default(key):
    # The help line of --KEY (or KEY), then the first "default N" / "[N]" / "(N)" / "= N" on it.
    for line in text.splitlines():
        if not re.match(r"\s*(--)?" + re.escape(key).replace(r"\-", "[-_]") + r"\b", line):
            continue
        if key == "d-in":  # 0 = from the data; the synthetic default is stated separately
            m = re.search(r"synthetic[^0-9]*?(\d+)", line)
            if m:
                return int(m.group(1))
        m = re.search(r"(?:default[:= ]*|\[|\(|=\s*)(\d+)", line, re.I)
        if m and int(m.group(1)) > 0:
            return int(m.group(1))
    return fallback[key]
print(*(default(k) for k in ("d-in", "latents", "k", "batch-size")))
EOF
)

# name d m k batch steps warmup repeats
SIZES=(
  "default $SMALL_D $SMALL_M $SMALL_K $SMALL_N $SMALL_STEPS $SMALL_WARMUP $REPEATS"
  "gpt2-small-24k 768 24576 32 1024 $LARGE_STEPS $LARGE_WARMUP $LARGE_REPEATS"
  "gemma2-2b-16k 2304 16384 64 1024 $LARGE_STEPS $LARGE_WARMUP $LARGE_REPEATS"
)

FAILED=0
for entry in "${SIZES[@]}"; do
  read -r name d m k n steps warmup repeats <<<"$entry"
  cut -d' ' -f1-3 /proc/loadavg >"$WORK/loadavg_$name" 2>/dev/null || true
  echo "== $name: d=$d m=$m k=$k batch=$n, $THREADS threads, load $(cat "$WORK/loadavg_$name" 2>/dev/null)" >&2
  # With more runnable threads than cores, OpenMP barriers spin against each other and both
  # sides slow down by large, unequal factors: the figures are then not worth much.
  if awk -v c="$(nproc)" '{exit !($1 > 0.5 * c)}' "$WORK/loadavg_$name" 2>/dev/null; then
    echo "   warning: the machine is busy (load $(cut -d' ' -f1 "$WORK/loadavg_$name")," \
         "$(nproc) cores); results will be low and noisy" >&2
  fi
  for ((r = 1; r <= repeats; r++)); do
    if [[ $RUN_SAEC == 1 ]]; then
      # saec has no warm-up split: it trains steps+warmup steps and times the whole loop.
      run_dir=$WORK/saec_${name}_$r
      log=$WORK/saec_${name}_$r.log
      if "$SAEC" train --device cpu --d-in "$d" --latents "$m" --k "$k" --batch-size "$n" \
           --steps $((steps + warmup)) --log-every 1000000 --out "$run_dir" >"$log" 2>&1 &&
         [[ -f $run_dir/summary.json ]]; then
        cp "$run_dir/summary.json" "$WORK/saec_${name}_$r.json"
        echo "   saec  run $r: $("$PYTHON" -c 'import json,sys; print("%.0f tokens/s" % json.load(open(sys.argv[1]))["tokens_per_second"])' "$run_dir/summary.json")" >&2
      else
        echo "   saec  run $r FAILED (log: tail below)" >&2
        tail -n 5 "$log" >&2 || true
        cp "$log" "$WORK/saec_${name}_$r.err"
        FAILED=1
      fi
      rm -rf "$run_dir"
    fi
    if [[ $RUN_PEER == 1 ]]; then
      out=$WORK/torch_${name}_$r.json
      if "$PYTHON" "$PEER" --device cpu --threads "$THREADS" --d "$d" --m "$m" --k "$k" \
           --batch "$n" --steps "$steps" --warmup "$warmup" --out "$out" >/dev/null 2>"$out.err"; then
        echo "   torch run $r: $("$PYTHON" -c 'import json,sys; print("%.0f tokens/s" % json.load(open(sys.argv[1]))["tokens_per_second"])' "$out")" >&2
      else
        echo "   torch run $r FAILED:" >&2
        tail -n 5 "$out.err" >&2 || true
        FAILED=1
      fi
      for lib in sparsify saelens; do
        [[ -x $LIB_PYTHON ]] || break
        out=$WORK/${lib}_${name}_$r.json
        if "$LIB_PYTHON" "$LIB_PEER" --library $lib --threads "$THREADS" --d "$d" --m "$m" \
             --k "$k" --batch "$n" --steps "$steps" --warmup "$warmup" --out "$out" \
             >/dev/null 2>"$out.err"; then
          echo "   $lib run $r: $("$PYTHON" -c 'import json,sys; print("%.0f tokens/s" % json.load(open(sys.argv[1]))["tokens_per_second"])' "$out")" >&2
        else
          echo "   $lib run $r FAILED:" >&2
          tail -n 5 "$out.err" >&2 || true
          FAILED=1
        fi
      done
    fi
  done
done
[[ -x $LIB_PYTHON ]] || echo "bench_train.sh: $LIB_PYTHON not found: sparsify and SAELens left out" >&2

# ---- collect -----------------------------------------------------------------------------------
DATE=$(date -u +%Y-%m-%d)
mkdir -p "$RESULTS_DIR"
COMMIT=$(git -C "$ROOT" rev-parse --verify -q HEAD 2>/dev/null || echo none)
DIRTY=$([[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && echo true || echo false)
PYTHONPATH="$ROOT/benchmarks" "$PYTHON" - "$WORK" "$RESULTS_DIR/train_cpu_$DATE" "$COMMIT" "$DIRTY" "$THREADS" \
  "$RUN_SAEC" "$RUN_PEER" "${SIZES[@]}" <<'EOF'
import datetime, glob, json, os, platform, sys
from machine_info import cpu_model
work, stem, commit, dirty, threads, run_saec, run_peer = sys.argv[1:8]
sizes = [s.split() for s in sys.argv[8:]]

def runs(prefix):
    out = []
    for p in sorted(glob.glob(os.path.join(work, prefix + "_*.json"))):
        with open(p) as f:
            out.append(json.load(f))
    return out

result = {
    "benchmark": "train_cpu",
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "git_commit": commit,
    "git_dirty": dirty == "true",
    "machine": {"nproc": os.cpu_count(), "cpu_model": cpu_model(), "threads": int(threads),
                "kernel": platform.release()},
    "statistic": "best of the repeats (all runs kept under 'runs')",
    "sizes": [],
}
def loadavg(name):
    try:
        return [float(v) for v in open(os.path.join(work, "loadavg_" + name)).read().split()]
    except (OSError, ValueError):
        return None

for name, d, m, k, n, steps, warmup, repeats in sizes:
    saec_runs = runs("saec_" + name) if run_saec == "1" else []
    torch_runs = runs("torch_" + name) if run_peer == "1" else []
    saec_best = max((r["tokens_per_second"] for r in saec_runs), default=None)
    torch_best = max((r["tokens_per_second"] for r in torch_runs), default=None)
    lib_runs = {lib: runs(f"{lib}_" + name) for lib in ("sparsify", "saelens")}
    lib_best = {lib: max((r["tokens_per_second"] for r in v), default=None)
                for lib, v in lib_runs.items()}
    result["sizes"].append({
        "name": name, "d": int(d), "m": int(m), "k": int(k), "batch": int(n),
        "steps": int(steps), "warmup": int(warmup), "repeats": int(repeats),
        "loadavg_before": loadavg(name),
        "saec_tokens_per_second": saec_best,
        "torch_tokens_per_second": torch_best,
        "ratio_saec_over_torch": saec_best / torch_best if saec_best and torch_best else None,
        **{f"{lib}_tokens_per_second": v for lib, v in lib_best.items()},
        **{f"ratio_saec_over_{lib}": saec_best / v if saec_best and v else None
           for lib, v in lib_best.items()},
        "library_versions": {lib: v[0].get("library_version") if v else None
                             for lib, v in lib_runs.items()},
        "torch_version": torch_runs[0]["torch_version"] if torch_runs else None,
        "runs": {"saec": [{key: r.get(key) for key in ("arch", "device", "tokens", "seconds",
                                                        "tokens_per_second", "nmse", "l0")}
                          for r in saec_runs],
                 "torch": torch_runs, **lib_runs},
    })

with open(stem + ".json", "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")

def fmt(v, spec="{:,.0f}"):
    return spec.format(v) if v is not None else "n/a"

md = [f"# CPU training throughput, {result['date'][:10]}", "",
      f"Machine: {result['machine']['cpu_model']}, {result['machine']['nproc']} cores, "
      f"{threads} threads for both. Commit {commit[:12]}{' (dirty)' if dirty == 'true' else ''}. "
      f"Best of the repeats. saec: `tokens_per_second` from summary.json (training loop); "
      f"torch: benchmarks/peers/torch_topk_sae.py (dense encoder, topk, dense decoder, Adam); "
      f"sparsify and SAELens: benchmarks/peers/library_peers.py (each library's own training "
      f"step, float32; versions {result['sizes'][0]['library_versions']}).", "",
      "| size | d | m | k | batch | steps | runs | saec tokens/s | torch | sparsify | SAELens | saec / torch | saec / sparsify | saec / SAELens |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for s in result["sizes"]:
    md.append(f"| {s['name']} | {s['d']} | {s['m']} | {s['k']} | {s['batch']} | {s['steps']} | {s['repeats']} | "
              f"{fmt(s['saec_tokens_per_second'])} | {fmt(s['torch_tokens_per_second'])} | "
              f"{fmt(s['sparsify_tokens_per_second'])} | {fmt(s['saelens_tokens_per_second'])} | "
              f"{fmt(s['ratio_saec_over_torch'], '{:.2f}x')} | {fmt(s['ratio_saec_over_sparsify'], '{:.2f}x')} | "
              f"{fmt(s['ratio_saec_over_saelens'], '{:.2f}x')} |")
with open(stem + ".md", "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
print(f"\nwrote {stem}.json and {stem}.md", file=sys.stderr)
EOF
exit $FAILED
