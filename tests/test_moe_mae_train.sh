#!/usr/bin/env bash
# `saec train --model moe-mae` end to end at a tiny size (the moe_* keys shrink SPEC §7's network:
# the code paths are the full model's): progress line, metrics.jsonl, summary with the probes of
# the encoder and both baselines, the PNGs and the expert-load record; a run interrupted by
# SIGINT and one stopped by stop_at_step resume to the bits of an uninterrupted run; a run on a
# `saec gen eo` file; embed + probe from the command line; bad configurations exit 2.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
export OMP_NUM_THREADS=2
TINY=(--model moe-mae --eo-side 16 --moe-image 16 --moe-patch 4
      --moe-enc-dim 24 --moe-enc-depth 2 --moe-enc-heads 2 --moe-enc-kv-groups 1 --moe-enc-head-dim 8
      --moe-enc-experts 3 --moe-dec-dim 16 --moe-dec-depth 1 --moe-dec-heads 2 --moe-dec-kv-groups 1
      --moe-dec-head-dim 8 --moe-dec-hidden 16 --batch-size 8 --steps 12 --log-every 4
      --probe-tiles 300 --seed 3)

"$SAEC" train "${TINY[@]}" --out full >full.out 2>full.err \
  && pass "tiny moe-mae run" || { fail "tiny moe-mae run"; cat full.err >&2; finish; }
grep -q "img/s" full.err && grep -q "load cv" full.err && pass "progress line with img/s and load cv" \
  || fail "progress line: $(grep step full.err | head -2)"
[ "$(wc -l <full/metrics.jsonl)" = 3 ] && pass "metrics.jsonl has 3 records" || fail "metrics.jsonl: $(wc -l <full/metrics.jsonl) lines"
[ "$(wc -l <full/expert_load.jsonl)" = 3 ] && pass "expert_load.jsonl has 3 records" || fail "expert_load.jsonl"
[ -s full/loss.png ] && [ -s full/expert_load.png ] && pass "loss.png and expert_load.png" || fail "PNGs missing"
"$PYTHON" - full/summary.json <<'PY' && pass "summary: arch moe-mae, probes of encoder, random_init, band_means" || fail "summary.json: $(cat full/summary.json)"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["arch"] == "moe-mae"
p = s["probe"]
for k in ("encoder", "random_init", "band_means"):
    assert 0 < p[k]["micro_map"] <= 1 and p[k]["test_rows"] > 0, k
assert p["metric"] == "micro_map" and isinstance(p["encoder_beats_baselines"], bool)
PY

# resume: stop at step 5 (stop_at_step), then resume; and SIGINT during a run, then resume
"$SAEC" train "${TINY[@]}" --stop-at-step 5 --out stopped >/dev/null 2>stop.err \
  || { fail "stop_at_step run"; cat stop.err >&2; }
"$SAEC" train --resume stopped >/dev/null 2>resume.err || { fail "resume"; cat resume.err >&2; }
"$PYTHON" "$TESTS_DIR/st_tool.py" equal full/model.safetensors stopped/model.safetensors \
  && "$PYTHON" "$TESTS_DIR/st_tool.py" equal full/optimizer.safetensors stopped/optimizer.safetensors \
  && pass "stopped at step 5 and resumed: bit-identical weights and optimizer" \
  || fail "the resumed run's checkpoint differs from the uninterrupted run's"
# (the stopped run also logged its stopping step, 5)
grep -v '"step": 5,' stopped/expert_load.jsonl | diff full/expert_load.jsonl - >el.diff \
  && pass "expert_load.jsonl continues across the resume" \
  || { fail "expert_load.jsonl differs after resume"; head -5 el.diff >&2; }

"$SAEC" train "${TINY[@]}" --steps 400 --out sig >/dev/null 2>sig.err &
pid=$!
for _ in $(seq 1 100); do grep -q "step " sig.err 2>/dev/null && break; sleep 0.2; done
kill -INT $pid; wait $pid; rc=$?
[ $rc = 130 ] && pass "SIGINT: exit 130" || fail "SIGINT: exit $rc"
ls sig/checkpoints/ | grep -q step- && pass "SIGINT left a checkpoint" || fail "no checkpoint after SIGINT"
"$SAEC" train --resume sig --steps 401 >/dev/null 2>sigres.err && pass "the interrupted run resumes" \
  || { fail "resume after SIGINT"; cat sigres.err >&2; }

# a file in the EO layout, then embed and probe from the command line
"$SAEC" gen eo --out tiles.h5 --tokens 400 --eo-side 16 --seed 4 >/dev/null 2>gen.err || { fail "gen eo"; cat gen.err >&2; }
"$SAEC" train "${TINY[@]}" --data tiles.h5 --steps 6 --out onfile >/dev/null 2>onfile.err \
  && pass "training on a saec gen eo file" || { fail "train on file"; cat onfile.err >&2; }
for f in encoder random_init band_means; do
  "$SAEC" embed onfile --data tiles.h5 --features $f --out emb_$f.h5 >/dev/null 2>embed.err \
    || { fail "embed --features $f"; cat embed.err >&2; }
done
"$PYTHON" - <<'PY' && pass "embed records the routing (expert_load [N, 2, 3], shares sum to 1) and the metadata" \
  || fail "expert_load / metadata in the embeddings files"
import h5py, numpy as np
e, t, b = (h5py.File(f, "r") for f in ("emb_encoder.h5", "tiles.h5", "emb_band_means.h5"))
load = e["expert_load"][...]
assert load.shape == (400, 2, 3), load.shape
assert np.allclose(load.sum(2), 1, atol=1e-5) and load.min() >= 0
assert load.std(0).max() > 0  # tiles route differently
assert np.array_equal(e["metadata"][...], t["metadata"][...], equal_nan=True)
assert "expert_load" not in b and "metadata" in b
PY
"$SAEC" probe emb_encoder.h5 emb_random_init.h5 emb_band_means.h5 --out probe.json >probe.out 2>probe.err \
  && [ "$("$PYTHON" -c "import json; print(len(json.load(open('probe.json'))))")" = 3 ] \
  && pass "saec probe on three embeddings files" || { fail "saec probe"; cat probe.err >&2; }
"$SAEC" probe emb_encoder.h5 --train-fraction 0.1 >/dev/null 2>&1 && pass "label efficiency: --train-fraction 0.1" \
  || fail "--train-fraction"

# bad input
"$SAEC" train --model moe-mae --synthetic hierarchy --out bad1 >/dev/null 2>bad1.err; rc=$?
[ $rc = 2 ] && grep -q "synthetic" bad1.err && pass "moe-mae on activation data: exit 2 naming the key" || fail "exit $rc: $(cat bad1.err)"
"$SAEC" train "${TINY[@]}" --moe-enc-experts 3,3,3 --out bad2 >/dev/null 2>bad2.err; rc=$?
[ $rc = 2 ] && grep -q "moe_enc_experts" bad2.err && pass "experts list of the wrong length: exit 2 naming the key" \
  || fail "exit $rc: $(cat bad2.err)"
"$SAEC" train "${TINY[@]}" --moe-image 32 --out bad3 >/dev/null 2>bad3.err; rc=$?
[ $rc = 3 ] && pass "tiles smaller than moe_image: exit 3" || fail "exit $rc: $(cat bad3.err)"
"$SAEC" embed full --out x.h5 --features nope >/dev/null 2>bad4.err; rc=$?
[ $rc = 2 ] && grep -q "features" bad4.err && pass "embed --features nope: exit 2" || fail "exit $rc: $(cat bad4.err)"
finish
