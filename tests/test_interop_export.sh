#!/usr/bin/env bash
# The researcher's path with the real libraries: MiniLM activations (tools/saec-dump) -> saec
# train -> saec export --format saelens / sparsify -> SAELens's SAE.load_from_disk and sparsify's
# Sae.load_from_disk encode and decode the same activations as saec eval: codes, reconstructions,
# nmse and l0 within 1e-5 (test_interop_export.py). Label interop: runs only with SAEC_INTEROP=1.
source "$(dirname "$0")/interop_lib.sh"
minilm_setup
interop_venv "import sae_lens, sparsify" sae-lens eai-sparsify
"$VPY" -c "import importlib.metadata as m; print('sae-lens', m.version('sae-lens'), '| eai-sparsify', m.version('eai-sparsify'))"
cd "$WORK"
readme_corpus corpus.txt

# The walk-through, command by command (the README's "From a real model to SAELens").
"$DUMP" --model "$MODEL" --hook resid_post.3 --text corpus.txt --context 128 --out minilm.h5 2>dump.log \
  && pass "dump: $(tail -1 dump.log)" || { fail "saec-dump"; cat dump.log >&2; finish; }
"$SAEC" train --data minilm.h5 --latents 1536 --k 16 --steps 300 --out run >train.log 2>&1 \
  && pass "train: nmse $(json_get run/summary.json nmse), l0 $(json_get run/summary.json l0)" \
  || { fail "saec train"; tail -5 train.log >&2; finish; }
for f in saelens sparsify; do
  "$SAEC" export run --format $f --out $f 2>export_$f.log && pass "export --format $f: $(tail -1 export_$f.log)" \
    || { fail "export --format $f"; cat export_$f.log >&2; }
done
"$VPY" -c "from sae_lens import SAE; sae = SAE.load_from_disk('saelens'); print(type(sae).__name__, sae.cfg.d_in, sae.cfg.d_sae)" \
  >load_sl.txt 2>&1 && pass "SAELens loads the export: $(tail -1 load_sl.txt)" || { fail "SAELens load"; tail -5 load_sl.txt >&2; }
SPARSIFY_DISABLE_TRITON=1 "$VPY" -c "from sparsify import Sae; sae = Sae.load_from_disk('sparsify'); print(type(sae).__name__, sae.d_in, sae.num_latents)" \
  >load_sp.txt 2>&1 && pass "sparsify loads the export: $(tail -1 load_sp.txt)" || { fail "sparsify load"; tail -5 load_sp.txt >&2; }

# saec's own view of the same rows, for the comparison
for m in run saelens sparsify; do
  "$SAEC" eval $m --data minilm.h5 --eval-tokens 1000000 --out eval_$m.json --dump-recon recon_$m.npy 2>eval_$m.log \
    || { fail "saec eval $m"; cat eval_$m.log >&2; }
done
"$VPY" "$TESTS_DIR/test_interop_export.py" "$WORK" > check.txt 2>check.err; rc=$?
grep -v '^Dropping extra args' check.txt
[ $rc -eq 0 ] && pass "test_interop_export.py" || { fail "test_interop_export.py (exit $rc)"; tail -20 check.err >&2; }
finish
