#!/usr/bin/env bash
# Each SAE variant trains on the default synthetic data (superposition, d=96, F=256) and recovers
# the true features: mmcs >= 0.8. Runs are shortened to 1500 steps to keep the suite quick; each
# variant gets the sparsity setting README documents for this data.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
COMMON=(--steps 1500 --eval-tokens 16384 --log-every 500)
declare -A KNOBS=(
  [batchtopk]="--k 8"
  [relu]="--l1-coef 0.03"
  [jumprelu]="--jumprelu-l0-coef 0.01 --jumprelu-theta-init 0.5"
  [atm]="--l1-coef 0.03"
)
for arch in batchtopk relu jumprelu atm; do
  # shellcheck disable=SC2086
  "$SAEC" train "${COMMON[@]}" --arch $arch ${KNOBS[$arch]} --out $arch 2>$arch.log >/dev/null \
    || { fail "$arch: training failed"; tail -5 $arch.log >&2; continue; }
  [ "$(json_get $arch/summary.json arch)" = "$arch" ] && pass "$arch: summary.json arch" \
    || fail "$arch: summary.json arch"
  expect_ge "$(json_get $arch/summary.json mmcs)" 0.8 "$arch: mmcs"
  expect_le "$(json_get $arch/summary.json nmse)" 0.5 "$arch: nmse"
  expect_le "$(json_get $arch/summary.json l0)" 40 "$arch: l0"
  "$PYTHON" "$TESTS_DIR/st_tool.py" finite $arch/model.safetensors && pass "$arch: finite checkpoint" \
    || fail "$arch: non-finite checkpoint"
done
finish
