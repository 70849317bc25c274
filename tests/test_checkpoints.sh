#!/usr/bin/env bash
# The run directory: checkpoints published whole (step directories, `latest`, the stable
# symlinks), keep_checkpoints, a damaged newest checkpoint falling back to the previous one, the
# older layout resuming, one writer per directory, a killed writer's leftovers removed (and only
# those), a failed first save leaving nothing, inspect listing the checkpoints.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
ARGS=(--d-in 24 --syn-features 64 --latents 96 --k 4 --batch-size 128 --steps 40 --log-every 10
      --warmup-steps 5 --eval-tokens 1024 --init-sample 512 --dead-tokens 2048)
equal_run() { # equal_run A B: weights and optimizer state bit for bit
  "$PYTHON" "$TESTS_DIR/st_tool.py" equal "$1/model.safetensors" "$2/model.safetensors" &&
    "$PYTHON" "$TESTS_DIR/st_tool.py" equal "$1/optimizer.safetensors" "$2/optimizer.safetensors"
}
no_tmp() { [ -z "$(find "$1" -name '*.tmp.*' 2>/dev/null)" ]; }

"$SAEC" train "${ARGS[@]}" --out full 2>full.log >/dev/null || { fail "uninterrupted run failed"; cat full.log >&2; }

# ---- layout and keep_checkpoints ----
"$SAEC" train "${ARGS[@]}" --checkpoint-every 10 --keep-checkpoints 3 --out kept 2>kept.log >/dev/null ||
  { fail "run with checkpoint_every 10 failed"; cat kept.log >&2; }
steps=$(ls kept/checkpoints | grep '^step-' | tr '\n' ' ')
[ "$steps" = "step-000000000020 step-000000000030 step-000000000040 " ] &&
  pass "keep_checkpoints 3 keeps the newest three: $steps" || fail "checkpoints kept: '$steps'"
[ "$(readlink kept/checkpoints/latest)" = step-000000000040 ] && pass "latest points at the newest" ||
  fail "latest -> $(readlink kept/checkpoints/latest)"
[ "$(readlink kept/model.safetensors)" = checkpoints/latest/model.safetensors ] &&
  [ "$(readlink kept/optimizer.safetensors)" = checkpoints/latest/optimizer.safetensors ] &&
  pass "model/optimizer.safetensors are stable links to the latest" || fail "stable links wrong"
equal_run full kept && pass "checkpointing every 10 steps does not change the result" ||
  fail "checkpointing changed the weights"
no_tmp kept && pass "no temporary file left" || fail "temporary files left: $(find kept -name '*.tmp.*')"
"$SAEC" inspect kept >inspect.txt 2>&1
grep -q "checkpoints (newest first): 3" inspect.txt && grep -q "step 40 .*step-000000000040  (latest)" inspect.txt &&
  grep -q "step 20 .*step-000000000020" inspect.txt && pass "inspect lists the checkpoints and steps" ||
  { fail "inspect's checkpoint list"; cat inspect.txt >&2; }

# ---- a damaged newest checkpoint: resume falls back to the previous one and says so ----
"$SAEC" train "${ARGS[@]}" --checkpoint-every 10 --stop-at-step 30 --out dmg 2>/dev/null >/dev/null
ls dmg/checkpoints | grep -q step-000000000020 && ls dmg/checkpoints | grep -q step-000000000030 ||
  fail "stop_at_step 30 run lacks its checkpoints: $(ls dmg/checkpoints)"
f=dmg/checkpoints/step-000000000030/model.safetensors
truncate -s $(( $(stat -c %s $f) - 100 )) $f
"$SAEC" train --resume dmg --stop-at-step 0 2>dmg.log >/dev/null || { fail "resume with a damaged newest checkpoint failed"; cat dmg.log >&2; }
grep -q "checkpoint '.*step-000000000030' cannot be resumed" dmg.log &&
  grep -q "falling back to the previous checkpoint, '.*step-000000000020'" dmg.log &&
  pass "a damaged newest checkpoint is named and the previous one is taken" || { fail "no fallback message"; cat dmg.log >&2; }
