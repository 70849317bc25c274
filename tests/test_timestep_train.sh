#!/usr/bin/env bash
# TIDE `bucket` mode end to end on the `timestep` synthetic data: training reports per-bucket
# metrics and writes the latent × bucket table and heat map; the modulation is checkpointed and
# resumes bit-identically; eval of the run reports per-bucket metrics; a bucket mode without
# timesteps and a separate mode that cannot split the latents are clear errors; exports are
# refused.
# The `adaln` and `separate` modes: checkpointed, resumed bit-identically, evaluated from their run
# directories; separate's latents fire only in their own bucket.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
ARGS=(--synthetic timestep --d-in 32 --syn-features 96 --latents 128 --k 4 --batch-size 256
      --steps 120 --log-every 40 --eval-tokens 8192 --init-sample 1024 --timestep-buckets 5)
"$SAEC" train "${ARGS[@]}" --out full 2>full.log >/dev/null || { fail "bucket-mode run failed"; cat full.log >&2; finish; }
[ "$(json_get full/config.json timestep_mode)" = "bucket" ] && pass "timestep data resolves auto to bucket" \
  || fail "config.json timestep_mode = $(json_get full/config.json timestep_mode)"
"$PYTHON" - <<'PY' && pass "summary.json per_bucket: 5 buckets with tokens, nmse, l0 averaging to the global L0; selective count" || fail "summary.json per_bucket"
import json
s = json.load(open("full/summary.json"))
pb = s["per_bucket"]
assert [b["bucket"] for b in pb] == list(range(5)), pb
assert sum(b["tokens"] for b in pb) == s["eval_tokens"], (pb, s["eval_tokens"])
for b in pb:
    assert b["tokens"] > 0 and 0 <= b["nmse"] < 2 and b["l0"] > 0, b
assert isinstance(s["temporally_selective_latents"], (int, float)), s
# the buckets' L0 average to the global one, token-weighted
l0 = sum(b["tokens"] * b["l0"] for b in pb) / s["eval_tokens"]
assert abs(l0 - s["l0"]) <= 1e-9 * s["l0"], (l0, s["l0"])
PY
"$PYTHON" - <<'PY' && pass "bucket_frequency.npy [m, B] in [0, 1], columns sum to the buckets' L0; the heat map PNG decodes" || fail "bucket table or heat map"
import numpy as np, matplotlib
matplotlib.use("Agg")
import matplotlib.image as mpimg
t = np.load("full/bucket_frequency.npy")
assert t.shape == (128, 5) and t.dtype == np.float32 and t.min() >= 0 and t.max() <= 1, (t.shape, t.min(), t.max())
img = mpimg.imread("full/bucket_frequency.png")
fired = int((t.sum(1) > 0).sum())
assert img.shape[0] == fired and img.shape[1] == 5 * 12 and img.shape[2] == 3, (img.shape, fired)
# a bucket's firing frequencies add up to its L0 (codes per token)
import json
pb = json.load(open("full/summary.json"))["per_bucket"]
assert np.allclose(t.sum(0), [b["l0"] for b in pb], rtol=1e-4), (t.sum(0), [b["l0"] for b in pb])
PY
"$PYTHON" "$TESTS_DIR/st_tool.py" list full/model.safetensors | grep -q "ts_scale .*\[5, 32\]" \
  && pass "checkpoint holds ts_scale [B, d]" || fail "checkpoint lacks ts_scale"
# Resume: bit-identical to the uninterrupted run.
"$SAEC" train "${ARGS[@]}" --out part --stop-at-step 50 2>/dev/null >/dev/null
"$SAEC" train --resume part 2>resume.log >/dev/null || { fail "resume failed"; cat resume.log >&2; }
"$PYTHON" "$TESTS_DIR/st_tool.py" equal full/model.safetensors part/model.safetensors \
  && pass "bucket mode: resumed weights identical" || fail "bucket mode: resumed weights differ"
"$PYTHON" "$TESTS_DIR/st_tool.py" equal full/optimizer.safetensors part/optimizer.safetensors \
  && pass "bucket mode: resumed optimizer state identical" || fail "bucket mode: optimizer state differs"
# Eval of the run reports the same per-bucket keys.
"$SAEC" eval full --eval-tokens 4096 --out ev.json 2>ev.log || { fail "eval failed"; cat ev.log >&2; }
"$PYTHON" -c "import json; e = json.load(open('ev.json')); assert len(e['per_bucket']) == 5" \
  && pass "eval reports per_bucket" || fail "eval lacks per_bucket"
