#!/usr/bin/env bash
# The kill battery: `saec train --checkpoint-every 1` is killed at random moments, most of them
# inside saves (a save here takes longer than a step), then resumed. Every run must resume, leave
# no temporary file, and end with the weights and optimizer state of an uninterrupted run, bit for
# bit. Every fourth trial sends SIGTERM or SIGINT instead of SIGKILL (a checkpoint is saved and
# the exit code is 143 or 130); every third SIGKILL trial kills the resumed run once more.
#   SAEC_KILL_N   trials (default 10, as in CI; more when asked)
#   SAEC_KILL_SEED  seed of the kill moments (default: from the clock, printed for a rerun)
source "$(dirname "$0")/lib.sh"
cd "$WORK"
N=${SAEC_KILL_N:-10}
SEED=${SAEC_KILL_SEED:-$(date +%s)}
RANDOM=$SEED
echo "kill battery: $N trials, seed $SEED (rerun with SAEC_KILL_SEED=$SEED)"
ARGS=(--d-in 64 --syn-features 256 --latents 4096 --k 8 --batch-size 64 --steps 60 --log-every 5
      --warmup-steps 5 --eval-tokens 1024 --init-sample 512 --dead-tokens 4096 --checkpoint-every 1)
t0=$(date +%s.%N)
"$SAEC" train "${ARGS[@]}" --out full 2>full.log >/dev/null || { fail "uninterrupted run failed"; cat full.log >&2; finish; }
t1=$(date +%s.%N)
RUN_MS=$("$PYTHON" -c "print(int(1000 * ($t1 - $t0)))")
echo "an uninterrupted run takes $RUN_MS ms"

# wait_checkpoint DIR: until the run has published its first checkpoint (or 20 s)
wait_checkpoint() {
  for _ in $(seq 1 400); do [ -e "$1/model.safetensors" ] && return 0; sleep 0.05; done
  return 1
}
# a random moment within the run (its training part: the first 70% of its time), in seconds
random_delay() { "$PYTHON" -c "print(${RANDOM} % max(1, $RUN_MS * 7 // 10) / 1000.0)"; }
# kill_run PID SIGNAL: signal the writer after a random delay; returns its exit status
kill_run() {
  sleep "$(random_delay)"
  kill -"$2" "$1" 2>/dev/null
  wait "$1" 2>/dev/null # (bash's "Killed" notice)
}
in_save=0

for i in $(seq 1 "$N"); do
  dir=k$i
  case $((i % 4)) in
    0) sig=$([ $((i % 8)) = 0 ] && echo INT || echo TERM) ;;
    *) sig=KILL ;;
  esac
  "$SAEC" train "${ARGS[@]}" --out $dir >/dev/null 2>$dir.log &
  pid=$!
  if ! wait_checkpoint $dir; then fail "trial $i: no first checkpoint within 20 s"; kill -9 $pid; wait $pid; continue; fi
  kill_run $pid $sig; rc=$?
  if [ $rc -eq 0 ]; then
    echo "trial $i: the run ended before SIG$sig"
  else
    # a temporary name means the kill landed inside a save
    if [ -n "$(find $dir -name '*.tmp.*')" ]; then in_save=$((in_save + 1)); where="inside a save"; else where="between saves"; fi
    echo "trial $i: SIG$sig (exit $rc) $where"
    if [ $sig != KILL ]; then
      expected=$([ $sig = INT ] && echo 130 || echo 143)
      [ $rc -eq $expected ] || { fail "trial $i: SIG$sig exit $rc, expected $expected"; cat $dir.log >&2; }
      grep -q "checkpoint saved" $dir.log || fail "trial $i: SIG$sig saved no checkpoint"
    fi
  fi
  # every third SIGKILL trial: kill the resume too, at a random moment
  if [ $sig = KILL ] && [ $((i % 3)) = 0 ]; then
    "$SAEC" train --resume $dir >/dev/null 2>$dir.resume0.log &
    kill_run $! KILL; echo "trial $i: resume killed too (exit $?)"
  fi
  if "$SAEC" train --resume $dir >/dev/null 2>$dir.resume.log; then
    :
  else
    fail "trial $i: resume failed"; cat $dir.resume.log >&2; continue
  fi
  left=$(find $dir -name '*.tmp.*')
  [ -z "$left" ] || fail "trial $i: temporary files left after the resume: $left"
  "$PYTHON" "$TESTS_DIR/st_tool.py" equal full/model.safetensors $dir/model.safetensors >/dev/null &&
    "$PYTHON" "$TESTS_DIR/st_tool.py" equal full/optimizer.safetensors $dir/optimizer.safetensors >/dev/null ||
    fail "trial $i: the resumed run differs from the uninterrupted run"
  # metrics.jsonl: every line JSON, steps increasing, each of the uninterrupted run's there (a
  # SIGTERM/SIGINT adds the record of the step it stopped at)
  "$PYTHON" - full/metrics.jsonl $dir/metrics.jsonl <<'PY' || fail "trial $i: metrics.jsonl lost steps, repeats them, or is not JSON lines"
import json, sys
full, got = [[json.loads(l)["step"] for l in open(p)] for p in sys.argv[1:]]
sys.exit(0 if got == sorted(set(got)) and set(full) <= set(got) else 1)
PY
done
echo "$in_save of $N kills landed inside a save"
[ $FAILED -eq 0 ] && pass "$N trials: every run resumed, no temporary file left, final state bit-identical"
finish
