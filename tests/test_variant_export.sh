#!/usr/bin/env bash
# Every variant exports to SAELens (BatchTopK as JumpReLU with its threshold; ReLU-L1 and ATM as
# standard ReLU SAEs), loads back for eval and --init-from with the same reconstructions, and
# numpy alone reproduces the engine from the exported files (test_variant_export.py). sparsify
# holds TopK SAEs only and refuses the others.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
DATA=(--d-in 32 --syn-features 64 --syn-l0 3 --seed 0)
TRAIN=("${DATA[@]}" --latents 128 --k 4 --steps 300 --batch-size 256 --eval-tokens 4096
       --log-every 100 --batchtopk-threshold-start 100 --l1-coef 0.03 --jumprelu-theta-init 0.1)
"$SAEC" gen superposition "${DATA[@]}" --tokens 2048 --out batch.h5 2>/dev/null || fail "gen batch.h5"
for arch in batchtopk relu jumprelu atm; do
  "$SAEC" train "${TRAIN[@]}" --arch $arch --out run_$arch 2>run_$arch.log >/dev/null \
    || { fail "$arch: training failed"; cat run_$arch.log >&2; continue; }
  "$SAEC" export run_$arch --format saelens --out ex_$arch 2>export_$arch.log \
    && pass "$arch: export --format saelens" || { fail "$arch: export"; cat export_$arch.log >&2; }
  "$SAEC" export run_$arch --format sparsify --out sp_$arch 2>sp_$arch.log; rc=$?
  [ $rc -eq 2 ] && grep -q "sparsify holds TopK SAEs only" sp_$arch.log && [ ! -e sp_$arch/sae.safetensors ] \
    && pass "$arch: sparsify export refused (exit 2, nothing written)" || fail "$arch: sparsify export: exit $rc"
  for src in run ex; do
    "$SAEC" eval ${src}_$arch --data batch.h5 --eval-tokens 2048 --out eval_${src}_$arch.json \
      --dump-recon recon_${src}_$arch.npy 2>eval_${src}_$arch.log \
      || { fail "$arch: eval $src"; cat eval_${src}_$arch.log >&2; }
  done
  "$PYTHON" "$TESTS_DIR/test_variant_export.py" "$WORK" $arch && pass "$arch: test_variant_export.py" \
    || fail "$arch: test_variant_export.py"
  # Continued training from the export: with lr 0 the first step's nmse is the export's.
  "$SAEC" train "${TRAIN[@]}" --arch $arch --init-from ex_$arch --steps 1 --lr 0 --log-every 1 \
    --out init_$arch 2>init_$arch.log >/dev/null || { fail "$arch: --init-from"; cat init_$arch.log >&2; }
  grep -q "initialised from ex_$arch" init_$arch.log && pass "$arch: --init-from the export" \
    || fail "$arch: --init-from message"
done
# A BatchTopK run stopped before its threshold is tracked cannot become a JumpReLU yet.
"$SAEC" train "${TRAIN[@]}" --arch batchtopk --steps 20 --out early 2>/dev/null >/dev/null
"$SAEC" export early --format saelens --out ex_early 2>early.log; rc=$?
[ $rc -eq 2 ] && grep -q "no inference threshold yet" early.log && pass "early BatchTopK export refused" \
  || fail "early BatchTopK export: exit $rc: $(cat early.log)"
finish
