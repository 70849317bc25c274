#!/usr/bin/env bash
# MoE-MAE training throughput: saec against the team's PyTorch model of SPEC §7
# (benchmarks/peers/moe_mae_torch.py), the full-size network, batch 128, the same threads and
# machine, in the same run.
#
# saec is timed by its own summary.json (`tokens_per_second`, images for this model: the
# training loop, synthetic `eo` tiles generated on a prefetch thread); it trains WARMUP + STEPS
# steps and the first WARMUP are not subtracted, so saec's figure includes its warm-up. The
# peer times STEPS steps after WARMUP untimed ones (forward, backward, clip, AdamW on random
# tiles). Each side runs REPEATS times, alternating; the best is reported, all are kept.
#
# Floor: the step's FLOPs per image from SPEC §7's shapes (dense GEMMs, attention, the routed
# experts at top-2; forward ×3 for forward + backward), divided by the measured time, as a
# fraction of the ceiling measured in the same run: torch's FP32 GEMM (2048³) on the same
# threads (on a GPU: FP32 and BF16 GEMM).
#
# --device cuda: saec on the CUDA backend; the peer in FP32 and with bf16 autocast. Not yet run
# on a GPU (no session has had one).
#
# Writes benchmarks/results/moe_mae_<cpu|gpu>_<date>.json and .md.
#
# usage: benchmarks/bench_moe_mae.sh [--device cpu|cuda] [--quick]
# environment: SAEC (default build/saec), PYTHON (default /usr/bin/python3, which has torch),
#   THREADS (default nproc), REPEATS (2), STEPS (10), WARMUP (2), BATCH (128),
#   RESULTS_DIR (default benchmarks/results).
# On 2 cores a repeat costs about 1 minute per side.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SAEC=${SAEC:-$ROOT/build/saec}
PYTHON=${PYTHON:-/usr/bin/python3}
PEER=$ROOT/benchmarks/peers/moe_mae_torch.py
THREADS=${THREADS:-$(nproc)}
REPEATS=${REPEATS:-2}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-2}
BATCH=${BATCH:-128}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/benchmarks/results}
DEVICE=cpu
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) DEVICE=${2:-}; shift ;;
    --quick) REPEATS=1; STEPS=3; WARMUP=1 ;;
    -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_moe_mae.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case $DEVICE in cpu) KIND=cpu ;; cuda) KIND=gpu ;;
  *) echo "bench_moe_mae.sh: --device must be cpu or cuda, not '$DEVICE'" >&2; exit 2 ;; esac

export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
[[ -x $SAEC ]] || { echo "bench_moe_mae.sh: $SAEC not found; build it (cmake --build build)" >&2; exit 2; }
"$PYTHON" -c 'import torch' 2>/dev/null \
  || { echo "bench_moe_mae.sh: $PYTHON cannot import torch; set PYTHON to one that can" >&2; exit 2; }
if [[ $DEVICE == cuda ]] && ! "$PYTHON" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  echo "bench_moe_mae.sh: torch sees no CUDA device; the GPU benchmark needs a CUDA build of torch" >&2
  exit 2
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/saec_bench_moe_mae.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cut -d' ' -f1-3 /proc/loadavg >"$WORK/loadavg" 2>/dev/null || true
echo "== moe-mae batch $BATCH on $DEVICE, $THREADS threads, load $(cat "$WORK/loadavg" 2>/dev/null)" >&2

# the ceiling: torch GEMMs on the same threads (and device)
"$PYTHON" - "$DEVICE" "$THREADS" >"$WORK/ceiling.json" <<'EOF'
import json, sys, time
import torch
dev, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
out = {}
for name, dtype in (("fp32", torch.float32),) + ((("bf16", torch.bfloat16),) if dev == "cuda" else ()):
    n = 2048 if dev == "cpu" else 8192
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    best = float("inf")
    for _ in range(4):
        if dev == "cuda": torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if dev == "cuda": torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    out["gemm_" + name + "_flops_per_second"] = 2.0 * n ** 3 / best
    out["gemm_size"] = n
print(json.dumps(out))
EOF

FAILED=0
for ((r = 1; r <= REPEATS; r++)); do
  run_dir=$WORK/saec_run_$r
  if "$SAEC" train --model moe-mae --device "$DEVICE" --batch-size "$BATCH" \
       --steps $((STEPS + WARMUP)) --log-every 1000000 --probe-tiles 0 --out "$run_dir" \
       >"$WORK/saec_$r.log" 2>&1 && [[ -f $run_dir/summary.json ]]; then
    cp "$run_dir/summary.json" "$WORK/saec_$r.json"
    echo "   saec  run $r: $("$PYTHON" -c 'import json,sys; print("%.1f images/s" % json.load(open(sys.argv[1]))["tokens_per_second"])' "$WORK/saec_$r.json")" >&2
  else
    echo "   saec  run $r FAILED:" >&2; tail -n 5 "$WORK/saec_$r.log" >&2 || true; FAILED=1
  fi
  rm -rf "$run_dir"
  for prec in fp32 $([[ $DEVICE == cuda ]] && echo bf16); do
    out=$WORK/torch_${prec}_$r.json
    if "$PYTHON" "$PEER" --bench --device "$DEVICE" --threads "$THREADS" --batch "$BATCH" \
         --steps "$STEPS" --warmup "$WARMUP" $([[ $prec == bf16 ]] && echo --bf16) --out "$out" \
         >/dev/null 2>"$out.err"; then
      echo "   torch $prec run $r: $("$PYTHON" -c 'import json,sys; print("%.1f images/s" % json.load(open(sys.argv[1]))["images_per_second"])' "$out")" >&2
    else
      echo "   torch $prec run $r FAILED:" >&2; tail -n 5 "$out.err" >&2 || true; FAILED=1
    fi
  done
