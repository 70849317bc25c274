"""Checks tools/saec-dump's output against transformers run independently (test_saec_dump.sh).

usage: test_saec_dump.py MODEL_DIR WORK CONTEXT
Reads WORK/corpus.txt and the dumps WORK/f32.h5, WORK/bf16.h5 (resid_post.3), WORK/f16.h5
(resid_post.3 of corpus.jsonl, --max-tokens 500), WORK/attn.h5 and WORK/mlp.h5 (attn_out.2 and
mlp_out.2, --max-tokens 2000). Prints ok:/FAIL: lines; exits 1 on a failure.
"""
import json
import os
import sys

import h5py
import numpy as np
import torch
import transformers

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
model_dir, work, context = sys.argv[1], sys.argv[2], int(sys.argv[3])
LAYER = 3
failed = False


def check(cond, what):
    global failed
    print(("ok: " if cond else "FAIL: ") + what)
    failed |= not cond


tok = transformers.AutoTokenizer.from_pretrained(model_dir)
model = transformers.AutoModel.from_pretrained(model_dir).eval()
docs = [line.rstrip("\n") for line in open(os.path.join(work, "corpus.txt"), encoding="utf-8") if line.strip()]
special = set(tok.all_special_ids)

# The reference, one document at a time (no padding, no batching): the hidden state after block
# LAYER at each non-special position of the document truncated to `context` tokens.
# Also the hidden states before and after block BRANCH_LAYER, for the branch hooks below.
BRANCH_LAYER, BRANCH_ROWS = 2, 2000
ref_rows, ref_ids, hs_in, hs_out = [], [], [], []
with torch.no_grad():
    for doc in docs:
        enc = tok(doc, truncation=True, max_length=context, return_tensors="pt")
        hs = model(**enc, output_hidden_states=True).hidden_states
        ids = enc["input_ids"][0].tolist()
        for pos, i in enumerate(ids):
            if i not in special:
                ref_rows.append(hs[LAYER + 1][0, pos].numpy())
                hs_in.append(hs[BRANCH_LAYER][0, pos].numpy())
                hs_out.append(hs[BRANCH_LAYER + 1][0, pos].numpy())
                ref_ids.append(i)
ref = np.stack(ref_rows)
# The row count, a second way: the tokenizer's own ids without special tokens, truncated to the
# context less the two that BERT adds ([CLS], [SEP]).
n_indep = sum(len([i for i in tok(d, add_special_tokens=False)["input_ids"][:context - 2] if i not in special])
              for d in docs)
check(n_indep == len(ref_ids), "independent token count %d = reference rows %d" % (n_indep, len(ref_ids)))

for name, dtype in (("f32.h5", "float32"), ("bf16.h5", "bfloat16")):
    with h5py.File(os.path.join(work, name), "r") as f:
        a = f["activations"]
        check(a.shape == (n_indep, 384), "%s: activations shape %s = (%d, 384)" % (name, a.shape, n_indep))
        check(a.chunks is not None and a.chunks[1] == 384 and a.maxshape[0] is None,
              "%s: chunked by rows %s, resizable" % (name, a.chunks))
        want = {"model": model_dir, "layer": LAYER, "hook": "resid_post.%d" % LAYER, "context_size": context,
                "tokenizer": model_dir, "dtype": dtype, "documents": len(docs), "tokens": n_indep,
                "saec_dump_version": "0.1.0", "model_type": "bert", "n_layers": 6, "d_model": 384}
        got = {k: (f.attrs[k].item() if hasattr(f.attrs.get(k), "item") else f.attrs.get(k)) for k in want}
        check(got == want, "%s: provenance attributes %s" % (name, json.dumps(got, sort_keys=True)))
        ids = f["token_ids"][:]
        check(ids.dtype == np.int32 and np.array_equal(ids, np.array(ref_ids)),
              "%s: token_ids [%d] int32 = the reference's ids" % (name, len(ids)))
        check(not np.isin(ids, list(special)).any(), "%s: no special token among the rows" % name)
        texts = [t.decode("utf-8") if isinstance(t, bytes) else t for t in f["tokens"][:]]
        first = tok.decode([tok(docs[0], add_special_tokens=False)["input_ids"][0]])
        check(texts[0] == first, "%s: tokens[0] = %r, the first word piece of document 0 (%r)" % (name, texts[0], first))
        check(texts == [tok.decode([int(i)]) for i in ids], "%s: every tokens[i] = decode(token_ids[i])" % name)
        x = a[:]
        if dtype == "bfloat16":
            check(x.dtype == np.uint16 and a.attrs.get("dtype") == "bfloat16",
                  "%s: stored as uint16 with dtype=\"bfloat16\"" % name)
            xf = (x.astype(np.uint32) << 16).view(np.float32)
            err = np.abs(xf - ref)
            # Rounding to bfloat16 (8 significant bits) moves a value by at most half an ulp, 2^-8
            # of it; the float32 value rounded may differ from the reference by the batching noise
            # (1e-5 above).
            bound = 2.0 ** -8 * (np.abs(ref) + 1e-5) + 1e-5
            check(bool((err <= bound).all()), "%s: within bf16 rounding of hidden_states: |err| <= 2^-8 (|x| + 1e-5) + 1e-5"
                  " (worst |err| %.2e; worst |err| / bound %.2f)" % (name, float(err.max()), float((err / bound).max())))
        else:
            check(x.dtype == np.float32 and "dtype" not in a.attrs, "%s: float32, no dtype attribute" % name)
            err = float(np.abs(x - ref).max())
            check(err <= 1e-5, "%s: = hidden_states[%d] within 1e-5 (max |diff| %.2e, max |x| %.1f)"
                  % (name, LAYER + 1, err, float(np.abs(ref).max())))