# The plain SAE on the same data still gets per-bucket metrics.
"$SAEC" train "${ARGS[@]}" --timestep-mode none --steps 40 --out plain 2>plain.log >/dev/null \
  || { fail "timestep_mode none failed"; cat plain.log >&2; }
"$PYTHON" -c "import json; s = json.load(open('plain/summary.json')); assert len(s['per_bucket']) == 5" \
  && pass "timestep_mode none: per_bucket still reported" || fail "timestep_mode none: no per_bucket"
"$PYTHON" "$TESTS_DIR/st_tool.py" list plain/model.safetensors >plain_tensors.txt \
  && grep -q "^W_enc_t " plain_tensors.txt && ! grep -q "ts_scale\|adaln" plain_tensors.txt \
  && pass "timestep_mode none: no modulation tensors" || fail "timestep_mode none: modulation tensors, or no model"
# adaln: the timestep MLP is checkpointed, resumes bit-identically, and eval of the run uses it.
"$SAEC" train "${ARGS[@]}" --timestep-mode adaln --adaln-dim 16 --out ada 2>ada.log >/dev/null \
  || { fail "adaln run failed"; cat ada.log >&2; }
"$PYTHON" "$TESTS_DIR/st_tool.py" list ada/model.safetensors | grep -q "adaln_W_scale .*\[16, 32\]" \
  && pass "checkpoint holds the adaln MLP" || fail "checkpoint lacks adaln_W_scale [16, 32]"
"$SAEC" train "${ARGS[@]}" --timestep-mode adaln --adaln-dim 16 --out ada_part --stop-at-step 50 \
  2>/dev/null >/dev/null
"$SAEC" train --resume ada_part 2>ada_resume.log >/dev/null || { fail "adaln resume failed"; cat ada_resume.log >&2; }
"$PYTHON" "$TESTS_DIR/st_tool.py" equal ada/model.safetensors ada_part/model.safetensors \
  && pass "adaln: resumed weights identical" || fail "adaln: resumed weights differ"
"$SAEC" eval ada --eval-tokens 8192 --out ada_ev.json 2>ada_ev.log || { fail "adaln eval failed"; cat ada_ev.log >&2; }
"$PYTHON" -c "
import json; e = json.load(open('ada_ev.json')); s = json.load(open('ada/summary.json'))
assert len(e['per_bucket']) == 5 and abs(e['nmse'] - s['nmse']) <= 1e-6 * max(1, s['nmse']), (e['nmse'], s['nmse'])" \
  && pass "adaln: eval of the run reproduces the training summary's nmse" || fail "adaln: eval nmse differs"
# separate: one SAE of latents/B latents per bucket; each latent fires only in its own bucket.
SEP=("${ARGS[@]}" --timestep-mode separate --latents 120)
"$SAEC" train "${SEP[@]}" --out sep 2>sep.log >/dev/null || { fail "separate run failed"; cat sep.log >&2; }
"$PYTHON" - <<'PY' && pass "separate: latent j fires only in bucket j // 24; every bucket reported" || fail "separate: bucket table"
import json, numpy as np
s = json.load(open("sep/summary.json")); c = json.load(open("sep/config.json"))
assert c["timestep_mode"] == "separate" and len(s["per_bucket"]) == 5, (c["timestep_mode"], s["per_bucket"])
assert 0 < s["nmse"] < 1 and all(b["l0"] > 0 for b in s["per_bucket"]), s
t = np.load("sep/bucket_frequency.npy")
assert t.shape == (120, 5) and t.sum() > 0, t.shape
own = np.arange(120) // 24
for j in range(120):
    for b in range(5):
        assert b == own[j] or t[j, b] == 0, (j, b, t[j])
PY
# With one bucket, separate mode is the plain SAE through the grouping path: the same weights.
"$SAEC" train "${SEP[@]}" --timestep-buckets 1 --steps 60 --out sep1 2>sep1.log >/dev/null \
  || { fail "separate, one bucket: run failed"; cat sep1.log >&2; }
"$SAEC" train "${SEP[@]}" --timestep-buckets 1 --steps 60 --timestep-mode none --out none1 \
  2>none1.log >/dev/null || { fail "none, one bucket: run failed"; cat none1.log >&2; }
"$PYTHON" "$TESTS_DIR/st_tool.py" equal sep1/model.safetensors none1/model.safetensors \
  && pass "separate with one bucket = the plain SAE, bit for bit" \
  || fail "separate with one bucket differs from the plain SAE"
