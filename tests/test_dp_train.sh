#!/usr/bin/env bash
# Data-parallel training on the CPU over MPI (issue 6): 2 and 4 ranks reach the weights of 1 rank
# with the same global batch (within floating-point tolerance: the ranks sum their gradients in
# another order); a run resumes at another world size; ZeRO-1 equals the unsharded step bit for
# bit; ranks with different configurations stop with an error naming the key; only rank 0 writes
# the run's files.
source "$(dirname "$0")/lib.sh"
command -v mpirun >/dev/null || { echo "mpirun not found: skipped"; exit 77; }
cd "$WORK"
export OMP_NUM_THREADS=1 # up to 4 ranks share this machine's cores
MPI=(mpirun --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS -x SAEC_COMM_TIMEOUT)
export SAEC_COMM_TIMEOUT=60
GLOBAL=96
ARGS=(--device cpu --d-in 24 --syn-features 64 --latents 96 --k 4 --steps 40 --log-every 10
      --warmup-steps 5 --eval-tokens 1024 --init-sample 512 --dead-tokens 1536
      --batchtopk-threshold-start 10 --atm-warmup 0.25 --jumprelu-theta-init 0.1)
TOL=1e-5 # measured: about 1e-7; a run with half the batch differs by about 2e-2
worst() { sort -g -k5 "$1" | tail -1 | awk '{print $5}'; }

for arch in topk relu jumprelu atm; do
  "$SAEC" train "${ARGS[@]}" --arch $arch --batch-size $GLOBAL --out one_$arch 2>one_$arch.log \
    >/dev/null || { fail "$arch: 1 rank failed"; cat one_$arch.log >&2; continue; }
  for np in 2 4; do
    "${MPI[@]}" -np $np "$SAEC" train "${ARGS[@]}" --arch $arch --batch-size $((GLOBAL / np)) \
      --out r${np}_$arch >r${np}_$arch.out 2>r${np}_$arch.log \
      || { fail "$arch: $np ranks failed"; cat r${np}_$arch.log >&2; continue; }
    "$PYTHON" "$TESTS_DIR/st_tool.py" close one_$arch/model.safetensors r${np}_$arch/model.safetensors \
      $TOL >close_${np}_$arch.txt \
      && pass "$arch: $np ranks reach the 1-rank weights (worst $(worst close_${np}_$arch.txt), tol $TOL)" \
      || { fail "$arch: $np ranks differ from 1 rank"; cat close_${np}_$arch.txt >&2; }
  done
done

# A world of one with the MPI backend forced on runs every collective of the distributed step
# (split nmse gradient, min-reduced dead counters, gradient buckets): bit-identical to 1 process.
for arch in topk atm; do
  SAEC_COMM_FORCE=1 "${MPI[@]}" -x SAEC_COMM_FORCE -np 1 "$SAEC" train "${ARGS[@]}" --arch $arch \
    --batch-size $GLOBAL --out forced_$arch >/dev/null 2>forced_$arch.log \
    || { fail "$arch: forced MPI world of one failed"; cat forced_$arch.log >&2; continue; }
  "$PYTHON" "$TESTS_DIR/st_tool.py" equal one_$arch/model.safetensors forced_$arch/model.safetensors \
    && "$PYTHON" "$TESTS_DIR/st_tool.py" equal one_$arch/optimizer.safetensors \
      forced_$arch/optimizer.safetensors \
    && pass "$arch: the MPI path at world size 1 equals the single process bit for bit" \
    || fail "$arch: the MPI path at world size 1 differs from the single process"
done

# TIDE separate mode: every rank groups its rows by bucket, so ranks hold different numbers of
# each bucket's tokens. The global step still equals one process's: the per-bucket dead-latent
# clocks count every rank's tokens (compared exactly, with many latents dead), AuxK uses the
# global residual, ATM weighs the ranks' statistics by their tokens.
SEP=(--device cpu --synthetic timestep --timestep-mode separate --timestep-buckets 4 --d-in 24
     --syn-features 64 --steps 40 --log-every 10 --eval-tokens 1024 --init-sample 512)
