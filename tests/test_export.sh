#!/usr/bin/env bash
# saec export writes SAELens and sparsify layouts (SPEC §10) with the data scale folded in; saec
# reads both back for eval and for --init-from with the same function; numpy alone reproduces the
# engine's reconstructions from the exported files (test_export.py); bad inputs get clear errors.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
export TESTS_DIR # for the Python snippets below
DATA=(--d-in 32 --syn-features 64 --syn-l0 3 --seed 0)
"$SAEC" train "${DATA[@]}" --latents 128 --k 4 --steps 300 --batch-size 256 --eval-tokens 4096 \
  --log-every 100 --out run 2>run.log >/dev/null || { fail "training failed"; cat run.log >&2; finish; }

for f in saelens sparsify; do
  "$SAEC" export run --format $f --out $f 2>export_$f.log \
    && pass "export --format $f" || { fail "export --format $f"; cat export_$f.log >&2; }
done
mv saelens sl && mv sparsify sp
for e in sl sp; do
  "$SAEC" inspect $e > inspect_$e.txt 2>&1 && grep -q '"d_in"' inspect_$e.txt && grep -q 'W_dec' inspect_$e.txt \
    && pass "inspect shows the $e export's cfg.json and tensors" || fail "inspect $e export"
done
ls sl sp | grep -q '\.tmp\.' && fail "export left a temporary file" || pass "no temporary files left"

# --- eval reads both exports and gets the run's metrics (nmse, cosine, l0 are unit-free) ---
# close A B NAME REL: |A - B| <= REL * |B|
close() { "$PYTHON" -c "import sys; a, b, r = map(float, sys.argv[1:4]); sys.exit(0 if abs(a - b) <= r * abs(b) else 1)" "$1" "$2" "$4" \
  && pass "$3: $1 vs $2" || fail "$3: $1 vs $2 (rel tolerance $4)"; }
for m in run sl sp; do
  "$SAEC" eval $m "${DATA[@]}" --synthetic superposition --eval-tokens 4096 --out syn_$m.json 2>eval_$m.log \
    || { fail "eval $m"; cat eval_$m.log >&2; }
done
for m in sl sp; do
  for key in nmse cosine l0 dead_fraction mmcs; do
    close "$(json_get syn_$m.json $key)" "$(json_get syn_run.json $key)" "eval $key ($m export vs run)" 1e-5
  done
done
close "$(json_get syn_run.json nmse)" "$(json_get run/summary.json nmse)" "eval nmse (run) = summary.json" 1e-9

# --- numpy reproduces the engine from the exported files alone ---
"$SAEC" gen superposition "${DATA[@]}" --tokens 2048 --out batch.h5 2>/dev/null || fail "gen batch.h5"
for m in run sl sp; do
  "$SAEC" eval $m --data batch.h5 --eval-tokens 2048 --out eval_$m.json --dump-recon recon_$m.npy \
    2>dump_$m.log || { fail "eval --dump-recon $m"; cat dump_$m.log >&2; }
done
"$PYTHON" "$TESTS_DIR/test_export.py" "$WORK" && pass "test_export.py" || fail "test_export.py"

# --- --init-from: training starts from the exported function, not from a random init ---
INIT=("${DATA[@]}" --latents 128 --k 4 --batch-size 1024 --steps 3 --log-every 1 --eval-tokens 1024)
first_nmse() { "$PYTHON" -c "import json; print(json.loads(open('$1/metrics.jsonl').readline())['nmse'])"; }
"$SAEC" train "${INIT[@]}" --out init_random 2>/dev/null >/dev/null || fail "random-init run"
random=$(first_nmse init_random)
for m in run sl sp; do
  "$SAEC" train "${INIT[@]}" --init-from $m --out init_$m 2>init_$m.log >/dev/null \
    || { fail "train --init-from $m"; cat init_$m.log >&2; continue; }
  grep -q "initialised from $m" init_$m.log && pass "--init-from $m announced" || fail "--init-from $m: no message"
  close "$(first_nmse init_$m)" "$(json_get syn_run.json nmse)" "first logged nmse after --init-from $m vs the model's eval nmse (random init: $random)" 0.1
done
expect_le "$(first_nmse init_sl)" "$("$PYTHON" -c "print(0.7 * $random)")" "first nmse from the export vs 0.7 x random init's"
# With lr 0 the weights stay put, so re-exporting gives back the same SAE, even though this run
# measures its own data scale on another init sample (the fold is exact in any units).
"$SAEC" train "${INIT[@]}" --steps 1 --lr 0 --init-sample 1000 --init-from sl --out init_lr0 2>/dev/null >/dev/null \
  && "$SAEC" export init_lr0 --format saelens --out sl_again 2>/dev/null || fail "lr-0 run and re-export"
"$PYTHON" - <<'PY' && pass "export -> --init-from (other scale) -> export round trip" || fail "round trip changed the SAE"
import sys
sys.path.insert(0, __import__("os").environ["TESTS_DIR"])
import numpy as np, st_tool
a, _ = st_tool.read("sl/sae_weights.safetensors")
b, _ = st_tool.read("sl_again/sae_weights.safetensors")
s0 = st_tool.read("run/model.safetensors")[0]["data_scale"][0]
s1 = st_tool.read("init_lr0/model.safetensors")[0]["data_scale"][0]
worst = max(float(np.max(np.abs(a[k] - b[k])) / np.max(np.abs(a[k]))) for k in a)
print(f"   data scale {s0:.6g} -> {s1:.6g}; max rel weight change {worst:.2e}")
sys.exit(0 if s0 != s1 and worst <= 1e-5 else 1)
PY
# Export of an export converts the format without changing a bit.
"$SAEC" export sl --format sparsify --out sp_again 2>/dev/null || fail "export of an export"
"$PYTHON" "$TESTS_DIR/st_tool.py" equal sp/sae.safetensors sp_again/sae.safetensors \
  && pass "SAELens -> sparsify conversion is bit-exact" || fail "SAELens -> sparsify conversion differs"

