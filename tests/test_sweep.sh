#!/usr/bin/env bash
# benchmarks/sweep_variants.py end to end on tiny runs: it tunes TopK's k to a target L0, keeps
# every run in OUT/runs/ARCH_try<i>, and writes sweep.log, table.json, table.md and plot.png.
# Needs numpy and matplotlib in $PYTHON (skipped otherwise).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$PYTHON" -c "import numpy, matplotlib" 2>/dev/null || { echo "skip: $PYTHON lacks numpy or matplotlib"; exit 77; }
SWEEP="$TESTS_DIR/../benchmarks/sweep_variants.py"

"$PYTHON" "$SWEEP" --saec "$SAEC" --out sweep --archs topk --target-l0 4 --seed 3 \
  --extra steps=200 --extra latents=128 --extra eval_tokens=4096 --extra log_every=100 \
  >sweep.out 2>sweep.err && pass "sweep exits 0" || { fail "sweep failed"; cat sweep.out sweep.err >&2; finish; }
for f in sweep.log table.json table.md plot.png runs/topk_try1/summary.json; do
  [ -s "sweep/$f" ] && pass "sweep/$f written" || fail "sweep/$f missing or empty"
done
grep -q "topk      try 1  k = 4" sweep.out && pass "one progress line per try on stdout" || fail "no progress line"
grep -q "k = 4 .*L0 = " sweep/sweep.log && pass "sweep.log has the knob and the L0" || fail "sweep.log lacks the try"
"$PYTHON" - <<'PY' && pass "table.json: topk matched, L0 within 4 ± 10%, metrics present" || fail "table.json wrong"
import json
t = json.load(open("sweep/table.json"))
h, rows = t["header"], t["rows"]
assert "sweep_variants.py" in h["command"] and h["target_l0"] == 4 and h["tolerance"] == 0.1, h
assert [r["arch"] for r in rows] == ["topk"], rows
r = rows[0]
assert r["matched"] is True and r["knob"] == "k" and isinstance(r["knob_value"], int), r
assert 3.6 <= r["l0"] <= 4.4, r["l0"]
assert r["tries"] == len(r["history"]) >= 1
for key in ("nmse", "explained_variance", "dead_fraction", "mmcs", "absorption_fraction",
            "full_absorption", "seconds"):
    assert isinstance(r[key], float), (key, r[key])
assert 0 <= r["absorption_fraction"] <= 1 and 0 <= r["full_absorption"] <= 1
PY
head -c 8 sweep/plot.png | grep -q PNG && pass "plot.png is a PNG" || fail "plot.png is not a PNG"
grep -q "sweep_variants.py" sweep/table.md && grep -q "^| topk | \`k\` | 4 |" sweep/table.md \
  && pass "table.md has the command line and the topk row" || fail "table.md wrong"
ls sweep/.table* sweep/.plot* >/dev/null 2>&1 && fail "temporary files left behind" || pass "no temporary files left"

# The same command again reuses the finished run instead of training it again.
"$PYTHON" "$SWEEP" --saec "$SAEC" --out sweep --archs topk --target-l0 4 --seed 3 \
  --extra steps=200 --extra latents=128 --extra eval_tokens=4096 --extra log_every=100 >again.out 2>&1 \
  && grep -q "(reused)" again.out && pass "a rerun reuses the finished run" || fail "rerun did not reuse"

# An L0 that no integer k reaches, with one try allowed: unmatched, exit 1, outputs still written.
"$PYTHON" "$SWEEP" --saec "$SAEC" --out unmatched --archs topk --target-l0 4.5 --tolerance 0.02 \
  --max-tries 1 --extra steps=50 --extra latents=64 --extra eval_tokens=1024 >un.out 2>&1
rc=$?
[ "$rc" = 1 ] && pass "unmatched sweep exits 1" || fail "unmatched sweep exited $rc, expected 1"
"$PYTHON" -c "import json; r = json.load(open('unmatched/table.json'))['rows'][0]; assert r['matched'] is False" \
  && pass "unmatched arch recorded with matched: false" || fail "unmatched not recorded"

# A missing binary is a clear usage error.
"$PYTHON" "$SWEEP" --saec ./no-such-saec --out nobin >nobin.out 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "saec binary './no-such-saec' is missing" nobin.out \
  && pass "missing binary: exit 2 with a clear error" || fail "missing binary: rc $rc"
finish
