#!/usr/bin/env bash
# --resume continues a stopped run to the same final weights as an uninterrupted run.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
ARGS=(--d-in 32 --syn-features 96 --latents 128 --k 4 --batch-size 256 --steps 120 --log-every 20
      --warmup-steps 10 --eval-tokens 4096 --init-sample 1024 --dead-tokens 2048)
# Every variant, with its state past the point where it matters: BatchTopK's threshold is tracked
# and ATM masks before the stop at step 50.
VARIANT=(--batchtopk-threshold-start 30 --atm-warmup 0.2 --l1-coef 0.03 --jumprelu-theta-init 0.1)
for arch in topk batchtopk relu jumprelu atm; do
  "$SAEC" train "${ARGS[@]}" "${VARIANT[@]}" --arch $arch --out full_$arch 2>full_$arch.log >/dev/null \
    || { fail "$arch: uninterrupted run failed"; cat full_$arch.log >&2; continue; }
  "$SAEC" train "${ARGS[@]}" "${VARIANT[@]}" --arch $arch --out part_$arch --stop-at-step 50 \
    2>part_$arch.log >/dev/null; rc=$?
  [ $rc -eq 0 ] && pass "$arch: stop_at_step exits 0" || fail "$arch: stop_at_step exit $rc"
  [ ! -e part_$arch/summary.json ] && pass "$arch: stopped run has no summary yet" \
    || fail "$arch: stopped run wrote a summary"
  "$SAEC" train --resume part_$arch 2>resume_$arch.log >/dev/null \
    || { fail "$arch: resume failed"; cat resume_$arch.log >&2; }
  grep -q "resumed at step 50" resume_$arch.log && pass "$arch: resumed at step 50" \
    || fail "$arch: resume did not start at step 50"
  "$PYTHON" "$TESTS_DIR/st_tool.py" equal full_$arch/model.safetensors part_$arch/model.safetensors \
    && pass "$arch: final weights identical" || fail "$arch: final weights differ"
  "$PYTHON" "$TESTS_DIR/st_tool.py" equal full_$arch/optimizer.safetensors \
    part_$arch/optimizer.safetensors && pass "$arch: optimizer state identical" \
    || fail "$arch: optimizer state differs"
done
"$PYTHON" "$TESTS_DIR/st_tool.py" list part_batchtopk/model.safetensors | grep -q batchtopk_threshold \
  && pass "batchtopk checkpoint holds its threshold" || fail "batchtopk checkpoint lacks its threshold"
"$PYTHON" "$TESTS_DIR/st_tool.py" list part_atm/optimizer.safetensors | grep -q atm_stats \
  && pass "atm optimizer state holds its statistics" || fail "atm optimizer state lacks atm_stats"
steps=$("$PYTHON" -c "import json; print([json.loads(l)['step'] for l in open('part_topk/metrics.jsonl')])")
[ "$steps" = "$("$PYTHON" -c "print(sorted(set($steps)))")" ] && pass "metrics.jsonl steps increasing: $steps" \
  || fail "metrics.jsonl steps: $steps"
# A key that would break the equivalence may not change on resume.
"$SAEC" train --resume part_topk --lr 0.1 2>err.txt >/dev/null; rc=$?
[ $rc -eq 2 ] && grep -q "cannot change when resuming" err.txt && pass "lr change on resume refused" || fail "lr change on resume: exit $rc"
# batch_size may change only to keep the global batch (per rank, at another world size).
"$SAEC" train --resume part_topk --batch-size 100 2>err2.txt >/dev/null; rc=$?
[ $rc -eq 2 ] && grep -q "tokens a step; 1 rank(s) of batch_size 100 would make it 100" err2.txt \
  && grep -q "resume with --batch-size" err2.txt && pass "a global batch change on resume is refused, with the batch_size to use" \
  || fail "batch_size change on resume: exit $rc: $(cat err2.txt)"
finish