for arch in topk atm; do
  if [ $arch = topk ]; then extra=(--latents 384 --k 2 --dead-tokens 100); else
    extra=(--latents 96 --atm-warmup 0.25); fi
  "$SAEC" train "${SEP[@]}" "${extra[@]}" --arch $arch --batch-size $GLOBAL --out sep1_$arch \
    >/dev/null 2>sep1_$arch.log || { fail "separate $arch: 1 rank failed"; cat sep1_$arch.log >&2; continue; }
  for np in 2 4; do
    "${MPI[@]}" -np $np "$SAEC" train "${SEP[@]}" "${extra[@]}" --arch $arch \
      --batch-size $((GLOBAL / np)) --out sep${np}_$arch >/dev/null 2>sep${np}_$arch.log \
      || { fail "separate $arch: $np ranks failed"; cat sep${np}_$arch.log >&2; continue; }
    "$PYTHON" "$TESTS_DIR/st_tool.py" close sep1_$arch/model.safetensors sep${np}_$arch/model.safetensors \
      $TOL >sep_close_${np}_$arch.txt \
      && "$PYTHON" "$TESTS_DIR/st_tool.py" close sep1_$arch/optimizer.safetensors \
        sep${np}_$arch/optimizer.safetensors $TOL >>sep_close_${np}_$arch.txt \
      && pass "separate $arch: $np ranks reach the 1-rank weights and clocks (worst $(worst sep_close_${np}_$arch.txt))" \
      || { fail "separate $arch: $np ranks differ from 1 rank"; grep -v "max relative difference [0-9.e-]*$" sep_close_${np}_$arch.txt >&2; tail -3 sep_close_${np}_$arch.txt >&2; }
  done
done
grep -q "dead [1-9][0-9]*\.[0-9]%" sep1_topk.log && pass "separate topk: latents do die in that run" \
  || fail "separate topk: no dead latents, so the clocks went untested"

# Only rank 0 prints the progress and writes the summary (once, on stdout).
[ "$(grep -c '"nmse"' r4_topk.out)" -eq 1 ] && pass "one summary from 4 ranks" \
  || fail "4 ranks printed $(grep -c '"nmse"' r4_topk.out) summaries"
[ "$(grep -c 'saec: evaluating' r4_topk.log)" -eq 1 ] && pass "rank 0 alone evaluates" \
  || fail "evaluation lines: $(grep -c 'saec: evaluating' r4_topk.log)"
grep -q "rank 3 of 4" r4_topk.log && pass "ranks announce themselves" || fail "no rank line"
tokens=$(json_get r4_topk/summary.json tokens)
[ "$tokens" = "$((40 * GLOBAL))" ] && pass "tokens count the global batch ($tokens)" \
  || fail "summary tokens $tokens, expected $((40 * GLOBAL))"

# Resume at another world size: 2 ranks stop at step 20, 4 ranks (same global batch) finish.
"${MPI[@]}" -np 2 "$SAEC" train "${ARGS[@]}" --arch topk --batch-size $((GLOBAL / 2)) --out resumed \
  --stop-at-step 20 >/dev/null 2>stop.log || { fail "2-rank run to step 20 failed"; cat stop.log >&2; }
"${MPI[@]}" -np 4 "$SAEC" train --resume resumed --batch-size $((GLOBAL / 4)) >/dev/null 2>resume.log \
  || { fail "4-rank resume failed"; cat resume.log >&2; }
grep -q "resumed at step 20" resume.log && pass "4 ranks resumed a 2-rank run at step 20" \
  || fail "resume did not start at step 20"
"$PYTHON" "$TESTS_DIR/st_tool.py" close one_topk/model.safetensors resumed/model.safetensors $TOL \
  >close_resume.txt && pass "2 → 4 ranks resume reaches the 1-rank weights" \
  || { fail "resumed run differs"; cat close_resume.txt >&2; }

