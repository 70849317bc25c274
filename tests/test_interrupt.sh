#!/usr/bin/env bash
# SIGINT and SIGTERM save a resumable checkpoint; the resumed run ends where an uninterrupted
# run ends, bit for bit.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
ARGS=(--d-in 32 --syn-features 96 --latents 128 --k 4 --batch-size 256 --steps 1500 --log-every 10
      --warmup-steps 10 --eval-tokens 4096 --init-sample 1024 --dead-tokens 4096)
"$SAEC" train "${ARGS[@]}" --out full 2>full.log >/dev/null || fail "uninterrupted run failed"

for sig in INT TERM; do
  "$SAEC" train "${ARGS[@]}" --out run_$sig 2>run_$sig.log >/dev/null &
  pid=$!
  # signal once training is under way (the first metrics record is written)
  for _ in $(seq 1 600); do
    [ -s run_$sig/metrics.jsonl ] && break
    sleep 0.05
  done
  kill -$sig $pid
  wait $pid; rc=$?
  expected=$([ $sig = INT ] && echo 130 || echo 143)
  if [ $rc -eq 0 ]; then fail "run finished before SIG$sig arrived (make the run longer)"; continue; fi
  [ $rc -eq $expected ] && pass "SIG$sig exit code $rc" || { fail "SIG$sig exit code $rc, expected $expected"; cat run_$sig.log >&2; }
  grep -q "checkpoint saved" run_$sig.log && pass "SIG$sig checkpoint saved" || fail "SIG$sig: no checkpoint message"
  ls run_$sig | grep -q '\.tmp\.' && fail "SIG$sig left a temporary file" || pass "SIG$sig left no temporary file"
  "$SAEC" train --resume run_$sig 2>resume_$sig.log >/dev/null || { fail "resume after SIG$sig failed"; cat resume_$sig.log >&2; }
  "$PYTHON" "$TESTS_DIR/st_tool.py" equal full/model.safetensors run_$sig/model.safetensors \
    && pass "SIG$sig: resumed weights identical to the uninterrupted run" || fail "SIG$sig: resumed weights differ"
done
finish
