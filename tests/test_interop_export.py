"""saec's exports loaded by the real libraries: SAELens (SAE.load_from_disk) and sparsify
(Sae.load_from_disk) encode and decode the same activations as saec (test_interop_export.sh).

usage: test_interop_export.py WORK
WORK holds minilm.h5 (the activations), run/ (the saec run), saelens/ and sparsify/ (its
exports), and for each of run, saelens, sparsify: eval_NAME.json (saec eval --out) and
recon_NAME.npy (saec eval --dump-recon) over the first N rows of minilm.h5.
Codes are compared with the checkpoint's TopK codes (numpy, float64) times the folded data
scale s; reconstructions with saec's; nmse and l0 with saec eval's. Tolerance 1e-5, relative.
"""
import json
import os
import sys

import h5py
import numpy as np
import torch

# sparsify decodes with a Triton kernel, which needs a GPU; on a CPU its documented switch selects
# its eager decoder (torch's embedding_bag).
if not torch.cuda.is_available():
    os.environ["SPARSIFY_DISABLE_TRITON"] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_tool  # noqa: E402  (the tests' safetensors reader)

TOL = 1e-5
work = sys.argv[1]
j = lambda *p: os.path.join(work, *p)  # noqa: E731
failed = False


def check(cond, what):
    global failed
    print(("ok: " if cond else "FAIL: ") + what)
    failed |= not cond


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


ev = {n: json.load(open(j("eval_%s.json" % n))) for n in ("run", "saelens", "sparsify")}
n_rows = int(ev["saelens"]["eval_tokens"]) if "eval_tokens" in ev["saelens"] else None
with h5py.File(j("minilm.h5"), "r") as f:
    x = f["activations"][: n_rows].astype(np.float64)
n = len(x)
print("rows compared: %d x %d" % x.shape)

# ---- the reference: the checkpoint's TopK forward in float64, normalised units, times s ----
ck, _ = st_tool.read(j("run", "model.safetensors"))
ck = {key: v.astype(np.float64) for key, v in ck.items()}
cfg = json.load(open(j("saelens", "cfg.json")))
s, k = float(cfg["saec"]["data_scale"]), int(cfg["k"])
mu = np.asarray(cfg["saec"]["data_mean"], dtype=np.float64)
pre = (x / s - ck["b_dec"]) @ ck["W_enc_t"].T + ck["b_enc"]
order = np.argsort(-pre, axis=1, kind="stable")
idx = order[:, :k]
codes_ref = np.zeros_like(pre)
np.put_along_axis(codes_ref, idx, np.maximum(np.take_along_axis(pre, idx, axis=1), 0.0) * s, axis=1)
srt = np.take_along_axis(pre, order[:, :k + 1], axis=1)
gap = srt[:, k - 1] - srt[:, k]
tie = gap < 1e-6 * (np.abs(pre).max() + 1.0)  # k-th and (k+1)-th nearly tie: float32 may pick either
keep = ~tie
check(tie.mean() <= 0.01, "near-tie rows left out of the row comparisons: %d of %d" % (tie.sum(), n))
xnorm = np.linalg.norm(x, axis=1)
codes_scale = np.abs(codes_ref).max()

xt = torch.tensor(x, dtype=torch.float32)
lib = {}
with torch.no_grad():
    from sae_lens import SAE
    sae = SAE.load_from_disk(j("saelens"), device="cpu")
    check(type(sae).__name__ == "TopKSAE" and sae.cfg.d_in == x.shape[1] and sae.cfg.d_sae == pre.shape[1],
          "sae_lens SAE.load_from_disk: %s, d_in %d, d_sae %d" % (type(sae).__name__, sae.cfg.d_in, sae.cfg.d_sae))
    f_sl = sae.encode(xt)
    lib["saelens"] = (f_sl.double().numpy(), sae.decode(f_sl).double().numpy())

    from sparsify import Sae
    sp = Sae.load_from_disk(j("sparsify"), device="cpu")
    check(sp.cfg.k == k and sp.num_latents == pre.shape[1] and sp.d_in == x.shape[1],
          "sparsify Sae.load_from_disk: %s, k %d, %d latents" % (type(sp).__name__, sp.cfg.k, sp.num_latents))
    enc = sp.encode(xt)
    f_sp = torch.zeros(n, sp.num_latents).scatter_(1, enc.top_indices.long(), enc.top_acts.float())
    lib["sparsify"] = (f_sp.double().numpy(), sp.decode(enc.top_acts, enc.top_indices).double().numpy())

for name, (codes, xhat) in lib.items():
    e = np.abs(codes - codes_ref)[keep].max() / codes_scale
    check(e <= TOL, "%s codes = s x the checkpoint's TopK codes (max |diff| / max code %.1e)" % (name, e))
    eng = np.load(j("recon_%s.npy" % name)).astype(np.float64)
    e = (np.linalg.norm(xhat - eng, axis=1)[keep] / xnorm[keep]).max()
    check(e <= TOL, "%s decode(encode(x)) = saec eval's x-hat of the %s export (max rel %.1e over %d rows)"
          % (name, name, e, keep.sum()))
    nmse = ((x - xhat) ** 2).sum() / ((x - mu) ** 2).sum()
    l0 = (codes > 0).sum(1).mean()
    for key, val in (("nmse", nmse), ("l0", l0)):
        check(rel(val, ev[name][key]) <= TOL, "%s %s %.8g = saec eval %.8g (rel %.1e)"
              % (name, key, val, ev[name][key], rel(val, ev[name][key])))
    for key in ("nmse", "l0"):
        check(rel(ev[name][key], ev["run"][key]) <= TOL, "saec eval %s of the %s export %.8g = of the run %.8g"
              % (key, name, ev[name][key], ev["run"][key]))

sys.exit(1 if failed else 0)
