#!/usr/bin/env bash
# saec gen writes an HDF5 dataset with ground truth; training reads it back (float32, float16,
# bfloat16), eval and inspect work on the files and the run; eval_tokens beyond a file's rows
# evaluates each row once.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
GEN=(--d-in 32 --syn-features 64 --syn-l0 3 --seed 3)
"$SAEC" gen superposition --out data.h5 "${GEN[@]}" --tokens 60000 2>gen.log || { fail "gen failed"; cat gen.log >&2; }
[ -s data.h5 ] && pass "gen wrote data.h5" || fail "no data.h5"
ls | grep -q '\.tmp\.' && fail "gen left a temporary file" || pass "gen left no temporary file"
"$PYTHON" - <<'PY' || fail "converting the dataset failed"
import h5py, numpy as np
with h5py.File("data.h5", "r") as f:
    x = f["activations"][:]
    gt = {k: f["ground_truth"][k][:] for k in f["ground_truth"]}
assert x.shape == (60000, 32) and x.dtype == np.float32, (x.shape, x.dtype)
assert gt["directions"].shape == (64, 32)
with h5py.File("data_f16.h5", "w") as f:
    f["activations"] = x.astype(np.float16)
bf = (x.view(np.uint32) + 0x7FFF + ((x.view(np.uint32) >> 16) & 1)) >> 16  # round to nearest even
with h5py.File("data_bf16.h5", "w") as f:
    f["activations"] = bf.astype(np.uint16)
    f["activations"].attrs["dtype"] = "bfloat16"
PY
TRAIN=(--latents 128 --k 4 --batch-size 512 --steps 800 --log-every 200 --eval-tokens 8192)
"$SAEC" train --data data.h5 "${TRAIN[@]}" --out run32 2>run32.log >/dev/null || { fail "train on float32 file failed"; cat run32.log >&2; }
expect_ge "$(json_get run32/summary.json mmcs)" 0.9 "mmcs (float32 file, ground truth from the file)"
for t in f16 bf16; do
  "$SAEC" train --data data_$t.h5 "${TRAIN[@]}" --out run_$t 2>run_$t.log >/dev/null || { fail "train on $t file failed"; cat run_$t.log >&2; continue; }
  expect_le "$(json_get run_$t/summary.json nmse)" 0.2 "nmse ($t file)"
done
"$SAEC" eval run32 --out eval.json 2>/dev/null || fail "eval failed"
expect_ge "$(json_get eval.json explained_variance)" 0.8 "explained variance (eval on the file)"
"$SAEC" eval run32 --synthetic superposition --d-in 32 --syn-features 64 --syn-l0 3 --seed 3 --out eval_syn.json 2>/dev/null || fail "eval on synthetic failed"
expect_ge "$(json_get eval_syn.json mmcs)" 0.9 "mmcs (eval on the generator)"
# eval_tokens beyond a file's rows: each row evaluated once, the true count reported, one note;
# the same for --dump-recon, export's firing frequencies and the evaluation at the end of training.
"$SAEC" gen superposition --out small.h5 "${GEN[@]}" --tokens 1000 2>/dev/null || fail "gen small.h5 failed"
"$SAEC" eval run32 --data small.h5 --eval-tokens 65536 --out eval_big.json --dump-recon big.npy 2>eval_big.log \
  || { fail "eval with eval_tokens > rows failed"; cat eval_big.log >&2; }
"$SAEC" eval run32 --data small.h5 --eval-tokens 1000 --out eval_rows.json --dump-recon rows.npy 2>/dev/null \
  || fail "eval with eval_tokens = rows failed"
[ "$(json_get eval_big.json eval_tokens)" = 1000 ] && pass "eval_tokens 65536 on 1000 rows reports 1000" \
  || fail "eval_tokens 65536 on 1000 rows reports $(json_get eval_big.json eval_tokens)"
[ "$(json_get eval_big.json nmse)" = "$(json_get eval_rows.json nmse)" ] \
  && pass "nmse equals that of eval_tokens = rows exactly" \
  || fail "nmse $(json_get eval_big.json nmse) != $(json_get eval_rows.json nmse) (eval_tokens = rows)"
[ "$(grep -c 'eval_tokens 65536 > 1000 rows in .*small\.h5.*: evaluated each row once' eval_big.log)" = 1 ] \
  && grep -q 'on 1000 tokens of' eval_big.log && pass "one note on stderr, the count announced is 1000" \
  || { fail "no single note / count on stderr"; cat eval_big.log >&2; }
cmp -s big.npy rows.npy && pass "--dump-recon writes each row once" || fail "--dump-recon differs from eval_tokens = rows"
for n in 65536 1000; do
  "$SAEC" export run32 --format saelens --out exp_$n --data small.h5 --eval-tokens $n 2>export_$n.log \
    || { fail "export with eval_tokens $n failed"; cat export_$n.log >&2; }
done
cmp -s exp_65536/sparsity.safetensors exp_1000/sparsity.safetensors \
  && grep -q 'firing on 1000 tokens' export_65536.log && grep -q 'eval_tokens 65536 > 1000 rows' export_65536.log \
  && pass "export: firing frequencies over each row once" || fail "export: sparsity differs from eval_tokens = rows"
"$SAEC" gen timestep --out ts_small.h5 --d-in 32 --syn-features 64 --seed 3 --tokens 1000 2>/dev/null \
  || fail "gen ts_small.h5 failed"
"$SAEC" train --data ts_small.h5 --latents 64 --k 4 --batch-size 256 --steps 10 --init-sample 512 \
  --timestep-buckets 4 --eval-tokens 65536 --out run_small 2>run_small.log >/dev/null \
  || { fail "train on 1000 rows with eval_tokens 65536 failed"; cat run_small.log >&2; }
"$PYTHON" - <<'PY' && pass "train-end evaluation: 1000 tokens, per-bucket counts sum to 1000" \
  || { fail "train-end evaluation count"; cat run_small.log >&2; }
import json
s = json.load(open("run_small/summary.json"))
assert s["eval_tokens"] == 1000, s["eval_tokens"]
assert sum(b["tokens"] for b in s["per_bucket"]) == 1000, s["per_bucket"]
assert "evaluating on 1000 held-out tokens" in open("run_small.log").read()
PY
"$SAEC" inspect data.h5 > inspect_h5.txt 2>&1 && grep -q "activations" inspect_h5.txt && pass "inspect data.h5" || fail "inspect data.h5"
"$SAEC" inspect data_bf16.h5 > inspect_bf16.txt 2>&1 && grep -qi "bfloat16" inspect_bf16.txt && pass "inspect shows bfloat16" || fail "inspect bfloat16"
"$SAEC" inspect run32 > inspect_run.txt 2>&1 && grep -q "W_dec" inspect_run.txt && grep -q "latents" inspect_run.txt && pass "inspect run directory" || fail "inspect run directory"
finish
