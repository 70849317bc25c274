"""Checks SAELens and sparsify exports with numpy alone (no safetensors, torch or SAE library).

usage: test_export.py WORK_DIR

WORK_DIR (prepared by test_export.sh) holds:
  run/               the saec run (model.safetensors, summary.json)
  sl/, sp/           its SAELens and sparsify exports
  batch.h5           a fixed batch of raw activations (dataset `activations` [N, d])
  recon_{run,sl,sp}.npy   the engine's reconstructions of batch.h5 (saec eval --dump-recon)
  eval_{run,sl,sp}.json   the engine's metrics on batch.h5 (saec eval --out)

For each export this reads the files with a tiny safetensors reader, checks file names, tensor
names, shapes and dtypes exactly as SPEC §10 lays them out, checks the fold of the data scale
against the checkpoint, runs the TopK SAE forward in numpy (float64) from the exported weights,
and compares it with the engine's reconstructions row by row and with the engine's metrics.
"""
import json
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_tool  # noqa: E402  (the tests' safetensors reader)

TOL = 1e-5  # relative to ‖x‖ per row, and relative for the metrics
FAILED = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        FAILED.append(what)


def expect_tensors(path, want):
    """want: name -> shape; every tensor F32, exactly these names."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    check(sorted(header) == sorted(want), f"{path}: tensors {sorted(header)} == {sorted(want)}")
    for name, shape in want.items():
        if name not in header:
            continue
        t = header[name]
        check(t["dtype"] == "F32" and list(t["shape"]) == list(shape),
              f"{path}: {name} is F32 {list(shape)} (got {t['dtype']} {t['shape']})")
    tensors, _ = st_tool.read(path)
    return {k: v.astype(np.float64) for k, v in tensors.items()}


def topk_forward(x, W_enc, b_enc, W_dec, b_dec, k):
    """TopK SAE on raw rows: pre = (x − b_dec) W_enc + b_enc; keep the k largest per row (ties to
    the lower index), ReLU; x̂ = f W_dec + b_dec. Returns x̂ and each row's gap between the k-th and
    (k+1)-th pre-activation (a near-tie can flip between float32 and float64)."""
    pre = (x - b_dec) @ W_enc + b_enc
    order = np.argsort(-pre, axis=1, kind="stable")  # stable: equal values keep index order
    idx = order[:, :k]
    vals = np.maximum(np.take_along_axis(pre, idx, axis=1), 0.0)
    f = np.zeros_like(pre)
    np.put_along_axis(f, idx, vals, axis=1)
    xhat = f @ W_dec + b_dec
    srt = np.take_along_axis(pre, order[:, :k + 1], axis=1)
    gap = srt[:, k - 1] - srt[:, k] if pre.shape[1] > k else np.full(len(x), np.inf)
    return xhat, gap, f


def metrics(x, xhat, mu, f):
    err = ((x - xhat) ** 2).sum()
    return {"nmse": err / ((x - mu) ** 2).sum(),
            "mse": err / x.size,
            "cosine": np.mean((x * xhat).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(xhat, axis=1))),
            "l0": np.mean((f > 0).sum(1))}


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def main():
    work = sys.argv[1]
    j = lambda *p: os.path.join(work, *p)  # noqa: E731
    ck, _ = st_tool.read(j("run", "model.safetensors"))
    ck = {k: v.astype(np.float64) for k, v in ck.items()}
    s = float(ck["data_scale"][0])
    m, d = ck["W_enc_t"].shape
    run_cfg = json.load(open(j("run", "config.json")))
    k = int(run_cfg["k"])
    with h5py.File(j("batch.h5"), "r") as f:
        x = f["activations"][:].astype(np.float64)
    check(x.shape[1] == d, f"batch width {x.shape[1]} == d {d}")
    xnorm = np.linalg.norm(x, axis=1)

    # ---- file layouts (SPEC §10) ----
    check(sorted(os.listdir(j("sl"))) == ["cfg.json", "sae_weights.safetensors", "sparsity.safetensors"],
          f"SAELens export files: {sorted(os.listdir(j('sl')))}")
    check(sorted(os.listdir(j("sp"))) == ["cfg.json", "sae.safetensors"],
          f"sparsify export files: {sorted(os.listdir(j('sp')))}")
    sl = expect_tensors(j("sl", "sae_weights.safetensors"),
                        {"W_enc": (d, m), "b_enc": (m,), "W_dec": (m, d), "b_dec": (d,)})
    sparsity = expect_tensors(j("sl", "sparsity.safetensors"), {"sparsity": (m,)})["sparsity"]
    sp = expect_tensors(j("sp", "sae.safetensors"),
                        {"encoder.weight": (m, d), "encoder.bias": (m,), "W_dec": (m, d), "b_dec": (d,)})
    slc = json.load(open(j("sl", "cfg.json")))
    spc = json.load(open(j("sp", "cfg.json")))
    for key, want in [("architecture", "topk"), ("d_in", d), ("d_sae", m), ("k", k), ("dtype", "float32"),
                      ("apply_b_dec_to_input", True), ("normalize_activations", "none")]:
        check(slc.get(key) == want, f"SAELens cfg.json {key} = {slc.get(key)!r} (want {want!r})")
    check(slc.get("metadata", {}).get("sae_lens_version", "").startswith("6."),
          "SAELens cfg.json metadata.sae_lens_version marks the 6.x layout")
    for key, want in [("activation", "topk"), ("d_in", d), ("num_latents", m), ("k", k),
                      ("skip_connection", False), ("transcode", False)]:
        check(spc.get(key) == want, f"sparsify cfg.json {key} = {spc.get(key)!r} (want {want!r})")
    for name, c in [("SAELens", slc), ("sparsify", spc)]:
        check(abs(c["saec"]["data_scale"] - s) <= 1e-6 * s, f"{name} cfg.json records the folded scale {s:.6g}")

    # ---- the fold: exports equal the checkpoint with s folded into the biases ----
    fold = {"W_enc": ck["W_enc_t"].T, "b_enc": s * ck["b_enc"], "W_dec": ck["W_dec"], "b_dec": s * ck["b_dec"]}
    worst = max(np.max(np.abs(sl[n] - fold[n])) / max(np.max(np.abs(fold[n])), 1e-30) for n in fold)
    check(worst <= 1e-6, f"SAELens weights = checkpoint with s folded in (max rel diff {worst:.2e})")
    same = (np.array_equal(sp["encoder.weight"], sl["W_enc"].T) and np.array_equal(sp["encoder.bias"], sl["b_enc"])
            and np.array_equal(sp["W_dec"], sl["W_dec"]) and np.array_equal(sp["b_dec"], sl["b_dec"]))
    check(same, "sparsify weights are the SAELens ones (encoder.weight = W_encᵀ), bit for bit")
    norms = np.linalg.norm(sl["W_dec"], axis=1)
    check(np.max(np.abs(norms - 1)) <= 1e-5, f"exported decoder rows have unit norm (max |norm-1| {np.max(np.abs(norms - 1)):.1e})")
    mu_raw = np.asarray(slc["saec"]["data_mean"], dtype=np.float64)
    check(np.max(np.abs(mu_raw - s * ck["data_mean"])) <= 1e-6 * np.max(np.abs(s * ck["data_mean"])),
          "cfg.json saec.data_mean = s·μ of the checkpoint")

    # ---- sparsity: log10 firing frequency; every token fires k latents, so Σ 10^sparsity ≈ l0 ----
    summary = json.load(open(j("run", "summary.json")))
    freq = 10.0 ** sparsity
    check(np.all(sparsity <= 0) and np.all(sparsity >= -10.0001), "sparsity in [-10, 0]")
    check(abs(freq.sum() - summary["l0"]) <= 1e-3 * k,
          f"Σ firing frequency {freq.sum():.5f} = l0 {summary['l0']:.5f} of the run's eval")

    # ---- forward in numpy: from the checkpoint (normalised units) and from each export ----
    xh_ck, gap_ck, f_ck = topk_forward(x / s, ck["W_enc_t"].T, ck["b_enc"], ck["W_dec"], ck["b_dec"], k)
    xh_ck *= s
    models = {
        "sl": topk_forward(x, sl["W_enc"], sl["b_enc"], sl["W_dec"], sl["b_dec"], k),
        "sp": topk_forward(x, sp["encoder.weight"].T, sp["encoder.bias"], sp["W_dec"], sp["b_dec"], k),
    }
    # A row whose k-th and (k+1)-th pre-activations nearly tie may select differently in float32.
    pre_scale = np.max(np.abs(gap_ck)) + 1.0
    tie = gap_ck < 1e-5 * pre_scale
    check(tie.mean() <= 0.01, f"near-tie rows excluded from row comparisons: {tie.sum()} of {len(x)}")
    keep = ~tie
    for name, (xh, _, f) in models.items():
        e = np.max(np.linalg.norm(xh - xh_ck, axis=1)[keep] / xnorm[keep])
        check(e <= TOL, f"numpy x̂ from the {name} export = numpy x̂ from the checkpoint (max rel {e:.2e})")
        codes = np.max(np.abs(f - s * f_ck)[keep]) / np.max(np.abs(f))
        check(codes <= TOL, f"{name} codes = s × checkpoint codes (max rel {codes:.2e})")

    # ---- the engine: its reconstructions and metrics of the same batch ----
    ref = {"run": (xh_ck, f_ck), "sl": (models["sl"][0], models["sl"][2]), "sp": (models["sp"][0], models["sp"][2])}
    for name, (xh, f) in ref.items():
        eng = np.load(j(f"recon_{name}.npy")).astype(np.float64)
        check(eng.shape == x.shape, f"engine reconstructions ({name}) have shape {eng.shape}")
        e = np.max(np.linalg.norm(eng - xh, axis=1)[keep] / xnorm[keep])
        check(e <= TOL, f"engine x̂ ({name}) = numpy x̂ from the {'checkpoint' if name == 'run' else 'export'} "
                        f"(max rel {e:.2e} over {keep.sum()} rows)")
        ev = json.load(open(j(f"eval_{name}.json")))
        units = s if name == "run" else 1.0  # the run's eval works in normalised units
        mt = metrics(x / units, xh / units, mu_raw / units, f)
        for key in ["nmse", "mse", "cosine", "l0"]:
            r = rel(ev[key], mt[key])
            check(r <= TOL, f"engine {key} ({name}) {ev[key]:.8g} = numpy {mt[key]:.8g} (rel {r:.1e})")

    if FAILED:
        print(f"{len(FAILED)} checks failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