# ZeRO-1 (--zero-stage 1): each rank keeps and updates a shard of the Adam moments, then the
# parameters are all-gathered. The step is the same arithmetic, so the weights and the saved
# (whole) optimizer state equal the unsharded run's bit for bit: 2 ranks (even shards) and 3 ranks
# (the last shard shorter). A sharded run resumes unsharded at another world size, and back.
same_run() { # $1 $2: run directories; model and optimizer files bit for bit
  "$PYTHON" "$TESTS_DIR/st_tool.py" equal $1/model.safetensors $2/model.safetensors \
    && "$PYTHON" "$TESTS_DIR/st_tool.py" equal $1/optimizer.safetensors $2/optimizer.safetensors
}
for arch in topk atm; do
  "${MPI[@]}" -np 2 "$SAEC" train "${ARGS[@]}" --arch $arch --batch-size $((GLOBAL / 2)) \
    --zero-stage 1 --out zero2_$arch >/dev/null 2>zero2_$arch.log \
    || { fail "$arch: ZeRO-1 on 2 ranks failed"; cat zero2_$arch.log >&2; continue; }
  same_run r2_$arch zero2_$arch && pass "$arch: ZeRO-1 on 2 ranks = unsharded, bit for bit" \
    || fail "$arch: ZeRO-1 on 2 ranks differs from the unsharded run"
done
for zero in 0 1; do
  "${MPI[@]}" -np 3 "$SAEC" train "${ARGS[@]}" --arch relu --batch-size $((GLOBAL / 3)) \
    --zero-stage $zero --out three_z$zero >/dev/null 2>three_z$zero.log \
    || { fail "3 ranks, zero_stage $zero failed"; cat three_z$zero.log >&2; }
done
same_run three_z0 three_z1 && pass "relu: ZeRO-1 on 3 ranks (uneven shards) = unsharded, bit for bit" \
  || fail "relu: ZeRO-1 on 3 ranks differs from the unsharded run"
"${MPI[@]}" -np 2 "$SAEC" train "${ARGS[@]}" --arch topk --batch-size $((GLOBAL / 2)) --zero-stage 1 \
  --out zresumed --stop-at-step 20 >/dev/null 2>zstop.log || { fail "ZeRO-1 run to step 20 failed"; cat zstop.log >&2; }
"${MPI[@]}" -np 4 "$SAEC" train --resume zresumed --batch-size $((GLOBAL / 4)) --zero-stage 0 \
  --stop-at-step 30 >/dev/null 2>zresume1.log || { fail "unsharded resume of a ZeRO-1 run failed"; cat zresume1.log >&2; }
"${MPI[@]}" -np 4 "$SAEC" train --resume zresumed --batch-size $((GLOBAL / 4)) --zero-stage 1 \
  >/dev/null 2>zresume2.log || { fail "ZeRO-1 resume on 4 ranks failed"; cat zresume2.log >&2; }
"$PYTHON" "$TESTS_DIR/st_tool.py" close one_topk/model.safetensors zresumed/model.safetensors $TOL \
  >close_zresume.txt && pass "ZeRO-1 2 ranks → unsharded 4 ranks → ZeRO-1 4 ranks reaches the 1-rank weights" \
  || { fail "the ZeRO-1 resumed run differs"; cat close_zresume.txt >&2; }

# Ranks started with different configurations: every rank exits with an error naming the key.
cat >mismatch.sh <<EOF
#!/usr/bin/env bash
lr=0.001; [ "\${OMPI_COMM_WORLD_RANK:-0}" = 1 ] && lr=0.002
exec "$SAEC" train ${ARGS[*]} --batch-size 16 --out mismatch --lr \$lr
EOF
chmod +x mismatch.sh
start=$(date +%s)
timeout 120 "${MPI[@]}" -np 2 ./mismatch.sh >/dev/null 2>mismatch.log; rc=$?
elapsed=$(( $(date +%s) - start ))
[ $rc -ne 0 ] && [ $rc -ne 124 ] && pass "mismatched configurations fail (exit $rc, ${elapsed}s)" \
  || fail "mismatched configurations: exit $rc"
grep -q "lr = 0.002" mismatch.log && grep -q "lr = 0.001" mismatch.log && pass "the error names the key 'lr'" \
  || { fail "mismatch error does not name lr"; cat mismatch.log >&2; }
[ ! -e mismatch/model.safetensors ] && pass "nothing trained on a mismatch" \
  || fail "a checkpoint was written despite the mismatch"
finish
