#!/usr/bin/env bash
# Bad input gets a clear error naming what is at fault, the documented exit code, and leaves no
# partial file behind.
source "$(dirname "$0")/lib.sh"
cd "$WORK"

# expect CODE PATTERN NAME -- command...   (PATTERN: extended regex that stderr must match)
expect() {
  local code=$1 pattern=$2 name=$3; shift 4
  "$@" >out.txt 2>err.txt; local rc=$?
  if [ $rc -ne "$code" ]; then fail "$name: exit $rc, expected $code"; sed 's/^/    /' err.txt >&2; return; fi
  if ! grep -Eq "$pattern" err.txt; then fail "$name: message does not match /$pattern/"; sed 's/^/    /' err.txt >&2; return; fi
  grep -q '^saec: error: ' err.txt || { fail "$name: no 'saec: error:' line"; return; }
  pass "$name (exit $rc): $(grep -m1 '^saec: error' err.txt)"
}
no_checkpoint() { [ ! -e "$1/model.safetensors" ] && [ -z "$(ls "$1/checkpoints" 2>/dev/null)" ] \
  && [ -z "$(find "$1" -name '*.tmp.*' 2>/dev/null)" ] \
  && pass "$2: no checkpoint or temporary file" || fail "$2: left files in $1: $(ls -R "$1")"; }

SMALL=(--d-in 16 --syn-features 32 --latents 32 --k 2 --batch-size 64 --steps 5 --init-sample 256 --eval-tokens 256)

# --- data files ---
"$SAEC" gen superposition --out good.h5 --d-in 16 --syn-features 32 --tokens 2000 2>/dev/null || fail "gen failed"
"$PYTHON" - <<'PY'
import h5py, numpy as np
rng = np.random.default_rng(0)
x = rng.normal(size=(1000, 16)).astype(np.float32)
with h5py.File("rank1.h5", "w") as f: f["activations"] = x[:, 0]
with h5py.File("rank3.h5", "w") as f: f["activations"] = x.reshape(1000, 4, 4)
with h5py.File("ints.h5", "w") as f: f["activations"] = (x * 10).astype(np.int32)
y = x.copy(); y[517, 3] = np.nan
with h5py.File("nan.h5", "w") as f: f["activations"] = y
y = x.copy(); y[211, 0] = np.inf
with h5py.File("inf.h5", "w") as f: f["activations"] = y
t = rng.integers(0, 1000, size=1000).astype(np.int32); t[517] = 1000
with h5py.File("ts_range.h5", "w") as f: f["activations"] = x; f["timesteps"] = t
with h5py.File("ts_float.h5", "w") as f: f["activations"] = x; f["timesteps"] = t.astype(np.float32) * 0
open("notes.h5", "w").write("this is not an HDF5 file\n")
with h5py.File("f32_bf16.h5", "w") as f:  # float32 claiming to be bfloat16
    f["activations"] = x; f["activations"].attrs["dtype"] = "bfloat16"
with h5py.File("ts_attr.h5", "w") as f:
    f["activations"] = x; f["timesteps"] = t % 1000; f["timesteps"].attrs["dtype"] = "float32"
PY

expect 3 "missing\.h5" "missing file" -- "$SAEC" train "${SMALL[@]}" --data missing.h5 --out r_missing
[ ! -e r_missing ] && pass "missing file: no run directory created" || fail "missing file: run directory created"
expect 3 "notes\.h5" "not an HDF5 file" -- "$SAEC" train "${SMALL[@]}" --data notes.h5 --out r_notes
expect 3 "acts" "wrong dataset name" -- "$SAEC" train "${SMALL[@]}" --data good.h5 --dataset acts --out r_ds
expect 3 "rank1\.h5.*(rank|dimension)|(rank|dimension).*rank1\.h5" "rank 1 dataset" -- "$SAEC" train "${SMALL[@]}" --data rank1.h5 --out r_r1
expect 3 "rank3\.h5" "rank 3 dataset" -- "$SAEC" train "${SMALL[@]}" --data rank3.h5 --out r_r3
expect 3 "32.*16|16.*32" "wrong width" -- "$SAEC" train "${SMALL[@]}" --data good.h5 --d-in 32 --out r_width
expect 3 "ints\.h5" "integer dtype" -- "$SAEC" train "${SMALL[@]}" --data ints.h5 --out r_int
expect 3 "nan\.h5.*517|517.*nan\.h5" "NaN row" -- "$SAEC" train "${SMALL[@]}" --data nan.h5 --out r_nan
no_checkpoint r_nan "NaN row"
expect 3 "inf\.h5.*211|211.*inf\.h5" "Inf row" -- "$SAEC" train "${SMALL[@]}" --data inf.h5 --out r_inf
no_checkpoint r_inf "Inf row"
expect 3 "ts_range\.h5.*517.*1000|517.*ts_range\.h5" "out-of-range timestep" -- "$SAEC" train "${SMALL[@]}" --data ts_range.h5 --out r_ts
grep -q -- "--timesteps" err.txt && pass "out-of-range timestep: hint names --timesteps" || fail "out-of-range timestep: no --timesteps hint"
no_checkpoint r_ts "out-of-range timestep"
expect 3 "f32_bf16\.h5.*dtype = \"bfloat16\", but its stored type is float32" "float32 marked bfloat16" -- "$SAEC" train "${SMALL[@]}" --data f32_bf16.h5 --out r_f32bf
grep -q "hint:.*uint16" err.txt && pass "float32 marked bfloat16: hint" || fail "float32 marked bfloat16: no hint"
[ ! -e r_f32bf ] && pass "float32 marked bfloat16: no run directory" || fail "float32 marked bfloat16: run directory created"
expect 3 "'timesteps' in 'ts_attr\.h5'.*dtype = \"float32\".*int32" "timesteps marked float32" -- "$SAEC" train "${SMALL[@]}" --data ts_attr.h5 --out r_tsattr
expect 3 "ts_float\.h5.*float32" "float timesteps" -- "$SAEC" train "${SMALL[@]}" --data ts_float.h5 --out r_tsf

