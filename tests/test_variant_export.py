"""Checks the SAELens exports of the variants with numpy alone (no safetensors, torch or SAE
library): ReLU-L1 and ATM as "standard" SAEs, JumpReLU and BatchTopK as "jumprelu" with a
threshold (SPEC §10).
usage: test_variant_export.py WORK_DIR ARCH
WORK_DIR (prepared by test_variant_export.sh) holds, for ARCH:
  run_ARCH/            the saec run
  ex_ARCH/             its SAELens export
  batch.h5             a fixed batch of raw activations
  recon_{run,ex}_ARCH.npy, eval_{run,ex}_ARCH.json   the engine's reconstructions and metrics
This checks names, shapes and dtypes, the fold of the data scale (biases and threshold times s),
runs the variant's forward in numpy (float64) from the exported files, and compares it row by row
with the engine's reconstructions from the export and from the run.
"""
import json
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_tool  # noqa: E402
from test_export import check, expect_tensors, rel, FAILED  # noqa: E402

TOL = 1e-5


def forward(x, w, as_jumprelu):
    """pre = (x − b_dec) W_enc + b_enc; f = ReLU(pre) or pre·1[pre > θ]; x̂ = f W_dec + b_dec.
    Also each row's smallest distance of a pre-activation to its cut-off (0 or θ)."""
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    cut = w["threshold"] if as_jumprelu else np.zeros(pre.shape[1])
    f = np.where(pre > cut, pre, 0.0)
    return f @ w["W_dec"] + w["b_dec"], f, np.min(np.abs(pre - cut), axis=1)


def main():
    work, arch = sys.argv[1], sys.argv[2]
    j = lambda *p: os.path.join(work, *p)  # noqa: E731
    ck, _ = st_tool.read(j(f"run_{arch}", "model.safetensors"))
    ck = {k: v.astype(np.float64) for k, v in ck.items()}
    s = float(ck["data_scale"][0])
    m, d = ck["W_enc_t"].shape
    as_jumprelu = arch in ("jumprelu", "batchtopk")
    want_arch = "jumprelu" if as_jumprelu else "standard"

    check(sorted(os.listdir(j(f"ex_{arch}"))) == ["cfg.json", "sae_weights.safetensors",
                                                   "sparsity.safetensors"],
          f"{arch}: SAELens export files")
    shapes = {"W_enc": (d, m), "b_enc": (m,), "W_dec": (m, d), "b_dec": (d,)}
    if as_jumprelu:
        shapes["threshold"] = (m,)
    w = expect_tensors(j(f"ex_{arch}", "sae_weights.safetensors"), shapes)
    cfg = json.load(open(j(f"ex_{arch}", "cfg.json")))
    check(cfg.get("architecture") == want_arch, f"{arch}: cfg.json architecture {cfg.get('architecture')!r} == {want_arch!r}")
    check("k" not in cfg, f"{arch}: cfg.json has no k (not a TopK SAE)")
    for key, want in [("d_in", d), ("d_sae", m), ("apply_b_dec_to_input", True),
                      ("normalize_activations", "none")]:
        check(cfg.get(key) == want, f"{arch}: cfg.json {key} = {cfg.get(key)!r} (want {want!r})")

    # The fold: W as trained, biases and the threshold times s.
    fold = {"W_enc": ck["W_enc_t"].T, "b_enc": s * ck["b_enc"], "W_dec": ck["W_dec"], "b_dec": s * ck["b_dec"]}
    if arch == "jumprelu":
        fold["threshold"] = s * np.exp(ck["log_theta"])
    if arch == "batchtopk":
        theta = float(ck["batchtopk_threshold"][0])
        check(theta > 0, f"batchtopk: the run tracked an inference threshold ({theta:.4g})")
        fold["threshold"] = np.full(m, s * theta)
    worst = max(np.max(np.abs(w[n] - fold[n])) / max(np.max(np.abs(fold[n])), 1e-30) for n in fold)
    check(worst <= 1e-6, f"{arch}: exported tensors = checkpoint with s folded in (max rel {worst:.2e})")

    with h5py.File(j("batch.h5"), "r") as f:
        x = f["activations"][:].astype(np.float64)
    xnorm = np.linalg.norm(x, axis=1)
    xh, f, margin = forward(x, w, as_jumprelu)
    # A pre-activation within float32 rounding of its cut-off may fall either way in the engine.
    near = margin < 2e-6 * (np.max(np.abs(x)) + 1.0)
    check(near.mean() <= 0.05, f"{arch}: rows with a pre-activation at its cut-off: {near.sum()} of {len(x)}")
    keep = ~near
    check(np.mean((f > 0).sum(1)) > 0, f"{arch}: the export's codes are not all zero")
    for src in ["ex", "run"]:
        eng = np.load(j(f"recon_{src}_{arch}.npy")).astype(np.float64)
        check(eng.shape == x.shape, f"{arch}: engine reconstructions ({src}) have shape {eng.shape}")
        e = np.max(np.linalg.norm(eng - xh, axis=1)[keep] / xnorm[keep])
        check(e <= TOL, f"{arch}: engine x̂ from the {src} = numpy x̂ from the export (max rel {e:.2e})")
    ev_run = json.load(open(j(f"eval_run_{arch}.json")))
    ev_ex = json.load(open(j(f"eval_ex_{arch}.json")))
    for key in ["nmse", "cosine", "l0"]:
        r = rel(ev_ex[key], ev_run[key])
        check(r <= TOL, f"{arch}: eval {key} of the export {ev_ex[key]:.8g} = of the run {ev_run[key]:.8g}")
    l0 = np.mean((f > 0).sum(1))
    check(rel(ev_ex["l0"], l0) <= 1e-3, f"{arch}: engine l0 {ev_ex['l0']:.5g} = numpy l0 {l0:.5g}")
    if FAILED:
        print(f"{len(FAILED)} checks failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