done

DATE=$(date -u +%Y-%m-%d)
mkdir -p "$RESULTS_DIR"
COMMIT=$(git -C "$ROOT" rev-parse --verify -q HEAD 2>/dev/null || echo none)
DIRTY=$([[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && echo true || echo false)
PYTHONPATH="$ROOT/benchmarks" "$PYTHON" - "$WORK" "$RESULTS_DIR/moe_mae_${KIND}_$DATE" "$COMMIT" "$DIRTY" "$THREADS" "$DEVICE" \
  "$BATCH" "$STEPS" "$WARMUP" "$REPEATS" <<'EOF'
import datetime, glob, json, os, platform, sys
from machine_info import cpu_model
work, stem, commit, dirty, threads, device, batch, steps, warmup, repeats = sys.argv[1:11]

def flops_per_image():
    """Training FLOPs per image of SPEC §7's network: 3 × the forward GEMMs and attention."""
    def block(L, D, heads, kv, hd, E, H, k=2):
        qkv = 2 * D * (heads + 2 * kv) * hd
        proj = 2 * heads * hd * D
        attn = 2 * 2 * L * hd * heads              # QKᵀ and PV, per query token
        router = 2 * 2 * D * E                      # clean and noise gates
        experts = k * 2 * D * H + 2 * D * H + k * 2 * H * D  # W_e (top-2), shared V, W2 per slot
        return L * (qkv + proj + attn + router + experts)
    hidden = [int(144 - 72 * i / 14) for i in range(15)]
    experts = [3] * 5 + [4] * 5 + [5] * 5
    f = 100 * 2 * 112 * 144                         # patch embedding (all 100 patches)
    f += sum(block(30, 144, 8, 4, 18, experts[i], hidden[i]) for i in range(15))  # 30 visible tokens
    f += 30 * 2 * 144 * 108                         # decoder embedding
    f += 2 * block(105, 108, 6, 3, 18, 3, 54)
    f += 100 * 2 * 108 * 112                        # decoder head
    return 3 * f

def load(pattern):
    return [json.load(open(p)) for p in sorted(glob.glob(os.path.join(work, pattern)))]

ceiling = json.load(open(os.path.join(work, "ceiling.json")))
if any("emulated" in r.get("device", "") for r in load("saec_*.json")):
    sys.exit("bench_moe_mae.sh: saec ran on the emulated GPU: not a GPU figure, nothing written")
fpi = flops_per_image()
saec = load("saec_*.json")
sides = {"saec": [r["tokens_per_second"] for r in saec]}
for prec in ("fp32", "bf16"):
    runs = load(f"torch_{prec}_*.json")
    if runs:
        sides["torch_" + prec] = [r["images_per_second"] for r in runs]
best = {k: max(v) for k, v in sides.items() if v}
try:
    loadavg = [float(v) for v in open(os.path.join(work, "loadavg")).read().split()]
except (OSError, ValueError):
    loadavg = None
result = {
    "benchmark": "moe_mae_train",
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "git_commit": commit, "git_dirty": dirty == "true",
    "machine": {"nproc": os.cpu_count(), "cpu_model": cpu_model(), "threads": int(threads),
                "kernel": platform.release(), "loadavg_before": loadavg},
    "device": device, "batch": int(batch), "steps": int(steps), "warmup": int(warmup),
    "repeats": int(repeats), "statistic": "best of the repeats (all kept under 'runs')",
    "floor": {"training_flops_per_image": fpi, "ceiling": ceiling},
    "images_per_second": best,
    "fraction_of_fp32_gemm_ceiling": {k: v * fpi / ceiling["gemm_fp32_flops_per_second"]
                                      for k, v in best.items()},
    "ratios": {f"saec_over_{k}": best["saec"] / v for k, v in best.items()
               if k != "saec" and "saec" in best},
    "saec_device": saec[0]["device"] if saec else None,
    "runs": {"saec": [{k: r.get(k) for k in ("device", "steps", "tokens", "seconds",
                                             "tokens_per_second")} for r in saec],
             **{k: load(f"{k}_*.json") for k in ("torch_fp32", "torch_bf16")}},
}
with open(stem + ".json", "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
md = [f"# MoE-MAE training throughput on {device}, {result['date'][:10]}", "",
      f"Machine: {result['machine']['cpu_model']}, {result['machine']['nproc']} cores, {threads} "
      f"threads for both; load before {loadavg}. Commit {commit[:12]}{' (dirty)' if dirty == 'true' else ''}. "
      f"Batch {batch}, {steps} timed steps (saec: {int(steps) + int(warmup)} steps, warm-up included), "
      f"best of {repeats}. saec: {result['saec_device']}.", "",
      f"Floor: {fpi / 1e9:.3f} GFLOP per image (training step, SPEC §7 shapes); ceiling: torch "
      f"FP32 GEMM {ceiling['gemm_size']}³ at {ceiling['gemm_fp32_flops_per_second'] / 1e9:.1f} GFLOP/s.", "",
      "| side | images/s | GFLOP/s | fraction of FP32 GEMM ceiling | saec / side |",
      "|---|---:|---:|---:|---:|"]
for k, v in best.items():
    ratio = result["ratios"].get("saec_over_" + k)
    md.append(f"| {k} | {v:.1f} | {v * fpi / 1e9:.1f} | {result['fraction_of_fp32_gemm_ceiling'][k]:.1%} | "
              f"{'%.2fx' % ratio if ratio else ''} |")
with open(stem + ".md", "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
print(f"\nwrote {stem}.json and {stem}.md", file=sys.stderr)
EOF
exit $FAILED
