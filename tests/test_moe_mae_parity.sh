#!/usr/bin/env bash
# MoE-MAE parity with PyTorch (issue 16): saec's full SPEC §7 network (CPU backend, fp32) writes
# its initial weights, a batch of synthetic eo tiles, its loss and every parameter's gradient
# (tests/moe_mae_parity_dump.c); benchmarks/peers/moe_mae_torch.py loads them, draws the same
# masks, router noise and dropout from saec's counter-based hashes, and checks the loss terms and
# all 396 gradients within 1e-4 relative; then a 100-step AdamW loss curve within 1%.
DUMP="$1"
source "$(dirname "$0")/lib.sh"
cd "$WORK"
PEER="$TESTS_DIR/../benchmarks/peers/moe_mae_torch.py"
"$PYTHON" -c "import torch, numpy" 2>/dev/null \
  || { fail "$PYTHON cannot import torch and numpy (Debian: python3-torch python3-numpy; cmake/install-deps.sh)"; finish; }

OMP_NUM_THREADS=2 "$DUMP" grad grad.st 8 5 16 >dump.out 2>&1 || { fail "saec grad bundle"; cat dump.out >&2; finish; }
"$PYTHON" "$PEER" --grad grad.st --threads 2 >grad.out 2>&1 \
  && grep -q "^moe_mae_torch --grad: OK: 4 loss terms and 396 gradients" grad.out \
  && pass "saec's loss terms and 396 gradients agree with PyTorch within 1e-4 (fp32)" \
  || { fail "saec vs PyTorch gradients"; tail -40 grad.out >&2; }

OMP_NUM_THREADS=2 "$DUMP" curve curve.st 100 4 >dumpc.out 2>&1 || { fail "saec curve bundle"; cat dumpc.out >&2; finish; }
"$PYTHON" "$PEER" --curve curve.st --threads 2 >curve.out 2>&1 \
  && grep -q "^moe_mae_torch --curve: OK: 100 steps within 0.01" curve.out \
  && pass "saec's 100-step loss curve agrees with PyTorch within 1%" \
  || { fail "saec vs PyTorch loss curve"; tail -40 curve.out >&2; }
finish