# --- configuration ---
expect 2 "unknown config key 'latent'.*command line" "unknown key (command line)" -- "$SAEC" train --latent 64
grep -q "did you mean 'latents'" err.txt && pass "unknown key hint suggests 'latents'" || fail "no did-you-mean hint"
echo '{"latents": 64, "learning_rate": 0.1}' > cfg_unknown.json
expect 2 "unknown config key 'learning_rate'.*cfg_unknown\.json" "unknown key (config file)" -- "$SAEC" train --config cfg_unknown.json
echo '{"latents": 64,' > cfg_broken.json
expect 2 "cfg_broken\.json" "malformed config JSON" -- "$SAEC" train --config cfg_broken.json
expect 2 "missing_cfg\.json" "missing config file" -- "$SAEC" train --config missing_cfg.json
expect 2 "'k' = 0 is out of range" "out-of-range k" -- "$SAEC" train --k 0
expect 2 "'lr' = -2 is out of range" "out-of-range lr" -- "$SAEC" train --lr -2
expect 2 "'lr' = -0.5 is out of range" "negative lr other than -1 (the model's default)" -- "$SAEC" train --lr -0.5
expect 2 "'batch_size' expects an integer" "non-integer batch size" -- "$SAEC" train --batch-size 12.5
expect 2 "'arch' = 'sparse' is not supported" "unknown arch" -- "$SAEC" train --arch sparse
expect 2 "'k' = 64 exceeds 'latents' = 32" "k > latents" -- "$SAEC" train --latents 32 --k 64
expect 2 "'timestep_buckets' = 20 exceeds 'timesteps' = 8" "timestep_buckets > timesteps" -- "$SAEC" train --timesteps 8 --timestep-buckets 20
expect 2 "lacks a value" "option without value" -- "$SAEC" train --steps

# --- output locations ---
touch afile
expect 2 "afile/run" "unwritable output directory" -- "$SAEC" train "${SMALL[@]}" --out afile/run
expect 2 "afile/x\.h5" "unwritable gen output" -- "$SAEC" gen superposition --out afile/x.h5 --tokens 100
mkdir ro && chmod 555 ro
if [ "$(id -u)" -ne 0 ]; then
  expect 2 "ro/run" "read-only output directory" -- "$SAEC" train "${SMALL[@]}" --out ro/run
fi
expect 3 "not_a_run" "eval of a non-run directory" -- "$SAEC" eval not_a_run
expect 3 "nothing\.bin" "inspect of a missing path" -- "$SAEC" inspect nothing.bin

# --- devices ---
if ! nvidia-smi -L >/dev/null 2>&1; then
  expect 4 "CUDA" "cuda device without a GPU" -- "$SAEC" train "${SMALL[@]}" --device cuda --out r_cuda
  [ ! -e r_cuda ] && pass "no run directory for a missing device" || fail "run directory created for a missing device"
fi
expect 2 "cuda:x" "malformed device" -- "$SAEC" train "${SMALL[@]}" --device cuda:x --out r_dev

# --- a failed start leaves no run directory ---
expect 3 "nowhere" "init_from a missing model" -- "$SAEC" train "${SMALL[@]}" --init-from nowhere --out r_init
[ ! -e r_init ] && pass "failed --init-from: no run directory left" || fail "failed --init-from left $(ls -A r_init)"

# --- an existing run is not overwritten ---
"$SAEC" train "${SMALL[@]}" --out done >/dev/null 2>&1 || fail "small run failed"
expect 2 "already holds a checkpoint" "existing run directory" -- "$SAEC" train "${SMALL[@]}" --out done
finish
