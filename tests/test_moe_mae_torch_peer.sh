#!/usr/bin/env bash
# benchmarks/peers/moe_mae_torch.py, the PyTorch MoE-MAE that saec's parity test compares with,
# checked on its own (no saec involved):
# - --selftest: saec's hashes reproduced bit for bit (values printed by C that includes
#   include/saec/hash.h), SPEC §7's parameter counts, the hash-drawn masks' shapes and rates, a
#   float64 gradcheck of a tiny configuration;
# - a gradient bundle and a curve bundle written by the script in float64 (the layouts saec
#   writes) pass --grad and --curve in float32, and --grad fails (exit 1) at an impossible
#   tolerance, so the check can fail;
# - a truncated bundle is a data error (exit 3) naming the file; --bench prints its JSON.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
PEER="$TESTS_DIR/../benchmarks/peers/moe_mae_torch.py"
"$PYTHON" -c "import torch, numpy" 2>/dev/null \
  || { fail "$PYTHON cannot import torch and numpy (Debian: python3-torch python3-numpy; cmake/install-deps.sh)"; finish; }

"$PYTHON" "$PEER" --selftest --threads 2 >self.out 2>&1 && pass "--selftest" \
  || { fail "--selftest"; cat self.out >&2; }

"$PYTHON" "$PEER" --write-grad-bundle grad.st --batch 2 --seed 5 --step 3 --first-sample 7 \
  --threads 2 >wg.out 2>&1 || { fail "--write-grad-bundle"; cat wg.out >&2; finish; }
"$PYTHON" "$PEER" --grad grad.st --threads 2 >grad.out 2>&1 \
  && grep -q "^moe_mae_torch --grad: OK: 4 loss terms and 396 gradients" grad.out \
  && pass "--grad: fp32 loss and gradients within 1e-4 of the float64 bundle" \
  || { fail "--grad on its own bundle"; cat grad.out >&2; }
"$PYTHON" "$PEER" --grad grad.st --threads 2 --rel 1e-12 >strict.out 2>&1; rc=$?
[ $rc = 1 ] && grep -q "^moe_mae_torch --grad: FAIL" strict.out \
  && pass "--grad fails (exit 1) when the gradients differ beyond the tolerance" \
  || fail "--grad at --rel 1e-12: exit $rc, expected 1"

"$PYTHON" "$PEER" --write-curve-bundle curve.st --steps 6 --batch 2 --seed 2 --threads 2 \
  >wc.out 2>&1 || { fail "--write-curve-bundle"; cat wc.out >&2; finish; }
"$PYTHON" "$PEER" --curve curve.st --threads 2 >curve.out 2>&1 \
  && grep -q "^moe_mae_torch --curve: OK: 6 steps within 0.01" curve.out \
  && pass "--curve: 6 AdamW steps within 1% of the float64 curve" \
  || { fail "--curve on its own bundle"; cat curve.out >&2; }

head -c 4000 grad.st >trunc.st
"$PYTHON" "$PEER" --grad trunc.st >trunc.out 2>&1; rc=$?
[ $rc = 3 ] && grep -q "trunc.st: not a safetensors file" trunc.out \
  && pass "a truncated bundle: exit 3 naming the file" || fail "truncated bundle: exit $rc: $(cat trunc.out)"

"$PYTHON" "$PEER" --bench --batch 2 --steps 1 --warmup 1 --threads 1 >bench.json 2>bench.err \
  && [ "$(json_get bench.json batch)" = 2 ] && json_get bench.json images_per_second >/dev/null \
  && pass "--bench prints images_per_second" || { fail "--bench"; cat bench.err >&2; }
finish
