#!/usr/bin/env bash
# End-to-end GPU training throughput: `saec train --device cuda` against the PyTorch TopK SAE peer
# (benchmarks/peers/torch_topk_sae.py: dense encoder, torch.topk, dense decoder, autograd, Adam)
# on the same GPU, in the same script, at d=2304, k=64, batch 4096, m = 16384 and 65536.
#
# Variants (each a separate process, one after the other):
#   saec fp32   the default: FP32 everywhere, cuBLAS(Lt) FP32 GEMMs
#   saec tf32   the same with SAEC_CUDA_TF32=1 (TF32 tensor-core GEMMs)
#   torch bf16  --bf16-autocast: forward and loss under torch.autocast(bfloat16), as the common
#               libraries (SAELens, sparsify) train; fp32 master weights and Adam
#   torch fp32  plain FP32 (torch's default: no TF32 matmuls), for reference
# The headline ratio is saec fp32 / torch bf16.
#
# Timing. Both sides time STEPS steps after WARMUP untimed ones, on synchronised GPU clocks.
#   torch: the peer's own timer (torch.cuda.synchronize before and after the timed steps).
#   saec:  one run of WARMUP + STEPS steps with --log-every WARMUP (STEPS is rounded up to a
#          multiple of WARMUP). saec synchronises the device at every logging step and
#          metrics.jsonl records the loop's elapsed seconds there, so
#            timed seconds = summary.json "seconds" (end of the loop) - elapsed_seconds at step WARMUP.
#          The logging steps inside the window each read a few scalars back (as any run does).
#          summary.json's own tokens_per_second (the whole loop from step 1, first-step cuBLASLt
#          heuristics and allocations included) is recorded too, as is each process's wall time.
#   saec's loop includes making each batch of synthetic data on the host (OpenMP) and uploading
#   it; the peer reuses a pool of batches already on the GPU.
# Each measurement runs REPEATS times (default 1); the best is reported and all are kept.
#
# Writes RESULTS_DIR/train_gpu_<gpu>_<date>.json and .md: device name (nvidia-smi), driver,
# commit (SAEC_GIT_COMMIT or git), date, every raw figure and the ratios. DEFAULT_SUMMARY (a
# summary.json of the default `saec train --device cuda` job, gpu_check.sh's e2e stage) is
# embedded when given.
#
# usage: benchmarks/bench_train_gpu.sh [--dry-run] [--saec-only | --peer-only]
#   --dry-run   the whole path on the CPU at tiny sizes (d=64, m = 256 and 512, k=8, batch 256,
#               2 + 4 steps; the peer's bf16 variant autocasts on the CPU), results into
#               ${TMPDIR:-/tmp}/saec_bench_train_gpu_dryrun unless RESULTS_DIR is set
# environment: SAEC (default build/saec), PYTHON (default: python3 if it imports torch, else
#   /usr/bin/python3), DEVICE (cuda), D (2304), K (64), BATCH (4096), MS ("16384 65536"),
#   WARMUP (10), STEPS (40), REPEATS (1), SYN_FEATURES (4096), EVAL_TOKENS (4096),
#   INIT_SAMPLE (4096), SAEC_VARIANTS ("fp32 tf32"), PEER_VARIANTS ("bf16 fp32"),
#   RUN_TIMEOUT (240 s a run), BUDGET_S (0 = none: seconds for the whole script; runs that
#   would not fit are skipped, the results are still written, and the exit status is 3),
#   RESULTS_DIR (benchmarks/results), DEFAULT_SUMMARY, SAEC_GIT_COMMIT, SAEC_GIT_DIRTY.
# On an H100 the default sizes take about 2 minutes (estimate: not yet run on a GPU).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEER=$ROOT/benchmarks/peers/torch_topk_sae.py
T_START=$SECONDS

DRY_RUN=0
RUN_SAEC=1
RUN_PEER=1
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --saec-only) RUN_PEER=0 ;;
    --peer-only) RUN_SAEC=0 ;;
    -h|--help) sed -n '2,43p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_train_gpu.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

if [[ $DRY_RUN == 1 ]]; then
  DEVICE=${DEVICE:-cpu} D=${D:-64} K=${K:-8} BATCH=${BATCH:-256} MS=${MS:-"256 512"}
  WARMUP=${WARMUP:-2} STEPS=${STEPS:-4} SYN_FEATURES=${SYN_FEATURES:-256}
  RESULTS_DIR=${RESULTS_DIR:-${TMPDIR:-/tmp}/saec_bench_train_gpu_dryrun}
