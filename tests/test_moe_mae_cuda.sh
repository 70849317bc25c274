#!/usr/bin/env bash
# The whole MoE-MAE network on the CUDA backend against the CPU backend (issue 16): the same tiny
# network (the moe_* keys shrink SPEC §7's; the code paths are the full model's), data, seed and
# schedule on `--device cpu` and `--device cuda`, then
#  1. weights and Adam moments agree within TOL, and the expert-load record within LOAD_TOL;
#  2. the frozen encoder's embeddings of a `saec gen eo` file (the fused inference path), the CPU
#     run's model on both devices, agree within EMB_TOL relative to max |e|;
#  3. the device is named "cuda (emulated on CPU)" in summary.json under the emulated GPU only.
# The key projection's bias is held to the looser KBIAS_TOL: its exact gradient is zero (softmax
# ignores it), so AdamW turns rounding noise into steps of about lr and the two devices' noise
# differs (see test_moe_mae_dp.sh).
# Measured on the emulated GPU (its GEMMs are the CPU's): worst weight difference 3e-8, k bias
# 8e-6, the expert-load records equal. A real GPU's cuBLAS sums in other orders: the non-emulated
# tolerances are first guesses, to be set from the printed worst values by a session with a GPU.
source "$(dirname "$0")/lib.sh"
require_cuda_device
cd "$WORK"
unset SAEC_CUDA_TF32 # TF32 GEMMs would round to 10-bit mantissas: the tolerances are for FP32
EMU=${SAEC_CUDA_EMULATED:-0}
if [ "$EMU" = 1 ]; then
  TOL=1e-6 KBIAS_TOL=1e-4 LOAD_TOL=0 EMB_TOL=1e-6
else # provisional, not yet measured on a GPU
  TOL=1e-4 KBIAS_TOL=1e-3 LOAD_TOL=1e-3 EMB_TOL=1e-4
fi
TINY=(--model moe-mae --eo-side 16 --moe-image 16 --moe-patch 4
      --moe-enc-dim 24 --moe-enc-depth 2 --moe-enc-heads 2 --moe-enc-kv-groups 1 --moe-enc-head-dim 8
      --moe-enc-experts 3 --moe-dec-dim 16 --moe-dec-depth 1 --moe-dec-heads 2 --moe-dec-kv-groups 1
      --moe-dec-head-dim 8 --moe-dec-hidden 16 --batch-size 12 --steps 12 --log-every 4
      --probe-tiles 300 --seed 3)
KBIAS='attn\.k\.bias'

for dev in cpu cuda; do
  "$SAEC" train "${TINY[@]}" --device $dev --out $dev >$dev.out 2>$dev.log \
    || { fail "training on $dev"; cat $dev.log >&2; finish; }
done
for f in model optimizer; do
  "$PYTHON" "$TESTS_DIR/st_tool.py" close cpu/$f.safetensors cuda/$f.safetensors $TOL "$KBIAS" \
    $KBIAS_TOL >close_$f.txt \
    && pass "$f: cuda within $TOL of cpu (worst $(grep -v "$KBIAS" close_$f.txt | sort -g -k5 | tail -1 | awk '{print $1, $5}'))" \
    || { fail "$f: cuda differs from cpu"; sort -g -k5 close_$f.txt | tail -4 >&2; }
done
"$PYTHON" - cpu/expert_load.jsonl cuda/expert_load.jsonl $LOAD_TOL <<'PY' \
  && pass "expert_load.jsonl: cuda within $LOAD_TOL of cpu" || fail "expert_load.jsonl differs"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 3, (len(a), len(b))
worst = max(abs(x - y) for ra, rb in zip(a, b) for ba, bb in zip(ra["blocks"], rb["blocks"])
            for x, y in zip(ba, bb))
print("worst expert-load difference", worst)
assert worst <= float(sys.argv[3]), worst
PY

# the fused inference path: one model, embedded on both devices
"$SAEC" gen eo --out tiles.h5 --tokens 150 --eo-side 16 --seed 4 >/dev/null 2>gen.log \
  || { fail "gen eo"; cat gen.log >&2; }
for dev in cpu cuda; do
  "$SAEC" embed cpu --data tiles.h5 --device $dev --out emb_$dev.h5 >/dev/null 2>embed_$dev.log \
    || { fail "embed on $dev"; cat embed_$dev.log >&2; }
done
"$PYTHON" - emb_cpu.h5 emb_cuda.h5 $EMB_TOL <<'PY' && pass "embeddings: cuda within $EMB_TOL of cpu" \
  || fail "embeddings differ"
import sys
import h5py
import numpy as np
a = h5py.File(sys.argv[1], "r")["embeddings"][...].astype(np.float64)
b = h5py.File(sys.argv[2], "r")["embeddings"][...].astype(np.float64)
assert a.shape == b.shape == (150, 24), (a.shape, b.shape)
rel = np.max(np.abs(a - b)) / np.max(np.abs(a))
print("worst embedding difference (relative)", rel)
assert rel <= float(sys.argv[3]), rel
PY

name=$(json_get cuda/summary.json device)
if [ "$EMU" = 1 ]; then
  [ "$name" = "cuda (emulated on CPU)" ] && pass "summary names the emulated device" \
    || fail "device under the emulator: '$name'"
else
  case "$name" in *emulated*) fail "a real GPU named emulated: '$name'" ;;
    *) pass "summary names the GPU ($name)" ;; esac
fi
finish