# --- an export from another tool (no saec provenance): μ is measured on the data ---
mkdir foreign && cp sp/sae.safetensors foreign/
"$PYTHON" -c "import json; c = json.load(open('sp/cfg.json')); c.pop('saec'); json.dump(c, open('foreign/cfg.json', 'w'))"
"$SAEC" eval foreign "${DATA[@]}" --eval-tokens 4096 --out syn_foreign.json 2>foreign.log || { fail "eval of a foreign export"; cat foreign.log >&2; }
grep -q "does not record its data mean" foreign.log && pass "foreign export: μ measured on the data" || fail "foreign export: no note about μ"
close "$(json_get syn_foreign.json l0)" "$(json_get syn_run.json l0)" "l0 (foreign export)" 1e-9
close "$(json_get syn_foreign.json nmse)" "$(json_get syn_run.json nmse)" "nmse (foreign export, μ from the data)" 0.05

# --- bad inputs: exit code and a message naming the culprit ---
expect() {
  local code=$1 pattern=$2 name=$3; shift 4
  "$@" >out.txt 2>err.txt; local rc=$?
  if [ $rc -ne "$code" ]; then fail "$name: exit $rc, expected $code"; sed 's/^/    /' err.txt >&2; return; fi
  grep -Eq -e "$pattern" err.txt && grep -q '^saec: error: ' err.txt \
    && pass "$name (exit $rc): $(grep -m1 '^saec: error' err.txt)" || { fail "$name: message does not match /$pattern/"; sed 's/^/    /' err.txt >&2; }
}
expect 2 "--format" "export without --format" -- "$SAEC" export run --out x1
expect 2 "'onnx'" "unknown export format" -- "$SAEC" export run --format onnx --out x2
expect 2 "--out" "export without --out" -- "$SAEC" export run --format sparsify
expect 3 "no_such_run" "export of a missing run" -- "$SAEC" export no_such_run --format saelens --out x3
touch afile
expect 2 "afile/x" "unwritable --out" -- "$SAEC" export run --format sparsify --out afile/x
expect 2 "already holds a saec run" "export into a run directory" -- "$SAEC" export sl --format saelens --out run
expect 2 "already holds a SAELens export" "export over the other format" -- "$SAEC" export run --format sparsify --out sl
# Damaged exports: each names the file and the tensor or key.
damage() {  # damage DIR SCRIPT: copy sl to DIR and apply a Python edit with w (tensors) and c (cfg)
  rm -rf "$1"; cp -r sl "$1"
  "$PYTHON" - "$1" "$2" <<'PY'
import json, struct, sys
sys.path.insert(0, __import__("os").environ["TESTS_DIR"])
import numpy as np, st_tool
d = sys.argv[1]
w, _ = st_tool.read(f"{d}/sae_weights.safetensors")
w = dict(w)
c = json.load(open(f"{d}/cfg.json"))
exec(sys.argv[2])
header, off, blobs = {}, 0, []
for k, v in w.items():
    b = np.ascontiguousarray(v).tobytes()
    header[k] = {"dtype": {"float32": "F32", "float16": "F16"}[str(v.dtype)], "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    off += len(b); blobs.append(b)
h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
open(f"{d}/sae_weights.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
json.dump(c, open(f"{d}/cfg.json", "w"))
PY
}
damage bad_missing "del w['b_enc']"
expect 3 "bad_missing/sae_weights\.safetensors.*'b_enc' is missing" "export missing a tensor" -- "$SAEC" eval bad_missing "${DATA[@]}"
damage bad_shape "w['W_dec'] = np.ascontiguousarray(w['W_dec'][:, :16])"
expect 3 "'W_dec' has shape \[128, 16\], expected \[128, 32\]" "export with a wrong shape" -- "$SAEC" eval bad_shape "${DATA[@]}"
damage bad_dtype "w['b_dec'] = w['b_dec'].astype(np.float16)"
expect 3 "'b_dec' has dtype F16" "export with a wrong dtype" -- "$SAEC" eval bad_dtype "${DATA[@]}"
damage bad_nan "w['W_enc'] = w['W_enc'].copy(); w['W_enc'][3, 5] = np.nan"  # element 3 * 128 + 5
expect 3 "'W_enc' has a non-finite value at element 389" "export with NaN weights" -- "$SAEC" eval bad_nan "${DATA[@]}"
damage bad_arch "c['architecture'] = 'gated'"
expect 3 "bad_arch/cfg\.json.*architecture 'gated' is not supported" "unsupported architecture" -- "$SAEC" eval bad_arch "${DATA[@]}"
damage bad_size "c['d_sae'] = 256"
expect 3 "bad_size/cfg\.json.*d_sae = 256" "cfg.json disagreeing with the weights" -- "$SAEC" eval bad_size "${DATA[@]}"
rm -rf bad_cfg; cp -r sl bad_cfg; rm bad_cfg/cfg.json
expect 3 "bad_cfg/cfg\.json" "export without cfg.json" -- "$SAEC" eval bad_cfg "${DATA[@]}"
expect 3 "empty_dir.*holds no SAE" "eval of a directory without an SAE" -- bash -c "mkdir -p empty_dir && '$SAEC' eval empty_dir"
expect 2 "--init-from 'sl'.*m=128.*latents=64" "--init-from with other latents" -- "$SAEC" train "${INIT[@]}" --latents 64 --init-from sl --out init_bad
expect 3 "nowhere" "--init-from a missing directory" -- "$SAEC" train "${INIT[@]}" --init-from nowhere --out init_none
finish
