#!/usr/bin/env bash
# --resume continues a stopped run to the same final weights as an uninterrupted run.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
ARGS=(--d-in 32 --syn-features 96 --latents 128 --k 4 --batch-size 256 --steps 120 --log-every 20
      --warmup-steps 10 --eval-tokens 4096 --init-sample 1024 --dead-tokens 2048)
"$SAEC" train "${ARGS[@]}" --out full 2>full.log >/dev/null || fail "uninterrupted run failed"
"$SAEC" train "${ARGS[@]}" --out part --stop-at-step 50 2>part.log >/dev/null; rc=$?
[ $rc -eq 0 ] && pass "stop_at_step exits 0" || fail "stop_at_step exit $rc"
[ ! -e part/summary.json ] && pass "stopped run has no summary yet" || fail "stopped run wrote a summary"
"$SAEC" train --resume part 2>resume.log >/dev/null || { fail "resume failed"; cat resume.log >&2; }
grep -q "resumed at step 50" resume.log && pass "resumed at step 50" || fail "resume did not start at step 50"
"$PYTHON" "$TESTS_DIR/st_tool.py" equal full/model.safetensors part/model.safetensors \
  && pass "final weights identical" || fail "final weights differ"
"$PYTHON" "$TESTS_DIR/st_tool.py" equal full/optimizer.safetensors part/optimizer.safetensors \
  && pass "optimizer state identical" || fail "optimizer state differs"
steps=$("$PYTHON" -c "import json; print([json.loads(l)['step'] for l in open('part/metrics.jsonl')])")
full_steps=$("$PYTHON" -c "import json; print([json.loads(l)['step'] for l in open('full/metrics.jsonl')])")
[ "$steps" = "$("$PYTHON" -c "print(sorted(set($steps)))")" ] && pass "metrics.jsonl steps increasing: $steps" || fail "metrics.jsonl steps: $steps (full run: $full_steps)"
# A key that would break the equivalence may not change on resume.
"$SAEC" train --resume part --lr 0.1 2>err.txt >/dev/null; rc=$?
[ $rc -eq 2 ] && grep -q "cannot change when resuming" err.txt && pass "lr change on resume refused" || fail "lr change on resume: exit $rc"
finish
