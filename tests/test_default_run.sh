#!/usr/bin/env bash
# The embedded default: `saec train` with no arguments recovers the synthetic ground truth.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
"$SAEC" train --out run >out.txt 2>err.txt; rc=$?
tail -5 err.txt
[ $rc -eq 0 ] && pass "default run exits 0" || { fail "default run exit code $rc"; cat err.txt >&2; finish; }
for f in config.json metrics.jsonl summary.json model.safetensors optimizer.safetensors; do
  [ -s "run/$f" ] && pass "run/$f written" || fail "run/$f missing"
done
expect_ge "$(json_get run/summary.json mmcs)" 0.9 mmcs
expect_le "$(json_get run/summary.json nmse)" 0.1 nmse
expect_le "$(json_get run/summary.json l0)" 8.0001 l0
for key in arch device tokens seconds tokens_per_second mse nmse explained_variance cosine l0 dead_fraction mmcs; do
  json_get run/summary.json "$key" >/dev/null 2>&1 && pass "summary has $key" || fail "summary lacks $key"
done
"$PYTHON" "$TESTS_DIR/st_tool.py" finite run/model.safetensors && pass "checkpoint finite" || fail "checkpoint has non-finite values"
lines=$(wc -l < run/metrics.jsonl)
[ "$lines" -ge 10 ] && pass "metrics.jsonl has $lines records" || fail "metrics.jsonl has $lines records"
grep -q 'tok/s' err.txt && grep -q 'ETA' err.txt && pass "progress line" || fail "no progress line"
finish