grep -q "resumed at step 20" dmg.log && pass "resumed at step 20" || fail "not resumed at step 20"
equal_run full dmg && pass "the run resumed from the fallback ends equal to the uninterrupted run" ||
  fail "fallback resume differs from the uninterrupted run"
# optimizer at another step than the model: also damaged
"$SAEC" train "${ARGS[@]}" --checkpoint-every 10 --stop-at-step 30 --out mix 2>/dev/null >/dev/null
cp mix/checkpoints/step-000000000020/optimizer.safetensors mix/checkpoints/step-000000000030/optimizer.safetensors
"$SAEC" train --resume mix --stop-at-step 0 2>mix.log >/dev/null && grep -q "is at step 20 but the model is at step 30" mix.log &&
  equal_run full mix && pass "model and optimizer of different steps: falls back, ends equal" ||
  { fail "mixed-step checkpoint"; cat mix.log >&2; }
# the only checkpoint damaged: a clear error, nothing written
"$SAEC" train "${ARGS[@]}" --stop-at-step 10 --out one 2>/dev/null >/dev/null
printf 'garbage' >one/checkpoints/step-000000000010/optimizer.safetensors
"$SAEC" train --resume one 2>one.log >/dev/null; rc=$?
[ $rc -eq 3 ] && grep -q "optimizer.safetensors" one.log && pass "the only checkpoint damaged: exit 3 naming the file" ||
  { fail "damaged only checkpoint: rc $rc"; cat one.log >&2; }

# ---- the older layout (plain files in the run directory) still resumes ----
"$SAEC" train "${ARGS[@]}" --stop-at-step 20 --out old 2>/dev/null >/dev/null
for f in model optimizer; do
  cp --remove-destination "old/checkpoints/step-000000000020/$f.safetensors" "old/$f.safetensors"
done
rm -rf old/checkpoints
"$SAEC" inspect old 2>&1 | grep -q "older layout" && pass "inspect shows the older layout" || fail "inspect of the older layout"
"$SAEC" eval old >/dev/null 2>&1 && pass "eval reads the older layout" || fail "eval of the older layout"
"$SAEC" train --resume old 2>old.log >/dev/null || { fail "resume of the older layout failed"; cat old.log >&2; }
equal_run full old && pass "the older layout resumes to the uninterrupted result" || fail "older layout resume differs"
[ -L old/model.safetensors ] && [ -d old/checkpoints/step-000000000020 ] && [ -d old/checkpoints/step-000000000040 ] &&
  pass "its next save converts it (the old checkpoint kept as step 20)" || fail "older layout not converted: $(ls -R old)"

# ---- one writer per run directory ----
"$SAEC" train "${ARGS[@]}" --stop-at-step 10 --out busy 2>/dev/null >/dev/null
flock busy/saec.lock -c "echo 'pid 4242 on host: saec train' >busy/saec.lock; \
  '$SAEC' train --resume busy >/dev/null 2>busy.log; echo \$? >busy.rc"
[ "$(cat busy.rc)" = 2 ] && grep -q "'busy' is in use by another saec process (pid 4242" busy.log &&
  pass "a second writer gets exit 2 naming the holder" || { fail "second writer: rc $(cat busy.rc)"; cat busy.log >&2; }
grep -q "hint:" busy.log && pass "with a hint" || fail "no hint"
flock busy/saec.lock -c "'$SAEC' train ${ARGS[*]} --out busy >/dev/null 2>busy2.log; echo \$? >busy.rc"
[ "$(cat busy.rc)" = 2 ] && pass "a new run into a locked directory: exit 2" || fail "new run into a locked dir: rc $(cat busy.rc)"
flock busy/saec.lock -c "'$SAEC' eval busy >/dev/null 2>&1 && '$SAEC' inspect busy >/dev/null 2>&1; echo \$? >busy.rc"
[ "$(cat busy.rc)" = 0 ] && pass "eval and inspect read a locked run" || fail "readers blocked by the lock"
"$SAEC" export busy --format sparsify --out busy_export >/dev/null 2>&1
flock busy_export/saec.lock -c "'$SAEC' export busy --format sparsify --out busy_export >/dev/null 2>exp.log; echo \$? >busy.rc"
[ "$(cat busy.rc)" = 2 ] && grep -q "in use by another saec process" exp.log &&
  pass "export into a locked directory: exit 2" || { fail "export into a locked dir: rc $(cat busy.rc)"; cat exp.log >&2; }