"$SAEC" train "${SEP[@]}" --out sep_part --stop-at-step 50 2>/dev/null >/dev/null
"$SAEC" train --resume sep_part 2>sep_resume.log >/dev/null || { fail "separate resume failed"; cat sep_resume.log >&2; }
"$PYTHON" "$TESTS_DIR/st_tool.py" equal sep/model.safetensors sep_part/model.safetensors \
  && pass "separate: resumed weights identical" || fail "separate: resumed weights differ"
"$SAEC" eval sep --eval-tokens 8192 --out sep_ev.json 2>sep_ev.log || { fail "separate eval failed"; cat sep_ev.log >&2; }
"$PYTHON" -c "
import json; e = json.load(open('sep_ev.json')); s = json.load(open('sep/summary.json'))
assert abs(e['nmse'] - s['nmse']) <= 1e-6 * max(1, s['nmse']), (e['nmse'], s['nmse'])" \
  && pass "separate: eval of the run reproduces the training summary's nmse" || fail "separate: eval nmse differs"
"$SAEC" export sep --format sparsify --out sep_ex 2>err4.txt; rc=$?
[ $rc -eq 2 ] && grep -q "separate mode" err4.txt && [ ! -e sep_ex ] && pass "separate-mode export refused, nothing written" \
  || fail "separate-mode export: exit $rc: $(cat err4.txt)"
# eval --dump-recon of a timestep-aware SAE reconstructs each row with its own timestep: the
# dumped rows give eval's nmse (they ignored the timesteps before).
"$SAEC" gen timestep --out ts.h5 --tokens 4096 --d-in 32 >/dev/null 2>&1
"$SAEC" train --data ts.h5 --latents 128 --k 4 --steps 30 --batch-size 128 --eval-tokens 1024 \
  --timestep-mode bucket --out dump_run >/dev/null 2>&1 || fail "bucket run on ts.h5 failed"
"$SAEC" eval dump_run --data ts.h5 --eval-tokens 4096 --dump-recon recon.npy --out dump_ev.json \
  >/dev/null 2>dump.log || { fail "eval --dump-recon failed"; cat dump.log >&2; }
"$PYTHON" -c "
import json, h5py, numpy as np
x = h5py.File('ts.h5')['activations'][:].astype(np.float64)
r = np.load('recon.npy').astype(np.float64)
nmse = ((x - r) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
e = json.load(open('dump_ev.json'))['nmse']
assert abs(nmse - e) <= 1e-6 * max(1, e), (nmse, e)" \
  && pass "bucket mode: --dump-recon rows give eval's nmse" || fail "bucket mode: --dump-recon rows disagree with eval's nmse"
# Errors.
"$SAEC" train "${ARGS[@]}" --timestep-mode separate --out x1 2>err1.txt >/dev/null; rc=$?
[ $rc -eq 2 ] && grep -q "'latents' = 128 is not a multiple of 'timestep_buckets' = 5" err1.txt && [ ! -e x1 ] \
  && pass "separate with latents % B != 0: exit 2 naming both keys, no run dir" \
  || fail "separate with latents 128, B 5: exit $rc: $(cat err1.txt)"
"$SAEC" train "${ARGS[@]}" --timestep-mode adaln --timesteps 2000000 --out x3 2>err5.txt >/dev/null; rc=$?
[ $rc -eq 2 ] && grep -q "timesteps x adaln_dim = 2000000 x 64" err5.txt && [ ! -e x3/model.safetensors ] \
  && pass "adaln beyond its embedding table's limit: exit 2 naming both keys" \
  || fail "adaln with 2M timesteps: exit $rc: $(cat err5.txt)"
"$SAEC" train --synthetic superposition --timestep-mode bucket --steps 5 --out x2 2>err2.txt >/dev/null; rc=$?
[ $rc -eq 2 ] && grep -q "timesteps" err2.txt && [ ! -e x2 ] && pass "bucket mode without timesteps: exit 2, no run dir" \
  || fail "bucket mode without timesteps: exit $rc: $(cat err2.txt)"
"$SAEC" export full --format saelens --out ex 2>err3.txt; rc=$?
[ $rc -eq 2 ] && grep -q "timestep-aware" err3.txt && [ ! -e ex ] && pass "bucket-mode export refused, nothing written" \
  || fail "bucket-mode export: exit $rc: $(cat err3.txt)"
finish