fi
SAEC=${SAEC:-$ROOT/build/saec}
DEVICE=${DEVICE:-cuda}
D=${D:-2304}
K=${K:-64}
BATCH=${BATCH:-4096}
MS=${MS:-16384 65536}
WARMUP=${WARMUP:-10}
STEPS=${STEPS:-40}
REPEATS=${REPEATS:-1}
SYN_FEATURES=${SYN_FEATURES:-4096}
EVAL_TOKENS=${EVAL_TOKENS:-4096}
INIT_SAMPLE=${INIT_SAMPLE:-4096}
SAEC_VARIANTS=${SAEC_VARIANTS:-fp32 tf32}
PEER_VARIANTS=${PEER_VARIANTS:-bf16 fp32}
RUN_TIMEOUT=${RUN_TIMEOUT:-240}
BUDGET_S=${BUDGET_S:-0}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/benchmarks/results}
DEFAULT_SUMMARY=${DEFAULT_SUMMARY:-}

if [[ -z ${PYTHON:-} ]]; then
  PYTHON=/usr/bin/python3
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import torch' 2>/dev/null; then PYTHON=$(command -v python3); fi
fi
(( WARMUP >= 1 )) || { echo "bench_train_gpu.sh: WARMUP must be >= 1 (it is saec's --log-every)" >&2; exit 2; }
STEPS=$(( (STEPS + WARMUP - 1) / WARMUP * WARMUP ))   # a multiple of WARMUP: the last step logs

if [[ $RUN_SAEC == 1 && ! -x $SAEC ]]; then
  echo "bench_train_gpu.sh: $SAEC not found; build it or set SAEC (or run with --peer-only)" >&2
  exit 2
fi
if [[ $RUN_PEER == 1 ]] && ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  echo "bench_train_gpu.sh: $PYTHON cannot import torch; set PYTHON" >&2
  exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/saec_bench_train_gpu.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$RESULTS_DIR"

# ---- the machine --------------------------------------------------------------------------------
if [[ $DEVICE == cuda* ]]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit \
    --format=csv,noheader >"$WORK/gpu.csv" 2>/dev/null || : >"$WORK/gpu.csv"
  nvcc --version 2>/dev/null | tail -n 2 | head -n 1 >"$WORK/nvcc.txt" || true
fi

time_left() { # seconds left of BUDGET_S (a large number when there is no budget)
  if (( BUDGET_S > 0 )); then echo $(( BUDGET_S - (SECONDS - T_START) )); else echo 1000000; fi
}
run_limit() { # the timeout for the next run, or nothing when it should be skipped
  local left; left=$(time_left)
  (( left < 30 )) && return 1
  local lim=$(( left - 15 )); (( lim > RUN_TIMEOUT )) && lim=$RUN_TIMEOUT
  echo "$lim"
}
now() { date +%s.%N; }

FAILED=0   # 1: a run failed; 3: none failed, but the time budget skipped some
SKIPPED=0
TOTAL=$((WARMUP + STEPS))
echo "== bench_train_gpu: device $DEVICE, d=$D k=$K batch=$BATCH m in {$MS}, warm-up $WARMUP + $STEPS timed steps, saec {$SAEC_VARIANTS}, torch {$PEER_VARIANTS}, $REPEATS repeat(s)" >&2
for m in $MS; do
  for ((r = 1; r <= REPEATS; r++)); do
    if [[ $RUN_SAEC == 1 ]]; then
      for v in $SAEC_VARIANTS; do
        tag=saec_${m}_${v}_$r
        if ! lim=$(run_limit); then
          echo "   saec  m=$m $v run $r: SKIPPED (time budget)" >&2
          echo "skipped: time budget" >"$WORK/$tag.err"; SKIPPED=1; continue
        fi
        tf32=0; [[ $v == tf32 ]] && tf32=1
        t0=$(now)
        SAEC_CUDA_TF32=$tf32 timeout --kill-after=10 "$lim" "$SAEC" train --device "$DEVICE" \
          --d-in "$D" --latents "$m" --k "$K" --batch-size "$BATCH" --steps "$TOTAL" \
          --log-every "$WARMUP" --eval-tokens "$EVAL_TOKENS" --init-sample "$INIT_SAMPLE" \
          --syn-features "$SYN_FEATURES" --out "$WORK/$tag" >"$WORK/$tag.log" 2>&1
        rc=$?
        t1=$(now)
        if [[ $rc == 0 && -f $WORK/$tag/summary.json && -f $WORK/$tag/metrics.jsonl ]]; then
          cp "$WORK/$tag/summary.json" "$WORK/$tag.summary.json"
          cp "$WORK/$tag/metrics.jsonl" "$WORK/$tag.metrics.jsonl"
          echo "$t0 $t1" >"$WORK/$tag.wall"
          echo "   saec  m=$m $v run $r: $("$PYTHON" - "$WORK/$tag.summary.json" "$WORK/$tag.metrics.jsonl" "$WARMUP" "$STEPS" "$BATCH" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1])); w, n, b = (int(v) for v in sys.argv[3:6])
at = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
e = [r["elapsed_seconds"] for r in at if r["step"] == w]
t = s["seconds"] - e[0] if e else float("nan")
print("%.0f tokens/s timed (%.3f s for %d steps), %.0f tokens/s whole loop, device %s" % (
    n * b / t if t > 0 else float("nan"), t, n, s["tokens_per_second"], s["device"]))
EOF
)" >&2
        else
          echo "   saec  m=$m $v run $r FAILED (rc $rc); log tail:" >&2
          tail -n 8 "$WORK/$tag.log" >&2
          { echo "rc $rc"; tail -n 20 "$WORK/$tag.log"; } >"$WORK/$tag.err"
          FAILED=1
        fi
        rm -rf "${WORK:?}/$tag" # the checkpoint of an m=65536 run is ~3.6 GB
      done
    fi
    if [[ $RUN_PEER == 1 ]]; then
      for v in $PEER_VARIANTS; do
        tag=torch_${m}_${v}_$r
        if ! lim=$(run_limit); then
          echo "   torch m=$m $v run $r: SKIPPED (time budget)" >&2
          echo "skipped: time budget" >"$WORK/$tag.err"; SKIPPED=1; continue
        fi
        extra=()
        [[ $v == bf16 ]] && extra=(--bf16-autocast)
        timeout --kill-after=10 "$lim" "$PYTHON" "$PEER" --device "${DEVICE%%:*}" --d "$D" --m "$m" \
          --k "$K" --batch "$BATCH" --steps "$STEPS" --warmup "$WARMUP" "${extra[@]}" \
          --out "$WORK/$tag.json" >/dev/null 2>"$WORK/$tag.log"
        rc=$?
        if [[ $rc == 0 && -f $WORK/$tag.json ]]; then
          echo "   torch m=$m $v run $r: $("$PYTHON" -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f tokens/s (%.3f s for %d steps), device %s" % (r["tokens_per_second"], r["seconds"], r["steps"], r["device"]))' "$WORK/$tag.json")" >&2
        else
          echo "   torch m=$m $v run $r FAILED (rc $rc):" >&2
          tail -n 8 "$WORK/$tag.log" >&2
          { echo "rc $rc"; tail -n 20 "$WORK/$tag.log"; } >"$WORK/$tag.err"
          FAILED=1
        fi
      done
    fi
  done
done