# two writers started together: exactly one trains, the other is refused
"$SAEC" train "${ARGS[@]}" --steps 400 --out race >/dev/null 2>race1.log & p1=$!
"$SAEC" train "${ARGS[@]}" --steps 400 --out race >/dev/null 2>race2.log & p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
[ "$(echo $r1 $r2 | tr ' ' '\n' | sort | tr '\n' ' ')" = "0 2 " ] &&
  pass "two writers started together: one ran, one was refused (exit $r1, $r2)" || fail "two writers: exit $r1 and $r2"
"$PYTHON" -c "
import json,sys
for line in open('race/metrics.jsonl'): json.loads(line)" && pass "metrics.jsonl is valid JSON lines" || fail "metrics.jsonl interleaved"

# ---- a killed writer's leftovers are removed, and only those ----
"$SAEC" train "${ARGS[@]}" --stop-at-step 20 --out left 2>/dev/null >/dev/null
sleep 0 & wait $!; dead=$!            # a pid whose process is gone
sleep 60 & live=$!                    # a live process: its files are not ours to remove
mkdir left/checkpoints/step-000000000030.tmp.$dead
head -c 100000 /dev/urandom >left/checkpoints/step-000000000030.tmp.$dead/model.safetensors.tmp.$dead
head -c 1000 /dev/urandom >left/optimizer.safetensors.tmp.$dead
head -c 10 /dev/urandom >left/summary.json.tmp.$live
"$SAEC" train --resume left 2>left.log >/dev/null || { fail "resume with leftovers failed"; cat left.log >&2; }
grep -q "removed 2 leftover(s) of a killed writer" left.log && pass "the dead writer's leftovers are removed and counted" ||
  { fail "leftover message"; cat left.log >&2; }
[ ! -e left/checkpoints/step-000000000030.tmp.$dead ] && [ ! -e left/optimizer.safetensors.tmp.$dead ] &&
  [ -e left/summary.json.tmp.$live ] && pass "a live process's temporary file is kept" || fail "leftover removal: $(ls -R left)"
kill $live 2>/dev/null
equal_run full left && pass "the resumed run ends equal to the uninterrupted run" || fail "resume after cleanup differs"

# ---- numbers keep every digit: config.json and the checkpoint's config read back exactly ----
"$SAEC" train "${ARGS[@]}" --steps 2 --lr-end-ratio 0.30000000000000004 --out exact >/dev/null 2>&1
"$PYTHON" - exact <<'PY' && pass "config.json and the checkpoint hold lr_end_ratio 0.1 + 0.2 exactly" || fail "a config number lost digits"
import json, struct, sys
run = sys.argv[1]
want = 0.1 + 0.2
with open(f"{run}/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    ckpt = json.loads(json.loads(f.read(n))["__metadata__"]["config"])
sys.exit(0 if json.load(open(f"{run}/config.json"))["lr_end_ratio"] == want == ckpt["lr_end_ratio"] else 1)
PY

# ---- a failed first save (the disk full) leaves no checkpoint and no partial file ----
( trap '' XFSZ; ulimit -f 40; "$SAEC" train "${ARGS[@]}" --latents 1024 --out full_disk >/dev/null 2>disk.log ); rc=$?
[ $rc -ne 0 ] && grep -qi "file too large" disk.log && pass "a save that cannot be written fails (exit $rc): $(grep error disk.log | head -1)" ||
  { fail "full-disk save: rc $rc"; cat disk.log >&2; }
[ ! -e full_disk/model.safetensors ] && [ ! -e full_disk/optimizer.safetensors ] && no_tmp full_disk &&
  [ -z "$(ls full_disk/checkpoints 2>/dev/null)" ] && pass "it leaves no model, no lone optimizer, no partial file" ||
  fail "the failed save left: $(ls -R full_disk)"

finish