# The same batches give the same float32 values, so the narrow dumps are the float32 dump rounded
# to nearest even, bit for bit (numpy's rounding here, not torch's).
with h5py.File(os.path.join(work, "f32.h5"), "r") as f:
    x32 = f["activations"][:]
u = x32.view(np.uint32).astype(np.uint64)
bf_want = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
with h5py.File(os.path.join(work, "bf16.h5"), "r") as f:
    bf = f["activations"][:]
check(np.array_equal(bf, bf_want), "bf16.h5 = f32.h5 rounded to bfloat16 (nearest even), bit for bit"
      " (%d of %d values differ)" % (int((bf != bf_want).sum()), bf.size))
with h5py.File(os.path.join(work, "f16.h5"), "r") as f:
    h = f["activations"][:]
check(np.array_equal(h.view(np.uint16), x32[:500].astype(np.float16).view(np.uint16)),
      "f16.h5 = the first 500 rows of f32.h5 rounded to float16, bit for bit")

with h5py.File(os.path.join(work, "f16.h5"), "r") as f:
    a = f["activations"]
    check(a.shape == (500, 384) and a.dtype == np.float16, "f16.h5 (jsonl, --max-tokens 500): [500, 384] float16")
    err = np.abs(a[:].astype(np.float32) - ref[:500])
    bound = 2.0 ** -11 * (np.abs(ref[:500]) + 1e-5) + 1e-5 + 2.0 ** -25  # half an ulp (11 bits); subnormals
    check(bool((err <= bound).all()), "f16.h5: the first 500 reference rows within float16 rounding"
          " (worst |err| / bound %.2f)" % float((err / bound).max()))
    # documents = those that gave at least one row
    last_doc, seen = 0, 0
    for di, d in enumerate(docs):
        seen += len([i for i in tok(d, add_special_tokens=False)["input_ids"][:context - 2] if i not in special])
        if seen >= 500:
            last_doc = di + 1
            break
    check(int(f.attrs["documents"]) == last_doc, "f16.h5: documents = %d (those the 500 rows come from)" % last_doc)

# The branch hooks of a BERT block, whose output is LN2(mlp + a) with a = LN1(attn + input):
# attn_out.L and mlp_out.L are the two terms before each residual add and LayerNorm. Given the
# dumped attn_out and the hidden state entering block L, the block's own modules must rebuild
# mlp_out, and from both the hidden state leaving the block.
with h5py.File(os.path.join(work, "attn.h5"), "r") as f:
    attn = torch.tensor(f["activations"][:])
with h5py.File(os.path.join(work, "mlp.h5"), "r") as f:
    mlp = torch.tensor(f["activations"][:])
n_b = BRANCH_ROWS
check(attn.shape == (n_b, 384) and mlp.shape == (n_b, 384), "attn.h5, mlp.h5: [%d, 384]" % n_b)
block = model.encoder.layer[BRANCH_LAYER]
with torch.no_grad():
    a = block.attention.output.LayerNorm(attn + torch.tensor(np.stack(hs_in[:n_b])))
    mlp_want = block.output.dense(block.intermediate(a))
    out = block.output.LayerNorm(mlp + a)
e = float((mlp - mlp_want).abs().max())
check(e <= 1e-4, "mlp_out.%d = the block's MLP applied to LN1(attn_out.%d + hidden_states[%d]) (max |diff| %.1e)"
      % (BRANCH_LAYER, BRANCH_LAYER, BRANCH_LAYER, e))
e = float((out - torch.tensor(np.stack(hs_out[:n_b]))).abs().max())
check(e <= 1e-4, "LN2(mlp_out.%d + LN1(attn_out.%d + hidden_states[%d])) = hidden_states[%d] (max |diff| %.1e)"
      % (BRANCH_LAYER, BRANCH_LAYER, BRANCH_LAYER, BRANCH_LAYER + 1, e))

sys.exit(1 if failed else 0)