# ---- collect -----------------------------------------------------------------------------------
COMMIT=${SAEC_GIT_COMMIT:-$(git -C "$ROOT" rev-parse --verify -q HEAD 2>/dev/null || echo unknown)}
DIRTY=${SAEC_GIT_DIRTY:-$([[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && echo true || echo false)}
BTG_DEVICE=$DEVICE BTG_D=$D BTG_K=$K BTG_BATCH=$BATCH BTG_MS=$MS BTG_WARMUP=$WARMUP \
BTG_STEPS=$STEPS BTG_REPEATS=$REPEATS BTG_SAEC_VARIANTS=$SAEC_VARIANTS \
BTG_PEER_VARIANTS=$PEER_VARIANTS BTG_RUN_SAEC=$RUN_SAEC BTG_RUN_PEER=$RUN_PEER \
BTG_SYN_FEATURES=$SYN_FEATURES BTG_EVAL_TOKENS=$EVAL_TOKENS BTG_INIT_SAMPLE=$INIT_SAMPLE \
"$PYTHON" - "$WORK" "$RESULTS_DIR" "$COMMIT" "$DIRTY" "$DRY_RUN" "$DEFAULT_SUMMARY" <<'EOF'
import datetime, json, os, platform, re, sys
work, results_dir, commit, dirty, dry_run, default_summary = sys.argv[1:7]
E = os.environ
device, d, k, batch = E["BTG_DEVICE"], int(E["BTG_D"]), int(E["BTG_K"]), int(E["BTG_BATCH"])
ms = [int(v) for v in E["BTG_MS"].split()]
warmup, steps, repeats = int(E["BTG_WARMUP"]), int(E["BTG_STEPS"]), int(E["BTG_REPEATS"])
saec_variants, peer_variants = E["BTG_SAEC_VARIANTS"].split(), E["BTG_PEER_VARIANTS"].split()
run_saec, run_peer = E["BTG_RUN_SAEC"] == "1", E["BTG_RUN_PEER"] == "1"
options = dict(syn_features=int(E["BTG_SYN_FEATURES"]), eval_tokens=int(E["BTG_EVAL_TOKENS"]),
               init_sample=int(E["BTG_INIT_SAMPLE"]))

def read(path, kind="json"):
    try:
        with open(path) as f:
            if kind == "json":
                return json.load(f)
            if kind == "jsonl":
                return [json.loads(l) for l in f if l.strip()]
            return f.read()
    except (OSError, ValueError):
        return None

def cpu_model():
    for line in (read("/proc/cpuinfo", "text") or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"

gpu = None
csv = (read(os.path.join(work, "gpu.csv"), "text") or "").strip().splitlines()
if csv:
    f = [v.strip() for v in csv[0].split(",")]
    keys = ["name", "driver_version", "memory_total", "clocks_max_sm", "clocks_max_mem", "power_limit"]
    gpu = dict(zip(keys, f))
    gpu["count"] = len(csv)
nvcc = (read(os.path.join(work, "nvcc.txt"), "text") or "").strip() or None

def saec_run(m, v, r):
    tag = "saec_%d_%s_%d" % (m, v, r)
    s = read(os.path.join(work, tag + ".summary.json"))
    if s is None:
        err = read(os.path.join(work, tag + ".err"), "text")
        return {"variant": v, "repeat": r, "error": (err or "not run").strip()[-2000:]}
    recs = read(os.path.join(work, tag + ".metrics.jsonl"), "jsonl") or []
    at = [x["elapsed_seconds"] for x in recs if x.get("step") == warmup]
    timed = s["seconds"] - at[0] if at else None
    wall = (read(os.path.join(work, tag + ".wall"), "text") or "").split()
    return {
        "variant": v, "repeat": r, "device": s.get("device"),
        "steps": s.get("steps"), "tokens": s.get("tokens"),
        "loop_seconds": s.get("seconds"),
        "loop_tokens_per_second": s.get("tokens_per_second"),
        "elapsed_at_warmup_seconds": at[0] if at else None,
        "timed_steps": steps, "timed_seconds": timed,
        "timed_tokens_per_second": steps * batch / timed if timed and timed > 0 else None,
        "process_wall_seconds": float(wall[1]) - float(wall[0]) if len(wall) == 2 else None,
        "final_nmse": s.get("nmse"), "l0": s.get("l0"), "mmcs": s.get("mmcs"),
        "metrics": recs,
    }

def torch_run(m, v, r):
    tag = "torch_%d_%s_%d" % (m, v, r)
    t = read(os.path.join(work, tag + ".json"))
    if t is None:
        err = read(os.path.join(work, tag + ".err"), "text")
        return {"variant": v, "repeat": r, "error": (err or "not run").strip()[-2000:]}
    t = dict(t); t["variant"] = v; t["repeat"] = r
    return t

def best(runs, key):
    vals = [x[key] for x in runs if x.get(key)]
    return max(vals) if vals else None

now = datetime.datetime.now(datetime.timezone.utc)
result = {
    "benchmark": "train_gpu" + ("_dryrun" if dry_run == "1" else ""),
    "date": now.isoformat(timespec="seconds"),
    "git_commit": commit, "git_dirty": dirty == "true",
    "device": device, "gpu": gpu, "nvcc": nvcc,
    "host": {"nproc": os.cpu_count(), "cpu_model": cpu_model(), "kernel": platform.release()},
    "d": d, "k": k, "batch": batch, "warmup_steps": warmup, "timed_steps": steps,
    "repeats": repeats, "saec_options": options,
    "method": ("saec: one run of warmup+timed steps with --log-every warmup; timed seconds = "
               "summary.json seconds - metrics.jsonl elapsed_seconds at step warmup (the device "
               "is synchronised at logging steps); the loop includes host-side synthetic data "
               "and its upload. torch: benchmarks/peers/torch_topk_sae.py, its own timer over "
               "the timed steps after the warm-up (cuda synchronised). Best of the repeats."),
    "default_run": None, "sizes": [],
}
if default_summary:
    s = read(default_summary)
    if s is not None:
        s = dict(s)
        s["ground_truth_recovered"] = bool(s.get("mmcs", 0) >= 0.9 and s.get("nmse", 1) <= 0.1)
        s["criterion"] = "mmcs >= 0.9 and nmse <= 0.1 (tests/test_default_run.sh)"
        result["default_run"] = s

for m in ms:
    saec = {v: [saec_run(m, v, r) for r in range(1, repeats + 1)] for v in saec_variants} if run_saec else {}
    peer = {v: [torch_run(m, v, r) for r in range(1, repeats + 1)] for v in peer_variants} if run_peer else {}
    tps = {}
    for v, runs in saec.items():
        tps["saec_" + v] = best(runs, "timed_tokens_per_second")
        tps["saec_" + v + "_whole_loop"] = best(runs, "loop_tokens_per_second")
    for v, runs in peer.items():
        tps["torch_" + v] = best(runs, "tokens_per_second")
    ratios = {}
    for sv in saec_variants:
        for pv in peer_variants:
            a, b = tps.get("saec_" + sv), tps.get("torch_" + pv)
            ratios["saec_%s_over_torch_%s" % (sv, pv)] = a / b if a and b else None
    result["sizes"].append({"d": d, "m": m, "k": k, "batch": batch,
                            "tokens_per_second": tps, "ratios": ratios,
                            "runs": {"saec": saec, "torch": peer}})

slug = "cpu"
if gpu:
    words = [w for w in re.sub(r"(?i)nvidia", "", gpu["name"]).split() if re.search(r"\d", w)]
    slug = re.sub(r"[^a-z0-9]", "", words[0].lower()) if words else "gpu"
stem = os.path.join(results_dir, "train_gpu_%s%s_%s" % (
    "dryrun_" if dry_run == "1" else "", slug, now.strftime("%Y-%m-%d")))
with open(stem + ".json", "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")

def fmt(v, spec="{:,.0f}"):
    return spec.format(v) if v is not None else "n/a"

dev_name = gpu["name"] if gpu else "%s (%s)" % (device, cpu_model())
md = ["# GPU training throughput%s, %s" % (" (DRY RUN on %s)" % device if dry_run == "1" else "",
                                           result["date"][:10]), "",
      "Device: %s%s. Commit %s%s. d=%d, k=%d, batch %d; %d warm-up + %d timed steps, best of %d." % (
          dev_name, ", driver %s, %s" % (gpu["driver_version"], gpu["memory_total"]) if gpu else "",
          commit[:12], " (dirty)" if dirty == "true" else "", d, k, batch, warmup, steps, repeats),
      "saec: FP32 (default) and TF32 (SAEC_CUDA_TF32=1), timed window from metrics.jsonl; "
      "torch: benchmarks/peers/torch_topk_sae.py (dense encoder, topk, dense decoder, autograd, "
      "Adam) with bf16 autocast and in FP32. Tokens/s; ratio = saec / torch.", ""]
cols = [("saec_" + v, "saec %s" % v) for v in saec_variants] + \
       [("torch_" + v, "torch %s" % v) for v in peer_variants]
rcols = [("saec_%s_over_torch_%s" % (sv, pv), "saec %s / torch %s" % (sv, pv))
         for sv in saec_variants for pv in peer_variants]
md.append("| m | " + " | ".join(c[1] for c in cols) + " | " + " | ".join(c[1] for c in rcols) +
          " | saec fp32 whole loop |")
md.append("|---:|" + "---:|" * (len(cols) + len(rcols) + 1))
for s in result["sizes"]:
    t, q = s["tokens_per_second"], s["ratios"]
    md.append("| %d | " % s["m"] + " | ".join(fmt(t.get(c[0])) for c in cols) + " | " +
              " | ".join(fmt(q.get(c[0]), "{:.2f}x") for c in rcols) + " | " +
              fmt(t.get("saec_fp32_whole_loop")) + " |")
dr = result["default_run"]
if dr:
    md += ["", "Default run (`saec train` with its defaults, %s steps): mmcs %s, nmse %s, l0 %s, "
           "%s tokens/s (whole loop), device %s: ground truth %s." % (
               fmt(dr.get("steps"), "{:.0f}"), fmt(dr.get("mmcs"), "{:.4f}"), fmt(dr.get("nmse"), "{:.4f}"),
               fmt(dr.get("l0"), "{:.2f}"), fmt(dr.get("tokens_per_second")), dr.get("device"),
               "recovered" if dr["ground_truth_recovered"] else "NOT recovered")]
failed = [(s["m"], side, v) for s in result["sizes"] for side in ("saec", "torch")
          for v, runs in s["runs"][side].items() for x in runs if "error" in x]
if failed:
    md += ["", "Runs without a result: " + ", ".join("%s %s m=%d" % (side, v, m) for m, side, v in failed) +
           " (see the JSON)."]
with open(stem + ".md", "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
print("\nwrote %s.json and %s.md" % (stem, stem), file=sys.stderr)
EOF
rc=$?
(( rc == 0 )) || FAILED=1
(( FAILED == 0 && SKIPPED == 1 )) && FAILED=3
exit $FAILED
