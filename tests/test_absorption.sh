#!/usr/bin/env bash
# The `hierarchy` generator and the absorption metrics (SPEC §8, §9) end to end: a TopK run on
# streamed hierarchy data reports absorption_fraction and full_absorption in [0, 1] beside mmcs
# (also from `saec eval`); `saec gen hierarchy` writes ground_truth/parent; a run on that file
# reports mmcs and skips absorption with a note (files carry no per-token activity).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
# Small and fast: 8 parents × 4 children in 96 features, d = 32. syn_child_prob 1 (every parent
# token carries a child) makes absorption strong enough to be sure it is detected at all.
SYN=(--d-in 32 --syn-features 96 --syn-l0 4 --syn-parents 8 --syn-children 4 --syn-child-prob 1 --seed 5)
TRAIN=(--latents 192 --k 6 --batch-size 512 --steps 600 --log-every 200 --eval-tokens 16384)

in01() { "$PYTHON" -c "import sys; v=float(sys.argv[1]); sys.exit(0 if 0 <= v <= 1 else 1)" "$1" \
  && pass "$2 = $1 in [0, 1]" || fail "$2 = $1, expected in [0, 1]"; }
has_no() { "$PYTHON" -c "import json,sys; sys.exit(1 if sys.argv[2] in json.load(open(sys.argv[1])) else 0)" "$1" "$2" \
  && pass "$1 has no $2" || fail "$1 has $2"; }

# ---- streamed hierarchy data ----
"$SAEC" train --synthetic hierarchy "${SYN[@]}" "${TRAIN[@]}" --out run 2>run.log >/dev/null \
  || { fail "train --synthetic hierarchy failed"; cat run.log >&2; finish; }
grep -q "hierarchy" run.log && pass "the run names the hierarchy generator" || fail "no hierarchy in the log"
for key in absorption_fraction full_absorption; do in01 "$(json_get run/summary.json $key)" "$key"; done
expect_ge "$(json_get run/summary.json absorption_fraction)" "$(json_get run/summary.json full_absorption)" \
  "absorption_fraction (a fully absorbed token counts 1 in both) vs full_absorption"
expect_ge "$(json_get run/summary.json absorption_fraction)" 0.05 "absorption_fraction (child always with parent)"
expect_ge "$(json_get run/summary.json mmcs)" 0.7 mmcs
[ "$(json_get run/summary.json absorption_parents)" = 8 ] && pass "all 8 parents measured" \
  || fail "absorption_parents = $(json_get run/summary.json absorption_parents), expected 8"
"$SAEC" eval run --out eval.json 2>eval.log || { fail "eval failed"; cat eval.log >&2; }
for key in absorption_fraction full_absorption; do in01 "$(json_get eval.json $key)" "eval $key"; done
# eval reads the same held-out stream as the summary: the same numbers.
[ "$(json_get eval.json absorption_fraction)" = "$(json_get run/summary.json absorption_fraction)" ] \
  && pass "eval reproduces the summary's absorption" || fail "eval and summary disagree on absorption"

# ---- superposition: no hierarchy, no absorption keys ----
"$SAEC" train --synthetic superposition --d-in 32 --syn-features 96 --syn-l0 4 --seed 5 "${TRAIN[@]}" \
  --steps 200 --out run_sup 2>sup.log >/dev/null || { fail "superposition run failed"; cat sup.log >&2; }
has_no run_sup/summary.json absorption_fraction
json_get run_sup/summary.json mmcs >/dev/null 2>&1 && pass "superposition summary has mmcs" || fail "no mmcs"

# ---- a file: gen hierarchy writes ground_truth/parent; training on it skips absorption ----
"$SAEC" gen hierarchy --out h.h5 "${SYN[@]}" --tokens 40000 2>gen.log || { fail "gen hierarchy failed"; cat gen.log >&2; finish; }
"$PYTHON" - <<'PY' && pass "h.h5 has ground_truth/parent with the documented layout" || fail "ground_truth/parent wrong"
import h5py, json, numpy as np
with h5py.File("h.h5", "r") as f:
    par = f["ground_truth/parent"][:]
    assert f["ground_truth/directions"].shape == (96, 32)
    prov = json.loads(f.attrs["saec_provenance"])
assert par.dtype == np.int32 and par.shape == (96,), (par.dtype, par.shape)
want = np.full(96, -1, np.int32)
want[8:8 + 32] = np.repeat(np.arange(8), 4)   # child c of parent j at 8 + 4j + c
assert (par == want).all(), par
assert prov["generator"] == "hierarchy" and prov["syn_parents"] == 8 and prov["syn_children"] == 4
PY
"$SAEC" train --data h.h5 "${TRAIN[@]}" --out run_file 2>file.log >/dev/null || { fail "train on h.h5 failed"; cat file.log >&2; }
json_get run_file/summary.json mmcs >/dev/null 2>&1 && pass "file run reports mmcs" || fail "file run lacks mmcs"
has_no run_file/summary.json absorption_fraction
grep -q "skipping absorption" file.log && pass "file run notes that absorption is skipped" \
  || fail "no note about skipping absorption"
# The file's model evaluated on the generator's own stream gets absorption again.
"$SAEC" eval run_file --synthetic hierarchy "${SYN[@]}" --out eval_syn.json 2>/dev/null || fail "eval --synthetic hierarchy failed"
in01 "$(json_get eval_syn.json absorption_fraction)" "absorption_fraction (file model, synthetic eval)"
finish
