#!/usr/bin/env bash
# benchmarks/tide_compare.py end to end on tiny runs (the script behind the committed TIDE
# comparison): every mode trains, the table lists each mode and seed with its metrics and the
# step-time ratio to `none`, the runs stay in OUT/runs, and a second invocation reuses them (but
# refuses runs made with other settings);
# --modes without `none` leaves the ratio empty; an unknown mode is refused.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
COMPARE="$TESTS_DIR/../benchmarks/tide_compare.py"
TINY=(--extra steps=40 --extra d_in=32 --extra syn_features=64 --extra eval_tokens=2048
      --extra init_sample=1024 --extra batch_size=256 --extra timestep_buckets=4 --extra adaln_dim=8)

"$PYTHON" "$COMPARE" --saec "$SAEC" --out cmp --k 4 --latents 64 --seeds 0,1 "${TINY[@]}" \
  >cmp.out 2>cmp.err && pass "tide_compare exits 0" || { fail "tide_compare failed"; cat cmp.out cmp.err >&2; finish; }
"$PYTHON" - <<'PY' && pass "table.json: 4 modes x 2 seeds, L0 = k, metrics, ratios to none" || fail "table.json wrong"
import json
t = json.load(open("cmp/table.json"))
rows = t["rows"]
assert "tide_compare.py" in t["header"]["command"], t["header"]
assert [(r["mode"], r["seed"]) for r in rows] == [(m, s) for s in (0, 1) for m in
        ("none", "bucket", "adaln", "separate")], rows
for r in rows:
    assert 3 <= r["l0"] <= 4 and 0 < r["nmse"] < 2 and 0 < r["mmcs"] <= 1, r
    assert len(r["per_bucket_nmse"]) == 4 and r["step_time_vs_none"] > 0, r
    assert (r["step_time_vs_none"] == 1.0) == (r["mode"] == "none"), r
PY
[ "$(json_get cmp/runs/adaln_seed1/summary.json steps)" = 40 ] && pass "--extra reaches the runs (40 steps)" \
  || fail "the runs did not take --extra steps=40"
grep -q "^| separate | 1 | " cmp/table.md && pass "table.md has the separate rows" || fail "table.md lacks separate"
[ "$(grep -c '^\$ ' cmp.out)" = 8 ] && pass "one command line per run" || fail "$(grep -c '^\$ ' cmp.out) command lines"
"$PYTHON" "$COMPARE" --saec "$SAEC" --out cmp --k 4 --latents 64 --seeds 0,1 "${TINY[@]}" \
  >again.out 2>&1 && ! grep -q '^\$ ' again.out && pass "a second invocation reuses the runs" \
  || fail "the second invocation trained again"
"$PYTHON" "$COMPARE" --saec "$SAEC" --out cmp --k 3 --latents 64 --seeds 0 "${TINY[@]}" \
  >stale.out 2>&1; rc=$?
[ $rc -ne 0 ] && grep -q "config key 'k' is 4 there, 3 here" stale.out \
  && pass "runs from other settings are refused, not reused" || fail "stale runs: exit $rc: $(cat stale.out)"
"$PYTHON" "$COMPARE" --saec "$SAEC" --out sep --modes separate --k 4 --latents 64 --seeds 0 "${TINY[@]}" \
  >sep.out 2>&1 && grep -q "^| separate | 0 | .* | - | " sep/table.md \
  && pass "--modes separate alone: no ratio to none" || { fail "--modes separate"; cat sep.out >&2; }
"$PYTHON" "$COMPARE" --saec "$SAEC" --out bad --modes film >bad.out 2>&1; rc=$?
[ $rc -ne 0 ] && grep -q "unknown mode 'film'" bad.out && pass "an unknown mode is refused" \
  || fail "unknown mode: exit $rc: $(cat bad.out)"
finish
